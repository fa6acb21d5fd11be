//! DNP3 (IEEE 1815): link frames with their CRCs checked, transport-segment reassembly into
//! application fragments, application function codes, IIN bits, object headers with a summary
//! of what they carry, and control relay output blocks / analog outputs in detail.
//!
//! Pure: [`frame_len`] delimits link frames in a byte stream; [`link`] checks and unpacks one;
//! [`Reassembly`] joins transport segments; [`parse_app`] reads an application fragment.

// Every index below follows a length check on the same slice; the fuzz target holds that.
#![allow(clippy::indexing_slicing)]

use super::Action;

/// Why bytes are not DNP3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Dnp3Error {
    /// No `05 64` start, or a length below 5.
    #[error("not a DNP3 link frame")]
    NotDnp3,
    /// A link-header or data-block CRC does not match.
    #[error("DNP3 CRC mismatch")]
    Crc,
    /// An application fragment shorter than its header.
    #[error("truncated DNP3 application fragment")]
    Truncated,
}

/// The CRC-16 table, built at compile time.
const CRC_TABLE: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u16;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xa6bc
            } else {
                c >> 1
            };
            bit += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// DNP3's CRC-16 (polynomial 0x3D65, reflected, complemented).
pub fn crc(data: &[u8]) -> u16 {
    let t = &CRC_TABLE;
    let mut c: u16 = 0;
    for &b in data {
        c = (c >> 8) ^ t[usize::from((c ^ u16::from(b)) & 0xff)];
    }
    !c
}

/// The length of the link frame starting `buf`.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, Dnp3Error> {
    match (buf.first(), buf.get(1)) {
        (Some(0x05), Some(0x64)) => {}
        (Some(0x05), None) | (None, _) => return Ok(None),
        _ => return Err(Dnp3Error::NotDnp3),
    }
    let Some(&len) = buf.get(2) else {
        return Ok(None);
    };
    if len < 5 {
        return Err(Dnp3Error::NotDnp3);
    }
    let data = usize::from(len) - 5;
    let total = 10 + data + 2 * data.div_ceil(16);
    Ok((buf.len() >= total).then_some(total))
}

/// A checked link frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Link control byte (DIR 0x80, PRM 0x40, function in the low nibble).
    pub control: u8,
    /// Destination address.
    pub dst: u16,
    /// Source address.
    pub src: u16,
    /// User data with the block CRCs removed (a transport segment).
    pub data: Vec<u8>,
}

/// Check the CRCs of one frame (as [`frame_len`] delimited it) and unpack it.
pub fn link(frame: &[u8]) -> Result<Link, Dnp3Error> {
    let header = frame.get(..10).ok_or(Dnp3Error::NotDnp3)?;
    let (h, hcrc) = header.split_at(8);
    if crc(h) != u16::from_le_bytes([hcrc[0], hcrc[1]]) {
        return Err(Dnp3Error::Crc);
    }
    let mut data = Vec::with_capacity(frame.len());
    for block in frame.get(10..).unwrap_or(&[]).chunks(18) {
        if block.len() < 3 {
            return Err(Dnp3Error::Crc);
        }
        let (d, c) = block.split_at(block.len() - 2);
        if crc(d) != u16::from_le_bytes([c[0], c[1]]) {
            return Err(Dnp3Error::Crc);
        }
        data.extend_from_slice(d);
    }
    Ok(Link {
        control: h[3],
        dst: u16::from_le_bytes([h[4], h[5]]),
        src: u16::from_le_bytes([h[6], h[7]]),
        data,
    })
}

/// The largest application fragment reassembled (IEEE 1815 allows 2048 bytes by default;
/// devices may configure more).
pub const MAX_FRAGMENT: usize = 65_536;

/// Transport-layer reassembly for one direction.
#[derive(Debug, Default, Clone)]
pub struct Reassembly {
    buf: Vec<u8>,
    active: bool,
    next_seq: u8,
}

