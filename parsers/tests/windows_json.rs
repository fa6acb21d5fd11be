//! Windows events as JSON: the OTRF Security-Datasets capture (NXLog-style records from a real
//! PsExec / LSA-secrets attack, samples/windows/json) and the `evtx` crate's JSON rendering of
//! real logs (the OpenWEC shape) map exactly as the same records read from XML.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::path::Path;

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use weir_parsers::windows::{self, json::Shape, WinContext};

fn ctx() -> WinContext {
    WinContext::new(
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().unwrap(),
        "windows_json",
    )
}

fn as_json(e: &weir_schemas::Event) -> Value {
    // Weir's JSON writer is serde_json's output byte for byte.
    let bytes = e.to_json();
    assert_eq!(bytes, serde_json::to_vec(e).unwrap());
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn every_otrf_record_maps_and_the_attack_is_visible() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples/windows/json/otrf_psexec_lsa_secrets_dump.json");
    let text = std::fs::read_to_string(path).unwrap();
    let ecs = weir_schemas::ecs::EcsSchema::load_bundled().unwrap();
    let mut events = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (event, shape) = windows::parse_json(line.as_bytes(), &ctx()).unwrap();
        assert_eq!(shape, Shape::NxLog);
        let v = as_json(&event);
        assert_eq!(ecs.check(&v), vec![], "{v:#}");
        events.push(v);
    }
    assert_eq!(events.len(), 286);
    let of = |id: &'static str| events.iter().filter(move |e| e["event"]["code"] == id);
    // The PsExec service install, from the System log and from the Security log.
    let install = of("7045").next().unwrap();
    assert_eq!(install["service"]["name"], "PSEXESVC");
    assert_eq!(install["event"]["action"], "service-installed");
    assert_eq!(
        install["winlog"]["event_data"]["AccountName"],
        "LocalSystem"
    );
    let s4697 = of("4697").next().unwrap();
    assert_eq!(s4697["service"]["name"], "PSEXESVC");
    // The process chain.
    let psexec = of("4688")
        .find(|e| e["process"]["name"] == "PsExec.exe")
        .unwrap();
    assert_eq!(psexec["process"]["pid"], json!(0x1c58));
    assert_eq!(psexec["user"]["name"], "wardog");
    assert!(psexec["process"]["command_line"]
        .as_str()
        .unwrap()
        .contains("reg save HKLM\\security\\policy\\secrets"));
    // The audit log cleared: only the rendered message carries the actor.
    let cleared = of("1102").next().unwrap();
    assert_eq!(cleared["event"]["action"], "audit-log-cleared");
    assert_eq!(cleared["user"]["name"], "wardog");
    assert_eq!(cleared["user"]["domain"], "WORKSTATION5");
    assert_eq!(cleared["winlog"]["logon"]["id"], "0xC61D9");
    let cleared = of("104").next().unwrap();
    assert_eq!(cleared["event"]["action"], "Log clear");
    // Network connections, oriented: outbound from the workstation to 168.63.129.16:80.
    let out = of("5156")
        .find(|e| e["destination"]["ip"] == "168.63.129.16")
        .unwrap();
    assert_eq!(out["network"]["direction"], "egress");
    assert_eq!(out["source"]["ip"], "192.168.2.5");
    assert_eq!(out["destination"]["port"], 80);
    assert_eq!(out["network"]["transport"], "tcp");
    // Sysmon through the same JSON.
    assert!(
        of("1").all(|e| e["event"]["module"] == "sysmon" && e["process"]["executable"].is_string())
    );
    assert!(of("10").all(|e| e["event"]["action"] == "ProcessAccess"));
    // Times are read in the context's zone (UTC here) from NXLog's zone-less form.
    assert_eq!(
        of("1102").next().unwrap()["@timestamp"],
        "2020-10-19T03:30:41.104Z"
    );
}

#[test]
fn the_evtx_crates_json_of_real_logs_maps_as_the_xml_does() {
    for name in [
        "security.evtx",
        "new-user-security.evtx",
        "system.evtx",
        "sysmon.evtx",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../samples/windows/evtx")
            .join(name);
        let mut xml = evtx::EvtxParser::from_path(&path).unwrap();
        let mut js = evtx::EvtxParser::from_path(&path).unwrap();
        let from_xml: Vec<_> = xml
            .records()
            .flatten()
            .map(|r| as_json(&windows::parse_xml(&r.data, &ctx()).unwrap()))
            .collect();
        let from_json: Vec<_> = js
            .records_json_value()
            .flatten()
            .map(|r| {
                let (e, shape) =
                    windows::parse_json(r.data.to_string().as_bytes(), &ctx()).unwrap();
                assert_eq!(shape, Shape::OpenWec);
                as_json(&e)
            })
            .collect();
        assert_eq!(from_xml.len(), from_json.len(), "{name}");
        for (mut a, mut b) in from_xml.into_iter().zip(from_json) {
            // Only the record as received and the shape tag may differ.
            a["event"].as_object_mut().unwrap().remove("original");
            b["event"].as_object_mut().unwrap().remove("original");
            b.as_object_mut().unwrap().remove("tags");
            // XML cannot hold control characters: the crate writes `_` for them there.
            scrub(&mut b);
            assert_eq!(a, b, "{name}");
        }
    }
}

fn scrub(v: &mut Value) {
    match v {
        Value::String(s)
            if s.chars()
                .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) =>
        {
            *s = s
                .chars()
                .map(|c| {
                    if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
                        '_'
                    } else {
                        c
                    }
                })
                .collect();
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(map) => map.values_mut().for_each(scrub),
        _ => {}
    }
}

/// The larger OTRF capture (Empire PsExec over DCE/RPC, 4,348 events, kept zipped): messy real
/// data, with the Security channel written both `Security` and `security`. Unzipped with
/// Python's `zipfile` (the test suite already needs Python for the Kafka broker).
#[test]
fn every_record_of_the_empire_capture_maps_whatever_the_channel_case() {
    let zip = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples/windows/json/empire_psexec_dcerpc_tcp_svcctl.zip");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); sys.stdout.buffer.write(b''.join(z.read(n) for n in z.namelist()))",
        ])
        .arg(&zip)
        .output()
        .expect("python3 runs");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let ecs = weir_schemas::ecs::EcsSchema::load_bundled().unwrap();
    let (mut n, mut lower) = (0, 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (event, _) = windows::parse_json(line.as_bytes(), &ctx()).unwrap();
        let v = as_json(&event);
        assert_eq!(ecs.check(&v), vec![], "{v:#}");
        if v["winlog"]["channel"] == "security" {
            lower += 1;
            assert_eq!(v["event"]["module"], "security", "{v:#}");
        }
        n += 1;
    }
    assert_eq!(n, 4348);
    assert_eq!(lower, 383);
}
