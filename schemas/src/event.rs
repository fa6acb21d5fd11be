//! The [`Event`] struct and its ECS field sets.
//!
//! Every optional field set is `Option<…>` and skipped when absent, so the JSON carries only what
//! a source actually knew. Vocabulary values (`event.kind`, `event.category`, …) are
//! `Cow<'static, str>` so that parsers can fill them without allocating.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A vocabulary string: static when a parser fills it, owned after deserialisation.
pub type Word = Cow<'static, str>;

/// The class of an event. It drives routing: Splunk sourcetypes, Kafka topics and Elasticsearch
/// data streams are chosen by class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventClass {
    /// A syslog message (RFC 3164 / RFC 5424 or anything that arrived on a syslog input).
    Syslog,
    /// A Windows event log record.
    Windows,
    /// A network flow record from the SPAN port.
    Flow,
    /// An industrial protocol transaction (Modbus, DNP3, S7comm, ...).
    Ot,
    /// An asset inventory observation.
    Asset,
    /// A derived detection (new asset, write to PLC, program download, ...).
    Notable,
    /// Weir's own self-monitoring: heartbeats, gaps, drops, health.
    Weir,
}

impl EventClass {
    /// Every class, in a fixed order (used for summaries and routing tables).
    pub const ALL: [EventClass; 7] = [
        EventClass::Syslog,
        EventClass::Windows,
        EventClass::Flow,
        EventClass::Ot,
        EventClass::Asset,
        EventClass::Notable,
        EventClass::Weir,
    ];

    /// The class name as it appears in `weir.class`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventClass::Syslog => "syslog",
            EventClass::Windows => "windows",
            EventClass::Flow => "flow",
            EventClass::Ot => "ot",
            EventClass::Asset => "asset",
            EventClass::Notable => "notable",
            EventClass::Weir => "weir",
        }
    }
}

impl fmt::Display for EventClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One normalised event, ECS-aligned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `@timestamp`: when the event happened, as stated by its source (or when it was received,
    /// if the source stated nothing usable).
    #[serde(rename = "@timestamp", with = "ts")]
    pub timestamp: DateTime<Utc>,
    /// `ecs.*`.
    #[serde(default)]
    pub ecs: Ecs,
    /// `message`: the human-readable text of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `tags`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Word>,
    /// `labels.*`: custom key/value pairs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `event.*`.
    pub event: EventMeta,
    /// `log.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<Log>,
    /// `host.*`: the host the event is about / came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Host>,
    /// `observer.*`: the device that observed the event (firewall, switch, sensor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observer: Option<Observer>,
    /// `process.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    /// `source.*`: the initiator of a network connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Endpoint>,
    /// `destination.*`: the responder of a network connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Endpoint>,
    /// `network.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// `user.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    /// `related.*`: every IP, user and host the event names, for pivoting.
    #[serde(default, skip_serializing_if = "Related::is_empty")]
    pub related: Related,
    /// `error.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// `group.*`: the group an account-management event is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Group>,
    /// `file.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<Box<File>>,
    /// `registry.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<Box<Registry>>,
    /// `dns.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Box<Dns>>,
    /// `service.*`: the service an event is about (a Windows service installed or changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    /// `winlog.*`: Windows event detail, named as Winlogbeat names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winlog: Option<Box<Winlog>>,
    /// `powershell.*`: PowerShell engine and script-block detail, named as Winlogbeat names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub powershell: Option<Box<PowerShell>>,
    /// `flow.*`: flow-record detail ECS has no field for (Zeek-style state and history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<Box<FlowInfo>>,
    /// `ot.*`: industrial protocol detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ot: Option<Box<Ot>>,
    /// `device.*`: what a device says it is (vendor, model, serial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Box<Device>>,
    /// `asset.*`: an asset inventory observation (roles, first and last seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<Box<AssetInfo>>,
    /// `tls.*`: the TLS session the event arrived over (Windows Event Forwarding: the client
    /// certificate that authenticated the sender).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Box<Tls>>,
    /// `weir.*`: provenance and Weir's own records. Always the last member of the JSON object
    /// (the receiver writes its provenance into it as text).
    pub weir: Weir,
}

