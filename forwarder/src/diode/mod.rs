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

/// Bytes a datagram occupies on an Ethernet link beyond its UDP payload: IPv4 (20) + UDP (8) +
/// Ethernet header and FCS (18) + preamble and inter-frame gap (20). Pacing counts them, so
/// `link_rate_bits_per_second` is the line rate.
pub const WIRE_OVERHEAD_BYTES: usize = 66;
