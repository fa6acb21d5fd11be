//! One captured frame to addresses, ports and payload: link layers (Ethernet, Linux cooked v1
//! and v2, BSD loopback, raw IP), VLAN and QinQ tags, MPLS label stacks, PPPoE sessions, IPv4
//! and IPv6 (extension headers walked), TCP, UDP, SCTP and ICMP.
//!
//! One pass, no allocation. Every length read from the wire is checked against the bytes that
//! are there. ICMP errors quote the header of the packet that caused them: those quoted headers
//! are never decoded, so they can never make a flow.

// Every index below follows a length check on the same slice; the fuzz targets hold that.
#![allow(clippy::indexing_slicing)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::LinkType;

/// Why a frame could not be decoded far enough to give an IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame ends inside a header.
    #[error("truncated {0} header")]
    Truncated(&'static str),
    /// A header field holds an impossible value.
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// The link type is not one Weir decodes.
    #[error("unsupported link type {0}")]
    UnsupportedLink(u32),
}

/// The layers of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Ethernet source address, when the link layer has one.
    pub src_mac: Option<[u8; 6]>,
    /// Ethernet destination address.
    pub dst_mac: Option<[u8; 6]>,
    /// The outer 802.1Q / 802.1ad VLAN id.
    pub vlan: Option<u16>,
    /// The inner VLAN id of a QinQ frame.
    pub inner_vlan: Option<u16>,
    /// The top MPLS label, when the frame was label-switched.
    pub mpls_label: Option<u32>,
    /// What the link layer carried.
    pub net: Net<'a>,
}

/// The network layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net<'a> {
    /// IPv4 or IPv6.
    Ip(Ip<'a>),
    /// An ARP request or reply over Ethernet/IPv4.
    Arp(Arp),
    /// Something else (LLDP, STP, PROFINET RT, GOOSE, ...), by EtherType.
    Other(u16),
}

/// ARP: who has which address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// 1 request, 2 reply.
    pub op: u16,
    /// Sender hardware address.
    pub sender_mac: [u8; 6],
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

/// An IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// The transport protocol number (after IPv6 extension headers).
    pub proto: u8,
    /// Bytes of the IP packet as sent (IPv4 total length; IPv6 40 + payload length), not what
    /// was captured and not the link-layer padding.
    pub ip_len: u32,
    /// Time to live / hop limit.
    pub ttl: u8,
    /// The transport layer.
    pub transport: Transport<'a>,
}

/// The transport layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// TCP.
    Tcp(Tcp<'a>),
    /// UDP.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Payload (as far as captured, never past the UDP length).
        payload: &'a [u8],
    },
    /// SCTP: only ports are read.
    Sctp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// ICMP (v4 or v6): type and code; the quoted packet in an error is not decoded.
    Icmp {
        /// ICMP type.
        kind: u8,
        /// ICMP code.
        code: u8,
    },
    /// A non-first IPv4/IPv6 fragment: no transport header.
    Fragment,
    /// A transport header cut short by the snap length.
    Truncated,
    /// Any other protocol.
    Other,
}

/// A TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20, ECE, CWR).
    pub flags: u8,
    /// Receive window.
    pub window: u16,
    /// Payload length as sent (from the IP length), which may exceed `payload.len()` when the
    /// capture was cut.
    pub payload_len: u32,
    /// Payload as captured.
    pub payload: &'a [u8],
}

/// TCP flag bits.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn mac(b: &[u8]) -> [u8; 6] {
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_IPV6: u16 = 0x86dd;
const ETH_MPLS: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;
const ETH_PPPOE: u16 = 0x8864;

