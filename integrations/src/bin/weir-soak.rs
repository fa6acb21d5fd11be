//! The soak: mixed syslog (TCP and UDP), Windows JSON and (as root) SPAN-port Modbus/TCP traffic
//! through real `weir tx` → a lossy diode link → real `weir rx` → Splunk HEC (model, with
//! indexer acknowledgement), Elasticsearch (model) and Kafka (tansu) for a set time, with the
//! HEC and Elasticsearch models stopped and resumed on a schedule. Reports, per sink, records
//! in, out, lost and duplicated, checks that the lost ones are exactly the ones the receiver's
//! gap records name, and the two processes' RSS over time. Run through `scripts/soak`.
//!
//! The diode link is a relay in this process between the agent and the receiver: it forwards
//! datagrams one way only and drops a fraction of them at random plus occasional bursts (the
//! loss the forward error correction must repair or the receiver must report as gaps).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use weir_integrations::testing::{EsServer, HecServer, Tally, TansuBroker};

const TOKEN: &str = "5f0c2b9e-soak-4d1e-8c6a-weir0000soak";
const TOPICS: [&str; 7] = [
    "weir.syslog",
    "weir.windows",
    "weir.flow",
    "weir.ot",
    "weir.asset",
    "weir.notable",
    "weir.weir",
];

