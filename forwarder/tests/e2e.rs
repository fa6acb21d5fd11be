//! End to end, with real processes and sockets: util-linux `logger` → `weir tx` → UDP diode on
//! loopback → `weir rx` → NDJSON file.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::*;

fn logger(port: u16, args: &[&str], message: &str) {
    let status = Command::new("logger")
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--tag",
            "weirtest",
            "-p",
            "local4.notice",
        ])
        .args(args)
        .arg(message)
        .status()
        .expect("util-linux logger is installed");
    assert!(status.success(), "logger {args:?} failed");
}

#[test]
fn logger_rfc5424_and_rfc3164_over_udp_and_tcp_arrive_with_their_fields() {
    let dir = workdir();
    let (diode, udp, tcp) = (free_udp(), free_udp(), free_tcp());
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let sources = format!(
        r#"
[[sources]]
type = "syslog_udp"
name = "logger-udp"
address = "127.0.0.1:{udp}"

[[sources]]
type = "syslog_tcp"
name = "logger-tcp"
address = "127.0.0.1:{tcp}"
"#
    );
    let tx = Proc::start(&["tx"], &tx_config(dir.path(), diode, &sources));
    tx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], tcp)));

    let cases: [(&[&str], &str, u16, &str, &str); 5] = [
        (
            &["--udp", "--rfc5424"],
            "udp 5424 message",
            udp,
            "logger-udp",
            "syslog_udp",
        ),
        (
            &["--udp", "--rfc3164"],
            "udp 3164 message",
            udp,
            "logger-udp",
            "syslog_udp",
        ),
        (
            &["--tcp", "--rfc5424", "--octet-count"],
            "tcp 5424 octet-counted",
            tcp,
            "logger-tcp",
            "syslog_tcp",
        ),
        (
            &["--tcp", "--rfc3164"],
            "tcp 3164 newline-framed",
            tcp,
            "logger-tcp",
            "syslog_tcp",
        ),
        (
            &[
                "--tcp",
                "--rfc5424",
                "--msgid",
                "ID47",
                "--sd-id",
                "zoo@32473",
                "--sd-param",
                "tiger=\"hungry \\\"very\\\"\"",
            ],
            "tcp 5424 with structured data",
            tcp,
            "logger-tcp",
            "syslog_tcp",
        ),
    ];
    for (args, msg, port, _, _) in &cases {
        logger(*port, args, msg);
    }
    let evs = wait_for_syslog(dir.path(), cases.len(), Duration::from_secs(20));
    let (tx_ok, tx_summary, _) = tx.stop();
    std::thread::sleep(Duration::from_millis(500));
    let (rx_ok, rx_summary, _) = rx.stop();
    assert!(tx_ok && rx_ok);
    let evs_after = events(dir.path());
    let syslog = syslog_only(&evs_after);
    assert_eq!(
        syslog.len(),
        cases.len(),
        "exactly the events sent: {evs:#?}\ntx: {tx_summary}\nrx: {rx_summary}"
    );
    let host = String::from_utf8(Command::new("uname").arg("-n").output().unwrap().stdout).unwrap();
    for (args, msg, _, stream, input) in &cases {
        let matching: Vec<_> = syslog.iter().filter(|e| e["message"] == *msg).collect();
        assert_eq!(matching.len(), 1, "{msg}");
        let e = matching[0];
        let s = &e["log"]["syslog"];
        assert_eq!(s["facility"]["code"], 20, "{msg}");
        assert_eq!(s["facility"]["name"], "local4");
        assert_eq!(s["severity"]["code"], 5);
        assert_eq!(s["severity"]["name"], "notice");
        assert_eq!(s["priority"], 165);
        assert_eq!(s["appname"], "weirtest");
        assert_eq!(s["hostname"], host.trim(), "{msg}");
        assert_eq!(e["process"]["name"], "weirtest");
        assert_eq!(e["weir"]["stream"], *stream);
        assert_eq!(e["weir"]["input"]["type"], *input);
        assert_eq!(e["weir"]["input"]["peer_ip"], "127.0.0.1");
        assert_eq!(e["weir"]["agent"], "e2e-agent");
        assert!(e["weir"]["sequence"].is_u64());
        assert_eq!(e["weir"]["session"].as_str().map(str::len), Some(16));
        assert!(e["event"]["original"].as_str().unwrap().ends_with(msg));
        assert!(e["event"]["ingested"].is_string());
        let is_5424 = args.contains(&"--rfc5424");
        assert_eq!(s["version"] == "1", is_5424, "{msg}");
        if !is_5424 {
            assert_eq!(e["event"]["timezone"], "UTC");
        }
    }
    let sd = syslog
        .iter()
        .find(|e| e["message"] == "tcp 5424 with structured data")
        .unwrap();
    assert_eq!(sd["log"]["syslog"]["msgid"], "ID47");
    assert_eq!(
        sd["log"]["syslog"]["structured_data"]["zoo@32473"]["tiger"],
        "hungry \"very\""
    );
    assert_ecs(&evs_after);
    assert_eq!(tx_summary["events_received_total"]["syslog"], 5);
    assert_eq!(rx_summary["events_sent_total"]["syslog"], 5);
    assert_eq!(rx_summary["diode_gaps_total"], 0);
}

