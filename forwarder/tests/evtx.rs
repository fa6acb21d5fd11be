//! `.evtx` files dropped into a watched directory, through real processes: `weir tx` (source
//! `evtx_directory`) → UDP diode on loopback → `weir rx` → NDJSON. Every record the `evtx`
//! crate can read arrives exactly once across a restart of the agent in the middle of the
//! ingestion; damaged chunks are skipped and counted.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::*;

const FILES: [&str; 4] = [
    "security.evtx",
    "sysmon.evtx",
    "new-user-security.evtx",
    "sample_with_a_bad_chunk_magic.evtx",
];

fn samples() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../samples/windows/evtx"
    ))
}

/// Records the `evtx` crate reads from a file: the oracle.
fn readable(name: &str) -> usize {
    let mut p = evtx::EvtxParser::from_path(samples().join(name)).unwrap();
    p.records().filter(Result::is_ok).count()
}

#[test]
fn a_restarted_agent_neither_loses_nor_repeats_evtx_records() {
    let dir = workdir();
    let logs = dir.path().join("evtx");
    std::fs::create_dir_all(&logs).unwrap();
    for f in FILES {
        std::fs::copy(samples().join(f), logs.join(f)).unwrap();
    }
    let total: usize = FILES.iter().map(|f| readable(f)).sum();
    let diode = free_udp();
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let config = slow_tx_config(dir.path(), diode);
    let tx = Proc::start(&["tx"], &config);
    wait_class(dir.path(), "windows", 300, Duration::from_secs(60));
    let (_, first, _) = tx.stop();
    let after_first = class_count(dir.path(), "windows");
    assert!(
        after_first < total,
        "the first run read everything ({after_first})"
    );
    let bookmarks: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("state/hmi-exports.bookmarks.json")).unwrap(),
    )
    .unwrap();
    assert!(bookmarks["files"]
        .as_object()
        .is_some_and(|f| !f.is_empty()));

    let tx = Proc::start(&["tx"], &config);
    wait_class(dir.path(), "windows", total, Duration::from_secs(120));
    // Nothing more comes: give the agent a few polls to show it would not repeat.
    std::thread::sleep(Duration::from_millis(1500));
    let (_, second, _) = tx.stop();
    std::thread::sleep(Duration::from_millis(300));
    let (_, rx_summary, _) = rx.stop();

    let evs = events(dir.path());
    let seen = records(&evs);
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "repeated: {repeated:?}");
    let windows = seen.values().sum::<usize>();
    assert_eq!(
        windows, total,
        "first run: {first}\nsecond run: {second}\nrx: {rx_summary}"
    );
    assert_eq!(seen.len(), total);
    let damaged = first["evtx_chunks_damaged_total"].as_u64().unwrap()
        + second["evtx_chunks_damaged_total"].as_u64().unwrap()
        + first["evtx_records_damaged_total"].as_u64().unwrap()
        + second["evtx_records_damaged_total"].as_u64().unwrap();
    assert!(
        damaged > 0,
        "the damaged file's damage is counted: {first} {second}"
    );
    assert_eq!(rx_summary["diode_gaps_total"], 0);
    assert_ecs(&evs);
}

#[test]
fn an_agent_killed_with_sigkill_loses_no_evtx_record_and_repeats_at_most_its_last_second() {
    let dir = workdir();
    let logs = dir.path().join("evtx");
    std::fs::create_dir_all(&logs).unwrap();
    for f in ["security.evtx", "sysmon.evtx"] {
        std::fs::copy(samples().join(f), logs.join(f)).unwrap();
    }
    let total = readable("security.evtx") + readable("sysmon.evtx");
    let diode = free_udp();
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let config = slow_tx_config(dir.path(), diode);
    let tx = Proc::start(&["tx"], &config);
    wait_class(dir.path(), "windows", 600, Duration::from_secs(60));
    drop(tx); // SIGKILL
    let tx = Proc::start(&["tx"], &config);
    wait_class(dir.path(), "windows", total, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(1500));
    let (_, second, _) = tx.stop();
    std::thread::sleep(Duration::from_millis(300));
    let (_, rx_summary, _) = rx.stop();
    let seen = records(&events(dir.path()));
    assert_eq!(
        seen.len(),
        total,
        "every record arrived: {second}\n{rx_summary}"
    );
    let repeated: usize = seen.values().map(|n| n - 1).sum();
    // At most what was taken since the last save (one second) can come again: at 2 Mb/s
    // that is well under a thousand events.
    assert!(repeated < 1000, "{repeated} repeated");
    assert!(seen.values().all(|n| *n <= 2));
}

/// (host, channel, record id) → how many times it arrived.
fn records(evs: &[serde_json::Value]) -> HashMap<(String, String, String), usize> {
    let mut seen = HashMap::new();
    for e in evs.iter().filter(|e| e["weir"]["class"] == "windows") {
        let key = (
            e["host"]["name"].as_str().unwrap_or_default().to_owned(),
            e["winlog"]["channel"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            e["winlog"]["record_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{e}"))
                .to_owned(),
        );
        assert_eq!(e["weir"]["input"]["type"], "evtx");
        assert_eq!(e["weir"]["stream"], "hmi-exports");
        *seen.entry(key).or_default() += 1;
    }
    seen
}

/// A slow link (2 Mb/s) and a short queue: the agent is still reading when it is stopped.
fn slow_tx_config(dir: &Path, diode: u16) -> std::path::PathBuf {
    let config = dir.join("tx.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[agent]
name = "evtx-agent"
{DIODE}
[tx]
destination = "127.0.0.1:{diode}"
bind = "127.0.0.1:0"
link_rate_bits_per_second = 2000000
heartbeat_interval_milliseconds = 200
linger_milliseconds = 10
queue_events = 64

[[sources]]
type = "evtx_directory"
name = "hmi-exports"
path = "evtx"
state_dir = "state"
poll_interval_milliseconds = 200
"#
        ),
    )
    .unwrap();
    config
}
