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
    /// The envelope of `e` (typed field access: this runs once per event on the receiver).
    pub fn of(e: &Event) -> Envelope {
        let host = e
            .host
            .as_ref()
            .and_then(|h| h.name.clone().or_else(|| h.hostname.clone()))
            .or_else(|| e.observer.as_ref().and_then(|o| o.hostname.clone()))
            .or_else(|| e.weir.input.as_ref().and_then(|i| i.peer_ip.clone()));
        let mut fields: Vec<(String, String)> = Vec::with_capacity(8);
        let mut put = |name: &str, value: Option<&str>| {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                fields.push((name.to_owned(), v.to_owned()));
            }
        };
        put("event.kind", Some(&e.event.kind));
        put(
            "event.category",
            e.event.category.first().map(|c| c.as_ref()),
        );
        put("event.action", e.event.action.as_deref());
        put("event.outcome", e.event.outcome.as_deref());
        put("event.dataset", e.event.dataset.as_deref());
        put("host.name", e.host.as_ref().and_then(|h| h.name.as_deref()));
        put("source.ip", e.source.as_ref().and_then(|x| x.ip.as_deref()));
        put(
            "destination.ip",
            e.destination.as_ref().and_then(|x| x.ip.as_deref()),
        );
        put("user.name", e.user.as_ref().and_then(|u| u.name.as_deref()));
        let community_id = e.network.as_ref().and_then(|n| n.community_id.clone());
        put("network.community_id", community_id.as_deref());
        put(
            "log.syslog.appname",
            e.log
                .as_ref()
                .and_then(|l| l.syslog.as_ref())
                .and_then(|s| s.appname.as_deref()),
        );
        put("weir.class", Some(e.class().as_str()));
        put("weir.agent", e.weir.agent.as_deref());
        put("weir.stream", e.weir.stream.as_deref());
        Envelope {
            class: e.class().as_str().to_owned(),
            time_us: e.timestamp.timestamp_micros(),
            host,
            agent: e.weir.agent.clone(),
            stream: e.weir.stream.clone(),
            session: e.weir.session.clone(),
            sequence: e.weir.sequence,
            community_id,
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
