//! The config file as written: serde structs, unknown keys rejected, defaults documented in
//! `docs/configuration.md`.

use serde::Deserialize;

/// `weir tx` config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxFile {
    /// `[agent]`.
    pub agent: Agent,
    /// `[diode]`.
    pub diode: Diode,
    /// `[tx]`.
    pub tx: Tx,
    /// `[[sources]]`.
    #[serde(default)]
    pub sources: Vec<Source>,
    /// `[spool]`.
    #[serde(default)]
    pub spool: Option<Spool>,
    /// `[metrics]`.
    #[serde(default)]
    pub metrics: Option<Metrics>,
}

/// `weir rx` config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RxFile {
    /// `[diode]`.
    pub diode: Diode,
    /// `[rx]`.
    pub rx: Rx,
    /// `[[sinks]]`.
    #[serde(default)]
    pub sinks: Vec<Sink>,
    /// `[metrics]`.
    #[serde(default)]
    pub metrics: Option<Metrics>,
}

/// `[spool]`: the agent's on-disk spool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spool {
    /// Directory.
    pub path: String,
    /// Most bytes on disk.
    #[serde(default = "default_spool_bytes")]
    pub max_bytes: u64,
    /// Segment size.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// `drop_oldest` or `drop_newest`.
    #[serde(default = "default_overflow")]
    pub overflow: String,
    /// `interval` (sync every `sync_interval_milliseconds`) or `always` (every batch).
    #[serde(default = "default_sync")]
    pub sync: String,
    /// How often the spool is synced to disk with `sync = "interval"`.
    #[serde(default = "default_sync_interval")]
    pub sync_interval_milliseconds: u64,
}

fn default_sync() -> String {
    "interval".into()
}
fn default_sync_interval() -> u64 {
    250
}

fn default_spool_bytes() -> u64 {
    1 << 30
}

fn default_segment_bytes() -> u64 {
    16 << 20
}

fn default_overflow() -> String {
    "drop_oldest".into()
}

/// `[metrics]`: Prometheus `/metrics` and `/health`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Listen address.
    pub listen: String,
}

/// `[agent]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Agent name, stamped into `weir.agent`.
    pub name: String,
}

/// `[diode]`: must be the same on both sides.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Diode {
    /// Pre-shared key file (`weir keygen`).
    pub key_file: String,
    /// Link MTU.
    #[serde(default = "default_mtu")]
    pub mtu_bytes: usize,
    /// `zstd` or `none`.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// zstd level.
    #[serde(default = "default_level")]
    pub compression_level: i32,
    /// Largest block (uncompressed records).
    #[serde(default = "default_block")]
    pub max_block_bytes: usize,
    /// `aes-256-gcm` or `chacha20-poly1305` (what the agent seals with; receivers accept both).
    #[serde(default = "default_cipher")]
    pub cipher: String,
}

/// `[tx]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tx {
    /// Receiver (diode input) address.
    pub destination: String,
    /// Where the agent keeps its boot counter (default `state` beside the config file).
    pub state_dir: Option<String>,
    /// Local address.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// Pacing rate.
    #[serde(default = "default_rate")]
    pub link_rate_bits_per_second: u64,
    /// Pacing bucket depth.
    #[serde(default = "default_burst")]
    pub link_burst_milliseconds: u64,
    /// Heartbeat interval.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_interval_milliseconds: u64,
    /// Block linger.
    #[serde(default = "default_linger")]
    pub linger_milliseconds: u64,
    /// Source → diode queue.
    #[serde(default = "default_queue_events")]
    pub queue_events: usize,
    /// SO_SNDBUF.
    #[serde(default = "default_sndbuf")]
    pub send_buffer_bytes: usize,
    /// FEC repair symbols per block, percent of its source symbols.
    #[serde(default = "default_repair")]
    pub fec_repair_percent: u32,
    /// Random datagram loss (percent) every block's repair is sized for.
    #[serde(default = "default_expected_loss")]
    pub fec_expected_loss_percent: f64,
    /// Interleave symbols of this many queued blocks.
    #[serde(default = "default_interleave")]
    pub fec_interleave_blocks: usize,
    /// UDP segmentation offload (GSO) for runs of equal-sized datagrams.
    #[serde(default = "default_true")]
    pub segmentation_offload: bool,
}

