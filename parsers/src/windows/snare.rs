//! Snare for Windows (and NXLog's `to_syslog_snare`, and the many SIEM agents that copied it):
//! Windows events as tab-separated `MSWinEventLog` records inside syslog.
//!
//! ```text
//! MSWinEventLog <TAB> criticality <TAB> log name <TAB> Snare counter <TAB> Thu Jan 01 00:00:01 2026
//! <TAB> event id <TAB> source (provider) <TAB> user name <TAB> SID type <TAB> event log type
//! (Success Audit, Failure Audit, Information, Warning, Error) <TAB> computer <TAB> category (task)
//! <TAB> data <TAB> expanded message [<TAB> trailing counter or checksum]
//! ```
//!
//! The record carries no `EventData`: Snare sends the rendered message, with tabs and line
//! breaks flattened to runs of spaces. [`message_data`] reads the `Label: value` pairs of that
//! message back into the `EventData` names the XML would have held, for the labels the Security
//! and System events of [`super::security`] and [`super::system`] use, so a Snare record maps to
//! the same `user.*`, `source.*`, `process.*` and `event.*` as the same event as XML.

use chrono::{NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::winxml::{Rendering, WinEvent};

/// The tab-separated fields after `MSWinEventLog`, if `message` is a Snare record. The syslog
/// parser may have taken `MSWinEventLog` as the tag (`appname`); both forms are accepted.
pub fn fields<'a>(appname: Option<&str>, message: &'a str) -> Option<Vec<&'a str>> {
    let rest = match message.strip_prefix("MSWinEventLog") {
        Some(rest) => rest.strip_prefix('\t')?,
        None if appname == Some("MSWinEventLog") => message.trim_start_matches([' ', '\t']),
        None => return None,
    };
    let fields: Vec<&str> = rest.split('\t').collect();
    // criticality .. expanded message: 13 fields at least, the event id numeric.
    (fields.len() >= 13 && fields.get(4)?.trim().parse::<u32>().is_ok()).then_some(fields)
}

/// A [`WinEvent`] from the Snare fields (as [`fields`] returns them); the time is read in `tz`
/// (Snare writes the Windows host's local time).
pub fn to_win_event(f: &[&str], tz: Tz) -> Option<WinEvent> {
    let get = |i: usize| f.get(i).map(|s| s.trim()).filter(|s| !s.is_empty());
    let event_id: u32 = get(4)?.parse().ok()?;
    let channel = get(1).map(str::to_owned);
    let provider = get(5).map(str::to_owned);
    let computer = get(9).map(str::to_owned);
    let kind = get(8).unwrap_or_default();
    let (keywords, level) = match kind {
        "Success Audit" => (Some(0x0020_0000_0000_0000), Some(0)),
        "Failure Audit" => (Some(0x0010_0000_0000_0000), Some(0)),
        "Error" => (None, Some(2)),
        "Warning" => (None, Some(3)),
        "Critical" => (None, Some(1)),
        _ => (None, Some(4)),
    };
    let time_created = get(3).and_then(|t| {
        let naive = NaiveDateTime::parse_from_str(t, "%a %b %d %H:%M:%S %Y").ok()?;
        tz.from_local_datetime(&naive)
            .earliest()
            .map(|d| d.with_timezone(&Utc))
            // A year RFC 3339 cannot write (`-013`) is not a time (found by fuzzing).
            .filter(|d| (1..=9999).contains(&chrono::Datelike::year(d)))
    });
    let task = get(10).filter(|t| *t != "None").map(str::to_owned);
    let message = get(12).map(str::to_owned);
    let event_data = message
        .as_deref()
        .map(|m| message_data(event_id, m))
        .unwrap_or_default();
    Some(WinEvent {
        provider_name: provider,
        event_id,
        level,
        keywords,
        time_created,
        channel,
        computer,
        event_data,
        rendering: Some(Rendering {
            message,
            task,
            ..Rendering::default()
        }),
        ..WinEvent::default()
    })
}

/// Sections whose account is the event's target, and the name its SID field has.
fn section_prefix(section: &str) -> Option<(&'static str, &'static str)> {
    Some(match section {
        "Subject" | "Creator Subject" => ("Subject", "SubjectUserSid"),
        "New Logon"
        | "Target Subject"
        | "Account For Which Logon Failed"
        | "Account Whose Credentials Were Used"
        | "Logon Account" => ("Target", "TargetUserSid"),
        "Target Account"
        | "New Account"
        | "Group"
        | "Account That Was Locked Out"
        | "Account Information" => ("Target", "TargetSid"),
        "Member" => ("Member", "MemberSid"),
        _ => return None,
    })
}

