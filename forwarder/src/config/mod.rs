/*!
Configuration: TOML on disk ([`raw`]), validated types in memory (this module).

"Parse, don't validate": [`raw`] mirrors the file with `deny_unknown_fields`, so a typo is an
error naming the key; [`load`] turns it into [`TxConfig`] / [`RxConfig`], resolving addresses,
time zones and key files, so the pipelines never see an unchecked value. Keys carry their units
(`_bytes`, `_milliseconds`, `_bits_per_second`).

The `[diode]` table holds what both sides must agree on. Its fingerprint travels in every
heartbeat so that a mismatch is reported by the receiver instead of showing up as silent loss.
*/

pub mod key;
pub mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use chrono_tz::Tz;
use weir_diode_proto::{Cipher, Codec};
use weir_schemas::EventClass;

pub use key::DiodeKey;

/// The diode settings shared by both sides.
#[derive(Clone, Debug)]
pub struct DiodeConfig {
    /// Link MTU.
    pub mtu_bytes: usize,
    /// Block compression.
    pub codec: Codec,
    /// Largest block (records area), and so the largest record.
    pub max_block_bytes: usize,
    /// The AEAD the agent seals with (receivers accept both).
    pub cipher: Cipher,
    /// The pre-shared key.
    pub key: DiodeKey,
}

impl DiodeConfig {
    /// Fingerprint of the settings that must match on both sides (not the key: its id is
    /// already in every header).
    pub fn fingerprint(&self) -> u64 {
        weir_diode_proto::fingerprint(&[
            ("protocol", "1".into()),
            ("mtu_bytes", self.mtu_bytes.to_string()),
            ("compression", format!("{:?}", self.codec)),
            ("max_block_bytes", self.max_block_bytes.to_string()),
        ])
    }
}

/// How to treat a syslog frame longer than the configured maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oversize {
    /// Keep the first `max` bytes as a raw event tagged `frame_too_long`.
    Truncate,
    /// Drop it and count it.
    Drop,
}

/// One syslog input.
#[derive(Clone, Debug, PartialEq)]
pub struct SyslogSource {
    /// The input's name: its diode stream and `weir.stream`.
    pub name: String,
    /// UDP or TCP.
    pub transport: Transport,
    /// What the messages are.
    pub format: Format,
    /// Listen address.
    pub address: SocketAddr,
    /// Zone for timestamps without offset.
    pub timezone: Tz,
    /// Largest message (UDP datagram or TCP frame).
    pub max_message_bytes: usize,
    /// What to do with longer TCP frames.
    pub oversize: Oversize,
    /// TCP connections accepted at once.
    pub max_connections: usize,
    /// TCP connections accepted at once from one peer address.
    pub max_connections_per_address: usize,
    /// A TCP connection is closed after this long without a byte (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// HTTP: a request body must be complete within this long.
    pub body_timeout: Duration,
    /// HTTP: request body bytes held at once, over all connections.
    pub max_inflight_body_bytes: usize,
    /// Keep the raw line in `event.original`.
    pub keep_original: bool,
    /// UDP socket receive buffer to request.
    pub receive_buffer_bytes: Option<usize>,
}

/// An `evtx_directory` source.
#[derive(Clone, Debug, PartialEq)]
pub struct EvtxSource {
    /// The input's name: its diode stream, `weir.stream` and bookmark file.
    pub name: String,
    /// The directory watched for `*.evtx` files.
    pub directory: PathBuf,
    /// Where the bookmark file is kept.
    pub state_dir: PathBuf,
    /// How often the directory is looked at.
    pub poll_interval: Duration,
    /// Keep the record's XML in `event.original`.
    pub keep_original: bool,
}

/// A `wec` source: the Windows Event Collector endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct WecSource {
    /// The input's name: its diode stream, `weir.stream` and bookmark file.
    pub name: String,
    /// Listen address.
    pub address: SocketAddr,
    /// The collector's DNS name as clients reach it.
    pub hostname: String,
    /// The port in the delivery addresses handed out.
    pub public_port: Option<u16>,
    /// The collector's certificate chain (PEM file).
    pub server_certificate: PathBuf,
    /// Its key (PEM file).
    pub server_key: PathBuf,
    /// CA certificates that issue client certificates (PEM file).
    pub client_ca: PathBuf,
    /// Where `<name>.wec-bookmarks.json` is kept.
    pub state_dir: PathBuf,
    /// `Heartbeats` asked of clients.
    pub heartbeat: Duration,
    /// `MaxTime` asked of clients.
    pub max_latency: Duration,
    /// `MaxEnvelopeSize`.
    pub max_envelope_bytes: u32,
    /// Connections at once.
    pub max_connections: usize,
    /// Connections at once from one peer address.
    pub max_connections_per_address: usize,
    /// A connection is closed after this long without a byte (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Hosts not heard from for this long are forgotten.
    pub bookmark_retention: Duration,
    /// Bookmarks of at most this many (subscription, host) pairs.
    pub max_hosts: usize,
    /// Keep each event's XML in `event.original`.
    pub keep_original: bool,
    /// Offer SLDC compression.
    pub compression: bool,
    /// `RenderedText` or `Raw`.
    pub content_format: String,
    /// Silent hosts are reported gone after this long.
    pub host_gone: Duration,
    /// The subscriptions offered.
    pub subscriptions: Vec<WecSubscription>,
}

/// One subscription of a `wec` source.
#[derive(Clone, Debug, PartialEq)]
pub struct WecSubscription {
    /// Its name.
    pub name: String,
    /// The `QueryList` document.
    pub query: String,
    /// `ReadExistingEvents`.
    pub read_existing_events: bool,
    /// `MaxElements`.
    pub max_items: Option<u32>,
}

/// A `span` (live) or `capture_file` source.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptureSource {
    /// The input's name: its diode stream and `weir.stream`.
    pub name: String,
    /// Where packets come from.
    pub from: CaptureFrom,
    /// Flow table, protocol parsing and summaries.
    pub sensor: weir_parsers::sensor::SensorConfig,
    /// How often capture statistics are read and drops reported (live capture).
    pub stats_interval: Duration,
    /// The IEEE OUI registry file, if any.
    pub oui_file: Option<PathBuf>,
    /// Where `<name>.baseline.json` is kept.
    pub state_dir: PathBuf,
}