impl Reassembly {
    /// Add one transport segment; returns a complete application fragment when FIN arrives.
    /// A segment out of sequence, or a FIR in the middle, starts over (counted by the caller
    /// through the `None` it gets while a fragment is lost).
    pub fn push(&mut self, segment: &[u8]) -> Option<Vec<u8>> {
        let (&th, body) = segment.split_first()?;
        let fin = th & 0x80 != 0;
        let fir = th & 0x40 != 0;
        let seq = th & 0x3f;
        if fir {
            self.buf.clear();
            self.active = true;
        } else if !self.active || seq != self.next_seq {
            self.active = false;
            self.buf.clear();
            return None;
        }
        self.next_seq = (seq + 1) & 0x3f;
        if self.buf.len() + body.len() > MAX_FRAGMENT {
            self.active = false;
            self.buf.clear();
            return None;
        }
        self.buf.extend_from_slice(body);
        if fin {
            self.active = false;
            return Some(std::mem::take(&mut self.buf));
        }
        None
    }
}

/// A control relay output block (group 12 variation 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crob {
    /// Point index.
    pub index: u32,
    /// Control code byte.
    pub code: u8,
    /// Execution count.
    pub count: u8,
    /// On time (ms).
    pub on_time: u32,
    /// Off time (ms).
    pub off_time: u32,
    /// Status code.
    pub status: u8,
}

impl Crob {
    /// ICSNPP's name for the trip/close field.
    pub fn trip_close(&self) -> &'static str {
        match self.code >> 6 {
            0 => "Nul",
            1 => "Close",
            2 => "Trip",
            _ => "Reserved",
        }
    }

    /// ICSNPP's name for the operation type.
    pub fn operation(&self) -> &'static str {
        match self.code & 0x0f {
            0 => "Nul",
            1 => "Pulse On",
            2 => "Pulse Off",
            3 => "Latch On",
            4 => "Latch Off",
            _ => "Undefined",
        }
    }
}

/// Control status codes (IEEE 1815 table 11-6), as ICSNPP names them.
pub fn status_name(code: u8) -> &'static str {
    match code {
        0 => "Success",
        1 => "Timeout",
        2 => "No Select",
        3 => "Format Error",
        4 => "Not Supported",
        5 => "Already Active",
        6 => "Hardware Error",
        7 => "Local",
        8 => "Too Many Objs",
        9 => "Not Authorized",
        10 => "Automation Inhibit",
        11 => "Processing Limited",
        12 => "Out of Range",
        126 => "Non Participating",
        _ => "Undefined",
    }
}

/// One object header and what Weir read of its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Objects {
    /// Group.
    pub group: u8,
    /// Variation.
    pub variation: u8,
    /// Qualifier.
    pub qualifier: u8,
    /// How many objects the header covers.
    pub count: u32,
    /// First and last index, for range qualifiers.
    pub range: Option<(u32, u32)>,
    /// First index of prefixed objects.
    pub first_index: Option<u32>,
    /// Control relay output blocks.
    pub crobs: Vec<Crob>,
    /// Analog output values (group 41), as integers.
    pub analog_outputs: Vec<(u32, i64)>,
}

/// An application fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Application control (FIR, FIN, CON, UNS, SEQ).
    pub control: u8,
    /// Function code.
    pub function: u8,
    /// Internal indications (responses).
    pub iin: Option<u16>,
    /// Object headers read (reading stops at the first object Weir cannot size).
    pub objects: Vec<Objects>,
}

impl App {
    /// The application sequence number.
    pub fn seq(&self) -> u8 {
        self.control & 0x0f
    }
}

/// Function code names (IEEE 1815 table 4-1), as Zeek names them.
pub fn function_name(code: u8) -> Option<&'static str> {
    Some(match code {
        0 => "CONFIRM",
        1 => "READ",
        2 => "WRITE",
        3 => "SELECT",
        4 => "OPERATE",
        5 => "DIRECT_OPERATE",
        6 => "DIRECT_OPERATE_NR",
        7 => "IMMED_FREEZE",
        8 => "IMMED_FREEZE_NR",
        9 => "FREEZE_CLEAR",
        10 => "FREEZE_CLEAR_NR",
        11 => "FREEZE_AT_TIME",
        12 => "FREEZE_AT_TIME_NR",
        13 => "COLD_RESTART",
        14 => "WARM_RESTART",
        15 => "INITIALIZE_DATA",
        16 => "INITIALIZE_APPL",
        17 => "START_APPL",
        18 => "STOP_APPL",
        19 => "SAVE_CONFIG",
        20 => "ENABLE_UNSOLICITED",
        21 => "DISABLE_UNSOLICITED",
        22 => "ASSIGN_CLASS",
        23 => "DELAY_MEASURE",
        24 => "RECORD_CURRENT_TIME",
        25 => "OPEN_FILE",
        26 => "CLOSE_FILE",
        27 => "DELETE_FILE",
        28 => "GET_FILE_INFO",
        29 => "AUTHENTICATE_FILE",
        30 => "ABORT_FILE",
        31 => "ACTIVATE_CONFIG",
        32 => "AUTHENTICATE_REQ",
        33 => "AUTHENTICATE_ERR",
        129 => "RESPONSE",
        130 => "UNSOLICITED_RESPONSE",
        131 => "AUTHENTICATE_RESP",
        _ => return None,
    })
}

