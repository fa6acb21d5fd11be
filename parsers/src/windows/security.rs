//! The Security log (`Microsoft-Windows-Security-Auditing`, and `Microsoft-Windows-Eventlog`
//! for 1100/1102/1104): ECS categorisation per event id (the same `event.action` words as
//! Winlogbeat's security module, so rules written for it match), and the actor, target, logon,
//! process, network and service fields each event carries.

use std::borrow::Cow;

use weir_schemas::{Event, File, LogonFailure, ParentProcess, Service, UserRef, Word};

use super::tables::{self, number};
use super::{
    account, basename, data, process, set_categories, set_endpoint, set_executable, set_user,
    user_data, winlog, WinEvent,
};

type Categorisation = (
    &'static [&'static str],
    &'static [&'static str],
    &'static str,
);

/// `event.category`, `event.type` and `event.action` for an event id.
fn categorise(id: u32) -> Option<Categorisation> {
    const AUTH: &[&str] = &["authentication"];
    const IAM: &[&str] = &["iam"];
    const IAM_CONF: &[&str] = &["iam", "configuration"];
    const PROCESS: &[&str] = &["process"];
    const NETWORK: &[&str] = &["network"];
    Some(match id {
        1100 => (PROCESS, &["end"], "logging-service-shutdown"),
        1102 => (IAM, &["admin", "change"], "audit-log-cleared"),
        1104 => (IAM, &["admin"], "logging-full"),
        4616 => (&["configuration"], &["change"], "system-time-changed"),
        4624 => (AUTH, &["start"], "logged-in"),
        4625 => (AUTH, &["start"], "logon-failed"),
        4634 => (AUTH, &["end"], "logged-out"),
        4647 => (AUTH, &["end"], "logged-out"),
        4648 => (AUTH, &["start"], "logged-in-explicit"),
        4672 => (IAM, &["admin"], "logged-in-special"),
        4673 => (IAM, &["admin"], "privileged-service-called"),
        4674 => (IAM, &["admin"], "privileged-operation"),
        4688 => (PROCESS, &["start"], "created-process"),
        4689 => (PROCESS, &["end"], "exited-process"),
        4697 => (IAM_CONF, &["admin", "change"], "service-installed"),
        4698 => (IAM_CONF, &["creation", "admin"], "scheduled-task-created"),
        4699 => (IAM_CONF, &["deletion", "admin"], "scheduled-task-deleted"),
        4700 => (IAM_CONF, &["change", "admin"], "scheduled-task-enabled"),
        4701 => (IAM_CONF, &["change", "admin"], "scheduled-task-disabled"),
        4702 => (IAM_CONF, &["change", "admin"], "scheduled-task-updated"),
        4719 => (IAM_CONF, &["admin", "change"], "changed-audit-config"),
        4720 => (IAM, &["user", "creation"], "added-user-account"),
        4722 => (IAM, &["user", "change"], "enabled-user-account"),
        4723 => (IAM, &["user", "change"], "changed-password"),
        4724 => (IAM, &["user", "change"], "reset-password"),
        4725 => (IAM, &["user", "deletion"], "disabled-user-account"),
        4726 => (IAM, &["user", "deletion"], "deleted-user-account"),
        4727 | 4731 | 4754 => (IAM, &["group", "creation"], "added-group-account"),
        4728 | 4732 | 4756 => (IAM, &["group", "change"], "added-member-to-group"),
        4729 | 4733 | 4757 => (IAM, &["group", "change"], "removed-member-from-group"),
        4730 | 4734 | 4758 => (IAM, &["group", "deletion"], "deleted-group-account"),
        4735 | 4737 | 4755 => (IAM, &["group", "change"], "modified-group-account"),
        4738 => (IAM, &["user", "change"], "modified-user-account"),
        4740 => (IAM, &["user", "change"], "locked-out-user-account"),
        4767 => (IAM, &["user", "change"], "unlocked-user-account"),
        4768 => (AUTH, &["start"], "kerberos-authentication-ticket-requested"),
        4769 => (AUTH, &["start"], "kerberos-service-ticket-requested"),
        4770 => (AUTH, &["start"], "kerberos-service-ticket-renewed"),
        4771 => (AUTH, &["start"], "kerberos-preauth-failed"),
        4776 => (AUTH, &["start"], "credential-validated"),
        4778 => (
            &["authentication", "session"],
            &["start"],
            "session-reconnected",
        ),
        4779 => (
            &["authentication", "session"],
            &["end"],
            "session-disconnected",
        ),
        4781 => (IAM, &["user", "change"], "renamed-user-account"),
        4798 => (IAM, &["user", "info"], "group-membership-enumerated"),
        4799 => (IAM, &["group", "info"], "user-member-enumerated"),
        5140 => (
            &["network", "file"],
            &["info", "access"],
            "network-share-object-accessed",
        ),
        5145 => (
            &["network", "file"],
            &["info", "access"],
            "network-share-object-access-checked",
        ),
        5152 => (
            NETWORK,
            &["info", "denied"],
            "windows-firewall-packet-block",
        ),
        5156 => (
            NETWORK,
            &["connection", "start", "allowed"],
            "windows-firewall-connection-allowed",
        ),
        5157 => (
            NETWORK,
            &["connection", "start", "denied"],
            "windows-firewall-connection-blocked",
        ),
        5158 => (
            NETWORK,
            &["info", "allowed"],
            "windows-firewall-bind-allowed",
        ),
        _ => return None,
    })
}

