//! The receiver's promises with real processes on loopback: replays after restarts of both
//! sides, several agents on one port, and `kill -9` of the receiver under load with every event
//! delivered or counted in a gap record.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// An agent config in its own directory under `dir` (its key copied there): agent `name`, one
/// `syslog_tcp` source named `input` on `tcp`, datagrams to `diode`.
fn agent(dir: &Path, name: &str, diode: u16, tcp: u16) -> PathBuf {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    std::fs::copy(dir.join("diode.key"), home.join("diode.key")).unwrap();
    let text = format!(
        r#"
[agent]
name = "{name}"
{DIODE}
[tx]
destination = "127.0.0.1:{diode}"
bind = "127.0.0.1:0"
link_rate_bits_per_second = 300000000
heartbeat_interval_milliseconds = 200
linger_milliseconds = 10

[[sources]]
type = "syslog_tcp"
name = "input"
address = "127.0.0.1:{tcp}"
"#
    );
    let path = home.join("tx.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Send `messages` over one TCP connection (RFC 6587 octet counting) and wait until the agent
/// has read them all (it closes its side after our EOF).
fn send(tcp: u16, messages: impl Iterator<Item = String>) {
    let stream = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let mut w = std::io::BufWriter::new(&stream);
    for m in messages {
        let msg = format!("<134>1 2026-01-01T00:00:00.000Z plc-1 app - - - {m}");
        write!(w, "{} {msg}", msg.len()).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(std::io::Read::read(&mut &stream, &mut [0u8; 1]).unwrap(), 0);
}

/// Messages of the syslog events written so far.
fn messages(dir: &Path) -> Vec<String> {
    events(dir)
        .iter()
        .filter(|e| e["weir"]["class"] == "syslog")
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect()
}

fn wait_messages(dir: &Path, n: usize, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let m = messages(dir);
        if m.len() >= n || Instant::now() > deadline {
            return m;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A UDP relay between the agent and the receiver that records what passes while `record`
/// is set: the attacker's recording of the diode link.
struct Relay {
    port: u16,
    recorded: Arc<Mutex<Vec<Vec<u8>>>>,
    record: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(to: u16) -> Relay {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let port = socket.local_addr().unwrap().port();
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, rec, st) = (recorded.clone(), record.clone(), stop.clone());
        std::thread::spawn(move || {
            let out = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut buf = vec![0u8; 65_536];
            while !st.load(Ordering::Relaxed) {
                let Ok((n, _)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if rec.load(Ordering::Relaxed) {
                    r.lock().unwrap().push(buf[..n].to_vec());
                }
                let _ = out.send_to(&buf[..n], ("127.0.0.1", to));
            }
        });
        Relay {
            port,
            recorded,
            record,
            stop,
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The issue's attack: the agent restarts (a new session), the receiver restarts, then the
/// agent's previous session, recorded on the link, is replayed at the receiver, one datagram
/// and then all of it. Nothing of it is delivered a second time, it is counted as stale, and
/// the live agent keeps delivering every event.
#[test]
fn replays_of_the_previous_session_after_both_sides_restarted_deliver_nothing() {
    let dir = workdir();
    let (diode, tcp) = (free_udp(), free_tcp());
    let rx_cfg = rx_config(dir.path(), diode);
    let rx = Proc::start(&["rx"], &rx_cfg);
    let relay = Relay::start(diode);
    let tx_cfg = agent(dir.path(), "zone-1", relay.port, tcp);
    let tx = Proc::start(&["tx"], &tx_cfg);
    tx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], tcp)));
    send(tcp, (0..300).map(|i| format!("old {i:03}")));
    assert_eq!(
        wait_messages(dir.path(), 300, Duration::from_secs(30)).len(),
        300
    );
    let (ok, _, _) = tx.stop();
    assert!(ok);
    std::thread::sleep(Duration::from_millis(300));
    relay.record.store(false, Ordering::Relaxed);
    let recorded = relay.recorded.lock().unwrap().clone();
    assert!(recorded.len() > 10, "{}", recorded.len());
    // The agent restarts: a new session, which the receiver takes up.
    let tx = Proc::start(&["tx"], &tx_cfg);
    tx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], tcp)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rx.log().contains("replaced by") {
        assert!(Instant::now() < deadline, "{}", rx.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // The receiver restarts.
    let (ok, _, _) = rx.stop();
    assert!(ok);
    let rx = Proc::start(&["rx"], &rx_cfg);
    // The replay: one datagram, then the whole recording, straight at the receiver.
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    attacker
        .send_to(&recorded[1], ("127.0.0.1", diode))
        .unwrap();
    for d in &recorded {
        attacker.send_to(d, ("127.0.0.1", diode)).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    // The live agent goes on.
    send(tcp, (0..300).map(|i| format!("new {i:03}")));
    let got = wait_messages(dir.path(), 600, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    let got_after = messages(dir.path());
    let (_, _, _) = tx.stop();
    let (ok, summary, log) = rx.stop();
    assert!(ok, "{log}");
    assert_eq!(got.len(), 600, "{log}");
    assert_eq!(got_after.len(), 600, "nothing more arrived later");
    let unique: HashSet<&String> = got_after.iter().collect();
    assert_eq!(unique.len(), 600);
    assert_eq!(
        got_after.iter().filter(|m| m.starts_with("new ")).count(),
        300
    );
    let stale = summary["diode_datagrams_rejected_total"]["stale_session"]
        .as_u64()
        .unwrap();
    assert_eq!(stale, recorded.len() as u64 + 1, "{summary}");
    assert_eq!(summary["diode_gaps_total"], 0, "{summary}");
}

/// Two and then eight agents on one receiver port, sending at the same time: every event of
/// every agent arrives exactly once; restarting one agent in the middle disturbs no other.
#[test]
fn several_agents_on_one_port_each_deliver_every_event_once() {
    for n in [2usize, 8] {
        let dir = workdir();
        let diode = free_udp();
        let rx = Proc::start(&["rx"], &rx_config(dir.path(), diode));
        let agents: Vec<(String, u16, PathBuf)> = (0..n)
            .map(|i| {
                let name = format!("zone-{i}");
                let tcp = free_tcp();
                let cfg = agent(dir.path(), &name, diode, tcp);
                (name, tcp, cfg)
            })
            .collect();
        let mut procs: Vec<Proc> = agents
            .iter()
            .map(|(_, tcp, cfg)| {
                let p = Proc::start(&["tx"], cfg);
                p.wait_tcp(SocketAddr::from(([127, 0, 0, 1], *tcp)));
                p
            })
            .collect();
        let first: Vec<_> = agents
            .iter()
            .map(|(name, tcp, _)| {
                let (name, tcp) = (name.clone(), *tcp);
                std::thread::spawn(move || send(tcp, (0..150).map(|i| format!("{name} {i:03}"))))
            })
            .collect();
        for t in first {
            t.join().unwrap();
        }
        // zone-0 restarts between the halves.
        let (ok, _, _) = procs.remove(0).stop();
        assert!(ok);
        let p = Proc::start(&["tx"], &agents[0].2);
        p.wait_tcp(SocketAddr::from(([127, 0, 0, 1], agents[0].1)));
        procs.insert(0, p);
        let second: Vec<_> = agents
            .iter()
            .map(|(name, tcp, _)| {
                let (name, tcp) = (name.clone(), *tcp);
                std::thread::spawn(move || send(tcp, (150..300).map(|i| format!("{name} {i:03}"))))
            })
            .collect();
        for t in second {
            t.join().unwrap();
        }
        let got = wait_messages(dir.path(), n * 300, Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(500));
        for p in procs {
            p.stop();
        }
        let (ok, summary, log) = rx.stop();
        assert!(ok);
        let got_after = messages(dir.path());
        assert_eq!(got.len(), n * 300, "{n} agents: {summary}\n{log}");
        assert_eq!(got_after.len(), n * 300, "{n} agents: exactly once");
        let mut per: HashMap<String, HashSet<String>> = HashMap::new();
        for m in &got_after {
            let agent = m.split(' ').next().unwrap().to_owned();
            per.entry(agent).or_default().insert(m.clone());
        }
        for (name, _, _) in &agents {
            assert_eq!(per.get(name).map_or(0, HashSet::len), 300, "{name} of {n}");
            // Per-agent counters (`weir_agent_diode_*{agent="NAME"}` on /metrics).
            let a = &summary["agent"][name];
            assert!(
                a["diode_records_total"].as_u64().unwrap() >= 300,
                "{name}: {a}"
            );
            assert_eq!(a["diode_gaps_total"], 0, "{name}: {a}");
            let sessions = if name == "zone-0" { 2 } else { 1 };
            assert_eq!(a["diode_sessions_total"], sessions, "{name}: {a}");
        }
        assert_eq!(summary["diode_gaps_total"], 0, "{summary}");
        assert_eq!(
            summary["diode_sessions_refused_total"], 0,
            "{n} agents: {summary}"
        );
        let ended = log.matches("ended: replaced by").count();
        assert_eq!(ended, 1, "only zone-0's old session ended: {log}");
    }
}

/// `kill -9` of the receiver twice while 20,000 events flow: every event is delivered or
/// inside a gap record naming its stream and range, exactly; duplicates only for what was
/// being written at a kill, and no more than the receiver says it wrote again.
#[test]
fn kill_9_of_the_receiver_twice_under_load_loses_nothing_uncounted() {
    const N: usize = 20_000;
    let dir = workdir();
    let (diode, tcp) = (free_udp(), free_tcp());
    let rx_cfg = rx_config(dir.path(), diode);
    let mut rx = Some(Proc::start(&["rx"], &rx_cfg));
    let tx = Proc::start(&["tx"], &agent(dir.path(), "zone-7", diode, tcp));
    tx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], tcp)));
    let sender = std::thread::spawn(move || {
        let stream = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
        let mut w = &stream;
        // 400 bursts of 50 over about 4 s: the kills land while events flow.
        for burst in 0..400 {
            let mut buf = Vec::new();
            for i in burst * 50..(burst + 1) * 50 {
                let msg = format!("<134>1 2026-01-01T00:00:00.000Z plc-1 app - - - n={i:05}");
                write!(buf, "{} {msg}", msg.len()).unwrap();
            }
            w.write_all(&buf).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        assert_eq!(std::io::Read::read(&mut &stream, &mut [0u8; 1]).unwrap(), 0);
    });
    let mut redelivered = 0u64;
    let written_again = |log: &str| -> u64 {
        // Without the terminal colours: ESC [ ... m.
        let mut plain = String::new();
        let mut in_escape = false;
        for c in log.chars() {
            match (in_escape, c) {
                (false, '\u{1b}') => in_escape = true,
                (true, 'm') => in_escape = false,
                (true, _) => {}
                (false, c) => plain.push(c),
            }
        }
        plain
            .lines()
            .filter(|l| l.contains("written again"))
            .filter_map(|l| l.split("events=").nth(1))
            .filter_map(|v| {
                v.split_whitespace()
                    .next()?
                    .trim_matches(|c: char| !c.is_ascii_digit())
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    };
    for (kill_at, down) in [(900u64, 400u64), (1000, 300)] {
        std::thread::sleep(Duration::from_millis(kill_at));
        let p = rx.take().unwrap();
        let pid = p.pid().to_string();
        std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap();
        redelivered += written_again(&p.log());
        drop(p);
        std::thread::sleep(Duration::from_millis(down));
        rx = Some(Proc::start(&["rx"], &rx_cfg));
    }
    sender.join().unwrap();
    // Heartbeats tell the tail; then everything is accounted for.
    let account = |dir: &Path| {
        let evs = events(dir);
        let mut seen = HashSet::new();
        let mut total = 0usize;
        let mut gaps = Vec::new();
        for e in &evs {
            if e["weir"]["class"] == "syslog" {
                total += 1;
                seen.insert(e["message"].as_str().unwrap_or_default().to_owned());
            } else if e["event"]["action"] == "diode-gap" {
                gaps.push(e["weir"]["gap"].clone());
            }
        }
        (seen, total, gaps)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (seen, _, gaps) = account(dir.path());
        let lost: u64 = gaps.iter().map(|g| g["count"].as_u64().unwrap()).sum();
        if seen.len() as u64 + lost >= N as u64 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (_, tx_summary, _) = tx.stop();
    let p = rx.take().unwrap();
    let (ok, summary, log) = p.stop();
    redelivered += written_again(&log);
    assert!(ok, "{log}");
    let (seen, total, gaps) = account(dir.path());
    let lost: u64 = gaps.iter().map(|g| g["count"].as_u64().unwrap()).sum();
    assert_eq!(
        tx_summary["diode_records_sent_total"], N as u64,
        "{tx_summary}"
    );
    assert!(
        gaps.iter().all(|g| g["stream"] == "input"
            && g["first_sequence"].as_u64() <= g["last_sequence"].as_u64()),
        "{gaps:?}"
    );
    // Gap ranges do not overlap, and no delivered event lies inside one.
    let mut ranges: Vec<(u64, u64)> = gaps
        .iter()
        .map(|g| {
            (
                g["first_sequence"].as_u64().unwrap(),
                g["last_sequence"].as_u64().unwrap(),
            )
        })
        .collect();
    ranges.sort_unstable();
    assert!(ranges.windows(2).all(|w| w[0].1 < w[1].0), "{ranges:?}");
    assert_eq!(
        seen.len() as u64 + lost,
        N as u64,
        "delivered {} + in gaps {lost} = sent {N}; gaps {ranges:?}; {summary}",
        seen.len()
    );
    let duplicates = (total - seen.len()) as u64;
    assert!(
        duplicates <= redelivered,
        "{duplicates} duplicates, {redelivered} written again"
    );
    eprintln!(
        "kill -9 twice: {} delivered, {lost} in {} gap records, {duplicates} duplicates ({redelivered} written again)",
        seen.len(),
        gaps.len()
    );
}

/// A key holder's flood of 1,000,000 one-symbol blocks that never complete (the issue saw
/// 12 → 283 MB): the receiver's peak RSS stays within `max_pending_bytes` plus the margin
/// `docs/diode-protocol.md` states (the process itself, 48 MiB), and it still works after.
#[test]
fn a_flood_of_never_complete_blocks_keeps_the_receiver_within_its_bound() {
    use weir_diode_proto::crypto::{Cipher, SessionKey};
    use weir_diode_proto::frame::{DatagramType, Header, HEADER_LEN, TAG_LEN};
    use weir_diode_proto::{Identity, Sender, SenderConfig};
    const PENDING: u64 = 8 << 20;
    let dir = workdir();
    let diode = free_udp();
    let path = dir.path().join("rx.toml");
    std::fs::write(
        &path,
        format!("{DIODE}\n[rx]\nlisten = \"127.0.0.1:{diode}\"\nstate_dir = \"rx-state\"\nreceive_buffer_bytes = 4194304\nmax_pending_bytes = {PENDING}\n\n[[sinks]]\ntype = \"file\"\npath = \"out/events.ndjson\"\n"),
    )
    .unwrap();
    let weir::config::Config::Rx(cfg) = weir::config::load(&path).unwrap() else {
        panic!("rx config");
    };
    let rx = Proc::start(&["rx"], &path);
    let session = 0xF100D;
    let mut tx = Sender::new(
        SenderConfig {
            key_id: cfg.diode.key.id,
            key: cfg.diode.key.secret,
            cipher: Cipher::default(),
            session,
            mtu_bytes: 1500,
            ip_version: weir_diode_proto::sender::IpVersion::V4,
            codec: weir_diode_proto::Codec::None,
            max_block_bytes: 262_144,
            max_record_bytes: 65_536,
            linger: Duration::from_millis(1),
            heartbeat_interval: Duration::from_secs(1),
            fingerprint: cfg.diode.fingerprint(),
            max_queued_blocks: 16,
            repair_percent: 0,
            expected_loss_percent: 0.0,
            interleave_blocks: 1,
            identity: Some(Identity {
                agent: "holder".into(),
                boot: 1,
                started_unix_ms: 0,
            }),
        },
        Instant::now(),
    )
    .unwrap();
    let mut buf = vec![0u8; 2048];
    let n = tx.poll_transmit(&mut buf).unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(&buf[..n], ("127.0.0.1", diode)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let key = SessionKey::derive(&cfg.diode.key.secret, session, Cipher::default());
    let mut d = vec![0u8; HEADER_LEN + 2 + TAG_LEN];
    for block in 0..1_000_000u64 {
        let h = Header {
            kind: DatagramType::Source,
            key_id: cfg.diode.key.id,
            cipher: Cipher::default(),
            session,
            block: block + 10,
            symbol: 0,
            source_count: 2,
            repair_count: 0,
            payload_len: 2,
        };
        let (head, rest) = d.split_at_mut(HEADER_LEN);
        let head: &mut [u8; HEADER_LEN] = head.try_into().unwrap();
        h.encode(head);
        let (body, tag) = rest.split_at_mut(2);
        body.fill(0);
        tag.copy_from_slice(&key.seal(head, &h, body));
        socket.send_to(&d, ("127.0.0.1", diode)).unwrap();
        if block % 2000 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let status = std::fs::read_to_string(format!("/proc/{}/status", rx.pid())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let (ok, summary, log) = rx.stop();
    assert!(ok, "{log}");
    let accepted = summary["diode_datagrams_received_total"].as_u64().unwrap();
    assert!(accepted > 100_000, "{summary}");
    assert!(
        summary["diode_blocks_shed_total"].as_u64().unwrap() > 0,
        "{summary}"
    );
    let limit_kib = (PENDING + (48 << 20)) / 1024;
    assert!(
        peak_kib < limit_kib,
        "peak RSS {peak_kib} KiB above {limit_kib} KiB: {summary}"
    );
    eprintln!("flood: {accepted} datagrams received, peak RSS {peak_kib} KiB (limit {limit_kib})");
}
