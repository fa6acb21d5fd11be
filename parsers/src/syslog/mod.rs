/*!
Syslog: RFC 5424 and RFC 3164 (BSD), as devices really send them.

Parsing is done by `syslog_loose` in its exact mode (RFC 5424 first, then RFC 3164), with a time
zone for timestamps that carry none and a year inferred from the arrival time for RFC 3164
timestamps that carry no year. When neither grammar fits, a small fallback reads the forms network
gear uses that `syslog_loose` does not: Cisco IOS sequence numbers and `*`/`.` time-sync markers,
millisecond timestamps, and PRI-only messages such as FortiGate's `<189>date=... time=...`. Input
with no PRI and no timestamp is not syslog: it becomes a raw event (see [`normalise`]).

What ends up where (ECS names):

| syslog                | event                                                          |
|-----------------------|----------------------------------------------------------------|
| PRI                   | `log.syslog.priority`, `log.syslog.facility.*`, `log.syslog.severity.*`, `log.level`, `event.severity` |
| VERSION               | `log.syslog.version` (RFC 5424 only)                           |
| TIMESTAMP             | `@timestamp` (UTC); `event.timezone` when the zone was assumed |
| HOSTNAME              | `log.syslog.hostname`, `host.hostname`, `host.name`, `related.hosts` (and `host.ip`, `related.ip` when it is an address) |
| APP-NAME / TAG        | `log.syslog.appname`, `process.name`                          |
| PROCID / `[pid]`      | `log.syslog.procid`, `process.pid` when numeric               |
| MSGID                 | `log.syslog.msgid`                                             |
| STRUCTURED-DATA       | `log.syslog.structured_data.<SD-ID>.<PARAM>`, values unescaped (`\"`, `\\`, `\]`) |
| MSG                   | `message` (a leading UTF-8 BOM removed)                        |
| the raw line          | `event.original` (unless [`ParseContext::keep_original`] is off) |
| sender address        | `weir.input.peer_ip`, `weir.input.peer_port`, `related.ip`     |

On top of the header, [`vendor`] recognises a few device payloads and fills `observer.*`,
`event.code` and, for FortiGate, the device's own timestamp.
*/

mod fallback;
mod time;
pub mod vendor;

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use chrono::{DateTime, Datelike as _, FixedOffset, Utc};
pub use chrono_tz::Tz;
use syslog_loose::{ProcId, Protocol, SyslogFacility, SyslogSeverity, Variant};
use weir_schemas::{CodeName, ErrorInfo, Event, EventClass, Host, Log, Process, SdValue, Syslog};

/// What a syslog parser needs to know beyond the bytes.
#[derive(Clone, Debug)]
pub struct ParseContext {
    /// When the message arrived (used when it has no timestamp, and to infer RFC 3164 years).
    pub received_at: DateTime<Utc>,
    /// The zone a timestamp without offset is read in (per source; default UTC).
    pub timezone: Tz,
    /// Who sent the bytes, if known.
    pub peer: Option<SocketAddr>,
    /// The input type recorded in `weir.input.type` (`syslog_udp`, `syslog_tcp`, ...).
    pub input: &'static str,
    /// Keep the raw line in `event.original`.
    pub keep_original: bool,
}

impl ParseContext {
    /// A context for `input` with UTC, no peer, and `event.original` kept.
    pub fn new(received_at: DateTime<Utc>, input: &'static str) -> ParseContext {
        ParseContext {
            received_at,
            timezone: Tz::UTC,
            peer: None,
            input,
            keep_original: true,
        }
    }
}

/// Why a line is not syslog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Nothing but white space.
    #[error("empty message")]
    Empty,
    /// Neither a PRI nor a timestamp could be found.
    #[error("no syslog header (no <PRI> and no timestamp)")]
    NoHeader,
    /// A `<` starts the line but what follows is not a PRI of 0..=191.
    #[error("invalid PRI {0:?}")]
    InvalidPri(String),
}

impl ParseError {
    /// A short stable code for `weir.parse_error` and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::Empty => "empty",
            ParseError::NoHeader => "no_syslog_header",
            ParseError::InvalidPri(_) => "invalid_pri",
        }
    }
}

/// Parse one syslog message (one datagram or one TCP frame, without its framing).
pub fn parse(bytes: &[u8], ctx: &ParseContext) -> Result<Event, ParseError> {
    let (text, lossy) = decode(bytes);
    let line = trim_line(&text);
    if line.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let parsed = parse_header(line, ctx)?;
    let mut event = build(parsed, ctx);
    vendor::enrich(&mut event, ctx);
    if let Some(windows) = snare(&event, &text, ctx) {
        return Ok(windows);
    }
    finish(&mut event, &text, lossy, ctx);
    Ok(event)
}

