/*!
Rendered Windows event XML: the `<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">`
document that Windows Event Forwarding delivers, `wevtutil qe /f:xml` prints, `Get-WinEvent`'s
`ToXml()` returns and the `evtx` crate renders.

This module reads the document into [`WinEvent`], a faithful, typed copy of what it says
(Microsoft's event schema, `event.xsd`: `System`, then `EventData` or `UserData`, then the
optional `RenderingInfo`). Mapping to ECS and `winlog.*` builds on it; nothing here interprets
event ids.

* `System`: provider name, GUID and event source name, `EventID` with its `Qualifiers`,
  version, level, task, opcode, keywords (hex in the XML: `0x8020000000000000`), `TimeCreated
  SystemTime`, `EventRecordID`, `Correlation ActivityID`/`RelatedActivityID`, `Execution
  ProcessID`/`ThreadID`, channel, computer, `Security UserID`.
* `EventData`: `<Data Name="X">` pairs in document order; unnamed `<Data>` become `param1`,
  `param2`, ... as Winlogbeat names them; `<Binary>` is kept as its hex text.
* `UserData`: its one child element's name and the text of each element under it, by name
  (nested names joined with `.`), as Winlogbeat's `winlog.user_data.*`.
* `RenderingInfo`: the message and the rendered level, task, opcode, channel, provider and
  keywords, when the forwarder sent them (WEF's `RenderedText` format).

Limits: a document nested deeper than [`MAX_DEPTH`] is refused, never recursed into.
*/

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use quick_xml::events::{BytesStart, Event as Xml};
use quick_xml::Reader;

/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 32;

/// Why a document is not a Windows event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WinXmlError {
    /// Not well-formed XML.
    #[error("malformed XML at byte {at}: {reason}")]
    Malformed {
        /// Byte offset where the reader gave up.
        at: u64,
        /// The reader's words.
        reason: String,
    },
    /// Well-formed, but the root is not `Event`.
    #[error("the root element is {0}, not Event")]
    NotAnEvent(String),
    /// No `System/EventID`, or one that is not a number.
    #[error("no usable System/EventID")]
    NoEventId,
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("elements nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// One Windows event as its XML states it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WinEvent {
    /// `System/Provider/@Name`.
    pub provider_name: Option<String>,
    /// `System/Provider/@Guid`, braces kept as written.
    pub provider_guid: Option<String>,
    /// `System/Provider/@EventSourceName` (classic event sources).
    pub event_source_name: Option<String>,
    /// `System/EventID`.
    pub event_id: u32,
    /// `System/EventID/@Qualifiers`.
    pub qualifiers: Option<u32>,
    /// `System/Version`.
    pub version: Option<u32>,
    /// `System/Level` (0 LogAlways, 1 Critical, 2 Error, 3 Warning, 4 Information, 5 Verbose).
    pub level: Option<u32>,
    /// `System/Task`.
    pub task: Option<u32>,
    /// `System/Opcode`.
    pub opcode: Option<u32>,
    /// `System/Keywords`, parsed from its hex text.
    pub keywords: Option<u64>,
    /// `System/TimeCreated/@SystemTime`.
    pub time_created: Option<DateTime<Utc>>,
    /// `System/EventRecordID`.
    pub record_id: Option<u64>,
    /// `System/Correlation/@ActivityID`.
    pub activity_id: Option<String>,
    /// `System/Correlation/@RelatedActivityID`.
    pub related_activity_id: Option<String>,
    /// `System/Execution/@ProcessID`.
    pub process_id: Option<u32>,
    /// `System/Execution/@ThreadID`.
    pub thread_id: Option<u32>,
    /// `System/Channel`.
    pub channel: Option<String>,
    /// `System/Computer`.
    pub computer: Option<String>,
    /// `System/Security/@UserID` (a SID).
    pub user_id: Option<String>,
    /// `EventData/Data`, (name, value) in document order.
    pub event_data: Vec<(String, String)>,
    /// `EventData/Binary`, hex as written.
    pub binary: Option<String>,
    /// The element under `UserData`, if any.
    pub user_data_name: Option<String>,
    /// Text of the elements under it, (dotted name, value) in document order.
    pub user_data: Vec<(String, String)>,
    /// `RenderingInfo`, if the forwarder rendered the event.
    pub rendering: Option<Rendering>,
}

/// `RenderingInfo`: the event as the source host's message tables render it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendering {
    /// `@Culture`.
    pub culture: Option<String>,
    /// `Message`.
    pub message: Option<String>,
    /// `Level`.
    pub level: Option<String>,
    /// `Task`.
    pub task: Option<String>,
    /// `Opcode`.
    pub opcode: Option<String>,
    /// `Channel`.
    pub channel: Option<String>,
    /// `Provider`.
    pub provider: Option<String>,
    /// `Keywords/Keyword`.
    pub keywords: Vec<String>,
}

