/*!
What a sink's disk buffer holds per event: a small envelope of routing facts, then the event's
canonical JSON.

```text
record = envelope length u32 BE | envelope JSON | event JSON
```

The receiver computes the envelope once per event with one borrowed, allocation-light pass over
the event JSON ([`Peek`]); every sink then builds its requests from the envelope and the event
bytes without parsing the event again (Splunk metadata and indexed fields, Kafka keys and
headers, Elasticsearch ids and data streams).

The receiver does not decode and re-encode the events the agent sent either: [`stamp`] writes
the receiver's provenance (`weir.sequence`, `weir.session`, `event.ingested`) into the agent's
canonical JSON as text, where [`Event::write_json`] puts the objects. The result is the same
JSON object the typed path produces (tests compare them).
*/

use std::borrow::Cow;
use std::io::Write as _;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use weir_schemas::{Event, EventClass};

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
    /// `winlog.channel` (Windows events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// `weir.schema_version`.
    pub schema_version: String,
    /// Key ECS fields for Splunk's indexed `fields`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, String)>,
}

/// The fields of an event's JSON that routing needs, borrowed from it where no escape forces a
/// copy; everything else is skipped (validated as JSON, never built).
#[derive(Debug, Deserialize)]
pub struct Peek<'a> {
    #[serde(rename = "@timestamp", borrow)]
    timestamp: Cow<'a, str>,
    #[serde(borrow)]
    event: PeekEvent<'a>,
    #[serde(default, borrow)]
    host: Option<PeekHost<'a>>,
    #[serde(default, borrow)]
    observer: Option<PeekHost<'a>>,
    #[serde(default, borrow)]
    source: Option<PeekIp<'a>>,
    #[serde(default, borrow)]
    destination: Option<PeekIp<'a>>,
    #[serde(default, borrow)]
    user: Option<PeekUser<'a>>,
    #[serde(default, borrow)]
    network: Option<PeekNetwork<'a>>,
    #[serde(default, borrow)]
    log: Option<PeekLog<'a>>,
    #[serde(default, borrow)]
    winlog: Option<PeekWinlog<'a>>,
    #[serde(borrow)]
    weir: PeekWeir<'a>,
}

#[derive(Debug, Deserialize)]
struct PeekWinlog<'a> {
    #[serde(default, borrow)]
    channel: Option<Cow<'a, str>>,
}

/// `event.original` of an event's JSON, borrowed where it can be (for sinks that send the
/// record as received, such as Splunk's `XmlWinEventLog`).
pub fn original(json: &[u8]) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Doc<'a> {
        #[serde(borrow)]
        event: Meta<'a>,
    }
    #[derive(Deserialize)]
    struct Meta<'a> {
        #[serde(default, borrow)]
        original: Option<Cow<'a, str>>,
    }
    serde_json::from_slice::<Doc<'_>>(json).ok()?.event.original
}

#[derive(Debug, Deserialize)]
struct PeekEvent<'a> {
    #[serde(default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    category: Vec<Cow<'a, str>>,
    #[serde(default, borrow)]
    action: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    outcome: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    dataset: Option<Cow<'a, str>>,
    #[serde(default)]
    ingested: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
struct PeekHost<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    hostname: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct PeekIp<'a> {
    #[serde(default, borrow)]
    ip: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct PeekUser<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct PeekNetwork<'a> {
    #[serde(default, borrow)]
    community_id: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct PeekLog<'a> {
    #[serde(default, borrow)]
    syslog: Option<PeekSyslog<'a>>,
}

#[derive(Debug, Deserialize)]
struct PeekSyslog<'a> {
    #[serde(default, borrow)]
    appname: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct PeekWeir<'a> {
    class: EventClass,
    #[serde(default, borrow)]
    schema_version: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    agent: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    stream: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    session: Option<Cow<'a, str>>,
    #[serde(default)]
    sequence: Option<u64>,
    #[serde(default, borrow)]
    input: Option<PeekInput<'a>>,
}

#[derive(Debug, Deserialize)]
struct PeekInput<'a> {
    #[serde(default, borrow)]
    peer_ip: Option<Cow<'a, str>>,
}