/// What a request of this function does.
pub fn action(app: &App) -> Action {
    match app.function {
        1 | 28 => Action::Read,
        2 if app.objects.iter().any(|o| o.group == 50) => Action::TimeSet,
        2 | 15 | 22 => Action::Write,
        3..=6 => Action::Control,
        13 | 14 => Action::Restart,
        16..=18 => Action::ModeChange,
        19 | 31 => Action::ProgramDownload,
        24 => Action::TimeSet,
        25 | 26 | 27 | 29 | 30 => Action::Firmware,
        129 | 130 => Action::Read,
        _ => Action::Other,
    }
}

/// IIN bits set, by name (IEEE 1815 §4.2.2.7).
pub fn iin_names(iin: u16) -> Vec<&'static str> {
    const NAMES: [&str; 16] = [
        "all_stations",
        "class_1_events",
        "class_2_events",
        "class_3_events",
        "need_time",
        "local_control",
        "device_trouble",
        "device_restart",
        "no_func_code_support",
        "object_unknown",
        "parameter_error",
        "event_buffer_overflow",
        "already_executing",
        "config_corrupt",
        "reserved_2",
        "reserved_1",
    ];
    // IIN1 is the first byte on the wire (bits 0-7), IIN2 the second.
    NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| iin >> i & 1 == 1)
        .map(|(_, n)| *n)
        .collect()
}

/// Object names for the summary (the common ones; others are written `gGvV`).
pub fn group_name(group: u8) -> Option<&'static str> {
    Some(match group {
        1 => "binary_input",
        2 => "binary_input_event",
        3 => "double_bit_input",
        4 => "double_bit_input_event",
        10 => "binary_output",
        11 => "binary_output_event",
        12 => "control_relay_output_block",
        13 => "binary_output_command_event",
        20 => "counter",
        21 => "frozen_counter",
        22 => "counter_event",
        23 => "frozen_counter_event",
        30 => "analog_input",
        31 => "frozen_analog_input",
        32 => "analog_input_event",
        33 => "frozen_analog_input_event",
        34 => "analog_input_deadband",
        40 => "analog_output_status",
        41 => "analog_output",
        42 => "analog_output_event",
        43 => "analog_output_command_event",
        50 => "time_and_date",
        51 => "time_and_date_cto",
        52 => "time_delay",
        60 => "class_data",
        70 => "file_control",
        80 => "internal_indications",
        110 => "octet_string",
        120 => "authentication",
        _ => return None,
    })
}