impl WinEvent {
    /// The value of `EventData/Data[@Name=name]`.
    pub fn data(&self, name: &str) -> Option<&str> {
        self.event_data
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Which part of the document the reader is in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    System,
    EventData,
    UserData,
    Rendering,
}

/// Read one rendered event.
pub fn parse(xml: &str) -> Result<WinEvent, WinXmlError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(false);
    let mut ev = WinEvent::default();
    let mut event_id: Option<u32> = None;
    // Local names of the open elements, outermost first (borrowed from the document).
    let mut path: Vec<Cow<'_, str>> = Vec::new();
    let mut section = Section::None;
    let mut text = String::new();
    // The open `Data` element's name (None: unnamed).
    let mut data_name: Option<String> = None;
    let mut unnamed = 0usize;
    let mut saw_root = false;
    loop {
        let event = reader.read_event().map_err(|e| WinXmlError::Malformed {
            at: reader.buffer_position(),
            reason: e.to_string(),
        })?;
        match event {
            Xml::Start(start) => {
                let name = local(xml, &start);
                if path.is_empty() {
                    if saw_root {
                        return Err(malformed(&reader, "a second root element"));
                    }
                    saw_root = true;
                    if name != "Event" {
                        return Err(WinXmlError::NotAnEvent(name.into_owned()));
                    }
                }
                if path.len() >= MAX_DEPTH {
                    return Err(WinXmlError::TooDeep);
                }
                open(&start, &name, &path, &mut section, &mut ev, &mut data_name);
                if section == Section::UserData && path.len() == 2 {
                    ev.user_data_name = Some(name.to_string());
                }
                path.push(name);
                text.clear();
            }
            Xml::Empty(start) => {
                let name = local(xml, &start);
                if path.is_empty() {
                    return Err(if saw_root {
                        malformed(&reader, "a second root element")
                    } else if name == "Event" {
                        WinXmlError::NoEventId
                    } else {
                        WinXmlError::NotAnEvent(name.into_owned())
                    });
                }
                let mut empty_name = None;
                open(&start, &name, &path, &mut section, &mut ev, &mut empty_name);
                if section == Section::EventData && name == "Data" {
                    let key = empty_name.unwrap_or_else(|| {
                        unnamed += 1;
                        format!("param{unnamed}")
                    });
                    ev.event_data.push((key, String::new()));
                }
                // `open` may have entered a section for an element that closed at once.
                section = section_of(&path, section);
            }
            Xml::Text(t) => match in_document(xml, &t) {
                // The usual case: the text is a slice of the document, already valid UTF-8.
                Some(s) => text.push_str(s),
                None => {
                    let s = t.decode().map_err(|e| malformed_at(&reader, &e))?;
                    text.push_str(&s);
                }
            },
            Xml::CData(t) => {
                text.push_str(&String::from_utf8_lossy(&t.into_inner()));
            }
            Xml::GeneralRef(r) => push_reference(&mut text, &r),
            Xml::End(_) => {
                let Some(name) = path.pop() else {
                    return Err(malformed(&reader, "an end tag without a start"));
                };
                close(
                    &name,
                    &path,
                    section,
                    &text,
                    &mut ev,
                    &mut event_id,
                    &mut data_name,
                    &mut unnamed,
                );
                section = section_of(&path, section);
                text.clear();
            }
            Xml::Eof => break,
            Xml::Decl(_) | Xml::PI(_) | Xml::Comment(_) | Xml::DocType(_) => {}
        }
    }
    if !saw_root {
        return Err(malformed(&reader, "no root element"));
    }
    if !path.is_empty() {
        return Err(malformed(&reader, "the document ends inside an element"));
    }
    ev.event_id = event_id.ok_or(WinXmlError::NoEventId)?;
    Ok(ev)
}

/// Append what a reference inside text stands for: a character reference or one of the five
/// predefined entities; anything else (no DTD is read) is kept as written.
pub(crate) fn push_reference(text: &mut String, r: &quick_xml::events::BytesRef<'_>) {
    if let Some(c) = r.resolve_char_ref().ok().flatten() {
        text.push(c);
        return;
    }
    match &*String::from_utf8_lossy(r) {
        "lt" => text.push('<'),
        "gt" => text.push('>'),
        "amp" => text.push('&'),
        "apos" => text.push('\''),
        "quot" => text.push('"'),
        other => {
            text.push('&');
            text.push_str(other);
            text.push(';');
        }
    }
}

fn malformed(reader: &Reader<&[u8]>, reason: &str) -> WinXmlError {
    WinXmlError::Malformed {
        at: reader.buffer_position(),
        reason: reason.to_owned(),
    }
}

fn malformed_at(reader: &Reader<&[u8]>, e: &dyn std::fmt::Display) -> WinXmlError {
    malformed(reader, &e.to_string())
}

/// The element's name without its namespace prefix, borrowed from the document when it is a
/// slice of it (always, for a document read from a `&str`).
fn local<'a>(xml: &'a str, start: &BytesStart<'_>) -> Cow<'a, str> {
    let name = start.local_name();
    match in_document(xml, name.as_ref()) {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(String::from_utf8_lossy(name.as_ref()).into_owned()),
    }
}

