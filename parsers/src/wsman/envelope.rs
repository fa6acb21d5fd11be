//! Reading a WS-Management request envelope: the addressing headers every message carries,
//! the bookmark Windows sends with each batch, the events of an `Events` body and the status of
//! a `SubscriptionEnd`.

use quick_xml::events::{BytesStart, Event as Xml};
use quick_xml::Reader;

/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 32;

/// What a client asked for, and the events it sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// `a:Action`.
    pub action: String,
    /// `a:MessageID`: the reply's `a:RelatesTo`, verbatim (case kept, as MS-WSMV requires).
    pub message_id: String,
    /// `a:To`.
    pub to: Option<String>,
    /// `w:ResourceURI`.
    pub resource_uri: Option<String>,
    /// `m:MachineID`: the client's DNS name.
    pub machine_id: Option<String>,
    /// `e:Identifier`: the subscription the message belongs to.
    pub identifier: Option<String>,
    /// `p:OperationID`, echoed in the reply.
    pub operation_id: Option<String>,
    /// `p:SequenceId`.
    pub sequence_id: Option<String>,
    /// `w:AckRequested` present.
    pub ack_requested: bool,
    /// `w:Bookmark`'s content (a `BookmarkList` document), verbatim.
    pub bookmark: Option<String>,
    /// The `w:Event` items of an `Events` body, each a rendered event XML document.
    pub events: Vec<String>,
    /// `e:SubscriptionEnd/e:Status`.
    pub end_status: Option<String>,
    /// The text of a `SubscriptionEnd`'s fault detail (the client's reason).
    pub end_reason: Option<String>,
}

/// Why a body is not a usable envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Not well-formed XML.
    #[error("malformed XML at byte {at}: {reason}")]
    Malformed {
        /// Byte offset where reading stopped.
        at: u64,
        /// Why.
        reason: String,
    },
    /// The root element is not a SOAP `Envelope`.
    #[error("the root element is {0}, not a SOAP Envelope")]
    NotAnEnvelope(String),
    /// No `a:Action` header.
    #[error("no a:Action header")]
    NoAction,
    /// No `a:MessageID` header.
    #[error("no a:MessageID header")]
    NoMessageId,
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("elements nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

fn local(start: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(start.local_name().as_ref()).into_owned()
}

fn malformed(reader: &Reader<&[u8]>, reason: impl std::fmt::Display) -> EnvelopeError {
    EnvelopeError::Malformed {
        at: reader.buffer_position(),
        reason: reason.to_string(),
    }
}

/// The content of one `w:Event`: CDATA sections (how Windows sends events), escaped text, or
/// an inline element.
fn event_content(inner: &str) -> String {
    let t = inner.trim();
    if t.contains("<![CDATA[") {
        let mut out = String::new();
        let mut rest = t;
        while let Some(start) = rest.find("<![CDATA[") {
            let after = rest.get(start + 9..).unwrap_or("");
            match after.find("]]>") {
                Some(end) => {
                    out.push_str(after.get(..end).unwrap_or(""));
                    rest = after.get(end + 3..).unwrap_or("");
                }
                None => {
                    out.push_str(after);
                    break;
                }
            }
        }
        out
    } else if t.starts_with('<') {
        t.to_owned()
    } else {
        quick_xml::escape::unescape(t)
            .map(|c| c.into_owned())
            .unwrap_or_else(|_| t.to_owned())
    }
}

/// Read one request envelope.
pub fn parse(xml: &str) -> Result<Envelope, EnvelopeError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(false);
    let mut env = Envelope::default();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut reason_parts: Vec<String> = Vec::new();
    let mut saw_root = false;
    loop {
        let event = reader.read_event().map_err(|e| malformed(&reader, e))?;
        match event {
            Xml::Start(start) => {
                let name = local(&start);
                if path.is_empty() {
                    if saw_root {
                        return Err(malformed(&reader, "a second root element"));
                    }
                    saw_root = true;
                    if name != "Envelope" {
                        return Err(EnvelopeError::NotAnEnvelope(name));
                    }
                }
                if path.len() >= MAX_DEPTH {
                    return Err(EnvelopeError::TooDeep);
                }
                let in_header = path.len() == 2 && path.get(1).is_some_and(|p| p == "Header");
                let in_events = path.len() == 3
                    && path.get(1).is_some_and(|p| p == "Body")
                    && path.get(2).is_some_and(|p| p == "Events");
                if (in_header && name == "Bookmark") || (in_events && name == "Event") {
                    let span = reader
                        .read_to_end(start.name())
                        .map_err(|e| malformed(&reader, e))?;
                    let inner = usize::try_from(span.start)
                        .ok()
                        .zip(usize::try_from(span.end).ok())
                        .and_then(|(a, b)| xml.get(a..b))
                        .unwrap_or("");
                    if name == "Bookmark" {
                        env.bookmark = Some(inner.trim().to_owned());
                    } else {
                        env.events.push(event_content(inner));
                    }
                    continue;
                }
                if in_header && name == "AckRequested" {
                    env.ack_requested = true;
                }
                path.push(name);
                text.clear();
            }
            Xml::Empty(start) => {
                if path.is_empty() {
                    return Err(EnvelopeError::NotAnEnvelope(local(&start)));
                }
                let in_header = path.len() == 2 && path.get(1).is_some_and(|p| p == "Header");
                if in_header && local(&start) == "AckRequested" {
                    env.ack_requested = true;
                }
            }
            Xml::Text(t) => {
                let s = t.decode().map_err(|e| malformed(&reader, e))?;
                text.push_str(&s);
            }
            Xml::CData(t) => text.push_str(&String::from_utf8_lossy(&t.into_inner())),
            Xml::GeneralRef(r) => crate::winxml::push_reference(&mut text, &r),
            Xml::End(_) => {
                let Some(name) = path.pop() else {
                    return Err(malformed(&reader, "an end tag without a start"));
                };
                let value = text.trim();
                let section = path.get(1).map(String::as_str);
                if path.len() == 2 && section == Some("Header") {
                    let slot = match name.as_str() {
                        "Action" => Some(&mut env.action),
                        "MessageID" => Some(&mut env.message_id),
                        _ => None,
                    };
                    if let Some(slot) = slot {
                        *slot = value.to_owned();
                    } else {
                        let slot = match name.as_str() {
                            "To" => Some(&mut env.to),
                            "ResourceURI" => Some(&mut env.resource_uri),
                            "MachineID" => Some(&mut env.machine_id),
                            "Identifier" => Some(&mut env.identifier),
                            "OperationID" => Some(&mut env.operation_id),
                            "SequenceId" => Some(&mut env.sequence_id),
                            _ => None,
                        };
                        if let Some(slot) = slot {
                            *slot = Some(value.to_owned());
                        }
                    }
                } else if section == Some("Body")
                    && path.get(2).is_some_and(|p| p == "SubscriptionEnd")
                {
                    if path.len() == 3 && name == "Status" {
                        env.end_status = Some(value.to_owned());
                    } else if path.get(3).is_some_and(|p| p == "WSManFault")
                        && !value.is_empty()
                        && reason_parts.len() < 16
                    {
                        reason_parts.push(value.to_owned());
                    }
                }
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
    if env.action.is_empty() {
        return Err(EnvelopeError::NoAction);
    }
    if env.message_id.is_empty() {
        return Err(EnvelopeError::NoMessageId);
    }
    if !reason_parts.is_empty() {
        env.end_reason = Some(reason_parts.join(" "));
    }
    Ok(env)
}
