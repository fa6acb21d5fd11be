//! `weir demo`: both sides in one process, on loopback, with a fresh key.
//!
//! The receiver writes `DIR/events.ndjson`; the agent listens for syslog on loopback TCP and
//! UDP and for Windows events as JSON lines on loopback TCP; the bundled samples (compiled into
//! the binary) are replayed into those sockets as devices and Windows collectors would send
//! them, and the bundled packet captures (written to `DIR/captures/`) are read by a
//! `capture_file` source as a SPAN port would deliver them; everything crosses the real UDP
//! diode protocol. At the end a summary compares what went in with what came out.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::AsyncWriteExt;
use weir_diode_proto::Codec;
use weir_schemas::EventClass;

use crate::config::{
    DiodeConfig, DiodeKey, Format, Oversize, RxConfig, SinkConfig, SyslogSource, Transport,
    TxConfig,
};
use crate::pipeline;

/// The bundled samples: (file name, contents, transport used to replay it).
pub const SAMPLES: &[(&str, &str, Transport)] = &[
    (
        "linux.log",
        include_str!("../../samples/syslog/linux.log"),
        Transport::Udp,
    ),
    (
        "rfc.log",
        include_str!("../../samples/syslog/rfc.log"),
        Transport::Tcp,
    ),
    (
        "cisco_ios.log",
        include_str!("../../samples/syslog/cisco_ios.log"),
        Transport::Udp,
    ),
    (
        "cisco_asa.log",
        include_str!("../../samples/syslog/cisco_asa.log"),
        Transport::Tcp,
    ),
    (
        "fortigate.log",
        include_str!("../../samples/syslog/fortigate.log"),
        Transport::Tcp,
    ),
    (
        "paloalto.log",
        include_str!("../../samples/syslog/paloalto.log"),
        Transport::Tcp,
    ),
    (
        "industrial.log",
        include_str!("../../samples/syslog/industrial.log"),
        Transport::Udp,
    ),
    (
        "snare.log",
        include_str!("../../samples/syslog/snare.log"),
        Transport::Tcp,
    ),
    (
        "malformed.log",
        include_str!("../../samples/syslog/malformed.log"),
        Transport::Tcp,
    ),
];

/// Windows events as JSON lines (an NXLog-style capture of a real attack), replayed over TCP.
pub const WINDOWS_JSON_SAMPLES: &[(&str, &str)] = &[(
    "otrf_psexec_lsa_secrets_dump.json",
    include_str!("../../samples/windows/json/otrf_psexec_lsa_secrets_dump.json"),
)];

/// Packet captures of industrial and IT traffic (third-party, see `samples/pcaps/`), read by a
/// `capture_file` source once per run.
pub const CAPTURE_SAMPLES: &[(&str, &[u8])] = &[
    (
        "modbus_example.pcap",
        include_bytes!("../../samples/pcaps/modbus/icsnpp_modbus_example.pcap"),
    ),
    (
        "modbus_and_non_modbus_p502.pcap",
        include_bytes!("../../samples/pcaps/modbus/zeek_modbus-and-non-modbus-p502.pcap"),
    ),
    (
        "modbus_small.pcap",
        include_bytes!("../../samples/pcaps/modbus/zeek_modbusSmall.pcap"),
    ),
    (
        "dnp3_example.pcap",
        include_bytes!("../../samples/pcaps/dnp3/icsnpp_dnp3_example.pcap"),
    ),
    (
        "s7comm_snap7.pcap",
        include_bytes!("../../samples/pcaps/s7comm/icsnpp_snap7.pcap"),
    ),
    (
        "enip_cip_example.pcap",
        include_bytes!("../../samples/pcaps/enip/icsnpp_enip_cip_example.pcap"),
    ),
    (
        "iec104.pcap",
        include_bytes!("../../samples/pcaps/iec104/iti_TestDissectIec104.pcap"),
    ),
    (
        "bacnet_example.pcap",
        include_bytes!("../../samples/pcaps/bacnet/icsnpp_bacnet_example.pcap"),
    ),
    (
        "opcua_loopback.pcap",
        include_bytes!("../../samples/pcaps/opcua/icsnpp_open62541_client-server_mainloop.pcap"),
    ),
    (
        "mixed_vlan_mpls.pcap",
        include_bytes!("../../samples/pcaps/edge/zeek_mixed-vlan-mpls.pcap"),
    ),
    (
        "wikipedia.pcap",
        include_bytes!("../../samples/pcaps/it/zeek_wikipedia.pcap"),
    ),
];

