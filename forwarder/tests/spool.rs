//! The agent's on-disk spool with real processes: a link slower than the sources spools and
//! delivers everything in order, across an agent restart; a full spool drops, counts and
//! reports exactly what it dropped.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

fn slow_tx_config(dir: &Path, diode: u16, tcp: u16, bits: u64, spool: &str) -> PathBuf {
    let sources =
        format!("[[sources]]\ntype = \"syslog_tcp\"\nname = \"burst\"\naddress = \"127.0.0.1:{tcp}\"\n{spool}");
    let path = tx_config(dir, diode, &sources);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "link_rate_bits_per_second = 300000000",
        &format!("link_rate_bits_per_second = {bits}"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The agent's `events_received_total` for syslog, from its `/metrics`.
fn received(metrics: u16) -> u64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", metrics)) else {
        return 0;
    };
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut s, &mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("weir_events_received_total{class=\"syslog\"} "))
        .map_or(0, |v| v.parse().unwrap())
}

/// Wait until the agent has read `n` events from its sources.
fn wait_received(metrics: u16, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while received(metrics) < n {
        assert!(
            Instant::now() < deadline,
            "the agent did not read all {n} events"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Report the first difference, not two 20,000-element vectors.
fn assert_sequence(got: &[usize], n: usize, context: &str) {
    let first_bad = got
        .iter()
        .enumerate()
        .find(|(i, v)| *i != **v)
        .map(|(i, v)| (i, *v));
    assert!(
        got.len() == n && first_bad.is_none(),
        "{} events, first out of place: {first_bad:?}; {context}",
        got.len()
    );
}

fn burst(tcp: u16, from: usize, to: usize) {
    let mut s = std::io::BufWriter::new(TcpStream::connect(("127.0.0.1", tcp)).unwrap());
    for n in from..to {
        let msg = format!(
            "<134>1 2026-01-01T00:00:00.000Z hmi-3 scada 77 - - n={n:06} alarm acknowledged by operator on line 4, setpoint unchanged"
        );
        write!(s, "{} {msg}", msg.len()).unwrap();
    }
    s.flush().unwrap();
}

fn numbers(evs: &[serde_json::Value]) -> Vec<usize> {
    syslog_only(evs)
        .iter()
        .map(|e| {
            let m = e["message"].as_str().unwrap();
            m[2..8].parse().unwrap()
        })
        .collect()
}

#[test]
fn a_slow_link_spools_and_delivers_everything_in_order_across_an_agent_restart() {
    const N: usize = 20_000;
    let dir = workdir();
    let (diode, tcp) = (free_udp(), free_tcp());
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let metrics = free_tcp();
    let spool = format!("[spool]\npath = \"spool\"\nmax_bytes = 268435456\nsegment_bytes = 1048576\n\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n");
    // 3 Mb/s: about 1 s for everything at zstd's ratio, while the burst takes a fraction of it.
    let cfg = slow_tx_config(dir.path(), diode, tcp, 3_000_000, &spool);
    let tx = Proc::start(&["tx"], &cfg);
    tx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], tcp)));
    burst(tcp, 0, N);
    // Let the agent read the whole burst (it spools at disk speed), then stop it while most of
    // it still waits on disk.
    wait_received(metrics, N as u64);
    let (ok, first, _) = tx.stop();
    assert!(ok);
    let spooled = first["spooled_total"].as_u64().unwrap();
    let left = first["spool_records"].as_u64().unwrap();
    assert!(spooled > 0, "the burst outpaced the link: {first}");
    assert!(left > 0, "events still on disk at the stop: {first}");
    assert_eq!(first["events_dropped_total"]["spool_full"], 0);
    let before = syslog_only(&events(dir.path())).len();
    assert!(before < N, "not everything was sent before the stop");

    let tx = Proc::start(&["tx"], &cfg);
    let evs = wait_for_syslog(dir.path(), N, Duration::from_secs(60));
    let (ok, second, _) = tx.stop();
    assert!(ok);
    assert_eq!(second["spool_records"], 0, "{second}");
    std::thread::sleep(Duration::from_millis(300));
    let (_, rx_summary, _) = rx.stop();
    let got = numbers(&evs);
    assert_sequence(&got, N, &format!("first run: {first}\nrx: {rx_summary}"));
    assert_eq!(rx_summary["diode_gaps_total"], 0);
    assert_eq!(rx_summary["diode_sessions_total"], 2);
}

#[test]
fn a_full_spool_drops_counts_and_reports_exactly_what_it_dropped() {
    const N: usize = 20_000;
    let dir = workdir();
    let (diode, tcp) = (free_udp(), free_tcp());
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let metrics = free_tcp();
    let spool = format!("[spool]\npath = \"spool\"\nmax_bytes = 262144\nsegment_bytes = 65536\noverflow = \"drop_newest\"\n\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n");
    let cfg = slow_tx_config(dir.path(), diode, tcp, 2_000_000, &spool);
    let tx = Proc::start(&["tx"], &cfg);
    tx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], tcp)));
    burst(tcp, 0, N);
    wait_received(metrics, N as u64);
    // Wait until the agent has sent what it kept (spool empty) before stopping it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = 0;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = syslog_only(&events(dir.path())).len();
        if (now == last && now > 0) || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    let (ok, tx_summary, _) = tx.stop();
    assert!(ok);
    std::thread::sleep(Duration::from_millis(500));
    let (_, rx_summary, _) = rx.stop();
    let evs = events(dir.path());
    let got = numbers(&evs);
    let dropped = tx_summary["events_dropped_total"]["spool_full"]
        .as_u64()
        .unwrap();
    assert!(
        dropped > 0,
        "a 256 KiB spool cannot hold the burst: {tx_summary}"
    );
    assert_eq!(
        got.len() as u64 + dropped,
        N as u64,
        "delivered + dropped = sent; tx: {tx_summary}\nrx: {rx_summary}"
    );
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "what arrives arrives in order"
    );
    let reported: u64 = evs
        .iter()
        .filter(|e| e["event"]["action"] == "spool-overflow")
        .map(|e| e["weir"]["dropped"].as_u64().unwrap())
        .sum();
    assert_eq!(
        reported, dropped,
        "the spool-overflow events add up to the drops"
    );
    assert_eq!(rx_summary["diode_gaps_total"], 0);
}
