//! Syslog over TCP (RFC 6587): many connections, each framed by [`super::framing`].

use std::net::SocketAddr;

use anyhow::Result;
use futures_util::StreamExt;
use tokio::net::{TcpListener, TcpStream};

use super::admission::IdleTimeout;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::framing::{Frame, SyslogFraming};
use super::SourceContext;
use crate::config::Oversize;

/// Bind the listener and return it with its address.
pub async fn bind(ctx: &SourceContext) -> Result<(TcpListener, SocketAddr)> {
    super::bind_tcp(ctx, "TCP").await
}

/// Accept connections until cancelled; each connection runs in its own task.
pub async fn run(ctx: SourceContext, listener: TcpListener, cancel: CancellationToken) {
    super::accept_loop(
        ctx,
        listener,
        cancel,
        |ctx, stream, peer, cancel| async move {
            connection(&ctx, stream, peer, cancel).await;
        },
    )
    .await;
}

async fn connection(
    ctx: &SourceContext,
    stream: IdleTimeout<TcpStream>,
    peer: SocketAddr,
    cancel: CancellationToken,
) {
    debug!(message = "Connection opened.", source = %ctx.cfg.name, %peer);
    if failpoint_connection_panic() {
        panic!("failpoint WEIR_FAILPOINT=connection-panic");
    }
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

/// `WEIR_FAILPOINT=connection-panic` makes the first connection's handler panic, once (for the
/// supervision test; never set in production).
fn failpoint_connection_panic() -> bool {
    static FIRED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    std::env::var_os("WEIR_FAILPOINT").is_some_and(|v| v == "connection-panic")
        && !FIRED.swap(true, std::sync::atomic::Ordering::Relaxed)
}
