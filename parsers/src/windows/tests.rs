//! Field-by-field checks of the mapping, one event per id. The documents are written as Windows
//! renders them (`wevtutil qe /f:xml`), field names and value formats from Microsoft's
//! documentation of each event; ids the bundled `.evtx` samples hold are also checked against
//! those files in `parsers/tests/windows_evtx.rs`.

#![allow(clippy::indexing_slicing)]

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use super::*;

const SECURITY: (&str, &str, &str) = (
    "Microsoft-Windows-Security-Auditing",
    "{54849625-5478-4994-A5BA-3E3B0328C30D}",
    "Security",
);
const SYSMON: (&str, &str, &str) = (
    "Microsoft-Windows-Sysmon",
    "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}",
    "Microsoft-Windows-Sysmon/Operational",
);
const POWERSHELL: (&str, &str, &str) = (
    "Microsoft-Windows-PowerShell",
    "{A0C1853B-5C40-4B15-8766-3CF1C58F985A}",
    "Microsoft-Windows-PowerShell/Operational",
);

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A rendered event: `System` as Windows writes it, then `EventData` with `data`.
fn xml(source: (&str, &str, &str), id: u32, keywords: &str, data: &[(&str, &str)]) -> String {
    let (provider, guid, channel) = source;
    let mut out = format!(
        "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System>\
         <Provider Name='{provider}' Guid='{guid}'/><EventID>{id}</EventID><Version>2</Version>\
         <Level>0</Level><Task>12544</Task><Opcode>0</Opcode><Keywords>{keywords}</Keywords>\
         <TimeCreated SystemTime='2024-05-06T07:08:09.1234567Z'/><EventRecordID>424242</EventRecordID>\
         <Correlation/><Execution ProcessID='656' ThreadID='712'/><Channel>{channel}</Channel>\
         <Computer>hmi01.plant.local</Computer><Security/></System><EventData>"
    );
    for (name, value) in data {
        out.push_str(&format!("<Data Name='{name}'>{}</Data>", escape(value)));
    }
    out.push_str("</EventData></Event>");
    out
}

const OK: &str = "0x8020000000000000";
const FAIL: &str = "0x8010000000000000";

fn map(doc: &str) -> Value {
    let at = Utc
        .with_ymd_and_hms(2024, 5, 6, 7, 9, 0)
        .single()
        .expect("time");
    let event = parse_xml(doc, &WinContext::new(at, "test")).expect("parses");
    serde_json::from_slice(&event.to_json()).expect("json")
}

/// Assert `(dotted path, value)` pairs.
fn check(v: &Value, expected: &[(&str, Value)]) {
    for (path, want) in expected {
        let got = path.split('.').fold(v, |node, key| &node[key]);
        assert_eq!(got, want, "{path} in {v:#}");
    }
}

fn subject() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "SubjectUserSid",
            "S-1-5-21-1004336348-1177238915-682003330-1105",
        ),
        ("SubjectUserName", "eng.admin"),
        ("SubjectDomainName", "PLANT"),
        ("SubjectLogonId", "0x3a4f12"),
    ]
}

fn with(
    mut base: Vec<(&'static str, &'static str)>,
    more: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    base.extend_from_slice(more);
    base
}

#[test]
fn common_fields_of_every_windows_event() {
    let v = map(&xml(SECURITY, 4672, OK, &subject()));
    check(
        &v,
        &[
            ("@timestamp", json!("2024-05-06T07:08:09.123456700Z")),
            ("event.code", json!("4672")),
            (
                "event.provider",
                json!("Microsoft-Windows-Security-Auditing"),
            ),
            ("event.module", json!("security")),
            ("event.dataset", json!("weir.windows")),
            ("event.outcome", json!("success")),
            ("event.created", json!("2024-05-06T07:09:00Z")),
            ("log.level", json!("information")),
            ("host.name", json!("hmi01.plant.local")),
            ("host.os.type", json!("windows")),
            ("winlog.channel", json!("Security")),
            ("winlog.event_id", json!("4672")),
            ("winlog.record_id", json!("424242")),
            ("winlog.computer_name", json!("hmi01.plant.local")),
            ("winlog.task", json!("Logon")),
            ("winlog.opcode", json!("Info")),
            ("winlog.keywords", json!(["Audit Success"])),
            ("winlog.version", json!(2)),
            ("winlog.process.pid", json!(656)),
            ("winlog.process.thread.id", json!(712)),
            ("winlog.event_data.SubjectUserName", json!("eng.admin")),
            ("weir.class", json!("windows")),
            ("weir.input.type", json!("test")),
        ],
    );
    assert!(v["event"]["original"]
        .as_str()
        .is_some_and(|o| o.starts_with("<Event xmlns=")));
}

#[test]
fn logon_success_4624() {
    let v = map(&xml(
        SECURITY,
        4624,
        OK,
        &with(
            subject(),
            &[
                (
                    "TargetUserSid",
                    "S-1-5-21-1004336348-1177238915-682003330-1107",
                ),
                ("TargetUserName", "operator1"),
                ("TargetDomainName", "PLANT"),
                ("TargetLogonId", "0x8dcdc"),
                ("LogonType", "10"),
                ("LogonProcessName", "User32 "),
                ("AuthenticationPackageName", "Negotiate"),
                ("WorkstationName", "ENG-WS07"),
                ("ProcessId", "0x1a4"),
                ("ProcessName", "C:\\Windows\\System32\\svchost.exe"),
                ("IpAddress", "10.20.30.40"),
                ("IpPort", "0"),
            ],
        ),
    ));
    check(
        &v,
        &[
            ("event.category", json!(["authentication"])),
            ("event.type", json!(["start"])),
            ("event.action", json!("logged-in")),
            ("event.outcome", json!("success")),
            ("user.name", json!("operator1")),
            ("user.domain", json!("PLANT")),
            (
                "user.id",
                json!("S-1-5-21-1004336348-1177238915-682003330-1107"),
            ),
            ("winlog.logon.type", json!("RemoteInteractive")),
            ("winlog.logon.id", json!("0x8dcdc")),
            ("source.ip", json!("10.20.30.40")),
            ("source.port", Value::Null),
            ("source.domain", json!("ENG-WS07")),
            ("process.pid", json!(420)),
            ("process.name", json!("svchost.exe")),
            (
                "process.executable",
                json!("C:\\Windows\\System32\\svchost.exe"),
            ),
            ("related.user", json!(["operator1", "eng.admin"])),
            ("related.ip", json!(["10.20.30.40"])),
        ],
    );
}