/// Map a Security log event; false when the id has no specific mapping (the actor is still
/// read from the `Subject*` fields).
pub(super) fn apply(event: &mut Event, rec: &WinEvent) -> bool {
    let id = rec.event_id;
    let Some((category, kind, action)) = categorise(id) else {
        set_user(event, rec, "Subject");
        set_logon(event, data(rec, "SubjectLogonId"), None);
        return false;
    };
    set_categories(event, category, kind, action);
    match id {
        4624 | 4625 | 4634 | 4647 => logon(event, rec),
        4648 => explicit_logon(event, rec),
        4688 => process_created(event, rec),
        4689 => {
            actor(event, rec);
            set_pid(event, data(rec, "ProcessId"));
            if let Some(path) = data(rec, "ProcessName") {
                set_executable(event, path);
            }
        }
        4697 => {
            actor(event, rec);
            set_service(event, data(rec, "ServiceName"));
        }
        4720 | 4722 | 4723 | 4724 | 4725 | 4726 | 4738 | 4767 | 4781 => {
            actor(event, rec);
            target_user(event, account(rec, "Target"));
        }
        4740 => {
            actor(event, rec);
            target_user(
                event,
                Some(UserRef {
                    name: data(rec, "TargetUserName").map(str::to_owned),
                    domain: None,
                    id: data(rec, "TargetSid").map(str::to_owned),
                }),
            );
            // "Caller Computer Name": where the failed attempts came from.
            if let Some(caller) = data(rec, "TargetDomainName") {
                event.source.get_or_insert_with(Default::default).domain = Some(caller.to_owned());
                event.relate_host(caller);
            }
        }
        4727..=4735 | 4737 | 4754..=4758 => group_change(event, rec),
        4768..=4771 => kerberos(event, rec),
        4776 => credential_validation(event, rec),
        5140 | 5145 => share_access(event, rec),
        5152 | 5156 | 5157 | 5158 => firewall(event, rec),
        1102 => {
            // The actor is in UserData/LogFileCleared (or, from a rendered message, EventData).
            let field = |name: &str| user_data(rec, name).or_else(|| data(rec, name));
            if let Some(name) = field("SubjectUserName") {
                let user = event.user.get_or_insert_with(Default::default);
                user.name = Some(name.to_owned());
                user.domain = field("SubjectDomainName").map(str::to_owned);
                user.id = field("SubjectUserSid").map(str::to_owned);
                event.relate_user(name);
            }
            set_logon(event, field("SubjectLogonId"), None);
        }
        _ => actor(event, rec),
    }
    if matches!(id, 4625 | 4771) {
        event.event.outcome = Some(Cow::Borrowed("failure"));
    }
    true
}