#[test]
fn a_hundred_thousand_tcp_messages_arrive_exactly_once_in_stream_order() {
    const CONNECTIONS: usize = 4;
    const PER_CONNECTION: usize = 25_000;
    let dir = workdir();
    let (diode, tcp) = (free_udp(), free_tcp());
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let sources = format!(
        "[[sources]]\ntype = \"syslog_tcp\"\nname = \"bulk\"\naddress = \"127.0.0.1:{tcp}\"\n"
    );
    let tx = Proc::start(&["tx"], &tx_config(dir.path(), diode, &sources));
    let addr = SocketAddr::from(([127, 0, 0, 1], tcp));
    tx.wait_tcp(addr);
    let senders: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut s = std::io::BufWriter::new(TcpStream::connect(addr).unwrap());
                for n in 0..PER_CONNECTION {
                    let msg = format!(
                        "<134>1 2026-01-01T00:00:00.000Z plc-{c} bulk {c} - - conn={c} n={n:06} pump station flow nominal"
                    );
                    write!(s, "{} {msg}", msg.len()).unwrap();
                }
                s.flush().unwrap();
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let total = CONNECTIONS * PER_CONNECTION;
    let _ = wait_for_syslog(dir.path(), total, Duration::from_secs(120));
    let (_, tx_summary, _) = tx.stop();
    std::thread::sleep(Duration::from_millis(500));
    let (_, rx_summary, _) = rx.stop();
    let evs = events(dir.path());
    let syslog = syslog_only(&evs);
    assert_eq!(syslog.len(), total, "tx: {tx_summary}\nrx: {rx_summary}");
    let mut seen = vec![vec![false; PER_CONNECTION]; CONNECTIONS];
    let mut last = [None::<usize>; CONNECTIONS];
    let mut sequences: Vec<u64> = Vec::with_capacity(total);
    for e in &syslog {
        let m = e["message"].as_str().unwrap();
        let c: usize = m[5..6].parse().unwrap();
        let n: usize = m[9..15].parse().unwrap();
        assert!(!seen[c][n], "duplicate conn={c} n={n}");
        seen[c][n] = true;
        assert!(
            last[c].is_none_or(|l| n == l + 1),
            "conn {c}: {n} after {:?}",
            last[c]
        );
        last[c] = Some(n);
        sequences.push(e["weir"]["sequence"].as_u64().unwrap());
    }
    assert_eq!(
        sequences,
        (0..total as u64).collect::<Vec<_>>(),
        "stream order = file order"
    );
    assert_eq!(rx_summary["diode_gaps_total"], 0);
    assert_eq!(rx_summary["diode_records_duplicate_total"], 0);
}

