//! Community ID flow hashing, version 1 (<https://github.com/corelight/community-id-spec>).
//!
//! `1:` + base64(SHA-1(seed ‖ src ip ‖ dst ip ‖ proto ‖ 0 ‖ src port ‖ dst port)), with the
//! endpoints ordered so that both directions of a flow hash alike. ICMP and ICMPv6 use the
//! message type as the source "port" and the type of its counterpart (echo request ↔ reply, ...)
//! as the destination "port"; a message with no counterpart is one-way: its code is the
//! destination port and its endpoints are not reordered.

use std::net::IpAddr;

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// ICMPv4 types with a counterpart.
fn icmp4_pair(t: u8) -> Option<u8> {
    Some(match t {
        8 => 0,
        0 => 8,
        13 => 14,
        14 => 13,
        15 => 16,
        16 => 15,
        10 => 9,
        9 => 10,
        17 => 18,
        18 => 17,
        _ => return None,
    })
}

/// ICMPv6 types with a counterpart.
fn icmp6_pair(t: u8) -> Option<u8> {
    Some(match t {
        128 => 129,
        129 => 128,
        133 => 134,
        134 => 133,
        135 => 136,
        136 => 135,
        130 => 131,
        131 => 130,
        144 => 145,
        145 => 144,
        139 => 140,
        140 => 139,
        _ => return None,
    })
}

/// The "ports" Community ID uses for an ICMP message of `kind` and `code`, and whether the
/// message is one-way.
pub fn icmp_ports(v6: bool, kind: u8, code: u8) -> (u16, u16, bool) {
    let pair = if v6 {
        icmp6_pair(kind)
    } else {
        icmp4_pair(kind)
    };
    match pair {
        Some(other) => (u16::from(kind), u16::from(other), false),
        None => (u16::from(kind), u16::from(code), true),
    }
}

/// The Community ID of a packet or flow. `ports` is `None` for protocols without ports; for
/// ICMP pass the values of [`icmp_ports`] and its one-way flag.
pub fn community_id(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ports: Option<(u16, u16)>,
    one_way: bool,
) -> String {
    let (mut a, mut b) = (src, dst);
    let mut ports = ports;
    let ordered = match (ports, a.cmp(&b)) {
        (_, std::cmp::Ordering::Less) => true,
        (Some((sp, dp)), std::cmp::Ordering::Equal) => sp <= dp,
        (None, std::cmp::Ordering::Equal) => true,
        (_, std::cmp::Ordering::Greater) => false,
    };
    if !one_way && !ordered {
        std::mem::swap(&mut a, &mut b);
        ports = ports.map(|(s, d)| (d, s));
    }
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    addr(&mut h, a);
    addr(&mut h, b);
    h.update([proto, 0]);
    if let Some((s, d)) = ports {
        h.update(s.to_be_bytes());
        h.update(d.to_be_bytes());
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(30);
    out.push_str("1:");
    base64::engine::general_purpose::STANDARD.encode_string(digest, &mut out);
    out
}

fn addr(h: &mut Sha1, a: IpAddr) {
    match a {
        IpAddr::V4(v4) => h.update(v4.octets()),
        IpAddr::V6(v6) => h.update(v6.octets()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_readme_examples() {
        // From the spec's README and the oracle: tcp.pcap and udp.pcap flows.
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(
            community_id(
                0,
                ip("128.232.110.120"),
                ip("66.35.250.204"),
                6,
                Some((34855, 80)),
                false
            ),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        assert_eq!(
            community_id(
                0,
                ip("66.35.250.204"),
                ip("128.232.110.120"),
                6,
                Some((80, 34855)),
                false
            ),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
    }
}
