//! IEC 60870-5-104: APCI framing (I, S and U formats) and the ASDU header (type id, variable
//! structure qualifier, cause of transmission, common address, first information object
//! address).

// Every index below follows a length check on the same slice; the fuzz target holds that.
#![allow(clippy::indexing_slicing)]

use super::Action;

/// Why bytes are not IEC 104.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Iec104Error {
    /// No 0x68 start byte.
    #[error("not an IEC 104 APDU")]
    NotIec104,
}

/// The length of the APDU starting `buf`. Lengths below 4 (an APCI is 4 bytes) are accepted and
/// reported as malformed by [`parse`], as tshark does.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, Iec104Error> {
    match buf.first() {
        None => return Ok(None),
        Some(0x68) => {}
        Some(_) => return Err(Iec104Error::NotIec104),
    }
    let Some(&len) = buf.get(1) else {
        return Ok(None);
    };
    let total = 2 + usize::from(len);
    Ok((buf.len() >= total).then_some(total))
}

/// One APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Apdu {
    /// An I-format APDU with its ASDU.
    I {
        /// Send sequence number.
        send_seq: u16,
        /// Receive sequence number.
        recv_seq: u16,
        /// The type id, if the ASDU has at least one byte (counted even when the rest of the
        /// header is missing, as tshark does).
        type_id: Option<u8>,
        /// The ASDU, if it was long enough to read.
        asdu: Option<Asdu>,
    },
    /// Supervisory (acknowledgement).
    S {
        /// Receive sequence number.
        recv_seq: u16,
    },
    /// Unnumbered: STARTDT, STOPDT, TESTFR act/con.
    U {
        /// The control byte (0x07 STARTDT act, 0x0B con, 0x13 STOPDT act, 0x23 con, 0x43 TESTFR
        /// act, 0x83 con).
        function: u8,
    },
    /// Shorter than an APCI.
    Malformed,
}

/// The ASDU header and the first object's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asdu {
    /// Type identification.
    pub type_id: u8,
    /// Number of information objects.
    pub count: u8,
    /// Sequence of elements (SQ bit).
    pub sequence: bool,
    /// Cause of transmission (6 bits).
    pub cause: u8,
    /// Negative confirmation (P/N bit).
    pub negative: bool,
    /// Test bit.
    pub test: bool,
    /// Originator address.
    pub originator: u8,
    /// Common address of the ASDU (station).
    pub common_address: u16,
    /// First information object address.
    pub ioa: Option<u32>,
}

/// Parse one APDU (as [`frame_len`] delimited it).
pub fn parse(b: &[u8]) -> Apdu {
    if b.len() < 6 {
        return Apdu::Malformed;
    }
    let c = &b[2..6];
    if c[0] & 1 == 0 {
        let send_seq = u16::from_le_bytes([c[0], c[1]]) >> 1;
        let recv_seq = u16::from_le_bytes([c[2], c[3]]) >> 1;
        let a = &b[6..];
        let asdu = (a.len() >= 6).then(|| Asdu {
            type_id: a[0],
            count: a[1] & 0x7f,
            sequence: a[1] & 0x80 != 0,
            cause: a[2] & 0x3f,
            negative: a[2] & 0x40 != 0,
            test: a[2] & 0x80 != 0,
            originator: a[3],
            common_address: u16::from_le_bytes([a[4], a[5]]),
            ioa: a
                .get(6..9)
                .map(|i| u32::from(i[0]) | (u32::from(i[1]) << 8) | (u32::from(i[2]) << 16)),
        });
        Apdu::I {
            send_seq,
            recv_seq,
            type_id: a.first().copied(),
            asdu,
        }
    } else if c[0] & 3 == 1 {
        Apdu::S {
            recv_seq: u16::from_le_bytes([c[2], c[3]]) >> 1,
        }
    } else {
        Apdu::U { function: c[0] }
    }
}