impl Event {
    /// A new event of `class` at `timestamp` with `event.kind = "event"` and nothing else set.
    pub fn new(class: EventClass, timestamp: DateTime<Utc>) -> Event {
        Event {
            timestamp,
            ecs: Ecs::default(),
            message: None,
            tags: Vec::new(),
            labels: BTreeMap::new(),
            event: EventMeta::default(),
            log: None,
            host: None,
            observer: None,
            process: None,
            source: None,
            destination: None,
            network: None,
            user: None,
            related: Related::default(),
            error: None,
            group: None,
            file: None,
            registry: None,
            dns: None,
            service: None,
            winlog: None,
            powershell: None,
            flow: None,
            ot: None,
            device: None,
            asset: None,
            tls: None,
            weir: Weir::new(class),
        }
    }

    /// The event's class (`weir.class`).
    pub fn class(&self) -> EventClass {
        self.weir.class
    }

    /// Serialise to the canonical JSON form (one line, no trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.write_json(&mut out);
        out
    }

    /// Append the canonical JSON form to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Serialising this type cannot fail: every map key is a string and no custom
        // serialiser returns an error. A failure would be a bug in this crate. The writer is
        // serde_json's compact form byte for byte, with a faster escaper (`crate::json`).
        if let Err(error) = crate::json::to_writer(out, self) {
            debug_assert!(false, "event serialisation failed: {error}");
        }
    }

    /// Parse the canonical JSON form.
    pub fn from_json(bytes: &[u8]) -> Result<Event, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Add `ip` to `related.ip` unless it is already there.
    pub fn relate_ip(&mut self, ip: &str) {
        push_unique(&mut self.related.ip, ip);
    }

    /// Add `host` to `related.hosts` unless it is already there.
    pub fn relate_host(&mut self, host: &str) {
        push_unique(&mut self.related.hosts, host);
    }

    /// Add `user` to `related.user` unless it is already there.
    pub fn relate_user(&mut self, user: &str) {
        push_unique(&mut self.related.user, user);
    }

    /// `weir.input`: the input `kind` that read the event and, if it came over the network,
    /// the sender (also in `related.ip`).
    pub fn set_input(&mut self, kind: &'static str, peer: Option<std::net::SocketAddr>) {
        let mut input = Input {
            kind: Cow::Borrowed(kind),
            peer_ip: None,
            peer_port: None,
        };
        if let Some(peer) = peer {
            let ip = peer.ip().to_canonical().to_string();
            self.relate_ip(&ip);
            input.peer_ip = Some(ip);
            input.peer_port = Some(peer.port());
        }
        self.weir.input = Some(input);
    }

    /// Add `hash` to `related.hash` unless it is already there.
    pub fn relate_hash(&mut self, hash: &str) {
        push_unique(&mut self.related.hash, hash);
    }
}

fn push_unique(list: &mut Vec<String>, value: &str) {
    if !list.iter().any(|v| v == value) {
        list.push(value.to_owned());
    }
}

/// `ecs.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ecs {
    /// `ecs.version`.
    pub version: Word,
}

impl Default for Ecs {
    fn default() -> Self {
        Ecs {
            version: Cow::Borrowed(crate::ECS_VERSION),
        }
    }
}

/// `event.*`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventMeta {
    /// `event.kind`: `event`, `alert`, `metric`, `state`, `pipeline_error`, ...
    #[serde(default = "default_kind")]
    pub kind: Word,
    /// `event.category` (array).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub category: Vec<Word>,
    /// `event.type` (array).
    #[serde(default, rename = "type", skip_serializing_if = "Vec::is_empty")]
    pub kind_type: Vec<Word>,
    /// `event.outcome`: `success`, `failure` or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Word>,
    /// `event.action`: what happened, in the source's or Weir's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// `event.code`: the source's identifier of the event (Windows event id, ASA message id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// `event.dataset`: `weir.syslog`, `weir.windows`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<Word>,
    /// `event.module`: `weir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<Word>,
    /// `event.provider`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// `event.severity`: the source's numeric severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<i64>,
    /// `event.timezone`: the zone used to read a timestamp that had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// `event.created`: when Weir first read the event.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "ts_opt")]
    pub created: Option<DateTime<Utc>>,
    /// `event.ingested`: when the IT-side receiver decoded it.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "ts_opt")]
    pub ingested: Option<DateTime<Utc>>,
    /// `event.reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `event.start`: when the activity began (a flow's first packet).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "ts_opt")]
    pub start: Option<DateTime<Utc>>,
    /// `event.end`: when the activity ended (a flow's last packet).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "ts_opt")]
    pub end: Option<DateTime<Utc>>,
    /// `event.duration`: `end - start` in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    /// `event.original`: the raw input, unless configured off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
}

