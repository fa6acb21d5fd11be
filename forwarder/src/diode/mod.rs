/*!
The IO drivers around `weir_diode_proto`: sockets, timers and pacing. The protocol logic lives
in the sans-IO crate; these loops only move bytes and deadlines.

One-way by construction: the sender's socket is never read, the receiver's socket is never
written to.
*/

pub mod mmsg;
pub mod rx;
pub mod tx;
pub mod udp;

use weir_diode_proto::sender::IpVersion;

/// Ethernet header and FCS (18) + preamble and inter-frame gap (20): what a frame occupies on
/// the wire beyond its IP packet.
pub const ETHERNET_OVERHEAD_BYTES: usize = 38;

/// Bytes a datagram occupies on an Ethernet link beyond its UDP payload: IP and UDP headers
/// (28 for IPv4, 48 for IPv6) and [`ETHERNET_OVERHEAD_BYTES`]. Pacing counts them, so
/// `link_rate_bits_per_second` is the line rate.
pub fn wire_overhead_bytes(ip: IpVersion) -> usize {
    ip.ip_udp_overhead() + ETHERNET_OVERHEAD_BYTES
}
