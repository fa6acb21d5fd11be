/*!
Windows events to ECS: a [`WinEvent`] (read from rendered XML by [`crate::winxml`], or built
from an agent's JSON) becomes an [`Event`] of class `windows` with the `winlog.*` fields
Winlogbeat writes and the ECS fields Elastic's detection rules, Sigma's Windows backends and the
Splunk Windows add-on look for.

Every event gets:

| from the record                 | event                                                         |
|---------------------------------|---------------------------------------------------------------|
| `TimeCreated/@SystemTime`       | `@timestamp` (the arrival time if absent)                     |
| `EventID`                       | `event.code`, `winlog.event_id` (strings)                     |
| `Provider/@Name`, `@Guid`       | `event.provider`, `winlog.provider_name`, `winlog.provider_guid` |
| `Channel`                       | `winlog.channel`; picks `event.module` (`security`, `sysmon`, `powershell`) |
| `Computer`                      | `winlog.computer_name`, `host.name`, `related.hosts`; `host.os.type = windows` |
| `Level` (or its rendered name)  | `log.level` (`information`, `warning`, ...)                    |
| `Task`, `Opcode`, `Keywords`    | `winlog.task`, `winlog.opcode`, `winlog.keywords` as names; Audit Success/Failure → `event.outcome` |
| `EventRecordID`, `Version`      | `winlog.record_id`, `winlog.version`                          |
| `Correlation`, `Execution`      | `winlog.activity_id`, `winlog.related_activity_id`, `winlog.process.pid`, `winlog.process.thread.id` |
| `Security/@UserID`              | `winlog.user.identifier`                                      |
| `EventData`, `UserData`         | `winlog.event_data.*`, `winlog.user_data.*` (values as written) |
| `RenderingInfo/Message`         | `message`                                                     |
| the XML                         | `event.original` (unless [`WinContext::keep_original`] is off) |

Then the channel's module adds meaning: [`security`] for the Security log (logons, account and
group management, process creation, services, scheduled tasks, Kerberos and NTLM, file shares,
the Windows firewall, log clearing), [`sysmon`] for Sysmon, [`powershell`] for PowerShell
script-block and module logging, [`system`] for the System log's service and log-clearing
events. Values of `-` or empty are never copied into ECS fields; hex numbers (`0x1a4`) become
numbers where ECS wants numbers.
*/

pub mod json;
mod powershell;
mod security;
pub mod snare;
mod sysmon;
mod system;
pub mod tables;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use chrono::{DateTime, Utc};
use weir_schemas::{
    ErrorInfo, Event, EventClass, Host, Log, Os, Pairs, Process, User, UserRef, Winlog,
    WinlogProcess, WinlogUser, Word,
};

use crate::winxml::{self, WinEvent, WinXmlError};

/// What the Windows mapping needs to know beyond the record.
#[derive(Clone, Debug)]
pub struct WinContext {
    /// When the record arrived (`event.created`; `@timestamp` when the record has no time).
    pub received_at: DateTime<Utc>,
    /// Who sent it, if it came over the network.
    pub peer: Option<SocketAddr>,
    /// The input type recorded in `weir.input.type` (`evtx`, `windows_json`, ...).
    pub input: &'static str,
    /// Keep the record as received in `event.original`.
    pub keep_original: bool,
    /// The zone a timestamp without offset is read in (NXLog's `EventTime`, Snare's date).
    pub timezone: chrono_tz::Tz,
}

impl WinContext {
    /// A context for `input` with no peer and `event.original` kept.
    pub fn new(received_at: DateTime<Utc>, input: &'static str) -> WinContext {
        WinContext {
            received_at,
            peer: None,
            input,
            keep_original: true,
            timezone: chrono_tz::Tz::UTC,
        }
    }
}

/// Parse one rendered event XML document and map it.
pub fn parse_xml(xml: &str, ctx: &WinContext) -> Result<Event, WinXmlError> {
    let record = winxml::parse(xml)?;
    Ok(to_event(record, ctx.keep_original.then_some(xml), ctx))
}