impl Default for EventMeta {
    fn default() -> Self {
        EventMeta {
            kind: default_kind(),
            category: Vec::new(),
            kind_type: Vec::new(),
            outcome: None,
            action: None,
            code: None,
            dataset: None,
            module: None,
            provider: None,
            severity: None,
            timezone: None,
            created: None,
            ingested: None,
            reason: None,
            start: None,
            end: None,
            duration: None,
            original: None,
        }
    }
}

fn default_kind() -> Word {
    Cow::Borrowed("event")
}

/// `log.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Log {
    /// `log.level`: the severity name as the source wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Word>,
    /// `log.logger`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logger: Option<String>,
    /// `log.syslog.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog: Option<Syslog>,
}

/// `log.syslog.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Syslog {
    /// `log.syslog.facility.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<CodeName>,
    /// `log.syslog.severity.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<CodeName>,
    /// `log.syslog.priority`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// `log.syslog.version`: `1` for RFC 5424; absent for RFC 3164.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `log.syslog.hostname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `log.syslog.appname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appname: Option<String>,
    /// `log.syslog.procid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procid: Option<String>,
    /// `log.syslog.msgid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
    /// `log.syslog.structured_data`: SD-ID → PARAM-NAME → value (unescaped). A parameter that
    /// occurs more than once in an element becomes an array.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub structured_data: BTreeMap<String, BTreeMap<String, SdValue>>,
}

/// A structured-data parameter value: one string, or several when the name repeats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SdValue {
    /// The parameter occurred once.
    One(String),
    /// The parameter occurred several times, in order.
    Many(Vec<String>),
}

impl SdValue {
    /// Add one more occurrence.
    pub fn push(&mut self, value: String) {
        match self {
            SdValue::One(first) => {
                let first = std::mem::take(first);
                *self = SdValue::Many(vec![first, value]);
            }
            SdValue::Many(values) => values.push(value),
        }
    }
}

/// A numeric code with its name (`log.syslog.facility`, `log.syslog.severity`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodeName {
    /// The numeric code.
    pub code: i64,
    /// Its name.
    pub name: Word,
}

/// `host.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// `host.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `host.hostname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `host.ip` (array).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip: Vec<String>,
    /// `host.mac` (array), upper case and dash-separated as ECS writes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mac: Vec<String>,
    /// `host.os.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<Os>,
}

/// `host.os.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Os {
    /// `host.os.type`: `windows`, `linux`, ...
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Word>,
    /// `host.os.family`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Word>,
    /// `host.os.platform`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Word>,
}

/// `observer.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Observer {
    /// `observer.hostname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// `observer.ip` (array).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip: Vec<String>,
    /// `observer.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `observer.product`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<Word>,
    /// `observer.type`: `firewall`, `switch`, `ids`, ...
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Word>,
    /// `observer.vendor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Word>,
}

/// `process.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Process {
    /// `process.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `process.pid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    /// `process.executable`: the full path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    /// `process.command_line`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line: Option<String>,
    /// `process.working_directory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// `process.entity_id`: a globally unique id (Sysmon's process GUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    /// `process.hash.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Hash>,
    /// `process.pe.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pe: Option<Pe>,
    /// `process.parent.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<ParentProcess>>,
}

/// `process.parent.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParentProcess {
    /// `process.parent.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `process.parent.pid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    /// `process.parent.executable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    /// `process.parent.command_line`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line: Option<String>,
    /// `process.parent.entity_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
}

/// `*.hash.*`: lower-case hex digests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hash {
    /// `*.hash.md5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
    /// `*.hash.sha1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    /// `*.hash.sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `*.hash.sha512`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha512: Option<String>,
}

impl Hash {
    /// True when no digest is set.
    pub fn is_empty(&self) -> bool {
        self.md5.is_none() && self.sha1.is_none() && self.sha256.is_none() && self.sha512.is_none()
    }
}

