//! UDP socket set-up: explicit buffer sizes, and a warning naming the sysctl when the kernel
//! caps them.

use std::net::SocketAddr;
use std::os::fd::AsFd;

use anyhow::Result;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tracing::warn;

use super::mmsg::{force_buffer, Buffer};

/// A non-blocking UDP socket bound to `addr`, with the buffer sizes requested.
pub fn bind_udp(
    addr: SocketAddr,
    recv_buffer: Option<usize>,
    send_buffer: Option<usize>,
) -> Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Some(bytes) = recv_buffer {
        socket.set_recv_buffer_size(bytes)?;
        if socket.recv_buffer_size()? / 2 < bytes {
            // Beyond net.core.rmem_max: allowed with CAP_NET_ADMIN.
            let _ = force_buffer(socket.as_fd(), Buffer::Receive, bytes);
        }
        warn_if_capped("receive", bytes, socket.recv_buffer_size()?, "rmem_max");
    }
    if let Some(bytes) = send_buffer {
        socket.set_send_buffer_size(bytes)?;
        if socket.send_buffer_size()? / 2 < bytes {
            let _ = force_buffer(socket.as_fd(), Buffer::Send, bytes);
        }
        warn_if_capped("send", bytes, socket.send_buffer_size()?, "wmem_max");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(UdpSocket::from_std(socket.into())?)
}

/// Linux reports twice the usable size it granted; warn with the sysctl that lifts the cap
/// (or the capability that bypasses it).
fn warn_if_capped(which: &str, requested: usize, reported: usize, sysctl: &str) {
    let granted = reported / 2;
    if granted < requested {
        warn!(
            message = "Kernel capped a UDP socket buffer; datagrams may be dropped in bursts.",
            buffer = which,
            requested,
            granted,
            fix = %format!("sysctl -w net.core.{sysctl}={requested} (or grant CAP_NET_ADMIN)"),
        );
    }
}

/// Turn on UDP GRO when `offload` asks for it and the kernel has it; returns the receive slot
/// size to use: a whole coalesced run with GRO, one datagram (the MTU) without.
pub fn receive_slot_len(socket: &UdpSocket, offload: bool, mtu_bytes: usize) -> usize {
    if !offload {
        return mtu_bytes;
    }
    match super::mmsg::enable_gro(socket.as_fd()) {
        Ok(()) => super::mmsg::GRO_SLOT_LEN,
        Err(error) => {
            warn!(message = "UDP receive offload (GRO) unavailable; receiving datagram by datagram.", %error);
            mtu_bytes
        }
    }
}
