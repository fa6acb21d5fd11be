/*!
What a sink's disk buffer holds per event: a small envelope of routing facts, then the event's
canonical JSON.

```text
record = envelope length u32 BE | envelope JSON | event JSON
```

The receiver computes the envelope once from the typed event; every sink then builds its
requests from the envelope and the event bytes without parsing the event again (Splunk metadata
and indexed fields, Kafka keys and headers, Elasticsearch ids and data streams).
*/

use serde::{Deserialize, Serialize};
use weir_schemas::Event;

/// Routing facts about one event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// `weir.class`.
    pub class: String,
    /// `@timestamp` in microseconds since the Unix epoch.
    pub time_us: i64,
    /// `host.name`, else `host.hostname`, else `observer.hostname`, else the sender's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `weir.agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// `weir.stream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// `weir.session`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// `weir.sequence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// `network.community_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community_id: Option<String>,
    /// `weir.schema_version`.
    pub schema_version: String,
    /// Key ECS fields for Splunk's indexed `fields`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, String)>,
}

impl Envelope {
    /// The envelope of `e`.
    pub fn of(e: &Event) -> Envelope {
        let v = serde_json::to_value(e).unwrap_or_default();
        let s = |path: &[&str]| -> Option<String> {
            let mut cur = &v;
            for p in path {
                cur = cur.get(p)?;
            }
            match cur {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                serde_json::Value::Array(a) => {
                    a.first().and_then(|x| x.as_str()).map(str::to_owned)
                }
                _ => None,
            }
        };
        let host = s(&["host", "name"])
            .or_else(|| s(&["host", "hostname"]))
            .or_else(|| s(&["observer", "hostname"]))
            .or_else(|| s(&["weir", "input", "peer_ip"]));
        let mut fields = Vec::new();
        for (name, path) in INDEXED {
            if let Some(value) = s(path) {
                fields.push(((*name).to_owned(), value));
            }
        }
        Envelope {
            class: e.class().as_str().to_owned(),
            time_us: e.timestamp.timestamp_micros(),
            host,
            agent: e.weir.agent.clone(),
            stream: e.weir.stream.clone(),
            session: e.weir.session.clone(),
            sequence: e.weir.sequence,
            community_id: s(&["network", "community_id"]),
            schema_version: e.weir.schema_version.to_string(),
            fields,
        }
    }

    /// The buffer record for `e`: envelope and event JSON.
    pub fn record(e: &Event) -> Vec<u8> {
        let env = serde_json::to_vec(&Envelope::of(e)).unwrap_or_default();
        let mut out = Vec::with_capacity(4 + env.len() + 512);
        out.extend_from_slice(&(env.len() as u32).to_be_bytes());
        out.extend_from_slice(&env);
        e.write_json(&mut out);
        out
    }

    /// Split a buffer record into its envelope and the event JSON bytes.
    pub fn split(record: &[u8]) -> Option<(Envelope, &[u8])> {
        let len = u32::from_be_bytes(record.get(..4)?.try_into().ok()?) as usize;
        let env = serde_json::from_slice(record.get(4..4 + len)?).ok()?;
        Some((env, record.get(4 + len..)?))
    }
}

/// Splunk indexed fields: `(field name, path in the event)`. Chosen for the CIM data models
/// and for searching OT telemetry by asset without a search-time extraction.
const INDEXED: &[(&str, &[&str])] = &[
    ("event.kind", &["event", "kind"]),
    ("event.category", &["event", "category"]),
    ("event.action", &["event", "action"]),
    ("event.outcome", &["event", "outcome"]),
    ("event.dataset", &["event", "dataset"]),
    ("host.name", &["host", "name"]),
    ("source.ip", &["source", "ip"]),
    ("destination.ip", &["destination", "ip"]),
    ("user.name", &["user", "name"]),
    ("network.community_id", &["network", "community_id"]),
    ("log.syslog.appname", &["log", "syslog", "appname"]),
    ("weir.class", &["weir", "class"]),
    ("weir.agent", &["weir", "agent"]),
    ("weir.stream", &["weir", "stream"]),
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use weir_schemas::EventClass;

    #[test]
    fn a_record_splits_back_into_its_envelope_and_the_exact_event_json() {
        let t = chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let mut e = Event::new(EventClass::Syslog, t);
        e.host = Some(weir_schemas::Host {
            name: Some("plc-7".into()),
            ..Default::default()
        });
        e.weir.agent = Some("zone-3".into());
        e.weir.stream = Some("plc-syslog".into());
        e.weir.sequence = Some(42);
        e.event.action = Some("login".into());
        let record = Envelope::record(&e);
        let (env, json) = Envelope::split(&record).unwrap();
        assert_eq!(json, e.to_json().as_slice());
        assert_eq!(env.class, "syslog");
        assert_eq!(env.time_us, 1_700_000_000_123_456);
        assert_eq!(env.host.as_deref(), Some("plc-7"));
        assert_eq!(env.sequence, Some(42));
        assert!(env
            .fields
            .contains(&("event.action".into(), "login".into())));
        assert!(env.fields.contains(&("weir.agent".into(), "zone-3".into())));
        assert_eq!(
            Envelope::split(b"\x00\x00\x00\x09{}"),
            None,
            "length past the end"
        );
    }
}
