//! Windows events from real `.evtx` files (samples/windows/evtx) mapped to ECS: every readable
//! record of every file yields exactly one event; every event passes the ECS conformance check
//! and has an index-template mapping for each field; and for each event id the samples hold, the
//! ECS fields agree with the record's own values as the `evtx` crate's JSON rendering (an
//! independent reader) states them.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{TimeZone, Utc};
use serde_json::Value;
use weir_parsers::windows::{self, tables, WinContext};

struct Sample {
    /// (mapped event as JSON, the oracle's `Event` object)
    events: Vec<(Value, Value)>,
    unreadable: usize,
}

fn read(name: &str) -> Sample {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples/windows/evtx")
        .join(name);
    let at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().unwrap();
    let ctx = WinContext::new(at, "evtx");
    let mut xml_parser = evtx::EvtxParser::from_path(&path).unwrap();
    let mut json_parser = evtx::EvtxParser::from_path(&path).unwrap();
    let mut oracle = BTreeMap::new();
    for r in json_parser.records_json_value().flatten() {
        oracle.insert(r.event_record_id, r.data);
    }
    let mut events = Vec::new();
    let mut unreadable = 0;
    for record in xml_parser.records() {
        let Ok(record) = record else {
            unreadable += 1;
            continue;
        };
        let event = windows::parse_xml(&record.data, &ctx)
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", record.data));
        let bytes = event.to_json();
        // Weir's JSON writer is serde_json's output byte for byte.
        assert_eq!(
            bytes,
            serde_json::to_vec(&event).unwrap(),
            "{name}: record {}",
            record.event_record_id
        );
        let json: Value = serde_json::from_slice(&bytes).unwrap();
        let truth = oracle
            .get(&record.event_record_id)
            .unwrap_or_else(|| panic!("{name}: the oracle lacks {}", record.event_record_id));
        events.push((json, truth["Event"].clone()));
    }
    Sample { events, unreadable }
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |node, key| &node[key])
}

/// The oracle's value of `EventData/<name>` as text ("-" and "" count as absent).
fn data(oracle: &Value, name: &str) -> Option<String> {
    let v = &oracle["EventData"][name];
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!text.trim().is_empty() && text.trim() != "-").then(|| text.trim().to_owned())
}

fn conforms(name: &str, sample: &Sample) {
    let ecs = weir_schemas::ecs::EcsSchema::load_bundled().unwrap();
    for (event, _) in &sample.events {
        assert_eq!(ecs.check(event), vec![], "{name}: {event:#}");
        let mut stack = vec![(String::new(), event)];
        while let Some((prefix, v)) = stack.pop() {
            match v {
                Value::Object(map) => {
                    for (k, child) in map {
                        let p = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        stack.push((p, child));
                    }
                }
                _ => assert!(
                    weir_schemas::fields::lookup(&prefix).is_some(),
                    "{name}: {prefix} has no template mapping"
                ),
            }
        }
        assert_eq!(event["weir"]["class"], "windows");
        assert_eq!(event["event"]["kind"], "event");
    }
}

#[test]
fn every_readable_record_of_every_sample_becomes_one_conforming_event() {
    for (name, readable, unreadable) in [
        ("security.evtx", 2261, 0),
        ("sysmon.evtx", 358, 8),
        ("system.evtx", 1881, 0),
        ("Security_short_selected.evtx", 7, 0),
        ("new-user-security.evtx", 4, 0),
        ("Application_no_crc32.evtx", 17, 0),
        ("MSExchange_Management_wec.evtx", 1, 0),
        ("terminal_services_rcm_operational.evtx", 1795, 2),
        ("sample_with_a_bad_chunk_magic.evtx", 301, 3),
    ] {
        let sample = read(name);
        assert_eq!(sample.events.len(), readable, "{name}");
        assert_eq!(sample.unreadable, unreadable, "{name}");
        conforms(name, &sample);
        for (event, oracle) in &sample.events {
            let sys = &oracle["System"];
            let id = match &sys["EventID"] {
                Value::Object(o) => o["#text"].to_string(),
                v => v.to_string(),
            };
            assert_eq!(event["winlog"]["event_id"], id.trim_matches('"'), "{name}");
            assert_eq!(event["event"]["code"], event["winlog"]["event_id"]);
            assert_eq!(event["winlog"]["channel"], sys["Channel"], "{name}");
            assert_eq!(event["host"]["name"], sys["Computer"], "{name}");
            assert_eq!(
                event["winlog"]["provider_name"],
                sys["Provider"]["#attributes"]["Name"]
            );
        }
    }
}