/// Size of one object: `Some(Ok(bytes))`, `Some(Err(bits))` for packed bits, `None` unknown.
fn size(group: u8, var: u8) -> Option<Result<usize, usize>> {
    let fixed = |n: usize| Some(Ok(n));
    match (group, var) {
        (1 | 10 | 80, 1) | (12, 3) => Some(Err(1)),
        (3, 1) => Some(Err(2)),
        (1 | 3 | 10, 2) | (2 | 4 | 11 | 13, 1) => fixed(1),
        (2 | 4 | 11 | 13, 2) => fixed(7),
        (2 | 4, 3) => fixed(3),
        (12, 1 | 2) => fixed(11),
        (20..=23, 1 | 3) => fixed(5),
        (20..=23, 2 | 4) => fixed(3),
        (20, 5 | 7) | (21, 9 | 11) => fixed(4),
        (20, 6 | 8) | (21, 10 | 12) => fixed(2),
        (21..=23, 5 | 7) => fixed(11),
        (21..=23, 6 | 8) => fixed(9),
        (30..=33 | 40..=42, 1) => fixed(5),
        (30..=33 | 40..=42, 2) => fixed(3),
        (30, 3) | (31, 5) => fixed(4),
        (30, 4) | (31, 6) => fixed(2),
        (40 | 41, 3) => fixed(5),
        (30, 5) => fixed(5),
        (30, 6) | (40 | 41, 4) => fixed(9),
        (31, 3) | (32 | 33 | 42, 3) => fixed(11),
        (31, 4) | (32 | 33 | 42, 4) => fixed(9),
        (31, 7) | (32 | 33 | 42, 5) => fixed(5),
        (31, 8) | (32 | 33 | 42, 6) => fixed(9),
        (32 | 33 | 42, 7) => fixed(11),
        (32 | 33 | 42, 8) => fixed(15),
        (34, 1) => fixed(2),
        (34, 2 | 3) => fixed(4),
        (43, 1 | 5) => fixed(6),
        (43, 2) => fixed(4),
        (43, 3 | 7) => fixed(12),
        (43, 4 | 6) => fixed(10),
        (43, 8) => fixed(16),
        (50, 1 | 3) | (51, 1 | 2) => fixed(6),
        (50, 2) => fixed(10),
        (50, 4) => fixed(11),
        (52, 1 | 2) => fixed(2),
        (60, _) => fixed(0),
        (110 | 111, v) => fixed(usize::from(v)),
        _ => None,
    }
}

struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = self.0.split_at_checked(n)?;
        self.0 = b;
        Some(a)
    }
    fn uint(&mut self, n: usize) -> Option<u32> {
        let b = self.take(n)?;
        Some(
            b.iter()
                .rev()
                .fold(0u32, |acc, &x| (acc << 8) | u32::from(x)),
        )
    }
}

/// Read an application fragment. `response` is true for fragments from the outstation
/// (function 129, 130, 131), which carry IIN.
pub fn parse_app(frag: &[u8]) -> Result<App, Dnp3Error> {
    let mut r = Rd(frag);
    let head = r.take(2).ok_or(Dnp3Error::Truncated)?;
    let (control, function) = (head[0], head[1]);
    let response = matches!(function, 129..=131);
    let iin = if response {
        let b = r.take(2).ok_or(Dnp3Error::Truncated)?;
        Some(u16::from(b[0]) | (u16::from(b[1]) << 8))
    } else {
        None
    };
    let mut app = App {
        control,
        function,
        iin,
        objects: Vec::new(),
    };
    // Requests that carry no object data: READ and the freeze/class functions.
    let headers_only = matches!(function, 1 | 7..=12 | 20..=22);
    while !r.0.is_empty() && app.objects.len() < 64 {
        let Some(h) = r.take(3) else { break };
        let (group, variation, qualifier) = (h[0], h[1], h[2]);
        let prefix = usize::from(qualifier >> 4 & 0x7);
        let range_code = qualifier & 0x0f;
        let (count, range) = match range_code {
            0..=2 => {
                let w = 1 << range_code;
                let (Some(a), Some(b)) = (r.uint(w), r.uint(w)) else {
                    break;
                };
                (b.saturating_sub(a).saturating_add(1), Some((a, b)))
            }
            6 => (0, None),
            7..=9 => {
                let w = 1 << (range_code - 7);
                let Some(n) = r.uint(w) else { break };
                (n, None)
            }
            0x0b => {
                let Some(n) = r.uint(1) else { break };
                (n, None)
            }
            _ => break,
        };
        let mut obj = Objects {
            group,
            variation,
            qualifier,
            count,
            range,
            first_index: None,
            crobs: Vec::new(),
            analog_outputs: Vec::new(),
        };
        if headers_only || range_code == 6 {
            app.objects.push(obj);
            continue;
        }
        let index_width = match prefix {
            1 => 1,
            2 => 2,
            3 => 4,
            _ => 0,
        };
        let size_width = match prefix {
            4 => 1,
            5 => 2,
            6 => 4,
            _ => 0,
        };
        let Some(sz) = size(group, variation) else {
            app.objects.push(obj);
            break;
        };
        let mut ok = true;
        match sz {
            Err(bits) if index_width == 0 && size_width == 0 => {
                let bytes = (count as usize * bits).div_ceil(8);
                ok = r.take(bytes).is_some();
            }
            _ => {
                let each = sz.unwrap_or(1);
                for i in 0..count.min(4096) {
                    let index = if index_width > 0 {
                        match r.uint(index_width) {
                            Some(v) => v,
                            None => {
                                ok = false;
                                break;
                            }
                        }
                    } else {
                        range.map_or(i, |(a, _)| a.saturating_add(i))
                    };
                    let len = if size_width > 0 {
                        match r.uint(size_width) {
                            Some(v) => v as usize,
                            None => {
                                ok = false;
                                break;
                            }
                        }
                    } else {
                        each
                    };
                    if obj.first_index.is_none() && index_width > 0 {
                        obj.first_index = Some(index);
                    }
                    let Some(data) = r.take(len) else {
                        ok = false;
                        break;
                    };
                    if group == 12 && variation == 1 && data.len() == 11 {
                        obj.crobs.push(Crob {
                            index,
                            code: data[0],
                            count: data[1],
                            on_time: u32::from_le_bytes([data[2], data[3], data[4], data[5]]),
                            off_time: u32::from_le_bytes([data[6], data[7], data[8], data[9]]),
                            status: data[10],
                        });
                    } else if group == 41 {
                        let v = match (variation, data.len()) {
                            (1, 5) => {
                                i64::from(i32::from_le_bytes([data[0], data[1], data[2], data[3]]))
                            }
                            (2, 3) => i64::from(i16::from_le_bytes([data[0], data[1]])),
                            (3, 5) => {
                                f32::from_le_bytes([data[0], data[1], data[2], data[3]]) as i64
                            }
                            (4, 9) => {
                                let mut b = [0u8; 8];
                                b.copy_from_slice(&data[..8]);
                                f64::from_le_bytes(b) as i64
                            }
                            _ => 0,
                        };
                        obj.analog_outputs.push((index, v));
                    }
                }
            }
        }
        app.objects.push(obj);
        if !ok {
            break;
        }
    }
    Ok(app)
}