/// The events the sensor makes of the bundled captures (the demo's expected count).
fn capture_events(sensor: weir_parsers::sensor::SensorConfig) -> u64 {
    use weir_parsers::packet::capture::{CaptureReader, Item};
    let mut s = weir_parsers::sensor::Sensor::new(sensor);
    let mut n = 0u64;
    // In name order, as the source reads a directory.
    let mut files: Vec<&(&str, &[u8])> = CAPTURE_SAMPLES.iter().collect();
    files.sort_by_key(|(name, _)| *name);
    for (_, bytes) in files {
        let mut r = CaptureReader::new();
        let mut at = 0;
        while let Ok(Some((used, item))) = r.next(bytes.get(at..).unwrap_or_default()) {
            at += used;
            if let Item::Packet(p) = item {
                s.packet(p.ts_nanos, p.link, p.data);
            }
        }
        n += s.drain().count() as u64;
    }
    s.flush();
    n + s.drain().count() as u64
}

fn source(name: &str, transport: Transport, format: Format) -> SyslogSource {
    SyslogSource {
        name: name.into(),
        transport,
        format,
        address: SocketAddr::from(([127, 0, 0, 1], 0)),
        timezone: chrono_tz::Tz::UTC,
        max_message_bytes: 64 * 1024,
        oversize: Oversize::Truncate,
        max_connections: 16,
        max_connections_per_address: 16,
        idle_timeout: Some(std::time::Duration::from_secs(60)),
        body_timeout: std::time::Duration::from_secs(60),
        max_inflight_body_bytes: 64 << 20,
        keep_original: true,
        receive_buffer_bytes: Some(4 * 1024 * 1024),
    }
}