impl<'a> Peek<'a> {
    /// Read the routing fields of an event's JSON; an error if it is not an event.
    pub fn of(json: &'a [u8]) -> Result<Peek<'a>, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// `weir.class`.
    pub fn class(&self) -> EventClass {
        self.weir.class
    }

    /// The event already carries receiver-side provenance (`weir.sequence`, `weir.session` or
    /// `event.ingested`), so [`stamp`] would write a key twice.
    pub fn has_provenance(&self) -> bool {
        self.weir.sequence.is_some() || self.weir.session.is_some() || self.event.ingested.is_some()
    }

    /// The envelope, with `sequence` and `session` as the receiver stamps them (the event's
    /// own when `None`).
    pub fn envelope(&self, sequence: Option<u64>, session: Option<&str>) -> Envelope {
        fn s<'b>(v: &'b Option<Cow<'_, str>>) -> Option<&'b str> {
            v.as_deref().filter(|v| !v.is_empty())
        }
        let host_name = self.host.as_ref().and_then(|h| s(&h.name));
        let host = host_name
            .or_else(|| self.host.as_ref().and_then(|h| s(&h.hostname)))
            .or_else(|| self.observer.as_ref().and_then(|o| s(&o.hostname)))
            .or_else(|| self.weir.input.as_ref().and_then(|i| s(&i.peer_ip)))
            .map(str::to_owned);
        let community_id = self.network.as_ref().and_then(|n| s(&n.community_id));
        let class = self.weir.class.as_str();
        let mut fields: Vec<(String, String)> = Vec::with_capacity(8);
        for (name, value) in [
            ("event.kind", s(&self.event.kind)),
            (
                "event.category",
                self.event.category.first().map(|c| c.as_ref()),
            ),
            ("event.action", s(&self.event.action)),
            ("event.outcome", s(&self.event.outcome)),
            ("event.dataset", s(&self.event.dataset)),
            ("host.name", host_name),
            ("source.ip", self.source.as_ref().and_then(|x| s(&x.ip))),
            (
                "destination.ip",
                self.destination.as_ref().and_then(|x| s(&x.ip)),
            ),
            ("user.name", self.user.as_ref().and_then(|u| s(&u.name))),
            ("network.community_id", community_id),
            (
                "log.syslog.appname",
                self.log
                    .as_ref()
                    .and_then(|l| l.syslog.as_ref())
                    .and_then(|x| s(&x.appname)),
            ),
            ("weir.class", Some(class)),
            ("weir.agent", s(&self.weir.agent)),
            ("weir.stream", s(&self.weir.stream)),
        ] {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                fields.push((name.to_owned(), v.to_owned()));
            }
        }
        Envelope {
            class: class.to_owned(),
            time_us: chrono::DateTime::parse_from_rfc3339(&self.timestamp)
                .map_or(0, |t| t.timestamp_micros()),
            host,
            agent: self.weir.agent.as_deref().map(str::to_owned),
            stream: self.weir.stream.as_deref().map(str::to_owned),
            session: session
                .map(str::to_owned)
                .or_else(|| self.weir.session.as_deref().map(str::to_owned)),
            sequence: sequence.or(self.weir.sequence),
            community_id: community_id.map(str::to_owned),
            channel: self
                .winlog
                .as_ref()
                .and_then(|w| s(&w.channel))
                .map(str::to_owned),
            schema_version: self
                .weir
                .schema_version
                .as_deref()
                .unwrap_or_default()
                .to_owned(),
            fields,
        }
    }
}