/// `*.pe.*`: the PE header's version resource and import hash.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pe {
    /// `*.pe.original_file_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_file_name: Option<String>,
    /// `*.pe.company`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// `*.pe.description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `*.pe.product`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// `*.pe.file_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_version: Option<String>,
    /// `*.pe.imphash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imphash: Option<String>,
}

/// `source.*` / `destination.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `*.address`: as the source wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `*.ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// `*.port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `*.mac`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// `*.bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// `*.packets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    /// `*.domain`: the endpoint's name (a Windows workstation name, a queried host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// `network.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// `network.transport`: `tcp`, `udp`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Word>,
    /// `network.protocol`: the application protocol (`modbus`, `syslog`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Word>,
    /// `network.community_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community_id: Option<String>,
    /// `network.direction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Word>,
    /// `network.type`: `ipv4` or `ipv6`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Word>,
    /// `network.iana_number`: the IP protocol number, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iana_number: Option<Word>,
    /// `network.bytes`: both directions' bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// `network.packets`: both directions' packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    /// `network.vlan.*`: the outer VLAN tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<Vlan>,
    /// `network.inner.vlan.*`: the inner tag of a QinQ frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner: Option<InnerVlan>,
}

/// `network.vlan.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Vlan {
    /// `*.vlan.id` (a keyword in ECS).
    pub id: String,
}

/// `network.inner.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InnerVlan {
    /// `network.inner.vlan.*`.
    pub vlan: Vlan,
}

/// `flow.*`: what a flow record knows beyond ECS's `source`/`destination`/`network`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FlowInfo {
    /// `flow.id`: stable for the life of the flow, shared by its interim and final records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `flow.state`: the connection state, with Zeek's `conn_state` codes (`S0`, `SF`, `REJ`,
    /// `RSTO`, `OTH`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Word>,
    /// `flow.history`: Zeek-style history letters (upper case: originator, lower: responder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
    /// `flow.direction_known`: false when the flow started before the sensor saw it (no
    /// handshake), so which side is the client was guessed from the ports.
    pub direction_known: bool,
    /// `flow.final`: false for an interim record of a flow that is still live.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// `flow.source_payload_bytes`: transport payload bytes from the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_payload_bytes: Option<u64>,
    /// `flow.destination_payload_bytes`: transport payload bytes from the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_payload_bytes: Option<u64>,
    /// `flow.mpls_label`: the top MPLS label the flow was carried in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpls_label: Option<u32>,
    /// `flow.missed_bytes`: TCP bytes the sensor never saw (sequence gaps), both directions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_bytes: Option<u64>,
}

/// `device.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// `device.manufacturer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// `device.model.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<NameId>,
    /// `device.product.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<NameId>,
    /// `device.vendor.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<NameId>,
    /// `device.serial_number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// `device.type`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `tls.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tls {
    /// `tls.version` (`1.2`, `1.3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `tls.version_protocol` (`tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_protocol: Option<String>,
    /// `tls.client.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<TlsClient>,
}

/// `tls.client.*`: the client certificate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TlsClient {
    /// `tls.client.subject`: the certificate's distinguished name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `tls.client.issuer`: its issuer's distinguished name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `tls.client.hash.sha1`: the certificate's thumbprint (upper-case hex, as Windows shows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<TlsHash>,
    /// `tls.client.x509.subject.common_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509: Option<X509>,
}

/// `tls.client.hash.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TlsHash {
    /// `*.sha1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
}

/// `tls.client.x509.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct X509 {
    /// `*.subject.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<X509Name>,
}

/// `tls.client.x509.subject.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct X509Name {
    /// `*.common_name` (ECS normalises it to an array).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub common_name: Vec<String>,
}

/// A `name` / `id` (or `name` / `identifier`) pair of `device.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NameId {
    /// `*.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `*.id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `*.identifier` (`device.model.identifier`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
}

/// `asset.*`: what the sensor has learnt about one asset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AssetInfo {
    /// `asset.roles`: `protocol:role` (`modbus:server`, `dnp3:outstation`, `s7comm:plc`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// `asset.vlan`: the VLAN it was seen on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// `asset.mac_vendor`: the organisation the MAC's OUI is registered to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_vendor: Option<String>,
    /// `asset.firmware`: firmware or revision a protocol reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// `asset.first_seen`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "ts_opt")]
    pub first_seen: Option<DateTime<Utc>>,
    /// `asset.last_seen`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "ts_opt")]
    pub last_seen: Option<DateTime<Utc>>,
    /// `asset.identity.*`: other identity a protocol revealed (S7 plant name, BACnet device
    /// instance, CIP device type, ...).
    #[serde(default, skip_serializing_if = "Pairs::is_empty")]
    pub identity: Pairs,
    /// `asset.reason`: why this observation was written (`new`, `changed`, `last_seen`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Word>,
}