#[test]
fn bad_input_becomes_raw_events_or_counted_drops_and_never_disturbs_other_connections() {
    let dir = workdir();
    let (diode, udp, tcp, tcp_drop) = (free_udp(), free_udp(), free_tcp(), free_tcp());
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let sources = format!(
        r#"
[[sources]]
type = "syslog_udp"
name = "udp"
address = "127.0.0.1:{udp}"
max_message_bytes = 8192

[[sources]]
type = "syslog_tcp"
name = "tcp"
address = "127.0.0.1:{tcp}"
max_message_bytes = 8192
oversize = "truncate"

[[sources]]
type = "syslog_tcp"
name = "tcp-drop"
address = "127.0.0.1:{tcp_drop}"
max_message_bytes = 8192
oversize = "drop"
"#
    );
    let tx = Proc::start(&["tx"], &tx_config(dir.path(), diode, &sources));
    let (a_tcp, a_drop) = (
        SocketAddr::from(([127, 0, 0, 1], tcp)),
        SocketAddr::from(([127, 0, 0, 1], tcp_drop)),
    );
    tx.wait_tcp(a_tcp);
    tx.wait_tcp(a_drop);

    // A well-behaved connection stays open throughout.
    let mut good = TcpStream::connect(a_tcp).unwrap();
    good.write_all(b"<13>Jan  1 00:00:00 host app: good 1\n")
        .unwrap();

    // Newline framing: binary junk, a 1 MiB line, invalid UTF-8, then a good line.
    let mut a = TcpStream::connect(a_tcp).unwrap();
    a.write_all(b"\x00\x01\x02\xfe\xff binary junk\n").unwrap();
    let mut huge = b"<13>Jan  1 00:00:00 host app: ".to_vec();
    huge.extend(std::iter::repeat_n(b'A', 1 << 20));
    huge.push(b'\n');
    a.write_all(&huge).unwrap();
    a.write_all(b"<13>Jan  1 00:00:00 host app: caf\xe9 latin-1\n")
        .unwrap();
    a.write_all(b"<13>Jan  1 00:00:00 host app: good 2\n")
        .unwrap();
    drop(a);

    // Octet counting: a broken count, a good frame, then closed in the middle of a frame.
    let mut b = TcpStream::connect(a_tcp).unwrap();
    let counted = |m: &str| format!("{} {m}", m.len());
    b.write_all(counted("<13>Jan  1 00:00:00 host app: good 3").as_bytes())
        .unwrap();
    b.write_all(b"12x broken count\n").unwrap();
    b.write_all(counted("<13>Jan  1 00:00:00 host app: good 4").as_bytes())
        .unwrap();
    b.write_all(b"200 <13>Jan  1 00:00:00 host app: cut short")
        .unwrap();
    drop(b);

    // The dropping source: an oversize frame is counted, not forwarded.
    let mut c = TcpStream::connect(a_drop).unwrap();
    let mut big = b"<13>Jan  1 00:00:00 host app: ".to_vec();
    big.extend(std::iter::repeat_n(b'B', 100_000));
    big.push(b'\n');
    c.write_all(&big).unwrap();
    c.write_all(b"<13>Jan  1 00:00:00 host app: good 5\n")
        .unwrap();
    drop(c);

    // UDP: junk datagram.
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(b"\xff\xfe\x00 not syslog", ("127.0.0.1", udp))
        .unwrap();

    good.write_all(b"<13>Jan  1 00:00:00 host app: good 6\n")
        .unwrap();
    drop(good);

    let expected = 12; // 6 good + junk + huge + latin-1 + broken count + truncated + udp junk
    let _ = wait_for_syslog(dir.path(), expected, Duration::from_secs(20));
    let (tx_ok, tx_summary, _) = tx.stop();
    std::thread::sleep(Duration::from_millis(500));
    let (rx_ok, _, _) = rx.stop();
    assert!(tx_ok && rx_ok);
    let evs = events(dir.path());
    let syslog = syslog_only(&evs);
    assert_eq!(syslog.len(), expected, "{syslog:#?}");
    for n in 1..=6 {
        let text = format!("good {n}");
        assert_eq!(
            syslog
                .iter()
                .filter(|e| e["message"] == text.as_str())
                .count(),
            1,
            "{text}"
        );
    }
    let errors: Vec<(&str, &str)> = syslog
        .iter()
        .filter_map(|e| {
            Some((
                e["weir"]["parse_error"].as_str()?,
                e["weir"]["stream"].as_str()?,
            ))
        })
        .collect();
    let mut sorted = errors.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            ("frame_too_long", "tcp"),
            ("invalid_octet_count", "tcp"),
            ("no_syslog_header", "tcp"),
            ("no_syslog_header", "udp"),
            ("truncated_frame", "tcp"),
        ]
    );
    let cut = syslog
        .iter()
        .find(|e| e["weir"]["parse_error"] == "frame_too_long")
        .unwrap();
    assert_eq!(cut["message"].as_str().unwrap().len(), 8192);
    let latin = syslog
        .iter()
        .find(|e| e["message"] == "caf\u{fffd} latin-1")
        .unwrap();
    assert_eq!(latin["tags"], serde_json::json!(["weir_invalid_utf8"]));
    assert_eq!(tx_summary["events_dropped_total"]["oversize"], 1);
    assert_eq!(tx_summary["framing_errors_total"], 4);
    assert_eq!(tx_summary["parse_errors_total"], 5);
    assert_ecs(&evs);
}