/// `EventData` names for the `Label: value` pairs of a rendered Security or System message
/// (Snare's flattened text, or the multi-line `Message` of an agent's JSON). A label with no
/// value opens a section (`Subject:`, `New Logon:`, ...), which says whose account the
/// following `Security ID`, `Account Name`, `Account Domain` and `Logon ID` are.
pub fn message_data(event_id: u32, text: &str) -> Vec<(String, String)> {
    let firewall = matches!(event_id, 5031 | 5150..=5159);
    let labels = find_labels(text);
    let mut out: Vec<(String, String)> = Vec::new();
    let mut section: Option<(&str, &str)> = None;
    for (i, &(label_start, colon)) in labels.iter().enumerate() {
        let label = text.get(label_start..colon).unwrap_or_default().trim();
        let value_end = labels.get(i + 1).map_or(text.len(), |next| next.0);
        let value = text.get(colon + 1..value_end).unwrap_or_default().trim();
        if value.is_empty() {
            section = section_prefix(label);
            continue;
        }
        let name: Option<String> = match (section, label) {
            (Some((_, sid)), "Security ID") => Some(sid.to_owned()),
            (Some(("Member", _)), "Account Name") => Some("MemberName".into()),
            (Some((p, _)), "Account Name") => Some(format!("{p}UserName")),
            (Some((p, _)), "Account Domain" | "Domain Name") => Some(format!("{p}DomainName")),
            (Some((p, _)), "Logon ID") => Some(format!("{p}LogonId")),
            (_, "Group Name") => Some("TargetUserName".into()),
            (_, "Group Domain") => Some("TargetDomainName".into()),
            _ => label_name(label, firewall).map(str::to_owned),
        };
        if let Some(name) = name {
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, value.to_owned()));
            }
        }
    }
    out
}

/// Labels (and section names) of Security and System messages, including ones that are not
/// mapped: knowing them is what ends the previous value when the text is flattened to single
/// spaces.
const KNOWN_LABELS: &[&str] = &[
    "Subject",
    "Creator Subject",
    "Target Subject",
    "New Logon",
    "Account For Which Logon Failed",
    "Account Whose Credentials Were Used",
    "Target Account",
    "New Account",
    "Group",
    "Member",
    "Account That Was Locked Out",
    "Account Information",
    "Logon Information",
    "Network Information",
    "Process Information",
    "Failure Information",
    "Detailed Authentication Information",
    "Application Information",
    "Filter Information",
    "Service Information",
    "Additional Information",
    "Certificate Information",
    "Share Information",
    "Access Request Information",
    "Attributes",
    "Security ID",
    "Account Name",
    "Account Domain",
    "Domain Name",
    "Logon ID",
    "Logon Type",
    "Logon GUID",
    "Linked Logon ID",
    "Network Account Name",
    "Network Account Domain",
    "Restricted Admin Mode",
    "Virtual Account",
    "Elevated Token",
    "Impersonation Level",
    "Workstation Name",
    "Source Network Address",
    "Source Port",
    "Process ID",
    "Process Name",
    "New Process ID",
    "New Process Name",
    "Creator Process ID",
    "Creator Process Name",
    "Process Command Line",
    "Caller Process ID",
    "Caller Process Name",
    "Token Elevation Type",
    "Mandatory Label",
    "Logon Process",
    "Authentication Package",
    "Transited Services",
    "Package Name (NTLM only)",
    "Key Length",
    "Failure Reason",
    "Status",
    "Sub Status",
    "Service Name",
    "Service ID",
    "Service File Name",
    "Service Type",
    "Service Start Type",
    "Service Account",
    "Task Name",
    "Task Content",
    "Privileges",
    "Client Address",
    "Client Port",
    "Network Address",
    "Port",
    "Ticket Options",
    "Ticket Encryption Type",
    "Pre-Authentication Type",
    "Result Code",
    "Failure Code",
    "Error Code",
    "Logon Account",
    "Source Workstation",
    "Caller Computer Name",
    "Object Type",
    "Share Name",
    "Share Path",
    "Relative Target Name",
    "Access Mask",
    "Accesses",
    "Access Check Results",
    "Target Server Name",
    "Additional Information",
    "Application Name",
    "Direction",
    "Source Address",
    "Destination Address",
    "Destination Port",
    "Protocol",
    "Filter Run-Time ID",
    "Layer Name",
    "Layer Run-Time ID",
    "Group Name",
    "Group Domain",
    "Display Name",
    "User Principal Name",
    "Home Directory",
    "Home Drive",
    "Script Path",
    "Profile Path",
    "User Workstations",
    "Password Last Set",
    "Account Expires",
    "Primary Group ID",
    "Allowed To Delegate To",
    "Old UAC Value",
    "New UAC Value",
    "User Account Control",
    "User Parameters",
    "SID History",
    "Logon Hours",
    "Certificate Issuer Name",
    "Certificate Serial Number",
    "Certificate Thumbprint",
];