/// `ot.*`: one industrial protocol transaction (or an aggregate of routine ones).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ot {
    /// `ot.protocol`: `modbus`, `dnp3`, `s7comm`, `enip`, `iec104`, `bacnet`, `opcua`, `mqtt`.
    pub protocol: Word,
    /// `ot.action`: Weir's protocol-independent vocabulary (`read`, `write`, `control`,
    /// `program_download`, `program_upload`, `mode_change`, `restart`, `time_set`, `firmware`,
    /// `recon`, `other`).
    pub action: Word,
    /// `ot.function`: the protocol's name for the function or service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<Word>,
    /// `ot.function_code`: the raw function or service code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_code: Option<u32>,
    /// `ot.unit`: Modbus unit id, DNP3 destination address, IEC 104 common address, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<u32>,
    /// `ot.transaction_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<u32>,
    /// `ot.address`: the first register, coil, object or IOA addressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<u32>,
    /// `ot.quantity`: how many items were addressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
    /// `ot.request_values`: values the request carried (written values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_values: Vec<u32>,
    /// `ot.response_values`: values the response carried (read values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_values: Vec<u32>,
    /// `ot.exception`: the protocol's error or exception name, when the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<Word>,
    /// `ot.exception_code`: the raw exception code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception_code: Option<u32>,
    /// `ot.matched`: true when the request and its response were both seen.
    pub matched: bool,
    /// `ot.detail`: protocol-specific detail (sub-function, MEI type, object summary, ...).
    #[serde(default, skip_serializing_if = "Pairs::is_empty")]
    pub detail: Pairs,
    /// `ot.count`: on an aggregate of routine polling, how many transactions it stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// `user.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// `user.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `user.domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// `user.id`: a Windows SID, a Unix uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `user.target.*`: the account an action was done to (created, reset, added to a group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<UserRef>,
    /// `user.effective.*`: the account whose credentials were used (Windows 4648).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective: Option<UserRef>,
}

/// `user.target.*` / `user.effective.*` / `group.*`: name, domain and id of an account.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UserRef {
    /// `*.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `*.domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// `*.id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl UserRef {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.domain.is_none() && self.id.is_none()
    }
}

/// `group.*`.
pub type Group = UserRef;

/// `file.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct File {
    /// `file.path`: the full path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `file.name`: the last component of the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `file.directory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// `file.extension`, without the dot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    /// `file.hash.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Hash>,
    /// `file.pe.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pe: Option<Pe>,
}

/// `registry.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    /// `registry.path`: hive, key and value joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `registry.hive`: the abbreviated hive (`HKLM`, `HKU`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hive: Option<String>,
    /// `registry.key`: the key below the hive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `registry.value`: the value name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `registry.data.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<RegistryData>,
}

/// `registry.data.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistryData {
    /// `registry.data.strings` (array).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strings: Vec<String>,
    /// `registry.data.type`: `REG_SZ`, `REG_DWORD`, ...
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `dns.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    /// `dns.question.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<DnsQuestion>,
    /// `dns.resolved_ip` (array).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved_ip: Vec<String>,
}

/// `dns.question.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsQuestion {
    /// `dns.question.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `service.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// `service.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `winlog.*`: what a Windows event record says, beyond ECS, named as Winlogbeat names it so