/// Decode one frame of link type `link`.
pub fn decode(link: LinkType, data: &[u8]) -> Result<Frame<'_>, DecodeError> {
    let mut frame = Frame {
        src_mac: None,
        dst_mac: None,
        vlan: None,
        inner_vlan: None,
        mpls_label: None,
        net: Net::Other(0),
    };
    let (ethertype, rest) = match link {
        LinkType::Ethernet => {
            if data.len() < 14 {
                return Err(DecodeError::Truncated("ethernet"));
            }
            frame.dst_mac = Some(mac(&data[0..6]));
            frame.src_mac = Some(mac(&data[6..12]));
            (be16(data, 12), &data[14..])
        }
        LinkType::LinuxSll => {
            if data.len() < 16 {
                return Err(DecodeError::Truncated("linux cooked"));
            }
            if be16(data, 4) == 6 {
                frame.src_mac = Some(mac(&data[6..12]));
            }
            (be16(data, 14), &data[16..])
        }
        LinkType::LinuxSll2 => {
            if data.len() < 20 {
                return Err(DecodeError::Truncated("linux cooked v2"));
            }
            if data[11] == 6 {
                frame.src_mac = Some(mac(&data[12..18]));
            }
            (be16(data, 0), &data[20..])
        }
        LinkType::Null | LinkType::Loop => {
            if data.len() < 4 {
                return Err(DecodeError::Truncated("loopback"));
            }
            // DLT_NULL holds the address family in the capturing host's byte order; DLT_LOOP
            // in network order. 2 is AF_INET everywhere; AF_INET6 is 10, 24, 28 or 30.
            let le = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            let family = if le > 0xffff { le.swap_bytes() } else { le };
            let ethertype = match family {
                2 => ETH_IPV4,
                10 | 24 | 28 | 30 => ETH_IPV6,
                _ => return Ok(frame),
            };
            (ethertype, &data[4..])
        }
        LinkType::Raw => (raw_ethertype(data), data),
        LinkType::Ipv4 => (ETH_IPV4, data),
        LinkType::Ipv6 => (ETH_IPV6, data),
        LinkType::Other(code) => return Err(DecodeError::UnsupportedLink(code)),
    };
    frame.net = network(&mut frame, ethertype, rest)?;
    Ok(frame)
}

fn raw_ethertype(data: &[u8]) -> u16 {
    match data.first().map(|b| b >> 4) {
        Some(4) => ETH_IPV4,
        Some(6) => ETH_IPV6,
        _ => 0,
    }
}

fn network<'a>(
    frame: &mut Frame<'a>,
    mut ethertype: u16,
    mut rest: &'a [u8],
) -> Result<Net<'a>, DecodeError> {
    // Tags and labels, a bounded number of them.
    for _ in 0..8 {
        match ethertype {
            ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD => {
                if rest.len() < 4 {
                    return Err(DecodeError::Truncated("vlan"));
                }
                let id = be16(rest, 0) & 0x0fff;
                if frame.vlan.is_none() {
                    frame.vlan = Some(id);
                } else if frame.inner_vlan.is_none() {
                    frame.inner_vlan = Some(id);
                }
                ethertype = be16(rest, 2);
                rest = &rest[4..];
            }
            ETH_MPLS | ETH_MPLS_MC => {
                let mut bottom = false;
                for _ in 0..16 {
                    if rest.len() < 4 {
                        return Err(DecodeError::Truncated("mpls"));
                    }
                    let entry = be32(rest, 0);
                    if frame.mpls_label.is_none() {
                        frame.mpls_label = Some(entry >> 12);
                    }
                    rest = &rest[4..];
                    if entry & 0x100 != 0 {
                        bottom = true;
                        break;
                    }
                }
                if !bottom {
                    return Err(DecodeError::Malformed("mpls"));
                }
                // MPLS does not say what it carries: IP by its version nibble (an Ethernet
                // pseudowire with a control word starts with a zero nibble).
                ethertype = match rest.first().map(|b| b >> 4) {
                    Some(4) => ETH_IPV4,
                    Some(6) => ETH_IPV6,
                    Some(0) if rest.len() >= 18 => {
                        let inner = &rest[4..];
                        frame.dst_mac = Some(mac(&inner[0..6]));
                        frame.src_mac = Some(mac(&inner[6..12]));
                        rest = &inner[14..];
                        be16(inner, 12)
                    }
                    _ => return Ok(Net::Other(ETH_MPLS)),
                };
            }
            ETH_PPPOE => {
                if rest.len() < 8 {
                    return Err(DecodeError::Truncated("pppoe"));
                }
                ethertype = match be16(rest, 6) {
                    0x0021 => ETH_IPV4,
                    0x0057 => ETH_IPV6,
                    _ => return Ok(Net::Other(ETH_PPPOE)),
                };
                rest = &rest[8..];
            }
            _ => break,
        }
    }
    match ethertype {
        ETH_IPV4 => ipv4(rest).map(Net::Ip),
        ETH_IPV6 => ipv6(rest).map(Net::Ip),
        ETH_ARP => Ok(arp(rest).map_or(Net::Other(ETH_ARP), Net::Arp)),
        other => Ok(Net::Other(other)),
    }
}