#[test]
fn logon_failure_4625_decodes_reasons() {
    let v = map(&xml(
        SECURITY,
        4625,
        FAIL,
        &[
            ("SubjectUserSid", "S-1-0-0"),
            ("SubjectUserName", "-"),
            ("SubjectDomainName", "-"),
            ("SubjectLogonId", "0x0"),
            ("TargetUserSid", "S-1-0-0"),
            ("TargetUserName", "administrator"),
            ("TargetDomainName", "PLANT"),
            ("Status", "0xc000006d"),
            ("FailureReason", "%%2313"),
            ("SubStatus", "0xc000006a"),
            ("LogonType", "3"),
            ("WorkstationName", "-"),
            ("ProcessId", "0x0"),
            ("ProcessName", "-"),
            ("IpAddress", "::ffff:192.168.7.21"),
            ("IpPort", "49822"),
        ],
    ));
    check(
        &v,
        &[
            ("event.action", json!("logon-failed")),
            ("event.outcome", json!("failure")),
            ("user.name", json!("administrator")),
            ("winlog.logon.type", json!("Network")),
            (
                "winlog.logon.failure.reason",
                json!("Unknown user name or bad password."),
            ),
            (
                "winlog.logon.failure.status",
                json!("This is either due to a bad username or authentication information"),
            ),
            (
                "winlog.logon.failure.sub_status",
                json!("User logon with misspelled or bad password"),
            ),
            ("source.ip", json!("192.168.7.21")),
            ("source.port", json!(49822)),
            ("source.domain", Value::Null),
            ("process", Value::Null),
        ],
    );
}

#[test]
fn logoff_4634_and_4647() {
    let target = [
        ("TargetUserSid", "S-1-5-21-1-2-3-1107"),
        ("TargetUserName", "operator1"),
        ("TargetDomainName", "PLANT"),
        ("TargetLogonId", "0x8dcdc"),
    ];
    let v = map(&xml(
        SECURITY,
        4634,
        OK,
        &with(target.to_vec(), &[("LogonType", "2")]),
    ));
    check(
        &v,
        &[
            ("event.category", json!(["authentication"])),
            ("event.type", json!(["end"])),
            ("event.action", json!("logged-out")),
            ("user.name", json!("operator1")),
            ("winlog.logon.type", json!("Interactive")),
            ("winlog.logon.id", json!("0x8dcdc")),
        ],
    );
    let v = map(&xml(SECURITY, 4647, OK, &target));
    check(
        &v,
        &[
            ("event.action", json!("logged-out")),
            ("user.id", json!("S-1-5-21-1-2-3-1107")),
            ("winlog.logon.id", json!("0x8dcdc")),
        ],
    );
}

#[test]
fn explicit_credentials_4648() {
    let v = map(&xml(
        SECURITY,
        4648,
        OK,
        &with(
            subject(),
            &[
                ("LogonGuid", "{00000000-0000-0000-0000-000000000000}"),
                ("TargetUserName", "svc_historian"),
                ("TargetDomainName", "PLANT"),
                ("TargetServerName", "historian01.plant.local"),
                ("TargetInfo", "historian01.plant.local"),
                ("ProcessId", "0x2b0"),
                ("ProcessName", "C:\\Windows\\System32\\runas.exe"),
                ("IpAddress", "-"),
                ("IpPort", "-"),
            ],
        ),
    ));
    check(
        &v,
        &[
            ("event.action", json!("logged-in-explicit")),
            ("user.name", json!("eng.admin")),
            ("user.effective.name", json!("svc_historian")),
            ("user.effective.domain", json!("PLANT")),
            ("destination.domain", json!("historian01.plant.local")),
            ("process.pid", json!(688)),
            ("process.name", json!("runas.exe")),
            ("winlog.logon.id", json!("0x3a4f12")),
            ("source", Value::Null),
        ],
    );
}

#[test]
fn special_privileges_4672() {
    let v = map(&xml(
        SECURITY,
        4672,
        OK,
        &with(
            subject(),
            &[("PrivilegeList", "SeDebugPrivilege\n\t\t\tSeBackupPrivilege")],
        ),
    ));
    check(
        &v,
        &[
            ("event.category", json!(["iam"])),
            ("event.type", json!(["admin"])),
            ("event.action", json!("logged-in-special")),
            ("user.name", json!("eng.admin")),
            (
                "user.id",
                json!("S-1-5-21-1004336348-1177238915-682003330-1105"),
            ),
            ("winlog.logon.id", json!("0x3a4f12")),
        ],
    );
}

#[test]
fn process_created_4688_and_exited_4689() {
    let v = map(&xml(
        SECURITY,
        4688,
        OK,
        &with(
            subject(),
            &[
                ("NewProcessId", "0x1f40"),
                ("NewProcessName", "C:\\Windows\\System32\\cmd.exe"),
                ("TokenElevationType", "%%1936"),
                ("ProcessId", "0x3e8"),
                ("CommandLine", "cmd.exe /c \"net user plc_eng /add\""),
                ("TargetUserSid", "S-1-0-0"),
                ("TargetUserName", "-"),
                ("TargetDomainName", "-"),
                ("TargetLogonId", "0x0"),
                ("ParentProcessName", "C:\\Windows\\explorer.exe"),
                ("MandatoryLabel", "S-1-16-12288"),
            ],
        ),
    ));
    check(
        &v,
        &[
            ("event.category", json!(["process"])),
            ("event.type", json!(["start"])),
            ("event.action", json!("created-process")),
            ("process.pid", json!(8000)),
            (
                "process.executable",
                json!("C:\\Windows\\System32\\cmd.exe"),
            ),
            ("process.name", json!("cmd.exe")),
            (
                "process.command_line",
                json!("cmd.exe /c \"net user plc_eng /add\""),
            ),
            ("process.parent.pid", json!(1000)),
            (
                "process.parent.executable",
                json!("C:\\Windows\\explorer.exe"),
            ),
            ("process.parent.name", json!("explorer.exe")),
            ("user.name", json!("eng.admin")),
        ],
    );
    let v = map(&xml(
        SECURITY,
        4689,
        OK,
        &with(
            subject(),
            &[
                ("Status", "0x0"),
                ("ProcessId", "0x1f40"),
                ("ProcessName", "C:\\Windows\\System32\\cmd.exe"),
            ],
        ),
    ));
    check(
        &v,
        &[
            ("event.type", json!(["end"])),
            ("event.action", json!("exited-process")),
            ("process.pid", json!(8000)),
            ("process.name", json!("cmd.exe")),
        ],
    );
}

#[test]
fn service_installed_4697_and_scheduled_tasks_4698_4699() {
    let v = map(&xml(
        SECURITY,
        4697,
        OK,
        &with(
            subject(),
            &[
                ("ServiceName", "PSEXESVC"),
                ("ServiceFileName", "%SystemRoot%\\PSEXESVC.exe"),
                ("ServiceType", "0x10"),
                ("ServiceStartType", "3"),
                ("ServiceAccount", "LocalSystem"),
            ],
        ),
    ));
    check(
        &v,
        &[
            ("event.category", json!(["iam", "configuration"])),
            ("event.type", json!(["admin", "change"])),
            ("event.action", json!("service-installed")),
            ("service.name", json!("PSEXESVC")),
            ("user.name", json!("eng.admin")),
            (
                "winlog.event_data.ServiceFileName",
                json!("%SystemRoot%\\PSEXESVC.exe"),
            ),
        ],
    );
    for (id, action, kind) in [
        (4698, "scheduled-task-created", "creation"),
        (4699, "scheduled-task-deleted", "deletion"),
    ] {
        let v = map(&xml(
            SECURITY,
            id,
            OK,
            &with(
                subject(),
                &[("TaskName", "\\Updater"), ("TaskContent", "<Task/>")],
            ),
        ));
        check(
            &v,
            &[
                ("event.action", json!(action)),
                ("event.type", json!([kind, "admin"])),
                ("user.name", json!("eng.admin")),
                ("winlog.event_data.TaskName", json!("\\Updater")),
            ],
        );
    }
}

