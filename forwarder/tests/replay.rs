//! `weir replay`: the file kind is found by content; printed events are the agent's; streaming
//! into a running agent's TCP source delivers the same events through the diode.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::*;

fn sample(path: &str) -> String {
    format!("{}/../samples/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn replay(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(WEIR)
        .arg("replay")
        .args(args)
        .env("WEIR_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn replay_prints_what_the_agent_would_send_for_each_kind_of_file() {
    let (code, out, err) = replay(&[&sample("windows/evtx/security.evtx")]);
    assert_eq!(code, 0, "{err}");
    let evs = lines(&out);
    assert_eq!(evs.len(), 2261);
    assert!(evs.iter().all(|e| e["weir"]["class"] == "windows"));
    assert!(err.contains("2261 records"), "{err}");
    assert_ecs(&evs);
    // event.original as Windows renders it (what WEF would carry, what the Splunk add-on reads
    // as XmlWinEventLog): the event element alone, no declaration, no indentation between
    // elements (values keep their own line breaks).
    for e in &evs {
        let xml = e["event"]["original"].as_str().unwrap();
        assert!(
            xml.starts_with("<Event xmlns=\"http://schemas.microsoft.com/win/2004/08/events/event\"><System><Provider ")
                && xml.ends_with("</Event>")
                && !xml.contains(">\n  <"),
            "{xml}"
        );
    }

    // The damaged file: every readable record, the damage reported.
    let (code, out, err) = replay(&[&sample("windows/evtx/sample_with_a_bad_chunk_magic.evtx")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines(&out).len(), 301);
    assert!(err.contains("damaged records skipped 3"), "{err}");

    let (code, out, err) = replay(&[&sample("syslog/snare.log")]);
    assert_eq!(code, 0, "{err}");
    assert!(lines(&out).iter().all(|e| e["weir"]["class"] == "windows"));
    assert!(err.contains("(Syslog)"), "{err}");

    let (code, out, _) = replay(&[&sample("windows/json/otrf_psexec_lsa_secrets_dump.json")]);
    assert_eq!(code, 0);
    assert_eq!(lines(&out).len(), 286);

    // A capture is recognised by its magic, whatever its name, and goes through the sensor.
    let dir = tempfile::tempdir().unwrap();
    let named_log = dir.path().join("capture.log");
    std::fs::copy(
        sample("pcaps/modbus/icsnpp_modbus_example.pcap"),
        &named_log,
    )
    .unwrap();
    let (code, out, err) = replay(&[named_log.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let evs = lines(&out);
    let count = |class: &str| evs.iter().filter(|e| e["weir"]["class"] == class).count();
    // 2 flows; 24 transactions, the reads of each (function, unit) summarised per minute; 9
    // writes, each also a notable event.
    assert_eq!(
        (count("flow"), count("ot"), count("notable")),
        (2, 24, 9),
        "{err}"
    );
    assert!(
        err.contains("(Capture)") && err.contains("packets 100"),
        "{err}"
    );
    assert_ecs(&evs);
    // A capture cut inside its header: nothing to print, the damage said.
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]).unwrap();
    let (code, out, err) = replay(&[cut.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(
        err.contains("ends inside a record (8 bytes left over)"),
        "{err}"
    );
    // Captures cannot be streamed into an agent's TCP source.
    let (code, _, err) = replay(&["--to", "127.0.0.1:9", named_log.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("can only be printed"), "{err}");
}

#[test]
fn replay_into_a_running_agent_delivers_the_same_events_through_the_diode() {
    let dir = workdir();
    let (diode, tcp) = (free_udp(), free_tcp());
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let sources = format!(
        "[[sources]]\ntype = \"windows_json_tcp\"\nname = \"replayed\"\naddress = \"127.0.0.1:{tcp}\"\n"
    );
    let tx = Proc::start(&["tx"], &tx_config(dir.path(), diode, &sources));
    tx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], tcp)));
    let file = sample("windows/evtx/new-user-security.evtx");
    let (code, _, err) = replay(&[&file, "--to", &format!("127.0.0.1:{tcp}")]);
    assert_eq!(code, 0, "{err}");
    wait_class(dir.path(), "windows", 4, Duration::from_secs(30));
    tx.stop();
    rx.stop();
    let received: Vec<_> = events(dir.path())
        .into_iter()
        .filter(|e| e["weir"]["class"] == "windows")
        .collect();
    let (_, printed, _) = replay(&[&file]);
    let printed = lines(&printed);
    assert_eq!(received.len(), printed.len());
    for (r, p) in received.iter().zip(&printed) {
        for part in ["@timestamp", "user", "group", "winlog", "host"] {
            assert_eq!(r[part], p[part], "{part}");
        }
        for field in ["action", "category", "type", "outcome", "code"] {
            assert_eq!(r["event"][field], p["event"][field], "event.{field}");
        }
    }
}

/// The agent's diode record carries the routing envelope it computed from the typed event, so
/// the receiver does not parse the JSON; the receiver's own pass over the JSON (`Peek`) must
/// come to the same envelope for every event the agent makes. Checked on every event of every
/// bundled sample (syslog, Snare, `.evtx`, Windows JSON, every capture).
#[test]
fn the_agents_envelope_is_the_one_the_receiver_reads_from_the_json_for_every_sample_event() {
    use weir_integrations::envelope::{agent_record, routed, EnvelopeRef, Peek};
    use weir_schemas::Event;
    let root = std::path::PathBuf::from(sample(""));
    let mut files = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.ends_with("expected") && !name.ends_with("config") {
                    stack.push(path);
                }
            } else if [".log", ".evtx", ".json", ".pcap", ".pcapng"]
                .iter()
                .any(|s| name.ends_with(s))
                && !name.contains("/wef/")
            {
                files.push(name);
            }
        }
    }
    files.sort();
    let (mut events, mut with_host, mut with_fields) = (0usize, 0usize, 0usize);
    for file in &files {
        let (code, out, err) = replay(&[file]);
        assert_eq!(code, 0, "{file}: {err}");
        for line in out.lines() {
            let e = Event::from_json(line.as_bytes()).unwrap();
            let json = e.to_json();
            let peek = Peek::of(&json).unwrap();
            let ours = EnvelopeRef::of_event(&e);
            assert_eq!(ours, peek.view(None, None), "{file}: {line}");
            let record = agent_record(&e);
            let (env, class, body) = routed(&record).unwrap();
            assert_eq!((env, class, body), (ours, e.class(), json.as_slice()));
            events += 1;
            with_host += usize::from(ours.host.is_some());
            with_fields += usize::from(ours.fields.len() >= 8);
        }
    }
    assert!(files.len() >= 40, "{files:?}");
    assert!(
        events > 9_000 && with_host > 5_000 && with_fields > 1_000,
        "{events} {with_host} {with_fields}"
    );
}