fn arp(b: &[u8]) -> Option<Arp> {
    // Ethernet hardware (1), IPv4 protocol, 6- and 4-byte addresses.
    if b.len() < 28 || be16(b, 0) != 1 || be16(b, 2) != ETH_IPV4 || b[4] != 6 || b[5] != 4 {
        return None;
    }
    Some(Arp {
        op: be16(b, 6),
        sender_mac: mac(&b[8..14]),
        sender_ip: Ipv4Addr::new(b[14], b[15], b[16], b[17]),
        target_ip: Ipv4Addr::new(b[24], b[25], b[26], b[27]),
    })
}

fn ipv4(b: &[u8]) -> Result<Ip<'_>, DecodeError> {
    if b.len() < 20 {
        return Err(DecodeError::Truncated("ipv4"));
    }
    if b[0] >> 4 != 4 {
        return Err(DecodeError::Malformed("ipv4"));
    }
    let ihl = usize::from(b[0] & 0x0f) * 4;
    let total = usize::from(be16(b, 2));
    if ihl < 20 || b.len() < ihl {
        return Err(DecodeError::Malformed("ipv4"));
    }
    // TCP segmentation offload on the capturing host writes 0 as the total length.
    let total = if total == 0 { b.len() } else { total };
    if total < ihl {
        return Err(DecodeError::Malformed("ipv4"));
    }
    let frag = be16(b, 6);
    let proto = b[9];
    let src = IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(b[16], b[17], b[18], b[19]));
    let payload = &b[ihl..total.min(b.len())];
    let sent = total - ihl;
    let transport = if frag & 0x1fff != 0 {
        Transport::Fragment
    } else {
        transport(proto, payload, sent)
    };
    Ok(Ip {
        src,
        dst,
        proto,
        ip_len: total as u32,
        ttl: b[8],
        transport,
    })
}

fn ipv6(b: &[u8]) -> Result<Ip<'_>, DecodeError> {
    if b.len() < 40 {
        return Err(DecodeError::Truncated("ipv6"));
    }
    if b[0] >> 4 != 6 {
        return Err(DecodeError::Malformed("ipv6"));
    }
    let payload_len = usize::from(be16(b, 4));
    let mut next = b[6];
    let hop = b[7];
    let src = IpAddr::V6(Ipv6Addr::from(
        <[u8; 16]>::try_from(&b[8..24]).map_err(|_| DecodeError::Truncated("ipv6"))?,
    ));
    let dst = IpAddr::V6(Ipv6Addr::from(
        <[u8; 16]>::try_from(&b[24..40]).map_err(|_| DecodeError::Truncated("ipv6"))?,
    ));
    // A zero payload length is a jumbogram or offloaded segment: take what was captured.
    let payload_len = if payload_len == 0 {
        b.len() - 40
    } else {
        payload_len
    };
    let mut rest = &b[40..(40 + payload_len).min(b.len())];
    let mut sent = payload_len;
    let mut fragment = false;
    for _ in 0..8 {
        let len = match next {
            0 | 43 | 60 | 135 | 139 | 140 => {
                if rest.len() < 2 {
                    return Ok(ip6(src, dst, next, payload_len, hop, Transport::Truncated));
                }
                (usize::from(rest[1]) + 1) * 8
            }
            51 => {
                if rest.len() < 2 {
                    return Ok(ip6(src, dst, next, payload_len, hop, Transport::Truncated));
                }
                (usize::from(rest[1]) + 2) * 4
            }
            44 => {
                if rest.len() < 8 {
                    return Ok(ip6(src, dst, next, payload_len, hop, Transport::Truncated));
                }
                if be16(rest, 2) & 0xfff8 != 0 {
                    fragment = true;
                }
                8
            }
            _ => break,
        };
        if rest.len() < len {
            return Ok(ip6(src, dst, next, payload_len, hop, Transport::Truncated));
        }
        next = rest[0];
        rest = &rest[len..];
        sent = sent.saturating_sub(len);
        if fragment {
            return Ok(ip6(src, dst, next, payload_len, hop, Transport::Fragment));
        }
    }
    let t = transport(next, rest, sent);
    Ok(ip6(src, dst, next, payload_len, hop, t))
}