/// that rules written against Winlogbeat data work unchanged.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Winlog {
    /// `winlog.channel`: `Security`, `System`, `Microsoft-Windows-Sysmon/Operational`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// `winlog.event_id`, as a string (Winlogbeat 8 maps it as `keyword`).
    pub event_id: String,
    /// `winlog.provider_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    /// `winlog.provider_guid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_guid: Option<String>,
    /// `winlog.record_id`: the record's number in its log (a string: it is an identifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    /// `winlog.computer_name`: `System/Computer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer_name: Option<String>,
    /// `winlog.version`: the event definition's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// `winlog.task`: the task's name (rendered, or known for the provider), else its number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// `winlog.opcode`: the opcode's name (rendered, or the standard name), else its number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opcode: Option<String>,
    /// `winlog.keywords`: the names of the standard keyword bits set (`Audit Success`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// `winlog.activity_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<String>,
    /// `winlog.related_activity_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_activity_id: Option<String>,
    /// `winlog.process.*`: the process and thread that logged the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<WinlogProcess>,
    /// `winlog.user.*`: `System/Security/@UserID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<WinlogUser>,
    /// `winlog.logon.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logon: Option<Logon>,
    /// `winlog.event_data.*`: `EventData/Data` by name, in document order.
    #[serde(default, skip_serializing_if = "Pairs::is_empty")]
    pub event_data: Pairs,
    /// `winlog.user_data.*`: the elements under `UserData`, with `xml_name` the element's name.
    #[serde(default, skip_serializing_if = "Pairs::is_empty")]
    pub user_data: Pairs,
}

/// `winlog.process.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WinlogProcess {
    /// `winlog.process.pid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// `winlog.process.thread.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Thread>,
}

/// `winlog.process.thread.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    /// `winlog.process.thread.id`.
    pub id: u32,
}

/// `winlog.user.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WinlogUser {
    /// `winlog.user.identifier`: the SID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
}

/// `winlog.logon.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Logon {
    /// `winlog.logon.id`: the logon session id as Windows writes it (`0x3e7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `winlog.logon.type`: the logon type's name (`Interactive`, `Network`, ...).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Word>,
    /// `winlog.logon.failure.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<LogonFailure>,
}

/// `winlog.logon.failure.*`: why a logon or credential check failed, decoded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogonFailure {
    /// `winlog.logon.failure.reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Word>,
    /// `winlog.logon.failure.status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Word>,
    /// `winlog.logon.failure.sub_status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_status: Option<Word>,
}

/// `powershell.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PowerShell {
    /// `powershell.command.*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<PowerShellCommand>,
    /// `powershell.engine.version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<PowerShellEngine>,
    /// `powershell.file.*`: a logged script block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<ScriptBlock>,
    /// `powershell.runspace_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runspace_id: Option<String>,
    /// `powershell.pipeline_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<String>,
    /// `powershell.sequence`: this part's number (script blocks logged in parts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
    /// `powershell.total`: how many parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// `powershell.command.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PowerShellCommand {
    /// `powershell.command.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `powershell.command.type`: `Cmdlet`, `Function`, `Script`, ...
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `powershell.engine.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PowerShellEngine {
    /// `powershell.engine.version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `powershell.file.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScriptBlock {
    /// `powershell.file.script_block_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_block_id: Option<String>,
    /// `powershell.file.script_block_text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_block_text: Option<String>,
}

/// Named string values kept in their source's order, serialised as a JSON object. Names are
/// usually a parser's own constants (`Cow::Borrowed`), or names read from the input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pairs(pub Vec<(Cow<'static, str>, String)>);

impl Pairs {
    /// Pairs whose names were read from the input (the vector is reused, not copied).
    pub fn owned(pairs: Vec<(String, String)>) -> Pairs {
        Pairs(pairs.into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect())
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Serialize for Pairs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pairs, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Pairs, A::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(0).min(256));
                while let Some((k, v)) = m.next_entry::<String, String>()? {
                    out.push((Cow::Owned(k), v));
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// `related.*`: all arrays.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Related {
    /// `related.ip`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip: Vec<String>,
    /// `related.user`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user: Vec<String>,
    /// `related.hosts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// `related.hash`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hash: Vec<String>,
}

impl Related {
    /// True when no related value is set.
    pub fn is_empty(&self) -> bool {
        self.ip.is_empty() && self.user.is_empty() && self.hosts.is_empty() && self.hash.is_empty()
    }
}

/// `error.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// `error.type`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Word>,
    /// `error.message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `weir.*`: Weir's provenance and its own records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Weir {
    /// `weir.class`.
    pub class: EventClass,
    /// `weir.schema_version`: [`crate::SCHEMA_VERSION`] of the writer.
    #[serde(default)]
    pub schema_version: Word,
    /// `weir.agent`: the name of the OT-side agent (`weir tx`) that read the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// `weir.input.*`: which input read it, and from whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Input>,
    /// `weir.stream`: the diode stream (one per configured input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// `weir.sequence`: the record's sequence number within its stream and diode session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// `weir.session`: the diode session epoch (16 hex digits) the record travelled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// `weir.parse_error`: why the input could not be parsed. Set only on raw events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
    /// `weir.gap.*`: set on diode gap records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<Gap>,
    /// `weir.dropped`: on a `weir` event reporting dropped events, how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
}