/// Where a capture source's packets come from.
#[derive(Clone, Debug, PartialEq)]
pub enum CaptureFrom {
    /// A live interface through libpcap.
    Live {
        /// Interface name.
        interface: String,
        /// BPF filter.
        bpf_filter: Option<String>,
        /// Snap length.
        snaplen: u32,
        /// Promiscuous mode.
        promiscuous: bool,
        /// Kernel buffer size.
        buffer_bytes: u32,
    },
    /// A capture file, or a directory of them (read in name order).
    Files(PathBuf),
}

/// What a source's messages are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Syslog (RFC 5424 / 3164 and device variants; Snare records inside become Windows events).
    Syslog,
    /// One Windows event per line as JSON: NXLog, Winlogbeat or OpenWEC shape.
    WindowsJson,
}

/// A source's transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// One message per datagram.
    Udp,
    /// RFC 6587: octet counting or newline framing, detected per connection.
    Tcp,
    /// HTTP/1.1 POST bodies.
    Http,
}

/// The OT-side agent.
#[derive(Clone, Debug)]
pub struct TxConfig {
    /// `weir.agent`.
    pub agent_name: String,
    /// Where the agent keeps its boot counter.
    pub state_dir: PathBuf,
    /// Shared diode settings.
    pub diode: DiodeConfig,
    /// Where datagrams go.
    pub destination: SocketAddr,
    /// Local address to send from.
    pub bind: SocketAddr,
    /// Pacing rate, on-wire bits per second.
    pub link_rate_bits_per_second: u64,
    /// The pacer's bucket depth: the longest burst at line rate after the sender was held up.
    pub link_burst: Duration,
    /// Heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Longest a record waits for its block to fill.
    pub linger: Duration,
    /// Events queued between sources and the diode.
    pub queue_events: usize,
    /// Socket send buffer to request.
    pub send_buffer_bytes: usize,
    /// FEC repair symbols per block, percent of its source symbols (0: off).
    pub fec_repair_percent: u32,
    /// Random loss (percent) every block's repair is sized for (0: the percentage alone).
    pub fec_expected_loss_percent: f64,
    /// Interleave the symbols of up to this many queued blocks (1: off).
    pub fec_interleave_blocks: usize,
    /// Send runs of equal-sized datagrams with UDP GSO.
    pub segmentation_offload: bool,
    /// Inputs.
    pub sources: Vec<SyslogSource>,
    /// `[[sources]]` of type `evtx_directory`.
    pub evtx_sources: Vec<EvtxSource>,
    /// `span` and `capture_file` sources.
    pub capture_sources: Vec<CaptureSource>,
    /// `wec` sources.
    pub wec_sources: Vec<WecSource>,
    /// Where `/metrics` and `/health` are served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The on-disk spool, if configured.
    pub spool: Option<crate::spool::SpoolConfig>,
}

/// Which classes a sink takes.
pub type ClassFilter = Vec<EventClass>;

/// One IT-side output.
#[derive(Clone, Debug)]
pub enum SinkConfig {
    /// NDJSON file with rotation.
    File {
        /// Sink name.
        name: String,
        /// Classes routed to it.
        classes: ClassFilter,
        /// Settings.
        file: weir_integrations::file::FileSinkConfig,
    },
    /// NDJSON on stdout.
    Stdout {
        /// Sink name.
        name: String,
        /// Classes routed to it.
        classes: ClassFilter,
    },
    /// A SIEM behind the shared driver and a disk buffer.
    Siem(Box<SiemSink>),
}

/// A SIEM sink's settings.
#[derive(Clone, Debug)]
pub struct SiemSink {
    /// Sink name.
    pub name: String,
    /// Classes routed to it.
    pub classes: ClassFilter,
    /// Batching, retries, concurrency, dead-letter file.
    pub driver: weir_integrations::driver::DriverConfig,
    /// Its disk buffer's directory.
    pub buffer_path: PathBuf,
    /// Its disk buffer's bounds.
    pub buffer: weir_integrations::buffer::Config,
    /// Which SIEM.
    pub kind: SiemKind,
}

/// Which SIEM, with its own settings.
#[derive(Clone, Debug)]
pub enum SiemKind {
    /// Splunk HTTP Event Collector.
    SplunkHec(weir_integrations::hec::HecConfig),
    /// Elasticsearch `_bulk`.
    Elasticsearch(weir_integrations::elasticsearch::EsConfig),
    /// Kafka.
    Kafka(weir_integrations::kafka::KafkaConfig),
}

impl SinkConfig {
    /// The classes routed to this sink.
    pub fn classes(&self) -> &ClassFilter {
        match self {
            SinkConfig::File { classes, .. } | SinkConfig::Stdout { classes, .. } => classes,
            SinkConfig::Siem(s) => &s.classes,
        }
    }
}

/// The IT-side receiver.
#[derive(Clone, Debug)]
pub struct RxConfig {
    /// Shared diode settings.
    pub diode: DiodeConfig,
    /// Where datagrams arrive.
    pub listen: SocketAddr,
    /// Socket receive buffer to request.
    pub receive_buffer_bytes: usize,
    /// Let the kernel coalesce datagrams (UDP GRO).
    pub receive_offload: bool,
    /// How long a missing block is waited for.
    pub reorder_timeout: Duration,
    /// Bytes of incomplete blocks held at most.
    pub max_pending_bytes: usize,
    /// Incomplete blocks held at most.
    pub max_pending_blocks: usize,
    /// Agents accepted by name (`None`: any).
    pub agents: Option<Vec<String>>,
    /// Agent sessions held at once.
    pub max_sessions: usize,
    /// Where the receiver keeps its state (sessions, positions) and its buffers.
    pub state_dir: PathBuf,
    /// Blocks queued between the diode and the sinks; overflow is dropped and counted.
    pub queue_blocks: usize,
    /// Bytes of decoded records queued for the sinks at most; overflow is dropped and counted.
    pub queue_max_bytes: usize,
    /// Keys accepted besides `diode.key` during a rotation.
    pub additional_keys: Vec<DiodeKey>,
    /// Outputs.
    pub sinks: Vec<SinkConfig>,
    /// Where `/metrics` and `/health` are served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

/// A loaded configuration of either side.
#[derive(Clone, Debug)]
pub enum Config {
    /// `weir tx`.
    Tx(TxConfig),
    /// `weir rx`.
    Rx(RxConfig),
}

/// Load and validate a config file; the side is told by its `[tx]` or `[rx]` table.
pub fn load(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base).with_context(|| format!("invalid config file {}", path.display()))
}