fn ip6<'a>(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    payload_len: usize,
    ttl: u8,
    transport: Transport<'a>,
) -> Ip<'a> {
    Ip {
        src,
        dst,
        proto,
        ip_len: 40 + payload_len as u32,
        ttl,
        transport,
    }
}

/// `b` is the captured transport bytes, `sent` how many the IP header says were sent.
fn transport(proto: u8, b: &[u8], sent: usize) -> Transport<'_> {
    match proto {
        6 => {
            if b.len() < 20 {
                return Transport::Truncated;
            }
            let offset = usize::from(b[12] >> 4) * 4;
            if offset < 20 || b.len() < offset {
                return Transport::Truncated;
            }
            Transport::Tcp(Tcp {
                src_port: be16(b, 0),
                dst_port: be16(b, 2),
                seq: be32(b, 4),
                ack: be32(b, 8),
                flags: b[13],
                window: be16(b, 14),
                payload_len: sent.saturating_sub(offset) as u32,
                payload: &b[offset..],
            })
        }
        17 => {
            if b.len() < 8 {
                return Transport::Truncated;
            }
            let len = usize::from(be16(b, 4)).max(8);
            Transport::Udp {
                src_port: be16(b, 0),
                dst_port: be16(b, 2),
                payload: &b[8..len.min(b.len())],
            }
        }
        132 => {
            if b.len() < 4 {
                return Transport::Truncated;
            }
            Transport::Sctp {
                src_port: be16(b, 0),
                dst_port: be16(b, 2),
            }
        }
        1 | 58 => {
            if b.len() < 2 {
                return Transport::Truncated;
            }
            Transport::Icmp {
                kind: b[0],
                code: b[1],
            }
        }
        _ => Transport::Other,
    }
}

