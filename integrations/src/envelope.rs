/*!
What a sink's disk buffer holds per event: a small envelope of routing facts, then the event's
canonical JSON.

```text
record   = envelope length u32 BE | envelope | event JSON
envelope = 0x02 | time_us i64 LE | present u8 | class s8 | schema_version s8
           | host s16 | agent s16 | stream s16 | session s16   (each only if its bit is set)
           | sequence u64 LE | community_id s16 | channel s16   (likewise)
           | field count u8 | count × field
field    = code u8 (1..=14: a name of FIELD_NAMES) | value s16
         | code | 0x80 (the name's value is the member it mirrors: weir.class = class,
                         weir.agent = agent, weir.stream = stream, host.name = host,
                         network.community_id = community_id)
         | 0x00 | name s8 | value s16      (any other name)
s8       = length u8 | UTF-8 bytes          s16 = length u16 LE | UTF-8 bytes
present  = bit 0 host, 1 agent, 2 stream, 3 session, 4 sequence, 5 community_id, 6 channel
```

Version 1 (first byte 0x01, written before 2026-12-04) has `field = name s8 | value s16`; it is
still read.

The agent computes the envelope from the typed event ([`EnvelopeRef::of_event`]) and sends it
ahead of the event's JSON in the diode record ([`agent_record`]); the receiver completes it with
the diode provenance ([`routed`]) without parsing the JSON. For a record that is plain JSON
(earlier agents) the receiver computes the envelope with one borrowed, allocation-light pass
over the event JSON ([`Peek`]), which a test holds to the agent's on every sample event. Every
sink then reads it back without allocating ([`split_view`], [`EnvelopeRef`]) and builds its
requests from the envelope and the event bytes without parsing the event again (Splunk metadata
and indexed fields, Kafka keys and headers, Elasticsearch ids and data streams). Buffers written
by earlier versions hold the envelope as JSON (its first byte is `{`); they are still read.

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
        Envelope::from(self.view(sequence, session))
    }

    /// The envelope borrowed from the peek (and `session`), as [`envelope`](Self::envelope)
    /// makes it; nothing is allocated.
    pub fn view<'b>(&'b self, sequence: Option<u64>, session: Option<&'b str>) -> EnvelopeRef<'b> {
        fn s<'b>(v: &'b Option<Cow<'_, str>>) -> Option<&'b str> {
            v.as_deref().filter(|v| !v.is_empty())
        }
        let host_name = self.host.as_ref().and_then(|h| s(&h.name));
        let host = host_name
            .or_else(|| self.host.as_ref().and_then(|h| s(&h.hostname)))
            .or_else(|| self.observer.as_ref().and_then(|o| s(&o.hostname)))
            .or_else(|| self.weir.input.as_ref().and_then(|i| s(&i.peer_ip)));
        let community_id = self.network.as_ref().and_then(|n| s(&n.community_id));
        let class = self.weir.class.as_str();
        let mut fields = Fields::default();
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
                fields.push(name, v);
            }
        }
        EnvelopeRef {
            class,
            time_us: chrono::DateTime::parse_from_rfc3339(&self.timestamp)
                .map_or(0, |t| t.timestamp_micros()),
            host,
            agent: self.weir.agent.as_deref(),
            stream: self.weir.stream.as_deref(),
            session: session.or(self.weir.session.as_deref()),
            sequence: sequence.or(self.weir.sequence),
            community_id,
            channel: self.winlog.as_ref().and_then(|w| s(&w.channel)),
            schema_version: self.weir.schema_version.as_deref().unwrap_or_default(),
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
    let mut out = Vec::with_capacity(json.len() + 96);
    stamp_into(&mut out, json, peek, sequence, session, ingested).then_some(out)
}

/// [`stamp`], appending to `out` (a buffer record after its envelope, say); false, with `out`
/// as it was, where [`stamp`] returns `None`.
pub fn stamp_into(
    out: &mut Vec<u8>,
    json: &[u8],
    peek: &Peek<'_>,
    sequence: u64,
    session: &str,
    ingested: &str,
) -> bool {
    let start = out.len();
    let ok = stamp_append(out, json, Some(peek), (sequence, session, ingested)).is_some();
    if !ok {
        out.truncate(start);
    }
    ok
}

/// [`stamp_into`] for the JSON of an agent record ([`routed`]): its envelope has already told
/// the schema version and that the event carries no receiver provenance.
pub fn stamp_routed_into(
    out: &mut Vec<u8>,
    json: &[u8],
    sequence: u64,
    session: &str,
    ingested: &str,
) -> bool {
    let start = out.len();
    let ok = stamp_append(out, json, None, (sequence, session, ingested)).is_some();
    if !ok {
        out.truncate(start);
    }
    ok
}

/// The work of [`stamp_into`]; `None` part way through leaves `out` for it to cut back. With
/// no `peek`, the caller has checked the schema version and the absence of provenance.
fn stamp_append(
    out: &mut Vec<u8>,
    json: &[u8],
    peek: Option<&Peek<'_>>,
    (sequence, session, ingested): (u64, &str, &str),
) -> Option<()> {
    const EVENT: &[u8] = b"\"event\":{";
    if peek.is_some_and(|peek| {
        peek.has_provenance()
            || peek.weir.schema_version.as_deref() != Some(weir_schemas::SCHEMA_VERSION)
    }) || !json.ends_with(b"}}")
    {
        return None;
    }
    // The searcher is built once: building it costs as much as searching one event.
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(EVENT));
    let at = FINDER.find_iter(json).find(|&i| !escaped(json, i))? + EVENT.len();
    let tail = json.len() - 2;
    // Whatever the sender wrote, the output stays JSON: no comma into an empty object.
    let next = |from: usize| json.get(from..)?.iter().find(|b| !b.is_ascii_whitespace());
    let before_tail = json.get(..tail)?.iter().rfind(|b| !b.is_ascii_whitespace());
    let event_empty = next(at) == Some(&b'}');
    if before_tail == Some(&b'{') {
        return None;
    }
    out.reserve(json.len() + 96);
    out.extend_from_slice(json.get(..at)?);
    out.extend_from_slice(b"\"ingested\":");
    serde_json::to_writer(&mut *out, ingested).ok()?;
    if !event_empty {
        out.push(b',');
    }
    out.extend_from_slice(json.get(at..tail)?);
    out.extend_from_slice(b",\"sequence\":");
    write!(out, "{sequence}").ok()?;
    out.extend_from_slice(b",\"session\":");
    serde_json::to_writer(&mut *out, session).ok()?;
    out.extend_from_slice(b"}}");
    Some(())
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
        let mut out = Vec::with_capacity(64 + json.len());
        envelope.view().start_record(&mut out);
        out.extend_from_slice(json);
        out
    }

    /// The buffer record for `e`: envelope and event JSON.
    pub fn record(e: &Event) -> Vec<u8> {
        Envelope::record_of(&Envelope::of(e), &e.to_json())
    }

    /// Split a buffer record into its envelope and the event JSON bytes.
    pub fn split(record: &[u8]) -> Option<(Envelope, &[u8])> {
        let (view, json) = split_view(record)?;
        Some((Envelope::from(view.get()), json))
    }

    /// The envelope borrowed: what the sinks read.
    pub fn view(&self) -> EnvelopeRef<'_> {
        let mut fields = Fields::default();
        for (k, v) in &self.fields {
            fields.push(k, v);
        }
        EnvelopeRef {
            class: &self.class,
            time_us: self.time_us,
            host: self.host.as_deref(),
            agent: self.agent.as_deref(),
            stream: self.stream.as_deref(),
            session: self.session.as_deref(),
            sequence: self.sequence,
            community_id: self.community_id.as_deref(),
            channel: self.channel.as_deref(),
            schema_version: &self.schema_version,
            fields,
        }
    }
}

impl From<EnvelopeRef<'_>> for Envelope {
    fn from(e: EnvelopeRef<'_>) -> Envelope {
        let own = |v: Option<&str>| v.map(str::to_owned);
        Envelope {
            class: e.class.to_owned(),
            time_us: e.time_us,
            host: own(e.host),
            agent: own(e.agent),
            stream: own(e.stream),
            session: own(e.session),
            sequence: e.sequence,
            community_id: own(e.community_id),
            channel: own(e.channel),
            schema_version: e.schema_version.to_owned(),
            fields: e
                .fields
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }
}

/// The most indexed fields an envelope carries ([`Peek`] makes at most 14).
pub const MAX_FIELDS: usize = 16;

/// An envelope's indexed fields, in order, without allocating. Slots past `len` are not part of
/// it (a reused envelope may hold an earlier record's there), so equality looks at `len` only.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fields<'a> {
    len: u8,
    items: [(&'a str, &'a str); MAX_FIELDS],
}

impl<'a> Fields<'a> {
    /// Add a field; false (and nothing added) when [`MAX_FIELDS`] are there.
    pub fn push(&mut self, name: &'a str, value: &'a str) -> bool {
        match self.items.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = (name, value);
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// The fields.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.items.iter().take(usize::from(self.len)).copied()
    }

    /// How many.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// None at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl PartialEq for Fields<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for Fields<'_> {}

/// An [`Envelope`] whose strings are borrowed (from a buffer record, a [`Peek`] or an
/// [`Envelope`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are those of `Envelope`
pub struct EnvelopeRef<'a> {
    pub class: &'a str,
    pub time_us: i64,
    pub host: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub stream: Option<&'a str>,
    pub session: Option<&'a str>,
    pub sequence: Option<u64>,
    pub community_id: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub schema_version: &'a str,
    pub fields: Fields<'a>,
}

/// First byte of a binary envelope (a JSON one starts with `{`): version 1, fields by name.
const BINARY_V1: u8 = 1;
/// Version 2: fields by code, mirrored values not repeated.
const BINARY_V2: u8 = 2;

/// The indexed field names an envelope names by code (code = index + 1); [`Peek`] and
/// [`EnvelopeRef::of_event`] make no others.
const FIELD_NAMES: [&str; 14] = [
    "event.kind",
    "event.category",
    "event.action",
    "event.outcome",
    "event.dataset",
    "host.name",
    "source.ip",
    "destination.ip",
    "user.name",
    "network.community_id",
    "log.syslog.appname",
    "weir.class",
    "weir.agent",
    "weir.stream",
];

/// Marks a field whose value is the member it mirrors.
const MIRRORED: u8 = 0x80;

/// The member of `env` the field with `code` mirrors, as it is written (cut to its length
/// field).
fn mirror<'a>(env: &EnvelopeRef<'a>, code: u8) -> Option<&'a str> {
    // By code, not by name: this runs for most fields of every event the sinks read.
    let m = match code {
        MIRROR_CLASS => Some(cut(env.class, usize::from(u8::MAX))),
        MIRROR_AGENT => env.agent,
        MIRROR_STREAM => env.stream,
        MIRROR_HOST => env.host,
        MIRROR_COMMUNITY_ID => env.community_id,
        _ => None,
    }?;
    Some(cut(m, usize::from(u16::MAX)))
}

/// Codes (index in [`FIELD_NAMES`] + 1) of the fields that can mirror a member.
const MIRROR_HOST: u8 = 6;
const MIRROR_COMMUNITY_ID: u8 = 10;
const MIRROR_CLASS: u8 = 12;
const MIRROR_AGENT: u8 = 13;
const MIRROR_STREAM: u8 = 14;

/// What the agent sends through the diode for one event: the buffer record without the
/// receiver's provenance (its envelope length, the envelope, then the canonical JSON), so the
/// receiver routes and stamps the event without parsing its JSON ([`routed`]). An event that
/// already carries receiver provenance, or another schema version, is sent as its JSON alone
/// (the receiver tells the two apart by the first byte: 0 for a record, `{` for JSON).
pub fn agent_record(e: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    if e.weir.sequence.is_none()
        && e.weir.session.is_none()
        && e.event.ingested.is_none()
        && e.weir.schema_version == weir_schemas::SCHEMA_VERSION
    {
        EnvelopeRef::of_event(e).start_record(&mut out);
    }
    e.write_json(&mut out);
    out
}

/// An agent record's envelope, class and JSON, when `record` is one ([`agent_record`]) that the
/// receiver can stamp as it is: this schema version, no provenance yet. `None` for plain JSON
/// (and anything else), which goes through [`Peek`].
pub fn routed(record: &[u8]) -> Option<(EnvelopeRef<'_>, EventClass, &[u8])> {
    if record.first() != Some(&0) {
        return None;
    }
    let (EnvelopeView::Binary(env), json) = split_view(record)? else {
        return None;
    };
    let class = EventClass::ALL
        .into_iter()
        .find(|c| c.as_str() == env.class)?;
    (env.schema_version == weir_schemas::SCHEMA_VERSION
        && env.session.is_none()
        && env.sequence.is_none())
    .then_some((env, class, json))
}

/// Start the buffer record of an agent record that [`routed`] took: its envelope completed with
/// the receiver's `session` and `sequence`. The agent's envelope bytes are copied with the two
/// members spliced in where they belong (after the stream), not decoded and encoded again, so
/// the result decodes to the agent's envelope with those two set. False (nothing written) if
/// `record` is not an agent record without provenance.
pub fn complete_record(out: &mut Vec<u8>, record: &[u8], session: &str, sequence: u64) -> bool {
    let Some(at) = complete_at(record) else {
        return false;
    };
    let (Some(head), Some(rest), Some(&present)) = (
        record.get(4..4 + 9),
        record.get(4 + 10..at.envelope_end),
        record.get(4 + 9),
    ) else {
        return false;
    };
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(head);
    out.push(present | 1 << 3 | 1 << 4);
    let (before, after) = rest.split_at((at.after_stream - (4 + 10)).min(rest.len()));
    out.extend_from_slice(before);
    put16(out, session);
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(after);
    let len = u32::try_from(out.len() - start - 4).unwrap_or(u32::MAX);
    if let Some(prefix) = out.get_mut(start..start + 4) {
        prefix.copy_from_slice(&len.to_be_bytes());
    }
    true
}

/// Where in an agent record its envelope ends and where, in it, the stream member ends.
struct CompleteAt {
    envelope_end: usize,
    after_stream: usize,
}

fn complete_at(record: &[u8]) -> Option<CompleteAt> {
    let len = u32::from_be_bytes(record.get(..4)?.try_into().ok()?) as usize;
    let envelope_end = 4usize.checked_add(len)?;
    let env = record.get(4..envelope_end)?;
    if !matches!(env.first(), Some(&BINARY_V1 | &BINARY_V2)) {
        return None;
    }
    let present = *env.get(9)?;
    if present & (1 << 3 | 1 << 4 | 0x80) != 0 {
        return None; // session or sequence already there, or not an envelope
    }
    let mut at = 10;
    for _ in 0..2 {
        at += 1 + usize::from(*env.get(at)?); // class, schema version
    }
    for bit in 0..3 {
        if present & (1 << bit) != 0 {
            // host, agent, stream
            at += 2 + usize::from(u16::from_le_bytes(env.get(at..at + 2)?.try_into().ok()?));
        }
    }
    (at <= env.len()).then_some(CompleteAt {
        envelope_end,
        after_stream: 4 + at,
    })
}

/// The event JSON of a diode record: what follows the envelope of an agent record (whatever
/// its schema version), else all of it.
pub fn record_json(record: &[u8]) -> &[u8] {
    if record.first() == Some(&0) {
        if let Some((_, json)) = split_view(record) {
            return json;
        }
    }
    record
}

impl<'a> EnvelopeRef<'a> {
    /// The envelope of a typed event: what [`Peek::view`] reads from the event's JSON (a test
    /// compares the two on every sample event).
    pub fn of_event(e: &'a Event) -> EnvelopeRef<'a> {
        fn s(v: Option<&str>) -> Option<&str> {
            v.filter(|v| !v.is_empty())
        }
        let host_name = s(e.host.as_ref().and_then(|h| h.name.as_deref()));
        let host = host_name
            .or_else(|| s(e.host.as_ref().and_then(|h| h.hostname.as_deref())))
            .or_else(|| s(e.observer.as_ref().and_then(|o| o.hostname.as_deref())))
            .or_else(|| s(e.weir.input.as_ref().and_then(|i| i.peer_ip.as_deref())));
        let community_id = s(e.network.as_ref().and_then(|n| n.community_id.as_deref()));
        let class = e.weir.class.as_str();
        let mut fields = Fields::default();
        for (name, value) in [
            ("event.kind", Some(e.event.kind.as_ref())),
            (
                "event.category",
                e.event.category.first().map(|c| c.as_ref()),
            ),
            ("event.action", e.event.action.as_deref()),
            ("event.outcome", e.event.outcome.as_deref()),
            ("event.dataset", e.event.dataset.as_deref()),
            ("host.name", host_name),
            ("source.ip", e.source.as_ref().and_then(|x| x.ip.as_deref())),
            (
                "destination.ip",
                e.destination.as_ref().and_then(|x| x.ip.as_deref()),
            ),
            ("user.name", e.user.as_ref().and_then(|u| u.name.as_deref())),
            ("network.community_id", community_id),
            (
                "log.syslog.appname",
                e.log
                    .as_ref()
                    .and_then(|l| l.syslog.as_ref())
                    .and_then(|x| x.appname.as_deref()),
            ),
            ("weir.class", Some(class)),
            ("weir.agent", e.weir.agent.as_deref()),
            ("weir.stream", e.weir.stream.as_deref()),
        ] {
            if let Some(v) = s(value) {
                fields.push(name, v);
            }
        }
        EnvelopeRef {
            class,
            time_us: e.timestamp.timestamp_micros(),
            host,
            agent: e.weir.agent.as_deref(),
            stream: e.weir.stream.as_deref(),
            session: e.weir.session.as_deref(),
            sequence: e.weir.sequence,
            community_id,
            channel: s(e.winlog.as_ref().and_then(|w| w.channel.as_deref())),
            schema_version: &e.weir.schema_version,
            fields,
        }
    }
}

impl EnvelopeRef<'_> {
    /// Start a buffer record: the envelope's length and the envelope; the event JSON follows.
    pub fn start_record(&self, out: &mut Vec<u8>) {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        self.encode(out);
        let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
        if let Some(prefix) = out.get_mut(at..at + 4) {
            prefix.copy_from_slice(&len.to_be_bytes());
        }
    }

    /// The binary envelope (see the module documentation). Strings longer than their length
    /// field are cut at a character boundary; there are never more than [`MAX_FIELDS`] fields.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(BINARY_V2);
        out.extend_from_slice(&self.time_us.to_le_bytes());
        let present = [
            self.host.is_some(),
            self.agent.is_some(),
            self.stream.is_some(),
            self.session.is_some(),
            self.sequence.is_some(),
            self.community_id.is_some(),
            self.channel.is_some(),
        ]
        .iter()
        .enumerate()
        .fold(0u8, |acc, (bit, &on)| acc | (u8::from(on) << bit));
        out.push(present);
        put8(out, self.class);
        put8(out, self.schema_version);
        for v in [self.host, self.agent, self.stream, self.session]
            .into_iter()
            .flatten()
        {
            put16(out, v);
        }
        if let Some(s) = self.sequence {
            out.extend_from_slice(&s.to_le_bytes());
        }
        for v in [self.community_id, self.channel].into_iter().flatten() {
            put16(out, v);
        }
        out.push(self.fields.len);
        for (k, v) in self.fields.iter() {
            match FIELD_NAMES.iter().position(|n| *n == k) {
                Some(i) => {
                    let code = i as u8 + 1;
                    if mirror(self, code) == Some(cut(v, usize::from(u16::MAX))) {
                        out.push(code | MIRRORED);
                    } else {
                        out.push(code);
                        put16(out, v);
                    }
                }
                None => {
                    out.push(0);
                    put8(out, k);
                    put16(out, v);
                }
            }
        }
    }

    /// Read a binary envelope (all of `bytes`); `None` if it is not one.
    pub fn decode<'a>(bytes: &'a [u8]) -> Option<EnvelopeRef<'a>> {
        let mut env = EnvelopeRef::default();
        EnvelopeRef::decode_into(bytes, &mut env).map(|()| env)
    }

    /// [`decode`](Self::decode) into `env` (a sink reuses one for every record: the envelope is
    /// not copied on its way out). On `None`, `env` holds whatever was read before the fault.
    pub fn decode_into<'a>(bytes: &'a [u8], env: &mut EnvelopeRef<'a>) -> Option<()> {
        let mut r = Cursor(bytes);
        let version = r.u8()?;
        if version != BINARY_V1 && version != BINARY_V2 {
            return None;
        }
        let time_us = i64::from_le_bytes(r.take(8)?.try_into().ok()?);
        let present = r.u8()?;
        if present & 0x80 != 0 {
            return None;
        }
        let bit = |b: u8| present & (1 << b) != 0;
        let opt = |b: u8, r: &mut Cursor<'a>| -> Option<Option<&'a str>> {
            if bit(b) {
                r.str16().map(Some)
            } else {
                Some(None)
            }
        };
        env.time_us = time_us;
        env.class = r.str8()?;
        env.schema_version = r.str8()?;
        env.host = opt(0, &mut r)?;
        env.agent = opt(1, &mut r)?;
        env.stream = opt(2, &mut r)?;
        env.session = opt(3, &mut r)?;
        env.sequence = match bit(4) {
            true => Some(u64::from_le_bytes(r.take(8)?.try_into().ok()?)),
            false => None,
        };
        env.community_id = opt(5, &mut r)?;
        env.channel = opt(6, &mut r)?;
        let count = r.u8()?;
        env.fields.len = 0;
        for _ in 0..count {
            let (k, v) = if version == BINARY_V1 {
                (r.str8()?, r.str16()?)
            } else {
                let code = r.u8()?;
                match (code & !MIRRORED, code & MIRRORED != 0) {
                    (0, false) => (r.str8()?, r.str16()?),
                    (0, true) => return None,
                    (c, mirrored) => {
                        let name = *FIELD_NAMES.get(usize::from(c) - 1)?;
                        let value = if mirrored {
                            mirror(env, c)?
                        } else {
                            r.str16()?
                        };
                        (name, value)
                    }
                }
            };
            if !env.fields.push(k, v) {
                return None;
            }
        }
        r.0.is_empty().then_some(())
    }
}

fn put8(out: &mut Vec<u8>, s: &str) {
    let s = cut(s, usize::from(u8::MAX));
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

fn put16(out: &mut Vec<u8>, s: &str) {
    let s = cut(s, usize::from(u16::MAX));
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn str8(&mut self) -> Option<&'a str> {
        let n = usize::from(self.u8()?);
        std::str::from_utf8(self.take(n)?).ok()
    }
    fn str16(&mut self) -> Option<&'a str> {
        let n = usize::from(u16::from_le_bytes(self.take(2)?.try_into().ok()?));
        std::str::from_utf8(self.take(n)?).ok()
    }
}

/// A buffer record's envelope as read: borrowed from a binary envelope, or decoded from the
/// JSON envelope of a buffer that an earlier version wrote.
#[derive(Clone, Debug)]
// The borrowed variant is the one every current record takes: boxing it would allocate per
// event; the view lives on the stack while one event is encoded.
#[allow(clippy::large_enum_variant)]
pub enum EnvelopeView<'a> {
    /// A binary envelope, borrowed.
    Binary(EnvelopeRef<'a>),
    /// A JSON envelope (buffers written before the binary envelope).
    Json(Box<Envelope>),
}

impl EnvelopeView<'_> {
    /// The envelope.
    pub fn get(&self) -> EnvelopeRef<'_> {
        match self {
            EnvelopeView::Binary(e) => *e,
            EnvelopeView::Json(e) => e.view(),
        }
    }
}

/// [`split_view`] for a sink's loop over a batch: a binary envelope is decoded into `env` (one
/// reused for every record, so the envelope is not copied on its way out), a JSON one (buffers
/// of earlier versions) comes back owned. The event JSON bytes either way.
pub fn split_into<'a>(
    record: &'a [u8],
    env: &mut EnvelopeRef<'a>,
) -> Option<(Option<Box<Envelope>>, &'a [u8])> {
    let len = u32::from_be_bytes(record.get(..4)?.try_into().ok()?) as usize;
    let bytes = record.get(4..4usize.checked_add(len)?)?;
    let json = record.get(4 + len..)?;
    if bytes.first() == Some(&b'{') {
        return Some((Some(Box::new(serde_json::from_slice(bytes).ok()?)), json));
    }
    EnvelopeRef::decode_into(bytes, env)?;
    Some((None, json))
}

/// Split a buffer record into its envelope and the event JSON bytes, borrowing both.
pub fn split_view(record: &[u8]) -> Option<(EnvelopeView<'_>, &[u8])> {
    let len = u32::from_be_bytes(record.get(..4)?.try_into().ok()?) as usize;
    let env = record.get(4..4usize.checked_add(len)?)?;
    let json = record.get(4 + len..)?;
    let view = match env.first() {
        Some(b'{') => EnvelopeView::Json(Box::new(serde_json::from_slice(env).ok()?)),
        _ => EnvelopeView::Binary(EnvelopeRef::decode(env)?),
    };
    Some((view, json))
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

    /// Buffers written before the binary envelope hold it as JSON: they are still read, to
    /// the same envelope.
    #[test]
    fn a_record_with_the_earlier_json_envelope_still_splits() {
        let e = rich();
        let env = Envelope::of(&e);
        let json = e.to_json();
        let legacy_env = serde_json::to_vec(&env).unwrap();
        let mut legacy = (legacy_env.len() as u32).to_be_bytes().to_vec();
        legacy.extend_from_slice(&legacy_env);
        legacy.extend_from_slice(&json);
        let (back, rest) = Envelope::split(&legacy).unwrap();
        assert_eq!(back, env);
        assert_eq!(rest, json.as_slice());
        let (view, rest) = split_view(&legacy).unwrap();
        assert!(matches!(view, EnvelopeView::Json(_)));
        assert_eq!(view.get(), env.view());
        assert_eq!(rest, json.as_slice());
        // The binary record of the same event gives the same envelope and JSON.
        let binary = Envelope::record_of(&env, &json);
        assert!(binary.len() < legacy.len());
        let (view, rest) = split_view(&binary).unwrap();
        assert!(matches!(view, EnvelopeView::Binary(_)));
        assert_eq!(Envelope::from(view.get()), env);
        assert_eq!(rest, json.as_slice());
        // A sink's reused envelope reads each record as split_view does, whatever the record
        // before it left in its slots (a record with more fields first, then fewer).
        let few = Envelope {
            fields: vec![("event.kind".into(), "event".into())],
            ..env.clone()
        };
        let few_record = Envelope::record_of(&few, &json);
        let mut reused = EnvelopeRef::default();
        for record in [&binary, &few_record, &legacy, &binary, &few_record] {
            let (legacy_env, rest) = split_into(record, &mut reused).unwrap();
            let (view, want_rest) = split_view(record).unwrap();
            let got = match &legacy_env {
                Some(owned) => owned.view(),
                None => reused,
            };
            assert_eq!(got, view.get());
            assert_eq!(rest, want_rest);
        }
        assert!(split_into(&binary[..binary.len() - json.len() - 1], &mut reused).is_none());
    }

    /// Every field survives the binary form exactly, absent ones stay absent, and a damaged
    /// envelope is refused rather than misread.
    /// An envelope with every member set and as many fields as it holds.
    fn full() -> Envelope {
        Envelope {
            class: "windows".into(),
            time_us: -1_234_567,
            host: Some("hmi-2".into()),
            agent: Some("zone-3".into()),
            stream: Some("wec".into()),
            session: Some("00000000000000ab".into()),
            sequence: Some(u64::MAX),
            community_id: Some("1:abc=".into()),
            channel: Some("Security".into()),
            schema_version: "1.3.0".into(),
            fields: (0..MAX_FIELDS)
                .map(|i| (format!("f{i}"), format!("välue \"{i}\"")))
                .collect(),
        }
    }

    #[test]
    fn the_binary_envelope_round_trips_and_refuses_damage() {
        let full = full();
        let bare = Envelope {
            class: "syslog".into(),
            ..Envelope::default()
        };
        // Known names go by code; values equal to the member they mirror are not repeated.
        let f = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let known = Envelope {
            fields: vec![
                f("event.kind", "event"),
                f("weir.class", "windows"),
                f("host.name", "hmi-2"),
                f("weir.agent", "not the agent"),
                f("weir.stream", "wec"),
                f("network.community_id", "1:abc="),
                f("custom.name", "x"),
                f("user.name", ""),
            ],
            ..full.clone()
        };
        let mut v2 = Vec::new();
        known.view().encode(&mut v2);
        assert_eq!(v2[0], BINARY_V2);
        for env in [&full, &bare, &known] {
            let mut bytes = Vec::new();
            env.view().encode(&mut bytes);
            assert_eq!(Envelope::from(EnvelopeRef::decode(&bytes).unwrap()), *env);
            // Every truncation, and a trailing byte, is refused.
            for n in 0..bytes.len() {
                assert_eq!(EnvelopeRef::decode(&bytes[..n]), None, "cut at {n}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(EnvelopeRef::decode(&longer), None);
        }
        // A string too long for its length field is cut at a character boundary.
        let long = Envelope {
            class: "é".repeat(200),
            host: Some("ü".repeat(40_000)),
            ..Envelope::default()
        };
        let mut bytes = Vec::new();
        long.view().encode(&mut bytes);
        let back = EnvelopeRef::decode(&bytes).unwrap();
        assert_eq!(back.class, "é".repeat(127));
        assert_eq!(back.host, Some("ü".repeat(32_767).as_str()));
        // More fields than the envelope holds are not written.
        let mut many = full.clone();
        many.fields.push(("extra".into(), "x".into()));
        assert_eq!(many.view().fields.len(), MAX_FIELDS);
        // Invalid UTF-8 in a string, and an unknown first byte.
        let mut bad = Vec::new();
        bare.view().encode(&mut bad);
        let class_at = 1 + 8 + 1 + 1;
        bad[class_at] = 0xff;
        assert_eq!(EnvelopeRef::decode(&bad), None);
        assert_eq!(EnvelopeRef::decode(&[2, 0, 0]), None);
        assert_eq!(EnvelopeRef::decode(&[3, 0, 0]), None);
        // The fields exactly: codes, mirrored values left out, an unknown name spelt out.
        let mut want = vec![8, 1, 5, 0];
        want.extend_from_slice(b"event");
        want.extend_from_slice(&[12 | MIRRORED, 6 | MIRRORED, 13, 13, 0]);
        want.extend_from_slice(b"not the agent");
        want.extend_from_slice(&[14 | MIRRORED, 10 | MIRRORED, 0, 11]);
        want.extend_from_slice(b"custom.name");
        want.extend_from_slice(&[1, 0, b'x', 9, 0, 0]);
        assert!(v2.ends_with(&want), "{v2:?}");
        // A mirrored code with no member to mirror, a code past the names, a bare 0x80.
        for bad_field in [[13 | MIRRORED], [15], [MIRRORED]] {
            let mut b = Vec::new();
            bare.view().encode(&mut b);
            *b.last_mut().unwrap() = 1;
            b.extend_from_slice(&bad_field);
            assert_eq!(EnvelopeRef::decode(&b), None, "{bad_field:?}");
        }
        let mut unknown_bit = Vec::new();
        bare.view().encode(&mut unknown_bit);
        unknown_bit[9] |= 0x80;
        assert_eq!(EnvelopeRef::decode(&unknown_bit), None);
        assert!(split_view(b"\x00\x00\x00\x03{x}").is_none());
    }

    /// The receiver completes an agent's envelope by splicing in its session and sequence: the
    /// result decodes to the agent's envelope with those two set and, for a version 2 envelope,
    /// is byte for byte what encoding the completed envelope writes; whatever is not an agent
    /// envelope without provenance is refused with nothing written.
    #[test]
    fn an_agent_envelope_completed_in_place_equals_the_one_encoded_again() {
        // As the agent sends it: no session or sequence yet.
        let full = Envelope {
            session: None,
            sequence: None,
            fields: vec![
                ("host.name".into(), "hmi-2".into()),
                ("weir.stream".into(), "wec".into()),
                ("custom".into(), "välue".into()),
            ],
            ..full()
        };
        let mut shapes = vec![full.clone()];
        for mask in 0..8u8 {
            shapes.push(Envelope {
                host: (mask & 1 != 0).then(|| "ü".repeat(300)),
                agent: (mask & 2 != 0).then(|| "a".into()),
                stream: (mask & 4 != 0).then(String::new),
                community_id: None,
                channel: None,
                ..full.clone()
            });
        }
        let json = br#"{"weir":{"class":"windows"}}"#;
        for env in &shapes {
            let mut record = Vec::new();
            env.view().start_record(&mut record);
            record.extend_from_slice(json);
            let mut ours = b"before".to_vec();
            assert!(complete_record(&mut ours, &record, "00000000000000ab", 77));
            let done = Envelope {
                session: Some("00000000000000ab".into()),
                sequence: Some(77),
                ..env.clone()
            };
            let mut again = b"before".to_vec();
            done.view().start_record(&mut again);
            assert_eq!(ours, again, "{env:?}");
            ours.extend_from_slice(json);
            let (view, body) = split_view(&ours[6..]).unwrap();
            assert_eq!(
                (Envelope::from(view.get()), body),
                (done.clone(), &json[..])
            );
            // Already completed, cut short anywhere, or plain JSON: refused, nothing written.
            let mut out = Vec::new();
            assert!(!complete_record(&mut out, &again[6..], "s", 1));
            for n in 0..record.len() - json.len() {
                assert!(
                    !complete_record(&mut out, &record[..n], "s", 1),
                    "cut at {n}"
                );
            }
            assert!(!complete_record(&mut out, json, "s", 1));
            assert!(out.is_empty());
        }
        // A version 1 envelope (fields by name) is completed in its own version.
        let mut v1 = vec![BINARY_V1];
        v1.extend_from_slice(&42i64.to_le_bytes());
        v1.push(0b0000_0101); // host, stream
        put8(&mut v1, "syslog");
        put8(&mut v1, "1.3.0");
        put16(&mut v1, "plc-1");
        put16(&mut v1, "s1");
        v1.push(1);
        put8(&mut v1, "host.name");
        put16(&mut v1, "plc-1");
        let mut record = (v1.len() as u32).to_be_bytes().to_vec();
        record.extend_from_slice(&v1);
        let mut ours = Vec::new();
        assert!(complete_record(&mut ours, &record, "s", 9));
        assert_eq!(ours[4], BINARY_V1);
        let (view, _) = split_view(&ours).unwrap();
        let mut want = EnvelopeRef::decode(&v1).unwrap();
        want.session = Some("s");
        want.sequence = Some(9);
        assert_eq!(view.get(), want);
        // The mirror codes name the fields they say.
        for (code, name) in [
            (MIRROR_HOST, "host.name"),
            (MIRROR_COMMUNITY_ID, "network.community_id"),
            (MIRROR_CLASS, "weir.class"),
            (MIRROR_AGENT, "weir.agent"),
            (MIRROR_STREAM, "weir.stream"),
        ] {
            assert_eq!(FIELD_NAMES[usize::from(code) - 1], name);
        }
    }

    /// Buffers written before version 2 (fields by name) are still read.
    #[test]
    fn a_version_1_envelope_still_decodes() {
        let mut v1 = vec![BINARY_V1];
        v1.extend_from_slice(&42i64.to_le_bytes());
        v1.push(0b0000_0001); // host
        put8(&mut v1, "syslog");
        put8(&mut v1, "1.3.0");
        put16(&mut v1, "plc-1");
        v1.push(2);
        for (k, v) in [("weir.class", "syslog"), ("host.name", "plc-1")] {
            put8(&mut v1, k);
            put16(&mut v1, v);
        }
        let e = EnvelopeRef::decode(&v1).unwrap();
        assert_eq!((e.class, e.time_us, e.host), ("syslog", 42, Some("plc-1")));
        let fields: Vec<_> = e.fields.iter().collect();
        assert_eq!(fields, [("weir.class", "syslog"), ("host.name", "plc-1")]);
        // Written again, it is version 2 and reads back the same.
        let mut v2 = Vec::new();
        e.encode(&mut v2);
        assert!(v2[0] == BINARY_V2 && v2.len() < v1.len());
        assert_eq!(EnvelopeRef::decode(&v2).unwrap(), e);
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
        assert_eq!(
            peek.view(Some(7), Some("00000000000000ab")),
            Envelope::of(&typed).view()
        );
        // Stamping into a buffer that already holds an envelope appends the same bytes.
        let mut record = vec![1, 2, 3];
        assert!(stamp_into(
            &mut record,
            &json,
            &peek,
            7,
            "00000000000000ab",
            ingested
        ));
        assert_eq!(&record[3..], stamped.as_slice());
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
