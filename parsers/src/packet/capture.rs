//! Capture files: classic pcap (micro- and nanosecond, either byte order) and pcapng (several
//! sections and interfaces, any timestamp resolution), told apart by their first bytes, never by
//! the file name.
//!
//! Sans-IO: [`CaptureReader::next`] takes the bytes the caller has buffered and says how many it
//! used, or that it needs more. The caller owns the file and the buffer.

// Every index below follows a length check on the same slice; the fuzz targets hold that.
#![allow(clippy::indexing_slicing)]

use super::LinkType;

/// The largest packet record accepted. A record header claiming more is corruption (libpcap's own
/// limit is 256 KiB for most link types).
pub const MAX_RECORD: usize = 256 * 1024;
/// The largest pcapng block accepted (packet blocks are bounded by [`MAX_RECORD`]; other blocks,
/// such as name resolution, can be larger).
pub const MAX_BLOCK: usize = 16 * 1024 * 1024;

/// What is wrong with a capture file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// The first bytes are neither a pcap nor a pcapng magic number.
    #[error("not a pcap or pcapng capture (magic {0:08x})")]
    NotACapture(u32),
    /// A record or block header that cannot be right (a length out of bounds, a bad byte-order
    /// magic). The rest of the file cannot be framed.
    #[error("corrupt capture at byte {offset}: {reason}")]
    Corrupt {
        /// Byte offset of the bad header from the start of the file.
        offset: u64,
        /// What was wrong.
        reason: &'static str,
    },
}

/// The container format of a capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic libpcap format.
    Pcap,
    /// pcapng.
    PcapNg,
}

/// One captured packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Captured<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_nanos: i64,
    /// The link type of the interface it was captured on.
    pub link: LinkType,
    /// The bytes captured (possibly cut at the snap length).
    pub data: &'a [u8],
    /// The packet's length on the wire.
    pub orig_len: u32,
    /// The pcapng interface index (0 for pcap).
    pub interface: u32,
}

/// One item read from a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<'a> {
    /// A packet.
    Packet(Captured<'a>),
    /// pcapng interface statistics: the capturing system's own drop counters.
    Stats {
        /// Interface index.
        interface: u32,
        /// `isb_ifdrop`: packets the interface dropped.
        if_drop: Option<u64>,
        /// `isb_osdrop`: packets the operating system dropped.
        os_drop: Option<u64>,
    },
    /// A header or block that carries no packet (section header, interface description, name
    /// resolution, custom blocks).
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link: LinkType,
    /// Timestamp unit: `(multiplier, divisor)` to nanoseconds.
    unit: (u64, u64),
    offset_secs: i64,
}

#[derive(Debug, Clone)]
enum State {
    Start,
    Pcap {
        big_endian: bool,
        nanos: bool,
        link: LinkType,
    },
    PcapNg {
        big_endian: bool,
        interfaces: Vec<Interface>,
    },
}

/// A streaming reader of pcap and pcapng bytes.
#[derive(Debug, Clone)]
pub struct CaptureReader {
    state: State,
    offset: u64,
}

impl Default for CaptureReader {
    fn default() -> Self {
        CaptureReader::new()
    }
}

const PCAP_US: u32 = 0xa1b2_c3d4;
const PCAP_NS: u32 = 0xa1b2_3c4d;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;

/// Which format `head` (the first four bytes or more of a file) starts, if any.
pub fn detect(head: &[u8]) -> Option<Format> {
    let magic = u32::from_le_bytes(head.get(..4)?.try_into().ok()?);
    match magic {
        PCAPNG_SHB => Some(Format::PcapNg),
        m if m == PCAP_US
            || m == PCAP_NS
            || m.swap_bytes() == PCAP_US
            || m.swap_bytes() == PCAP_NS =>
        {
            Some(Format::Pcap)
        }
        _ => None,
    }
}

fn u16_at(b: &[u8], at: usize, be: bool) -> u16 {
    let v = [b[at], b[at + 1]];
    if be {
        u16::from_be_bytes(v)
    } else {
        u16::from_le_bytes(v)
    }
}

