//! Building the collector's replies: `EnumerateResponse` carrying one `Subscribe` envelope per
//! subscription offered, `Ack`, and SOAP faults. Every value taken from a request or the
//! configuration is XML-escaped; the two XML fragments inserted as they are (the query list
//! from the configuration, checked when it is loaded, and the client's own bookmark list,
//! read from a well-formed request) are balanced documents.

use std::fmt::Write as _;

use quick_xml::escape::escape;

use super::envelope::Envelope;
use super::*;

/// One subscription as offered to one client.
#[derive(Debug, Clone)]
pub struct Offer<'a> {
    /// `m:Version`: a GUID that changes whenever the subscription's settings change.
    pub version: &'a str,
    /// `SubscriptionName` option.
    pub name: &'a str,
    /// `e:Identifier`: the subscription's GUID, sent back with every delivery.
    pub identifier: &'a str,
    /// Where deliveries (`NotifyTo`) and the end notice (`EndTo`) go.
    pub address: &'a str,
    /// The `QueryList` document.
    pub query: &'a str,
    /// `w:Heartbeats`, seconds.
    pub heartbeat_seconds: u64,
    /// `w:MaxTime`: how long the client may hold events before sending a batch, seconds.
    pub max_time_seconds: u64,
    /// `w:MaxEnvelopeSize`, bytes.
    pub max_envelope_bytes: u32,
    /// `w:MaxElements`: events per batch, if limited.
    pub max_items: Option<u32>,
    /// `ContentFormat`: `RenderedText` (event plus its message text) or `Raw`.
    pub content_format: &'a str,
    /// `ReadExistingEvents`: send what the channels already hold when there is no bookmark.
    pub read_existing_events: bool,
    /// Offer SLDC compression.
    pub compression: bool,
    /// Ask for UTF-8 deliveries instead of UTF-16.
    pub utf8: bool,
    /// SHA-1 thumbprint of the CA that issues client certificates (HTTPS mutual profile).
    pub issuer_thumbprint: &'a str,
    /// The client's last bookmark, if the collector holds one.
    pub bookmark: Option<&'a str>,
    /// `a:MessageID` of the embedded `Subscribe` envelope.
    pub message_id: &'a str,
}

const ENVELOPE_OPEN: &str = concat!(
    "<s:Envelope xml:lang=\"en-US\" xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"",
    " xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\"",
    " xmlns:n=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\"",
    " xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\"",
    " xmlns:p=\"http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd\">"
);

fn reply_header(out: &mut String, action: &str, message_id: &str, req: Option<&Envelope>) {
    out.push_str("<s:Header>");
    let _ = write!(out, "<a:Action>{action}</a:Action>");
    let _ = write!(out, "<a:MessageID>{}</a:MessageID>", escape(message_id));
    if let Some(op) = req.and_then(|r| r.operation_id.as_deref()) {
        let _ = write!(
            out,
            "<p:OperationID s:mustUnderstand=\"false\">{}</p:OperationID><p:SequenceId>1</p:SequenceId>",
            escape(op)
        );
    }
    let _ = write!(out, "<a:To>{ANONYMOUS}</a:To>");
    if let Some(r) = req {
        let _ = write!(out, "<a:RelatesTo>{}</a:RelatesTo>", escape(&r.message_id));
    }
    out.push_str("</s:Header>");
}

/// `Ack` for an `Events` or `Heartbeat` delivery (the client then advances its bookmark).
pub fn ack(req: &Envelope, message_id: &str) -> String {
    let mut out = String::with_capacity(900);
    out.push_str(ENVELOPE_OPEN);
    reply_header(&mut out, ACTION_ACK, message_id, Some(req));
    out.push_str("<s:Body></s:Body></s:Envelope>");
    out
}