/// How an ECS field is derived from an `EventData` value.
#[derive(Clone, Copy)]
enum Conv {
    Same,
    Number,
    Ip,
    LogonType,
    Basename,
}

fn expect(conv: Conv, text: &str) -> Option<Value> {
    Some(match conv {
        Conv::Same => Value::from(text),
        Conv::Number => Value::from(tables::number(text).filter(|n| *n != 0)?),
        Conv::Ip => Value::from(
            text.parse::<std::net::IpAddr>()
                .ok()?
                .to_canonical()
                .to_string(),
        ),
        Conv::LogonType => Value::from(tables::logon_type(
            u32::try_from(tables::number(text)?).ok()?,
        )?),
        Conv::Basename => Value::from(text.rsplit('\\').next()?),
    })
}

/// For every event of `id` in `file`: the category/action, and each (ECS field, EventData name,
/// conversion).
fn golden(file: &str, id: &str, action: &str, category: &str, rules: &[(&str, &str, Conv)]) {
    let sample = read(file);
    let mut seen = 0;
    for (event, oracle) in sample
        .events
        .iter()
        .filter(|(e, _)| e["event"]["code"] == id)
    {
        seen += 1;
        assert_eq!(event["event"]["action"], action, "{file} {id}");
        assert!(
            event["event"]["category"]
                .as_array()
                .is_some_and(|c| c.iter().any(|x| x == category)),
            "{file} {id}: {event:#}"
        );
        for (field, name, conv) in rules {
            let want = data(oracle, name).and_then(|t| expect(*conv, &t));
            let got = get(event, field);
            match want {
                Some(want) => assert_eq!(got, &want, "{file} {id} {field} ← {name}: {event:#}"),
                None => assert!(got.is_null(), "{file} {id} {field}: {got} from nothing"),
            }
        }
    }
    assert!(seen > 0, "{file} holds no {id}");
}