/// The agent's canonical event JSON with the receiver's provenance written in: `ingested`
/// first in the `event` object, `sequence` and `session` last in the `weir` object (the last
/// member of every event, see [`Event`]). `None` when the JSON does not have that shape, or
/// `peek` says a key would be written twice: decode and re-encode it instead.
///
/// The anchors are found as text, and only in events of this build's schema version (the
/// member order of [`Event`] is part of the schema: reordering it bumps the version, and a
/// test here fails until it does). A quote inside a JSON string is always escaped, so the bytes
/// `"event":{` can only be a key `event` whose value is an object when the quote that opens it
/// is not escaped; the first such is the top-level one (the members before it, `@timestamp`,
/// `ecs`, `message`, `tags` and `labels`, hold no object named `event`), and the top-level
/// `weir` object closes the document (`}}` at its very end). A sender that holds the diode key
/// and still writes something else gets its provenance misplaced in that event, never a
/// crash or a lost event.
pub fn stamp(
    json: &[u8],
    peek: &Peek<'_>,
    sequence: u64,
    session: &str,
    ingested: &str,
) -> Option<Vec<u8>> {
    const EVENT: &[u8] = b"\"event\":{";
    if peek.has_provenance()
        || peek.weir.schema_version.as_deref() != Some(weir_schemas::SCHEMA_VERSION)
        || !json.ends_with(b"}}")
    {
        return None;
    }
    let at = memchr::memmem::find_iter(json, EVENT).find(|&i| !escaped(json, i))? + EVENT.len();
    let tail = json.len() - 2;
    // Whatever the sender wrote, the output stays JSON: no comma into an empty object.
    let next = |from: usize| json.get(from..)?.iter().find(|b| !b.is_ascii_whitespace());
    let before_tail = json.get(..tail)?.iter().rfind(|b| !b.is_ascii_whitespace());
    let event_empty = next(at) == Some(&b'}');
    if before_tail == Some(&b'{') {
        return None;
    }
    let mut out = Vec::with_capacity(json.len() + 96);
    out.extend_from_slice(json.get(..at)?);
    out.extend_from_slice(b"\"ingested\":");
    out.extend_from_slice(serde_json::to_string(ingested).ok()?.as_bytes());
    if !event_empty {
        out.push(b',');
    }
    out.extend_from_slice(json.get(at..tail)?);
    out.extend_from_slice(b",\"sequence\":");
    write!(out, "{sequence}").ok()?;
    out.extend_from_slice(b",\"session\":");
    out.extend_from_slice(serde_json::to_string(session).ok()?.as_bytes());
    out.extend_from_slice(b"}}");
    Some(out)
}

/// The quote at `i` is escaped (preceded by an odd run of backslashes).
fn escaped(json: &[u8], i: usize) -> bool {
    json.get(..i)
        .unwrap_or_default()
        .iter()
        .rev()
        .take_while(|&&b| b == b'\\')
        .count()
        % 2
        == 1
}

impl Envelope {
    /// The envelope of `e` (the receiver's own events; the agent's go through [`Peek`]).
    pub fn of(e: &Event) -> Envelope {
        let json = e.to_json();
        match Peek::of(&json) {
            Ok(p) => p.envelope(None, None),
            // Unreachable for a typed event; routing still works on the class and time.
            Err(_) => Envelope {
                class: e.class().as_str().to_owned(),
                time_us: e.timestamp.timestamp_micros(),
                schema_version: e.weir.schema_version.to_string(),
                ..Envelope::default()
            },
        }
    }