/// Parse and map one XML document; a document that is not a Windows event becomes a tagged raw
/// event (`weir.parse_error`), never nothing.
pub fn normalise_xml(xml: &str, ctx: &WinContext) -> Event {
    match parse_xml(xml, ctx) {
        Ok(event) => event,
        Err(error) => raw_event(xml, xml_error_code(&error), &error.to_string(), ctx),
    }
}

/// A record an `.evtx` reader rendered to XML (the `evtx` crate, for the `evtx_directory`
/// source and `weir replay`), mapped as [`normalise_xml`] maps a document: the XML declaration
/// dropped and the document moved, not copied, into `event.original`. A record whose template
/// is damaged may render without its record id or time; its header's (`record_id`, `time`)
/// fill them in.
pub fn rendered_record_event(
    mut xml: String,
    record_id: u64,
    time: Option<DateTime<Utc>>,
    ctx: &WinContext,
) -> Event {
    let declaration = xml.len() - winxml::strip_declaration(&xml).len();
    xml.drain(..declaration);
    match winxml::parse(&xml) {
        Ok(mut rec) => {
            rec.record_id.get_or_insert(record_id);
            if rec.time_created.is_none() {
                rec.time_created = time;
            }
            let mut event = to_event(rec, None, ctx);
            if ctx.keep_original {
                event.event.original = Some(xml);
            }
            event
        }
        Err(error) => raw_event(&xml, xml_error_code(&error), &error.to_string(), ctx),
    }
}

/// Read one JSON record (NXLog, Winlogbeat or OpenWEC shape, see [`json`]) and map it; the
/// shape found is returned with the event.
pub fn parse_json(bytes: &[u8], ctx: &WinContext) -> Result<(Event, json::Shape), json::JsonError> {
    let (record, shape) = json::parse(bytes, ctx.timezone)?;
    let text = String::from_utf8_lossy(bytes);
    let mut event = to_event(record, Some(text.trim_end()), ctx);
    event.tags.push(Cow::Borrowed(shape.as_str()));
    Ok((event, shape))
}

/// Read and map one JSON record; anything else becomes a tagged raw event.
pub fn normalise_json(bytes: &[u8], ctx: &WinContext) -> Event {
    match parse_json(bytes, ctx) {
        Ok((event, _)) => event,
        Err(error) => raw_event(
            String::from_utf8_lossy(bytes).trim_end(),
            error.code(),
            &error.to_string(),
            ctx,
        ),
    }
}

/// The short stable code of an XML error for `weir.parse_error`.
pub fn xml_error_code(error: &WinXmlError) -> &'static str {
    match error {
        WinXmlError::Malformed { .. } => "malformed_xml",
        WinXmlError::NotAnEvent(_) => "not_a_windows_event",
        WinXmlError::NoEventId => "no_event_id",
        WinXmlError::TooDeep => "xml_too_deep",
    }
}

/// A record that could not be read, kept as a raw `windows` event.
pub fn raw_event(text: &str, code: &'static str, detail: &str, ctx: &WinContext) -> Event {
    let mut event = Event::new(EventClass::Windows, ctx.received_at);
    event.event.kind = Cow::Borrowed("pipeline_error");
    event.tags.push(Cow::Borrowed("weir_parse_failure"));
    event.weir.parse_error = Some(code.to_owned());
    event.error = Some(ErrorInfo {
        kind: Some(Cow::Borrowed(code)),
        message: Some(detail.to_owned()),
    });
    event.message = Some(text.to_owned());
    finish(&mut event, Some(text), ctx);
    event
}