/// `EnumerateResponse` with every offered subscription (`OptimizeEnumeration`: the items come
/// in the response, then `EndOfSequence`).
pub fn enumerate_response(req: &Envelope, message_id: &str, offers: &[Offer<'_>]) -> String {
    let mut out = String::with_capacity(2048 + 2048 * offers.len());
    out.push_str(ENVELOPE_OPEN);
    reply_header(&mut out, ACTION_ENUMERATE_RESPONSE, message_id, Some(req));
    out.push_str(
        "<s:Body><n:EnumerateResponse><n:EnumerationContext></n:EnumerationContext><w:Items>",
    );
    for o in offers {
        subscription(&mut out, o);
    }
    out.push_str("</w:Items><w:EndOfSequence/></n:EnumerateResponse></s:Body></s:Envelope>");
    out
}

fn reference(out: &mut String, o: &Offer<'_>) {
    let _ = write!(
        out,
        "<a:Address>{}</a:Address><a:ReferenceProperties><e:Identifier>{}</e:Identifier></a:ReferenceProperties>",
        escape(o.address),
        escape(o.identifier)
    );
}

fn subscription(out: &mut String, o: &Offer<'_>) {
    let _ = write!(
        out,
        "<m:Subscription xmlns:m=\"{NS_SUBSCRIPTION}\"><m:Version>uuid:{}</m:Version>",
        escape(o.version)
    );
    let _ = write!(
        out,
        concat!(
            "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"",
            " xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\"",
            " xmlns:e=\"http://schemas.xmlsoap.org/ws/2004/08/eventing\"",
            " xmlns:n=\"http://schemas.xmlsoap.org/ws/2004/09/enumeration\"",
            " xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\"",
            " xmlns:p=\"http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd\">",
            "<s:Header><a:To>{anon}</a:To>",
            "<w:ResourceURI s:mustUnderstand=\"true\">{res}</w:ResourceURI>",
            "<a:ReplyTo><a:Address s:mustUnderstand=\"true\">{anon}</a:Address></a:ReplyTo>",
            "<a:Action s:mustUnderstand=\"true\">{sub}</a:Action>",
            "<w:MaxEnvelopeSize s:mustUnderstand=\"true\">{max}</w:MaxEnvelopeSize>",
            "<a:MessageID>{mid}</a:MessageID>",
            "<w:Locale xml:lang=\"en-US\" s:mustUnderstand=\"false\"/>",
            "<p:DataLocale xml:lang=\"en-US\" s:mustUnderstand=\"false\"/>",
            "<w:OptionSet xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">",
            "<w:Option Name=\"SubscriptionName\">{name}</w:Option>"
        ),
        anon = ANONYMOUS,
        res = RESOURCE_EVENT_LOG,
        sub = ACTION_SUBSCRIBE,
        max = o.max_envelope_bytes,
        mid = escape(o.message_id),
        name = escape(o.name),
    );
    if o.compression {
        out.push_str("<w:Option Name=\"Compression\">SLDC</w:Option>");
    }
    out.push_str("<w:Option Name=\"CDATA\" xsi:nil=\"true\"/>");
    let _ = write!(
        out,
        "<w:Option Name=\"ContentFormat\">{}</w:Option>",
        escape(o.content_format)
    );
    out.push_str("<w:Option Name=\"IgnoreChannelError\" xsi:nil=\"true\"/>");
    if o.read_existing_events {
        out.push_str("<w:Option Name=\"ReadExistingEvents\" xsi:nil=\"true\"/>");
    }
    out.push_str("</w:OptionSet></s:Header><s:Body><e:Subscribe><e:EndTo>");
    reference(out, o);
    let _ = write!(
        out,
        "</e:EndTo><e:Delivery Mode=\"{DELIVERY_EVENTS}\"><w:Heartbeats>PT{}.000S</w:Heartbeats><e:NotifyTo>",
        o.heartbeat_seconds
    );
    reference(out, o);
    let _ = write!(
        out,
        concat!(
            "<c:Policy xmlns:c=\"http://schemas.xmlsoap.org/ws/2002/12/policy\"",
            " xmlns:auth=\"http://schemas.microsoft.com/wbem/wsman/1/authentication\">",
            "<c:ExactlyOne><c:All><auth:Authentication Profile=\"{profile}\">",
            "<auth:ClientCertificate><auth:Thumbprint Role=\"issuer\">{thumb}</auth:Thumbprint>",
            "</auth:ClientCertificate></auth:Authentication></c:All></c:ExactlyOne></c:Policy>",
            "</e:NotifyTo><w:ConnectionRetry Total=\"5\">PT60.0S</w:ConnectionRetry>",
            "<w:MaxTime>PT{maxtime}.000S</w:MaxTime>",
            "<w:MaxEnvelopeSize Policy=\"Notify\">{max}</w:MaxEnvelopeSize>"
        ),
        profile = PROFILE_HTTPS_MUTUAL,
        thumb = escape(o.issuer_thumbprint),
        maxtime = o.max_time_seconds,
        max = o.max_envelope_bytes,
    );
    if let Some(n) = o.max_items {
        let _ = write!(out, "<w:MaxElements>{n}</w:MaxElements>");
    }
    let _ = write!(
        out,
        concat!(
            "<w:Locale xml:lang=\"en-US\" s:mustUnderstand=\"false\"/>",
            "<p:DataLocale xml:lang=\"en-US\" s:mustUnderstand=\"false\"/>",
            "<w:ContentEncoding>{enc}</w:ContentEncoding></e:Delivery>",
            "<w:Filter Dialect=\"{dialect}\">{query}</w:Filter>"
        ),
        enc = if o.utf8 { "UTF-8" } else { "UTF-16" },
        dialect = DIALECT_EVENT_QUERY,
        query = o.query,
    );
    if let Some(b) = o.bookmark {
        let _ = write!(out, "<w:Bookmark>{b}</w:Bookmark>");
    }
    out.push_str("<w:SendBookmarks/></e:Subscribe></s:Body></s:Envelope></m:Subscription>");
}

/// A SOAP 1.2 fault, with the WS-Addressing or WS-Management subcode DSP0226 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `wsa:InvalidMessageInformationHeader`: no `a:Action` or `a:MessageID`.
    InvalidMessageInformationHeader,
    /// `wsa:ActionNotSupported`: an action this endpoint does not take.
    ActionNotSupported,
    /// `wsa:DestinationUnreachable`: no such subscription (or no longer offered).
    DestinationUnreachable,
    /// `wsman:EncodingLimit`: the body is larger than the advertised `MaxEnvelopeSize`.
    EncodingLimit,
    /// `wsman:SchemaValidationError`: not a well-formed SOAP envelope.
    SchemaValidationError,
    /// `wsman:InternalError`: the collector cannot take the events now (shutting down).
    InternalError,
}