/// `[rx]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rx {
    /// Listen address.
    pub listen: String,
    /// Buffers and dead-letter files live under it.
    #[serde(default = "default_state_dir")]
    pub state_dir: String,
    /// SO_RCVBUF.
    #[serde(default = "default_rcvbuf")]
    pub receive_buffer_bytes: usize,
    /// UDP receive offload (GRO).
    #[serde(default = "default_true")]
    pub receive_offload: bool,
    /// Reorder timeout.
    #[serde(default = "default_reorder")]
    pub reorder_timeout_milliseconds: u64,
    /// Pending block bytes.
    #[serde(default = "default_pending")]
    pub max_pending_bytes: usize,
    /// Diode → sinks queue, in blocks.
    #[serde(default = "default_queue_blocks")]
    pub queue_blocks: usize,
    /// Diode → sinks queue, in bytes of decoded records.
    #[serde(default = "default_queue_bytes")]
    pub queue_max_bytes: usize,
    /// More key files accepted besides `diode.key_file` (key rotation).
    #[serde(default)]
    pub additional_key_files: Vec<String>,
    /// Agents accepted by name; absent: any agent holding a key.
    pub agents: Option<Vec<String>>,
    /// Incomplete diode blocks held at most, all agents together.
    #[serde(default = "default_pending_blocks")]
    pub max_pending_blocks: usize,
    /// Agent sessions held at once.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
}

/// `[[sources]]`, tagged by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    /// `type = "syslog_udp"`.
    SyslogUdp(SyslogSource),
    /// `type = "syslog_tcp"`.
    SyslogTcp(SyslogSource),
    /// `type = "windows_json_tcp"`: newline-delimited Windows events as JSON (NXLog,
    /// Winlogbeat, OpenWEC shapes).
    WindowsJsonTcp(SyslogSource),
    /// `type = "windows_json_http"`: the same as HTTP POST bodies.
    WindowsJsonHttp(SyslogSource),
    /// `type = "evtx_directory"`: `.evtx` files dropped into a directory.
    EvtxDirectory(EvtxSource),
    /// `type = "span"`: live capture from a SPAN port or network tap (libpcap).
    Span(CaptureSource),
    /// `type = "capture_file"`: pcap/pcapng files read once at start (a file, or every file of
    /// a directory in name order).
    CaptureFile(CaptureSource),
    /// `type = "wec"`: a Windows Event Collector endpoint (source-initiated Windows Event
    /// Forwarding over HTTPS with client certificates).
    Wec(WecSource),
}