struct Args {
    weir: PathBuf,
    minutes: f64,
    rate: u64,
    loss_percent: f64,
    burst_every_seconds: u64,
    restart_every_seconds: u64,
    down_seconds: u64,
    report_seconds: u64,
    modbus: bool,
    samples: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        weir: PathBuf::from("target/release/weir"),
        minutes: 30.0,
        rate: 2000,
        loss_percent: 0.5,
        burst_every_seconds: 120,
        restart_every_seconds: 300,
        down_seconds: 30,
        report_seconds: 60,
        modbus: false,
        samples: PathBuf::from("samples"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        let num = |s: String| s.parse::<f64>().map_err(|e| format!("{k}: {e}"));
        match k.as_str() {
            "--weir" => a.weir = v()?.into(),
            "--samples" => a.samples = v()?.into(),
            "--minutes" => a.minutes = num(v()?)?,
            "--rate" => a.rate = num(v()?)? as u64,
            "--loss-percent" => a.loss_percent = num(v()?)?,
            "--burst-every-seconds" => a.burst_every_seconds = num(v()?)? as u64,
            "--restart-every-seconds" => a.restart_every_seconds = num(v()?)? as u64,
            "--down-seconds" => a.down_seconds = num(v()?)? as u64,
            "--report-seconds" => a.report_seconds = num(v()?)? as u64,
            "--modbus" => a.modbus = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn free_port(udp: bool) -> std::io::Result<u16> {
    Ok(if udp {
        UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port()
    } else {
        TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()
    })
}

/// A running `weir` process; its stderr goes to a log file.
struct Weir {
    child: Child,
}

impl Weir {
    fn start(weir: &Path, side: &str, dir: &Path) -> std::io::Result<Weir> {
        let log = std::fs::File::create(dir.join(format!("{side}.log")))?;
        let child = Command::new(weir)
            .arg(side)
            .arg("-c")
            .arg(dir.join(format!("{side}.toml")))
            .env("WEIR_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(dir.join(format!("{side}.log")))?;
            if text.contains(" started.") {
                break;
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "weir {side} did not start: {text}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Weir { child })
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// SIGTERM, wait, the summary JSON it printed.
    fn stop(mut self) -> Value {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        let _ = self.child.wait();
        out.lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l).ok())
            .unwrap_or(Value::Null)
    }
}

/// A small xorshift generator: the loss pattern needs no cryptographic randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, percent: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 10_000.0 < percent
    }
}

#[derive(Default)]
struct LinkStats {
    forwarded: AtomicU64,
    dropped: AtomicU64,
    bursts: AtomicU64,
}

/// The lossy one-way link: datagrams in on `from`, out to `to`.
fn relay(
    from: UdpSocket,
    to: u16,
    loss_percent: f64,
    burst_every: Duration,
    stats: Arc<LinkStats>,
    stop: Arc<AtomicBool>,
) {
    let out = match UdpSocket::bind("127.0.0.1:0") {
        Ok(s) => s,
        Err(e) => {
            eprintln!("relay: {e}");
            return;
        }
    };
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut buf = vec![0u8; 65536];
    let mut next_burst = Instant::now() + burst_every;
    let mut burst_left = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let Ok(n) = from.recv(&mut buf) else {
            continue;
        };
        if burst_every > Duration::ZERO && Instant::now() >= next_burst {
            next_burst = Instant::now() + burst_every;
            burst_left = 24;
            stats.bursts.fetch_add(1, Ordering::Relaxed);
        }
        if burst_left > 0 || rng.chance(loss_percent) {
            burst_left = burst_left.saturating_sub(1);
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if out.send_to(&buf[..n], ("127.0.0.1", to)).is_ok() {
            stats.forwarded.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends `per_second` items from `make` until `stop`, in 10 ms slices.
fn paced(per_second: u64, stop: &AtomicBool, mut send: impl FnMut(u64) -> bool) -> u64 {
    let start = Instant::now();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_secs_f64() * per_second as f64) as u64;
        while sent < due {
            if !send(sent) {
                return sent;
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    sent
}

fn syslog_tcp(port: u16, conn: u64, per_second: u64, stop: Arc<AtomicBool>) -> u64 {
    let mut total = 0;
    // A new connection every minute, as devices reconnect.
    while !stop.load(Ordering::Relaxed) {
        let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let mut w = std::io::BufWriter::new(s);
        let until = Instant::now() + Duration::from_secs(60);
        let inner_stop = AtomicBool::new(false);
        total += paced(per_second, &inner_stop, |n| {
            if stop.load(Ordering::Relaxed) || Instant::now() > until {
                return false;
            }
            let msg = format!(
                "<134>1 2026-01-01T00:00:00.000Z rtu-{conn} scada 411 BRK [weir@32473 n=\"{n}\"] breaker 52-{conn} status change n={n}"
            );
            let ok = write!(w, "{} {msg}", msg.len()).is_ok();
            if n % 64 == 0 {
                let _ = w.flush();
            }
            ok
        });
        let _ = w.flush();
    }
    total
}

fn syslog_udp(port: u16, per_second: u64, stop: Arc<AtomicBool>) -> u64 {
    let Ok(s) = UdpSocket::bind("127.0.0.1:0") else {
        return 0;
    };
    paced(per_second, &stop, |n| {
        let msg =
            format!("<165>Jan  3 22:14:15 hmi-02 WinCC[2211]: operator login station 4 ok n={n}");
        s.send_to(msg.as_bytes(), ("127.0.0.1", port)).is_ok()
    })
}

fn windows_json(port: u16, lines: Arc<Vec<String>>, per_second: u64, stop: Arc<AtomicBool>) -> u64 {
    if lines.is_empty() {
        return 0;
    }
    let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let mut w = std::io::BufWriter::new(s);
    paced(per_second, &stop, |n| {
        let line = &lines[(n as usize) % lines.len()];
        let ok = w.write_all(line.as_bytes()).is_ok() && w.write_all(b"\n").is_ok();
        if n % 32 == 0 {
            let _ = w.flush();
        }
        ok
    })
}

/// A Modbus/TCP server on port 502 answering reads and writes, and clients polling it: real
/// traffic on the loopback interface for the agent's `span` source.
fn modbus(per_second: u64, stop: Arc<AtomicBool>) -> u64 {
    let Ok(listener) = TcpListener::bind("127.0.0.1:502") else {
        eprintln!("soak: cannot bind 127.0.0.1:502 (not root?): no Modbus traffic");
        return 0;
    };
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut h = [0u8; 7];
                while s.read_exact(&mut h).is_ok() {
                    let len = u16::from_be_bytes([h[4], h[5]]) as usize;
                    let mut pdu = vec![0u8; len.saturating_sub(1)];
                    if s.read_exact(&mut pdu).is_err() || pdu.is_empty() {
                        return;
                    }
                    let reply: Vec<u8> = match pdu[0] {
                        3 => {
                            let q = u16::from_be_bytes([pdu[3], pdu[4]]).min(125) as usize;
                            let mut r = vec![3, (q * 2) as u8];
                            r.extend((0..q * 2).map(|i| i as u8));
                            r
                        }
                        6 => pdu.clone(),
                        f => vec![f | 0x80, 1],
                    };
                    let mut out = h.to_vec();
                    out[4..6].copy_from_slice(&((reply.len() + 1) as u16).to_be_bytes());
                    out.extend(reply);
                    if s.write_all(&out).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut total = 0;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", 502)) else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let until = Instant::now() + Duration::from_secs(30);
        let inner_stop = AtomicBool::new(false);
        total += paced(per_second, &inner_stop, |n| {
            if stop.load(Ordering::Relaxed) || Instant::now() > until {
                return false;
            }
            let tid = (n as u16).to_be_bytes();
            let pdu: [u8; 5] = if n % 100 == 99 {
                [6, 0, 40, 0, (n % 200) as u8]
            } else {
                [3, 0, (n % 8) as u8 * 10, 0, 10]
            };
            let mut req = vec![tid[0], tid[1], 0, 0, 0, 6, 1];
            req.extend(pdu);
            let mut head = [0u8; 7];
            s.write_all(&req).is_ok() && s.read_exact(&mut head).is_ok() && {
                let len = u16::from_be_bytes([head[4], head[5]]) as usize;
                let mut rest = vec![0u8; len.saturating_sub(1)];
                s.read_exact(&mut rest).is_ok()
            }
        });
    }
    total
}

/// Every message of Weir's Kafka topics, read as it comes (the broker stays up: its log is in
/// memory and would take what it held with it).
fn kafka_reader(addr: String, tally: Arc<Mutex<Tally>>, stop: Arc<AtomicBool>) {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = match ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("group.id", "weir-soak")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("soak: Kafka consumer: {e}");
            return;
        }
    };
    let mut tpl = rdkafka::TopicPartitionList::new();
    for topic in TOPICS {
        if let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) {
            for t in md.topics() {
                for p in t.partitions() {
                    let _ = tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning);
                }
            }
        }
    }
    if let Err(e) = consumer.assign(&tpl) {
        eprintln!("soak: Kafka assign: {e}");
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        if let Ok(v) = serde_json::from_slice::<Value>(m.payload().unwrap_or_default()) {
            if let Ok(mut t) = tally.lock() {
                t.count(&v);
            }
        }
    }
}

fn write_configs(
    dir: &Path,
    a: &Args,
    ports: &Ports,
    hec: &str,
    es: &str,
    kafka: &str,
) -> std::io::Result<()> {
    let diode = r#"
[diode]
key_file = "diode.key"
mtu_bytes = 1500
compression = "zstd"
max_block_bytes = 262144
"#;
    {
        use std::os::unix::fs::PermissionsExt;
        for (f, text) in [
            ("hec.token", format!("{TOKEN}\n")),
            ("es.key", "c29hazpzb2Frcw==\n".to_string()),
        ] {
            std::fs::write(dir.join(f), text)?;
            std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    let span = if a.modbus {
        r#"
[[sources]]
type = "span"
name = "span"
interface = "lo"
bpf_filter = "tcp port 502"
stats_interval_seconds = 10
read_summary_seconds = 60
baseline_learning_seconds = 120
"#
    } else {
        ""
    };
    std::fs::write(
        dir.join("tx.toml"),
        format!(
            r#"[agent]
name = "soak-agent"
{diode}
[tx]
destination = "127.0.0.1:{relay}"
bind = "127.0.0.1:0"
link_rate_bits_per_second = 200000000
heartbeat_interval_milliseconds = 500
linger_milliseconds = 20
fec_repair_percent = 10
fec_expected_loss_percent = 1.0

[[sources]]
type = "syslog_tcp"
name = "syslog-tcp"
address = "127.0.0.1:{tcp}"

[[sources]]
type = "syslog_udp"
name = "syslog-udp"
address = "127.0.0.1:{udp}"
receive_buffer_bytes = 4194304

[[sources]]
type = "windows_json_tcp"
name = "windows"
address = "127.0.0.1:{win}"
{span}
[metrics]
listen = "127.0.0.1:{txm}"
"#,
            relay = ports.relay,
            tcp = ports.tcp,
            udp = ports.udp,
            win = ports.windows,
            txm = ports.tx_metrics,
        ),
    )?;
    let batch = "[sinks.batch]\nmax_events = 1000\nmax_age_milliseconds = 200\n";
    std::fs::write(
        dir.join("rx.toml"),
        format!(
            r#"{diode}
[rx]
listen = "127.0.0.1:{diode_port}"
state_dir = "state"
receive_buffer_bytes = 8388608
reorder_timeout_milliseconds = 300

[[sinks]]
type = "splunk_hec"
name = "splunk"
endpoint = "{hec}"
token_file = "hec.token"
allow_insecure_http = true
acknowledgements = true
ack_timeout_seconds = 10
{batch}
[[sinks]]
type = "elasticsearch"
name = "elastic"
endpoint = "{es}"
api_key_file = "es.key"
allow_insecure_http = true
install_template = true
{batch}
[[sinks]]
type = "kafka"
name = "kafka"
brokers = "{kafka}"
key = "stream"
{batch}
[metrics]
listen = "127.0.0.1:{rxm}"
"#,
            diode_port = ports.diode,
            rxm = ports.rx_metrics,
        ),
    )?;
    Ok(())
}

struct Ports {
    relay: u16,
    diode: u16,
    tcp: u16,
    udp: u16,
    windows: u16,
    tx_metrics: u16,
    rx_metrics: u16,
}

fn sink_report(name: &str, t: &Tally, sent: u64, session: Option<&str>) -> (Value, bool) {
    let unique = t
        .records
        .keys()
        .filter(|(s, _, _)| session.is_none_or(|want| s == want))
        .count() as u64;
    let lost = sent.saturating_sub(unique);
    let gaps = t.lost_in_gaps();
    let ok = lost == gaps && unique <= sent;
    // Where the missing records are: holes below each stream's highest sequence that no gap
    // record names (should be none), and how many are missing beyond the highest (the tail).
    let mut by_stream: HashMap<&str, Vec<u64>> = HashMap::new();
    for (_, stream, seq) in t.records.keys() {
        by_stream.entry(stream.as_str()).or_default().push(*seq);
    }
    let mut unexplained = Vec::new();
    let mut holes_total = 0u64;
    for (stream, seqs) in &mut by_stream {
        seqs.sort_unstable();
        let mut expect = 0u64;
        for &q in seqs.iter() {
            if q > expect {
                let (first, last) = (expect, q - 1);
                holes_total += q - expect;
                let named = t
                    .gaps
                    .keys()
                    .any(|(s, f, l)| s == stream && *f <= first && last <= *l);
                if !named && unexplained.len() < 10 {
                    unexplained.push(format!("{stream} {first}..={last}"));
                }
            }
            expect = q + 1;
        }
    }
    (
        serde_json::json!({
            "sink": name, "records_in": sent, "records_out": unique, "lost": lost,
            "lost_in_gap_records": gaps, "duplicates": t.duplicates(),
            "receiver_events": t.unsequenced, "accounted": ok,
            "missing_below_highest": holes_total, "missing_beyond_highest": lost.saturating_sub(holes_total),
            "holes_no_gap_record_names": unexplained,
        }),
        ok,
    )
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("weir-soak: {e}");
            std::process::exit(2);
        }
    };
    match run(&a) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("weir-soak: {e}");
            std::process::exit(2);
        }
    }
}

