//! Windows events as JSON, one object per record, in the shapes agents already send:
//!
//! * **NXLog `im_msvistalog`** (and HELK / OTRF datasets built from it): `EventID`,
//!   `SourceName`, `Channel`, `Hostname`, `EventTime`, `Keywords`, `EventType`, `Task`,
//!   `Category`, `Message`, ... at the top level, and every `EventData` field beside them.
//! * **Winlogbeat** (ECS): `@timestamp`, `message`, `log.level` and a `winlog` object with
//!   `event_data` / `user_data`.
//! * **OpenWEC** (and the `evtx` crate's JSON): `System`, `EventData` / `UserData` and
//!   `RenderingInfo` objects as the XML has them, attributes either inline or under
//!   `#attributes`.
//!
//! The shape is detected per record, by content. Each becomes a [`WinEvent`], so it maps
//! exactly as the same event read from XML.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::tables;
use crate::winxml::{Rendering, WinEvent};

/// Which agent's JSON a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// NXLog `im_msvistalog` (flat).
    NxLog,
    /// Winlogbeat / Elastic Agent (ECS with `winlog`).
    Winlogbeat,
    /// OpenWEC, or the `evtx` crate's JSON (`System` / `EventData`).
    OpenWec,
}

impl Shape {
    /// The shape's name (`weir.input.type` suffix, metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::NxLog => "nxlog",
            Shape::Winlogbeat => "winlogbeat",
            Shape::OpenWec => "openwec",
        }
    }
}

/// Why a JSON record is not a Windows event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// Not JSON, or not an object.
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// An object, but none of the known shapes.
    #[error("not a Windows event in a known JSON shape (NXLog, Winlogbeat, OpenWEC)")]
    UnknownShape,
    /// The shape is known but the event id is missing or not a number.
    #[error("no usable event id")]
    NoEventId,
}

impl JsonError {
    /// A short stable code for `weir.parse_error`.
    pub fn code(&self) -> &'static str {
        match self {
            JsonError::NotJson(_) => "not_json",
            JsonError::UnknownShape => "unknown_windows_json",
            JsonError::NoEventId => "no_event_id",
        }
    }
}

/// An object's members in document order.
struct Ordered(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ordered, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Read one JSON record; timestamps without a zone are read in `tz`.
pub fn parse(bytes: &[u8], tz: Tz) -> Result<(WinEvent, Shape), JsonError> {
    let Ordered(members) =
        serde_json::from_slice(bytes).map_err(|e| JsonError::NotJson(e.to_string()))?;
    let has = |k: &str| members.iter().any(|(n, _)| n == k);
    if let Some((_, Value::Object(winlog))) = members.iter().find(|(n, _)| n == "winlog") {
        let root: serde_json::Map<String, Value> = members.iter().cloned().collect();
        return winlogbeat(&root, winlog).map(|e| (e, Shape::Winlogbeat));
    }
    if has("System") || has("Event") {
        let root: serde_json::Map<String, Value> = members.into_iter().collect();
        let root = match root.get("Event") {
            Some(Value::Object(inner)) => inner.clone(),
            _ => root,
        };
        return openwec(&root).map(|e| (e, Shape::OpenWec));
    }
    if has("EventID") {
        return nxlog(members, tz).map(|e| (e, Shape::NxLog));
    }
    Err(JsonError::UnknownShape)
}

/// A JSON value as the text `EventData` would hold.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

fn num(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => tables::number(s),
        Value::Object(o) => num(o.get("#text")),
        _ => None,
    }
}

fn u32_of(v: Option<&Value>) -> Option<u32> {
    num(v).and_then(|n| u32::try_from(n).ok())
}

fn string(v: Option<&Value>) -> Option<String> {
    v.and_then(text).filter(|s| !s.is_empty())
}

/// NXLog writes `Keywords` as a signed decimal (`-9214364837600034816`) or hex.
fn keywords(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_i64().map(|i| i as u64)),
        Value::String(s) => {
            tables::number(s).or_else(|| s.trim().parse::<i64>().ok().map(|i| i as u64))
        }
        _ => None,
    }
}

