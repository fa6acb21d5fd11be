/*!
OT-side inputs. IO only: a source reads bytes, hands them to a pure parser from
`weir_parsers`, stamps provenance and queues the serialised event for the diode.

```text
 syslog_udp ───────┐  (UDP cannot push back: a full queue drops and counts)
 syslog_tcp ───────┼─► bounded queue (tx.queue_events) ─► diode sender
 windows_json_tcp ─┘  (one task per connection; a full queue pauses reading: TCP pushes back)
```

`windows_json_tcp` is the TCP listener with newline framing and the Windows JSON reader
(`weir_parsers::windows::json`) instead of the syslog parser.
*/

pub mod admission;
pub mod capture;
pub mod evtx;
pub mod framing;
pub mod syslog_tcp;
pub mod syslog_udp;
pub mod wec;
pub mod windows_http;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::Utc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use weir_diode_proto::StreamId;
use weir_parsers::syslog::{self, ParseContext};
use weir_parsers::windows::{self, WinContext};
use weir_schemas::{Event, EventClass};

use crate::config::{Format, SyslogSource};
use crate::telemetry::TxStats;

/// Listen on the source's TCP address; returns the listener and its bound address.
pub async fn bind_tcp(
    ctx: &SourceContext,
    what: &str,
) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(ctx.cfg.address).await.with_context(|| {
        format!(
            "source {}: cannot listen on {what} {}",
            ctx.cfg.name, ctx.cfg.address
        )
    })?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Accept connections until cancelled, within the source's slots (see [`admission`]: at most
/// `max_connections` at once, `max_connections_per_address` per peer address; further ones
/// are closed and counted); each connection runs `serve` in a task of its own, its reads timed
/// out after `idle_timeout_seconds` without a byte.
pub async fn accept_loop<F, Fut>(
    ctx: SourceContext,
    listener: TcpListener,
    cancel: CancellationToken,
    serve: F,
) where
    F: Fn(SourceContext, admission::IdleTimeout<TcpStream>, SocketAddr, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    info!(message = "TCP source listening.", source = %ctx.cfg.name, format = ?ctx.cfg.format, transport = ?ctx.cfg.transport, address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default());
    let slots = admission::Admission::new(
        &ctx.cfg.name,
        ctx.cfg.max_connections,
        ctx.cfg.max_connections_per_address,
        ctx.stats.clone(),
    );
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(error) => {
                    // Out of file descriptors, for one: do not spin on it.
                    warn!(message = "TCP accept failed.", source = %ctx.cfg.name, %error);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.admit(peer.ip()) else {
            drop(stream);
            continue;
        };
        let stream = admission::IdleTimeout::new(stream, ctx.cfg.idle_timeout, ctx.stats.clone());
        let task = serve(ctx.clone(), stream, peer, cancel.clone());
        let stats = ctx.stats.clone();
        let source = ctx.cfg.name.clone();
        tokio::spawn(async move {
            // A panic while serving one connection (a bug) ends that connection only: counted
            // and logged, the slot given back, the source goes on accepting.
            let served = tokio::spawn(task).await;
            if served.is_err_and(|e| e.is_panic()) {
                stats.component_panics.inc();
                tracing::error!(message = "A connection handler panicked; that connection was closed, the source goes on.", %source, %peer);
            }
            drop(slot);
        });
    }
}

/// A serialised event on its way to the diode.
#[derive(Debug)]
pub struct Record {
    /// The diode stream (one per source).
    pub stream: StreamId,
    /// The event's class (for counters).
    pub class: EventClass,
    /// The diode record: the event's routing envelope and canonical JSON
    /// (`weir_integrations::envelope::agent_record`).
    pub payload: bytes::Bytes,
    /// Told when the record is durable on its way: its block handed to the link and the
    /// agent's session ledger on disk saying so (see `crate::ledger`), or the record synced
    /// into the spool. Sources that can re-read their input (`.evtx` files) advance their
    /// bookmarks by it; the WEF collector Acks by it.
    pub taken: Option<Taken>,
}

/// A source's position, reported back once its record is in the diode sender's (or the
/// spool's) hands.
#[derive(Debug, Clone)]
pub struct Taken {
    /// The source's high-water mark of taken positions.
    pub mark: Arc<std::sync::atomic::AtomicU64>,
    /// This record's position (1, 2, 3, ... per source run).
    pub position: u64,
}

impl Taken {
    /// Report the record as taken (positions only grow; records of one source stay in order).
    pub fn done(&self) {
        self.mark
            .fetch_max(self.position, std::sync::atomic::Ordering::Release);
    }
}

/// What every source needs to turn bytes into queued records.
#[derive(Clone)]
pub struct SourceContext {
    /// Source settings.
    pub cfg: SyslogSource,
    /// `weir.input.type`.
    pub input: &'static str,
    /// The agent's name.
    pub agent: Arc<str>,
    /// Its diode stream.
    pub stream: StreamId,
    /// Where records go.
    pub queue: mpsc::Sender<Record>,
    /// Counters.
    pub stats: Arc<TxStats>,
}

impl SourceContext {
    fn parse_context(&self, peer: SocketAddr) -> ParseContext {
        ParseContext {
            received_at: Utc::now(),
            timezone: self.cfg.timezone,
            peer: Some(peer),
            input: self.input,
            keep_original: self.cfg.keep_original,
        }
    }

    fn win_context(&self, peer: SocketAddr) -> WinContext {
        WinContext {
            received_at: Utc::now(),
            peer: Some(peer),
            input: self.input,
            keep_original: self.cfg.keep_original,
            timezone: self.cfg.timezone,
        }
    }

    /// Parse one message into a record (raw event if it does not parse).
    pub fn record(&self, bytes: &[u8], peer: SocketAddr) -> Record {
        let event = match self.cfg.format {
            Format::Syslog => syslog::normalise(bytes, &self.parse_context(peer)),
            Format::WindowsJson => windows::normalise_json(bytes, &self.win_context(peer)),
        };
        self.finish(event)
    }

    /// A raw event for bytes that could not even be framed.
    pub fn raw_record(
        &self,
        bytes: &[u8],
        peer: SocketAddr,
        code: &'static str,
        detail: &str,
    ) -> Record {
        let event = match self.cfg.format {
            Format::Syslog => syslog::raw_event(bytes, code, detail, &self.parse_context(peer)),
            Format::WindowsJson => windows::raw_event(
                &String::from_utf8_lossy(bytes),
                code,
                detail,
                &self.win_context(peer),
            ),
        };
        self.finish(event)
    }

    fn finish(&self, mut event: Event) -> Record {
        if event.weir.parse_error.is_some() {
            self.stats.parse_errors.inc();
        }
        event.weir.agent = Some(self.agent.to_string());
        event.weir.stream = Some(self.cfg.name.clone());
        let class = event.class();
        self.stats.events_received.of(class).inc();
        Record {
            stream: self.stream,
            class,
            payload: weir_integrations::envelope::agent_record(&event).into(),
            taken: None,
        }
    }
}