/// The standard's mnemonic for a type id.
pub fn type_name(t: u8) -> Option<&'static str> {
    Some(match t {
        1 => "M_SP_NA_1",
        2 => "M_SP_TA_1",
        3 => "M_DP_NA_1",
        4 => "M_DP_TA_1",
        5 => "M_ST_NA_1",
        6 => "M_ST_TA_1",
        7 => "M_BO_NA_1",
        8 => "M_BO_TA_1",
        9 => "M_ME_NA_1",
        10 => "M_ME_TA_1",
        11 => "M_ME_NB_1",
        12 => "M_ME_TB_1",
        13 => "M_ME_NC_1",
        14 => "M_ME_TC_1",
        15 => "M_IT_NA_1",
        16 => "M_IT_TA_1",
        20 => "M_PS_NA_1",
        21 => "M_ME_ND_1",
        30 => "M_SP_TB_1",
        31 => "M_DP_TB_1",
        32 => "M_ST_TB_1",
        33 => "M_BO_TB_1",
        34 => "M_ME_TD_1",
        35 => "M_ME_TE_1",
        36 => "M_ME_TF_1",
        37 => "M_IT_TB_1",
        38 => "M_EP_TD_1",
        39 => "M_EP_TE_1",
        40 => "M_EP_TF_1",
        45 => "C_SC_NA_1",
        46 => "C_DC_NA_1",
        47 => "C_RC_NA_1",
        48 => "C_SE_NA_1",
        49 => "C_SE_NB_1",
        50 => "C_SE_NC_1",
        51 => "C_BO_NA_1",
        58 => "C_SC_TA_1",
        59 => "C_DC_TA_1",
        60 => "C_RC_TA_1",
        61 => "C_SE_TA_1",
        62 => "C_SE_TB_1",
        63 => "C_SE_TC_1",
        64 => "C_BO_TA_1",
        70 => "M_EI_NA_1",
        100 => "C_IC_NA_1",
        101 => "C_CI_NA_1",
        102 => "C_RD_NA_1",
        103 => "C_CS_NA_1",
        104 => "C_TS_NA_1",
        105 => "C_RP_NA_1",
        106 => "C_CD_NA_1",
        107 => "C_TS_TA_1",
        110 => "P_ME_NA_1",
        111 => "P_ME_NB_1",
        112 => "P_ME_NC_1",
        113 => "P_AC_NA_1",
        120 => "F_FR_NA_1",
        121 => "F_SR_NA_1",
        122 => "F_SC_NA_1",
        123 => "F_LS_NA_1",
        124 => "F_AF_NA_1",
        125 => "F_SG_NA_1",
        126 => "F_DR_TA_1",
        127 => "F_SC_NB_1",
        _ => return None,
    })
}

/// The standard's abbreviation for a cause of transmission.
pub fn cause_name(c: u8) -> &'static str {
    match c {
        1 => "per/cyc",
        2 => "back",
        3 => "spont",
        4 => "init",
        5 => "req",
        6 => "act",
        7 => "actcon",
        8 => "deact",
        9 => "deactcon",
        10 => "actterm",
        11 => "retrem",
        12 => "retloc",
        13 => "file",
        20 => "inrogen",
        21..=36 => "inro",
        37 => "reqcogen",
        38..=41 => "reqco",
        44 => "unknown_type",
        45 => "unknown_cause",
        46 => "unknown_common_address",
        47 => "unknown_ioa",
        _ => "unknown",
    }
}

/// What an ASDU of this type does.
pub fn action(type_id: u8) -> Action {
    match type_id {
        45..=47 | 58..=60 => Action::Control,
        48..=51 | 61..=64 | 110..=113 => Action::Write,
        100..=102 => Action::Read,
        103 => Action::TimeSet,
        105 => Action::Restart,
        120..=127 => Action::Firmware,
        1..=44 => Action::Read,
        70 => Action::Restart, // end of initialisation: the station (re)started
        _ => Action::Other,
    }
}

/// The U-format function's name.
pub fn u_name(f: u8) -> &'static str {
    match f {
        0x07 => "STARTDT act",
        0x0b => "STARTDT con",
        0x13 => "STOPDT act",
        0x23 => "STOPDT con",
        0x43 => "TESTFR act",
        0x83 => "TESTFR con",
        _ => "U",
    }
}