fn u32_at(b: &[u8], at: usize, be: bool) -> u32 {
    let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if be {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

fn u64_at(b: &[u8], at: usize, be: bool) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    if be {
        u64::from_be_bytes(v)
    } else {
        u64::from_le_bytes(v)
    }
}

impl CaptureReader {
    /// A reader positioned at the start of a file.
    pub fn new() -> CaptureReader {
        CaptureReader {
            state: State::Start,
            offset: 0,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn corrupt(&self, reason: &'static str) -> CaptureError {
        CaptureError::Corrupt {
            offset: self.offset,
            reason,
        }
    }

    /// Read the next item from `buf`, which must start where the previous call's consumed bytes
    /// ended. Returns `Ok(None)` when `buf` holds less than a whole record (feed more, or at end
    /// of file: the capture ends in a truncated record), or `Ok(Some((consumed, item)))`.
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(usize, Item<'a>)>, CaptureError> {
        let got = match &self.state {
            State::Start => self.start(buf)?,
            State::Pcap { .. } => self.pcap_record(buf)?,
            State::PcapNg { .. } => self.pcapng_block(buf)?,
        };
        if let Some((n, _)) = &got {
            self.offset += *n as u64;
        }
        Ok(got)
    }

    fn start<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(usize, Item<'a>)>, CaptureError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let magic = u32_at(buf, 0, false);
        match detect(buf) {
            Some(Format::Pcap) => {
                if buf.len() < 24 {
                    return Ok(None);
                }
                let big_endian = magic.swap_bytes() == PCAP_US || magic.swap_bytes() == PCAP_NS;
                let nanos = magic == PCAP_NS || magic.swap_bytes() == PCAP_NS;
                // The link-type field's upper bits carry FCS information (pcap-linktype(7)).
                let link = LinkType::from_code(u32_at(buf, 20, big_endian) & 0x0fff_ffff);
                self.state = State::Pcap {
                    big_endian,
                    nanos,
                    link,
                };
                Ok(Some((24, Item::Other)))
            }
            Some(Format::PcapNg) => self.pcapng_block(buf),
            None => Err(CaptureError::NotACapture(magic)),
        }
    }

    fn pcap_record<'a>(
        &mut self,
        buf: &'a [u8],
    ) -> Result<Option<(usize, Item<'a>)>, CaptureError> {
        let State::Pcap {
            big_endian: be,
            nanos,
            link,
        } = self.state
        else {
            return Ok(None);
        };
        if buf.len() < 16 {
            return Ok(None);
        }
        let secs = u32_at(buf, 0, be);
        let frac = u32_at(buf, 4, be);
        let incl = u32_at(buf, 8, be) as usize;
        let orig_len = u32_at(buf, 12, be);
        if incl > MAX_RECORD {
            return Err(self.corrupt("record length over 256 KiB"));
        }
        if (!nanos && frac >= 1_000_000) || (nanos && frac >= 1_000_000_000) {
            return Err(self.corrupt("sub-second timestamp out of range"));
        }
        if buf.len() < 16 + incl {
            return Ok(None);
        }
        let frac_ns = if nanos {
            frac as i64
        } else {
            frac as i64 * 1000
        };
        Ok(Some((
            16 + incl,
            Item::Packet(Captured {
                ts_nanos: secs as i64 * 1_000_000_000 + frac_ns,
                link,
                data: &buf[16..16 + incl],
                orig_len,
                interface: 0,
            }),
        )))
    }

    fn pcapng_block<'a>(
        &mut self,
        buf: &'a [u8],
    ) -> Result<Option<(usize, Item<'a>)>, CaptureError> {
        if buf.len() < 12 {
            return Ok(None);
        }
        let raw_type = u32_at(buf, 0, false);
        let be = if raw_type == PCAPNG_SHB {
            // A section header sets the byte order for everything up to the next one.
            let bom = u32_at(buf, 8, false);
            if bom == BYTE_ORDER_MAGIC {
                false
            } else if bom.swap_bytes() == BYTE_ORDER_MAGIC {
                true
            } else {
                return Err(self.corrupt("pcapng section header with a bad byte-order magic"));
            }
        } else {
            match &self.state {
                State::PcapNg { big_endian, .. } => *big_endian,
                _ => return Err(self.corrupt("pcapng block before a section header")),
            }
        };
        let block_type = u32_at(buf, 0, be);
        let total = u32_at(buf, 4, be) as usize;
        if total < 12 || !total.is_multiple_of(4) || total > MAX_BLOCK {
            return Err(self.corrupt("pcapng block length out of range"));
        }
        if buf.len() < total {
            return Ok(None);
        }
        if u32_at(buf, total - 4, be) as usize != total {
            return Err(self.corrupt("pcapng block lengths disagree"));
        }
        let body = &buf[8..total - 4];
        let item = match block_type {
            PCAPNG_SHB => {
                self.state = State::PcapNg {
                    big_endian: be,
                    interfaces: Vec::new(),
                };
                Item::Other
            }
            1 => {
                // Interface description.
                if body.len() < 8 {
                    return Err(self.corrupt("pcapng interface block too short"));
                }
                let link = LinkType::from_code(u16_at(body, 0, be) as u32);
                let mut iface = Interface {
                    link,
                    unit: (1000, 1),
                    offset_secs: 0,
                };
                for (code, value) in options(&body[8..], be) {
                    match (code, value.len()) {
                        (9, 1) => iface.unit = resolution(value[0]),
                        (14, 8) => iface.offset_secs = u64_at(value, 0, be) as i64,
                        _ => {}
                    }
                }
                if let State::PcapNg { interfaces, .. } = &mut self.state {
                    if interfaces.len() >= 65_536 {
                        return Err(self.corrupt("more than 65,536 pcapng interfaces"));
                    }
                    interfaces.push(iface);
                }
                Item::Other
            }
            6 | 2 => {
                // Enhanced packet block, or the obsolete packet block (16-bit interface id).
                if body.len() < 20 {
                    return Err(self.corrupt("pcapng packet block too short"));
                }
                let interface = if block_type == 6 {
                    u32_at(body, 0, be)
                } else {
                    u16_at(body, 0, be) as u32
                };
                let ts = (u64::from(u32_at(body, 4, be)) << 32) | u64::from(u32_at(body, 8, be));
                let cap = u32_at(body, 12, be) as usize;
                let orig_len = u32_at(body, 16, be);
                if cap > MAX_RECORD || 20 + cap > body.len() {
                    return Err(self.corrupt("pcapng packet length out of range"));
                }
                let iface = self.interface(interface)?;
                Item::Packet(Captured {
                    ts_nanos: iface.nanos(ts),
                    link: iface.link,
                    data: &body[20..20 + cap],
                    orig_len,
                    interface,
                })
            }
            3 => {
                // Simple packet block: interface 0, no timestamp.
                if body.len() < 4 {
                    return Err(self.corrupt("pcapng simple packet block too short"));
                }
                let orig_len = u32_at(body, 0, be);
                let cap = (orig_len as usize).min(body.len() - 4);
                let iface = self.interface(0)?;
                Item::Packet(Captured {
                    ts_nanos: 0,
                    link: iface.link,
                    data: &body[4..4 + cap],
                    orig_len,
                    interface: 0,
                })
            }
            5 => {
                // Interface statistics.
                if body.len() < 12 {
                    return Err(self.corrupt("pcapng statistics block too short"));
                }
                let interface = u32_at(body, 0, be);
                let (mut if_drop, mut os_drop) = (None, None);
                for (code, value) in options(&body[12..], be) {
                    match (code, value.len()) {
                        (5, 8) => if_drop = Some(u64_at(value, 0, be)),
                        (7, 8) => os_drop = Some(u64_at(value, 0, be)),
                        _ => {}
                    }
                }
                Item::Stats {
                    interface,
                    if_drop,
                    os_drop,
                }
            }
            _ => Item::Other,
        };
        Ok(Some((total, item)))
    }

    fn interface(&self, id: u32) -> Result<Interface, CaptureError> {
        match &self.state {
            State::PcapNg { interfaces, .. } => interfaces
                .get(id as usize)
                .copied()
                .ok_or_else(|| self.corrupt("packet names an interface never described")),
            _ => Err(self.corrupt("packet block outside a section")),
        }
    }
}

impl Interface {
    fn nanos(&self, ticks: u64) -> i64 {
        let (mul, div) = self.unit;
        let ns = (u128::from(ticks) * u128::from(mul) / u128::from(div.max(1))) as i128;
        let total = ns + i128::from(self.offset_secs) * 1_000_000_000;
        total.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }
}

/// `if_tsresol`: high bit clear, a negative power of ten; set, a negative power of two.
fn resolution(v: u8) -> (u64, u64) {
    let exp = u32::from(v & 0x7f);
    if v & 0x80 == 0 {
        if exp <= 9 {
            (10u64.pow(9 - exp), 1)
        } else {
            (1, 10u64.pow((exp - 9).min(19)))
        }
    } else if exp < 64 {
        (1_000_000_000, 1u64 << exp)
    } else {
        (1, u64::MAX)
    }
}

/// pcapng options: (code, value) until `opt_endofopt` or the end of the bytes.
fn options(mut b: &[u8], be: bool) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let code = u16_at(b, 0, be);
        let len = u16_at(b, 2, be) as usize;
        if code == 0 {
            return None;
        }
        let padded = (len + 3) & !3;
        let value = b.get(4..4 + len)?;
        b = b.get(4 + padded..).unwrap_or(&[]);
        Some((code, value))
    })
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    fn pcap_file(be: bool, nanos: bool, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let w32 = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let w16 = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut f = Vec::new();
        f.extend(w32(if nanos { PCAP_NS } else { PCAP_US }));
        f.extend(w16(2));
        f.extend(w16(4));
        f.extend(w32(0));
        f.extend(w32(0));
        f.extend(w32(65535));
        f.extend(w32(1));
        for (s, frac, data) in records {
            f.extend(w32(*s));
            f.extend(w32(*frac));
            f.extend(w32(data.len() as u32));
            f.extend(w32(data.len() as u32 + 10));
            f.extend_from_slice(data);
        }
        f
    }

    fn read_all(file: &[u8]) -> (Vec<(i64, Vec<u8>, u32)>, usize) {
        let mut r = CaptureReader::new();
        let mut at = 0;
        let mut out = Vec::new();
        while let Some((n, item)) = r.next(&file[at..]).expect("valid") {
            if let Item::Packet(p) = item {
                out.push((p.ts_nanos, p.data.to_vec(), p.orig_len));
            }
            at += n;
        }
        (out, file.len() - at)
    }

    #[test]
    fn pcap_in_both_byte_orders_and_resolutions() {
        for be in [false, true] {
            for nanos in [false, true] {
                let f = pcap_file(be, nanos, &[(10, 5, b"abc"), (11, 7, b"")]);
                let (pkts, left) = read_all(&f);
                let unit = if nanos { 1 } else { 1000 };
                assert_eq!(left, 0);
                assert_eq!(
                    pkts,
                    vec![
                        (10_000_000_000 + 5 * unit, b"abc".to_vec(), 13),
                        (11_000_000_000 + 7 * unit, Vec::new(), 10)
                    ]
                );
            }
        }
    }

    #[test]
    fn a_truncated_record_asks_for_more_and_a_huge_one_is_corrupt() {
        let f = pcap_file(false, false, &[(1, 0, b"abcdef")]);
        let (pkts, left) = read_all(&f[..f.len() - 2]);
        assert!(pkts.is_empty());
        assert_eq!(left, 16 + 4);
        let mut bad = f.clone();
        bad[24 + 8..24 + 12].copy_from_slice(&(1u32 << 30).to_le_bytes());
        let mut r = CaptureReader::new();
        let (n, _) = r.next(&bad).expect("header").expect("whole");
        assert!(matches!(
            r.next(&bad[n..]),
            Err(CaptureError::Corrupt { offset: 24, .. })
        ));
        assert_eq!(
            CaptureReader::new().next(b"GET / HTTP/1.1"),
            Err(CaptureError::NotACapture(0x2054_4547))
        );
    }

    fn block(t: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let total = (body.len() + 12) as u32;
        let mut b = Vec::new();
        b.extend(t.to_le_bytes());
        b.extend(total.to_le_bytes());
        b.extend(body);
        b.extend(total.to_le_bytes());
        b
    }

    #[test]
    fn pcapng_interfaces_resolutions_and_statistics() {
        let mut f = block(
            PCAPNG_SHB,
            &[
                0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        );
        // Interface 0: Ethernet, microseconds. Interface 1: raw IP, nanoseconds (tsresol 9).
        f.extend(block(1, &[1, 0, 0, 0, 0, 0, 0, 0]));
        f.extend(block(
            1,
            &[101, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0],
        ));
        let epb = |iface: u32, ts: u64, data: &[u8]| {
            let mut b = Vec::new();
            b.extend(iface.to_le_bytes());
            b.extend(((ts >> 32) as u32).to_le_bytes());
            b.extend((ts as u32).to_le_bytes());
            b.extend((data.len() as u32).to_le_bytes());
            b.extend((data.len() as u32).to_le_bytes());
            b.extend_from_slice(data);
            block(6, &b)
        };
        f.extend(epb(0, 1_500_000, b"xy"));
        f.extend(epb(1, 1_500_000, b"z"));
        let mut isb = Vec::new();
        isb.extend(0u32.to_le_bytes());
        isb.extend([0u8; 8]);
        isb.extend([5, 0, 8, 0]);
        isb.extend(42u64.to_le_bytes());
        isb.extend([0u8; 4]);
        f.extend(block(5, &isb));
        let mut r = CaptureReader::new();
        let mut at = 0;
        let mut items = Vec::new();
        while let Some((n, item)) = r.next(&f[at..]).expect("valid") {
            at += n;
            match item {
                Item::Packet(p) => items.push(format!("{:?} {} {:?}", p.link, p.ts_nanos, p.data)),
                Item::Stats { if_drop, .. } => items.push(format!("drop {if_drop:?}")),
                Item::Other => {}
            }
        }
        assert_eq!(at, f.len());
        assert_eq!(
            items,
            vec![
                "Ethernet 1500000000 [120, 121]".to_string(),
                "Raw 1500000 [122]".to_string(),
                "drop Some(42)".to_string()
            ]
        );
        // A packet naming an interface that was never described is corruption, not a panic.
        let mut bad = f[..f.len()].to_vec();
        bad.extend(epb(7, 0, b""));
        let mut r = CaptureReader::new();
        let mut at = 0;
        let err = loop {
            match r.next(&bad[at..]) {
                Ok(Some((n, _))) => at += n,
                Ok(None) => panic!("should fail"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, CaptureError::Corrupt { .. }));
    }
}