#[test]
fn user_account_management_4720_to_4726() {
    for (id, action, kind) in [
        (4720, "added-user-account", "creation"),
        (4722, "enabled-user-account", "change"),
        (4724, "reset-password", "change"),
        (4725, "disabled-user-account", "deletion"),
        (4726, "deleted-user-account", "deletion"),
    ] {
        let v = map(&xml(
            SECURITY,
            id,
            OK,
            &with(
                subject(),
                &[
                    ("TargetUserName", "plc_eng"),
                    ("TargetDomainName", "HMI01"),
                    ("TargetSid", "S-1-5-21-9-8-7-1010"),
                ],
            ),
        ));
        check(
            &v,
            &[
                ("event.category", json!(["iam"])),
                ("event.type", json!(["user", kind])),
                ("event.action", json!(action)),
                ("user.name", json!("eng.admin")),
                ("user.target.name", json!("plc_eng")),
                ("user.target.domain", json!("HMI01")),
                ("user.target.id", json!("S-1-5-21-9-8-7-1010")),
                ("related.user", json!(["eng.admin", "plc_eng"])),
            ],
        );
    }
}

#[test]
fn group_membership_4728_4732_4756() {
    for (id, group) in [
        (4728, "Domain Admins"),
        (4732, "Administrators"),
        (4756, "Enterprise Admins"),
    ] {
        let v = map(&xml(
            SECURITY,
            id,
            OK,
            &with(
                subject(),
                &[
                    ("MemberName", "CN=Jane Doe,OU=Engineers,DC=plant,DC=local"),
                    ("MemberSid", "S-1-5-21-9-8-7-1122"),
                    ("TargetUserName", group),
                    ("TargetDomainName", "PLANT"),
                    ("TargetSid", "S-1-5-32-544"),
                    ("PrivilegeList", "-"),
                ],
            ),
        ));
        check(
            &v,
            &[
                ("event.category", json!(["iam"])),
                ("event.type", json!(["group", "change"])),
                ("event.action", json!("added-member-to-group")),
                ("group.name", json!(group)),
                ("group.domain", json!("PLANT")),
                ("group.id", json!("S-1-5-32-544")),
                ("user.name", json!("eng.admin")),
                ("user.target.name", json!("Jane Doe")),
                ("user.target.id", json!("S-1-5-21-9-8-7-1122")),
            ],
        );
    }
}

#[test]
fn account_locked_out_4740() {
    let v = map(&xml(
        SECURITY,
        4740,
        OK,
        &[
            ("TargetUserName", "operator2"),
            ("TargetDomainName", "ENG-WS07"),
            ("TargetSid", "S-1-5-21-9-8-7-1201"),
            ("SubjectUserSid", "S-1-5-18"),
            ("SubjectUserName", "DC01$"),
            ("SubjectDomainName", "PLANT"),
            ("SubjectLogonId", "0x3e7"),
        ],
    ));
    check(
        &v,
        &[
            ("event.action", json!("locked-out-user-account")),
            ("user.name", json!("DC01$")),
            ("user.target.name", json!("operator2")),
            ("user.target.id", json!("S-1-5-21-9-8-7-1201")),
            ("user.target.domain", Value::Null),
            ("source.domain", json!("ENG-WS07")),
        ],
    );
}

#[test]
fn kerberos_4768_4769_4771() {
    let v = map(&xml(
        SECURITY,
        4768,
        OK,
        &[
            ("TargetUserName", "operator1"),
            ("TargetDomainName", "PLANT.LOCAL"),
            ("TargetSid", "S-1-5-21-9-8-7-1107"),
            ("ServiceName", "krbtgt"),
            ("ServiceSid", "S-1-5-21-9-8-7-502"),
            ("TicketOptions", "0x40810010"),
            ("Status", "0x0"),
            ("TicketEncryptionType", "0x12"),
            ("PreAuthType", "2"),
            ("IpAddress", "::ffff:10.20.30.41"),
            ("IpPort", "51234"),
        ],
    ));
    check(
        &v,
        &[
            (
                "event.action",
                json!("kerberos-authentication-ticket-requested"),
            ),
            ("event.outcome", json!("success")),
            ("user.name", json!("operator1")),
            ("user.domain", json!("PLANT.LOCAL")),
            ("user.id", json!("S-1-5-21-9-8-7-1107")),
            ("service.name", json!("krbtgt")),
            ("source.ip", json!("10.20.30.41")),
            ("source.port", json!(51234)),
        ],
    );
    let v = map(&xml(
        SECURITY,
        4769,
        FAIL,
        &[
            ("TargetUserName", "operator1@PLANT.LOCAL"),
            ("TargetDomainName", "PLANT.LOCAL"),
            ("ServiceName", "HISTORIAN01$"),
            ("ServiceSid", "S-1-5-21-9-8-7-1301"),
            ("TicketOptions", "0x40810000"),
            ("TicketEncryptionType", "0xffffffff"),
            ("IpAddress", "::ffff:10.20.30.41"),
            ("IpPort", "51240"),
            ("Status", "0x1b"),
        ],
    ));
    check(
        &v,
        &[
            ("event.action", json!("kerberos-service-ticket-requested")),
            ("event.outcome", json!("failure")),
            ("user.name", json!("operator1")),
            ("service.name", json!("HISTORIAN01$")),
            (
                "winlog.logon.failure.status",
                json!("KDC_ERR_MUST_USE_USER2USER"),
            ),
        ],
    );
    let v = map(&xml(
        SECURITY,
        4771,
        FAIL,
        &[
            ("TargetUserName", "operator3"),
            ("TargetSid", "S-1-5-21-9-8-7-1203"),
            ("ServiceName", "krbtgt/PLANT.LOCAL"),
            ("TicketOptions", "0x40810010"),
            ("Status", "0x18"),
            ("PreAuthType", "2"),
            ("IpAddress", "::ffff:10.20.30.42"),
            ("IpPort", "50301"),
        ],
    ));
    check(
        &v,
        &[
            ("event.action", json!("kerberos-preauth-failed")),
            ("event.outcome", json!("failure")),
            ("user.name", json!("operator3")),
            ("source.ip", json!("10.20.30.42")),
            (
                "winlog.logon.failure.status",
                json!("KDC_ERR_PREAUTH_FAILED"),
            ),
        ],
    );
}

#[test]
fn credential_validation_4776() {
    let v = map(&xml(
        SECURITY,
        4776,
        FAIL,
        &[
            ("PackageName", "MICROSOFT_AUTHENTICATION_PACKAGE_V1_0"),
            ("TargetUserName", "scada"),
            ("Workstation", "HMI02"),
            ("Status", "0xc0000064"),
        ],
    ));
    check(
        &v,
        &[
            ("event.action", json!("credential-validated")),
            ("event.outcome", json!("failure")),
            ("user.name", json!("scada")),
            ("source.domain", json!("HMI02")),
            (
                "winlog.logon.failure.status",
                json!("User logon with misspelled or bad user account"),
            ),
        ],
    );
}

