//! SPAN-port metadata through real processes: `weir tx` with a `span` source capturing with
//! libpcap on the loopback interface (a real Modbus/TCP conversation on 127.0.0.1:502), and a
//! `capture_file` source reading the bundled captures → UDP diode on loopback → `weir rx` →
//! NDJSON. Capturing needs root (or CAP_NET_RAW + CAP_NET_ADMIN) and port 502 needs
//! CAP_NET_BIND_SERVICE: without them these tests fail and say why.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn samples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/pcaps"))
}

/// A Modbus server on 127.0.0.1:502 answering read-holding-registers and
/// write-single-register, for one connection.
fn modbus_server(listener: TcpListener) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut hdr = [0u8; 7];
        while s.read_exact(&mut hdr).is_ok() {
            let len = u16::from_be_bytes([hdr[4], hdr[5]]) as usize - 1;
            let mut pdu = vec![0u8; len];
            s.read_exact(&mut pdu).unwrap();
            let reply: Vec<u8> = match pdu[0] {
                3 => {
                    let qty = u16::from_be_bytes([pdu[3], pdu[4]]);
                    let mut r = vec![3, (qty * 2) as u8];
                    for i in 0..qty {
                        r.extend_from_slice(&(100 + i).to_be_bytes());
                    }
                    r
                }
                6 => pdu.clone(),
                f => vec![f | 0x80, 1],
            };
            let mut out = hdr[..4].to_vec();
            out.extend_from_slice(&((reply.len() + 1) as u16).to_be_bytes());
            out.push(hdr[6]);
            out.extend_from_slice(&reply);
            s.write_all(&out).unwrap();
        }
    })
}