/// A Snare `MSWinEventLog` record inside the syslog message becomes a `windows` event, mapped
/// as the same event read from XML would be, keeping the syslog header in `log.syslog.*`.
fn snare(syslog: &Event, text: &str, ctx: &ParseContext) -> Option<Event> {
    use crate::windows::{self, snare, WinContext};
    let header = syslog.log.as_ref().and_then(|l| l.syslog.as_ref());
    let fields = snare::fields(
        header.and_then(|h| h.appname.as_deref()),
        syslog.message.as_deref()?,
    )?;
    let mut record = snare::to_win_event(&fields, ctx.timezone)?;
    record.time_created = record.time_created.or(Some(syslog.timestamp));
    if record.computer.is_none() {
        record.computer = header.and_then(|h| h.hostname.clone());
    }
    let wctx = WinContext {
        received_at: ctx.received_at,
        peer: ctx.peer,
        input: ctx.input,
        keep_original: ctx.keep_original,
        timezone: ctx.timezone,
    };
    let mut event = windows::to_event(record, Some(trim_line(text)), &wctx);
    if let Some(log) = event.log.as_mut() {
        log.syslog = header.cloned();
    }
    event.tags.push(Cow::Borrowed("snare"));
    Some(event)
}

/// Parse one syslog message; input that does not parse becomes a tagged raw event.
pub fn normalise(bytes: &[u8], ctx: &ParseContext) -> Event {
    match parse(bytes, ctx) {
        Ok(event) => event,
        Err(error) => raw_event(bytes, error.code(), &error.to_string(), ctx),
    }
}

/// The raw event for input that could not be parsed (or framed): `event.kind =
/// pipeline_error`, the text as `message` (invalid UTF-8 replaced), `weir.parse_error = code`,
/// `error.type = code`, `error.message = detail`, the tag `weir_parse_failure`, and the input in
/// `event.original` when the context keeps originals.
pub fn raw_event(bytes: &[u8], code: &'static str, detail: &str, ctx: &ParseContext) -> Event {
    let (text, lossy) = decode(bytes);
    let mut event = Event::new(EventClass::Syslog, ctx.received_at);
    event.event.kind = Cow::Borrowed("pipeline_error");
    event.message = Some(trim_line(&text).to_owned());
    event.tags.push(Cow::Borrowed("weir_parse_failure"));
    event.weir.parse_error = Some(code.to_owned());
    event.error = Some(ErrorInfo {
        kind: Some(Cow::Borrowed(code)),
        message: Some(detail.to_owned()),
    });
    finish(&mut event, &text, lossy, ctx);
    event
}

/// Bytes to text. Invalid UTF-8 is replaced (U+FFFD) and reported, never rejected: a device
/// that sends Latin-1 still deserves to be heard.
fn decode(bytes: &[u8]) -> (Cow<'_, str>, bool) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (Cow::Borrowed(text), false),
        Err(_) => (String::from_utf8_lossy(bytes), true),
    }
}

/// Drop the line terminator and NUL padding some devices append.
fn trim_line(text: &str) -> &str {
    text.trim_end_matches(['\n', '\r', '\0'])
}

/// The header fields, borrowed from the line.
struct Parsed<'a> {
    rfc5424: bool,
    pri: Option<(SyslogFacility, SyslogSeverity)>,
    timestamp: Option<DateTime<FixedOffset>>,
    /// The time zone was assumed (the timestamp carried no offset).
    zone_assumed: bool,
    hostname: Option<&'a str>,
    appname: Option<&'a str>,
    procid: Option<Cow<'a, str>>,
    msgid: Option<&'a str>,
    structured_data: Vec<syslog_loose::StructuredElement<&'a str>>,
    msg: &'a str,
}

fn parse_header<'a>(line: &'a str, ctx: &ParseContext) -> Result<Parsed<'a>, ParseError> {
    let tz = ctx.timezone;
    let local_now = ctx.received_at.with_timezone(&tz).naive_local();
    let infer = move |date: syslog_loose::IncompleteDate| time::infer_year(date, local_now);
    if let Ok(m) =
        syslog_loose::parse_message_with_year_exact_tz(line, infer, Some(tz), Variant::Either)
    {
        let rfc5424 = matches!(m.protocol, Protocol::RFC5424(_));
        // syslog_loose accepts RFC 3164 lines with no PRI; without a PRI and without a
        // timestamp there is nothing syslog about the line.
        let pri = m.facility.zip(m.severity);
        if pri.is_some() || m.timestamp.is_some() {
            if line.starts_with('<') && pri.is_none() {
                return Err(ParseError::InvalidPri(pri_text(line)));
            }
            let (mut hostname, mut appname, mut msg) = (m.hostname, m.appname, m.msg);
            if !rfc5424 {
                // A "tag" not followed by ':' or '[' is the first word of the message
                // ("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!", Palo Alto's CSV).
                if let (Some(tag), None) = (appname, &m.procid) {
                    if let Some(start) = offset_in(line, tag) {
                        let next = line.get(start + tag.len()..).and_then(|r| r.chars().next());
                        if !matches!(next, Some(':' | '[' | '\t')) {
                            appname = None;
                            msg = line.get(start..).unwrap_or(msg);
                        }
                    }
                }
                // Cisco ASA without a device name: "<166>Jan 01 2026 00:00:01: %ASA-6-...".
                if let Some(host) = hostname.filter(|h| h.starts_with('%')) {
                    hostname = None;
                    msg = offset_in(line, host)
                        .and_then(|at| line.get(at..))
                        .unwrap_or(msg);
                }
            }
            return Ok(Parsed {
                rfc5424,
                pri,
                timestamp: m.timestamp,
                zone_assumed: !rfc5424 && m.timestamp.is_some(),
                hostname,
                appname,
                procid: m.procid.map(|p| match p {
                    ProcId::PID(pid) => Cow::Owned(pid.to_string()),
                    ProcId::Name(name) => Cow::Borrowed(name),
                }),
                msgid: m.msgid,
                structured_data: m.structured_data,
                msg,
            });
        }
    }
    fallback::parse(line, ctx)
}