#[test]
fn file_shares_5140_5145() {
    let share = [
        ("ObjectType", "File"),
        ("IpAddress", "10.20.30.40"),
        ("IpPort", "50112"),
        ("ShareName", "\\\\*\\ADMIN$"),
        ("ShareLocalPath", "\\??\\C:\\Windows"),
    ];
    let v = map(&xml(
        SECURITY,
        5140,
        OK,
        &with(with(subject(), &share), &[("AccessMask", "0x1")]),
    ));
    check(
        &v,
        &[
            ("event.category", json!(["network", "file"])),
            ("event.action", json!("network-share-object-accessed")),
            ("user.name", json!("eng.admin")),
            ("source.ip", json!("10.20.30.40")),
            ("source.port", json!(50112)),
            ("winlog.event_data.ShareName", json!("\\\\*\\ADMIN$")),
        ],
    );
    let v = map(&xml(
        SECURITY,
        5145,
        OK,
        &with(
            with(subject(), &share),
            &[
                ("RelativeTargetName", "PSEXESVC.exe"),
                ("AccessMask", "0x2"),
            ],
        ),
    ));
    check(
        &v,
        &[
            ("event.action", json!("network-share-object-access-checked")),
            ("file.path", json!("PSEXESVC.exe")),
            ("file.name", json!("PSEXESVC.exe")),
            ("file.extension", json!("exe")),
        ],
    );
}

#[test]
fn firewall_connection_5156_is_oriented_by_direction() {
    let fields = |direction| {
        vec![
            ("ProcessID", "4"),
            ("Application", "System"),
            ("Direction", direction),
            ("SourceAddress", "10.20.30.5"),
            ("SourcePort", "445"),
            ("DestAddress", "10.20.30.40"),
            ("DestPort", "50112"),
            ("Protocol", "6"),
            ("FilterRTID", "0"),
            ("LayerName", "%%14610"),
            ("LayerRTID", "44"),
        ]
    };
    let v = map(&xml(SECURITY, 5156, OK, &fields("%%14592")));
    check(
        &v,
        &[
            ("event.category", json!(["network"])),
            ("event.type", json!(["connection", "start", "allowed"])),
            ("event.outcome", json!("success")),
            ("network.direction", json!("ingress")),
            ("network.transport", json!("tcp")),
            ("source.ip", json!("10.20.30.40")),
            ("source.port", json!(50112)),
            ("destination.ip", json!("10.20.30.5")),
            ("destination.port", json!(445)),
            ("process.pid", json!(4)),
            ("process.name", json!("System")),
        ],
    );
    let v = map(&xml(SECURITY, 5156, OK, &fields("%%14593")));
    check(
        &v,
        &[
            ("network.direction", json!("egress")),
            ("source.ip", json!("10.20.30.5")),
            ("destination.ip", json!("10.20.30.40")),
        ],
    );
}

#[test]
fn security_log_cleared_1102_reads_user_data() {
    let doc = "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System>\
        <Provider Name='Microsoft-Windows-Eventlog' Guid='{fc65ddd8-d6ef-4962-83d5-6e5cfe9ce148}'/>\
        <EventID>1102</EventID><Version>0</Version><Level>4</Level><Task>104</Task><Opcode>0</Opcode>\
        <Keywords>0x4020000000000000</Keywords><TimeCreated SystemTime='2024-05-06T07:08:09Z'/>\
        <EventRecordID>1</EventRecordID><Correlation/><Execution ProcessID='1052' ThreadID='5080'/>\
        <Channel>Security</Channel><Computer>hmi01.plant.local</Computer><Security/></System>\
        <UserData><LogFileCleared xmlns='http://manifests.microsoft.com/win/2004/08/windows/eventlog'>\
        <SubjectUserSid>S-1-5-21-1-2-3-500</SubjectUserSid><SubjectUserName>wardog</SubjectUserName>\
        <SubjectDomainName>HMI01</SubjectDomainName><SubjectLogonId>0xc61d9</SubjectLogonId>\
        </LogFileCleared></UserData></Event>";
    let v = map(doc);
    check(
        &v,
        &[
            ("event.module", json!("security")),
            ("event.action", json!("audit-log-cleared")),
            ("event.type", json!(["admin", "change"])),
            ("user.name", json!("wardog")),
            ("user.domain", json!("HMI01")),
            ("user.id", json!("S-1-5-21-1-2-3-500")),
            ("winlog.logon.id", json!("0xc61d9")),
            ("winlog.user_data.xml_name", json!("LogFileCleared")),
            ("winlog.user_data.SubjectUserName", json!("wardog")),
            // 0x40...: a channel bit (the top byte), no standard name.
            ("winlog.keywords", json!(["Audit Success"])),
        ],
    );
}

fn system_event(provider: &str, id: u32, body: &str) -> String {
    format!(
        "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System>\
         <Provider Name='{provider}'/><EventID Qualifiers='16384'>{id}</EventID><Version>0</Version>\
         <Level>4</Level><Task>0</Task><Opcode>0</Opcode><Keywords>0x8080000000000000</Keywords>\
         <TimeCreated SystemTime='2024-05-06T07:08:09Z'/><EventRecordID>77</EventRecordID>\
         <Correlation/><Execution ProcessID='668' ThreadID='4012'/><Channel>System</Channel>\
         <Computer>hmi01.plant.local</Computer><Security UserID='S-1-5-21-1-2-3-500'/></System>{body}</Event>"
    )
}

#[test]
fn system_log_7045_7036_104() {
    let v = map(&system_event(
        "Service Control Manager",
        7045,
        "<EventData><Data Name='ServiceName'>PSEXESVC</Data><Data Name='ImagePath'>%SystemRoot%\\PSEXESVC.exe</Data>\
         <Data Name='ServiceType'>user mode service</Data><Data Name='StartType'>demand start</Data>\
         <Data Name='AccountName'>LocalSystem</Data></EventData>",
    ));
    check(
        &v,
        &[
            ("event.action", json!("service-installed")),
            ("event.category", json!(["configuration"])),
            ("event.type", json!(["creation"])),
            ("service.name", json!("PSEXESVC")),
            ("user.id", json!("S-1-5-21-1-2-3-500")),
            ("winlog.keywords", json!(["Classic"])),
            (
                "winlog.event_data.ImagePath",
                json!("%SystemRoot%\\PSEXESVC.exe"),
            ),
        ],
    );
    let v = map(&system_event(
        "Service Control Manager",
        7036,
        "<EventData><Data Name='param1'>Windows Update</Data><Data Name='param2'>stopped</Data>\
         <Binary>770075006100750073007600</Binary></EventData>",
    ));
    check(
        &v,
        &[
            ("event.action", json!("service-state-changed")),
            ("event.type", json!(["end"])),
            ("service.name", json!("Windows Update")),
        ],
    );
    let v = map(&system_event(
        "Microsoft-Windows-Eventlog",
        104,
        "<UserData><LogFileCleared xmlns='http://manifests.microsoft.com/win/2004/08/windows/eventlog'>\
         <SubjectUserName>wardog</SubjectUserName><SubjectDomainName>HMI01</SubjectDomainName>\
         <Channel>System</Channel><BackupPath></BackupPath></LogFileCleared></UserData>",
    ));
    check(
        &v,
        &[
            ("event.action", json!("Log clear")),
            ("user.name", json!("wardog")),
            ("winlog.user_data.Channel", json!("System")),
        ],
    );
}

