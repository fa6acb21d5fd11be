//! Syslog over TCP (RFC 6587): many connections, each framed by [`super::framing`].

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::framing::{Frame, SyslogFraming};
use super::SourceContext;
use crate::config::Oversize;

/// Bind the listener and return it with its address.
pub async fn bind(ctx: &SourceContext) -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(ctx.cfg.address).await.with_context(|| {
        format!(
            "source {}: cannot listen on TCP {}",
            ctx.cfg.name, ctx.cfg.address
        )
    })?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Accept connections until cancelled; each connection runs in its own task.
pub async fn run(ctx: SourceContext, listener: TcpListener, cancel: CancellationToken) {
    info!(message = "TCP source listening.", source = %ctx.cfg.name, format = ?ctx.cfg.format, address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default());
    let slots = Arc::new(Semaphore::new(ctx.cfg.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(error) => {
                    warn!(message = "TCP accept failed.", source = %ctx.cfg.name, %error);
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            ctx.stats.connections_refused.inc();
            warn!(message = "Connection refused: max_connections reached.", source = %ctx.cfg.name, %peer);
            drop(stream);
            continue;
        };
        ctx.stats.connections_accepted.inc();
        let ctx = ctx.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            connection(&ctx, stream, peer, cancel).await;
            drop(permit);
        });
    }
}

async fn connection(
    ctx: &SourceContext,
    stream: TcpStream,
    peer: SocketAddr,
    cancel: CancellationToken,
) {
    debug!(message = "Connection opened.", source = %ctx.cfg.name, %peer);
    let mut frames = FramedRead::with_capacity(
        stream,
        SyslogFraming::new(ctx.cfg.max_message_bytes),
        64 * 1024,
    );
    loop {
        let frame = tokio::select! {
            _ = cancel.cancelled() => break,
            f = frames.next() => match f {
                Some(Ok(frame)) => frame,
                Some(Err(error)) => {
                    debug!(message = "Connection error.", source = %ctx.cfg.name, %peer, %error);
                    break;
                }
                None => break,
            },
        };
        let record = match frame {
            Frame::Message(bytes) => ctx.record(&bytes, peer),
            Frame::Oversize { head, len } => {
                ctx.stats.framing_errors.inc();
                if ctx.cfg.oversize == Oversize::Drop {
                    ctx.stats.dropped_oversize.inc();
                    continue;
                }
                let detail = match len {
                    Some(len) => format!("frame of {len} bytes cut to max_message_bytes"),
                    None => "line longer than max_message_bytes cut".to_string(),
                };
                ctx.raw_record(&head, peer, "frame_too_long", &detail)
            }
            Frame::Malformed { bytes, reason } => {
                ctx.stats.framing_errors.inc();
                ctx.raw_record(&bytes, peer, reason, &format!("RFC 6587 framing: {reason}"))
            }
        };
        // Waits when the queue is full: TCP pushes back on the sender.
        if ctx.queue.send(record).await.is_err() {
            break;
        }
    }
    debug!(message = "Connection closed.", source = %ctx.cfg.name, %peer);
}
