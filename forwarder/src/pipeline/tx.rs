//! Start and stop the OT-side agent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use weir_diode_proto::{Sender, SenderConfig, StreamId};

use crate::config::{
    CaptureSource, EvtxSource, Format, SyslogSource, Transport, TxConfig, WecSource,
};
use crate::diode;
use crate::sources::{self, Record, SourceContext};
use crate::spool::Spool;
use crate::telemetry::TxStats;

/// A running agent.
pub struct TxHandle {
    /// Counters.
    pub stats: Arc<TxStats>,
    /// Each source's name and bound address (useful when configured with port 0).
    pub sources: Vec<(String, SocketAddr)>,
    /// The diode session epoch.
    pub session: u64,
    cfg: TxConfig,
    running: Sources,
    diode: JoinHandle<()>,
}

impl TxHandle {
    /// Stop the sources, send everything queued and a last heartbeat, and return.
    pub async fn shutdown(self) -> Result<()> {
        let TxHandle { running, diode, .. } = self;
        running.stop_all().await;
        diode
            .await
            .map_err(|e| anyhow!("diode sender task failed: {e}"))
    }

    /// Apply a new configuration without a restart (SIGHUP). Only the sources may change:
    /// a source whose settings are unchanged keeps running untouched (its sockets, its
    /// connections, its diode stream and sequence numbers); a removed source stops (what it
    /// queued is still sent); a changed one is restarted on its stream; a new one starts on a
    /// new stream. Any other change (diode, destination, link, queue, spool, metrics, agent
    /// name) needs a restart: then nothing is applied and the error names the settings.
    pub async fn reload(&mut self, new: TxConfig) -> Result<ReloadReport> {
        let fixed = restart_only_differences(&self.cfg, &new);
        if !fixed.is_empty() {
            bail!(
                "these settings take effect only after a restart: {}; nothing was changed",
                fixed.join(", ")
            );
        }
        let wanted = Spec::all(&new);
        let mut report = ReloadReport::default();
        // Stop what is gone or changed first: a changed source may keep its address.
        let names: Vec<String> = self
            .running
            .list
            .iter()
            .map(|r| r.spec.name().to_owned())
            .collect();
        for name in names {
            match wanted.iter().find(|w| w.name() == name) {
                Some(w) if self.running.get(&name).is_some_and(|r| &r.spec == w) => {
                    report.unchanged.push(name);
                }
                Some(_) => {
                    self.running.stop(&name).await;
                    report.restarted.push(name);
                }
                None => {
                    self.running.stop(&name).await;
                    report.stopped.push(name);
                }
            }
        }
        let mut failed = Vec::new();
        for spec in wanted {
            if self.running.get(spec.name()).is_some() {
                continue;
            }
            let name = spec.name().to_owned();
            if !report.restarted.contains(&name) {
                report.started.push(name.clone());
            }
            let stream = self.running.stream_for(&name).await?;
            if let Err(e) = self.running.launch(spec, stream).await {
                failed.push(format!("{name}: {e:#}"));
            }
        }
        self.cfg = new;
        self.sources = self.running.bound();
        if !failed.is_empty() {
            bail!(
                "the new configuration is in place, but these sources did not start: {}",
                failed.join("; ")
            );
        }
        Ok(report)
    }
}

/// What a reload did, by source name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Left running as they were.
    pub unchanged: Vec<String>,
    /// Stopped and started again with their new settings.
    pub restarted: Vec<String>,
    /// Added.
    pub started: Vec<String>,
    /// Removed.
    pub stopped: Vec<String>,
}

/// The settings a reload cannot change (they shape the diode session or the process).
fn restart_only_differences(a: &TxConfig, b: &TxConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name: &'static str, same: bool| {
        if !same {
            out.push(name);
        }
    };
    check("agent.name", a.agent_name == b.agent_name);
    check(
        "[diode]",
        a.diode.fingerprint() == b.diode.fingerprint()
            && a.diode.key.id == b.diode.key.id
            && a.diode.key.secret == b.diode.key.secret
            && a.diode.cipher == b.diode.cipher,
    );
    check("tx.destination", a.destination == b.destination);
    check("tx.bind", a.bind == b.bind);
    check(
        "tx.link_rate_bits_per_second",
        a.link_rate_bits_per_second == b.link_rate_bits_per_second,
    );
    check("tx.link_burst_milliseconds", a.link_burst == b.link_burst);
    check(
        "tx.heartbeat_interval_milliseconds",
        a.heartbeat_interval == b.heartbeat_interval,
    );
    check("tx.linger_milliseconds", a.linger == b.linger);
    check("tx.queue_events", a.queue_events == b.queue_events);
    check(
        "tx.send_buffer_bytes",
        a.send_buffer_bytes == b.send_buffer_bytes,
    );
    check(
        "tx.fec_*",
        a.fec_repair_percent == b.fec_repair_percent
            && a.fec_expected_loss_percent == b.fec_expected_loss_percent
            && a.fec_interleave_blocks == b.fec_interleave_blocks,
    );
    check(
        "tx.segmentation_offload",
        a.segmentation_offload == b.segmentation_offload,
    );
    check("[metrics]", a.metrics_listen == b.metrics_listen);
    check("[spool]", a.spool == b.spool);
    out
}

