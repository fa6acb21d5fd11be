//! SIGHUP on the agent, with real processes: unchanged sources keep their connections and
//! their diode streams, removed ones stop, new ones start, and a file that does not load or
//! changes what needs a restart is refused while the agent keeps running as it was.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::*;

fn hup(p: &Proc) {
    let ok = Command::new("kill")
        .args(["-HUP", &p.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// Wait until the agent's log has said `what` `n` times.
fn logged(p: &Proc, what: &str, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while p.log().matches(what).count() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "no {what:?} in the log: {}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn framed(s: &mut TcpStream, msg: &str) {
    write!(s, "{} {msg}", msg.len()).unwrap();
    s.flush().unwrap();
}

fn msg(tag: &str, n: usize) -> String {
    format!("<134>1 2026-01-01T00:00:00Z plc-1 ctl - - - {tag} n={n}")
}

#[test]
fn sighup_applies_source_changes_without_dropping_connections() {
    let dir = workdir();
    let (diode, a, b, c) = (free_udp(), free_tcp(), free_tcp(), free_udp());
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let source = |name: &str, kind: &str, port: u16| {
        format!(
            "[[sources]]\ntype = \"{kind}\"\nname = \"{name}\"\naddress = \"127.0.0.1:{port}\"\n"
        )
    };
    let first = format!(
        "{}{}",
        source("kept", "syslog_tcp", a),
        source("removed", "syslog_tcp", b)
    );
    let config = tx_config(dir.path(), diode, &first);
    let tx = Proc::start(&["tx"], &config);
    tx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], a)));
    let mut kept = TcpStream::connect(("127.0.0.1", a)).unwrap();
    for n in 0..100 {
        framed(&mut kept, &msg("before", n));
    }
    let mut removed = TcpStream::connect(("127.0.0.1", b)).unwrap();
    framed(&mut removed, &msg("removed", 0));
    wait_class(dir.path(), "syslog", 101, Duration::from_secs(20));

    // 1. A file that does not load: refused, nothing changes.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{good}\n[[sources]]\ntype = \"syslog_tcp\"\n"),
    )
    .unwrap();
    hup(&tx);
    logged(&tx, "Configuration reload refused", 1);
    // 2. A change of the diode settings: needs a restart, refused, nothing changes.
    std::fs::write(
        &config,
        good.replace("mtu_bytes = 1500", "mtu_bytes = 1400"),
    )
    .unwrap();
    hup(&tx);
    logged(&tx, "Configuration reload refused", 2);
    assert!(tx.log().contains("[diode]"), "{}", tx.log());
    framed(&mut removed, &msg("removed", 1));
    wait_class(dir.path(), "syslog", 102, Duration::from_secs(20));

    // 3. The real change: `kept` unchanged, `removed` gone, `added` new (UDP).
    let second = format!(
        "{}{}",
        source("kept", "syslog_tcp", a),
        source("added", "syslog_udp", c)
    );
    tx_config(dir.path(), diode, &second);
    hup(&tx);
    logged(&tx, "Configuration reloaded.", 1);
    // The connection to the unchanged source was never dropped: it goes on.
    for n in 0..100 {
        framed(&mut kept, &msg("after", n));
    }
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for n in 0..10 {
        udp.send_to(msg("added", n).as_bytes(), ("127.0.0.1", c))
            .unwrap();
    }
    // The removed source's port is closed.
    assert!(TcpStream::connect(("127.0.0.1", b)).is_err());
    wait_class(dir.path(), "syslog", 212, Duration::from_secs(20));

    let (tx_ok, tx_summary, _) = tx.stop();
    std::thread::sleep(Duration::from_millis(500));
    let (rx_ok, rx_summary, _) = rx.stop();
    assert!(tx_ok && rx_ok);
    let all = events(dir.path());
    let syslog: Vec<_> = all
        .iter()
        .filter(|e| e["weir"]["class"] == "syslog")
        .collect();
    assert_eq!(syslog.len(), 212, "tx: {tx_summary}\nrx: {rx_summary}");
    let count = |tag: &str| {
        syslog
            .iter()
            .filter(|e| e["message"].as_str().unwrap().starts_with(tag))
            .count()
    };
    assert_eq!(count("before"), 100);
    assert_eq!(count("after"), 100);
    assert_eq!(count("added"), 10);
    assert_eq!(count("removed"), 2, "what it had before it stopped");
    // One diode session throughout: the kept stream's sequence numbers simply go on.
    let sessions: std::collections::BTreeSet<_> = syslog
        .iter()
        .map(|e| e["weir"]["session"].to_string())
        .collect();
    assert_eq!(sessions.len(), 1);
    let mut kept_seq: Vec<u64> = syslog
        .iter()
        .filter(|e| e["weir"]["stream"] == "kept")
        .map(|e| e["weir"]["sequence"].as_u64().unwrap())
        .collect();
    kept_seq.sort_unstable();
    assert_eq!(kept_seq, (0..200).collect::<Vec<u64>>());
    let added: Vec<_> = syslog
        .iter()
        .filter(|e| e["weir"]["stream"] == "added")
        .collect();
    assert_eq!(added.len(), 10);
    assert_eq!(rx_summary["diode_gaps_total"], 0);
    let starts = all
        .iter()
        .filter(|e| e["event"]["action"] == "diode-session-started")
        .count();
    assert_eq!(starts, 1, "no new session");
    assert_eq!(tx_summary["config_reloads_total"]["applied"], 1);
    assert_eq!(tx_summary["config_reloads_total"]["failed"], 2);
}