/// Run the demo; `repeat` replays of the samples.
pub async fn run(dir: &Path, repeat: usize) -> Result<ExitCode> {
    let started = Instant::now();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let events_path = dir.join("events.ndjson");
    let key_path = dir.join("diode.key");
    for stale in [&events_path, &key_path] {
        if stale.exists() {
            std::fs::remove_file(stale)
                .with_context(|| format!("cannot remove {}", stale.display()))?;
        }
    }
    // A fresh baseline every run: a saved one would silence the notables the expected count
    // (an empty baseline) includes.
    let state = dir.join("state");
    if state.exists() {
        std::fs::remove_dir_all(&state)
            .with_context(|| format!("cannot remove {}", state.display()))?;
    }
    let captures = dir.join("captures");
    std::fs::create_dir_all(&captures)
        .with_context(|| format!("cannot create {}", captures.display()))?;
    for (name, bytes) in CAPTURE_SAMPLES {
        std::fs::write(captures.join(name), bytes)
            .with_context(|| format!("cannot write {}", captures.join(name).display()))?;
    }
    let sensor = weir_parsers::sensor::SensorConfig::default();
    let expected_capture_events = capture_events(sensor);
    let key = DiodeKey::generate(1)?;
    key.write(&key_path)?;
    let diode = DiodeConfig {
        mtu_bytes: 1500,
        codec: Codec::Zstd(1),
        max_block_bytes: 256 * 1024,
        cipher: weir_diode_proto::Cipher::default(),
        key,
    };
    let rx = pipeline::rx::start(RxConfig {
        diode: diode.clone(),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        receive_buffer_bytes: 4 * 1024 * 1024,
        receive_offload: true,
        metrics_listen: None,
        reorder_timeout: Duration::from_millis(500),
        max_pending_bytes: 64 << 20,
        max_pending_blocks: 65_536,
        agents: None,
        max_sessions: 256,
        state_dir: dir.join("state").join("rx"),
        queue_blocks: 4096,
        queue_max_bytes: 256 << 20,
        additional_keys: Vec::new(),
        sinks: vec![SinkConfig::File {
            name: "demo-file".into(),
            classes: EventClass::ALL.to_vec(),
            file: weir_integrations::file::FileSinkConfig {
                path: events_path.clone(),
                max_bytes: 0,
                max_files: 0,
            },
        }],
    })
    .await?;
    let tx = pipeline::tx::start(TxConfig {
        agent_name: "weir-demo".into(),
        state_dir: dir.join("state").join("tx"),
        diode,
        destination: rx.local_addr,
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        link_rate_bits_per_second: 1_000_000_000,
        link_burst: crate::diode::tx::Pacing::DEFAULT_BURST,
        heartbeat_interval: Duration::from_millis(250),
        linger: Duration::from_millis(20),
        queue_events: 65_536,
        send_buffer_bytes: 4 * 1024 * 1024,
        fec_repair_percent: 10,
        fec_expected_loss_percent: 1.0,
        fec_interleave_blocks: 1,
        segmentation_offload: true,
        metrics_listen: None,
        spool: None,
        evtx_sources: Vec::new(),
        wec_sources: Vec::new(),
        capture_sources: vec![crate::config::CaptureSource {
            name: "demo-captures".into(),
            from: crate::config::CaptureFrom::Files(captures.clone()),
            sensor,
            stats_interval: Duration::from_secs(60),
            oui_file: None,
            state_dir: dir.join("state"),
        }],
        sources: vec![
            source("demo-tcp", Transport::Tcp, Format::Syslog),
            source("demo-udp", Transport::Udp, Format::Syslog),
            source("demo-windows", Transport::Tcp, Format::WindowsJson),
        ],
    })
    .await?;
    let addr = |name: &str| tx.sources.iter().find(|(n, _)| n == name).map(|(_, a)| *a);
    let (Some(tcp_addr), Some(udp_addr), Some(win_addr)) =
        (addr("demo-tcp"), addr("demo-udp"), addr("demo-windows"))
    else {
        bail!("demo sources did not start");
    };

    // Replay: TCP with RFC 6587 octet counting, UDP one datagram per line.
    let mut tcp = tokio::net::TcpStream::connect(tcp_addr).await?;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let mut sent = 0u64;
    for _ in 0..repeat {
        for (_, text, transport) in SAMPLES {
            for line in text.lines().filter(|l| !l.is_empty()) {
                match transport {
                    Transport::Tcp | Transport::Http => {
                        tcp.write_all(format!("{} {line}", line.len()).as_bytes())
                            .await?;
                    }
                    Transport::Udp => {
                        udp.send_to(line.as_bytes(), udp_addr).await?;
                        // Loopback UDP has no flow control: keep the pace a device would.
                        if sent.is_multiple_of(64) {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
                sent += 1;
            }
        }
    }
    tcp.shutdown().await?;
    // Windows events, one JSON object per line, as NXLog's om_tcp sends them.
    let mut win = tokio::net::TcpStream::connect(win_addr).await?;
    for _ in 0..repeat {
        for (_, text) in WINDOWS_JSON_SAMPLES {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                win.write_all(line.as_bytes()).await?;
                win.write_all(b"\n").await?;
                sent += 1;
            }
        }
    }
    win.shutdown().await?;

    // Events of the classes the sources produce (the receiver adds `weir` events of its own).
    let fed = |s: &crate::telemetry::TxStats| -> u64 {
        EventClass::ALL
            .into_iter()
            .filter(|c| *c != EventClass::Weir)
            .map(|c| s.events_received.of(c).get())
            .sum()
    };
    let delivered = |s: &crate::telemetry::RxStats| -> u64 {
        EventClass::ALL
            .into_iter()
            .filter(|c| *c != EventClass::Weir)
            .map(|c| s.events_sent.of(c).get())
            .sum()
    };
    // Wait for the agent to have read everything, and for the receiver to have written it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && (tx.stats.events_received.total() + tx.stats.dropped_total()
            < sent + expected_capture_events
            || delivered(&rx.stats) < fed(&tx.stats))
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (txs, rxs) = (tx.stats.clone(), rx.stats.clone());
    let session = tx.session;
    tx.shutdown().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    rx.shutdown().await?;

    let lines = std::fs::read_to_string(&events_path)
        .with_context(|| format!("cannot read {}", events_path.display()))?
        .lines()
        .count() as u64;
    println!(
        "Weir demo: {} sample records (syslog lines, Windows JSON events) and {} packet captures ({} packets) replayed through the diode on loopback",
        sent,
        CAPTURE_SAMPLES.len(),
        txs.capture_packets.get()
    );
    println!("  diode session       {session:016x}");
    println!("  {:<18} {:>10} {:>10}", "class", "in (tx)", "out (rx)");
    for class in EventClass::ALL {
        let (i, o) = (
            txs.events_received.of(class).get(),
            rxs.events_sent.of(class).get(),
        );
        if i > 0 || o > 0 {
            println!("  {:<18} {:>10} {:>10}", class.as_str(), i, o);
        }
    }
    println!("  raw (unparsed)      {:>9}", txs.parse_errors.get());
    println!("  dropped before diode{:>9}", txs.dropped_total());
    println!(
        "  datagrams sent      {:>9} ({} bytes)",
        txs.datagrams_sent.get(),
        txs.bytes_sent.get()
    );
    println!("  datagrams received  {:>9}", rxs.datagrams_received.get());
    println!("  datagrams rejected  {:>9}", rxs.rejected_total());
    println!(
        "  gaps                {:>9} ({} records lost)",
        rxs.gaps.get(),
        rxs.records_lost.get()
    );
    println!(
        "  elapsed             {:>8.2}s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "  events written to   {} ({lines} lines)",
        events_path.display()
    );
    println!(
        "  from captures       {:>9} events ({} expected), {} flows, {} OT transactions",
        txs.events_received.total() - sent.min(txs.events_received.total()),
        expected_capture_events,
        txs.flows_created.get(),
        txs.ot_transactions.get()
    );
    let complete = fed(&txs) == delivered(&rxs)
        && txs.events_received.total() == sent + expected_capture_events
        && rxs.gaps.get() == 0;
    if complete {
        println!("OK: every event that went in came out.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("INCOMPLETE: see the counts above.");
        Ok(ExitCode::from(1))
    }
}