/// Map a Windows event record. `original` goes to `event.original` when given. What the
/// record says moves into the event uncopied where the event keeps it once (`winlog.*`,
/// `EventData` and `UserData` among it).
pub fn to_event(mut rec: WinEvent, original: Option<&str>, ctx: &WinContext) -> Event {
    let mut event = map(&mut rec, original, ctx);
    if let Some(winlog) = event.winlog.as_mut() {
        let mut user_data = Vec::with_capacity(rec.user_data.len() + 1);
        if let Some(name) = rec.user_data_name.take() {
            user_data.push(("xml_name".to_owned(), name));
        }
        user_data.append(&mut rec.user_data);
        winlog.provider_name = rec.provider_name.take();
        winlog.event_data = Pairs::owned(std::mem::take(&mut rec.event_data));
        winlog.user_data = Pairs::owned(user_data);
    }
    event
}

/// Which module reads the event's semantics.
#[derive(Clone, Copy)]
enum Module {
    Security,
    Sysmon,
    PowerShell,
    System,
    Other,
}

impl Module {
    fn of(rec: &WinEvent, security_provider: bool) -> Module {
        let channel = rec.channel.as_deref().unwrap_or_default();
        let provider = rec.provider_name.as_deref().unwrap_or_default();
        if channel.eq_ignore_ascii_case("Security") && security_provider {
            Module::Security
        } else if channel.eq_ignore_ascii_case("Microsoft-Windows-Sysmon/Operational") {
            Module::Sysmon
        } else if channel.eq_ignore_ascii_case("Microsoft-Windows-PowerShell/Operational")
            || channel.eq_ignore_ascii_case("Windows PowerShell")
            || provider == "Microsoft-Windows-PowerShell"
        {
            Module::PowerShell
        } else if channel.eq_ignore_ascii_case("System") {
            Module::System
        } else {
            Module::Other
        }
    }
}

/// Everything but `winlog.provider_name`, `winlog.event_data` and `winlog.user_data` (which
/// the channel modules read from the record, not the event). Fields only the event keeps are
/// taken from `rec`.
fn map(rec: &mut WinEvent, original: Option<&str>, ctx: &WinContext) -> Event {
    let mut event = Event::new(
        EventClass::Windows,
        rec.time_created.unwrap_or(ctx.received_at),
    );
    let id = rec.event_id.to_string();
    event.event.code = Some(id.clone());
    event.event.provider = rec.provider_name.clone();
    let rendering = rec.rendering.take().unwrap_or_default();
    event.message = rendering.message.filter(|m| !m.is_empty());

    let level = match rendering.level.as_deref() {
        Some(name) if !name.is_empty() => Word::Owned(name.to_lowercase()),
        _ => Word::Borrowed(tables::level(rec.level.unwrap_or(0))),
    };
    event.log = Some(Log {
        level: Some(level),
        ..Log::default()
    });

    let computer = rec.computer.take();
    if let Some(name) = computer.as_deref().filter(|c| !c.is_empty()) {
        event.host = Some(windows_host(Some(name)));
        event.relate_host(name);
    } else {
        event.host = Some(windows_host(None));
    }

    let keywords: Vec<String> = if rendering.keywords.is_empty() {
        tables::keywords(rec.keywords.unwrap_or(0))
            .into_iter()
            .map(str::to_owned)
            .collect()
    } else {
        rendering.keywords
    };
    if keywords.iter().any(|k| k == "Audit Success") {
        event.event.outcome = Some(Cow::Borrowed("success"));
    } else if keywords.iter().any(|k| k == "Audit Failure") {
        event.event.outcome = Some(Cow::Borrowed("failure"));
    }

    let security_provider = matches!(
        rec.provider_name.as_deref(),
        Some("Microsoft-Windows-Security-Auditing" | "Microsoft-Windows-Eventlog")
    );
    let task = match rendering.task.filter(|t| !t.is_empty()) {
        Some(name) => Some(name),
        None => rec.task.map(|t| {
            let known = if security_provider {
                tables::security_task(t)
            } else {
                None
            };
            known.map_or_else(|| t.to_string(), str::to_owned)
        }),
    };
    let opcode = match rendering.opcode.filter(|o| !o.is_empty()) {
        Some(name) => Some(name),
        None => rec
            .opcode
            .map(|o| tables::opcode(o).map_or_else(|| o.to_string(), str::to_owned)),
    };

    let module = Module::of(rec, security_provider);
    event.winlog = Some(Box::new(Winlog {
        channel: rec.channel.take(),
        event_id: id,
        provider_name: None,
        provider_guid: rec.provider_guid.take(),
        record_id: rec.record_id.map(|r| r.to_string()),
        computer_name: computer,
        version: rec.version,
        task,
        opcode,
        keywords,
        activity_id: rec.activity_id.take(),
        related_activity_id: rec.related_activity_id.take(),
        process: (rec.process_id.is_some() || rec.thread_id.is_some()).then(|| WinlogProcess {
            pid: rec.process_id,
            thread: rec.thread_id.map(|id| weir_schemas::Thread { id }),
        }),
        user: rec.user_id.as_ref().map(|sid| WinlogUser {
            identifier: Some(sid.clone()),
        }),
        logon: None,
        event_data: Pairs::default(),
        user_data: Pairs::default(),
    }));

    let handled = match module {
        Module::Security => {
            event.event.module = Some(Cow::Borrowed("security"));
            security::apply(&mut event, rec)
        }
        Module::Sysmon => {
            event.event.module = Some(Cow::Borrowed("sysmon"));
            sysmon::apply(&mut event, rec)
        }
        Module::PowerShell => {
            event.event.module = Some(Cow::Borrowed("powershell"));
            powershell::apply(&mut event, rec)
        }
        Module::System => system::apply(&mut event, rec),
        Module::Other => false,
    };
    if !handled {
        // As Winlogbeat does: the task's name says what happened (a bare number does not).
        let task = event.winlog.as_ref().and_then(|w| w.task.clone());
        if let Some(task) = task.filter(|t| !t.bytes().all(|b| b.is_ascii_digit())) {
            event.event.action = Some(task);
        }
    }
    finish(&mut event, original, ctx);
    event
}