#[test]
fn powershell_4103_and_4104() {
    let context = "        Severity = Informational\r\n        Host Name = ConsoleHost\r\n        Host Version = 5.1.17763.1\r\n        Host ID = 4d5c6f1e-0000-0000-0000-000000000000\r\n        Host Application = powershell.exe -nop -w hidden -c IEX(x)\r\n        Engine Version = 5.1.17763.1\r\n        Runspace ID = 8e5f1c0a-1111-2222-3333-444455556666\r\n        Pipeline ID = 7\r\n        Command Name = Invoke-WebRequest\r\n        Command Type = Cmdlet\r\n        Script Name = \r\n        Command Path = \r\n        Sequence Number = 21\r\n        User = PLANT\\eng.admin\r\n        Connected User = \r\n        Shell ID = Microsoft.PowerShell\r\n";
    let v = map(&xml(
        POWERSHELL,
        4103,
        "0x0",
        &[
            ("ContextInfo", context),
            ("UserData", ""),
            ("Payload", "CommandInvocation(Invoke-WebRequest)"),
        ],
    ));
    check(
        &v,
        &[
            ("event.module", json!("powershell")),
            ("event.action", json!("Executing Pipeline")),
            ("powershell.command.name", json!("Invoke-WebRequest")),
            ("powershell.command.type", json!("Cmdlet")),
            ("powershell.engine.version", json!("5.1.17763.1")),
            ("powershell.pipeline_id", json!("7")),
            ("powershell.sequence", json!(21)),
            (
                "process.command_line",
                json!("powershell.exe -nop -w hidden -c IEX(x)"),
            ),
            ("user.name", json!("eng.admin")),
            ("user.domain", json!("PLANT")),
            ("file", Value::Null),
        ],
    );
    let v = map(&xml(
        POWERSHELL,
        4104,
        "0x0",
        &[
            ("MessageNumber", "1"),
            ("MessageTotal", "1"),
            (
                "ScriptBlockText",
                "Get-Process | Where-Object { $_.CPU -gt 100 }",
            ),
            ("ScriptBlockId", "0b8a2f5e-7777-8888-9999-aaaabbbbcccc"),
            ("Path", "C:\\Scripts\\check.ps1"),
        ],
    ));
    check(
        &v,
        &[
            ("event.action", json!("Execute a Remote Command")),
            (
                "powershell.file.script_block_text",
                json!("Get-Process | Where-Object { $_.CPU -gt 100 }"),
            ),
            (
                "powershell.file.script_block_id",
                json!("0b8a2f5e-7777-8888-9999-aaaabbbbcccc"),
            ),
            ("powershell.sequence", json!(1)),
            ("powershell.total", json!(1)),
            ("file.path", json!("C:\\Scripts\\check.ps1")),
            ("file.name", json!("check.ps1")),
        ],
    );
}

fn sysmon_common() -> Vec<(&'static str, &'static str)> {
    vec![
        ("RuleName", "-"),
        ("UtcTime", "2024-05-06 07:08:09.123"),
        ("ProcessGuid", "{4c9d3e0a-1111-6631-0b00-000000000800}"),
        ("ProcessId", "4242"),
        ("Image", "C:\\Program Files\\Vendor\\hmi.exe"),
        ("User", "PLANT\\operator1"),
    ]
}