impl Fault {
    /// `s:Sender` or `s:Receiver`, the fault's qualified subcode and its action URI.
    fn parts(self) -> (&'static str, &'static str, &'static str) {
        const WSA: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault";
        const WSMAN: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault";
        match self {
            Fault::InvalidMessageInformationHeader => {
                ("s:Sender", "a:InvalidMessageInformationHeader", WSA)
            }
            Fault::ActionNotSupported => ("s:Sender", "a:ActionNotSupported", WSA),
            Fault::DestinationUnreachable => ("s:Sender", "a:DestinationUnreachable", WSA),
            Fault::EncodingLimit => ("s:Sender", "w:EncodingLimit", WSMAN),
            Fault::SchemaValidationError => ("s:Sender", "w:SchemaValidationError", WSMAN),
            Fault::InternalError => ("s:Receiver", "w:InternalError", WSMAN),
        }
    }

    /// The subcode's local name (for counters and logs).
    pub fn name(self) -> &'static str {
        self.parts().1.split(':').nth(1).unwrap_or("fault")
    }
}

/// A fault envelope (`req`: the request, when it could be read, for `RelatesTo`).
pub fn fault(req: Option<&Envelope>, message_id: &str, fault: Fault, reason: &str) -> String {
    let (code, subcode, action) = fault.parts();
    let mut out = String::with_capacity(1200);
    out.push_str(ENVELOPE_OPEN);
    reply_header(
        &mut out,
        action,
        message_id,
        req.filter(|r| !r.message_id.is_empty()),
    );
    let _ = write!(
        out,
        concat!(
            "<s:Body><s:Fault><s:Code><s:Value>{code}</s:Value>",
            "<s:Subcode><s:Value>{subcode}</s:Value></s:Subcode></s:Code>",
            "<s:Reason><s:Text xml:lang=\"en-US\">{reason}</s:Text></s:Reason>",
            "</s:Fault></s:Body></s:Envelope>"
        ),
        code = code,
        subcode = subcode,
        reason = escape(reason),
    );
    out
}