#[test]
fn security_log_samples_field_by_field() {
    use Conv::*;
    let logon = [
        ("user.name", "TargetUserName", Same),
        ("user.domain", "TargetDomainName", Same),
        ("user.id", "TargetUserSid", Same),
        ("winlog.logon.id", "TargetLogonId", Same),
        ("winlog.logon.type", "LogonType", LogonType),
    ];
    let mut l4624 = logon.to_vec();
    l4624.extend([
        ("source.ip", "IpAddress", Ip),
        ("source.domain", "WorkstationName", Same),
        ("process.pid", "ProcessId", Number),
        ("process.executable", "ProcessName", Same),
        ("process.name", "ProcessName", Basename),
    ]);
    golden(
        "security.evtx",
        "4624",
        "logged-in",
        "authentication",
        &l4624,
    );
    golden(
        "security.evtx",
        "4634",
        "logged-out",
        "authentication",
        &logon,
    );
    let subject = [
        ("user.name", "SubjectUserName", Same),
        ("user.domain", "SubjectDomainName", Same),
        ("user.id", "SubjectUserSid", Same),
        ("winlog.logon.id", "SubjectLogonId", Same),
    ];
    golden(
        "security.evtx",
        "4672",
        "logged-in-special",
        "iam",
        &subject,
    );
    let mut l4648 = subject.to_vec();
    l4648.extend([
        ("user.effective.name", "TargetUserName", Same),
        ("user.effective.domain", "TargetDomainName", Same),
        ("destination.domain", "TargetServerName", Same),
        ("process.pid", "ProcessId", Number),
        ("process.executable", "ProcessName", Same),
    ]);
    golden(
        "security.evtx",
        "4648",
        "logged-in-explicit",
        "authentication",
        &l4648,
    );
    let mut account = subject.to_vec();
    account.extend([
        ("user.target.name", "TargetUserName", Same),
        ("user.target.domain", "TargetDomainName", Same),
        ("user.target.id", "TargetSid", Same),
    ]);
    golden(
        "security.evtx",
        "4720",
        "added-user-account",
        "iam",
        &account,
    );
    golden(
        "new-user-security.evtx",
        "4720",
        "added-user-account",
        "iam",
        &account,
    );
    let mut group = subject.to_vec();
    group.extend([
        ("group.name", "TargetUserName", Same),
        ("group.domain", "TargetDomainName", Same),
        ("group.id", "TargetSid", Same),
        ("user.target.id", "MemberSid", Same),
    ]);
    golden(
        "new-user-security.evtx",
        "4732",
        "added-member-to-group",
        "iam",
        &group,
    );
    golden(
        "new-user-security.evtx",
        "4728",
        "added-member-to-group",
        "iam",
        &group,
    );
    golden(
        "Security_short_selected.evtx",
        "4625",
        "logon-failed",
        "authentication",
        &[
            ("user.name", "TargetUserName", Same),
            ("source.ip", "IpAddress", Ip),
            ("winlog.logon.type", "LogonType", LogonType),
        ],
    );
    golden(
        "Security_short_selected.evtx",
        "4776",
        "credential-validated",
        "authentication",
        &[
            ("user.name", "TargetUserName", Same),
            ("source.domain", "Workstation", Same),
        ],
    );
    golden(
        "Security_short_selected.evtx",
        "5157",
        "windows-firewall-connection-blocked",
        "network",
        &[
            ("process.executable", "Application", Same),
            ("process.pid", "ProcessID", Number),
        ],
    );
}

#[test]
fn sysmon_samples_field_by_field() {
    use Conv::*;
    let actor = [
        ("process.entity_id", "ProcessGuid", Same),
        ("process.pid", "ProcessId", Number),
        ("process.executable", "Image", Same),
        ("process.name", "Image", Basename),
    ];
    let mut create = actor.to_vec();
    create.extend([
        ("process.command_line", "CommandLine", Same),
        ("process.working_directory", "CurrentDirectory", Same),
        ("process.parent.entity_id", "ParentProcessGuid", Same),
        ("process.parent.pid", "ParentProcessId", Number),
        ("process.parent.executable", "ParentImage", Same),
        ("process.parent.command_line", "ParentCommandLine", Same),
        ("winlog.logon.id", "LogonId", Same),
    ]);
    golden("sysmon.evtx", "1", "Process creation", "process", &create);
    golden(
        "sysmon.evtx",
        "10",
        "ProcessAccess",
        "process",
        &[
            ("process.pid", "SourceProcessId", Number),
            ("process.executable", "SourceImage", Same),
            ("winlog.event_data.TargetImage", "TargetImage", Same),
        ],
    );
    let mut file = actor.to_vec();
    file.extend([
        ("file.path", "TargetFilename", Same),
        ("file.name", "TargetFilename", Basename),
    ]);
    golden("sysmon.evtx", "11", "FileCreate", "file", &file);
    let mut reg = actor.to_vec();
    reg.push(("registry.path", "TargetObject", Same));
    golden(
        "sysmon.evtx",
        "12",
        "RegistryEvent (Object create and delete)",
        "registry",
        &reg,
    );
    golden(
        "sysmon.evtx",
        "13",
        "RegistryEvent (Value Set)",
        "registry",
        &reg,
    );
}