/// (label start, colon position) of each label in `text`, in order. A label is a known one
/// ending right before a colon that is followed by white space (or the end), or any short
/// capitalised phrase that starts a line (after a line break, a tab or a run of spaces).
fn find_labels(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    for (colon, _) in text.match_indices(':') {
        if bytes
            .get(colon + 1)
            .is_some_and(|b| !b.is_ascii_whitespace())
        {
            continue; // `C:\Windows`, `fe80::1`, `03:30:41`
        }
        let before = text.get(..colon).unwrap_or_default();
        let known = KNOWN_LABELS
            .iter()
            .filter(|l| before.ends_with(*l))
            .map(|l| colon - l.len())
            .filter(|&start| {
                start == 0 || bytes.get(start - 1).is_some_and(u8::is_ascii_whitespace)
            })
            .min();
        let start = known.or_else(|| line_label_start(before));
        if let Some(start) = start {
            if out.last().is_none_or(|&(_, prev)| start > prev) {
                out.push((start, colon));
            }
        }
    }
    out
}

/// Where a label that ends `before` starts, if it starts a line: after `\n`, `\t` or two
/// spaces, one to six words, the first capitalised.
fn line_label_start(before: &str) -> Option<usize> {
    let cut = before
        .rfind(['\n', '\t'])
        .map(|i| i + 1)
        .into_iter()
        .chain(before.rfind("  ").map(|i| i + 2))
        .max()
        .unwrap_or(0);
    let label = before.get(cut..)?;
    let words = label.split(' ').count();
    let ok = (1..=6).contains(&words)
        && label.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && !label.contains(['.', ':', ',']);
    ok.then_some(cut)
}

/// Labels that do not depend on the section.
fn label_name(label: &str, firewall: bool) -> Option<&'static str> {
    Some(match label {
        "Logon Type" => "LogonType",
        "Workstation Name" => "WorkstationName",
        "Source Network Address" | "Client Address" | "Network Address" => "IpAddress",
        "Source Port" if firewall => "SourcePort",
        "Source Port" | "Client Port" | "Port" => "IpPort",
        "Process ID" if firewall => "ProcessID",
        "Process ID" | "Creator Process ID" | "Caller Process ID" => "ProcessId",
        "Process Name" | "Caller Process Name" => "ProcessName",
        "New Process ID" => "NewProcessId",
        "New Process Name" => "NewProcessName",
        "Creator Process Name" => "ParentProcessName",
        "Process Command Line" => "CommandLine",
        "Failure Reason" => "FailureReason",
        "Status" | "Result Code" | "Failure Code" | "Error Code" => "Status",
        "Sub Status" => "SubStatus",
        "Service Name" => "ServiceName",
        "Service File Name" => "ServiceFileName",
        "Task Name" => "TaskName",
        "Source Workstation" => "Workstation",
        "Caller Computer Name" => "TargetDomainName",
        "Share Name" => "ShareName",
        "Share Path" => "ShareLocalPath",
        "Relative Target Name" => "RelativeTargetName",
        "Target Server Name" => "TargetServerName",
        "Application Name" => "Application",
        "Direction" => "Direction",
        "Source Address" => "SourceAddress",
        "Destination Address" => "DestAddress",
        "Destination Port" => "DestPort",
        "Protocol" => "Protocol",
        "Account Name" | "Logon Account" => "TargetUserName",
        _ => return None,
    })
}