impl<'a> Transport<'a> {
    /// Source and destination ports of TCP, UDP and SCTP.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match *self {
            Transport::Tcp(t) => Some((t.src_port, t.dst_port)),
            Transport::Udp {
                src_port, dst_port, ..
            }
            | Transport::Sctp { src_port, dst_port } => Some((src_port, dst_port)),
            _ => None,
        }
    }

    /// The application payload of TCP and UDP.
    pub fn payload(&self) -> &'a [u8] {
        match *self {
            Transport::Tcp(t) => t.payload,
            Transport::Udp { payload, .. } => payload,
            _ => &[],
        }
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    /// IPv4/UDP 10.0.0.1:1000 -> 10.0.0.2:502 with a 4-byte payload.
    fn ipv4_udp() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend_from_slice(&[0x03, 0xe8, 0x01, 0xf6, 0, 12, 0, 0, 1, 2, 3, 4]);
        p
    }

    fn eth(ethertype: u16, tags: &[u8], inner: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(tags);
        f.extend_from_slice(inner);
        f
    }

    fn udp_of(f: &Frame<'_>) -> (IpAddr, IpAddr, Option<(u16, u16)>, usize) {
        let Net::Ip(ip) = f.net else {
            panic!("not IP: {f:?}")
        };
        (
            ip.src,
            ip.dst,
            ip.transport.ports(),
            ip.transport.payload().len(),
        )
    }

    #[test]
    fn qinq_mpls_and_pppoe_are_unwrapped() {
        let want = (
            "10.0.0.1"
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            Some((1000u16, 502u16)),
            4usize,
        );
        // QinQ: 802.1ad outer 100, 802.1Q inner 200.
        let q = eth(
            0x88a8,
            &[0x00, 100, 0x81, 0x00, 0x00, 200, 0x08, 0x00],
            &ipv4_udp(),
        );
        let f = decode(LinkType::Ethernet, &q).expect("qinq");
        assert_eq!((f.vlan, f.inner_vlan), (Some(100), Some(200)));
        let (src, _, ports, n) = udp_of(&f);
        assert_eq!((src, ports, n), want);
        // Two MPLS labels (16, then 17 bottom of stack) over IPv4.
        let m = eth(
            0x8847,
            &[0x00, 0x01, 0x00, 0x40, 0x00, 0x01, 0x11, 0x40],
            &ipv4_udp(),
        );
        let f = decode(LinkType::Ethernet, &m).expect("mpls");
        assert_eq!(f.mpls_label, Some(16));
        assert_eq!(udp_of(&f).2, Some((1000, 502)));
        // PPPoE session carrying IPv4.
        let p = eth(
            0x8864,
            &[0x11, 0x00, 0x00, 0x01, 0x00, 34, 0x00, 0x21],
            &ipv4_udp(),
        );
        assert_eq!(
            udp_of(&decode(LinkType::Ethernet, &p).expect("pppoe")).2,
            Some((1000, 502))
        );
        // Ethernet padding after a short IP packet is not payload.
        let mut padded = eth(0x0800, &[], &ipv4_udp());
        padded.extend_from_slice(&[0; 14]);
        assert_eq!(
            udp_of(&decode(LinkType::Ethernet, &padded).expect("padded")).3,
            4
        );
    }

    #[test]
    fn cooked_loopback_and_raw_link_types() {
        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 9, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ipv4_udp());
        let f = decode(LinkType::LinuxSll, &sll).expect("sll");
        assert_eq!(f.src_mac, Some([2, 0, 0, 0, 0, 9]));
        assert_eq!(udp_of(&f).2, Some((1000, 502)));
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 7, 0, 0,
        ];
        sll2.extend_from_slice(&ipv4_udp());
        assert_eq!(
            udp_of(&decode(LinkType::LinuxSll2, &sll2).expect("sll2")).2,
            Some((1000, 502))
        );
        for family in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
            let mut null = family.to_vec();
            null.extend_from_slice(&ipv4_udp());
            assert_eq!(
                udp_of(&decode(LinkType::Null, &null).expect("null")).2,
                Some((1000, 502))
            );
        }
        assert_eq!(
            udp_of(&decode(LinkType::Raw, &ipv4_udp()).expect("raw")).2,
            Some((1000, 502))
        );
    }

    #[test]
    fn ipv6_extension_headers_fragments_and_icmp_errors() {
        // IPv6 with a hop-by-hop header, then UDP.
        let mut p = vec![0x60, 0, 0, 0, 0, 8 + 12, 0, 64];
        p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        p.extend_from_slice(&[0x03, 0xe8, 0x01, 0xf6, 0, 12, 0, 0, 1, 2, 3, 4]);
        let f = decode(LinkType::Ipv6, &p).expect("v6");
        let Net::Ip(ip) = f.net else { panic!("not IP") };
        assert_eq!(
            (ip.proto, ip.transport.ports(), ip.ip_len),
            (17, Some((1000, 502)), 60)
        );
        // A non-first IPv4 fragment has no transport header.
        let mut frag = ipv4_udp();
        frag[6] = 0x00;
        frag[7] = 0x10;
        let Net::Ip(ip) = decode(LinkType::Raw, &frag).expect("frag").net else {
            panic!("not IP")
        };
        assert_eq!(ip.transport, Transport::Fragment);
        // ICMP destination unreachable quoting a UDP packet: only type and code are read.
        let mut icmp = vec![
            0x45, 0, 0, 56, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 9, 10, 0, 0, 1, 3, 3, 0, 0, 0, 0, 0,
            0,
        ];
        icmp.extend_from_slice(&ipv4_udp());
        let Net::Ip(ip) = decode(LinkType::Raw, &icmp).expect("icmp").net else {
            panic!("not IP")
        };
        assert_eq!(ip.transport, Transport::Icmp { kind: 3, code: 3 });
        assert_eq!(ip.transport.ports(), None);
    }

    #[test]
    fn truncation_is_an_error_or_a_truncated_transport_never_a_panic() {
        let full = eth(0x0800, &[], &ipv4_udp());
        for cut in 0..full.len() {
            let _ = decode(LinkType::Ethernet, &full[..cut]);
        }
        assert_eq!(
            decode(LinkType::Ethernet, &full[..10]),
            Err(DecodeError::Truncated("ethernet"))
        );
        assert_eq!(
            decode(LinkType::Other(147), &full),
            Err(DecodeError::UnsupportedLink(147))
        );
    }
}