/// Parse and validate config text; relative paths are resolved against `base`.
pub fn parse(text: &str, base: &Path) -> Result<Config> {
    let value: toml::Table = toml::from_str(text).map_err(|e| anyhow!("{}", e.message().trim()))?;
    let strict = |e: toml::de::Error| anyhow!("{}", e.to_string().trim());
    match (value.contains_key("tx"), value.contains_key("rx")) {
        (true, false) => tx(toml::from_str(text).map_err(strict)?, base).map(Config::Tx),
        (false, true) => rx(toml::from_str(text).map_err(strict)?, base).map(Config::Rx),
        (true, true) => bail!("a config file is for one side: it has both [tx] and [rx]"),
        (false, false) => bail!("missing [tx] (OT-side agent) or [rx] (IT-side receiver) table"),
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

fn address(what: &str, text: &str) -> Result<SocketAddr> {
    text.parse().map_err(|_| {
        anyhow!(
            "{what}: {text:?} is not an IP:port address (e.g. \"127.0.0.1:514\" or \"[::1]:514\")"
        )
    })
}

fn diode(raw: raw::Diode, base: &Path) -> Result<DiodeConfig> {
    let codec = match raw.compression.as_str() {
        "zstd" => Codec::Zstd(raw.compression_level),
        "none" => Codec::None,
        other => bail!("diode.compression: {other:?} is not one of \"zstd\", \"none\""),
    };
    if !(576..=65535).contains(&raw.mtu_bytes) {
        bail!("diode.mtu_bytes: {} is outside 576..=65535", raw.mtu_bytes);
    }
    if !(4096..=64 * 1024 * 1024).contains(&raw.max_block_bytes) {
        bail!(
            "diode.max_block_bytes: {} is outside 4096..=67108864",
            raw.max_block_bytes
        );
    }
    let cipher = match raw.cipher.as_str() {
        "aes-256-gcm" => Cipher::Aes256Gcm,
        "chacha20-poly1305" => Cipher::ChaCha20Poly1305,
        other => {
            bail!("diode.cipher: {other:?} is not one of \"aes-256-gcm\", \"chacha20-poly1305\"")
        }
    };
    let key_path = resolve(base, &raw.key_file);
    let key = DiodeKey::load(&key_path).with_context(|| "diode.key_file".to_string())?;
    Ok(DiodeConfig {
        mtu_bytes: raw.mtu_bytes,
        codec,
        max_block_bytes: raw.max_block_bytes,
        cipher,
        key,
    })
}

fn classes(raw: Option<Vec<String>>) -> Result<ClassFilter> {
    match raw {
        None => Ok(EventClass::ALL.to_vec()),
        Some(names) => names
            .iter()
            .map(|n| {
                EventClass::ALL
                    .into_iter()
                    .find(|c| c.as_str() == n)
                    .ok_or_else(|| anyhow!("unknown event class {n:?} (known: syslog, windows, flow, ot, asset, notable, weir)"))
            })
            .collect(),
    }
}

/// Debian's `ieee-data` package's OUI registry.
pub const DEBIAN_OUI: &str = "/usr/share/ieee-data/oui.csv";

fn capture(
    i: usize,
    c: raw::CaptureSource,
    live: bool,
    base: &Path,
    names: &mut std::collections::HashSet<String>,
) -> Result<CaptureSource> {
    use weir_parsers::packet::flow::FlowConfig;
    use weir_parsers::sensor::SensorConfig;
    let name = c.name.unwrap_or_else(|| format!("source-{i}"));
    if !names.insert(name.clone()) {
        bail!("sources: the name {name:?} is used twice");
    }
    let what = format!("sources[{i}] ({name})");
    let from = if live {
        if c.path.is_some() {
            bail!(
                "{what}: `path` belongs to capture_file sources; a span source takes `interface`"
            );
        }
        let interface = c.interface.filter(|s| !s.is_empty()).ok_or_else(|| {
            anyhow!("{what}.interface: missing (the SPAN or tap interface, e.g. \"eth1\")")
        })?;
        if !(64..=262_144).contains(&c.snaplen) {
            bail!("{what}.snaplen: {} is outside 64..=262144", c.snaplen);
        }
        CaptureFrom::Live {
            interface,
            bpf_filter: c.bpf_filter.filter(|f| !f.trim().is_empty()),
            snaplen: c.snaplen,
            promiscuous: c.promiscuous,
            buffer_bytes: c.buffer_bytes,
        }
    } else {
        if c.interface.is_some() || c.bpf_filter.is_some() {
            bail!("{what}: `interface` and `bpf_filter` belong to span sources; capture_file takes `path`");
        }
        let path = c.path.ok_or_else(|| {
            anyhow!("{what}.path: missing (a pcap/pcapng file or a directory of them)")
        })?;
        CaptureFrom::Files(resolve(base, &path))
    };
    let secs = |key: &str, v: u64, min: u64| -> Result<i64> {
        if v < min || v > 86_400 * 7 {
            bail!("{what}.{key}: {v} is outside {min}..=604800");
        }
        Ok(v as i64 * 1_000_000_000)
    };
    if !(1..=16_777_216).contains(&c.max_flows) {
        bail!("{what}.max_flows: {} is outside 1..=16777216", c.max_flows);
    }
    let flow = FlowConfig {
        tcp_idle: secs("tcp_idle_seconds", c.tcp_idle_seconds, 1)?,
        udp_idle: secs("udp_idle_seconds", c.udp_idle_seconds, 1)?,
        other_idle: secs("other_idle_seconds", c.other_idle_seconds, 1)?,
        active_timeout: secs("active_timeout_seconds", c.active_timeout_seconds, 0)?,
        max_flows: c.max_flows,
        community_id_seed: c.community_id_seed,
        ..FlowConfig::default()
    };
    Ok(CaptureSource {
        name,
        from,
        sensor: SensorConfig {
            flow,
            read_summary: secs("read_summary_seconds", c.read_summary_seconds, 0)?,
            flows: c.flows,
            assets: c.assets,
            baseline_learning: if c.baseline_learning_seconds > 366 * 86_400 {
                bail!(
                    "{what}.baseline_learning_seconds: {} is over a year",
                    c.baseline_learning_seconds
                )
            } else {
                c.baseline_learning_seconds as i64 * 1_000_000_000
            },
        },
        oui_file: match c.oui_file {
            Some(f) => Some(resolve(base, &f)),
            None => Some(PathBuf::from(DEBIAN_OUI)).filter(|p| p.exists()),
        },
        state_dir: resolve(base, c.state_dir.as_deref().unwrap_or("state")),
        stats_interval: Duration::from_secs(
            secs("stats_interval_seconds", c.stats_interval_seconds, 1)? as u64 / 1_000_000_000,
        ),
    })
}

fn wec(
    i: usize,
    w: raw::WecSource,
    base: &Path,
    names: &mut std::collections::HashSet<String>,
) -> Result<WecSource> {
    let name = w.name.unwrap_or_else(|| format!("source-{i}"));
    if !names.insert(name.clone()) {
        bail!("sources: the name {name:?} is used twice");
    }
    let what = format!("sources[{i}] ({name})");
    if w.hostname.trim().is_empty() || w.hostname.contains(['/', ':', ' ']) {
        bail!(
            "{what}.hostname: {:?} is not a DNS name (the name clients reach the collector by, as in its certificate)",
            w.hostname
        );
    }
    if !(1..=86_400).contains(&w.heartbeat_seconds) {
        bail!(
            "{what}.heartbeat_seconds: {} is outside 1..=86400",
            w.heartbeat_seconds
        );
    }
    if !(1..=86_400).contains(&w.max_latency_seconds) {
        bail!(
            "{what}.max_latency_seconds: {} is outside 1..=86400",
            w.max_latency_seconds
        );
    }
    if !(8_192..=16_777_216).contains(&w.max_envelope_bytes) {
        bail!(
            "{what}.max_envelope_bytes: {} is outside 8192..=16777216",
            w.max_envelope_bytes
        );
    }
    if w.content_format != "RenderedText" && w.content_format != "Raw" {
        bail!(
            "{what}.content_format: {:?} is not \"RenderedText\" or \"Raw\"",
            w.content_format
        );
    }
    let silent = 2 * w.heartbeat_seconds + w.max_latency_seconds;
    if w.host_gone_seconds <= silent {
        bail!(
            "{what}.host_gone_seconds: {} must be above the silence threshold (2 x heartbeat_seconds + max_latency_seconds = {silent})",
            w.host_gone_seconds
        );
    }
    if w.max_connections == 0 {
        bail!("{what}.max_connections must be at least 1");
    }
    if w.subscriptions.is_empty() {
        bail!("{what}: no [[sources.subscriptions]]: clients would be offered nothing");
    }
    let mut subs = Vec::new();
    let mut sub_names = std::collections::HashSet::new();
    for (j, s) in w.subscriptions.into_iter().enumerate() {
        let swhat = format!("{what}.subscriptions[{j}] ({})", s.name);
        if s.name.trim().is_empty() {
            bail!("{what}.subscriptions[{j}].name is empty");
        }
        if !sub_names.insert(s.name.clone()) {
            bail!("{what}.subscriptions: the name {:?} is used twice", s.name);
        }
        let query = match (s.channels, s.query) {
            (Some(channels), None) => {
                if channels.is_empty() || channels.iter().any(|c| c.trim().is_empty()) {
                    bail!("{swhat}.channels: give at least one channel name, none empty");
                }
                weir_parsers::wsman::query_for_channels(&channels)
            }
            (None, Some(query)) => query.trim().to_owned(),
            _ => bail!("{swhat}: give either channels or query (one of them)"),
        };
        weir_parsers::wsman::check_query(&query).map_err(|e| anyhow!("{swhat}.query: {e}"))?;
        if s.max_items == Some(0) {
            bail!("{swhat}.max_items must be at least 1");
        }
        subs.push(WecSubscription {
            name: s.name,
            query,
            read_existing_events: s.read_existing_events,
            max_items: s.max_items,
        });
    }
    Ok(WecSource {
        address: address(&format!("{what}.address"), &w.address)?,
        hostname: w.hostname.trim().to_owned(),
        public_port: w.public_port,
        server_certificate: resolve(base, &w.server_certificate),
        server_key: resolve(base, &w.server_key),
        client_ca: resolve(base, &w.client_ca),
        state_dir: resolve(base, w.state_dir.as_deref().unwrap_or("state")),
        heartbeat: Duration::from_secs(w.heartbeat_seconds),
        max_latency: Duration::from_secs(w.max_latency_seconds),
        max_envelope_bytes: w.max_envelope_bytes,
        max_connections: w.max_connections,
        max_connections_per_address: w
            .max_connections_per_address
            .unwrap_or((w.max_connections / 4).max(1))
            .max(1),
        idle_timeout: (w.idle_timeout_seconds > 0)
            .then(|| Duration::from_secs(w.idle_timeout_seconds)),
        bookmark_retention: Duration::from_secs(w.bookmark_retention_days.clamp(1, 3650) * 86_400),
        max_hosts: w.max_hosts.max(1),
        keep_original: w.keep_original,
        compression: w.compression,
        content_format: w.content_format,
        host_gone: Duration::from_secs(w.host_gone_seconds),
        subscriptions: subs,
        name,
    })
}

fn tx(raw: raw::TxFile, base: &Path) -> Result<TxConfig> {
    let t = raw.tx;
    let mut names = std::collections::HashSet::new();
    let mut sources = Vec::new();
    let mut evtx_sources = Vec::new();
    let mut capture_sources = Vec::new();
    let mut wec_sources = Vec::new();
    for (i, s) in raw.sources.into_iter().enumerate() {
        let (transport, s) = match s {
            raw::Source::Wec(w) => {
                wec_sources.push(wec(i, w, base, &mut names)?);
                continue;
            }
            raw::Source::Span(c) => {
                capture_sources.push(capture(i, c, true, base, &mut names)?);
                continue;
            }
            raw::Source::CaptureFile(c) => {
                capture_sources.push(capture(i, c, false, base, &mut names)?);
                continue;
            }
            raw::Source::EvtxDirectory(e) => {
                let name = e.name.unwrap_or_else(|| format!("source-{i}"));
                if !names.insert(name.clone()) {
                    bail!("sources: the name {name:?} is used twice");
                }
                if !(50..=3_600_000).contains(&e.poll_interval_milliseconds) {
                    bail!(
                        "sources[{i}] ({name}).poll_interval_milliseconds: {} is outside 50..=3600000",
                        e.poll_interval_milliseconds
                    );
                }
                evtx_sources.push(EvtxSource {
                    directory: resolve(base, &e.path),
                    state_dir: resolve(base, e.state_dir.as_deref().unwrap_or("state")),
                    poll_interval: Duration::from_millis(e.poll_interval_milliseconds),
                    keep_original: e.keep_original,
                    name,
                });
                continue;
            }
            raw::Source::SyslogUdp(s) => ((Transport::Udp, Format::Syslog), s),
            raw::Source::SyslogTcp(s) => ((Transport::Tcp, Format::Syslog), s),
            raw::Source::WindowsJsonTcp(s) => ((Transport::Tcp, Format::WindowsJson), s),
            raw::Source::WindowsJsonHttp(s) => ((Transport::Http, Format::WindowsJson), s),
        };
        let (transport, format) = transport;
        let name = s.name.unwrap_or_else(|| format!("source-{i}"));
        if !names.insert(name.clone()) {
            bail!("sources: the name {name:?} is used twice");
        }
        let what = format!("sources[{i}] ({name})");
        let timezone: Tz = s.timezone.parse().map_err(|_| {
            anyhow!(
                "{what}.timezone: {:?} is not an IANA time zone (e.g. \"Europe/Berlin\", \"UTC\")",
                s.timezone
            )
        })?;
        let oversize = match s.oversize.as_str() {
            "truncate" => Oversize::Truncate,
            "drop" => Oversize::Drop,
            other => bail!("{what}.oversize: {other:?} is not \"truncate\" or \"drop\""),
        };
        if s.max_message_bytes < 480 {
            bail!(
                "{what}.max_message_bytes: {} is below 480 (RFC 3164's minimum)",
                s.max_message_bytes
            );
        }
        if s.max_connections == 0 || s.max_connections_per_address == Some(0) {
            bail!("{what}: max_connections and max_connections_per_address must be at least 1");
        }
        if s.max_inflight_body_bytes < super::sources::windows_http::MAX_BODY {
            bail!(
                "{what}.max_inflight_body_bytes: {} is below one whole body ({} bytes)",
                s.max_inflight_body_bytes,
                super::sources::windows_http::MAX_BODY
            );
        }
        let idle_default = if transport == Transport::Http {
            60
        } else {
            600
        };
        sources.push(SyslogSource {
            address: address(&format!("{what}.address"), &s.address)?,
            name,
            transport,
            format,
            timezone,
            max_message_bytes: s.max_message_bytes,
            oversize,
            max_connections: s.max_connections,
            max_connections_per_address: s
                .max_connections_per_address
                .unwrap_or((s.max_connections / 4).max(1)),
            idle_timeout: match s.idle_timeout_seconds.unwrap_or(idle_default) {
                0 => None,
                n => Some(Duration::from_secs(n)),
            },
            body_timeout: Duration::from_secs(s.body_timeout_seconds.max(1)),
            max_inflight_body_bytes: s.max_inflight_body_bytes,
            keep_original: s.keep_original,
            receive_buffer_bytes: s.receive_buffer_bytes,
        });
    }
    if sources.is_empty()
        && evtx_sources.is_empty()
        && capture_sources.is_empty()
        && wec_sources.is_empty()
    {
        bail!("no [[sources]]: the agent would have nothing to send");
    }
    let diode = diode(raw.diode, base)?;
    for s in &sources {
        if s.max_message_bytes * 2 + 4096 > diode.max_block_bytes {
            bail!(
                "sources ({}): max_message_bytes {} does not fit diode.max_block_bytes {} (a record is the message plus its JSON event)",
                s.name, s.max_message_bytes, diode.max_block_bytes
            );
        }
    }
    if t.link_rate_bits_per_second < 1_000_000 {
        bail!(
            "tx.link_rate_bits_per_second: {} is below 1 Mb/s",
            t.link_rate_bits_per_second
        );
    }
    if !(1..=100).contains(&t.link_burst_milliseconds) {
        bail!(
            "tx.link_burst_milliseconds: {} is not between 1 and 100",
            t.link_burst_milliseconds
        );
    }
    if !(1..=64).contains(&t.fec_interleave_blocks) {
        bail!(
            "tx.fec_interleave_blocks: {} is not between 1 and 64",
            t.fec_interleave_blocks
        );
    }
    if t.fec_repair_percent > 400 {
        bail!(
            "tx.fec_repair_percent: {} is above 400",
            t.fec_repair_percent
        );
    }
    if !(0.0..=weir_diode_proto::sender::MAX_EXPECTED_LOSS_PERCENT)
        .contains(&t.fec_expected_loss_percent)
    {
        bail!(
            "tx.fec_expected_loss_percent: {} is not between 0 and {}",
            t.fec_expected_loss_percent,
            weir_diode_proto::sender::MAX_EXPECTED_LOSS_PERCENT
        );
    }
    if t.queue_events == 0 {
        bail!("tx.queue_events must be at least 1");
    }
    let name_len = raw.agent.name.len();
    if name_len == 0 || name_len > weir_diode_proto::heartbeat::MAX_AGENT_NAME {
        bail!(
            "agent.name must be 1 to {} bytes (it names the agent's sessions on the diode)",
            weir_diode_proto::heartbeat::MAX_AGENT_NAME
        );
    }
    Ok(TxConfig {
        state_dir: resolve(base, t.state_dir.as_deref().unwrap_or("state")),
        agent_name: raw.agent.name,
        diode,
        destination: address("tx.destination", &t.destination)?,
        bind: address("tx.bind", &t.bind)?,
        link_rate_bits_per_second: t.link_rate_bits_per_second,
        link_burst: Duration::from_millis(t.link_burst_milliseconds),
        heartbeat_interval: Duration::from_millis(t.heartbeat_interval_milliseconds.max(10)),
        linger: Duration::from_millis(t.linger_milliseconds),
        queue_events: t.queue_events,
        send_buffer_bytes: t.send_buffer_bytes,
        fec_repair_percent: t.fec_repair_percent,
        fec_expected_loss_percent: t.fec_expected_loss_percent,
        fec_interleave_blocks: t.fec_interleave_blocks,
        segmentation_offload: t.segmentation_offload,
        sources,
        evtx_sources,
        capture_sources,
        wec_sources,
        metrics_listen: metrics_listen(raw.metrics.as_ref())?,
        spool: raw.spool.map(|s| spool(s, base)).transpose()?,
    })
}

fn spool(s: raw::Spool, base: &Path) -> Result<crate::spool::SpoolConfig> {
    use weir_integrations::buffer::Overflow;
    let overflow = match s.overflow.as_str() {
        "drop_oldest" => Overflow::DropOldest,
        "drop_newest" => Overflow::DropNewest,
        other => bail!("spool.overflow: {other:?} is not \"drop_oldest\" or \"drop_newest\""),
    };
    if s.segment_bytes < 4096 || s.max_bytes < 2 * s.segment_bytes {
        bail!(
            "spool: segment_bytes must be at least 4096 and max_bytes at least two segments ({} and {})",
            s.segment_bytes,
            s.max_bytes
        );
    }
    let sync_every = match s.sync.as_str() {
        "always" => None,
        "interval" => Some(Duration::from_millis(
            s.sync_interval_milliseconds.clamp(10, 60_000),
        )),
        other => bail!("spool.sync: {other:?} is not \"interval\" or \"always\""),
    };
    Ok(crate::spool::SpoolConfig {
        path: resolve(base, &s.path),
        max_bytes: s.max_bytes,
        segment_bytes: s.segment_bytes,
        overflow,
        sync_every,
    })
}

fn driver_config(
    b: &raw::Batch,
    what: &str,
    dead_letter: PathBuf,
) -> Result<weir_integrations::driver::DriverConfig> {
    let d = weir_integrations::driver::DriverConfig::default();
    let c = weir_integrations::driver::DriverConfig {
        max_events: b.max_events.unwrap_or(d.max_events),
        max_bytes: b.max_bytes.unwrap_or(d.max_bytes),
        max_age: b
            .max_age_milliseconds
            .map_or(d.max_age, Duration::from_millis),
        concurrency: b.concurrency.unwrap_or(d.concurrency),
        dead_letter: Some(dead_letter),
        ..d
    };
    if c.max_events == 0 || c.concurrency == 0 || c.concurrency > 64 {
        bail!("{what}.batch: max_events must be at least 1 and concurrency between 1 and 64");
    }
    Ok(c)
}

fn sink_buffer(
    b: &raw::SinkBuffer,
    what: &str,
    default_path: PathBuf,
    base: &Path,
) -> Result<(PathBuf, weir_integrations::buffer::Config)> {
    use weir_integrations::buffer::{Config as BufferConfig, Overflow};
    let overflow = match b.overflow.as_deref().unwrap_or("drop_oldest") {
        "drop_oldest" => Overflow::DropOldest,
        "drop_newest" => Overflow::DropNewest,
        other => {
            bail!("{what}.buffer.overflow: {other:?} is not \"drop_oldest\" or \"drop_newest\"")
        }
    };
    let max_bytes = b.max_bytes.unwrap_or(1 << 30);
    if max_bytes < 1 << 20 {
        bail!("{what}.buffer.max_bytes: {max_bytes} is below 1 MiB");
    }
    let path = b.path.as_deref().map_or(default_path, |p| resolve(base, p));
    Ok((
        path,
        BufferConfig {
            max_bytes,
            segment_bytes: (max_bytes / 16).clamp(64 << 10, 64 << 20),
            overflow,
        },
    ))
}

fn hec_sink(h: raw::HecSink, i: usize, base: &Path, state_dir: &Path) -> Result<SiemSink> {
    use weir_integrations::hec::{Endpoint, HecConfig, Metadata};
    let name = h.name.unwrap_or_else(|| format!("sink-{i}"));
    let what = format!("sinks.{name}");
    let token = key::read_secret(&resolve(base, &h.token_file))
        .with_context(|| format!("{what}.token_file"))?;
    let kind = match h.endpoint_kind.as_str() {
        "event" => Endpoint::Event,
        "raw" => Endpoint::Raw,
        other => bail!("{what}.endpoint_kind: {other:?} is not \"event\" or \"raw\""),
    };
    let gzip = match h.compression.as_str() {
        "gzip" => true,
        "none" => false,
        other => bail!("{what}.compression: {other:?} is not \"gzip\" or \"none\""),
    };
    if !(h.endpoint.starts_with("http://") || h.endpoint.starts_with("https://")) {
        bail!(
            "{what}.endpoint: {:?} is not an http:// or https:// URL",
            h.endpoint
        );
    }
    insecure_http(&what, &h.endpoint, h.allow_insecure_http, "the HEC token")?;
    let default = Metadata {
        index: h.index.clone().unwrap_or_default(),
        sourcetype: h
            .sourcetype
            .clone()
            .unwrap_or_else(|| "weir:{class}".into()),
        source: h.source.clone().unwrap_or_else(|| "weir:{agent}".into()),
        host: h.host.clone().unwrap_or_default(),
        send_original: false,
    };
    let mut metadata = vec![("*".to_owned(), default.clone())];
    for (class, m) in &h.class_metadata {
        if !EventClass::ALL.iter().any(|c| c.as_str() == class) {
            bail!("{what}.class_metadata: unknown event class {class:?}");
        }
        metadata.insert(
            0,
            (
                class.clone(),
                Metadata {
                    index: m.index.clone().unwrap_or_else(|| default.index.clone()),
                    sourcetype: m
                        .sourcetype
                        .clone()
                        .unwrap_or_else(|| default.sourcetype.clone()),
                    source: m.source.clone().unwrap_or_else(|| default.source.clone()),
                    host: m.host.clone().unwrap_or_else(|| default.host.clone()),
                    send_original: match m.event.as_deref() {
                        None | Some("json") => false,
                        Some("original") => true,
                        Some(other) => bail!(
                            "{what}.class_metadata.{class}.event: {other:?} is not \"json\" or \"original\""
                        ),
                    },
                },
            ),
        );
    }
    let dead = h.dead_letter_path.as_deref().map_or_else(
        || state_dir.join("dead-letter").join(format!("{name}.ndjson")),
        |p| resolve(base, p),
    );
    let driver = driver_config(&h.batch, &what, dead)?;
    let (buffer_path, buffer) = sink_buffer(
        &h.buffer,
        &what,
        state_dir.join("buffers").join(&name),
        base,
    )?;
    Ok(SiemSink {
        classes: classes(h.classes)?,
        driver,
        buffer_path,
        buffer,
        kind: SiemKind::SplunkHec(HecConfig {
            name: name.clone(),
            endpoint: h.endpoint,
            token,
            kind,
            gzip,
            metadata,
            indexed_fields: h.indexed_fields,
            ack: h.acknowledgements,
            ack_timeout: Duration::from_secs(h.ack_timeout_seconds.max(1)),
            ca_file: h.ca_file.as_deref().map(|p| resolve(base, p)),
            timeout: Duration::from_secs(h.timeout_seconds.max(1)),
        }),
        name,
    })
}

fn kafka_sink(k: raw::KafkaSink, i: usize, base: &Path, state_dir: &Path) -> Result<SiemSink> {
    use weir_integrations::kafka::{KafkaConfig, KeyField};
    let name = k.name.unwrap_or_else(|| format!("sink-{i}"));
    let what = format!("sinks.{name}");
    if k.brokers.trim().is_empty() {
        bail!("{what}.brokers: empty");
    }
    let key = match k.key.as_str() {
        "host" => KeyField::Host,
        "community_id" => KeyField::CommunityId,
        "stream" => KeyField::Stream,
        "none" => KeyField::None,
        other => bail!(
            "{what}.key: {other:?} is not one of \"host\", \"community_id\", \"stream\", \"none\""
        ),
    };
    if !["zstd", "lz4", "gzip", "snappy", "none"].contains(&k.compression.as_str()) {
        bail!(
            "{what}.compression: {:?} is not one of zstd, lz4, gzip, snappy, none",
            k.compression
        );
    }
    let dead = k.dead_letter_path.as_deref().map_or_else(
        || state_dir.join("dead-letter").join(format!("{name}.ndjson")),
        |p| resolve(base, p),
    );
    // Secrets go apart (never printed): from sasl_password_file, or written inline (kept,
    // with a warning: the configuration file is usually readable by more than the service).
    const SECRET_KEYS: [&str; 4] = [
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "sasl.oauthbearer.client.secret",
    ];
    let mut options = Vec::new();
    let mut secret_options = Vec::new();
    for (key_name, value) in k.options {
        if SECRET_KEYS.contains(&key_name.as_str()) {
            tracing::warn!(message = "A Kafka secret is written in the configuration file; keep it in a private file instead (sasl_password_file).", sink = %name, option = %key_name);
            secret_options.push((key_name, weir_integrations::Secret::new(value)));
        } else {
            options.push((key_name, value));
        }
    }
    if let Some(p) = &k.sasl_password_file {
        let secret = key::read_secret(&resolve(base, p))
            .with_context(|| format!("{what}.sasl_password_file"))?;
        secret_options.retain(|(key_name, _)| key_name != "sasl.password");
        secret_options.push(("sasl.password".into(), secret));
    }
    let driver = driver_config(&k.batch, &what, dead)?;
    let (buffer_path, buffer) = sink_buffer(
        &k.buffer,
        &what,
        state_dir.join("buffers").join(&name),
        base,
    )?;
    Ok(SiemSink {
        classes: classes(k.classes)?,
        driver,
        buffer_path,
        buffer,
        kind: SiemKind::Kafka(KafkaConfig {
            name: name.clone(),
            brokers: k.brokers,
            topic: k.topic,
            key,
            compression: k.compression,
            options,
            secret_options,
            message_timeout: Duration::from_secs(k.message_timeout_seconds.max(1)),
        }),
        name,
    })
}

/// Refuse credentials over `http://` unless the sink says it knows.
fn insecure_http(what: &str, endpoint: &str, allowed: bool, secret: &str) -> Result<()> {
    if endpoint.starts_with("http://") && !allowed {
        bail!(
            "{what}.endpoint: {endpoint:?} is plain http://, so {secret} would cross the network in clear; use https://, or set allow_insecure_http = true (a lab, or a model on loopback)"
        );
    }
    Ok(())
}

fn es_sink(e: raw::EsSink, i: usize, base: &Path, state_dir: &Path) -> Result<SiemSink> {
    use weir_integrations::elasticsearch::{Auth, EsConfig, Target};
    let name = e.name.unwrap_or_else(|| format!("sink-{i}"));
    let what = format!("sinks.{name}");
    if !(e.endpoint.starts_with("http://") || e.endpoint.starts_with("https://")) {
        bail!(
            "{what}.endpoint: {:?} is not an http:// or https:// URL",
            e.endpoint
        );
    }
    let target = match e.mode.as_str() {
        "data_stream" => {
            // Data stream names: lowercase, no '-' in the namespace (it separates the parts).
            if e.namespace.is_empty()
                || e.namespace.contains('-')
                || e.namespace.chars().any(|c| c.is_ascii_uppercase())
            {
                bail!(
                    "{what}.namespace: {:?} must be lowercase without '-'",
                    e.namespace
                );
            }
            Target::DataStream {
                namespace: e.namespace,
            }
        }
        "index" => Target::Index(e.index),
        other => bail!("{what}.mode: {other:?} is not \"data_stream\" or \"index\""),
    };
    let secret = |key: &str, path: &str| -> Result<weir_integrations::Secret> {
        key::read_secret(&resolve(base, path)).with_context(|| format!("{what}.{key}"))
    };
    let auth = match (&e.api_key_file, &e.username, &e.password_file) {
        (Some(k), None, None) => Auth::ApiKey(secret("api_key_file", k)?),
        (None, Some(u), Some(p)) => Auth::Basic {
            username: u.clone(),
            password: secret("password_file", p)?,
        },
        (None, None, None) => Auth::None,
        _ => bail!("{what}: set either api_key_file, or username and password_file"),
    };
    if auth != Auth::None {
        insecure_http(&what, &e.endpoint, e.allow_insecure_http, "the credentials")?;
    }
    let gzip = match e.compression.as_str() {
        "gzip" => true,
        "none" => false,
        other => bail!("{what}.compression: {other:?} is not \"gzip\" or \"none\""),
    };
    let dead = e.dead_letter_path.as_deref().map_or_else(
        || state_dir.join("dead-letter").join(format!("{name}.ndjson")),
        |p| resolve(base, p),
    );
    let driver = driver_config(&e.batch, &what, dead)?;
    let (buffer_path, buffer) = sink_buffer(
        &e.buffer,
        &what,
        state_dir.join("buffers").join(&name),
        base,
    )?;
    Ok(SiemSink {
        classes: classes(e.classes)?,
        driver,
        buffer_path,
        buffer,
        kind: SiemKind::Elasticsearch(EsConfig {
            name: name.clone(),
            endpoint: e.endpoint,
            target,
            auth,
            gzip,
            ca_file: e.ca_file.as_deref().map(|p| resolve(base, p)),
            timeout: Duration::from_secs(e.timeout_seconds.max(1)),
            install_template: e.install_template,
        }),
        name,
    })
}

fn metrics_listen(m: Option<&raw::Metrics>) -> Result<Option<SocketAddr>> {
    m.map(|m| address("metrics.listen", &m.listen)).transpose()
}

fn rx(raw: raw::RxFile, base: &Path) -> Result<RxConfig> {
    let r = raw.rx;
    let state_dir = resolve(base, &r.state_dir);
    let mut sinks = Vec::new();
    for (i, s) in raw.sinks.into_iter().enumerate() {
        sinks.push(match s {
            raw::Sink::File(f) => SinkConfig::File {
                name: f.name.unwrap_or_else(|| format!("sink-{i}")),
                classes: classes(f.classes)?,
                file: weir_integrations::file::FileSinkConfig {
                    path: resolve(base, &f.path),
                    max_bytes: f.max_bytes,
                    max_files: f.max_files,
                },
            },
            raw::Sink::Stdout(s) => SinkConfig::Stdout {
                name: s.name.unwrap_or_else(|| format!("sink-{i}")),
                classes: classes(s.classes)?,
            },
            raw::Sink::SplunkHec(h) => {
                SinkConfig::Siem(Box::new(hec_sink(*h, i, base, &state_dir)?))
            }
            raw::Sink::Elasticsearch(e) => {
                SinkConfig::Siem(Box::new(es_sink(*e, i, base, &state_dir)?))
            }
            raw::Sink::Kafka(k) => SinkConfig::Siem(Box::new(kafka_sink(*k, i, base, &state_dir)?)),
        });
    }
    if sinks.is_empty() {
        bail!("no [[sinks]]: received events would have nowhere to go");
    }
    if r.queue_blocks == 0 {
        bail!("rx.queue_blocks must be at least 1");
    }
    let diode = diode(raw.diode, base)?;
    let mut ids = vec![diode.key.id];
    let mut additional_keys = Vec::new();
    for (i, path) in r.additional_key_files.iter().enumerate() {
        let key = DiodeKey::load(&resolve(base, path))
            .with_context(|| format!("rx.additional_key_files[{i}]"))?;
        if ids.contains(&key.id) {
            bail!("rx.additional_key_files[{i}]: key id {} is already in use; each key needs its own id (weir keygen --key-id)", key.id);
        }
        ids.push(key.id);
        additional_keys.push(key);
    }
    Ok(RxConfig {
        diode,
        additional_keys,
        listen: address("rx.listen", &r.listen)?,
        receive_buffer_bytes: r.receive_buffer_bytes,
        receive_offload: r.receive_offload,
        metrics_listen: metrics_listen(raw.metrics.as_ref())?,
        reorder_timeout: Duration::from_millis(r.reorder_timeout_milliseconds),
        max_pending_bytes: r.max_pending_bytes,
        max_pending_blocks: r.max_pending_blocks.max(1),
        agents: r.agents.clone(),
        max_sessions: r.max_sessions.max(1),
        state_dir: state_dir.clone(),
        queue_blocks: r.queue_blocks,
        queue_max_bytes: r.queue_max_bytes,
        sinks,
    })
}

#[cfg(test)]
mod tests;