/// RFC 3339, or `YYYY-MM-DD HH:MM:SS[.fff]` read in `tz`.
fn time(v: Option<&Value>, tz: Tz) -> Option<DateTime<Utc>> {
    let s = v?.as_str()?.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// The NXLog fields that describe the record rather than hold its `EventData`.
const NXLOG_HEADER: &[&str] = &[
    "EventTime",
    "EventTimeWritten",
    "TimeCreated",
    "Hostname",
    "Keywords",
    "EventType",
    "SeverityValue",
    "Severity",
    "EventID",
    "SourceName",
    "ProviderGuid",
    "Version",
    "Task",
    "OpcodeValue",
    "Opcode",
    "RecordNumber",
    "ActivityID",
    "RelatedActivityID",
    "ProcessID",
    "ThreadID",
    "Channel",
    "UserID",
    "Category",
    "Message",
    "EventReceivedTime",
    "SourceModuleName",
    "SourceModuleType",
    "Level",
    "@timestamp",
    "@version",
    "host",
    "port",
    "tags",
    "type",
    "log_ingest_timestamp",
];

fn nxlog(members: Vec<(String, Value)>, tz: Tz) -> Result<WinEvent, JsonError> {
    let get = |k: &str| members.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let event_id = u32_of(get("EventID")).ok_or(JsonError::NoEventId)?;
    let event_type = get("EventType").and_then(Value::as_str).unwrap_or_default();
    let level = match event_type {
        "CRITICAL" => 1,
        "ERROR" => 2,
        "WARNING" => 3,
        "VERBOSE" | "DEBUG" => 5,
        "AUDIT_SUCCESS" | "AUDIT_FAILURE" => 0,
        _ => 4,
    };
    let keywords = keywords(get("Keywords")).or(match event_type {
        "AUDIT_SUCCESS" => Some(0x0020_0000_0000_0000),
        "AUDIT_FAILURE" => Some(0x0010_0000_0000_0000),
        _ => None,
    });
    let rendering = Rendering {
        message: string(get("Message")),
        task: string(get("Category")),
        opcode: string(get("Opcode")),
        ..Rendering::default()
    };
    // `Domain`, `AccountName` and `AccountType` are NXLog's resolution of `UserID` when that is
    // present; otherwise they are the event's own data (7045 has an `AccountName`).
    let resolved = get("UserID").is_some();
    let mut event_data: Vec<(String, String)> = members
        .iter()
        .filter(|(k, _)| !NXLOG_HEADER.contains(&k.as_str()))
        .filter(|(k, _)| {
            !(resolved && matches!(k.as_str(), "Domain" | "AccountName" | "AccountType"))
        })
        .filter_map(|(k, v)| Some((k.clone(), text(v)?)))
        .collect();
    if event_data.is_empty() {
        // Some collectors send only the rendered message: read its labels back.
        if let Some(message) = rendering.message.as_deref() {
            event_data = super::snare::message_data(event_id, message);
        }
    }
    Ok(WinEvent {
        provider_name: string(get("SourceName")),
        provider_guid: string(get("ProviderGuid")),
        event_id,
        version: u32_of(get("Version")),
        level: Some(level),
        task: u32_of(get("Task")),
        opcode: u32_of(get("OpcodeValue")),
        keywords,
        time_created: time(get("EventTime"), tz).or_else(|| time(get("TimeCreated"), tz)),
        record_id: num(get("RecordNumber")),
        activity_id: string(get("ActivityID")),
        related_activity_id: string(get("RelatedActivityID")),
        process_id: u32_of(get("ProcessID")),
        thread_id: u32_of(get("ThreadID")),
        channel: string(get("Channel")),
        computer: string(get("Hostname")),
        user_id: string(get("UserID")),
        event_data,
        rendering: (rendering != Rendering::default()).then_some(rendering),
        ..WinEvent::default()
    })
}

fn winlogbeat(
    root: &serde_json::Map<String, Value>,
    w: &serde_json::Map<String, Value>,
) -> Result<WinEvent, JsonError> {
    let event_id = u32_of(w.get("event_id")).ok_or(JsonError::NoEventId)?;
    let pairs = |v: Option<&Value>| -> Vec<(String, String)> {
        v.and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.clone(), text(v)?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut user_data = pairs(w.get("user_data"));
    let user_data_name = user_data
        .iter()
        .position(|(k, _)| k == "xml_name")
        .map(|i| user_data.remove(i).1);
    let level = root
        .get("log")
        .and_then(|l| l.get("level"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let rendering = Rendering {
        message: string(root.get("message")),
        level,
        task: string(w.get("task")),
        opcode: string(w.get("opcode")),
        keywords: w
            .get("keywords")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(text).collect())
            .unwrap_or_default(),
        ..Rendering::default()
    };
    let process = w.get("process");
    Ok(WinEvent {
        provider_name: string(w.get("provider_name")),
        provider_guid: string(w.get("provider_guid")),
        event_id,
        version: u32_of(w.get("version")),
        time_created: time(root.get("@timestamp"), Tz::UTC),
        record_id: num(w.get("record_id")),
        activity_id: string(w.get("activity_id")),
        related_activity_id: string(w.get("related_activity_id")),
        process_id: u32_of(process.and_then(|p| p.get("pid"))),
        thread_id: u32_of(
            process
                .and_then(|p| p.get("thread"))
                .and_then(|t| t.get("id")),
        ),
        channel: string(w.get("channel")),
        computer: string(w.get("computer_name"))
            .or_else(|| string(root.get("host").and_then(|h| h.get("name")))),
        user_id: string(w.get("user").and_then(|u| u.get("identifier"))),
        event_data: pairs(w.get("event_data")),
        user_data_name,
        user_data,
        rendering: Some(rendering),
        ..WinEvent::default()
    })
}

/// An attribute written inline (`{"Name": ..}`) or under `#attributes`.
fn attr<'a>(v: Option<&'a Value>, name: &str) -> Option<&'a Value> {
    let v = v?;
    v.get(name)
        .or_else(|| v.get("#attributes").and_then(|a| a.get(name)))
}

fn openwec(root: &serde_json::Map<String, Value>) -> Result<WinEvent, JsonError> {
    let sys = root.get("System");
    let s = |k: &str| sys.and_then(|s| s.get(k));
    let event_id = u32_of(s("EventID")).ok_or(JsonError::NoEventId)?;
    let time_created = match s("TimeCreated") {
        Some(Value::String(t)) => time(Some(&Value::String(t.clone())), Tz::UTC),
        other => time(attr(other, "SystemTime"), Tz::UTC),
    };
    let mut event_data = Vec::new();
    let mut binary = None;
    if let Some(Value::Object(data)) = root.get("EventData") {
        for (k, v) in data {
            match (k.as_str(), v) {
                ("#attributes", _) => {}
                ("Binary", v) => binary = text(v),
                ("Data", Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        event_data
                            .push((format!("param{}", i + 1), text(item).unwrap_or_default()));
                    }
                }
                ("Data", Value::Object(o)) => {
                    // The evtx crate: {"#text": [..]} for unnamed data.
                    let items = match o.get("#text") {
                        Some(Value::Array(a)) => a.clone(),
                        Some(v) => vec![v.clone()],
                        None => Vec::new(),
                    };
                    for (i, item) in items.iter().enumerate() {
                        event_data
                            .push((format!("param{}", i + 1), text(item).unwrap_or_default()));
                    }
                }
                (k, v) => event_data.push((k.to_owned(), text(v).unwrap_or_default())),
            }
        }
    }
    let mut user_data_name = None;
    let mut user_data = Vec::new();
    if let Some(Value::Object(ud)) = root.get("UserData") {
        if let Some((name, Value::Object(inner))) = ud.iter().next() {
            user_data_name = Some(name.clone());
            for (k, v) in inner {
                flatten(k, v, 0, &mut user_data);
            }
        }
    }
    let rendering = root.get("RenderingInfo").map(|r| Rendering {
        culture: string(attr(Some(r), "Culture")),
        message: string(r.get("Message")),
        level: string(r.get("Level")),
        task: string(r.get("Task")),
        opcode: string(r.get("Opcode")),
        channel: string(r.get("Channel")),
        provider: string(r.get("Provider")),
        keywords: match r.get("Keywords") {
            Some(Value::Array(a)) => a.iter().filter_map(text).collect(),
            Some(Value::Object(o)) => match o.get("Keyword") {
                Some(Value::Array(a)) => a.iter().filter_map(text).collect(),
                Some(v) => text(v).into_iter().collect(),
                None => Vec::new(),
            },
            _ => Vec::new(),
        },
    });
    let provider = s("Provider");
    let correlation = s("Correlation");
    let execution = s("Execution");
    Ok(WinEvent {
        provider_name: string(attr(provider, "Name")),
        provider_guid: string(attr(provider, "Guid")),
        event_source_name: string(attr(provider, "EventSourceName")),
        event_id,
        qualifiers: u32_of(attr(s("EventID"), "Qualifiers")),
        version: u32_of(s("Version")),
        level: u32_of(s("Level")),
        task: u32_of(s("Task")),
        opcode: u32_of(s("Opcode")),
        keywords: keywords(s("Keywords")),
        time_created,
        record_id: num(s("EventRecordID")),
        activity_id: string(attr(correlation, "ActivityID")),
        related_activity_id: string(attr(correlation, "RelatedActivityID")),
        process_id: u32_of(attr(execution, "ProcessID")),
        thread_id: u32_of(attr(execution, "ThreadID")),
        channel: string(s("Channel")),
        computer: string(s("Computer")),
        user_id: string(attr(s("Security"), "UserID")),
        event_data,
        binary,
        user_data_name,
        user_data,
        rendering,
    })
}

/// `UserData` below its element as the XML reader has it: leaves with text, by dotted name;
/// attributes skipped.
fn flatten(name: &str, v: &Value, depth: usize, out: &mut Vec<(String, String)>) {
    if name == "#attributes" || depth > crate::winxml::MAX_DEPTH {
        return;
    }
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                if k == "#attributes" {
                    continue;
                }
                if k == "#text" {
                    flatten(name, child, depth + 1, out);
                } else {
                    flatten(&format!("{name}.{k}"), child, depth + 1, out);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                flatten(name, item, depth + 1, out);
            }
        }
        other => {
            if let Some(t) = text(other).filter(|t| !t.trim().is_empty()) {
                out.push((name.to_owned(), t));
            }
        }
    }
}
