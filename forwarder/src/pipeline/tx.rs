//! Start and stop the OT-side agent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;
use weir_diode_proto::{Sender, SenderConfig};

use crate::config::{Format, Transport, TxConfig};
use crate::diode;
use crate::sources::{self, SourceContext};
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
    cancel: CancellationToken,
    diode: JoinHandle<()>,
}

impl TxHandle {
    /// Stop the sources, send everything queued and a last heartbeat, and return.
    pub async fn shutdown(self) -> Result<()> {
        self.cancel.cancel();
        self.diode
            .await
            .map_err(|e| anyhow!("diode sender task failed: {e}"))
    }
}

/// A random session epoch (never 0).
pub fn random_session() -> Result<u64> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| anyhow!("no randomness from the OS: {e}"))?;
    Ok(u64::from_be_bytes(b).max(1))
}

/// Bind every socket and start the agent.
pub async fn start(cfg: TxConfig) -> Result<TxHandle> {
    let session = random_session()?;
    let mut sender = Sender::new(
        SenderConfig {
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
        },
        Instant::now(),
    )
    .map_err(|e| anyhow!("diode settings: {e}"))?;
    let socket = diode::udp::bind_udp(cfg.bind, None, Some(cfg.send_buffer_bytes))
        .with_context(|| format!("cannot bind diode socket {}", cfg.bind))?;
    let stats = Arc::new(TxStats::default());
    let cancel = CancellationToken::new();
    let (queue_tx, queue_rx) = mpsc::channel(cfg.queue_events);
    let agent: Arc<str> = Arc::from(cfg.agent_name.as_str());
    let mut bound = Vec::new();
    for source in &cfg.sources {
        let stream = sender.add_stream(&source.name);
        let input = match (source.transport, source.format) {
            (Transport::Udp, _) => "syslog_udp",
            (Transport::Tcp, Format::Syslog) => "syslog_tcp",
            (Transport::Tcp, Format::WindowsJson) => "windows_json_tcp",
            (Transport::Http, _) => "windows_json_http",
        };
        let ctx = SourceContext {
            cfg: source.clone(),
            input,
            agent: agent.clone(),
            stream,
            queue: queue_tx.clone(),
            stats: stats.clone(),
        };
        match source.transport {
            Transport::Udp => {
                let (socket, addr) = sources::syslog_udp::bind(&ctx).await?;
                bound.push((source.name.clone(), addr));
                tokio::spawn(sources::syslog_udp::run(ctx, socket, cancel.clone()));
            }
            Transport::Tcp => {
                let (listener, addr) = sources::syslog_tcp::bind(&ctx).await?;
                bound.push((source.name.clone(), addr));
                tokio::spawn(sources::syslog_tcp::run(ctx, listener, cancel.clone()));
            }
            Transport::Http => {
                let (listener, addr) = sources::windows_http::bind(&ctx).await?;
                bound.push((source.name.clone(), addr));
                tokio::spawn(sources::windows_http::run(ctx, listener, cancel.clone()));
            }
        }
    }
    for source in &cfg.evtx_sources {
        sources::evtx::prepare(source)?;
        let ctx = sources::evtx::EvtxContext {
            cfg: source.clone(),
            agent: agent.clone(),
            stream: sender.add_stream(&source.name),
            queue: queue_tx.clone(),
            stats: stats.clone(),
        };
        tokio::spawn(sources::evtx::run(ctx, cancel.clone()));
    }
    for source in &cfg.capture_sources {
        let ctx = sources::capture::CaptureContext {
            cfg: source.clone(),
            agent: agent.clone(),
            stream: sender.add_stream(&source.name),
            queue: queue_tx.clone(),
            stats: stats.clone(),
        };
        sources::capture::spawn(ctx, cancel.clone())
            .with_context(|| format!("source {}: cannot start its thread", source.name))?;
    }
    for source in &cfg.wec_sources {
        let prepared = sources::wec::bind(source).await?;
        bound.push((source.name.clone(), prepared.local_addr()));
        let ctx = sources::wec::WecContext {
            cfg: source.clone(),
            agent: agent.clone(),
            stream: sender.add_stream(&source.name),
            queue: queue_tx.clone(),
            stats: stats.clone(),
        };
        tokio::spawn(sources::wec::run(ctx, prepared, cancel.clone()));
    }
    // Only the sources hold the queue now: when they all stop, the diode task drains and ends.
    drop(queue_tx);
    // The agent's own events (spool reports), and spooled records of streams gone since.
    let agent_stream = sender.add_stream("agent");
    let queue_rx = match &cfg.spool {
        Some(spool_cfg) => {
            let streams = u16::try_from(
                cfg.sources.len()
                    + cfg.evtx_sources.len()
                    + cfg.capture_sources.len()
                    + cfg.wec_sources.len(),
            )
            .unwrap_or(u16::MAX);
            let spool = Spool::open(
                spool_cfg,
                stats.clone(),
                streams,
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
        socket,
        cfg.destination,
        cfg.link_rate_bits_per_second,
        cfg.segmentation_offload,
        stats.clone(),
    ));
    Ok(TxHandle {
        stats,
        sources: bound,
        session,
        cancel,
        diode,
    })
}
