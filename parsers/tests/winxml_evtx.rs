//! Real `.evtx` files (samples/windows/evtx, from the `evtx` crate's corpus), rendered to XML by
//! the `evtx` crate as Windows renders them, read back by `weir_parsers::winxml`: every record
//! the file yields parses, and agrees with the `evtx` crate's own JSON rendering of the same
//! record (an independent oracle) on event id, record id, channel, computer and every
//! `EventData` value; known records field for field.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::path::Path;

use weir_parsers::winxml::{self, WinEvent};

fn read(name: &str) -> Vec<WinEvent> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples/windows/evtx")
        .join(name);
    let mut parser = evtx::EvtxParser::from_path(&path).unwrap();
    let mut out = Vec::new();
    for record in parser.records() {
        let record = record.unwrap_or_else(|e| panic!("{name}: {e}"));
        let ev =
            winxml::parse(&record.data).unwrap_or_else(|e| panic!("{name}: {e}\n{}", record.data));
        assert!(ev.time_created.is_some(), "{name}: {}", record.data);
        // Windows' own rendering is read by the single-pass scanner, and it agrees with the
        // general XML reader.
        assert_eq!(
            winxml::parse_fast(&record.data).as_ref(),
            Some(&ev),
            "{name}: {}",
            record.data
        );
        assert_eq!(
            winxml::parse_general(&record.data).as_ref(),
            Ok(&ev),
            "{name}"
        );
        out.push(ev);
    }
    let mut parser = evtx::EvtxParser::from_path(&path).unwrap();
    let oracle: Vec<serde_json::Value> = parser
        .records_json_value()
        .map(|r| r.unwrap_or_else(|e| panic!("{name}: {e}")).data)
        .collect();
    assert_eq!(oracle.len(), out.len(), "{name}");
    for (ev, json) in out.iter().zip(&oracle) {
        // The oracle writes numbers as numbers or as strings, and text with attributes as
        // {"#attributes": ..., "#text": ...}.
        let num = |v: &serde_json::Value| {
            let v = if v.is_object() { &v["#text"] } else { v };
            v.as_u64().or_else(|| v.as_str()?.parse().ok())
        };
        let sys = &json["Event"]["System"];
        assert_eq!(
            num(&sys["EventID"]),
            Some(u64::from(ev.event_id)),
            "{name}: {sys}"
        );
        assert_eq!(num(&sys["EventRecordID"]), ev.record_id, "{name}");
        assert_eq!(sys["Channel"].as_str(), ev.channel.as_deref(), "{name}");
        assert_eq!(sys["Computer"].as_str(), ev.computer.as_deref(), "{name}");
        if let Some(data) = json["Event"]["EventData"].as_object() {
            for (k, v) in data {
                if k.starts_with('#') {
                    continue;
                }
                if k == "Binary" {
                    assert_eq!(ev.binary.as_deref(), v.as_str(), "{name}: Binary");
                    continue;
                }
                if k == "Data" {
                    // Unnamed <Data> elements: param1, param2, ... in order.
                    let texts: Vec<String> = match &v["#text"] {
                        serde_json::Value::Array(a) => a
                            .iter()
                            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                            .collect(),
                        serde_json::Value::String(s) => vec![s.clone()],
                        _ => Vec::new(),
                    };
                    for (i, t) in texts.iter().enumerate() {
                        let key = format!("param{}", i + 1);
                        assert_eq!(ev.data(&key), Some(t.as_str()), "{name}: {key}");
                    }
                    continue;
                }
                let want = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                assert_eq!(ev.data(k), Some(want.as_str()), "{name}: EventData {k}");
            }
        }
    }
    out
}

#[test]
fn every_record_of_every_sample_file_parses() {
    for (name, count) in [
        ("Security_short_selected.evtx", 7),
        ("new-user-security.evtx", 4),
        ("Application_no_crc32.evtx", 17),
        ("MSExchange_Management_wec.evtx", 1),
    ] {
        assert_eq!(read(name).len(), count, "{name}");
    }
}

#[test]
fn a_new_user_and_its_group_memberships_read_field_for_field() {
    let events = read("new-user-security.evtx");
    let ids: Vec<u32> = events.iter().map(|e| e.event_id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![4720, 4728, 4732, 4732]);
    let created = events.iter().find(|e| e.event_id == 4720).unwrap();
    assert_eq!(created.channel.as_deref(), Some("Security"));
    assert_eq!(
        created.provider_name.as_deref(),
        Some("Microsoft-Windows-Security-Auditing")
    );
    assert_eq!(
        created.keywords,
        Some(0x8020_0000_0000_0000),
        "audit success"
    );
    for field in [
        "TargetUserName",
        "TargetSid",
        "SubjectUserName",
        "SamAccountName",
    ] {
        assert!(
            created.data(field).is_some_and(|v| !v.is_empty()),
            "4720 has {field}: {:?}",
            created.event_data
        );
    }
    let added = events.iter().find(|e| e.event_id == 4728).unwrap();
    assert!(added
        .data("MemberSid")
        .is_some_and(|s| s.starts_with("S-1-5-")));
}

#[test]
fn a_forwarded_classic_event_keeps_its_unnamed_data_in_order() {
    // Exchange's cmdlet log, collected by a Windows Event Collector: a classic provider with
    // Qualifiers and positional <Data> elements.
    let events = read("MSExchange_Management_wec.evtx");
    let e = &events[0];
    assert_eq!(e.event_id, 1);
    assert_eq!(e.qualifiers, Some(16384));
    assert_eq!(e.provider_name.as_deref(), Some("MSExchange CmdletLogs"));
    assert_eq!(e.computer.as_deref(), Some("WEC.ave.local"));
    assert_eq!(e.keywords, Some(0x0080_0000_0000_0000));
    assert_eq!(e.data("param1"), Some("Set-Mailbox"));
    assert_eq!(
        e.data("param2"),
        Some(
            r#"-Identity "Administrateur" -DeliverToMailboxAndForward "False" -ForwardingSmtpAddress "smtp:test2@example.com""#
        )
    );
    assert_eq!(e.data("param8"), Some(""));
    assert_eq!(e.rendering, None);
}

/// Every record of every sample `.evtx` file (the damaged ones: every readable record) is read
/// by the single-pass scanner, to the same event as the general XML reader.
#[test]
fn every_sample_record_takes_the_scanner_and_agrees_with_the_general_reader() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/windows/evtx");
    let mut records = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Ok(mut parser) = evtx::EvtxParser::from_path(&path) else {
            continue;
        };
        for record in parser.records().flatten() {
            let general = winxml::parse_general(&record.data);
            assert!(general.is_ok(), "{}: {}", path.display(), record.data);
            assert_eq!(
                winxml::parse_fast(&record.data).ok_or(()).as_ref(),
                general.as_ref().map_err(|_| &()),
                "{}: {}",
                path.display(),
                record.data
            );
            records += 1;
        }
    }
    assert_eq!(records, 6625);
}