#[test]
fn the_demo_runs_and_every_event_conforms_to_ecs() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(WEIR)
        .args(["demo", "--repeat", "3", "--dir"])
        .arg(dir.path())
        .env("WEIR_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("OK: every event that went in came out."),
        "{stdout}"
    );
    let text = std::fs::read_to_string(dir.path().join("events.ndjson")).unwrap();
    let evs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // 45 syslog sample lines, 3 of them Snare records (Windows events inside syslog), and the
    // 286 Windows events of the JSON sample.
    assert_eq!(syslog_only(&evs).len(), 3 * 42);
    let windows = evs
        .iter()
        .filter(|e| e["weir"]["class"] == "windows")
        .count();
    assert_eq!(windows, 3 * (286 + 3));
    // The bundled captures, read once: the demo prints how many events the sensor makes of
    // them ("from captures N events (M expected)").
    let line = stdout
        .lines()
        .find(|l| l.contains("from captures"))
        .unwrap();
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(numbers[0], numbers[1], "{line}");
    let from_captures = evs
        .iter()
        .filter(|e| e["weir"]["stream"] == "demo-captures")
        .count();
    assert_eq!(from_captures, numbers[1]);
    for class in ["flow", "ot", "asset", "notable"] {
        assert!(
            evs.iter().any(|e| e["weir"]["class"] == class),
            "no {class} event"
        );
    }
    assert_eq!(
        evs.len(),
        3 * (45 + 286) + 1 + from_captures,
        "plus the session-start event"
    );
    assert_ecs(&evs);
}