/// The `Subject*` fields as `user.*`, the subject's logon id as `winlog.logon.id`.
fn actor(event: &mut Event, rec: &WinEvent) {
    set_user(event, rec, "Subject");
    set_logon(event, data(rec, "SubjectLogonId"), None);
}

fn set_logon(event: &mut Event, id: Option<&str>, kind: Option<&'static str>) {
    if id.is_none() && kind.is_none() {
        return;
    }
    let logon = winlog(event).logon.get_or_insert_with(Default::default);
    if let Some(id) = id {
        logon.id = Some(id.to_owned());
    }
    if let Some(kind) = kind {
        logon.kind = Some(Cow::Borrowed(kind));
    }
}

fn set_pid(event: &mut Event, text: Option<&str>) {
    if let Some(pid) = text.and_then(super::pid).filter(|p| *p != 0) {
        process(event).pid = Some(pid);
    }
}

fn set_service(event: &mut Event, name: Option<&str>) {
    if let Some(name) = name {
        event.service = Some(Service {
            name: Some(name.to_owned()),
        });
    }
}

fn target_user(event: &mut Event, target: Option<UserRef>) {
    let Some(target) = target else { return };
    if let Some(name) = target.name.as_deref() {
        event.relate_user(name);
    }
    event.user.get_or_insert_with(Default::default).target = Some(target);
}

/// 4624, 4625, 4634, 4647: the account logged on (or off) is the target.
fn logon(event: &mut Event, rec: &WinEvent) {
    set_user(event, rec, "Target");
    if let Some(subject) = data(rec, "SubjectUserName") {
        event.relate_user(subject);
    }
    let kind = data(rec, "LogonType")
        .and_then(number)
        .and_then(|n| u32::try_from(n).ok())
        .and_then(tables::logon_type);
    set_logon(event, data(rec, "TargetLogonId"), kind);
    source(event, rec, "IpAddress", "IpPort");
    if let Some(workstation) = data(rec, "WorkstationName") {
        event.source.get_or_insert_with(Default::default).domain = Some(workstation.to_owned());
    }
    set_pid(event, data(rec, "ProcessId"));
    if let Some(path) = data(rec, "ProcessName") {
        set_executable(event, path);
    }
    if rec.event_id == 4625 {
        let failure = LogonFailure {
            reason: data(rec, "FailureReason").map(insert),
            status: data(rec, "Status").map(status),
            sub_status: data(rec, "SubStatus").map(status),
        };
        set_logon(event, None, None);
        winlog(event)
            .logon
            .get_or_insert_with(Default::default)
            .failure = Some(failure);
    }
}

/// 4648: the subject used the target's credentials.
fn explicit_logon(event: &mut Event, rec: &WinEvent) {
    actor(event, rec);
    let effective = UserRef {
        name: data(rec, "TargetUserName").map(str::to_owned),
        domain: data(rec, "TargetDomainName").map(str::to_owned),
        id: None,
    };
    if let Some(name) = effective.name.as_deref() {
        event.relate_user(name);
    }
    if !effective.is_empty() {
        event.user.get_or_insert_with(Default::default).effective = Some(effective);
    }
    source(event, rec, "IpAddress", "IpPort");
    if let Some(server) = data(rec, "TargetServerName") {
        event
            .destination
            .get_or_insert_with(Default::default)
            .domain = Some(server.to_owned());
        event.relate_host(server);
    }
    set_pid(event, data(rec, "ProcessId"));
    if let Some(path) = data(rec, "ProcessName") {
        set_executable(event, path);
    }
}