fn windows_host(name: Option<&str>) -> Host {
    Host {
        name: name.map(str::to_owned),
        os: Some(Os {
            kind: Some(Cow::Borrowed("windows")),
            family: Some(Cow::Borrowed("windows")),
            platform: Some(Cow::Borrowed("windows")),
        }),
        ..Host::default()
    }
}

fn finish(event: &mut Event, original: Option<&str>, ctx: &WinContext) {
    event.event.created = Some(ctx.received_at);
    event.event.dataset = Some(Cow::Borrowed("weir.windows"));
    event.set_input(ctx.input, ctx.peer);
    if let Some(text) = original.filter(|_| ctx.keep_original) {
        event.event.original = Some(text.to_owned());
    }
}

// ---- helpers shared by the modules ----------------------------------------------------------

/// `EventData/Data[@Name=name]` with `-` and empty values treated as absent.
fn data<'a>(rec: &'a WinEvent, name: &str) -> Option<&'a str> {
    meaningful(rec.data(name))
}

/// `UserData/*/name` with `-` and empty values treated as absent.
fn user_data<'a>(rec: &'a WinEvent, name: &str) -> Option<&'a str> {
    meaningful(
        rec.user_data
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str()),
    )
}

fn meaningful(value: Option<&str>) -> Option<&str> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "-" && *v != "{00000000-0000-0000-0000-000000000000}")
}

/// An IP address as Windows writes it (`::ffff:10.0.0.5` → `10.0.0.5`), if it is one.
fn ip(text: &str) -> Option<String> {
    let t = text.trim().trim_start_matches('[').trim_end_matches(']');
    t.parse::<IpAddr>()
        .ok()
        .map(|ip| ip.to_canonical().to_string())
}