#[test]
fn sysmon_process_creation_1() {
    let v = map(&xml(
        SYSMON,
        1,
        "0x8000000000000000",
        &with(
            sysmon_common(),
            &[
                ("FileVersion", "10.0.17763.1"),
                ("Description", "HMI runtime"),
                ("Product", "Vendor HMI"),
                ("Company", "Vendor"),
                ("OriginalFileName", "hmi.exe"),
                ("CommandLine", "\"C:\\Program Files\\Vendor\\hmi.exe\" /project line3"),
                ("CurrentDirectory", "C:\\Program Files\\Vendor\\"),
                ("LogonGuid", "{4c9d3e0a-1111-6631-0000-0020e7030000}"),
                ("LogonId", "0x3e7"),
                ("TerminalSessionId", "1"),
                ("IntegrityLevel", "High"),
                ("Hashes", "SHA1=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,MD5=BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB,SHA256=CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC,IMPHASH=DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD"),
                ("ParentProcessGuid", "{4c9d3e0a-1111-6631-0a00-000000000800}"),
                ("ParentProcessId", "1000"),
                ("ParentImage", "C:\\Windows\\explorer.exe"),
                ("ParentCommandLine", "C:\\Windows\\Explorer.EXE"),
            ],
        ),
    ));
    check(
        &v,
        &[
            ("event.module", json!("sysmon")),
            ("event.category", json!(["process"])),
            ("event.type", json!(["start"])),
            ("event.action", json!("Process creation")),
            (
                "process.entity_id",
                json!("{4c9d3e0a-1111-6631-0b00-000000000800}"),
            ),
            ("process.pid", json!(4242)),
            ("process.name", json!("hmi.exe")),
            (
                "process.command_line",
                json!("\"C:\\Program Files\\Vendor\\hmi.exe\" /project line3"),
            ),
            (
                "process.working_directory",
                json!("C:\\Program Files\\Vendor\\"),
            ),
            (
                "process.hash.sha1",
                json!("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ),
            (
                "process.hash.md5",
                json!("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
            ),
            (
                "process.pe.imphash",
                json!("dddddddddddddddddddddddddddddddd"),
            ),
            ("process.pe.original_file_name", json!("hmi.exe")),
            ("process.parent.pid", json!(1000)),
            ("process.parent.name", json!("explorer.exe")),
            (
                "process.parent.command_line",
                json!("C:\\Windows\\Explorer.EXE"),
            ),
            ("user.name", json!("operator1")),
            ("user.domain", json!("PLANT")),
            ("winlog.logon.id", json!("0x3e7")),
            (
                "related.hash",
                json!([
                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
                    "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
                ]),
            ),
        ],
    );
}

#[test]
fn sysmon_network_3_image_load_7_process_access_10_file_11() {
    let v = map(&xml(
        SYSMON,
        3,
        "0x8000000000000000",
        &with(
            sysmon_common(),
            &[
                ("Protocol", "tcp"),
                ("Initiated", "true"),
                ("SourceIsIpv6", "false"),
                ("SourceIp", "10.20.30.40"),
                ("SourceHostname", "hmi01.plant.local"),
                ("SourcePort", "50400"),
                ("SourcePortName", "-"),
                ("DestinationIsIpv6", "false"),
                ("DestinationIp", "10.20.40.10"),
                ("DestinationHostname", "-"),
                ("DestinationPort", "502"),
                ("DestinationPortName", "-"),
            ],
        ),
    ));
    check(
        &v,
        &[
            ("event.category", json!(["network"])),
            ("event.action", json!("Network connection")),
            ("network.transport", json!("tcp")),
            ("network.direction", json!("egress")),
            ("source.ip", json!("10.20.30.40")),
            ("source.domain", json!("hmi01.plant.local")),
            ("destination.ip", json!("10.20.40.10")),
            ("destination.port", json!(502)),
            ("process.name", json!("hmi.exe")),
        ],
    );
    let v = map(&xml(
        SYSMON,
        7,
        "0x8000000000000000",
        &with(
            sysmon_common(),
            &[
                ("ImageLoaded", "C:\\Windows\\System32\\wbem\\wbemcomn.dll"),
                ("OriginalFileName", "wbemcomn.dll"),
                (
                    "Hashes",
                    "SHA256=EEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE",
                ),
                ("Signed", "true"),
            ],
        ),
    ));
    check(
        &v,
        &[
            ("event.action", json!("Image loaded")),
            (
                "file.path",
                json!("C:\\Windows\\System32\\wbem\\wbemcomn.dll"),
            ),
            ("file.name", json!("wbemcomn.dll")),
            ("file.directory", json!("C:\\Windows\\System32\\wbem")),
            ("file.extension", json!("dll")),
            (
                "file.hash.sha256",
                json!("eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"),
            ),
            ("file.pe.original_file_name", json!("wbemcomn.dll")),
            ("process.pe", Value::Null),
        ],
    );
    let v = map(&xml(
        SYSMON,
        10,
        "0x8000000000000000",
        &[
            ("UtcTime", "2024-05-06 07:08:09.123"),
            (
                "SourceProcessGUID",
                "{4c9d3e0a-1111-6631-0c00-000000000800}",
            ),
            ("SourceProcessId", "5120"),
            ("SourceThreadId", "5124"),
            ("SourceImage", "C:\\Users\\Public\\m.exe"),
            (
                "TargetProcessGUID",
                "{4c9d3e0a-1111-6631-0100-000000000800}",
            ),
            ("TargetProcessId", "640"),
            ("TargetImage", "C:\\Windows\\system32\\lsass.exe"),
            ("GrantedAccess", "0x1010"),
            ("SourceUser", "PLANT\\eng.admin"),
        ],
    ));
    check(
        &v,
        &[
            ("event.action", json!("ProcessAccess")),
            ("event.type", json!(["access"])),
            ("process.pid", json!(5120)),
            (
                "process.entity_id",
                json!("{4c9d3e0a-1111-6631-0c00-000000000800}"),
            ),
            ("process.executable", json!("C:\\Users\\Public\\m.exe")),
            ("user.name", json!("eng.admin")),
            (
                "winlog.event_data.TargetImage",
                json!("C:\\Windows\\system32\\lsass.exe"),
            ),
            ("winlog.event_data.GrantedAccess", json!("0x1010")),
        ],
    );
    let v = map(&xml(
        SYSMON,
        11,
        "0x8000000000000000",
        &with(
            sysmon_common(),
            &[
                ("TargetFilename", "C:\\Projects\\line3\\logic.ACD"),
                ("CreationUtcTime", "2024-05-06 07:08:09.000"),
            ],
        ),
    ));
    check(
        &v,
        &[
            ("event.category", json!(["file"])),
            ("event.type", json!(["creation"])),
            ("event.action", json!("FileCreate")),
            ("file.path", json!("C:\\Projects\\line3\\logic.ACD")),
            ("file.extension", json!("acd")),
            ("file.directory", json!("C:\\Projects\\line3")),
        ],
    );
}

#[test]
fn sysmon_registry_12_13_and_dns_22() {
    let v = map(&xml(
        SYSMON,
        12,
        "0x8000000000000000",
        &with(
            sysmon_common(),
            &[
                ("EventType", "CreateKey"),
                (
                    "TargetObject",
                    "HKLM\\System\\CurrentControlSet\\Services\\PSEXESVC",
                ),
            ],
        ),
    ));
    check(
        &v,
        &[
            ("event.category", json!(["configuration", "registry"])),
            (
                "event.action",
                json!("RegistryEvent (Object create and delete)"),
            ),
            (
                "registry.path",
                json!("HKLM\\System\\CurrentControlSet\\Services\\PSEXESVC"),
            ),
            ("registry.hive", json!("HKLM")),
            (
                "registry.key",
                json!("System\\CurrentControlSet\\Services\\PSEXESVC"),
            ),
            ("registry.value", Value::Null),
        ],
    );
    let v = map(&xml(
        SYSMON,
        13,
        "0x8000000000000000",
        &with(
            sysmon_common(),
            &[
                ("EventType", "SetValue"),
                (
                    "TargetObject",
                    "HKLM\\System\\CurrentControlSet\\Services\\PSEXESVC\\Start",
                ),
                ("Details", "DWORD (0x00000003)"),
            ],
        ),
    ));
    check(
        &v,
        &[
            ("event.action", json!("RegistryEvent (Value Set)")),
            (
                "registry.key",
                json!("System\\CurrentControlSet\\Services\\PSEXESVC"),
            ),
            ("registry.value", json!("Start")),
            ("registry.data.strings", json!(["DWORD (0x00000003)"])),
            ("registry.data.type", json!("REG_DWORD")),
        ],
    );
    let v = map(&xml(
        SYSMON,
        22,
        "0x8000000000000000",
        &with(
            sysmon_common(),
            &[
                ("QueryName", "update.vendor.example"),
                ("QueryStatus", "0"),
                (
                    "QueryResults",
                    "type:  5 cdn.vendor.example;::ffff:192.0.2.10;192.0.2.11;",
                ),
            ],
        ),
    ));
    check(
        &v,
        &[
            ("event.action", json!("DNSEvent (DNS query)")),
            ("dns.question.name", json!("update.vendor.example")),
            ("dns.resolved_ip", json!(["192.0.2.10", "192.0.2.11"])),
            (
                "related.hosts",
                json!(["hmi01.plant.local", "update.vendor.example"]),
            ),
        ],
    );
}

#[test]
fn rendering_info_gives_message_level_and_action() {
    let doc = "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System>\
        <Provider Name='Application Error'/><EventID Qualifiers='0'>1000</EventID><Level>2</Level>\
        <Task>100</Task><Keywords>0x80000000000000</Keywords><TimeCreated SystemTime='2024-05-06T07:08:09Z'/>\
        <EventRecordID>9</EventRecordID><Channel>Application</Channel><Computer>hmi01</Computer></System>\
        <EventData><Data>hmi.exe</Data><Data>1.0.0.0</Data></EventData>\
        <RenderingInfo Culture='en-US'><Message>Faulting application name: hmi.exe</Message>\
        <Level>Error</Level><Task>Application Crashing Events</Task><Opcode>Info</Opcode>\
        <Keywords><Keyword>Classic</Keyword></Keywords></RenderingInfo></Event>";
    let v = map(doc);
    check(
        &v,
        &[
            ("message", json!("Faulting application name: hmi.exe")),
            ("log.level", json!("error")),
            ("event.action", json!("Application Crashing Events")),
            ("event.module", Value::Null),
            ("winlog.task", json!("Application Crashing Events")),
            ("winlog.event_data.param1", json!("hmi.exe")),
            ("winlog.event_data.param2", json!("1.0.0.0")),
        ],
    );
}

#[test]
fn broken_documents_become_counted_raw_events() {
    let at = Utc
        .with_ymd_and_hms(2024, 5, 6, 7, 9, 0)
        .single()
        .expect("time");
    let ctx = WinContext::new(at, "test");
    for (doc, code) in [
        ("<Event><System>", "malformed_xml"),
        ("<Events/>", "not_a_windows_event"),
        (
            "<Event><System><EventID>x</EventID></System></Event>",
            "no_event_id",
        ),
    ] {
        let e = normalise_xml(doc, &ctx);
        assert_eq!(e.weir.parse_error.as_deref(), Some(code), "{doc}");
        assert_eq!(e.class(), weir_schemas::EventClass::Windows);
        assert_eq!(e.event.kind, "pipeline_error");
        assert_eq!(e.event.original.as_deref(), Some(doc));
    }
}

#[test]
fn every_mapped_event_conforms_to_ecs_and_every_field_is_templated() {
    let ecs = weir_schemas::ecs::EcsSchema::load_bundled().expect("ecs");
    let docs = [
        xml(
            SECURITY,
            4624,
            OK,
            &with(
                subject(),
                &[
                    ("TargetUserName", "a"),
                    ("LogonType", "3"),
                    ("IpAddress", "10.0.0.1"),
                    ("IpPort", "1"),
                ],
            ),
        ),
        xml(
            SECURITY,
            4688,
            OK,
            &with(
                subject(),
                &[
                    ("NewProcessId", "0x10"),
                    ("NewProcessName", "C:\\a.exe"),
                    ("ProcessId", "0x4"),
                    ("CommandLine", "a"),
                ],
            ),
        ),
        xml(
            SYSMON,
            1,
            OK,
            &with(
                sysmon_common(),
                &[("Hashes", "MD5=AB,IMPHASH=CD"), ("ParentProcessId", "1")],
            ),
        ),
        xml(
            SYSMON,
            13,
            OK,
            &with(
                sysmon_common(),
                &[("TargetObject", "HKU\\x\\y"), ("Details", "z")],
            ),
        ),
        xml(
            SYSMON,
            22,
            OK,
            &with(
                sysmon_common(),
                &[("QueryName", "x"), ("QueryResults", "192.0.2.1;")],
            ),
        ),
        xml(
            POWERSHELL,
            4104,
            OK,
            &[("ScriptBlockText", "x"), ("MessageNumber", "1")],
        ),
        xml(
            SECURITY,
            4728,
            OK,
            &with(
                subject(),
                &[("MemberName", "CN=x"), ("TargetUserName", "g")],
            ),
        ),
        xml(
            SECURITY,
            4648,
            OK,
            &with(
                subject(),
                &[("TargetUserName", "b"), ("TargetServerName", "s")],
            ),
        ),
    ];
    for doc in docs {
        let v = map(&doc);
        assert_eq!(ecs.check(&v), vec![], "{v:#}");
        for field in leaves(&v, "") {
            assert!(
                weir_schemas::fields::lookup(&field).is_some(),
                "{field} has no index template mapping"
            );
        }
    }
}

/// Dotted names of the leaves of a JSON object (arrays are leaves).
pub(crate) fn leaves(v: &Value, prefix: &str) -> Vec<String> {
    match v {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, child)| {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(child, &name)
            })
            .collect(),
        _ => vec![prefix.to_owned()],
    }
}

#[test]
fn rendered_messages_are_read_back_into_event_data() {
    // Snare flattens tabs and line breaks to spaces: single and double.
    let text = "An account was successfully logged on.  Subject: Security ID: S-1-5-18 Account Name: HMI01$ \
        Account Domain: PLANT Logon ID: 0x3E7  Logon Information: Logon Type: 10 Restricted Admin Mode: - \
        New Logon: Security ID: S-1-5-21-9-8-7-1107 Account Name: operator1 Account Domain: PLANT \
        Logon ID: 0x8DCDC  Network Information: Workstation Name: ENG-WS07 Source Network Address: 10.20.30.40 \
        Source Port: 0  Detailed Authentication Information: Logon Process: User32";
    let data = snare::message_data(4624, text);
    let get = |n: &str| data.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(get("SubjectUserSid"), Some("S-1-5-18"));
    assert_eq!(get("SubjectUserName"), Some("HMI01$"));
    assert_eq!(get("SubjectLogonId"), Some("0x3E7"));
    assert_eq!(get("LogonType"), Some("10"));
    assert_eq!(get("TargetUserSid"), Some("S-1-5-21-9-8-7-1107"));
    assert_eq!(get("TargetUserName"), Some("operator1"));
    assert_eq!(get("TargetDomainName"), Some("PLANT"));
    assert_eq!(get("TargetLogonId"), Some("0x8DCDC"));
    assert_eq!(get("WorkstationName"), Some("ENG-WS07"));
    assert_eq!(get("IpAddress"), Some("10.20.30.40"));
    assert_eq!(get("IpPort"), Some("0"));
    // Multi-line as agents send it, with a label this module does not know.
    let text =
        "A new process has been created.\r\n\r\nCreator Subject:\r\n\tSecurity ID:\t\tS-1-5-18\r\n\
        \tAccount Name:\t\tWS5$\r\n\r\nProcess Information:\r\n\tNew Process ID:\t\t0x1c58\r\n\
        \tNew Process Name:\tC:\\Windows\\PSEXESVC.exe\r\n\tSome Future Label:\tx\r\n\
        \tCreator Process ID:\t0x2cc\r\n\tProcess Command Line:\tC:\\windows\\PSEXESVC.exe -x\r\n";
    let data = snare::message_data(4688, text);
    let get = |n: &str| data.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(get("SubjectUserName"), Some("WS5$"));
    assert_eq!(get("NewProcessId"), Some("0x1c58"));
    assert_eq!(get("NewProcessName"), Some("C:\\Windows\\PSEXESVC.exe"));
    assert_eq!(get("ProcessId"), Some("0x2cc"));
    assert_eq!(get("CommandLine"), Some("C:\\windows\\PSEXESVC.exe -x"));
}

/// The 4625 of `logon_failure_4625_decodes_reasons` as an agent would send it: XML, NXLog
/// JSON, Winlogbeat JSON and Snare syslog.
#[test]
fn the_same_failed_logon_as_xml_nxlog_winlogbeat_and_snare_maps_the_same() {
    let fields = [
        ("SubjectUserSid", "S-1-5-18"),
        ("SubjectUserName", "HMI01$"),
        ("SubjectDomainName", "PLANT"),
        ("SubjectLogonId", "0x3e7"),
        ("TargetUserSid", "S-1-0-0"),
        ("TargetUserName", "administrator"),
        ("TargetDomainName", "PLANT"),
        ("Status", "0xc000006d"),
        ("FailureReason", "%%2313"),
        ("SubStatus", "0xc000006a"),
        ("LogonType", "3"),
        ("WorkstationName", "ENG-WS07"),
        ("ProcessId", "0x244"),
        ("ProcessName", "C:\\Windows\\System32\\lsass.exe"),
        ("IpAddress", "10.20.30.40"),
        ("IpPort", "50312"),
    ];
    let at = Utc
        .with_ymd_and_hms(2024, 5, 6, 7, 9, 0)
        .single()
        .expect("time");
    let ctx = WinContext::new(at, "test");
    let as_json = |e: &Event| -> Value { serde_json::from_slice(&e.to_json()).expect("json") };

    let xml_event = as_json(&parse_xml(&xml(SECURITY, 4625, FAIL, &fields), &ctx).expect("xml"));

    let mut nx = serde_json::Map::new();
    nx.insert("EventTime".into(), json!("2024-05-06 07:08:09"));
    nx.insert("Hostname".into(), json!("hmi01.plant.local"));
    nx.insert("Keywords".into(), json!(-9218868437227405312_i64));
    nx.insert("EventType".into(), json!("AUDIT_FAILURE"));
    nx.insert("EventID".into(), json!(4625));
    nx.insert(
        "SourceName".into(),
        json!("Microsoft-Windows-Security-Auditing"),
    );
    nx.insert("Task".into(), json!(12544));
    nx.insert("Channel".into(), json!("Security"));
    nx.insert("Category".into(), json!("Logon"));
    nx.insert("Message".into(), json!("An account failed to log on."));
    for (k, v) in fields {
        nx.insert(k.into(), json!(v));
    }
    let (nx_event, shape) =
        parse_json(Value::Object(nx).to_string().as_bytes(), &ctx).expect("nxlog");
    assert_eq!(shape, json::Shape::NxLog);
    let nx_event = as_json(&nx_event);

    let wlb = json!({
        "@timestamp": "2024-05-06T07:08:09.123Z",
        "message": "An account failed to log on.",
        "log": {"level": "information"},
        "winlog": {
            "channel": "Security", "event_id": "4625",
            "provider_name": "Microsoft-Windows-Security-Auditing",
            "computer_name": "hmi01.plant.local", "task": "Logon", "opcode": "Info",
            "keywords": ["Audit Failure"], "record_id": 424242,
            "event_data": fields.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
        }
    });
    let (wlb_event, shape) = parse_json(wlb.to_string().as_bytes(), &ctx).expect("winlogbeat");
    assert_eq!(shape, json::Shape::Winlogbeat);
    let wlb_event = as_json(&wlb_event);

    let message = "An account failed to log on.  Subject: Security ID: S-1-5-18 Account Name: HMI01$ \
        Account Domain: PLANT Logon ID: 0x3E7  Logon Type: 3  Account For Which Logon Failed: \
        Security ID: S-1-0-0 Account Name: administrator Account Domain: PLANT  Failure Information: \
        Failure Reason: Unknown user name or bad password. Status: 0xC000006D Sub Status: 0xC000006A  \
        Process Information: Caller Process ID: 0x244 Caller Process Name: C:\\Windows\\System32\\lsass.exe  \
        Network Information: Workstation Name: ENG-WS07 Source Network Address: 10.20.30.40 Source Port: 50312";
    let line = format!(
        "<13>May  6 07:08:09 hmi01.plant.local MSWinEventLog\t1\tSecurity\t812\tMon May 06 07:08:09 2024\t\
         4625\tMicrosoft-Windows-Security-Auditing\tN/A\tN/A\tFailure Audit\thmi01.plant.local\tLogon\t\t{message}\t771"
    );
    let sctx = crate::syslog::ParseContext::new(at, "syslog_udp");
    let snare_event = as_json(&crate::syslog::parse(line.as_bytes(), &sctx).expect("snare"));
    assert_eq!(snare_event["weir"]["class"], "windows");
    assert_eq!(snare_event["tags"], json!(["snare"]));

    for path in [
        "event.category",
        "event.type",
        "event.action",
        "event.outcome",
        "event.code",
        "event.provider",
        "event.module",
        "user",
        "source",
        "host",
        "process",
        "winlog.event_id",
        "winlog.channel",
        "winlog.logon.type",
        "winlog.logon.failure.reason",
        "winlog.logon.failure.status",
        "winlog.logon.failure.sub_status",
    ] {
        let want = path.split('.').fold(&xml_event, |n, k| &n[k]);
        assert!(!want.is_null(), "{path}");
        for (name, other) in [
            ("nxlog", &nx_event),
            ("winlogbeat", &wlb_event),
            ("snare", &snare_event),
        ] {
            let got = path.split('.').fold(other, |n, k| &n[k]);
            assert_eq!(got, want, "{path} from {name}: {other:#}");
        }
    }
    assert_eq!(xml_event["process"]["pid"], json!(580));
}

/// A record the `evtx` crate rendered: its declaration dropped, the document moved into
/// `event.original`; the header's id and time fill in for a template that lost them.
#[test]
fn a_rendered_evtx_record_keeps_its_event_element_and_header_facts() {
    let at = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("a time");
    let header_time = Utc
        .with_ymd_and_hms(2016, 7, 8, 18, 12, 51)
        .single()
        .expect("a time");
    let ctx = WinContext::new(at, "evtx");
    let element = "<Event xmlns=\"http://schemas.microsoft.com/win/2004/08/events/event\"><System><Provider Name=\"P\"/><EventID>7036</EventID><Channel>System</Channel></System></Event>";
    let rendered = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n{element}");

    let e = rendered_record_event(rendered.clone(), 42, Some(header_time), &ctx);
    assert_eq!(e.event.original.as_deref(), Some(element));
    let w = e.winlog.as_deref().expect("winlog");
    assert_eq!(w.record_id.as_deref(), Some("42"));
    assert_eq!(e.timestamp, header_time);

    // The document's own id and time win over the header's.
    let own = rendered.replace(
        "</EventID>",
        "</EventID><TimeCreated SystemTime=\"2020-01-02T03:04:05Z\"/><EventRecordID>9</EventRecordID>",
    );
    let e = rendered_record_event(own, 42, Some(header_time), &ctx);
    assert_eq!(
        e.winlog.as_deref().expect("winlog").record_id.as_deref(),
        Some("9")
    );
    assert_eq!(e.timestamp.to_rfc3339(), "2020-01-02T03:04:05+00:00");

    // Not kept when configured off; a document that is no event becomes a tagged raw event.
    let off = WinContext {
        keep_original: false,
        ..WinContext::new(at, "evtx")
    };
    assert_eq!(
        rendered_record_event(rendered, 1, None, &off)
            .event
            .original,
        None
    );
    let raw = rendered_record_event("<?xml version=\"1.0\"?>\n<Other/>".into(), 1, None, &ctx);
    assert_eq!(raw.weir.parse_error.as_deref(), Some("not_a_windows_event"));
    assert_eq!(raw.event.original.as_deref(), Some("<Other/>"));
}