/// 4688: the new process, its creator (parent) and the subject that ran it.
fn process_created(event: &mut Event, rec: &WinEvent) {
    actor(event, rec);
    if let Some(target) = data(rec, "TargetUserName") {
        event.relate_user(target);
    }
    set_pid(event, data(rec, "NewProcessId"));
    if let Some(path) = data(rec, "NewProcessName") {
        set_executable(event, path);
    }
    if let Some(cmd) = data(rec, "CommandLine") {
        process(event).command_line = Some(cmd.to_owned());
    }
    let parent = ParentProcess {
        pid: data(rec, "ProcessId").and_then(super::pid),
        executable: data(rec, "ParentProcessName").map(str::to_owned),
        name: data(rec, "ParentProcessName").map(|p| basename(p).to_owned()),
        ..ParentProcess::default()
    };
    if parent.pid.is_some() || parent.executable.is_some() {
        process(event).parent = Some(Box::new(parent));
    }
}

/// Group created, changed, deleted, member added or removed: `group.*` is the group,
/// `user.target.*` the member.
fn group_change(event: &mut Event, rec: &WinEvent) {
    actor(event, rec);
    let group = UserRef {
        name: data(rec, "TargetUserName").map(str::to_owned),
        domain: data(rec, "TargetDomainName").map(str::to_owned),
        id: data(rec, "TargetSid").map(str::to_owned),
    };
    if !group.is_empty() {
        event.group = Some(group);
    }
    let member = UserRef {
        name: data(rec, "MemberName").map(|dn| common_name(dn).to_owned()),
        domain: None,
        id: data(rec, "MemberSid").map(str::to_owned),
    };
    if !member.is_empty() {
        target_user(event, Some(member));
    }
}

/// `CN=Jane Doe,OU=Engineers,DC=plant,DC=local` → `Jane Doe`; anything else as it is.
fn common_name(dn: &str) -> &str {
    let first = dn.split(',').next().unwrap_or(dn);
    match first.get(..3) {
        Some(prefix) if prefix.eq_ignore_ascii_case("CN=") => first.get(3..).unwrap_or(first),
        _ => dn,
    }
}

/// 4768-4771 on a domain controller: the account asking, the client, the service, the result.
fn kerberos(event: &mut Event, rec: &WinEvent) {
    let name = data(rec, "TargetUserName");
    if let Some(name) = name {
        let user = event.user.get_or_insert_with(Default::default);
        // 4769 writes `user@REALM`.
        let (bare, realm) = match name.split_once('@') {
            Some((u, r)) if !u.is_empty() => (u, Some(r)),
            _ => (name, None),
        };
        user.name = Some(bare.to_owned());
        user.domain = data(rec, "TargetDomainName").or(realm).map(str::to_owned);
        user.id = data(rec, "TargetSid").map(str::to_owned);
        event.relate_user(bare);
    }
    source(event, rec, "IpAddress", "IpPort");
    set_service(event, data(rec, "ServiceName"));
    let code = data(rec, "Status")
        .or_else(|| data(rec, "FailureCode"))
        .and_then(number)
        .and_then(|n| u32::try_from(n).ok());
    if let Some(code) = code {
        let ok = code == 0 && rec.event_id != 4771;
        event.event.outcome = Some(Cow::Borrowed(if ok { "success" } else { "failure" }));
        if !ok {
            set_failure_status(event, code, tables::kerberos_result(code));
        }
    }
}

/// 4776: NTLM credential validation on the authenticating computer.
fn credential_validation(event: &mut Event, rec: &WinEvent) {
    if let Some(name) = data(rec, "TargetUserName") {
        event.user.get_or_insert_with(Default::default).name = Some(name.to_owned());
        event.relate_user(name);
    }
    if let Some(workstation) = data(rec, "Workstation") {
        event.source.get_or_insert_with(Default::default).domain = Some(workstation.to_owned());
        event.relate_host(workstation);
    }
    if let Some(code) = data(rec, "Status")
        .and_then(number)
        .and_then(|n| u32::try_from(n).ok())
    {
        if code == 0 {
            event.event.outcome = Some(Cow::Borrowed("success"));
        } else {
            event.event.outcome = Some(Cow::Borrowed("failure"));
            set_failure_status(event, code, tables::ntstatus(code));
        }
    }
}