/// A port, unless 0 (Windows writes 0 or `-` when there is none).
fn port(text: &str) -> Option<u16> {
    tables::number(text)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|p| *p != 0)
}

/// A number for a pid field (`0x1a4` or `420`).
fn pid(text: &str) -> Option<i64> {
    tables::number(text).and_then(|n| i64::try_from(n).ok())
}

/// The last component of a Windows (or device) path.
fn basename(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

/// `DOMAIN\name` → (Some(domain), name); `name@realm` and bare names → (None, name).
fn split_account(text: &str) -> (Option<&str>, &str) {
    match text.split_once('\\') {
        Some((domain, name)) if !domain.is_empty() => (Some(domain), name),
        _ => (None, text),
    }
}

/// Set `user.*` (the actor) from `prefix` + `UserName` / `DomainName` / `UserSid` (or `Sid`).
fn set_user(event: &mut Event, rec: &WinEvent, prefix: &str) {
    let name = data(rec, &format!("{prefix}UserName"));
    let domain = data(rec, &format!("{prefix}DomainName"));
    let sid = data(rec, &format!("{prefix}UserSid")).or_else(|| data(rec, &format!("{prefix}Sid")));
    if name.is_none() && domain.is_none() && sid.is_none() {
        return;
    }
    let user = event.user.get_or_insert_with(User::default);
    user.name = name.map(str::to_owned);
    user.domain = domain.map(str::to_owned);
    user.id = sid.map(str::to_owned);
    if let Some(name) = name {
        event.relate_user(name);
    }
}

/// An account reference from `prefix` + `UserName` / `DomainName` / `UserSid` (or `Sid`).
fn account(rec: &WinEvent, prefix: &str) -> Option<UserRef> {
    let r = UserRef {
        name: data(rec, &format!("{prefix}UserName")).map(str::to_owned),
        domain: data(rec, &format!("{prefix}DomainName")).map(str::to_owned),
        id: data(rec, &format!("{prefix}UserSid"))
            .or_else(|| data(rec, &format!("{prefix}Sid")))
            .map(str::to_owned),
    };
    (!r.is_empty()).then_some(r)
}

/// `user.*` from a `DOMAIN\name` text (Sysmon's `User`, PowerShell's `User`).
fn set_user_from_account(event: &mut Event, text: &str) {
    let (domain, name) = split_account(text);
    if name.is_empty() {
        return;
    }
    let user = event.user.get_or_insert_with(User::default);
    user.name = Some(name.to_owned());
    user.domain = domain.map(str::to_owned);
    event.relate_user(name);
}

fn process(event: &mut Event) -> &mut Process {
    event.process.get_or_insert_with(Process::default)
}

/// `process.executable` and `process.name` from a path.
fn set_executable(event: &mut Event, path: &str) {
    let p = process(event);
    p.name = Some(basename(path).to_owned());
    p.executable = Some(path.to_owned());
}

fn set_categories(
    event: &mut Event,
    category: &[&'static str],
    kind: &[&'static str],
    action: &str,
) {
    event.event.category = category.iter().map(|c| Cow::Borrowed(*c)).collect();
    event.event.kind_type = kind.iter().map(|c| Cow::Borrowed(*c)).collect();
    event.event.action = Some(action.to_owned());
}

fn winlog(event: &mut Event) -> &mut Winlog {
    event
        .winlog
        .get_or_insert_with(|| Box::new(Winlog::default()))
}

/// Endpoint `source` / `destination` address and port.
fn set_endpoint(
    endpoint: &mut Option<weir_schemas::Endpoint>,
    address: Option<&str>,
    port_text: Option<&str>,
) -> Option<String> {
    let ip = address.and_then(ip);
    let port = port_text.and_then(port);
    if ip.is_none() && port.is_none() {
        return None;
    }
    let e = endpoint.get_or_insert_with(weir_schemas::Endpoint::default);
    e.ip = ip.clone();
    e.port = port;
    ip
}
