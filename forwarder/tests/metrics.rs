//! `/metrics` and `/health` on a running agent and receiver: exact counter values after a known
//! load, the link state, and the server's refusals.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

use common::*;

fn with_metrics(config: &Path, port: u16) {
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(&format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"));
    std::fs::write(config, text).unwrap();
}

/// One HTTP/1.1 exchange; returns (status, body).
fn http(port: u16, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, body.len(), "Content-Length is exact");
    (status, body.to_string())
}

fn get(port: u16, path: &str) -> (u16, String) {
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
}

/// The value of one sample line (`name{labels} value`).
fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn both_sides_serve_exact_counters_and_health() {
    let dir = workdir();
    let (diode, udp, tx_metrics, rx_metrics) = (free_udp(), free_udp(), free_tcp(), free_tcp());
    let rx_cfg = rx_config(dir.path(), diode);
    with_metrics(&rx_cfg, rx_metrics);
    let rx = Proc::start(&["rx"], &rx_cfg);
    rx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], rx_metrics)));

    // Before anything arrived: alive, link never seen.
    let (status, body) = get(rx_metrics, "/health");
    assert_eq!(status, 200);
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["link"], "never_seen");

    let sources = format!(
        "[[sources]]\ntype = \"syslog_udp\"\nname = \"m-udp\"\naddress = \"127.0.0.1:{udp}\"\n"
    );
    let tx_cfg = tx_config(dir.path(), diode, &sources);
    with_metrics(&tx_cfg, tx_metrics);
    let tx = Proc::start(&["tx"], &tx_cfg);
    tx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], tx_metrics)));

    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..50 {
        let line = format!("<134>1 2026-11-22T10:00:00Z plc-gw metrics - - - message {i}");
        client.send_to(line.as_bytes(), ("127.0.0.1", udp)).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    client
        .send_to(b"\x00\x01 not syslog", ("127.0.0.1", udp))
        .unwrap();
    wait_for_syslog(dir.path(), 51, Duration::from_secs(30));

    let (status, tx_text) = get(tx_metrics, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        sample(&tx_text, "weir_events_received_total{class=\"syslog\"}"),
        51
    );
    assert_eq!(sample(&tx_text, "weir_parse_errors_total"), 1);
    assert_eq!(sample(&tx_text, "weir_diode_records_sent_total"), 51);
    assert_eq!(
        sample(&tx_text, "weir_events_dropped_total{reason=\"queue_full\"}"),
        0
    );
    assert!(tx_text.contains("# TYPE weir_diode_datagrams_sent_total counter\n"));
    assert!(tx_text.contains("# TYPE weir_diode_queued_blocks gauge\n"));

    let (status, rx_text) = get(rx_metrics, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        sample(&rx_text, "weir_events_sent_total{class=\"syslog\"}"),
        51
    );
    assert_eq!(sample(&rx_text, "weir_diode_gaps_total"), 0);
    assert_eq!(sample(&rx_text, "weir_diode_records_lost_total"), 0);
    assert_eq!(
        sample(
            &rx_text,
            "weir_diode_datagrams_rejected_total{reason=\"auth_failed\"}"
        ),
        0
    );
    assert_eq!(sample(&rx_text, "weir_diode_sessions_total"), 1);
    assert!(sample(&rx_text, "weir_diode_datagrams_received_total") >= 2);

    let h: serde_json::Value = serde_json::from_str(&get(rx_metrics, "/health").1).unwrap();
    assert_eq!(h["link"], "up");
    assert_eq!(h["sessions"], 1);
    let h: serde_json::Value = serde_json::from_str(&get(tx_metrics, "/health").1).unwrap();
    assert_eq!(h["side"], "tx");
    assert_eq!(h["records_sent"], 51);

    // Refusals: unknown path, other methods, a head that never ends.
    assert_eq!(get(rx_metrics, "/events").0, 404);
    assert_eq!(
        http(
            rx_metrics,
            "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
        )
        .0,
        405
    );
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    let mut s = TcpStream::connect(("127.0.0.1", rx_metrics)).unwrap();
    let _ = s.write_all(huge.as_bytes());
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 431 "), "{response:.60}");

    let (ok, _, _) = tx.stop();
    assert!(ok);
    let (ok, _, _) = rx.stop();
    assert!(ok);
}
