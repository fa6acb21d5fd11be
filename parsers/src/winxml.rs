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

use std::borrow::{Borrow, Cow};

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
#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum Section {
    #[default]
    None,
    System,
    EventData,
    UserData,
    Rendering,
}

/// Read one rendered event.
///
/// Documents in the shape Windows renders (elements, attributes, text and references; no
/// comments, CDATA or DTD) are read by a single-pass scanner made for them; anything else, and
/// any document the scanner is not sure of, by the general XML reader. The two give the same
/// [`WinEvent`] for every document the scanner accepts (tests and the `windows_xml` fuzz target
/// check it), and every error comes from the general reader.
pub fn parse(xml: &str) -> Result<WinEvent, WinXmlError> {
    match fast::parse(xml) {
        Some(ev) => Ok(ev),
        None => parse_general(xml),
    }
}

/// The document without a leading XML declaration (`<?xml version="1.0" ...?>`) and the
/// whitespace around it: the event element as Windows renders it (`EvtRender`, WEF), for
/// `event.original`. A document without one is returned as it is.
pub fn strip_declaration(xml: &str) -> &str {
    let rest = xml.trim_start();
    match rest
        .strip_prefix("<?xml")
        .filter(|d| d.starts_with(|c: char| c.is_ascii_whitespace()))
    {
        Some(decl) => match decl.find("?>") {
            Some(end) => decl[end + 2..].trim_start(),
            None => xml,
        },
        None => xml,
    }
}

/// The single-pass scanner alone: `Some` exactly when it reads the document itself, and then
/// the same [`WinEvent`] as [`parse_general`]. For tests and fuzzing.
pub fn parse_fast(xml: &str) -> Option<WinEvent> {
    fast::parse(xml)
}

/// [`parse`] by the general XML reader alone (`quick-xml`).
pub fn parse_general(xml: &str) -> Result<WinEvent, WinXmlError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(false);
    let mut b = Builder::default();
    // Local names of the open elements, outermost first (borrowed from the document).
    let mut path: Vec<Cow<'_, str>> = Vec::new();
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
                b.start(&|n| attr(&start, n), &name, &path);
                path.push(name);
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
                b.empty(&|n| attr(&start, n), &name, &path);
            }
            Xml::Text(t) => match in_document(xml, &t) {
                // The usual case: the text is a slice of the document, already valid UTF-8.
                Some(s) => b.text.push_str(s),
                None => {
                    let s = t.decode().map_err(|e| malformed_at(&reader, &e))?;
                    b.text.push_str(&s);
                }
            },
            Xml::CData(t) => {
                b.text.push_str(&String::from_utf8_lossy(&t.into_inner()));
            }
            Xml::GeneralRef(r) => push_reference(&mut b.text, &r),
            Xml::End(_) => {
                let Some(name) = path.pop() else {
                    return Err(malformed(&reader, "an end tag without a start"));
                };
                b.end(&name, &path);
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
    b.finish().ok_or(WinXmlError::NoEventId)
}

/// What both readers build as the document goes by: the event so far, the section they are
/// in, the open element's text. Each reader tells it where elements start and end; what an
/// element means is decided here (and in `open` and `close`), once for both.
#[derive(Default)]
struct Builder {
    ev: WinEvent,
    event_id: Option<u32>,
    section: Section,
    text: String,
    /// The open `Data` element's name (None: unnamed).
    data_name: Option<String>,
    unnamed: usize,
}

impl Builder {
    /// Element `name` starts; `path` holds its parents' local names.
    fn start<S: Borrow<str>>(
        &mut self,
        attr: &dyn Fn(&str) -> Option<String>,
        name: &str,
        path: &[S],
    ) {
        if let Some(data_name) = open(attr, name, path, &mut self.section, &mut self.ev) {
            self.data_name = data_name;
        }
        if self.section == Section::UserData && path.len() == 2 {
            self.ev.user_data_name = Some(name.to_owned());
        }
        self.text.clear();
    }

    /// Element `name` opens and closes at once (`<Data Name="x"/>`).
    fn empty<S: Borrow<str>>(
        &mut self,
        attr: &dyn Fn(&str) -> Option<String>,
        name: &str,
        path: &[S],
    ) {
        let empty_name = open(attr, name, path, &mut self.section, &mut self.ev).flatten();
        if self.section == Section::EventData && name == "Data" {
            let key = empty_name.unwrap_or_else(|| {
                self.unnamed += 1;
                format!("param{}", self.unnamed)
            });
            self.ev.event_data.push((key, String::new()));
        }
        // `open` may have entered a section for an element that closed at once.
        self.section = section_of(path, self.section);
    }

