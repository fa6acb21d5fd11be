/*!
`weir-diode-load`: the diode transport under load, over real UDP sockets, beside a raw UDP
blaster doing the same thing with no protocol at all.

```text
weir-diode-load [--mode weir|raw] [--mtu 1500] [--rate-bits 1000000000] [--gib 1]
                [--record-bytes 4000] [--payload random|events] [--compression none|zstd]
                [--fec-percent 0] [--expected-loss 1.0] [--loss 0.01]
```

It starts a receiver and a sender as two child processes (so each side's CPU time and peak
RSS are its own), pushes the payload through the real `weir` drivers (`diode::tx::run` with
its pacer and `sendmmsg`, `diode::rx::run` with `recvmmsg`, the sans-IO core on both sides),
and prints one JSON line per side plus a summary: payload MB/s, UDP payload MB/s, CPU seconds
per GiB (user + system) on each side, peak RSS, records delivered, gaps.

Sink work (JSON decoding, writing files) is not part of this figure: the receiver's queue
consumer only counts records. `--loss` runs both sides in a private network namespace whose
loopback drops that fraction of datagrams with an iptables `statistic` rule (needs root).
*/

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};
use tokio::io::Interest;
use tokio_util::sync::CancellationToken;
use weir::config::DiodeKey;
use weir::diode::mmsg::{RecvBatch, SendBatch, MAX_BATCH};
use weir::diode::{self, tx::Pacer};
use weir::pipeline::rx::{QueueBudget, Work};
use weir::sources::Record;
use weir::telemetry::{RxStats, TxStats};
use weir_diode_proto::{
    block::{Codec, RECORD_OVERHEAD},
    sender::IpVersion,
    Cipher, Output, Receiver, ReceiverConfig, Sender, SenderConfig, StreamId,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Debug)]
struct Opts {
    mode: String,
    mtu: usize,
    rate_bits: u64,
    total_bytes: u64,
    record_bytes: usize,
    payload: String,
    compression: String,
    fec_percent: u32,
    expected_loss: f64,
    loss: f64,
    max_block_bytes: usize,
    offload: bool,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            mode: "weir".into(),
            mtu: 1500,
            rate_bits: 1_000_000_000,
            total_bytes: 1 << 30,
            record_bytes: 4000,
            payload: "random".into(),
            compression: "none".into(),
            fec_percent: 0,
            expected_loss: 1.0,
            loss: 0.0,
            max_block_bytes: 256 * 1024,
            offload: true,
        }
    }
}

fn parse_opts(args: &[String]) -> Result<Opts> {
    let mut o = Opts::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--mode" => o.mode = value()?,
            "--mtu" => o.mtu = value()?.parse()?,
            "--rate-bits" => o.rate_bits = value()?.parse()?,
            "--gib" => o.total_bytes = (value()?.parse::<f64>()? * (1u64 << 30) as f64) as u64,
            "--record-bytes" => o.record_bytes = value()?.parse()?,
            "--payload" => o.payload = value()?,
            "--compression" => o.compression = value()?,
            "--fec-percent" => o.fec_percent = value()?.parse()?,
            "--expected-loss" => o.expected_loss = value()?.parse()?,
            "--loss" => o.loss = value()?.parse()?,
            "--max-block-bytes" => o.max_block_bytes = value()?.parse()?,
            "--offload" => o.offload = value()?.parse()?,
            other => bail!("unknown option {other}"),
        }
    }
    if !matches!(o.mode.as_str(), "weir" | "raw") {
        bail!("--mode is weir or raw");
    }
    Ok(o)
}