impl Weir {
    /// Provenance for a fresh event of `class`.
    pub fn new(class: EventClass) -> Weir {
        Weir {
            class,
            schema_version: Cow::Borrowed(crate::SCHEMA_VERSION),
            agent: None,
            input: None,
            stream: None,
            sequence: None,
            session: None,
            parse_error: None,
            gap: None,
            dropped: None,
        }
    }
}

/// `weir.input.*`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// `weir.input.type`: `syslog_udp`, `syslog_tcp`, `demo`, ...
    #[serde(rename = "type")]
    pub kind: Word,
    /// `weir.input.peer_ip`: the address the bytes came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_ip: Option<String>,
    /// `weir.input.peer_port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_port: Option<u16>,
}

/// `weir.gap.*`: records lost on the diode, for one stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// `weir.gap.stream`: the stream that lost records.
    pub stream: String,
    /// `weir.gap.first_sequence`: the first missing sequence number.
    pub first_sequence: u64,
    /// `weir.gap.last_sequence`: the last missing sequence number (inclusive).
    pub last_sequence: u64,
    /// `weir.gap.count`: how many records are missing.
    pub count: u64,
    /// `weir.gap.reason`: `lost_block` (a block could not be rebuilt), `tail_loss` (found by
    /// heartbeat), `session_restart`, ...
    pub reason: String,
}

/// RFC 3339 timestamps with the precision the value has, always in UTC with a `Z`.
/// A timestamp as events carry it (RFC 3339, UTC, `Z`, as many fractional digits as needed
/// in groups of three).
pub fn format_timestamp(value: &DateTime<Utc>) -> String {
    let mut buf = Timestamp::new();
    buf.format(value).to_owned()
}

/// A stack buffer that formats timestamps as [`format_timestamp`] does, without allocating
/// (every event carries one to three of them).
pub struct Timestamp {
    buf: [u8; 30],
    fallback: String,
}

impl Default for Timestamp {
    fn default() -> Self {
        Timestamp::new()
    }
}

impl Timestamp {
    /// An empty buffer.
    pub const fn new() -> Timestamp {
        Timestamp {
            buf: [0; 30],
            fallback: String::new(),
        }
    }

    /// `value` in RFC 3339, as `to_rfc3339_opts(SecondsFormat::AutoSi, true)` writes it.
    pub fn format(&mut self, value: &DateTime<Utc>) -> &str {
        use chrono::{Datelike, Timelike};
        let t = value.naive_utc();
        let year = t.year();
        if !(0..=9999).contains(&year) {
            // Signed, wider years: rare enough to leave to chrono.
            self.fallback = value.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            return &self.fallback;
        }
        let (mut second, mut nano) = (t.second(), t.nanosecond());
        if nano >= 1_000_000_000 {
            // chrono's leap second: 23:59:59 with a second's worth of nanoseconds is :60.
            second += 1;
            nano -= 1_000_000_000;
        }
        let b = &mut self.buf;
        let two = |b: &mut [u8; 30], at: usize, v: u32| {
            b[at] = b'0' + (v / 10 % 10) as u8;
            b[at + 1] = b'0' + (v % 10) as u8;
        };
        let year = year.unsigned_abs();
        two(b, 0, year / 100);
        two(b, 2, year % 100);
        b[4] = b'-';
        two(b, 5, t.month());
        b[7] = b'-';
        two(b, 8, t.day());
        b[10] = b'T';
        two(b, 11, t.hour());
        b[13] = b':';
        two(b, 14, t.minute());
        b[16] = b':';
        two(b, 17, second);
        let digits = match nano {
            0 => 0,
            n if n % 1_000_000 == 0 => 3,
            n if n % 1_000 == 0 => 6,
            _ => 9,
        };
        let mut end = 19;
        if digits > 0 {
            b[end] = b'.';
            let mut frac = nano / 10u32.pow(9 - digits);
            for i in (0..digits as usize).rev() {
                b[end + 1 + i] = b'0' + (frac % 10) as u8;
                frac /= 10;
            }
            end += 1 + digits as usize;
        }
        b[end] = b'Z';
        // Only ASCII digits and separators were written.
        std::str::from_utf8(&b[..=end]).unwrap_or_default()
    }
}