#[test]
fn windows_events_as_json_lines_over_tcp_arrive_mapped_and_bad_lines_become_raw_events() {
    let dir = workdir();
    let (diode, tcp) = (free_udp(), free_tcp());
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let sources = format!(
        "[[sources]]\ntype = \"windows_json_tcp\"\nname = \"wef\"\naddress = \"127.0.0.1:{tcp}\"\n"
    );
    let tx = Proc::start(&["tx"], &tx_config(dir.path(), diode, &sources));
    let addr = SocketAddr::from(([127, 0, 0, 1], tcp));
    tx.wait_tcp(addr);
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../samples/windows/json/otrf_psexec_lsa_secrets_dump.json"
    ))
    .unwrap();
    let winlogbeat = r#"{"@timestamp":"2024-05-06T07:08:09.123Z","message":"An account was successfully logged on.","winlog":{"channel":"Security","event_id":"4624","provider_name":"Microsoft-Windows-Security-Auditing","computer_name":"hmi01.plant.local","event_data":{"TargetUserName":"operator1","TargetDomainName":"PLANT","LogonType":"10","IpAddress":"10.20.30.40","IpPort":"0"}}}"#;
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(sample.as_bytes()).unwrap();
    // CRLF line ends, an object that is no Windows event, and text that is no JSON.
    write!(
        s,
        "{winlogbeat}\r\n{{\"hello\":\"world\"}}\nnot json at all\n"
    )
    .unwrap();
    drop(s);
    let want = 286 + 3;
    wait_class(dir.path(), "windows", want, Duration::from_secs(60));
    let (_, tx_summary, _) = tx.stop();
    std::thread::sleep(Duration::from_millis(300));
    let (_, rx_summary, _) = rx.stop();
    let evs = events(dir.path());
    let windows: Vec<_> = evs
        .iter()
        .filter(|e| e["weir"]["class"] == "windows")
        .collect();
    assert_eq!(windows.len(), want, "tx: {tx_summary}\nrx: {rx_summary}");
    let raw: Vec<_> = windows
        .iter()
        .filter(|e| e["weir"]["parse_error"].is_string())
        .collect();
    assert_eq!(raw.len(), 2);
    assert_eq!(raw[0]["weir"]["parse_error"], "unknown_windows_json");
    assert_eq!(raw[1]["weir"]["parse_error"], "not_json");
    assert_eq!(raw[1]["event"]["original"], "not json at all");
    assert_eq!(tx_summary["parse_errors_total"], 2);
    let logon = windows
        .iter()
        .find(|e| e["event"]["code"] == "4624")
        .unwrap();
    assert_eq!(logon["user"]["name"], "operator1");
    assert_eq!(logon["winlog"]["logon"]["type"], "RemoteInteractive");
    assert_eq!(logon["source"]["ip"], "10.20.30.40");
    assert_eq!(logon["tags"], serde_json::json!(["winlogbeat"]));
    assert_eq!(logon["weir"]["input"]["type"], "windows_json_tcp");
    assert_eq!(logon["weir"]["stream"], "wef");
    let install = windows
        .iter()
        .find(|e| e["event"]["code"] == "7045")
        .unwrap();
    assert_eq!(install["service"]["name"], "PSEXESVC");
    assert_eq!(install["tags"], serde_json::json!(["nxlog"]));
    // In stream order, as sent.
    let codes: Vec<&str> = windows
        .iter()
        .filter_map(|e| e["event"]["code"].as_str())
        .collect();
    assert_eq!(codes.first(), Some(&"1102"));
    assert_ecs(&evs);
}