fn to_args(o: &Opts) -> Vec<String> {
    [
        ("--mode", o.mode.clone()),
        ("--mtu", o.mtu.to_string()),
        ("--rate-bits", o.rate_bits.to_string()),
        (
            "--gib",
            (o.total_bytes as f64 / (1u64 << 30) as f64).to_string(),
        ),
        ("--record-bytes", o.record_bytes.to_string()),
        ("--payload", o.payload.clone()),
        ("--compression", o.compression.clone()),
        ("--fec-percent", o.fec_percent.to_string()),
        ("--expected-loss", o.expected_loss.to_string()),
        ("--max-block-bytes", o.max_block_bytes.to_string()),
        ("--offload", o.offload.to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("send") => child(&args[1..], true),
        Some("recv") => child(&args[1..], false),
        _ => orchestrate(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir-diode-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Orchestrator

fn orchestrate(args: &[String]) -> Result<()> {
    let o = parse_opts(args)?;
    let exe = std::env::current_exe()?;
    let key = DiodeKey::generate(1)?;
    let netns = if o.loss > 0.0 {
        Some(Netns::create(o.loss)?)
    } else {
        None
    };
    let command = |side: &str| {
        let mut c = match &netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        c.arg(side)
            .args(to_args(&o))
            .env("WEIR_LOAD_KEY", key.to_file_text())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        c
    };
    let mut rx = command("recv")
        .spawn()
        .context("cannot start the receiver")?;
    let rx_out = rx
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no receiver stdout"))?;
    let mut rx_lines = BufReader::new(rx_out).lines();
    let port: u16 = rx_lines
        .next()
        .ok_or_else(|| anyhow!("receiver did not start"))??
        .trim()
        .parse()?;
    let mut tx = command("send")
        .env("WEIR_LOAD_PORT", port.to_string())
        .spawn()
        .context("cannot start the sender")?;
    let tx_out = tx
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no sender stdout"))?;
    let tx_line = BufReader::new(tx_out)
        .lines()
        .next()
        .ok_or_else(|| anyhow!("sender printed nothing"))??;
    tx.wait()?;
    let rx_line = rx_lines
        .next()
        .ok_or_else(|| anyhow!("receiver printed nothing"))??;
    rx.wait()?;
    drop(netns);
    let tx_v: Value = serde_json::from_str(&tx_line)?;
    let rx_v: Value = serde_json::from_str(&rx_line)?;
    let gib = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0) / (1u64 << 30) as f64;
    let payload_gib = gib(&rx_v, "payload_bytes");
    let seconds = rx_v["seconds"].as_f64().unwrap_or(0.0);
    let per_gib = |v: &Value| {
        let cpu =
            v["cpu_user_s"].as_f64().unwrap_or(0.0) + v["cpu_system_s"].as_f64().unwrap_or(0.0);
        if payload_gib > 0.0 {
            cpu / payload_gib
        } else {
            f64::NAN
        }
    };
    let summary = json!({
        "mode": o.mode,
        "mtu": o.mtu,
        "rate_bits": o.rate_bits,
        "loss": o.loss,
        "fec_percent": o.fec_percent,
        "expected_loss_percent": o.expected_loss,
        "compression": o.compression,
        "payload": o.payload,
        "record_bytes": o.record_bytes,
        "payload_mb_per_s": rx_v["payload_bytes"].as_f64().unwrap_or(0.0) / seconds / 1e6,
        "udp_payload_mb_per_s": rx_v["udp_bytes"].as_f64().unwrap_or(0.0) / seconds / 1e6,
        "tx_cpu_s_per_gib": per_gib(&tx_v),
        "rx_cpu_s_per_gib": per_gib(&rx_v),
        "tx_peak_rss_mib": tx_v["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
        "rx_peak_rss_mib": rx_v["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
        "records_sent": tx_v["records"],
        "records_received": rx_v["records"],
        "records_lost_in_gaps": rx_v["records_lost"],
        "blocks_repaired": rx_v["blocks_repaired"],
        "datagrams_sent": tx_v["datagrams"],
        "datagrams_received": rx_v["datagrams"],
    });
    println!("tx      {tx_line}");
    println!("rx      {rx_line}");
    println!("summary {summary}");
    std::io::stdout().flush()?;
    Ok(())
}

/// A private network namespace whose loopback drops a fraction of UDP datagrams.
struct Netns {
    name: String,
}

impl Netns {
    fn create(loss: f64) -> Result<Netns> {
        let name = format!("weir-load-{}", std::process::id());
        run("ip", &["netns", "add", &name])
            .context("--loss needs a network namespace (root, iproute2)")?;
        let ns = Netns { name };
        run("ip", &["-n", &ns.name, "link", "set", "lo", "up"])?;
        run(
            "ip",
            &[
                "netns",
                "exec",
                &ns.name,
                "iptables",
                "-A",
                "INPUT",
                "-p",
                "udp",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &loss.to_string(),
                "-j",
                "DROP",
            ],
        )
        .context("--loss needs iptables")?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(program).args(args).status()?;
    if !status.success() {
        bail!("{program} {} failed: {status}", args.join(" "));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The two sides

fn child(args: &[String], send: bool) -> Result<()> {
    let o = parse_opts(args)?;
    let key = DiodeKey::parse(&std::env::var("WEIR_LOAD_KEY")?)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cpu0 = cpu_seconds()?;
    let report = if send {
        let port: u16 = std::env::var("WEIR_LOAD_PORT")?.parse()?;
        let dest: SocketAddr = ([127, 0, 0, 1], port).into();
        rt.block_on(async {
            match o.mode.as_str() {
                "raw" => raw_send(&o, dest).await,
                _ => weir_send(&o, &key, dest).await,
            }
        })?
    } else {
        rt.block_on(async {
            match o.mode.as_str() {
                "raw" => raw_recv(&o).await,
                _ => weir_recv(&o, &key).await,
            }
        })?
    };
    let cpu1 = cpu_seconds()?;
    let mut report = report;
    report["cpu_user_s"] = json!(cpu1.0 - cpu0.0);
    report["cpu_system_s"] = json!(cpu1.1 - cpu0.1);
    report["peak_rss_kib"] = json!(peak_rss_kib()?);
    println!("{report}");
    Ok(())
}

fn codec(o: &Opts) -> Codec {
    match o.compression.as_str() {
        "zstd" => Codec::Zstd(1),
        _ => Codec::None,
    }
}

fn fingerprint(o: &Opts) -> u64 {
    weir_diode_proto::fingerprint(&[
        ("mtu_bytes", o.mtu.to_string()),
        ("compression", o.compression.clone()),
    ])
}

/// Records of `record_bytes`: random bytes (incompressible), or realistic event JSON.
fn payloads(o: &Opts) -> Result<Vec<bytes::Bytes>> {
    let mut out = Vec::new();
    match o.payload.as_str() {
        "events" => {
            for (i, line) in [
                include_str!("../../../samples/syslog/rfc.log"),
                include_str!("../../../samples/syslog/industrial.log"),
                include_str!("../../../samples/syslog/linux.log"),
                include_str!("../../../samples/syslog/cisco_asa.log"),
                include_str!("../../../samples/syslog/fortigate.log"),
            ]
            .into_iter()
            .flat_map(str::lines)
            .enumerate()
            {
                let ctx = weir_parsers::syslog::ParseContext {
                    received_at: chrono::Utc::now(),
                    timezone: chrono_tz::UTC,
                    peer: Some(([10, 1, 2, (i % 250) as u8], 514).into()),
                    input: "syslog_udp",
                    keep_original: true,
                };
                out.push(
                    weir_parsers::syslog::normalise(line.as_bytes(), &ctx)
                        .to_json()
                        .into(),
                );
            }
        }
        _ => {
            for _ in 0..64 {
                let mut r = vec![0u8; o.record_bytes];
                getrandom::fill(&mut r).map_err(|e| anyhow!("{e}"))?;
                out.push(r.into());
            }
        }
    }
    Ok(out)
}

async fn weir_send(o: &Opts, key: &DiodeKey, dest: SocketAddr) -> Result<Value> {
    let mut sender = Sender::new(
        SenderConfig {
            key_id: key.id,
            key: key.secret,
            cipher: Cipher::Aes256Gcm,
            session: weir::pipeline::tx::random_session()?,
            mtu_bytes: o.mtu,
            ip_version: IpVersion::of(dest),
            codec: codec(o),
            max_block_bytes: o.max_block_bytes,
            max_record_bytes: o.max_block_bytes - RECORD_OVERHEAD,
            linger: Duration::from_millis(20),
            heartbeat_interval: Duration::from_secs(1),
            fingerprint: fingerprint(o),
            max_queued_blocks: 8,
            repair_percent: o.fec_percent,
            expected_loss_percent: o.expected_loss,
            interleave_blocks: 1,
            identity: None,
        },
        Instant::now(),
    )
    .map_err(|e| anyhow!("{e}"))?;
    let stream = sender.add_stream("load");
    let socket = diode::udp::bind_udp(([127, 0, 0, 1], 0).into(), None, Some(4 << 20))?;
    let stats = Arc::new(TxStats::default());
    let (queue, queue_rx) = tokio::sync::mpsc::channel::<Record>(1024);
    let payloads = payloads(o)?;
    let total = o.total_bytes;
    let producer = tokio::spawn(async move {
        let mut sent = 0u64;
        let mut i = 0usize;
        while sent < total {
            let json = payloads[i % payloads.len()].clone();
            sent += json.len() as u64;
            i += 1;
            let record = Record {
                stream: StreamId(stream.0),
                class: weir_schemas::EventClass::Syslog,
                payload: json,
                taken: None,
            };
            if queue.send(record).await.is_err() {
                break;
            }
        }
        (i as u64, sent)
    });
    let started = Instant::now();
    // No source comes or goes here: the stream channel's sender is dropped at once.
    let (_, streams) = tokio::sync::mpsc::unbounded_channel();
    diode::tx::run(
        sender,
        queue_rx,
        streams,
        Arc::new(std::sync::atomic::AtomicU16::new(1)),
        socket,
        dest,
        diode::tx::Pacing::at(o.rate_bits),
        o.offload,
        stats.clone(),
        None,
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let (records, payload_bytes) = producer.await?;
    Ok(json!({
        "side": "tx",
        "records": records,
        "payload_bytes": payload_bytes,
        "datagrams": stats.datagrams_sent.get(),
        "udp_bytes": stats.bytes_sent.get(),
        "repair_datagrams": stats.repair_sent.get(),
        "send_errors": stats.send_errors.get(),
        "seconds": seconds,
    }))
}

/// Stop once datagrams have flowed and then nothing came for this long.
const IDLE_END: Duration = Duration::from_millis(2000);

async fn weir_recv(o: &Opts, key: &DiodeKey) -> Result<Value> {
    let receiver = Receiver::new(ReceiverConfig {
        keys: vec![(key.id, key.secret)],
        fingerprint: fingerprint(o),
        max_block_bytes: o.max_block_bytes,
        reorder_timeout: Duration::from_millis(500),
        max_pending_bytes: 64 << 20,
        ..ReceiverConfig::default()
    });
    let socket = diode::udp::bind_udp(([127, 0, 0, 1], 0).into(), Some(32 << 20), None)?;
    announce(socket.local_addr()?)?;
    let stats = Arc::new(RxStats::default());
    let (work, work_rx) = sync_channel::<Work>(4096);
    let budget = Arc::new(QueueBudget::new(256 << 20));
    let cancel = CancellationToken::new();
    let records = Arc::new(AtomicU64::new(0));
    let payload = Arc::new(AtomicU64::new(0));
    let last = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let first = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let consumer = {
        let (records, payload, budget) = (records.clone(), payload.clone(), budget.clone());
        let (first, last) = (first.clone(), last.clone());
        std::thread::spawn(move || {
            while let Ok(w) = work_rx.recv() {
                match w {
                    Work::Diode(Output::Block { records: r, .. }, bytes) => {
                        let now = Instant::now();
                        if let Ok(mut f) = first.lock() {
                            f.get_or_insert(now);
                        }
                        if let Ok(mut l) = last.lock() {
                            *l = Some(now);
                        }
                        records.fetch_add(r.len() as u64, Ordering::Relaxed);
                        let data: usize = r.records().map(|(_, d)| d.len()).sum();
                        payload.fetch_add(data as u64, Ordering::Relaxed);
                        budget.release(bytes);
                    }
                    Work::Diode(_, bytes) => budget.release(bytes),
                    Work::Stop => break,
                }
            }
        })
    };
    let watcher = {
        let (stats, cancel) = (stats.clone(), cancel.clone());
        tokio::spawn(async move {
            let mut seen = 0;
            let mut quiet_since = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let n = stats.datagrams_received.get();
                if n != seen {
                    seen = n;
                    quiet_since = Instant::now();
                } else if seen > 0 && quiet_since.elapsed() > IDLE_END {
                    cancel.cancel();
                    break;
                }
            }
        })
    };
    let slot_len = diode::udp::receive_slot_len(&socket, o.offload, o.mtu);
    diode::rx::run(
        receiver,
        socket,
        slot_len,
        work,
        budget,
        stats.clone(),
        cancel,
    )
    .await;
    watcher.await?;
    consumer.join().map_err(|_| anyhow!("consumer panicked"))?;
    let seconds = match (
        *first.lock().map_err(|_| anyhow!("lock"))?,
        *last.lock().map_err(|_| anyhow!("lock"))?,
    ) {
        (Some(f), Some(l)) => l.duration_since(f).as_secs_f64(),
        _ => 0.0,
    };
    Ok(json!({
        "side": "rx",
        "records": records.load(Ordering::Relaxed),
        "payload_bytes": payload.load(Ordering::Relaxed),
        "datagrams": stats.datagrams_received.get(),
        "udp_bytes": stats.bytes_received.get(),
        "records_lost": stats.records_lost.get(),
        "blocks_lost": stats.blocks_lost.get(),
        "blocks_repaired": stats.blocks_repaired.get(),
        "rejected": stats.rejected_total(),
        "dropped_queue_full": stats.dropped_queue_full.get(),
        "seconds": seconds,
    }))
}

fn announce(addr: SocketAddr) -> Result<()> {
    let mut out = std::io::stdout();
    writeln!(out, "{}", addr.port())?;
    out.flush()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Raw UDP baseline: the same pacing and batched syscalls, datagrams of the same size, no
// protocol (no framing, crypto, FEC, or records).

fn raw_len(o: &Opts) -> usize {
    o.mtu - IpVersion::V4.ip_udp_overhead()
}

async fn raw_send(o: &Opts, dest: SocketAddr) -> Result<Value> {
    let socket = diode::udp::bind_udp(([127, 0, 0, 1], 0).into(), None, Some(4 << 20))?;
    let len = raw_len(o);
    let mut pacer = Pacer::new(diode::tx::Pacing::at(o.rate_bits), Instant::now());
    let overhead = diode::wire_overhead_bytes(IpVersion::V4);
    let per_batch = (pacer.burst_bytes() / 4) / (len + overhead);
    let mut batch = SendBatch::new(len, per_batch, dest, o.offload);
    let mut fill = vec![0u8; len];
    getrandom::fill(&mut fill).map_err(|e| anyhow!("{e}"))?;
    let total = o.total_bytes.div_ceil(len as u64);
    let started = Instant::now();
    let mut datagrams = 0u64;
    while datagrams < total {
        while datagrams + (batch.pending() as u64) < total {
            let Some(slot) = batch.free_slot() else { break };
            slot.copy_from_slice(&fill);
            batch.commit(len);
        }
        let n = batch.pending();
        if let Some(wait) = pacer.take(Instant::now(), batch.pending_bytes() + n * overhead) {
            tokio::time::sleep(wait).await;
        }
        while batch.pending() > 0 {
            socket
                .async_io(Interest::WRITABLE, || {
                    batch.send(std::os::fd::AsFd::as_fd(&socket))
                })
                .await?;
        }
        datagrams += n as u64;
    }
    Ok(json!({
        "side": "tx",
        "records": datagrams,
        "payload_bytes": datagrams * len as u64,
        "datagrams": datagrams,
        "udp_bytes": datagrams * len as u64,
        "seconds": started.elapsed().as_secs_f64(),
    }))
}

async fn raw_recv(o: &Opts) -> Result<Value> {
    let socket = diode::udp::bind_udp(([127, 0, 0, 1], 0).into(), Some(32 << 20), None)?;
    announce(socket.local_addr()?)?;
    let slot_len = diode::udp::receive_slot_len(&socket, o.offload, o.mtu);
    let mut batch = RecvBatch::new(slot_len, MAX_BATCH);
    let (mut datagrams, mut bytes) = (0u64, 0u64);
    let (mut first, mut last) = (None::<Instant>, Instant::now());
    loop {
        match tokio::time::timeout(IDLE_END, socket.readable()).await {
            Err(_) if first.is_some() => break,
            Err(_) => continue,
            Ok(r) => r?,
        }
        loop {
            match socket.try_io(Interest::READABLE, || {
                batch.recv(std::os::fd::AsFd::as_fd(&socket))
            }) {
                Ok(_) => {
                    let now = Instant::now();
                    first.get_or_insert(now);
                    last = now;
                    for (d, _) in batch.datagrams() {
                        datagrams += 1;
                        bytes += d.len() as u64;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    let seconds = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    Ok(json!({
        "side": "rx",
        "records": datagrams,
        "payload_bytes": bytes,
        "datagrams": datagrams,
        "udp_bytes": bytes,
        "seconds": seconds,
    }))
}

// ---------------------------------------------------------------------------------------------
// Accounting from /proc (no unsafe, whole process including exited threads)

/// (user, system) CPU seconds of this process so far.
fn cpu_seconds() -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("odd /proc/self/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow!("odd /proc/self/stat"))?
            .parse::<f64>()?
            / 100.0)
    };
    Ok((ticks(11)?, ticks(12)?))
}

fn peak_rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmHWM in /proc/self/status"))
}
