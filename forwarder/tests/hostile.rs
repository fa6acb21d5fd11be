//! Hostile hosts on the OT side against the agent's TCP and HTTP sources (issue #21): idle
//! connections from one address, and unfinished request bodies. Real processes on loopback;
//! the second address is 127.0.0.2 (loopback answers for all of 127.0.0.0/8).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// A TCP connection to `to` from the local address `from`.
fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((from, 0)).into()).unwrap();
    s.connect(&to.into()).unwrap();
    s.into()
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// 40 idle connections from 127.0.0.1 against `max_connections = 32`: 8 (a quarter) are
/// taken, 32 refused and counted; a device on 127.0.0.2 still gets its message through at
/// once, and the idle ones are closed after `idle_timeout_seconds`.
#[test]
fn idle_connections_from_one_address_do_not_lock_out_other_senders() {
    let dir = workdir();
    let diode = free_udp();
    let tcp = free_tcp();
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let cfg = tx_config(
        dir.path(),
        diode,
        &format!(
            "[[sources]]\ntype = \"syslog_tcp\"\nname = \"plant\"\naddress = \"0.0.0.0:{tcp}\"\nmax_connections = 32\nidle_timeout_seconds = 2\n"
        ),
    );
    let tx = Proc::start(&["tx"], &cfg);
    let addr = SocketAddr::from(([127, 0, 0, 1], tcp));
    tx.wait_tcp(addr);
    // Let the agent see the probe of `wait_tcp` close, so that its slot is free again.
    std::thread::sleep(Duration::from_millis(500));
    let mut idle: Vec<TcpStream> = (0..40)
        .map(|_| connect_from([127, 0, 0, 1], addr))
        .collect();
    // A half line on each: what a slow or hostile sender leaves.
    for s in &mut idle {
        let _ = s.write_all(b"<13>1 2026-12-08T00:00:00Z host app - - - half");
    }
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let mut device = connect_from([127, 0, 0, 2], addr);
    device
        .write_all(b"<13>1 2026-12-08T00:00:00Z plc-gw app - - - from another host\n")
        .unwrap();
    let evs = wait_for_syslog(dir.path(), 1, Duration::from_secs(5));
    assert!(
        evs.iter().any(|e| e["message"] == "from another host"),
        "not delivered within 5 s"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The idle ones: closed by the agent within the idle timeout (plus a margin).
    let mut closed = 0;
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
        let mut b = [0u8; 16];
        if matches!(s.read(&mut b), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 40,
        "every idle connection was closed (refused or timed out)"
    );
    drop(device);
    let (ok, summary, log) = tx.stop();
    assert!(ok, "{log}");
    assert_eq!(
        summary["connections_refused_total"]["per_address"], 32,
        "{summary}"
    );
    assert_eq!(summary["connections_refused_total"]["max_connections"], 0);
    // 8 idle ones, the device's, and the probe of `wait_tcp`.
    assert_eq!(summary["connections_accepted_total"], 10, "{summary}");
    // The 8 idle ones, and the device's connection once it went quiet.
    assert!(
        summary["connections_closed_idle_total"].as_u64().unwrap() >= 8,
        "{summary}"
    );
    // Refusals are logged once per 10 s, not 32 times.
    let lines = log.matches("Connections refused").count();
    assert_eq!(lines, 1, "{log}");
    let _ = rx.stop();
}

/// 16 connections each sending 30 MiB of a body they never finish: the agent holds at most
/// its in-flight budget (64 MiB; 32 MiB per address), refuses the rest with 503, and its
/// peak RSS grows by less than 128 MiB. A POST from 127.0.0.2 meanwhile is answered 200.
#[test]
fn unfinished_http_bodies_keep_the_agent_within_its_budget() {
    let dir = workdir();
    let diode = free_udp();
    let http = free_tcp();
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let cfg = tx_config(
        dir.path(),
        diode,
        &format!(
            "[[sources]]\ntype = \"windows_json_http\"\nname = \"nxlog\"\naddress = \"0.0.0.0:{http}\"\nbody_timeout_seconds = 20\n"
        ),
    );
    let tx = Proc::start(&["tx"], &cfg);
    let addr = SocketAddr::from(([127, 0, 0, 1], http));
    tx.wait_tcp(addr);
    std::thread::sleep(Duration::from_millis(300));
    let before = peak_rss_kib(tx.pid());
    const BODY: usize = 30 << 20;
    let senders: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = connect_from([127, 0, 0, 1], addr);
                s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
                let head = format!(
                    "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    BODY + 1
                );
                s.write_all(head.as_bytes()).unwrap();
                let chunk = vec![b' '; 1 << 20];
                let mut sent = 0;
                while sent < BODY {
                    if s.write_all(&chunk).is_err() {
                        break;
                    }
                    sent += chunk.len();
                }
                // Never the last byte; keep the connection a while.
                std::thread::sleep(Duration::from_secs(6));
                drop(s);
                sent
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    // Another host's small POST is answered.
    let mut other = connect_from([127, 0, 0, 2], addr);
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let body = r#"{"EventID":4624,"Hostname":"hmi-1","Channel":"Security","EventTime":"2026-12-08 00:00:00"}"#;
    write!(
        other,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = other.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#"{"accepted":1}"#), "{answer}");
    let peak = peak_rss_kib(tx.pid());
    eprintln!("peak RSS grew by {} MiB", (peak - before) / 1024);
    for s in senders {
        let _ = s.join();
    }
    let (ok, summary, log) = tx.stop();
    assert!(ok, "{log}");
    assert!(
        peak - before < 128 * 1024,
        "peak RSS grew by {} MiB",
        (peak - before) / 1024
    );
    assert!(
        summary["http_bodies_refused_total"]["busy"]
            .as_u64()
            .unwrap()
            >= 14,
        "{summary}"
    );
    let _ = rx.stop();
}