/// A `wec` source's keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecSource {
    /// Input name.
    pub name: Option<String>,
    /// Listen address (`0.0.0.0:5986`).
    pub address: String,
    /// The collector's DNS name as clients reach it (in its certificate; used in the
    /// delivery addresses it hands out).
    pub hostname: String,
    /// The port clients connect to, if not the listen port (NAT, load balancer).
    pub public_port: Option<u16>,
    /// The collector's certificate chain (PEM).
    pub server_certificate: String,
    /// Its private key (PEM).
    pub server_key: String,
    /// The CA certificate(s) that issue client certificates (PEM); its thumbprint is the
    /// Group Policy's `IssuerCA=`.
    pub client_ca: String,
    /// Where bookmarks are kept (default `state` beside the config file).
    pub state_dir: Option<String>,
    /// How often a client with nothing to send says it is alive.
    #[serde(default = "default_wec_heartbeat")]
    pub heartbeat_seconds: u64,
    /// How long a client may hold events before sending them (`MaxTime`).
    #[serde(default = "default_wec_latency")]
    pub max_latency_seconds: u64,
    /// Largest envelope a client may send (`MaxEnvelopeSize`).
    #[serde(default = "default_wec_envelope")]
    pub max_envelope_bytes: u32,
    /// Connections at once (each may hold a body of up to `max_envelope_bytes` in memory).
    #[serde(default = "default_wec_connections")]
    pub max_connections: usize,
    /// Connections per peer address (default: a quarter of `max_connections`).
    pub max_connections_per_address: Option<usize>,
    /// Close a connection after this long without a byte (0: never).
    #[serde(default = "default_wec_idle")]
    pub idle_timeout_seconds: u64,
    /// Forget hosts not heard from for this long.
    #[serde(default = "default_wec_retention")]
    pub bookmark_retention_days: u64,
    /// Keep bookmarks of at most this many (subscription, host) pairs.
    #[serde(default = "default_wec_max_hosts")]
    pub max_hosts: usize,
    /// Keep each event's XML in `event.original`.
    #[serde(default = "default_true")]
    pub keep_original: bool,
    /// Offer SLDC compression to clients.
    #[serde(default = "default_true")]
    pub compression: bool,
    /// `RenderedText` (events with their message text) or `Raw`.
    #[serde(default = "default_wec_format")]
    pub content_format: String,
    /// A silent host is reported gone after this long without contact.
    #[serde(default = "default_wec_gone")]
    pub host_gone_seconds: u64,
    /// What clients are asked to send.
    pub subscriptions: Vec<WecSubscription>,
}

/// One `[[sources.subscriptions]]` of a `wec` source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecSubscription {
    /// Subscription name (shown by `wecutil` and Event Viewer on the clients).
    pub name: String,
    /// Channels to forward in full (`Security`, `System`, ...).
    pub channels: Option<Vec<String>>,
    /// Or a full `QueryList` document (XPath filters, as Event Viewer exports them).
    pub query: Option<String>,
    /// Send what the channels already hold when a host subscribes for the first time.
    #[serde(default)]
    pub read_existing_events: bool,
    /// Events per batch, if limited.
    pub max_items: Option<u32>,
}

fn default_wec_heartbeat() -> u64 {
    900
}
fn default_wec_latency() -> u64 {
    30
}
fn default_wec_envelope() -> u32 {
    512_000
}
fn default_wec_format() -> String {
    "RenderedText".into()
}
fn default_wec_connections() -> usize {
    256
}
fn default_wec_retention() -> u64 {
    90
}
fn default_wec_max_hosts() -> usize {
    20_000
}
fn default_wec_idle() -> u64 {
    120
}
fn default_wec_gone() -> u64 {
    86_400
}

/// A `span` or `capture_file` source's keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSource {
    /// Input name.
    pub name: Option<String>,
    /// `span`: the interface to capture on.
    pub interface: Option<String>,
    /// `capture_file`: the file or directory.
    pub path: Option<String>,
    /// `span`: a BPF filter (tcpdump syntax).
    pub bpf_filter: Option<String>,
    /// `span`: bytes kept of each packet.
    #[serde(default = "default_snaplen")]
    pub snaplen: u32,
    /// `span`: promiscuous mode.
    #[serde(default = "default_true")]
    pub promiscuous: bool,
    /// `span`: the kernel capture buffer.
    #[serde(default = "default_capture_buffer")]
    pub buffer_bytes: u32,
    /// TCP idle timeout.
    #[serde(default = "default_tcp_idle")]
    pub tcp_idle_seconds: u64,
    /// UDP idle timeout.
    #[serde(default = "default_udp_idle")]
    pub udp_idle_seconds: u64,
    /// Idle timeout of every other protocol.
    #[serde(default = "default_udp_idle")]
    pub other_idle_seconds: u64,
    /// Interim records for flows live this long (0: none).
    #[serde(default = "default_active")]
    pub active_timeout_seconds: u64,
    /// Flow table size.
    #[serde(default = "default_max_flows")]
    pub max_flows: usize,
    /// Community ID seed.
    #[serde(default)]
    pub community_id_seed: u16,
    /// Read-summary window (0: every read on its own).
    #[serde(default = "default_udp_idle")]
    pub read_summary_seconds: u64,
    /// Write flow records.
    #[serde(default = "default_true")]
    pub flows: bool,
    /// `span`: how often capture statistics are checked and drops reported.
    #[serde(default = "default_udp_idle")]
    pub stats_interval_seconds: u64,
    /// Keep the asset inventory.
    #[serde(default = "default_true")]
    pub assets: bool,
    /// Baseline learning window (0: no baseline notables).
    #[serde(default = "default_learning")]
    pub baseline_learning_seconds: u64,
    /// IEEE OUI registry for MAC vendors (default: Debian's ieee-data file when present).
    pub oui_file: Option<String>,
    /// Where the baseline is saved (default `state` beside the config file).
    pub state_dir: Option<String>,
}

