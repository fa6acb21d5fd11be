//! A full disk under a SIEM buffer, with real processes (issue #21): the receiver's state and
//! Splunk HEC buffer live on a 3 MiB tmpfs (root needed, as for the suite's namespaces); Splunk
//! (the HEC model) is down while 20,000 events arrive, so the buffer fills the disk; then
//! Splunk comes back. Every event is delivered or counted as dropped by the full buffer,
//! exactly; delivery resumes by itself; duplicates stay within the batches in flight.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use weir_integrations::testing::HecServer;

/// Unmounts the tmpfs when dropped.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A tmpfs of `size` on `at` (root needed), unmounted when the guard goes.
fn tmpfs(at: &std::path::Path, size: &str) -> Option<Unmount> {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success())
        .then(|| Unmount(at.to_path_buf()))
}

const TOKEN: &str = "4f1e0c2a-7a55-4b0e-8f3e-0d2c6b9a1e77";

fn metric(port: u16, name: &str) -> u64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_full_disk_under_a_siem_buffer_loses_nothing_uncounted() {
    let dir = workdir();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let Some(_unmount) = tmpfs(&state, "3m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hec = rt.block_on(HecServer::start(TOKEN)).unwrap();
    hec.stop(); // Splunk down
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(dir.path().join("hec.token"), format!("{TOKEN}\n")).unwrap();
        std::fs::set_permissions(
            dir.path().join("hec.token"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let (diode, tcp, metrics) = (free_udp(), free_tcp(), free_tcp());
    let rx_cfg = dir.path().join("rx.toml");
    std::fs::write(
        &rx_cfg,
        format!(
            r#"{DIODE}
[rx]
listen = "127.0.0.1:{diode}"
state_dir = "state"
receive_buffer_bytes = 4194304

[[sinks]]
type = "splunk_hec"
name = "splunk"
endpoint = "{url}"
token_file = "hec.token"
allow_insecure_http = true

[sinks.batch]
max_events = 500
max_age_milliseconds = 100

[sinks.buffer]
max_bytes = 268435456

[metrics]
listen = "127.0.0.1:{metrics}"
"#,
            url = hec.url()
        ),
    )
    .unwrap();
    let rx = Proc::start(&["rx"], &rx_cfg);
    let tx_cfg = tx_config(
        dir.path(),
        diode,
        &format!(
            "[[sources]]\ntype = \"syslog_tcp\"\nname = \"plant\"\naddress = \"127.0.0.1:{tcp}\"\n"
        ),
    );
    let tx = Proc::start(&["tx"], &tx_cfg);
    tx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], tcp)));
    const N: u64 = 20_000;
    {
        let mut s = std::io::BufWriter::new(TcpStream::connect(("127.0.0.1", tcp)).unwrap());
        for n in 0..N {
            writeln!(
                s,
                "<134>1 2026-12-08T00:00:00.000Z rtu-7 scada - - - n={n:06} breaker 52-7 status closed {}",
                "x".repeat(120)
            )
            .unwrap();
        }
    }
    // Everything reaches the receiver; the buffer fills the disk and refuses the rest.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(metrics, "weir_events_sent_total") < N {
        assert!(
            Instant::now() < deadline,
            "the receiver did not take everything"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    // Every event handed to the sink: the 20,000 and the agent's own (`weir` class) events.
    let into_sink = metric(metrics, "weir_events_sent_total");
    let dropped = metric(metrics, "weir_sink_buffer_dropped_total");
    assert!(dropped > 0, "the disk filled: nothing was refused");
    assert!(dropped < into_sink, "something was buffered");
    // Splunk comes back: delivery resumes by itself.
    rt.block_on(hec.resume()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let unique = || {
        let st = hec.state.lock().unwrap();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for e in &st.events {
            let m = e["event"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            *seen.entry(m).or_default() += 1;
        }
        (seen.len() as u64, st.events.len() as u64)
    };
    while unique().0 < into_sink - dropped {
        if Instant::now() >= deadline {
            let ls = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "ls -laR {0}; df -k {0}; od -A d -t u8 {0}/buffers/splunk/ack",
                    state.display()
                ))
                .output()
                .unwrap();
            panic!(
                "delivered {:?} of {} (dropped {dropped})\n{}",
                unique(),
                into_sink - dropped,
                String::from_utf8_lossy(&ls.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (ok, _, _) = tx.stop();
    assert!(ok);
    let (ok, summary, log) = rx.stop();
    assert!(ok, "{log}");
    let (uniq, total) = unique();
    // Events handed to the sink over the whole run (the agent's own events included).
    let handed: u64 = summary["events_sent_total"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(serde_json::Value::as_u64)
        .sum();
    assert!(handed >= N);
    let dropped = summary["sink"]["splunk"]["buffer_dropped_total"]
        .as_u64()
        .unwrap();
    assert_eq!(
        uniq + dropped,
        handed,
        "delivered + counted = sent, exactly: {summary}"
    );
    assert!(total - uniq <= 1000, "{} duplicates", total - uniq);
    // One log line per 10 s for the refusals, not one per event.
    let lines = log.matches("Sink buffer write failed").count();
    assert!(lines <= 3, "{lines} log lines");
    hec.stop();
}

/// The same for the agent's spool: its directory on a 2 MiB tmpfs, a 2 Mb/s link, 20,000
/// events in a burst. The spool fills the disk and refuses the rest (counted); as the link
/// drains it, space comes back by itself. Delivered + counted = sent, exactly.
#[test]
fn a_full_disk_under_the_spool_loses_nothing_uncounted() {
    let dir = workdir();
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let Some(_unmount) = tmpfs(&spool, "2m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let (diode, tcp) = (free_udp(), free_tcp());
    let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
    let cfg = dir.path().join("tx.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[agent]
name = "spool-agent"
{DIODE}
[tx]
destination = "127.0.0.1:{diode}"
bind = "127.0.0.1:0"
link_rate_bits_per_second = 2000000
heartbeat_interval_milliseconds = 200
linger_milliseconds = 10
queue_events = 256

[[sources]]
type = "syslog_tcp"
name = "plant"
address = "127.0.0.1:{tcp}"

[spool]
path = "spool/q"
max_bytes = 268435456
"#
        ),
    )
    .unwrap();
    let tx = Proc::start(&["tx"], &cfg);
    tx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], tcp)));
    const N: usize = 20_000;
    {
        let mut s = std::io::BufWriter::new(TcpStream::connect(("127.0.0.1", tcp)).unwrap());
        for n in 0..N {
            writeln!(
                s,
                "<134>1 2026-12-08T00:00:00.000Z rtu-9 scada - - - n={n:06} {}",
                "y".repeat(150)
            )
            .unwrap();
        }
    }
    // Everything read by the agent is delivered or counted; wait until the link has drained.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = (0, Instant::now());
    loop {
        let n = class_count(dir.path(), "syslog");
        if n != last.0 {
            last = (n, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(5) {
            break;
        }
        assert!(Instant::now() < deadline, "still delivering after 120 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, summary, log) = tx.stop();
    assert!(ok, "{log}");
    std::thread::sleep(Duration::from_millis(500));
    rx.stop();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in events(dir.path())
        .iter()
        .filter(|e| e["weir"]["class"] == "syslog")
    {
        *seen
            .entry(e["message"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let dropped = summary["events_dropped_total"]["spool_error"]
        .as_u64()
        .unwrap()
        + summary["events_dropped_total"]["spool_full"]
            .as_u64()
            .unwrap();
    assert!(dropped > 0, "the disk filled: {summary}");
    eprintln!(
        "spool on a full disk: {} delivered, {dropped} refused and counted",
        seen.len()
    );
    assert_eq!(
        seen.len() as u64 + dropped,
        N as u64,
        "delivered + counted = sent, exactly: {summary}"
    );
    assert!(seen.values().all(|n| *n == 1), "no duplicates");
    assert!(
        log.matches("Spool write failed").count() <= 20,
        "quiet logs"
    );
}
