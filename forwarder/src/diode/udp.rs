//! UDP socket set-up: explicit buffer sizes, and a warning naming the sysctl when the kernel
//! caps them.

use std::net::SocketAddr;

use anyhow::Result;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tracing::warn;

/// A non-blocking UDP socket bound to `addr`, with the buffer sizes requested.
pub fn bind_udp(
    addr: SocketAddr,
    recv_buffer: Option<usize>,
    send_buffer: Option<usize>,
) -> Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Some(bytes) = recv_buffer {
        socket.set_recv_buffer_size(bytes)?;
        // Linux reports twice the usable size it granted.
        let got = socket.recv_buffer_size()? / 2;
        if got < bytes {
            warn!(
                message = "Kernel capped the UDP receive buffer; datagrams may be dropped in bursts.",
                requested = bytes,
                granted = got,
                fix = %format!("sysctl -w net.core.rmem_max={bytes}"),
            );
        }
    }
    if let Some(bytes) = send_buffer {
        socket.set_send_buffer_size(bytes)?;
        let got = socket.send_buffer_size()? / 2;
        if got < bytes {
            warn!(
                message = "Kernel capped the UDP send buffer.",
                requested = bytes,
                granted = got,
                fix = %format!("sysctl -w net.core.wmem_max={bytes}"),
            );
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(UdpSocket::from_std(socket.into())?)
}