#[test]
fn a_span_source_captures_flows_and_modbus_on_loopback_with_libpcap() {
    let listener = match TcpListener::bind("127.0.0.1:502") {
        Ok(l) => l,
        Err(e) => panic!(
            "cannot listen on 127.0.0.1:502 ({e}): this test needs root or CAP_NET_BIND_SERVICE"
        ),
    };
    let dir = workdir();
    let diode = free_udp();
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let config = tx_config(
        dir.path(),
        diode,
        r#"
[[sources]]
type = "span"
name = "span-lo"
interface = "lo"
bpf_filter = "tcp port 502"
read_summary_seconds = 0
stats_interval_seconds = 1
"#,
    );
    let tx = Proc::start(&["tx"], &config);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tx.log().contains("Capturing.") {
        assert!(
            !tx.log().contains("Cannot capture"),
            "libpcap could not open lo (needs root or CAP_NET_RAW):\n{}",
            tx.log()
        );
        assert!(
            Instant::now() < deadline,
            "capture did not start:\n{}",
            tx.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));

    let server = modbus_server(listener);
    let mut c = TcpStream::connect("127.0.0.1:502").unwrap();
    let client_port = c.local_addr().unwrap().port();
    let mut answer = [0u8; 64];
    // Read 3 holding registers at 40, unit 7; write 1234 to register 9.
    c.write_all(&[0, 1, 0, 0, 0, 6, 7, 3, 0, 40, 0, 3]).unwrap();
    let n = c.read(&mut answer).unwrap();
    assert_eq!(
        &answer[..n],
        &[0, 1, 0, 0, 0, 9, 7, 3, 6, 0, 100, 0, 101, 0, 102]
    );
    c.write_all(&[0, 2, 0, 0, 0, 6, 7, 6, 0, 9, 0x04, 0xd2])
        .unwrap();
    let n = c.read(&mut answer).unwrap();
    assert_eq!(n, 12);
    drop(c);
    server.join().unwrap();

    // Transactions are written as soon as the response is seen; the flow when the agent stops.
    wait_class(dir.path(), "ot", 2, Duration::from_secs(20));
    let (ok, summary, log) = tx.stop();
    assert!(ok, "{log}");
    wait_class(dir.path(), "flow", 1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    rx.stop();

    let evs = events(dir.path());
    assert_ecs(&evs);
    let of = |class: &str| {
        evs.iter()
            .filter(|e| e["weir"]["class"] == class)
            .collect::<Vec<&Value>>()
    };
    let (flows, ots, notables) = (of("flow"), of("ot"), of("notable"));
    assert_eq!(
        (flows.len(), ots.len(), notables.len()),
        (1, 2, 1),
        "{evs:#?}"
    );
    let f = flows[0];
    assert_eq!(f["source"]["ip"], "127.0.0.1");
    assert_eq!(f["source"]["port"], client_port);
    assert_eq!(f["destination"]["port"], 502);
    assert_eq!(f["network"]["protocol"], "modbus");
    assert_eq!(f["flow"]["state"], "SF");
    assert_eq!(f["flow"]["direction_known"], true);
    // Two requests of 12 bytes; responses of 15 and 12.
    assert_eq!(f["flow"]["source_payload_bytes"], 24);
    assert_eq!(f["flow"]["destination_payload_bytes"], 27);
    let lo: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(
        f["network"]["community_id"],
        weir_parsers::packet::community_id::community_id(
            0,
            lo,
            lo,
            6,
            Some((client_port, 502)),
            false
        )
    );
    assert_eq!(f["weir"]["input"]["type"], "span");
    assert_eq!(f["weir"]["stream"], "span-lo");
    let read = ots.iter().find(|e| e["ot"]["function_code"] == 3).unwrap();
    assert_eq!(read["ot"]["unit"], 7);
    assert_eq!(read["ot"]["address"], 40);
    assert_eq!(
        read["ot"]["response_values"],
        serde_json::json!([100, 101, 102])
    );
    let write = ots.iter().find(|e| e["ot"]["function_code"] == 6).unwrap();
    assert_eq!(write["ot"]["request_values"], serde_json::json!([1234]));
    assert_eq!(notables[0]["event"]["action"], "ot_write");
    assert_eq!(notables[0]["ot"]["address"], 9);
    assert_eq!(summary["capture_kernel_drops_total"], 0, "{summary}");
    assert!(
        summary["capture_packets_total"].as_u64().unwrap() >= 8,
        "{summary}"
    );
}

#[test]
fn a_span_source_on_a_missing_interface_says_so() {
    let dir = workdir();
    let diode = free_udp();
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let config = tx_config(
        dir.path(),
        diode,
        r#"
[[sources]]
type = "span"
name = "span-missing"
interface = "weir-no-such0"
"#,
    );
    let tx = Proc::start(&["tx"], &config);
    wait_class(dir.path(), "weir", 1, Duration::from_secs(20));
    tx.stop();
    rx.stop();
    let evs = events(dir.path());
    let failed: Vec<&Value> = evs
        .iter()
        .filter(|e| e["event"]["action"] == "capture-failed")
        .collect();
    assert_eq!(failed.len(), 1, "{evs:#?}");
    assert!(failed[0]["message"]
        .as_str()
        .unwrap()
        .contains("weir-no-such0"));
}

#[test]
fn a_capture_file_source_delivers_exactly_what_the_sensor_makes() {
    let dir = workdir();
    let caps = dir.path().join("captures");
    std::fs::create_dir_all(&caps).unwrap();
    let files = [
        "modbus/icsnpp_modbus_example.pcap",
        "dnp3/icsnpp_dnp3_example.pcap",
        "opcua/icsnpp_open62541_client-server_mainloop.pcap",
    ];
    for (i, f) in files.iter().enumerate() {
        std::fs::copy(samples().join(f), caps.join(format!("{i}.pcap"))).unwrap();
    }
    // A damaged copy: cut inside its last record.
    let cut = std::fs::read(samples().join(files[0])).unwrap();
    std::fs::write(caps.join("9-cut.pcap"), &cut[..cut.len() - 5]).unwrap();
    // The oracle: the sensor itself, over the same files in the same order.
    let mut sensor = weir_parsers::sensor::Sensor::new(Default::default());
    let mut want: std::collections::BTreeMap<String, usize> = Default::default();
    let mut names: Vec<_> = std::fs::read_dir(&caps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in &names {
        let bytes = std::fs::read(p).unwrap();
        let mut r = weir_parsers::packet::capture::CaptureReader::new();
        let mut at = 0;
        while let Ok(Some((n, item))) = r.next(&bytes[at..]) {
            at += n;
            if let weir_parsers::packet::capture::Item::Packet(pk) = item {
                sensor.packet(pk.ts_nanos, pk.link, pk.data);
            }
        }
    }
    sensor.flush();
    for e in sensor.drain() {
        *want.entry(e.class().as_str().to_string()).or_default() += 1;
    }
    *want.entry("weir".into()).or_default() += 1; // the truncation report

    let diode = free_udp();
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let config = tx_config(
        dir.path(),
        diode,
        "[[sources]]\ntype = \"capture_file\"\nname = \"pcaps\"\npath = \"captures\"\n",
    );
    let tx = Proc::start(&["tx"], &config);
    let total: usize = want.values().sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    while events(dir.path())
        .iter()
        .filter(|e| e["weir"]["stream"] == "pcaps")
        .count()
        < total
    {
        assert!(Instant::now() < deadline, "{:?}", want);
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    tx.stop();
    rx.stop();
    let evs: Vec<Value> = events(dir.path())
        .into_iter()
        .filter(|e| e["weir"]["stream"] == "pcaps")
        .collect();
    let mut got: std::collections::BTreeMap<String, usize> = Default::default();
    for e in &evs {
        *got.entry(e["weir"]["class"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(got, want);
    let cut_report = evs
        .iter()
        .find(|e| e["event"]["action"] == "capture-file-truncated")
        .unwrap();
    assert!(cut_report["message"]
        .as_str()
        .unwrap()
        .contains("9-cut.pcap"));
    assert_ecs(&evs);
}
