//! Packets from a SPAN port or a capture file: capture-file framing ([`capture`]), frame
//! decoding ([`decode`]), Community ID ([`community_id`]) and the flow table ([`flow`]).
//!
//! Pure: packets and their timestamps go in, records come out. Time is the packets' own, so a
//! replayed capture gives the same records every time.

pub mod capture;
pub mod community_id;
pub mod decode;
pub mod flow;

/// A link-layer header type (`LINKTYPE_*` of pcap-linktype(7)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// `LINKTYPE_ETHERNET` (1).
    Ethernet,
    /// `LINKTYPE_LINUX_SLL` (113): Linux "cooked" capture, as `tcpdump -i any` writes.
    LinuxSll,
    /// `LINKTYPE_LINUX_SLL2` (276).
    LinuxSll2,
    /// `LINKTYPE_NULL` (0): BSD loopback, family in host byte order.
    Null,
    /// `LINKTYPE_LOOP` (108): OpenBSD loopback, family in network byte order.
    Loop,
    /// `LINKTYPE_RAW` (101, and the DLT values 12 and 14 some files carry): bare IP.
    Raw,
    /// `LINKTYPE_IPV4` (228).
    Ipv4,
    /// `LINKTYPE_IPV6` (229).
    Ipv6,
    /// Anything else.
    Other(u32),
}

impl LinkType {
    /// The link type a pcap header or pcapng interface block names.
    pub fn from_code(code: u32) -> LinkType {
        match code {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            101 | 12 | 14 => LinkType::Raw,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            other => LinkType::Other(other),
        }
    }

    /// The `LINKTYPE_*` number.
    pub fn code(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
            LinkType::Null => 0,
            LinkType::Loop => 108,
            LinkType::Raw => 101,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::Other(c) => c,
        }
    }
}
