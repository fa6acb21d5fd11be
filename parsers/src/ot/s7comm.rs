//! S7comm (Siemens S7-300/400 over ISO-on-TCP): TPKT (RFC 1006) and COTP (ISO 8073) framing,
//! job / ack-data functions (read/write variable, block download and upload, PI services, PLC
//! stop, setup communication) and user-data functions (SZL reads, block lists, clock read and
//! set), with the module identity an SZL 0x001C answer reveals.
//!
//! Names follow Wireshark's S7comm dissector, as ICSNPP's logs use them. S7comm-plus (protocol
//! id 0x72, S7-1200/1500) is recognised and counted, not decoded.

// Every index below follows a length check on the same slice; the fuzz target holds that.
#![allow(clippy::indexing_slicing)]

use super::Action;

/// Why bytes are not S7comm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum S7Error {
    /// Not a TPKT header (version 3, length at least 7).
    #[error("not a TPKT header")]
    NotTpkt,
    /// Shorter than its headers say.
    #[error("truncated S7comm PDU")]
    Truncated,
}

/// The length of the TPKT packet starting `buf`.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, S7Error> {
    match (buf.first(), buf.get(1)) {
        (Some(3), Some(0)) => {}
        (Some(3), None) | (None, _) => return Ok(None),
        _ => return Err(S7Error::NotTpkt),
    }
    let (Some(&a), Some(&b)) = (buf.get(2), buf.get(3)) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([a, b]));
    if len < 7 {
        return Err(S7Error::NotTpkt);
    }
    Ok((buf.len() >= len).then_some(len))
}

/// What one TPKT packet carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tpdu {
    /// COTP connection request/confirm: the TSAPs (rack and slot of the PLC in the called TSAP).
    Connect {
        /// True for the request (CR), false for the confirm (CC).
        request: bool,
        /// Calling TSAP.
        calling: Option<u16>,
        /// Called TSAP.
        called: Option<u16>,
    },
    /// An S7comm PDU.
    S7(Pdu),
    /// S7comm-plus (0x72): not decoded.
    S7Plus,
    /// Other COTP (disconnect, expedited data, a data TPDU that is not S7).
    Other,
}

/// One S7comm PDU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pdu {
    /// ROSCTR: 1 job, 2 ack, 3 ack-data, 7 user-data.
    pub rosctr: u8,
    /// PDU reference (matches a job to its ack).
    pub pdu_ref: u16,
    /// Job / ack-data function code.
    pub function: Option<u8>,
    /// User-data: method (0x11 request, 0x12 response), type and function group byte, and
    /// sub-function.
    pub userdata: Option<(u8, u8, u8)>,
    /// User-data sequence number: non-zero on a request that asks for the next part of a
    /// segmented answer.
    pub userdata_seq: u8,
    /// User-data answer: more parts follow.
    pub more_follows: bool,
    /// Error class and code (ack / ack-data), or the user-data parameter error code.
    pub error: Option<u16>,
    /// Read/write variable: item count, and the first item's area, DB number and byte address.
    pub items: Option<(u8, u8, u16, u32)>,
    /// PI service name (function 0x28).
    pub pi_service: Option<String>,
    /// Block (download/upload): the file name (`_0A00001P`: type 0A = DB, number 00001).
    pub block: Option<String>,
    /// SZL id and index (user-data CPU functions, sub-function 1).
    pub szl: Option<(u16, u16)>,
    /// Module identity from an SZL 0x001C answer: (index, text) records.
    pub identity: Vec<(u16, String)>,
}

struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], S7Error> {
        let (a, b) = self.0.split_at_checked(n).ok_or(S7Error::Truncated)?;
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, S7Error> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, S7Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

/// Parse one TPKT packet (as [`frame_len`] delimited it).
pub fn parse(tpkt: &[u8]) -> Result<Tpdu, S7Error> {
    let mut r = Rd(tpkt);
    r.take(4)?;
    let li = usize::from(r.u8()?);
    let cotp = r.take(li)?;
    let kind = *cotp.first().ok_or(S7Error::Truncated)? & 0xf0;
    match kind {
        0xe0 | 0xd0 => {
            // CR / CC: dst ref (2), src ref (2), class (1), then parameters.
            let mut p = Rd(cotp.get(6..).unwrap_or(&[]));
            let (mut calling, mut called) = (None, None);
            while let (Ok(code), Ok(len)) = (p.u8(), p.u8()) {
                let Ok(v) = p.take(usize::from(len)) else {
                    break;
                };
                let tsap = (v.len() == 2).then(|| u16::from_be_bytes([v[0], v[1]]));
                match code {
                    0xc1 => calling = tsap,
                    0xc2 => called = tsap,
                    _ => {}
                }
            }
            Ok(Tpdu::Connect {
                request: kind == 0xe0,
                calling,
                called,
            })
        }
        0xf0 => match r.0.first() {
            Some(0x32) => s7(r.0).map(Tpdu::S7),
            Some(0x72) => Ok(Tpdu::S7Plus),
            _ => Ok(Tpdu::Other),
        },
        _ => Ok(Tpdu::Other),
    }
}

fn s7(b: &[u8]) -> Result<Pdu, S7Error> {
    let mut r = Rd(b);
    r.take(1)?;
    let rosctr = r.u8()?;
    r.take(2)?;
    let pdu_ref = r.u16()?;
    let plen = usize::from(r.u16()?);
    let dlen = usize::from(r.u16()?);
    let mut pdu = Pdu {
        rosctr,
        pdu_ref,
        ..Pdu::default()
    };
    if rosctr == 2 || rosctr == 3 {
        let e = r.u16()?;
        pdu.error = Some(e);
    }
    let param = r.take(plen)?;
    let data = r.0.get(..dlen.min(r.0.len())).unwrap_or(&[]);
    match rosctr {
        1 | 3 => {
            let Some(&func) = param.first() else {
                return Ok(pdu);
            };
            pdu.function = Some(func);
            match func {
                0x04 | 0x05 if rosctr == 1 => {
                    let count = param.get(1).copied().unwrap_or(0);
                    if let Some(item) = param.get(2..14) {
                        // S7ANY: 12 0a 10 tsize len(2) db(2) area(1) address(3, bit address).
                        if item[0] == 0x12 && item[2] == 0x10 {
                            let db = u16::from_be_bytes([item[6], item[7]]);
                            let area = item[8];
                            let bits = (u32::from(item[9]) << 16)
                                | (u32::from(item[10]) << 8)
                                | u32::from(item[11]);
                            pdu.items = Some((count, area, db, bits >> 3));
                        }
                    }
                    if pdu.items.is_none() {
                        pdu.items = Some((count, 0, 0, 0));
                    }
                }
                0x1a..=0x1f => {
                    // Download/upload: the file name after a length byte, e.g. "_0A00001P".
                    let name_at = match func {
                        0x1a | 0x1b | 0x1d => 8,
                        _ => 0,
                    };
                    if name_at > 0 && rosctr == 1 {
                        if let Some(&len) = param.get(name_at) {
                            if let Some(name) =
                                param.get(name_at + 1..name_at + 1 + usize::from(len))
                            {
                                pdu.block = Some(String::from_utf8_lossy(name).into_owned());
                            }
                        }
                    }
                }
                0x28 if rosctr == 1 => {
                    // 28, 7 unknown bytes, parameter block length (2), block, name length, name.
                    let mut p = Rd(param.get(8..).unwrap_or(&[]));
                    if let Ok(blen) = p.u16() {
                        if p.take(usize::from(blen)).is_ok() {
                            if let Ok(n) = p.u8() {
                                if let Ok(name) = p.take(usize::from(n)) {
                                    pdu.pi_service =
                                        Some(String::from_utf8_lossy(name).into_owned());
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        7 if param.len() >= 8 => {
            // 00 01 12, length, method, type|group, sub-function, sequence [, dur, ldu, error].
            let (method, tg, sub) = (param[4], param[5], param[6]);
            pdu.userdata = Some((method, tg, sub));
            pdu.userdata_seq = param[7];
            pdu.more_follows = param.get(9).is_some_and(|b| *b != 0);
            if let Some(e) = param.get(10..12) {
                let code = u16::from_be_bytes([e[0], e[1]]);
                pdu.error = Some(code);
            }
            if tg & 0x0f == 4 && sub == 1 && data.len() >= 8 && data[0] == 0xff {
                let id = u16::from_be_bytes([data[4], data[5]]);
                let index = u16::from_be_bytes([data[6], data[7]]);
                pdu.szl = Some((id, index));
                if tg >> 4 == 8 && id & 0x00ff == 0x1c && data.len() >= 12 {
                    let rec = usize::from(u16::from_be_bytes([data[8], data[9]]));
                    let n = usize::from(u16::from_be_bytes([data[10], data[11]]));
                    let mut at = 12;
                    for _ in 0..n.min(16) {
                        let Some(record) = data.get(at..at + rec) else {
                            break;
                        };
                        if record.len() >= 2 {
                            let idx = u16::from_be_bytes([record[0], record[1]]);
                            let text = String::from_utf8_lossy(&record[2..])
                                .trim_end_matches(['\0', ' '])
                                .to_string();
                            pdu.identity.push((idx, text));
                        }
                        at += rec.max(1);
                    }
                }
            }
        }
        _ => {}
    }
    Ok(pdu)
}

/// Wireshark's name for a job function.
pub fn function_name(code: u8) -> &'static str {
    match code {
        0x00 => "CPU services",
        0x04 => "Read Variable",
        0x05 => "Write Variable",
        0x1a => "Request download",
        0x1b => "Download block",
        0x1c => "Download ended",
        0x1d => "Start Upload",
        0x1e => "Upload",
        0x1f => "End Upload",
        0x28 => "PI-Service",
        0x29 => "PLC Stop",
        0xf0 => "Setup Communication",
        _ => "Unknown",
    }
}

/// What a PI service does, as ICSNPP names it (the `function` of a PI-Service job).
pub fn pi_service_name(service: &str) -> Option<&'static str> {
    Some(match service {
        "P_PROGRAM" => "PLC Start / Stop",
        "_MODU" => "PLC Copy Ram to Rom",
        "_GARB" => "Compress PLC memory",
        "_INSE" => "Activate Block",
        "_DELE" => "Delete Block",
        "_N_LOGIN_" => "Login",
        "_N_LOGOUT" => "Logout",
        _ => return None,
    })
}

/// Wireshark's names for user-data function groups and sub-functions.
pub fn userdata_name(group: u8, sub: u8) -> (&'static str, &'static str) {
    match (group & 0x0f, sub) {
        (1, _) => ("Mode-transition", "Mode-transition"),
        (2, 1) => ("Cyclic Data", "Memory"),
        (2, 4) => ("Cyclic Data", "Unsubscribe"),
        (2, _) => ("Cyclic Data", "Cyclic Data"),
        (3, 1) => ("Block Functions", "List Blocks"),
        (3, 2) => ("Block Functions", "List blocks of type"),
        (3, 3) => ("Block Functions", "Get Block Info"),
        (3, _) => ("Block Functions", "Block Functions"),
        (4, 1) => ("CPU Functions", "Read SZL"),
        (4, 2) => ("CPU Functions", "Message service"),
        (4, 3) => ("CPU Functions", "Diagnostic message"),
        (4, _) => ("CPU Functions", "CPU Functions"),
        (5, 1) => ("Security", "PLC password"),
        (5, 2) => ("Security", "Clean session"),
        (5, _) => ("Security", "Security"),
        (6, _) => ("Programmer commands", "Programmer commands"),
        (7, 1) => ("Time Functions", "Read Clock"),
        (7, 2) => ("Time Functions", "Set Clock"),
        (7, 3) => ("Time Functions", "Read Clock (following)"),
        (7, 4) => ("Time Functions", "Set Clock"),
        (7, _) => ("Time Functions", "Time Functions"),
        _ => ("Unknown", "Unknown"),
    }
}

/// What a job or user-data request does.
pub fn action(p: &Pdu) -> Action {
    if let Some((_, tg, sub)) = p.userdata {
        return match (tg & 0x0f, sub) {
            (7, 2) | (7, 4) => Action::TimeSet,
            (7, _) => Action::Read,
            (4, 1) | (3, _) => Action::Recon,
            (2, _) => Action::Read,
            (1, _) => Action::ModeChange,
            (6, _) => Action::ProgramDownload,
            _ => Action::Other,
        };
    }
    match p.function {
        Some(0x04) => Action::Read,
        Some(0x05) => Action::Write,
        Some(0x1a..=0x1c) => Action::ProgramDownload,
        Some(0x1d..=0x1f) => Action::ProgramUpload,
        Some(0x28) => match p.pi_service.as_deref() {
            // Activating downloaded blocks, deleting them, copying RAM to ROM: program changes.
            Some("_INSE") | Some("_DELE") | Some("_MODU") | Some("_COPY") => {
                Action::ProgramDownload
            }
            Some("_GARB") => Action::Other,
            // P_PROGRAM (run), and any other PI service: operating-mode changes.
            _ => Action::ModeChange,
        },
        Some(0x29) => Action::ModeChange,
        _ => Action::Other,
    }
}

/// The memory area of a variable address (Wireshark's names).
pub fn area_name(area: u8) -> &'static str {
    match area {
        0x03 => "system_info",
        0x05 => "system_flags",
        0x06 => "analog_inputs",
        0x07 => "analog_outputs",
        0x1c => "counters",
        0x1d => "timers",
        0x81 => "inputs",
        0x82 => "outputs",
        0x83 => "flags",
        0x84 => "data_blocks",
        0x85 => "instance_data_blocks",
        _ => "other",
    }
}

/// SZL 0x001C record indexes and the names Weir gives them.
pub fn identity_name(index: u16) -> Option<&'static str> {
    Some(match index {
        1 => "automation_system_name",
        2 => "module_name",
        3 => "plant_name",
        4 => "copyright",
        5 => "serial_number",
        7 => "module_type_name",
        8 => "memory_card_serial",
        9 => "oem_id",
        10 => "location",
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn plc_stop_job() {
        // TPKT, COTP DT, S7 job 0x29 with the P_PROGRAM PI name.
        let pkt = [
            3, 0, 0, 33, 2, 0xf0, 0x80, 0x32, 1, 0, 0, 0, 7, 0, 16, 0, 0, 0x29, 0, 0, 0, 0, 0, 9,
            b'P', b'_', b'P', b'R', b'O', b'G', b'R', b'A', b'M',
        ];
        assert_eq!(frame_len(&pkt), Ok(Some(33)));
        let Ok(Tpdu::S7(p)) = parse(&pkt) else {
            panic!("not S7")
        };
        assert_eq!((p.rosctr, p.pdu_ref, p.function), (1, 7, Some(0x29)));
        assert_eq!(action(&p), Action::ModeChange);
        assert_eq!(frame_len(b"GET /"), Err(S7Error::NotTpkt));
    }
}
