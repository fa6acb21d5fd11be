//! Syslog over UDP (RFC 5426): one message per datagram.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::SourceContext;
use crate::config::Oversize;

/// Bind the socket (so that errors surface at start-up) and return it with its address.
pub async fn bind(ctx: &SourceContext) -> Result<(UdpSocket, SocketAddr)> {
    let socket = crate::diode::udp::bind_udp(ctx.cfg.address, ctx.cfg.receive_buffer_bytes, None)
        .with_context(|| {
        format!(
            "source {}: cannot bind UDP {}",
            ctx.cfg.name, ctx.cfg.address
        )
    })?;
    let local = socket.local_addr()?;
    Ok((socket, local))
}

/// Read datagrams until cancelled.
pub async fn run(ctx: SourceContext, socket: UdpSocket, cancel: CancellationToken) {
    info!(message = "Syslog UDP source listening.", source = %ctx.cfg.name, address = %socket.local_addr().map(|a| a.to_string()).unwrap_or_default());
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(error) => {
                    warn!(message = "UDP receive failed.", source = %ctx.cfg.name, %error);
                    continue;
                }
            },
        };
        let Some(datagram) = buf.get(..n) else {
            continue;
        };
        let record = if n > ctx.cfg.max_message_bytes {
            ctx.stats.framing_errors.inc();
            match ctx.cfg.oversize {
                Oversize::Drop => {
                    ctx.stats.dropped_oversize.inc();
                    continue;
                }
                Oversize::Truncate => ctx.raw_record(
                    datagram
                        .get(..ctx.cfg.max_message_bytes)
                        .unwrap_or(datagram),
                    peer,
                    "frame_too_long",
                    &format!("datagram of {n} bytes cut to max_message_bytes"),
                ),
            }
        } else {
            ctx.record(datagram, peer)
        };
        match ctx.queue.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => ctx.stats.dropped_queue_full.inc(),
            Err(TrySendError::Closed(_)) => break,
        }
    }
}