    /// The buffer record for an event's JSON and its envelope.
    pub fn record_of(envelope: &Envelope, json: &[u8]) -> Vec<u8> {
        let env = serde_json::to_vec(envelope).unwrap_or_default();
        let mut out = Vec::with_capacity(4 + env.len() + json.len());
        out.extend_from_slice(&u32::try_from(env.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&env);
        out.extend_from_slice(json);
        out
    }

    /// The buffer record for `e`: envelope and event JSON.
    pub fn record(e: &Event) -> Vec<u8> {
        Envelope::record_of(&Envelope::of(e), &e.to_json())
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

    /// An event with every top-level member set, strings that hold the anchors' bytes.
    fn rich() -> Event {
        let t = chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let mut e = Event::new(EventClass::Syslog, t);
        e.message = Some(r#"login "event":{ by \"weir":{ x}}"#.into());
        e.tags = vec!["a".into()];
        e.labels.insert("event".into(), r#"{"event":{"#.into());
        e.event.action = Some("logon".into());
        e.event.category = vec!["authentication".into()];
        e.log = Some(weir_schemas::Log {
            syslog: Some(weir_schemas::Syslog {
                appname: Some("sshd".into()),
                structured_data: [(
                    "weir".to_string(),
                    [("event".to_string(), weir_schemas::SdValue::One("}}".into()))]
                        .into_iter()
                        .collect(),
                )]
                .into_iter()
                .collect(),
                ..Default::default()
            }),
            ..Default::default()
        });
        e.host = Some(weir_schemas::Host {
            hostname: Some("hmi-2".into()),
            ..Default::default()
        });
        e.source = Some(weir_schemas::Endpoint {
            ip: Some("10.0.0.5".into()),
            ..Default::default()
        });
        e.user = Some(weir_schemas::User {
            name: Some("op\"1".into()),
            ..Default::default()
        });
        e.network = Some(weir_schemas::Network {
            community_id: Some("1:abc=".into()),
            ..Default::default()
        });
        e.error = Some(weir_schemas::ErrorInfo {
            message: Some("x".into()),
            ..Default::default()
        });
        e.weir.agent = Some("zone-3".into());
        e.weir.stream = Some("plc".into());
        e
    }

    #[test]
    fn stamping_the_text_gives_the_object_the_typed_path_gives() {
        let e = rich();
        let json = e.to_json();
        let peek = Peek::of(&json).unwrap();
        assert!(!peek.has_provenance());
        let at: chrono::DateTime<chrono::Utc> = "2026-11-22T08:00:00.5Z".parse().unwrap();
        let ingested = &weir_schemas::format_timestamp(&at);
        let stamped = stamp(&json, &peek, 7, "00000000000000ab", ingested).unwrap();
        let mut typed = e.clone();
        typed.weir.sequence = Some(7);
        typed.weir.session = Some("00000000000000ab".into());
        typed.event.ingested = Some(at);
        let a: serde_json::Value = serde_json::from_slice(&stamped).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&typed.to_json()).unwrap();
        assert_eq!(a, b);
        // Round trip through the typed event too.
        assert_eq!(Event::from_json(&stamped).unwrap(), typed);
        // The envelope from the peek equals the one from the typed event.
        assert_eq!(
            peek.envelope(Some(7), Some("00000000000000ab")),
            Envelope::of(&typed)
        );
        // Already stamped, or another schema version: not stamped again.
        let again = Peek::of(&stamped).unwrap();
        assert!(again.has_provenance());
        assert_eq!(stamp(&stamped, &again, 8, "s", ingested), None);
        let mut old = e.clone();
        old.weir.schema_version = "0.9.0".into();
        let old_json = old.to_json();
        let old_peek = Peek::of(&old_json).unwrap();
        assert_eq!(stamp(&old_json, &old_peek, 1, "s", ingested), None);
    }

    #[test]
    fn a_sender_writing_empty_objects_still_gets_json_back() {
        let json = br#"{"@timestamp":"2026-01-01T00:00:00Z","event":{ },"weir":{"class":"syslog","schema_version":"1.3.0"}}"#;
        let peek = Peek::of(json).unwrap();
        let out = stamp(json, &peek, 3, "s", "2026-01-01T00:00:01Z").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["event"]["ingested"], "2026-01-01T00:00:01Z");
        assert_eq!(v["weir"]["sequence"], 3);
        let empty_last = br#"{"@timestamp":"2026-01-01T00:00:00Z","event":{"kind":"event"},"weir":{"class":"syslog","schema_version":"1.3.0"},"z":{ }}"#;
        let peek = Peek::of(empty_last).unwrap();
        assert_eq!(stamp(empty_last, &peek, 3, "s", "t"), None);
    }

    #[test]
    fn peek_refuses_what_is_not_an_event() {
        for bad in [
            &b"not json"[..],
            b"{}",
            b"[1,2]",
            br#"{"@timestamp":"2026-01-01T00:00:00Z","event":{},"weir":{"class":"nonsense"}}"#,
            br#"{"@timestamp":"2026-01-01T00:00:00Z","event":{"kind":"event"},"weir":{"class":"syslog"}"#,
        ] {
            assert!(Peek::of(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
