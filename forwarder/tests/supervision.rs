//! Supervision (issue #21): a panic in the receiver's sink stage is caught, counted and logged,
//! and the stage goes on; the events of the batch it was writing are written again, so nothing
//! is lost. The panic is injected with `WEIR_FAILPOINT=sink-panic` (first batch, once).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

#[test]
fn a_panic_in_the_sink_stage_is_caught_and_loses_nothing() {
    let dir = workdir();
    let diode = free_udp();
    let tcp = free_tcp();
    let rx = Proc::start_env(
        None,
        &["rx"],
        &rx_config(dir.path(), diode),
        &[("WEIR_FAILPOINT", "sink-panic")],
    );
    let cfg = tx_config(
        dir.path(),
        diode,
        &format!(
            "[[sources]]\ntype = \"syslog_tcp\"\nname = \"plant\"\naddress = \"127.0.0.1:{tcp}\"\n"
        ),
    );
    let tx = Proc::start(&["tx"], &cfg);
    tx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], tcp)));
    let mut s = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    for n in 0..200 {
        writeln!(s, "<13>1 2026-12-08T00:00:00Z rtu-1 app - - - n={n:04}").unwrap();
    }
    drop(s);
    let evs = wait_for_syslog(dir.path(), 200, Duration::from_secs(20));
    let (ok, _, _) = tx.stop();
    assert!(ok);
    std::thread::sleep(Duration::from_millis(300));
    let (ok, summary, log) = rx.stop_expecting_panics();
    assert!(ok, "{log}");
    let mut ns: Vec<String> = evs
        .iter()
        .filter(|e| e["weir"]["class"] == "syslog")
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect();
    ns.sort();
    ns.dedup();
    assert_eq!(ns.len(), 200, "every event delivered");
    assert_eq!(summary["component_panics_total"], 1, "{summary}");
    assert_eq!(summary["events_lost_panic_total"], 0, "{summary}");
    assert!(log.contains("The sink stage panicked"), "{log}");
    assert_eq!(
        log.matches("panicked at").count(),
        1,
        "one panic, caught: {log}"
    );
}

/// A panic in a source's connection handler ends that connection only: counted, logged, and
/// the next connection is served (`WEIR_FAILPOINT=connection-panic`, first connection, once).
#[test]
fn a_panic_in_a_connection_handler_ends_only_that_connection() {
    let dir = workdir();
    let diode = free_udp();
    let tcp = free_tcp();
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let cfg = tx_config(
        dir.path(),
        diode,
        &format!(
            "[[sources]]\ntype = \"syslog_tcp\"\nname = \"plant\"\naddress = \"127.0.0.1:{tcp}\"\n"
        ),
    );
    let tx = Proc::start_env(
        None,
        &["tx"],
        &cfg,
        &[("WEIR_FAILPOINT", "connection-panic")],
    );
    // `wait_tcp` opens (and closes) the first connection: the one that panics.
    tx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], tcp)));
    std::thread::sleep(Duration::from_millis(200));
    let mut s = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    for n in 0..50 {
        writeln!(s, "<13>1 2026-12-08T00:00:00Z rtu-2 app - - - m={n:04}").unwrap();
    }
    drop(s);
    let evs = wait_for_syslog(dir.path(), 50, Duration::from_secs(20));
    let (ok, summary, log) = tx.stop_expecting_panics();
    assert!(ok, "{log}");
    rx.stop();
    assert_eq!(
        evs.iter()
            .filter(|e| e["weir"]["class"] == "syslog")
            .count(),
        50
    );
    assert_eq!(summary["component_panics_total"], 1, "{summary}");
    assert!(log.contains("A connection handler panicked"), "{log}");
}