mod ts {
    use super::*;

    pub fn serialize<S: Serializer>(value: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(Timestamp::new().format(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = Cow::<str>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

mod ts_opt {
    use super::*;

    pub fn serialize<S: Serializer>(
        value: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => super::ts::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        super::ts::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        let mut buf = Timestamp::new();
        let mut check = |t: DateTime<Utc>| {
            assert_eq!(
                buf.format(&t),
                t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                "{t:?}"
            );
        };
        // Whole seconds, millis, micros, nanos; epoch, leap days, year edges, leap seconds.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = (x % 253_402_300_800) as i64; // 0000-... up to 9999-12-31
            let secs = secs - 62_167_219_200; // from year 0
            let nanos = match x >> 60 & 3 {
                0 => 0,
                1 => (x >> 20) as u32 % 1000 * 1_000_000,
                2 => (x >> 20) as u32 % 1_000_000 * 1000,
                _ => (x >> 20) as u32 % 1_000_000_000,
            };
            if let Some(t) = DateTime::from_timestamp(secs, nanos) {
                check(t);
            }
        }
        for (secs, nanos) in [
            (0, 0),
            (0, 1),
            (951_782_400, 5_000_000),       // 2000-02-29
            (-62_167_219_200, 0),           // 0000-01-01
            (253_402_300_799, 999_999_999), // 9999-12-31T23:59:59.999999999
            (253_402_300_800, 0),           // 10000-01-01: chrono's signed form
            (-62_167_219_201, 0),           // -0001-12-31
            (1_483_228_799, 1_000_000_000), // 2016-12-31T23:59:60
            (1_483_228_799, 1_500_000_000), // 23:59:60.5
        ] {
            check(DateTime::from_timestamp(secs, nanos).expect("in range"));
        }
    }

    fn sample() -> Event {
        let at = Utc
            .with_ymd_and_hms(2024, 3, 1, 12, 0, 5)
            .single()
            .expect("valid date");
        let mut e = Event::new(EventClass::Syslog, at);
        e.message = Some("hello \"world\"\n".into());
        e.event.created = Some(at);
        e.log = Some(Log {
            syslog: Some(Syslog {
                priority: Some(34),
                structured_data: BTreeMap::from([(
                    "origin".to_string(),
                    BTreeMap::from([(
                        "ip".to_string(),
                        SdValue::Many(vec!["192.0.2.1".into(), "192.0.2.2".into()]),
                    )]),
                )]),
                ..Syslog::default()
            }),
            ..Log::default()
        });
        e.relate_ip("192.0.2.1");
        e.relate_ip("192.0.2.1");
        e
    }

    #[test]
    fn json_round_trip_is_lossless() {
        let e = sample();
        let json = e.to_json();
        let back = Event::from_json(&json).expect("parses");
        assert_eq!(back, e);
        assert_eq!(back.to_json(), json, "re-serialisation is byte-identical");
    }

    #[test]
    fn json_shape_uses_ecs_names() {
        let v: serde_json::Value = serde_json::from_slice(&sample().to_json()).expect("json");
        assert_eq!(v["@timestamp"], "2024-03-01T12:00:05Z");
        assert_eq!(v["ecs"]["version"], crate::ECS_VERSION);
        assert_eq!(v["event"]["kind"], "event");
        assert_eq!(v["weir"]["class"], "syslog");
        assert_eq!(v["related"]["ip"], serde_json::json!(["192.0.2.1"]));
        assert_eq!(
            v["log"]["syslog"]["structured_data"]["origin"]["ip"],
            serde_json::json!(["192.0.2.1", "192.0.2.2"])
        );
        assert!(v.get("host").is_none(), "absent field sets are omitted");
    }

    #[test]
    fn sub_second_precision_is_kept() {
        let at = Utc
            .timestamp_opt(1_700_000_000, 123_456_000)
            .single()
            .expect("valid");
        let e = Event::new(EventClass::Weir, at);
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).expect("json");
        assert_eq!(v["@timestamp"], "2023-11-14T22:13:20.123456Z");
    }
}