    /// Element `name` ends with the text gathered in `self.text`; `path` holds its parents'
    /// local names.
    fn end<S: Borrow<str>>(&mut self, name: &str, path: &[S]) {
        let text = std::mem::take(&mut self.text);
        self.end_with(name, path, &text);
        self.text = text;
        self.text.clear();
    }

    /// Element `name` ends with `text` (a reader that keeps its own text: the scanner borrows
    /// it from the document when it is one piece).
    fn end_with<S: Borrow<str>>(&mut self, name: &str, path: &[S], text: &str) {
        close(
            name,
            path,
            self.section,
            text,
            &mut self.ev,
            &mut self.event_id,
            &mut self.data_name,
            &mut self.unnamed,
        );
        self.section = section_of(path, self.section);
    }

    /// `<Data Name="name">value</Data>` directly under `EventData`, read whole by the
    /// scanner: what `start`, the text and `end` would have made of it.
    fn data(&mut self, name: &str, value: &str) {
        self.ev.event_data.push((name.to_owned(), value.to_owned()));
    }

    /// The event, if the document gave it an event id.
    fn finish(self) -> Option<WinEvent> {
        let mut ev = self.ev;
        ev.event_id = self.event_id?;
        Some(ev)
    }
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

/// The value of attribute `name` (UTF-8, references unescaped, whitespace kept as written, as
/// the fast path's `read_attrs` reads it), if present and readable.
fn attr(start: &BytesStart<'_>, name: &str) -> Option<String> {
    start
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name.as_bytes())
        .and_then(|a| {
            let text = std::str::from_utf8(&a.value).ok()?;
            quick_xml::escape::unescape(text)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// The section an element at `path` (its parents) belongs to.
fn section_of<S: Borrow<str>>(path: &[S], current: Section) -> Section {
    match path.get(1).map(|p| p.borrow()) {
        Some("System") => Section::System,
        Some("EventData") => Section::EventData,
        Some("UserData") => Section::UserData,
        Some("RenderingInfo") => Section::Rendering,
        _ if path.len() <= 1 => Section::None,
        _ => current,
    }
}

/// An element starts (`path` holds its parents). For an `EventData/Data` element, its `Name`
/// attribute (`Some(None)`: unnamed).
#[allow(clippy::option_option)]
fn open<S: Borrow<str>>(
    attr: &dyn Fn(&str) -> Option<String>,
    name: &str,
    path: &[S],
    section: &mut Section,
    ev: &mut WinEvent,
) -> Option<Option<String>> {
    if path.len() == 1 {
        *section = match name {
            "System" => Section::System,
            "EventData" => Section::EventData,
            "UserData" => Section::UserData,
            "RenderingInfo" => {
                ev.rendering = Some(Rendering {
                    culture: attr("Culture"),
                    ..Rendering::default()
                });
                Section::Rendering
            }
            _ => Section::None,
        };
        return None;
    }
    match (*section, name) {
        (Section::System, "Provider") => {
            ev.provider_name = attr("Name");
            ev.provider_guid = attr("Guid");
            ev.event_source_name = attr("EventSourceName");
        }
        (Section::System, "EventID") => {
            ev.qualifiers = attr("Qualifiers").and_then(|q| q.trim().parse().ok());
        }
        (Section::System, "TimeCreated") => {
            ev.time_created = attr("SystemTime").and_then(|t| parse_time(&t));
        }
        (Section::System, "Correlation") => {
            ev.activity_id = attr("ActivityID");
            ev.related_activity_id = attr("RelatedActivityID");
        }
        (Section::System, "Execution") => {
            ev.process_id = attr("ProcessID").and_then(|v| v.trim().parse().ok());
            ev.thread_id = attr("ThreadID").and_then(|v| v.trim().parse().ok());
        }
        (Section::System, "Security") => {
            ev.user_id = attr("UserID").filter(|s| !s.is_empty());
        }
        (Section::EventData, "Data") => return Some(attr("Name")),
        _ => {}
    }
    None
}

/// An element ends with `text` (`path` holds its parents).
#[allow(clippy::too_many_arguments)]
fn close<S: Borrow<str>>(
    name: &str,
    path: &[S],
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

/// The single-pass scanner behind [`parse`] for documents in the shape Windows renders.
///
/// It walks the document once with `memchr`, borrows every name and text from it, and reads
/// attributes only of the elements the mapping uses. It gives up (`None`) on anything outside
/// that shape: comments, CDATA, DTDs, an attribute or name it would have to guess at, an end
/// tag that does not match, text outside the root, a document that ends early, no event id.
/// The general reader then reads the document and states any error. Semantics shared with
/// [`parse_general`] (which text an element keeps, how references resolve, which attributes
/// count) come from the same functions (`open`, `close`, `push_reference`, `unescape`).
mod fast {
    use std::cell::{Cell, RefCell};

    use super::{Builder, Section, WinEvent, MAX_DEPTH};
    use memchr::{memchr, memchr2, memchr3, memmem};
    use quick_xml::events::BytesRef;

    /// Attributes an element may have before the scanner leaves it to the general reader.
    const MAX_ATTRS: usize = 16;

    /// Read the attributes of one tag (what follows its name) into `attrs`: key and raw value,
    /// in order. False unless all of `raw` is white-space-separated `key="value"` or
    /// `key='value'` pairs, at most [`MAX_ATTRS`] of them, with no key twice: the general
    /// reader may read those differently, so the scanner leaves such a tag to it. Only the
    /// elements the mapping reads attributes of are read; the general reader looks at no
    /// others either.
    fn read_attrs<'a>(raw: &'a str, attrs: &mut Vec<(&'a str, &'a str)>) -> bool {
        attrs.clear();
        let mut at = 0;
        loop {
            match pair(raw, at) {
                None => return false,
                Some(None) => return true,
                Some(Some((key, value, next))) => {
                    if attrs.len() == MAX_ATTRS || attrs.iter().any(|(k, _)| *k == key) {
                        return false;
                    }
                    attrs.push((key, value));
                    at = next;
                }
            }
        }
    }

    /// The unescaped value of the first attribute whose local name is `name`.
    fn attr_value(attrs: &[(&str, &str)], name: &str) -> Option<String> {
        let (_, value) = attrs.iter().find(|(k, _)| local(k) == name)?;
        quick_xml::escape::unescape(value)
            .ok()
            .map(std::borrow::Cow::into_owned)
    }

    /// The attribute at or after byte `at` of `raw`: `Some(None)` at the end, `None` if what is
    /// there is not a well-formed pair; else the key, the raw value and where the next begins.
    #[allow(clippy::type_complexity)]
    fn pair(raw: &str, at: usize) -> Option<Option<(&str, &str, usize)>> {
        let b = raw.as_bytes();
        let mut i = at;
        while b.get(i).is_some_and(|c| is_space(*c)) {
            i += 1;
        }
        if i >= b.len() {
            return Some(None);
        }
        let key_start = i;
        while b.get(i).is_some_and(|c| is_name_byte(*c)) {
            i += 1;
        }
        let key = raw.get(key_start..i).filter(|k| !k.is_empty())?;
        while b.get(i).is_some_and(|c| is_space(*c)) {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            return None;
        }
        i += 1;
        while b.get(i).is_some_and(|c| is_space(*c)) {
            i += 1;
        }
        let quote = *b.get(i).filter(|q| **q == b'"' || **q == b'\'')?;
        let value_start = i + 1;
        // A `<` in a value is not well-formed.
        let value_len = find2(quote, b'<', b.get(value_start..)?)?;
        if b.get(value_start + value_len) != Some(&quote) {
            return None;
        }
        let value = raw.get(value_start..value_start + value_len)?;
        let next = value_start + value_len + 1;
        // Pairs are separated by white space.
        if b.get(next).is_some_and(|c| !is_space(*c)) {
            return None;
        }
        Some(Some((key, value, next)))
    }

    fn is_space_char(c: char) -> bool {
        matches!(c, ' ' | '\t' | '\r' | '\n')
    }

    fn is_space(c: u8) -> bool {
        matches!(c, b' ' | b'\t' | b'\r' | b'\n')
    }

    /// The ASCII bytes of the names Windows writes; any other name goes to the general reader.
    fn is_name_byte(c: u8) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, b'_' | b':' | b'.' | b'-')
    }

    /// A name without its namespace prefix (what follows the first `:`).
    fn local(name: &str) -> &str {
        match name.bytes().position(|c| c == b':') {
            Some(i) => name.get(i + 1..).unwrap_or_default(),
            None => name,
        }
    }

    /// The first this many bytes of a span are searched a word (eight bytes) at a time;
    /// `memchr` pays for its set-up only on longer spans (most tags, names and values in an
    /// event are a few dozen bytes). A multiple of eight.
    const SHORT: usize = 32;

    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;

    /// The bytes of `w` equal to `x` have their high bit set in the result; the lowest set bit
    /// is exact (bits above it may be a borrow's).
    #[inline(always)]
    fn equal(w: u64, x: u8) -> u64 {
        let v = w ^ (LO * u64::from(x));
        v.wrapping_sub(LO) & !v & HI
    }

    /// Where in `b` the first byte `hit` accepts is: the first [`SHORT`] bytes a word at a time
    /// (`word` marks the bytes `hit` accepts, as [`equal`] does), the rest with `long`.
    #[inline(always)]
    fn find(
        b: &[u8],
        word: impl Fn(u64) -> u64,
        hit: impl Fn(u8) -> bool,
        long: impl FnOnce(&[u8]) -> Option<usize>,
    ) -> Option<usize> {
        let (head, tail) = b.split_at(b.len().min(SHORT));
        let mut words = head.chunks_exact(8);
        let mut at = 0;
        for w in &mut words {
            let m = word(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
            if m != 0 {
                return Some(at + (m.trailing_zeros() / 8) as usize);
            }
            at += 8;
        }
        if let Some(i) = words.remainder().iter().position(|c| hit(*c)) {
            return Some(at + i);
        }
        if tail.is_empty() {
            return None;
        }
        long(tail).map(|i| i + SHORT)
    }

    #[inline(always)]
    fn find1(x: u8, b: &[u8]) -> Option<usize> {
        find(b, |w| equal(w, x), |c| c == x, |t| memchr(x, t))
    }

    #[inline(always)]
    fn find2(x: u8, y: u8, b: &[u8]) -> Option<usize> {
        find(
            b,
            |w| equal(w, x) | equal(w, y),
            |c| c == x || c == y,
            |t| memchr2(x, y, t),
        )
    }

    #[inline(always)]
    fn find3(x: u8, y: u8, z: u8, b: &[u8]) -> Option<usize> {
        find(
            b,
            |w| equal(w, x) | equal(w, y) | equal(w, z),
            |c| c == x || c == y || c == z,
            |t| memchr3(x, y, z, t),
        )
    }

    /// The open element's text since its start tag or its last child's end tag (what the
    /// general reader gathers in `Builder::text`): borrowed from the document while it is one
    /// piece, copied into a buffer once a reference or a second piece joins it.
    #[derive(Clone, Copy)]
    enum Text {
        Empty,
        /// `xml[start..end]`.
        Span(usize, usize),
        /// In the buffer.
        Buffer,
    }

    /// `<Data Name="name">value</Data>` at `pos`, exactly: one attribute in double quotes, no
    /// reference in the name or the value, the end tag right after the value. The name, the
    /// value and where the element ends; `None` for anything else (read as any element).
    fn data_element(xml: &str, pos: usize) -> Option<(&str, &str, usize)> {
        const OPEN: &[u8] = b"<Data Name=\"";
        const CLOSE: &[u8] = b"</Data>";
        let b = xml.as_bytes();
        if !b.get(pos..)?.starts_with(OPEN) {
            return None;
        }
        let name_start = pos + OPEN.len();
        let name_end = name_start + find3(b'"', b'<', b'&', b.get(name_start..)?)?;
        if b.get(name_end..name_end + 2)? != b"\">" {
            return None;
        }
        let value_start = name_end + 2;
        let value_end = value_start + find2(b'<', b'&', b.get(value_start..)?)?;
        if !b.get(value_end..)?.starts_with(CLOSE) {
            return None;
        }
        Some((
            xml.get(name_start..name_end)?,
            xml.get(value_start..value_end)?,
            value_end + CLOSE.len(),
        ))
    }

    pub(super) fn parse(xml: &str) -> Option<WinEvent> {
        let b = xml.as_bytes();
        // The general reader drops a UTF-8 byte order mark.
        let mut pos = if b.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
        let mut doc = Builder::default();
        // Open elements, outermost first: full names (for end tags) and local names.
        let mut full: Vec<&str> = Vec::with_capacity(8);
        let mut path: Vec<&str> = Vec::with_capacity(8);
        let mut text = Text::Empty;
        // The attributes of the tag being read (see `read_attrs`).
        let attrs = RefCell::new(Vec::with_capacity(MAX_ATTRS));
        // The builder's own buffer serves as the scanner's.
        let mut buffer = std::mem::take(&mut doc.text);
        let mut saw_root = false;
        loop {
            let rest = b.get(pos..)?;
            let Some(i) = find2(b'<', b'&', rest) else {
                // Only white space may follow the root.
                if !path.is_empty() || !rest.iter().all(|c| is_space(*c)) {
                    return None;
                }
                break;
            };
            if i > 0 {
                if path.is_empty() {
                    if !rest.get(..i)?.iter().all(|c| is_space(*c)) {
                        return None;
                    }
                } else {
                    text = match text {
                        Text::Empty => Text::Span(pos, pos + i),
                        Text::Span(s, e) => {
                            buffer.clear();
                            buffer.push_str(xml.get(s..e)?);
                            buffer.push_str(xml.get(pos..pos + i)?);
                            Text::Buffer
                        }
                        Text::Buffer => {
                            buffer.push_str(xml.get(pos..pos + i)?);
                            Text::Buffer
                        }
                    };
                }
            }
            pos += i;
            if rest.get(i) == Some(&b'&') {
                let after = b.get(pos + 1..)?;
                let end = find3(b';', b'&', b'<', after)?;
                if end == 0 || after.get(end) != Some(&b';') || path.is_empty() {
                    return None;
                }
                let name = xml.get(pos + 1..pos + 1 + end)?;
                match text {
                    Text::Empty => buffer.clear(),
                    Text::Span(s, e) => {
                        buffer.clear();
                        buffer.push_str(xml.get(s..e)?);
                    }
                    Text::Buffer => {}
                }
                super::push_reference(&mut buffer, &BytesRef::new(name));
                text = Text::Buffer;
                pos += end + 2;
                continue;
            }
            // Most of an event: `<Data Name="x">value</Data>` under `EventData`, read whole
            // when it is exactly that (else as any element, below).
            if doc.section == Section::EventData && path.len() == 2 {
                if let Some((name, value, next)) = data_element(xml, pos) {
                    doc.data(name, value);
                    text = Text::Empty;
                    pos = next;
                    continue;
                }
            }
            match b.get(pos + 1) {
                Some(b'?') => {
                    // The declaration or a processing instruction: skipped, as the general
                    // reader's caller does.
                    if saw_root {
                        return None;
                    }
                    let end = memmem::find(b.get(pos + 2..)?, b"?>")?;
                    pos += 2 + end + 2;
                }
                Some(b'/') => {
                    let after = b.get(pos + 2..)?;
                    let gt = find1(b'>', after)?;
                    // Trailing white space in an end tag is allowed, as the general reader allows.
                    let name = xml
                        .get(pos + 2..pos + 2 + gt)?
                        .trim_end_matches(is_space_char);
                    if full.last() != Some(&name) {
                        return None;
                    }
                    full.pop();
                    let local_name = path.pop()?;
                    let t = match text {
                        Text::Empty => "",
                        Text::Span(s, e) => xml.get(s..e)?,
                        Text::Buffer => buffer.as_str(),
                    };
                    doc.end_with(local_name, &path, t);
                    text = Text::Empty;
                    pos += 2 + gt + 1;
                }
                Some(c) if is_name_byte(*c) => {
                    // The tag ends at the first `>` outside a quoted value.
                    let start = pos + 1;
                    let mut at = start;
                    let gt = loop {
                        let k = at + find3(b'>', b'"', b'\'', b.get(at..)?)?;
                        let q = *b.get(k)?;
                        if q == b'>' {
                            break k;
                        }
                        at = k + 1 + find1(q, b.get(k + 1..)?)? + 1;
                    };
                    let mut content = xml.get(start..gt)?;
                    let empty = content.ends_with('/');
                    if empty {
                        content = content.get(..content.len() - 1)?;
                    }
                    let name_len = content
                        .bytes()
                        .position(|c| !is_name_byte(c))
                        .unwrap_or(content.len());
                    let (name, raw_attrs) = content.split_at_checked(name_len)?;
                    if raw_attrs.bytes().next().is_some_and(|c| !is_space(c)) {
                        return None;
                    }
                    // Read on the first lookup (most elements have none looked up).
                    let read = Cell::new(None);
                    let get = |n: &str| {
                        let ok = match read.get() {
                            Some(ok) => ok,
                            None => {
                                let ok = read_attrs(raw_attrs, &mut attrs.borrow_mut());
                                read.set(Some(ok));
                                ok
                            }
                        };
                        ok.then(|| attr_value(&attrs.borrow(), n)).flatten()
                    };
                    let local_name = local(name);
                    if path.is_empty() {
                        if saw_root || empty || local_name != "Event" {
                            return None;
                        }
                        saw_root = true;
                    }
                    if path.len() >= MAX_DEPTH {
                        return None;
                    }
                    if empty {
                        doc.empty(&get, local_name, &path);
                    } else {
                        doc.start(&get, local_name, &path);
                        text = Text::Empty;
                        full.push(name);
                        path.push(local_name);
                    }
                    if read.get() == Some(false) {
                        return None;
                    }
                    pos = gt + 1;
                }
                // Comments, CDATA, DTDs and anything stranger.
                _ => return None,
            }
        }
        if !saw_root {
            return None;
        }
        doc.finish()
    }
}

#[cfg(test)]
mod tests;