fn default_learning() -> u64 {
    7 * 86_400
}

fn default_snaplen() -> u32 {
    65535
}
fn default_capture_buffer() -> u32 {
    32 * 1024 * 1024
}
fn default_tcp_idle() -> u64 {
    300
}
fn default_udp_idle() -> u64 {
    60
}
fn default_active() -> u64 {
    300
}
fn default_max_flows() -> usize {
    262_144
}

/// An `evtx_directory` source's keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvtxSource {
    /// Input name.
    pub name: Option<String>,
    /// The directory watched.
    pub path: String,
    /// Where bookmarks are kept (default `state` beside the config file).
    pub state_dir: Option<String>,
    /// How often the directory is looked at.
    #[serde(default = "default_evtx_poll")]
    pub poll_interval_milliseconds: u64,
    /// Keep the record's XML in `event.original`.
    #[serde(default = "default_true")]
    pub keep_original: bool,
}

fn default_evtx_poll() -> u64 {
    1000
}

/// A syslog source's keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSource {
    /// Input name.
    pub name: Option<String>,
    /// Listen address.
    pub address: String,
    /// IANA zone.
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// Largest message.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// `truncate` or `drop`.
    #[serde(default = "default_oversize")]
    pub oversize: String,
    /// TCP connection limit.
    #[serde(default = "default_connections")]
    pub max_connections: usize,
    /// TCP connections per peer address (default: a quarter of `max_connections`).
    pub max_connections_per_address: Option<usize>,
    /// Close a TCP connection after this long without a byte (0: never; default 600, HTTP 60).
    pub idle_timeout_seconds: Option<u64>,
    /// HTTP: a request body must be complete within this long.
    #[serde(default = "default_body_timeout")]
    pub body_timeout_seconds: u64,
    /// HTTP: request body bytes held at once, over all connections.
    #[serde(default = "default_inflight_body")]
    pub max_inflight_body_bytes: usize,
    /// Keep `event.original`.
    #[serde(default = "default_true")]
    pub keep_original: bool,
    /// SO_RCVBUF for UDP.
    pub receive_buffer_bytes: Option<usize>,
}

fn default_body_timeout() -> u64 {
    60
}
fn default_inflight_body() -> usize {
    64 << 20
}

/// `[[sinks]]`, tagged by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Sink {
    /// `type = "file"`.
    File(FileSink),
    /// `type = "stdout"`.
    Stdout(StdoutSink),
    /// `type = "splunk_hec"`.
    SplunkHec(Box<HecSink>),
    /// `type = "elasticsearch"`.
    Elasticsearch(Box<EsSink>),
    /// `type = "kafka"`.
    Kafka(Box<KafkaSink>),
}

/// Batching and concurrency, shared by the SIEM sinks (`[sinks.batch]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Most events per request.
    pub max_events: Option<usize>,
    /// About the most bytes per request.
    pub max_bytes: Option<usize>,
    /// Longest a partial batch waits.
    pub max_age_milliseconds: Option<u64>,
    /// Requests in flight.
    pub concurrency: Option<usize>,
}

/// A SIEM sink's disk buffer (`[sinks.buffer]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkBuffer {
    /// Directory (default: `STATE_DIR/buffers/NAME`).
    pub path: Option<String>,
    /// Most bytes on disk.
    pub max_bytes: Option<u64>,
    /// `drop_oldest` or `drop_newest`.
    pub overflow: Option<String>,
}