/// Where `part` (a sub-slice handed back by `syslog_loose`) starts inside `line`.
fn offset_in(line: &str, part: &str) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(line.as_ptr() as usize)?;
    (start + part.len() <= line.len()).then_some(start)
}

fn pri_text(line: &str) -> String {
    line.chars().take_while(|c| *c != '>').take(8).collect()
}

fn build(p: Parsed<'_>, ctx: &ParseContext) -> Event {
    // A year RFC 3339 cannot write (a five-digit year from a garbled RFC 3164 header) is not a
    // time: the arrival time stands in, and the event says so.
    let stated = p.timestamp.map(|t| t.with_timezone(&Utc));
    let out_of_range = stated.is_some_and(|t| !(1..=9999).contains(&t.year()));
    let timestamp = stated.filter(|_| !out_of_range).unwrap_or(ctx.received_at);
    let mut event = Event::new(EventClass::Syslog, timestamp);
    if out_of_range {
        event
            .tags
            .push(Cow::Borrowed("weir_timestamp_out_of_range"));
    }
    let mut syslog = Syslog::default();
    if let Some((facility, severity)) = p.pri {
        let (f, s) = (facility as i64, severity as i64);
        syslog.facility = Some(CodeName {
            code: f,
            name: Cow::Borrowed(facility.as_str()),
        });
        syslog.severity = Some(CodeName {
            code: s,
            name: Cow::Borrowed(severity.as_str()),
        });
        syslog.priority = Some(f * 8 + s);
        event.event.severity = Some(s);
        event.log = Some(Log {
            level: Some(Cow::Borrowed(severity.as_str())),
            ..Log::default()
        });
    }
    if p.rfc5424 {
        syslog.version = Some("1".to_owned());
    }
    if p.zone_assumed {
        event.event.timezone = Some(ctx.timezone.name().to_owned());
    }
    if let Some(host) = p.hostname {
        syslog.hostname = Some(host.to_owned());
        let mut h = Host {
            name: Some(host.to_owned()),
            hostname: Some(host.to_owned()),
            ..Host::default()
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            let ip = ip.to_string();
            event.relate_ip(&ip);
            h.ip.push(ip);
        } else {
            event.relate_host(host);
        }
        event.host = Some(h);
    }
    if let Some(app) = p.appname {
        syslog.appname = Some(app.to_owned());
    }
    if let Some(procid) = &p.procid {
        syslog.procid = Some(procid.to_string());
    }
    if p.appname.is_some() || p.procid.is_some() {
        event.process = Some(Process {
            name: p.appname.map(str::to_owned),
            pid: p.procid.as_deref().and_then(|s| s.parse::<i64>().ok()),
            ..Process::default()
        });
    }
    syslog.msgid = p.msgid.map(str::to_owned);
    for element in &p.structured_data {
        let params = syslog
            .structured_data
            .entry(element.id.to_owned())
            .or_default();
        for (name, value) in &element.params {
            let value = unescape_param(value);
            match params.get_mut(*name) {
                Some(existing) => existing.push(value),
                None => {
                    params.insert((*name).to_owned(), SdValue::One(value));
                }
            }
        }
    }
    let msg = p.msg.strip_prefix('\u{feff}').unwrap_or(p.msg);
    if !msg.is_empty() {
        event.message = Some(msg.to_owned());
    }
    event.log.get_or_insert_with(Log::default).syslog = Some(syslog);
    event
}

/// RFC 5424 §6.3.3: inside PARAM-VALUE, `"`, `\` and `]` are escaped with a backslash; a
/// backslash before any other character is kept as written.
pub fn unescape_param(raw: &str) -> String {
    if !raw.contains('\\') {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next @ ('"' | '\\' | ']')) = chars.peek() {
                out.push(next);
                chars.next();
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Stamp what every syslog event carries: creation time, dataset, input provenance, original.
fn finish(event: &mut Event, text: &str, lossy: bool, ctx: &ParseContext) {
    event.event.created = Some(ctx.received_at);
    event.event.dataset = Some(Cow::Borrowed("weir.syslog"));
    if lossy {
        event.tags.push(Cow::Borrowed("weir_invalid_utf8"));
    }
    event.set_input(ctx.input, ctx.peer);
    if ctx.keep_original {
        event.event.original = Some(trim_line(text).to_owned());
    }
}

#[cfg(test)]
mod tests;