/// One configured source, whatever its kind.
#[derive(Clone, Debug, PartialEq)]
enum Spec {
    Syslog(SyslogSource),
    Evtx(EvtxSource),
    Capture(CaptureSource),
    Wec(WecSource),
}

impl Spec {
    fn name(&self) -> &str {
        match self {
            Spec::Syslog(s) => &s.name,
            Spec::Evtx(s) => &s.name,
            Spec::Capture(s) => &s.name,
            Spec::Wec(s) => &s.name,
        }
    }

    /// Every source of `cfg`, in the order streams are numbered at start.
    fn all(cfg: &TxConfig) -> Vec<Spec> {
        cfg.sources
            .iter()
            .cloned()
            .map(Spec::Syslog)
            .chain(cfg.evtx_sources.iter().cloned().map(Spec::Evtx))
            .chain(cfg.capture_sources.iter().cloned().map(Spec::Capture))
            .chain(cfg.wec_sources.iter().cloned().map(Spec::Wec))
            .collect()
    }
}

/// How a running source ends.
enum Done {
    Task(JoinHandle<()>),
    Thread(std::thread::JoinHandle<()>),
}

/// A source running.
struct Running {
    spec: Spec,
    cancel: CancellationToken,
    done: Done,
    addr: Option<SocketAddr>,
}

/// The agent's sources and what they need to start.
struct Sources {
    agent: Arc<str>,
    queue: mpsc::Sender<Record>,
    stats: Arc<TxStats>,
    /// Parent of every source's token.
    cancel: CancellationToken,
    streams: mpsc::UnboundedSender<diode::tx::StreamRequest>,
    list: Vec<Running>,
}

impl Sources {
    fn get(&self, name: &str) -> Option<&Running> {
        self.list.iter().find(|r| r.spec.name() == name)
    }

    fn bound(&self) -> Vec<(String, SocketAddr)> {
        self.list
            .iter()
            .filter_map(|r| Some((r.spec.name().to_owned(), r.addr?)))
            .collect()
    }