/// A one-line summary of the objects: `class_data g60v1 ×1, binary_input g1v2 ×120 [0-119]`.
pub fn summary(objects: &[Objects]) -> String {
    let mut s = String::new();
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        if let Some(n) = group_name(o.group) {
            s.push_str(n);
            s.push(' ');
        }
        let mut num = itoa::Buffer::new();
        s.push('g');
        s.push_str(num.format(o.group));
        s.push('v');
        s.push_str(num.format(o.variation));
        if o.count > 0 {
            s.push_str(" x");
            s.push_str(num.format(o.count));
        }
        if let Some((a, b)) = o.range {
            s.push_str(" [");
            s.push_str(num.format(a));
            s.push('-');
            s.push_str(num.format(b));
            s.push(']');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_objects_summary_names_groups_counts_and_ranges() {
        let o = |group, variation, count, range| Objects {
            group,
            variation,
            qualifier: 0,
            count,
            range,
            first_index: None,
            crobs: Vec::new(),
            analog_outputs: Vec::new(),
        };
        assert_eq!(
            summary(&[
                o(60, 1, 0, None),
                o(1, 2, 120, Some((0, 119))),
                o(250, 7, 3, None)
            ]),
            "class_data g60v1, binary_input g1v2 x120 [0-119], g250v7 x3"
        );
        assert_eq!(summary(&[]), "");
    }

    #[test]
    fn crc_of_a_known_header() {
        // A link header from IEEE 1815 examples: 05 64 05 C0 01 00 00 04 -> CRC E9 21.
        assert_eq!(
            crc(&[0x05, 0x64, 0x05, 0xc0, 0x01, 0x00, 0x00, 0x04]).to_le_bytes(),
            [0xe9, 0x21]
        );
    }

    #[test]
    fn reassembly_joins_segments_and_drops_out_of_sequence() {
        let mut r = Reassembly::default();
        assert_eq!(r.push(&[0x40 | 1, 0xc0, 0x01]), None);
        assert_eq!(
            r.push(&[0x80 | 2, 60, 1, 6]),
            Some(vec![0xc0, 0x01, 60, 1, 6])
        );
        assert_eq!(r.push(&[0x40 | 5, 1]), None);
        assert_eq!(r.push(&[0x80 | 9, 2]), None, "sequence 9 does not follow 5");
        assert_eq!(r.push(&[0xc0, 0xc3, 0x01]), Some(vec![0xc3, 0x01]));
    }
}