/// `bytes` as the `&str` of `xml` it is a slice of, if it is one: no copy, no second UTF-8
/// check. Anything else (bytes the reader built itself) is `None`.
fn in_document<'a>(xml: &'a str, bytes: &[u8]) -> Option<&'a str> {
    let start = (bytes.as_ptr() as usize).checked_sub(xml.as_ptr() as usize)?;
    xml.get(start..start.checked_add(bytes.len())?)
        .filter(|s| s.as_ptr() == bytes.as_ptr())
}

/// The value of attribute `name` (unescaped), if present and readable.
fn attr(start: &BytesStart<'_>, name: &str) -> Option<String> {
    start
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name.as_bytes())
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

/// The section an element at `path` (its parents) belongs to.
fn section_of(path: &[Cow<'_, str>], current: Section) -> Section {
    match path.get(1).map(|p| p.as_ref()) {
        Some("System") => Section::System,
        Some("EventData") => Section::EventData,
        Some("UserData") => Section::UserData,
        Some("RenderingInfo") => Section::Rendering,
        _ if path.len() <= 1 => Section::None,
        _ => current,
    }
}

/// An element starts (`path` holds its parents).
fn open(
    start: &BytesStart<'_>,
    name: &str,
    path: &[Cow<'_, str>],
    section: &mut Section,
    ev: &mut WinEvent,
    data_name: &mut Option<String>,
) {
    if path.len() == 1 {
        *section = match name {
            "System" => Section::System,
            "EventData" => Section::EventData,
            "UserData" => Section::UserData,
            "RenderingInfo" => {
                ev.rendering = Some(Rendering {
                    culture: attr(start, "Culture"),
                    ..Rendering::default()
                });
                Section::Rendering
            }
            _ => Section::None,
        };
        return;
    }
    match (*section, name) {
        (Section::System, "Provider") => {
            ev.provider_name = attr(start, "Name");
            ev.provider_guid = attr(start, "Guid");
            ev.event_source_name = attr(start, "EventSourceName");
        }
        (Section::System, "EventID") => {
            ev.qualifiers = attr(start, "Qualifiers").and_then(|q| q.trim().parse().ok());
        }
        (Section::System, "TimeCreated") => {
            ev.time_created = attr(start, "SystemTime").and_then(|t| parse_time(&t));
        }
        (Section::System, "Correlation") => {
            ev.activity_id = attr(start, "ActivityID");
            ev.related_activity_id = attr(start, "RelatedActivityID");
        }
        (Section::System, "Execution") => {
            ev.process_id = attr(start, "ProcessID").and_then(|v| v.trim().parse().ok());
            ev.thread_id = attr(start, "ThreadID").and_then(|v| v.trim().parse().ok());
        }
        (Section::System, "Security") => {
            ev.user_id = attr(start, "UserID").filter(|s| !s.is_empty());
        }
        (Section::EventData, "Data") => {
            *data_name = attr(start, "Name");
        }
        _ => {}
    }
}

/// An element ends with `text` (`path` holds its parents).
#[allow(clippy::too_many_arguments)]
fn close(
    name: &str,
    path: &[Cow<'_, str>],
    section: Section,
    text: &str,
    ev: &mut WinEvent,
    event_id: &mut Option<u32>,
    data_name: &mut Option<String>,
    unnamed: &mut usize,
) {
    let owned = || Some(text.to_owned());
    let number = || text.trim().parse::<u32>().ok();
    match (section, name) {
        (Section::System, "EventID") => *event_id = number(),
        (Section::System, "Version") => ev.version = number(),
        (Section::System, "Level") => ev.level = number(),
        (Section::System, "Task") => ev.task = number(),
        (Section::System, "Opcode") => ev.opcode = number(),
        (Section::System, "Keywords") => ev.keywords = parse_hex(text),
        (Section::System, "EventRecordID") => ev.record_id = text.trim().parse().ok(),
        (Section::System, "Channel") => ev.channel = owned(),
        (Section::System, "Computer") => ev.computer = owned(),
        (Section::EventData, "Data") => {
            let key = data_name.take().unwrap_or_else(|| {
                *unnamed += 1;
                format!("param{unnamed}")
            });
            ev.event_data.push((key, text.to_owned()));
        }
        (Section::EventData, "Binary") => ev.binary = owned(),
        // Leaves under the UserData child: `UserData/<Child>/<Leaf>` and deeper.
        (Section::UserData, _) if path.len() >= 3 && !text.trim().is_empty() => {
            let mut dotted = path.get(3..).unwrap_or_default().join(".");
            if !dotted.is_empty() {
                dotted.push('.');
            }
            dotted.push_str(name);
            ev.user_data.push((dotted, text.to_owned()));
        }
        (Section::Rendering, field) if path.len() >= 2 => {
            if let Some(r) = ev.rendering.as_mut() {
                match field {
                    "Message" => r.message = owned(),
                    "Level" => r.level = owned(),
                    "Task" => r.task = owned(),
                    "Opcode" => r.opcode = owned(),
                    "Channel" => r.channel = owned(),
                    "Provider" => r.provider = owned(),
                    "Keyword" => r.keywords.push(text.to_owned()),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

fn parse_hex(text: &str) -> Option<u64> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

/// `SystemTime` as Windows writes it: RFC 3339 with up to 9 fractional digits and `Z`.
fn parse_time(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests;