    /// The diode stream for a source started after the diode task (by a reload).
    async fn stream_for(&self, name: &str) -> Result<StreamId> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.streams
            .send(diode::tx::StreamRequest {
                name: name.to_owned(),
                reply,
            })
            .map_err(|_| anyhow!("the diode sender has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow!("the diode sender has stopped"))
    }

    /// Bind and start one source on `stream`.
    async fn launch(&mut self, spec: Spec, stream: StreamId) -> Result<()> {
        let cancel = self.cancel.child_token();
        let (done, addr) = match &spec {
            Spec::Syslog(source) => {
                let input = match (source.transport, source.format) {
                    (Transport::Udp, _) => "syslog_udp",
                    (Transport::Tcp, Format::Syslog) => "syslog_tcp",
                    (Transport::Tcp, Format::WindowsJson) => "windows_json_tcp",
                    (Transport::Http, _) => "windows_json_http",
                };
                let ctx = SourceContext {
                    cfg: source.clone(),
                    input,
                    agent: self.agent.clone(),
                    stream,
                    queue: self.queue.clone(),
                    stats: self.stats.clone(),
                };
                match source.transport {
                    Transport::Udp => {
                        let (socket, addr) = sources::syslog_udp::bind(&ctx).await?;
                        let task =
                            tokio::spawn(sources::syslog_udp::run(ctx, socket, cancel.clone()));
                        (Done::Task(task), Some(addr))
                    }
                    Transport::Tcp => {
                        let (listener, addr) = sources::syslog_tcp::bind(&ctx).await?;
                        let task =
                            tokio::spawn(sources::syslog_tcp::run(ctx, listener, cancel.clone()));
                        (Done::Task(task), Some(addr))
                    }
                    Transport::Http => {
                        let (listener, addr) = sources::windows_http::bind(&ctx).await?;
                        let task =
                            tokio::spawn(sources::windows_http::run(ctx, listener, cancel.clone()));
                        (Done::Task(task), Some(addr))
                    }
                }
            }
            Spec::Evtx(source) => {
                sources::evtx::prepare(source)?;
                let ctx = sources::evtx::EvtxContext {
                    cfg: source.clone(),
                    agent: self.agent.clone(),
                    stream,
                    queue: self.queue.clone(),
                    stats: self.stats.clone(),
                };
                (
                    Done::Task(tokio::spawn(sources::evtx::run(ctx, cancel.clone()))),
                    None,
                )
            }
            Spec::Capture(source) => {
                let ctx = sources::capture::CaptureContext {
                    cfg: source.clone(),
                    agent: self.agent.clone(),
                    stream,
                    queue: self.queue.clone(),
                    stats: self.stats.clone(),
                };
                let thread = sources::capture::spawn(ctx, cancel.clone())
                    .with_context(|| format!("source {}: cannot start its thread", source.name))?;
                (Done::Thread(thread), None)
            }
            Spec::Wec(source) => {
                let prepared = sources::wec::bind(source).await?;
                let addr = prepared.local_addr();
                let ctx = sources::wec::WecContext {
                    cfg: source.clone(),
                    agent: self.agent.clone(),
                    stream,
                    queue: self.queue.clone(),
                    stats: self.stats.clone(),
                };
                let task = tokio::spawn(sources::wec::run(ctx, prepared, cancel.clone()));
                (Done::Task(task), Some(addr))
            }
        };
        info!(message = "Source started.", source = %spec.name(), stream = stream.0);
        self.list.push(Running {
            spec,
            cancel,
            done,
            addr,
        });
        Ok(())
    }

    /// Stop one source and wait until it has let go of its sockets (and written its state).
    async fn stop(&mut self, name: &str) {
        let Some(i) = self.list.iter().position(|r| r.spec.name() == name) else {
            return;
        };
        let r = self.list.remove(i);
        r.cancel.cancel();
        wait(r.done).await;
        info!(message = "Source stopped.", source = %name);
    }

    /// Stop every source; the queue closes once the last one has let go of it.
    async fn stop_all(self) {
        self.cancel.cancel();
        for r in self.list {
            wait(r.done).await;
        }
    }
}

async fn wait(done: Done) {
    match done {
        // A source task that panicked has already been reported by the runtime.
        Done::Task(t) => {
            let _ = t.await;
        }
        Done::Thread(t) => {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// A random session epoch (never 0).
pub fn random_session() -> Result<u64> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| anyhow!("no randomness from the OS: {e}"))?;
    Ok(u64::from_be_bytes(b).max(1))
}

/// This start's boot: above every earlier start's (kept in `agent-boot` in the state
/// directory) and never below the Unix time in seconds, so that it still grows when the state
/// directory was lost. Written (synced, then renamed into place) before the first datagram;
/// an unreadable or empty file (what a power loss can leave) or one that cannot be written is
/// logged and the clock alone decides, never stopping the agent.
pub fn next_boot(state_dir: &std::path::Path, now_unix_seconds: u64) -> u64 {
    let path = state_dir.join("agent-boot");
    let stored = match std::fs::read_to_string(&path) {
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => {
                warn!(message = "Agent boot file unreadable; going by the clock.", path = %path.display());
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => {
            warn!(message = "Agent boot file unreadable; going by the clock.", path = %path.display(), %error);
            None
        }
    };
    let boot = stored
        .map_or(0, |v| v.saturating_add(1))
        .max(now_unix_seconds);
    if let Err(error) = crate::durable::write_synced(&path, format!("{boot}\n").as_bytes()) {
        warn!(message = "Cannot keep the agent boot counter; a restart within this second may be refused by the receiver.", path = %path.display(), %error);
    }
    boot
}

/// Bind every socket and start the agent.
pub async fn start(cfg: TxConfig) -> Result<TxHandle> {
    let session = random_session()?;
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let boot = next_boot(&cfg.state_dir, started.as_secs());
    let sender_cfg = SenderConfig {
        key_id: cfg.diode.key.id,
        key: cfg.diode.key.secret,
        cipher: cfg.diode.cipher,
        session,
        mtu_bytes: cfg.diode.mtu_bytes,
        ip_version: weir_diode_proto::sender::IpVersion::of(cfg.destination),
        codec: cfg.diode.codec,
        max_block_bytes: cfg.diode.max_block_bytes,
        max_record_bytes: cfg.diode.max_block_bytes - weir_diode_proto::block::RECORD_OVERHEAD,
        linger: cfg.linger,
        heartbeat_interval: cfg.heartbeat_interval,
        fingerprint: cfg.diode.fingerprint(),
        max_queued_blocks: 8,
        repair_percent: cfg.fec_repair_percent,
        expected_loss_percent: cfg.fec_expected_loss_percent,
        interleave_blocks: cfg.fec_interleave_blocks,
        identity: Some(weir_diode_proto::Identity {
            agent: cfg.agent_name.clone(),
            boot,
            started_unix_ms: u64::try_from(started.as_millis()).unwrap_or(u64::MAX),
        }),
    };
    let mut sender = Sender::new(sender_cfg.clone(), Instant::now())
        .map_err(|e| anyhow!("diode settings: {e}"))?;
    let socket = diode::udp::bind_udp(cfg.bind, None, Some(cfg.send_buffer_bytes))
        .with_context(|| format!("cannot bind diode socket {}", cfg.bind))?;
    let stats = Arc::new(TxStats::default());
    // A previous start that died without its final heartbeats: close its session first, so
    // that the receiver counts what of it never arrived before this session replaces it.
    let ledger_path = cfg.state_dir.join(crate::ledger::FILE);
    let closed =
        crate::ledger::close_previous(&ledger_path, &sender_cfg, &socket, cfg.destination).await;
    if closed.is_some() {
        stats.sessions_closed_at_start.inc();
    }
    let ledger = crate::ledger::Writer::spawn(ledger_path)
        .context("cannot start the agent session ledger thread")?;
    let (queue_tx, queue_rx) = mpsc::channel(cfg.queue_events);
    let agent: Arc<str> = Arc::from(cfg.agent_name.as_str());
    let (streams_tx, streams_rx) = mpsc::unbounded_channel();
    let mut running = Sources {
        agent: agent.clone(),
        queue: queue_tx,
        stats: stats.clone(),
        cancel: CancellationToken::new(),
        streams: streams_tx,
        list: Vec::new(),
    };
    // The sources' streams first, in configuration order, then the agent's own.
    for spec in Spec::all(&cfg) {
        let stream = sender.stream(spec.name());
        if let Err(e) = running.launch(spec, stream).await {
            running.stop_all().await;
            return Err(e);
        }
    }
    let agent_stream = sender.add_stream("agent");
    if let Some(c) = &closed {
        let _ = running
            .queue
            .try_send(closed_event(c, &agent, agent_stream));
    }
    let known_streams = Arc::new(std::sync::atomic::AtomicU16::new(
        u16::try_from(sender.stream_count()).unwrap_or(u16::MAX),
    ));
    let queue_rx = match &cfg.spool {
        Some(spool_cfg) => {
            let spool = Spool::open(
                spool_cfg,
                stats.clone(),
                known_streams.clone(),
                agent_stream,
                agent.clone(),
            )?;
            let (to_diode, from_spool) = mpsc::channel(1024);
            tokio::spawn(spool.run(queue_rx, to_diode));
            from_spool
        }
        None => queue_rx,
    };
    info!(
        message = "Agent started.",
        agent = %cfg.agent_name,
        session = %format!("{session:016x}"),
        destination = %cfg.destination,
        key_id = cfg.diode.key.id,
    );
    let diode = tokio::spawn(diode::tx::run(
        sender,
        queue_rx,
        streams_rx,
        known_streams,
        socket,
        cfg.destination,
        diode::tx::Pacing {
            bits_per_second: cfg.link_rate_bits_per_second,
            burst: cfg.link_burst,
        },
        cfg.segmentation_offload,
        stats.clone(),
        Some(ledger),
    ));
    Ok(TxHandle {
        stats,
        sources: running.bound(),
        session,
        cfg,
        running,
        diode,
    })
}

/// The `weir` event that says a previous start ended without its final heartbeats.
fn closed_event(c: &crate::ledger::Closed, agent: &str, stream: StreamId) -> Record {
    use weir_schemas::{Event, EventClass};
    let mut e = Event::new(EventClass::Weir, chrono::Utc::now());
    e.event.kind = "event".into();
    e.event.action = Some("agent-unclean-stop".into());
    e.event.dataset = Some("weir.agent".into());
    e.event.outcome = Some("failure".into());
    e.message = Some(format!(
        "The agent's previous run (diode session {:016x}, boot {}) ended without its final heartbeats (crash, kill or power loss). It was closed from the agent's ledger after {} record(s) had been handed to the link; the receiver reports any of them that never arrived as a gap. Records not yet on the link were read again from sources that can re-read (.evtx, WEF, the spool); for plain syslog they are lost uncounted with the process.",
        c.session, c.boot, c.records
    ));
    e.weir.agent = Some(agent.to_string());
    e.weir.stream = Some("agent".into());
    Record {
        stream,
        class: EventClass::Weir,
        payload: weir_integrations::envelope::agent_record(&e).into(),
        taken: None,
    }
}