#[test]
fn forged_flipped_and_replayed_datagrams_are_rejected_by_a_running_receiver() {
    use std::time::Instant;
    use weir_diode_proto::{Sender, SenderConfig};

    let dir = workdir();
    let diode = free_udp();
    let config = rx_config(dir.path(), diode);
    let weir::config::Config::Rx(cfg) = weir::config::load(&config).unwrap() else {
        panic!("rx config");
    };
    let rx = Proc::start(&["rx"], &config);
    std::thread::sleep(Duration::from_millis(300));

    let sender = |key: [u8; 32], session: u64| {
        let mut s = Sender::new(
            SenderConfig {
                key_id: cfg.diode.key.id,
                key,
                cipher: weir_diode_proto::Cipher::default(),
                session,
                mtu_bytes: 1500,
                ip_version: weir_diode_proto::sender::IpVersion::V6,
                codec: weir_diode_proto::Codec::Zstd(1),
                max_block_bytes: 262_144,
                max_record_bytes: 65_536,
                linger: Duration::from_millis(1),
                heartbeat_interval: Duration::from_secs(1),
                fingerprint: cfg.diode.fingerprint(),
                max_queued_blocks: 16,
                repair_percent: 0,
                expected_loss_percent: 0.0,
                interleave_blocks: 1,
                identity: None,
            },
            Instant::now(),
        )
        .unwrap();
        let stream = s.add_stream("crafted");
        for i in 0..3 {
            let mut e =
                weir_schemas::Event::new(weir_schemas::EventClass::Syslog, chrono::Utc::now());
            e.message = Some(format!("crafted {i} session {session:x}"));
            e.weir.stream = Some("crafted".into());
            s.push(Instant::now(), stream, &e.to_json()).unwrap();
        }
        s.flush();
        let mut buf = vec![0u8; 2048];
        let mut out = Vec::new();
        while let Some(n) = s.poll_transmit(&mut buf) {
            out.push(buf[..n].to_vec());
        }
        out
    };
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |d: &[u8]| {
        socket.send_to(d, ("127.0.0.1", diode)).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    };

    let forged = sender([0x42; 32], 0xBAD);
    for d in &forged {
        send(d);
    }
    let genuine = sender(cfg.diode.key.secret, 0x600D);
    let mut flipped = genuine[1].clone();
    flipped[40] ^= 0x01;
    send(&flipped);
    for d in &genuine {
        send(d);
    }
    for d in &genuine {
        send(d); // replayed
    }
    let evs = wait_for_syslog(dir.path(), 3, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    let (ok, summary, _) = rx.stop();
    assert!(ok);
    let messages: Vec<&str> = syslog_only(&evs)
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert_eq!(
        messages,
        vec![
            "crafted 0 session 600d",
            "crafted 1 session 600d",
            "crafted 2 session 600d"
        ]
    );
    let rejected = &summary["diode_datagrams_rejected_total"];
    assert_eq!(
        rejected["auth_failed"],
        forged.len() as u64 + 1,
        "{summary}"
    );
    assert_eq!(rejected["replayed"], genuine.len() as u64, "{summary}");
    assert_eq!(
        summary["diode_datagrams_received_total"],
        (forged.len() + 1 + 2 * genuine.len()) as u64
    );
}

/// The output stalls (a stdout nobody reads) while 200,000 events arrive: the receiver waits
/// for its sink stage instead of growing, the kernel drops what the socket buffer cannot hold
/// (counted), and once the output moves again every event is either written or inside a gap
/// record, exactly; memory stays within the queue and reassembly bounds.
#[test]
fn a_stalled_output_keeps_the_receiver_within_its_memory_bound_and_accounts_for_every_event() {
    use std::io::BufRead;
    const MESSAGES: u64 = 200_000;
    const BOUND: u64 = 8 << 20;
    let dir = workdir();
    let (diode, tcp) = (free_udp(), free_tcp());
    let rx_cfg = dir.path().join("rx.toml");
    std::fs::write(
        &rx_cfg,
        format!("{DIODE}\n[rx]\nlisten = \"127.0.0.1:{diode}\"\nreceive_buffer_bytes = 212992\nqueue_blocks = 65536\nqueue_max_bytes = {BOUND}\nmax_pending_bytes = 8388608\nstate_dir = \"rx-state\"\n\n[[sinks]]\ntype = \"stdout\"\n"),
    )
    .unwrap();
    let mut rx = Proc::start(&["rx"], &rx_cfg);
    let sources = format!(
        "[[sources]]\ntype = \"syslog_tcp\"\nname = \"bulk\"\naddress = \"127.0.0.1:{tcp}\"\n"
    );
    let tx = Proc::start(&["tx"], &tx_config(dir.path(), diode, &sources));
    let addr = SocketAddr::from(([127, 0, 0, 1], tcp));
    tx.wait_tcp(addr);
    let stream = TcpStream::connect(addr).unwrap();
    let mut s = std::io::BufWriter::new(&stream);
    for n in 0..MESSAGES {
        let msg = format!("<134>1 2026-01-01T00:00:00.000Z plc-7 bulk - - - n={n:06} pump station 3 flow nominal, pressure 4.2 bar");
        write!(s, "{} {msg}", msg.len()).unwrap();
    }
    s.flush().unwrap();
    drop(s);
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    assert_eq!(std::io::Read::read(&mut &stream, &mut [0u8; 1]).unwrap(), 0);
    std::thread::sleep(Duration::from_secs(2));
    let status = std::fs::read_to_string(format!("/proc/{}/status", rx.pid())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    // The output moves again; the agent still runs, so its heartbeats tell the tail.
    let mut out = std::io::BufReader::new(rx.take_stdout()).lines();
    let (mut written, mut lost) = (0u64, 0u64);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    for line in out.by_ref() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        match v["weir"]["class"].as_str() {
            Some("syslog") => written += 1,
            _ => lost += v["weir"]["gap"]["count"].as_u64().unwrap_or(0),
        }
        if written + lost >= MESSAGES || std::time::Instant::now() > deadline {
            break;
        }
    }
    // The rest of stdout (the summary at exit) is read while the receiver stops.
    let rest = std::thread::spawn(move || {
        out.map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
            .filter(|v| v["side"] == "rx")
            .last()
            .unwrap_or_default()
    });
    let (_, tx_summary, _) = tx.stop();
    assert_eq!(
        tx_summary["diode_records_sent_total"], MESSAGES,
        "{tx_summary}"
    );
    let (ok, _, _) = rx.stop();
    let summary = rest.join().unwrap();
    assert!(ok);
    assert_eq!(
        written + lost,
        MESSAGES,
        "every event written or in a gap record: {summary}"
    );
    assert!(
        summary["sink_waits_total"].as_u64().unwrap_or(0) > 0,
        "{summary}"
    );
    // The queue bound, the reassembly bound and the process itself (runtime, buffers, code).
    let limit_kib = (BOUND + (8 << 20) + (48 << 20)) / 1024;
    assert!(
        peak_kib < limit_kib,
        "peak RSS {peak_kib} KiB above {limit_kib} KiB"
    );
    eprintln!("stalled output: peak RSS {peak_kib} KiB, {written} written, {lost} in gap records; {summary}");
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
fn http_request(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    use std::io::Read;
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{head}\r\nHost: weir\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    // The server may answer (413) before reading everything: a failed write is fine then.
    let _ = s.write_all(body);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[test]
fn windows_events_posted_over_http_are_mapped_and_the_answer_counts_them() {
    let dir = workdir();
    let (diode, port) = (free_udp(), free_tcp());
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let sources = format!(
        "[[sources]]\ntype = \"windows_json_http\"\nname = \"wec-http\"\naddress = \"127.0.0.1:{port}\"\n"
    );
    let tx = Proc::start(&["tx"], &tx_config(dir.path(), diode, &sources));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    tx.wait_tcp(addr);
    let sample = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../samples/windows/json/otrf_psexec_lsa_secrets_dump.json"
    ))
    .unwrap();
    let (status, body) = http_request(addr, "POST /events HTTP/1.1", &sample);
    assert_eq!((status, body.trim()), (200, r#"{"accepted":286}"#));
    let array = br#"[{"@timestamp":"2024-05-06T07:08:09Z","winlog":{"channel":"Security","event_id":4625,"provider_name":"Microsoft-Windows-Security-Auditing","event_data":{"TargetUserName":"admin","LogonType":"3"}}},
                    {"EventID":4740,"SourceName":"Microsoft-Windows-Security-Auditing","Channel":"Security","Hostname":"dc01","TargetUserName":"operator2","TargetDomainName":"ENG-WS07"}]"#;
    let (status, body) = http_request(addr, "POST / HTTP/1.1", array);
    assert_eq!((status, body.trim()), (200, r#"{"accepted":2}"#));
    assert_eq!(http_request(addr, "GET / HTTP/1.1", b"").0, 405);
    assert_eq!(
        http_request(addr, "POST / HTTP/1.1\r\nContent-Encoding: gzip", b"x").0,
        415
    );
    let big = vec![b' '; 33 << 20];
    assert_eq!(http_request(addr, "POST / HTTP/1.1", &big).0, 413);

    let want = 288;
    wait_class(dir.path(), "windows", want, Duration::from_secs(60));
    let (_, tx_summary, _) = tx.stop();
    std::thread::sleep(Duration::from_millis(300));
    rx.stop();
    let evs = events(dir.path());
    let windows: Vec<_> = evs
        .iter()
        .filter(|e| e["weir"]["class"] == "windows")
        .collect();
    assert_eq!(windows.len(), want, "{tx_summary}");
    let failed = windows
        .iter()
        .find(|e| e["event"]["code"] == "4625")
        .unwrap();
    assert_eq!(failed["event"]["action"], "logon-failed");
    assert_eq!(failed["winlog"]["logon"]["type"], "Network");
    assert_eq!(failed["weir"]["input"]["type"], "windows_json_http");
    let locked = windows
        .iter()
        .find(|e| e["event"]["code"] == "4740")
        .unwrap();
    assert_eq!(locked["user"]["target"]["name"], "operator2");
    assert_eq!(locked["source"]["domain"], "ENG-WS07");
    assert_eq!(tx_summary["parse_errors_total"], 0);
    assert_ecs(&evs);
}