/// Splunk metadata (`index`, `sourcetype`, `source`, `host`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HecMetadata {
    /// `index`.
    pub index: Option<String>,
    /// `sourcetype`.
    pub sourcetype: Option<String>,
    /// `source`.
    pub source: Option<String>,
    /// `host`.
    pub host: Option<String>,
    /// `event = "original"`: send `event.original` (Windows XML) instead of the JSON.
    pub event: Option<String>,
}

/// Splunk HEC sink keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HecSink {
    /// Sink name.
    pub name: Option<String>,
    /// Event classes routed here (default: all).
    pub classes: Option<Vec<String>>,
    /// `https://host:8088`.
    pub endpoint: String,
    /// File holding the token.
    pub token_file: String,
    /// Allow an `http://` endpoint although the token then crosses the network in clear.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// `event` or `raw`.
    #[serde(default = "default_hec_kind")]
    pub endpoint_kind: String,
    /// `gzip` or `none`.
    #[serde(default = "default_gzip")]
    pub compression: String,
    /// Indexed fields.
    #[serde(default = "default_true")]
    pub indexed_fields: bool,
    /// Indexer acknowledgement.
    #[serde(default)]
    pub acknowledgements: bool,
    /// Acknowledgement wait.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_seconds: u64,
    /// CA certificate (PEM).
    pub ca_file: Option<String>,
    /// Request timeout.
    #[serde(default = "default_request_timeout")]
    pub timeout_seconds: u64,
    /// Dead-letter file (default: `STATE_DIR/dead-letter/NAME.ndjson`).
    pub dead_letter_path: Option<String>,
    /// Default `index`.
    pub index: Option<String>,
    /// Default `sourcetype` (default `weir:{class}`).
    pub sourcetype: Option<String>,
    /// Default `source` (default `weir:{agent}`).
    pub source: Option<String>,
    /// Default `host` (default: the event's host).
    pub host: Option<String>,
    /// Metadata by event class.
    #[serde(default)]
    pub class_metadata: std::collections::BTreeMap<String, HecMetadata>,
    /// `[sinks.batch]`.
    #[serde(default)]
    pub batch: Batch,
    /// `[sinks.buffer]`.
    #[serde(default)]
    pub buffer: SinkBuffer,
}

/// Elasticsearch sink keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsSink {
    /// Sink name.
    pub name: Option<String>,
    /// Event classes routed here (default: all).
    pub classes: Option<Vec<String>>,
    /// `https://host:9200`.
    pub endpoint: String,
    /// `data_stream` or `index`.
    #[serde(default = "default_es_mode")]
    pub mode: String,
    /// Data stream namespace.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Index name template (mode `index`).
    #[serde(default = "default_es_index")]
    pub index: String,
    /// Install Weir's index template before the first document.
    #[serde(default)]
    pub install_template: bool,
    /// File holding an encoded API key.
    pub api_key_file: Option<String>,
    /// Basic auth user.
    pub username: Option<String>,
    /// Allow an `http://` endpoint although credentials then cross the network in clear.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// File holding the basic auth password.
    pub password_file: Option<String>,
    /// `gzip` or `none`.
    #[serde(default = "default_gzip")]
    pub compression: String,
    /// CA certificate (PEM).
    pub ca_file: Option<String>,
    /// Request timeout.
    #[serde(default = "default_request_timeout")]
    pub timeout_seconds: u64,
    /// Dead-letter file.
    pub dead_letter_path: Option<String>,
    /// `[sinks.batch]`.
    #[serde(default)]
    pub batch: Batch,
    /// `[sinks.buffer]`.
    #[serde(default)]
    pub buffer: SinkBuffer,
}