/// `winlog.logon.failure.status`: the code's name, else the code in hex.
fn set_failure_status(event: &mut Event, code: u32, name: Option<&'static str>) {
    let status = name.map_or_else(|| Word::Owned(format!("0x{code:x}")), Word::Borrowed);
    winlog(event)
        .logon
        .get_or_insert_with(Default::default)
        .failure = Some(LogonFailure {
        status: Some(status),
        ..LogonFailure::default()
    });
}

/// 5140, 5145: a network share (and, for 5145, an object in it) accessed from a client.
fn share_access(event: &mut Event, rec: &WinEvent) {
    actor(event, rec);
    source(event, rec, "IpAddress", "IpPort");
    if let Some(relative) = data(rec, "RelativeTargetName") {
        let name = basename(relative);
        let extension = name
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_owned())
            .filter(|e| !e.is_empty());
        event.file = Some(Box::new(File {
            path: Some(relative.to_owned()),
            name: Some(name.to_owned()),
            extension,
            ..File::default()
        }));
    }
}

/// 5152, 5156, 5157, 5158: the Windows Filtering Platform's verdicts. WFP writes the local end
/// as `Source*` whatever the direction; ECS's `source` is the initiator, so inbound connections
/// are swapped.
fn firewall(event: &mut Event, rec: &WinEvent) {
    set_pid(
        event,
        data(rec, "ProcessId").or_else(|| data(rec, "ProcessID")),
    );
    if let Some(path) = data(rec, "Application") {
        set_executable(event, path);
    }
    // `%%14592` in the XML, `Inbound` in a rendered message.
    let named = data(rec, "Direction").map(|d| tables::message_insert(d).unwrap_or(d));
    let inbound = named == Some("Inbound");
    let direction = named.and_then(|d| match d {
        "Inbound" => Some("ingress"),
        "Outbound" => Some("egress"),
        _ => None,
    });
    let (src, src_port, dst, dst_port) = if inbound {
        ("DestAddress", "DestPort", "SourceAddress", "SourcePort")
    } else {
        ("SourceAddress", "SourcePort", "DestAddress", "DestPort")
    };
    let ip_s = set_endpoint(&mut event.source, data(rec, src), data(rec, src_port));
    let ip_d = set_endpoint(&mut event.destination, data(rec, dst), data(rec, dst_port));
    for ip in [ip_s, ip_d].into_iter().flatten() {
        event.relate_ip(&ip);
    }
    let transport = data(rec, "Protocol")
        .and_then(number)
        .and_then(|n| u32::try_from(n).ok())
        .and_then(tables::transport);
    if transport.is_some() || direction.is_some() {
        let network = event.network.get_or_insert_with(Default::default);
        network.transport = transport.map(Cow::Borrowed);
        network.direction = direction.map(Cow::Borrowed);
    }
    let allowed = matches!(rec.event_id, 5156 | 5158);
    event.event.outcome = Some(Cow::Borrowed(if allowed { "success" } else { "failure" }));
}

/// `source.ip` / `source.port` from the named fields, related.
fn source(event: &mut Event, rec: &WinEvent, address: &str, port: &str) {
    if let Some(ip) = set_endpoint(&mut event.source, data(rec, address), data(rec, port)) {
        event.relate_ip(&ip);
    }
}

/// A `%%NNNN` insert decoded, else the text.
fn insert(text: &str) -> Word {
    tables::message_insert(text).map_or_else(|| Word::Owned(text.to_owned()), Word::Borrowed)
}

/// An NTSTATUS decoded, else the text.
fn status(text: &str) -> Word {
    number(text)
        .and_then(|n| u32::try_from(n).ok())
        .and_then(tables::ntstatus)
        .map_or_else(|| Word::Owned(text.to_owned()), Word::Borrowed)
}