fn run(a: &Args) -> std::io::Result<bool> {
    let dir = tempfile_dir()?;
    let status = Command::new(&a.weir)
        .args(["keygen", "-o"])
        .arg(dir.join("diode.key"))
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(std::io::Error::other("weir keygen failed"));
    }
    let kafka = TansuBroker::start(&TOPICS)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let hec = rt.block_on(HecServer::start(TOKEN))?;
    let es = rt.block_on(EsServer::start())?;
    if let Ok(mut s) = hec.state.lock() {
        s.tally = Some(Tally::default());
    }
    if let Ok(mut s) = es.state.lock() {
        s.tally = Some(Tally::default());
    }
    let ports = Ports {
        relay: free_port(true)?,
        diode: free_port(true)?,
        tcp: free_port(false)?,
        udp: free_port(true)?,
        windows: free_port(false)?,
        tx_metrics: free_port(false)?,
        rx_metrics: free_port(false)?,
    };
    write_configs(&dir, a, &ports, &hec.url(), &es.url(), &kafka.addr)?;

    let stop = Arc::new(AtomicBool::new(false));
    let link = Arc::new(LinkStats::default());
    let relay_socket = UdpSocket::bind(("127.0.0.1", ports.relay))?;
    // The link outlives the generators: it stops only once the agent has drained.
    let link_stop = Arc::new(AtomicBool::new(false));
    let relay_thread = {
        let (stop, link) = (link_stop.clone(), link.clone());
        let (to, loss, burst) = (
            ports.diode,
            a.loss_percent,
            Duration::from_secs(a.burst_every_seconds),
        );
        std::thread::spawn(move || relay(relay_socket, to, loss, burst, link, stop))
    };
    let rx = Weir::start(&a.weir, "rx", &dir)?;
    let tx = Weir::start(&a.weir, "tx", &dir)?;
    let kafka_tally = Arc::new(Mutex::new(Tally::default()));
    let reader_stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (addr, t, s) = (kafka.addr.clone(), kafka_tally.clone(), reader_stop.clone());
        std::thread::spawn(move || kafka_reader(addr, t, s))
    };

    let windows_lines: Arc<Vec<String>> = Arc::new(
        std::fs::read_to_string(
            a.samples
                .join("windows/json/otrf_psexec_lsa_secrets_dump.json"),
        )
        .map(|t| {
            t.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default(),
    );
    // The rate: 45% syslog over TCP (2 connections), 25% syslog over UDP, 25% Windows JSON,
    // and Modbus transactions at 5% (each gives flow, ot and asset events in summary form).
    let r = a.rate;
    let mut generators = Vec::new();
    for c in 0..2 {
        let s = stop.clone();
        let port = ports.tcp;
        generators.push((
            "syslog_tcp",
            std::thread::spawn(move || syslog_tcp(port, c, r * 45 / 200, s)),
        ));
    }
    {
        let s = stop.clone();
        let port = ports.udp;
        generators.push((
            "syslog_udp",
            std::thread::spawn(move || syslog_udp(port, r / 4, s)),
        ));
    }
    {
        let s = stop.clone();
        let port = ports.windows;
        let l = windows_lines.clone();
        generators.push((
            "windows_json",
            std::thread::spawn(move || windows_json(port, l, r / 4, s)),
        ));
    }
    if a.modbus {
        let s = stop.clone();
        generators.push((
            "modbus_transactions",
            std::thread::spawn(move || modbus(r / 20, s)),
        ));
    }

    let started = Instant::now();
    let total = Duration::from_secs_f64(a.minutes * 60.0);
    let mut next_report = Duration::from_secs(a.report_seconds);
    let mut next_restart = Duration::from_secs(a.restart_every_seconds);
    let mut restarts = Vec::new();
    let mut rss = Vec::new();
    let count = |t: &Option<Tally>| t.as_ref().map_or(0, |t| t.records.len());
    println!("soak: {} minutes, {} events/s offered, {}% random loss + a 24-datagram burst every {} s, HEC and Elasticsearch down {} s every {} s; work dir {}",
        a.minutes, a.rate, a.loss_percent, a.burst_every_seconds, a.down_seconds, a.restart_every_seconds, dir.display());
    println!(
        "{:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "min", "tx_rss_MiB", "rx_rss_MiB", "splunk", "elastic", "kafka", "dropped"
    );
    while started.elapsed() < total {
        std::thread::sleep(Duration::from_millis(250));
        let t = started.elapsed();
        // A restart takes both models down in turn; none starts in the last minutes, so the
        // run ends with every SIEM up.
        let restart_takes = Duration::from_secs(2 * a.down_seconds + 60);
        if a.restart_every_seconds > 0 && t >= next_restart && t + restart_takes < total {
            next_restart += Duration::from_secs(a.restart_every_seconds);
            // Splunk first, then Elasticsearch, each down for `down_seconds`.
            hec.stop();
            std::thread::sleep(Duration::from_secs(a.down_seconds));
            rt.block_on(hec.resume())?;
            es.stop();
            std::thread::sleep(Duration::from_secs(a.down_seconds));
            rt.block_on(es.resume())?;
            restarts.push(t.as_secs());
        }
        if t >= next_report {
            next_report += Duration::from_secs(a.report_seconds);
            let (txr, rxr) = (tx.rss_kib(), rx.rss_kib());
            rss.push((t.as_secs(), txr, rxr));
            let sp = hec.state.lock().map(|s| count(&s.tally)).unwrap_or(0);
            let el = es.state.lock().map(|s| count(&s.tally)).unwrap_or(0);
            let ka = kafka_tally.lock().map(|t| t.records.len()).unwrap_or(0);
            println!(
                "{:>6.1} {:>9.1} {:>9.1} {:>9} {:>9} {:>9} {:>9}",
                t.as_secs_f64() / 60.0,
                txr as f64 / 1024.0,
                rxr as f64 / 1024.0,
                sp,
                el,
                ka,
                link.dropped.load(Ordering::Relaxed)
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut offered = HashMap::new();
    for (name, g) in generators {
        *offered.entry(name).or_insert(0u64) += g.join().unwrap_or(0);
    }
    std::thread::sleep(Duration::from_secs(2));
    let tx_summary = tx.stop();
    let sent = tx_summary["diode_records_sent_total"].as_u64().unwrap_or(0);
    // Wait until the receiver's sink buffers are empty and the counts have been still for 5 s
    // (a sink in retry backoff holds events in its buffer; they are not lost, but not stored).
    let mut last = (0, 0, 0);
    let mut quiet = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(600);
    while (quiet.elapsed() < Duration::from_secs(5) || buffered(ports.rx_metrics) != Some(0))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(500));
        let now = (
            hec.state.lock().map(|s| count(&s.tally)).unwrap_or(0),
            es.state.lock().map(|s| count(&s.tally)).unwrap_or(0),
            kafka_tally.lock().map(|t| t.records.len()).unwrap_or(0),
        );
        if now != last {
            last = now;
            quiet = Instant::now();
        }
    }
    let rx_summary = rx.stop();
    link_stop.store(true, Ordering::Relaxed);
    reader_stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    let _ = relay_thread.join();

    let mut ok = true;
    let mut sinks = Vec::new();
    let session = None;
    if let Ok(s) = hec.state.lock() {
        if let Some(t) = &s.tally {
            let (r, good) = sink_report("splunk", t, sent, session);
            ok &= good;
            sinks.push(r);
        }
    }
    if let Ok(s) = es.state.lock() {
        if let Some(t) = &s.tally {
            let (r, good) = sink_report("elastic", t, sent, session);
            ok &= good;
            sinks.push(r);
        }
    }
    if let Ok(t) = kafka_tally.lock() {
        let (r, good) = sink_report("kafka", &t, sent, session);
        ok &= good;
        sinks.push(r);
    }
    for s in ["splunk", "elastic", "kafka"] {
        let sink = &rx_summary["sink"][s];
        if sink["dead_lettered_total"].as_u64().unwrap_or(0) > 0
            || sink["buffer_dropped_total"].as_u64().unwrap_or(0) > 0
        {
            ok = false;
        }
    }
    let peak = |i: usize| {
        rss.iter()
            .map(|r| if i == 0 { r.1 } else { r.2 })
            .max()
            .unwrap_or(0)
    };
    let report = serde_json::json!({
        "minutes": a.minutes,
        "offered": offered,
        "link": {
            "datagrams_forwarded": link.forwarded.load(Ordering::Relaxed),
            "datagrams_dropped": link.dropped.load(Ordering::Relaxed),
            "bursts": link.bursts.load(Ordering::Relaxed),
        },
        "sink_restarts_at_seconds": restarts,
        "tx": {
            "events_received_total": tx_summary["events_received_total"],
            "events_dropped_total": tx_summary["events_dropped_total"],
            "diode_records_sent_total": sent,
            "peak_rss_mib": peak(0) as f64 / 1024.0,
        },
        "rx": {
            "diode_gaps_total": rx_summary["diode_gaps_total"],
            "diode_records_lost_total": rx_summary["diode_records_lost_total"],
            "diode_blocks_repaired_total": rx_summary["diode_blocks_repaired_total"],
            "sink": rx_summary["sink"],
            "peak_rss_mib": peak(1) as f64 / 1024.0,
        },
        "rss_kib_over_time": rss.iter().map(|(t, a, b)| serde_json::json!([t, a, b])).collect::<Vec<_>>(),
        "sinks": sinks,
        "accounted": ok,
    });
    println!(
        "{:>8} {:>10} {:>10} {:>8} {:>10} {:>10}",
        "sink", "in", "out", "lost", "in_gaps", "duplicates"
    );
    for s in report["sinks"].as_array().into_iter().flatten() {
        println!(
            "{:>8} {:>10} {:>10} {:>8} {:>10} {:>10}",
            s["sink"].as_str().unwrap_or(""),
            s["records_in"],
            s["records_out"],
            s["lost"],
            s["lost_in_gap_records"],
            s["duplicates"]
        );
    }
    println!("summary {report}");
    println!(
        "{}",
        if ok {
            "OK: every record the agent sent is in every sink or named by a gap record; nothing dead-lettered or dropped"
        } else {
            "FAILED: see the summary (lost != lost_in_gap_records, or a sink dead-lettered or dropped)"
        }
    );
    let _ = std::io::stdout().flush();
    drop(kafka);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ok)
}

/// Records waiting in the receiver's sink buffers, from its `/metrics`.
fn buffered(port: u16) -> Option<u64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: soak\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let mut total = 0;
    let mut seen = false;
    for line in text
        .lines()
        .filter(|l| l.starts_with("weir_sink_buffer_records{"))
    {
        total += line.rsplit(' ').next()?.parse::<u64>().ok()?;
        seen = true;
    }
    seen.then_some(total)
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let base = std::env::temp_dir().join(format!("weir-soak-{}", std::process::id()));
    std::fs::create_dir_all(base.join("state"))?;
    Ok(base)
}