/// Kafka sink keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSink {
    /// Sink name.
    pub name: Option<String>,
    /// Event classes routed here (default: all).
    pub classes: Option<Vec<String>>,
    /// `host:port,host:port`.
    pub brokers: String,
    /// Topic template.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// `host`, `community_id`, `stream` or `none`.
    #[serde(default = "default_key")]
    pub key: String,
    /// `zstd`, `lz4`, `gzip`, `snappy` or `none`.
    #[serde(default = "default_kafka_compression")]
    pub compression: String,
    /// Delivery timeout per message.
    #[serde(default = "default_message_timeout")]
    pub message_timeout_seconds: u64,
    /// File holding the SASL password (`sasl.password`).
    pub sasl_password_file: Option<String>,
    /// librdkafka properties.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
    /// Dead-letter file.
    pub dead_letter_path: Option<String>,
    /// `[sinks.batch]`.
    #[serde(default)]
    pub batch: Batch,
    /// `[sinks.buffer]`.
    #[serde(default)]
    pub buffer: SinkBuffer,
}

fn default_topic() -> String {
    "weir.{class}".into()
}

fn default_key() -> String {
    "host".into()
}

fn default_kafka_compression() -> String {
    "zstd".into()
}

fn default_message_timeout() -> u64 {
    60
}

fn default_es_mode() -> String {
    "data_stream".into()
}

fn default_namespace() -> String {
    "default".into()
}

fn default_es_index() -> String {
    "weir-{class}".into()
}

fn default_state_dir() -> String {
    "/var/lib/weir".into()
}

fn default_hec_kind() -> String {
    "event".into()
}

fn default_gzip() -> String {
    "gzip".into()
}

fn default_ack_timeout() -> u64 {
    60
}

fn default_request_timeout() -> u64 {
    30
}

/// File sink keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSink {
    /// Sink name.
    pub name: Option<String>,
    /// Output path.
    pub path: String,
    /// Rotation size (0: never).
    #[serde(default = "default_file_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept.
    #[serde(default = "default_file_count")]
    pub max_files: u32,
    /// Event classes routed here (default: all).
    pub classes: Option<Vec<String>>,
}

/// Stdout sink keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSink {
    /// Sink name.
    pub name: Option<String>,
    /// Event classes routed here (default: all).
    pub classes: Option<Vec<String>>,
}

fn default_mtu() -> usize {
    1500
}
fn default_compression() -> String {
    "zstd".into()
}
fn default_level() -> i32 {
    1
}
fn default_cipher() -> String {
    "aes-256-gcm".into()
}
fn default_block() -> usize {
    256 * 1024
}
fn default_bind() -> String {
    "0.0.0.0:0".into()
}
fn default_rate() -> u64 {
    1_000_000_000
}
fn default_burst() -> u64 {
    u64::try_from(crate::diode::tx::Pacing::DEFAULT_BURST.as_millis()).unwrap_or(4)
}
fn default_heartbeat() -> u64 {
    1000
}
fn default_linger() -> u64 {
    20
}
fn default_queue_events() -> usize {
    65_536
}
fn default_sndbuf() -> usize {
    4 * 1024 * 1024
}
fn default_repair() -> u32 {
    10
}
fn default_expected_loss() -> f64 {
    1.0
}
fn default_interleave() -> usize {
    1
}

fn default_rcvbuf() -> usize {
    32 * 1024 * 1024
}
fn default_reorder() -> u64 {
    500
}
fn default_pending() -> usize {
    64 * 1024 * 1024
}
fn default_pending_blocks() -> usize {
    65_536
}
fn default_max_sessions() -> usize {
    256
}
fn default_queue_blocks() -> usize {
    4096
}
fn default_queue_bytes() -> usize {
    256 * 1024 * 1024
}
fn default_tz() -> String {
    "UTC".into()
}
fn default_max_message() -> usize {
    64 * 1024
}
fn default_oversize() -> String {
    "truncate".into()
}
fn default_connections() -> usize {
    1024
}
fn default_true() -> bool {
    true
}
fn default_file_bytes() -> u64 {
    100 * 1024 * 1024
}
fn default_file_count() -> u32 {
    10
}
