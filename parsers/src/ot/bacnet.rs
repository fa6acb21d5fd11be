//! BACnet/IP (ASHRAE 135 annex J): BVLC, NPDU (network layer messages and routing), APDU types
//! and service choices, readProperty/writeProperty object and property, who-is / i-am with the
//! device instance and vendor an I-Am announces.

// Every index below follows a length check on the same slice; the fuzz target holds that.
#![allow(clippy::indexing_slicing)]

use super::Action;

/// Why a datagram is not BACnet/IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BacnetError {
    /// No BVLC header (type 0x81).
    #[error("not a BACnet/IP datagram")]
    NotBacnet,
    /// Shorter than its headers say.
    #[error("truncated BACnet message")]
    Truncated,
}

/// One BACnet/IP datagram, as far as Weir reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// BVLC function.
    pub bvlc: u8,
    /// NPDU network-layer message type (no APDU then).
    pub network_message: Option<u8>,
    /// APDU type (0 confirmed request ... 7 abort).
    pub apdu_type: Option<u8>,
    /// Invoke id (confirmed services and their answers).
    pub invoke_id: Option<u8>,
    /// Service choice (confirmed or unconfirmed, or the acknowledged service).
    pub service: Option<u8>,
    /// Object type and instance (context tag 0 of read/writeProperty; the device of an I-Am).
    pub object: Option<(u16, u32)>,
    /// Property identifier.
    pub property: Option<u32>,
    /// I-Am: vendor id.
    pub vendor: Option<u32>,
    /// Error class and code (Error PDUs), reject/abort reason.
    pub error: Option<(u32, u32)>,
}

fn uint(b: &[u8]) -> u32 {
    b.iter().take(4).fold(0, |a, &x| (a << 8) | u32::from(x))
}

/// Parse one datagram.
pub fn parse(b: &[u8]) -> Result<Message, BacnetError> {
    if b.len() < 4 || b[0] != 0x81 {
        return Err(BacnetError::NotBacnet);
    }
    let mut m = Message {
        bvlc: b[1],
        ..Message::default()
    };
    let mut i = match b[1] {
        0x09..=0x0b => 4,
        0x04 => 10,
        _ => return Ok(m),
    };
    // NPDU.
    let version = *b.get(i).ok_or(BacnetError::Truncated)?;
    if version != 1 {
        return Err(BacnetError::NotBacnet);
    }
    let ctrl = *b.get(i + 1).ok_or(BacnetError::Truncated)?;
    i += 2;
    if ctrl & 0x20 != 0 {
        let dlen = usize::from(*b.get(i + 2).ok_or(BacnetError::Truncated)?);
        i += 3 + dlen;
    }
    if ctrl & 0x08 != 0 {
        let slen = usize::from(*b.get(i + 2).ok_or(BacnetError::Truncated)?);
        i += 3 + slen;
    }
    if ctrl & 0x20 != 0 {
        i += 1; // hop count
    }
    if ctrl & 0x80 != 0 {
        m.network_message = Some(*b.get(i).ok_or(BacnetError::Truncated)?);
        return Ok(m);
    }
    let a = b.get(i..).ok_or(BacnetError::Truncated)?;
    let first = *a.first().ok_or(BacnetError::Truncated)?;
    let ty = first >> 4;
    m.apdu_type = Some(ty);
    let rest: &[u8] = match ty {
        0 => {
            let seg = first & 0x08 != 0;
            let at = if seg { 5 } else { 3 };
            m.invoke_id = a.get(2).copied();
            m.service = a.get(at).copied();
            a.get(at + 1..).unwrap_or(&[])
        }
        1 => {
            m.service = a.get(1).copied();
            a.get(2..).unwrap_or(&[])
        }
        2 => {
            m.invoke_id = a.get(1).copied();
            m.service = a.get(2).copied();
            &[]
        }
        3 => {
            let seg = first & 0x08 != 0;
            let at = if seg { 4 } else { 2 };
            m.invoke_id = a.get(1).copied();
            m.service = a.get(at).copied();
            a.get(at + 1..).unwrap_or(&[])
        }
        5 => {
            m.invoke_id = a.get(1).copied();
            m.service = a.get(2).copied();
            // Error class and code: two enumerated application tags (0x91 ...).
            let r = a.get(3..).unwrap_or(&[]);
            let mut vals = Vec::new();
            let mut j = 0;
            while j < r.len() && vals.len() < 2 {
                let tag = r[j];
                let len = usize::from(tag & 0x07).min(4);
                if tag & 0xf0 == 0x90 {
                    vals.push(uint(r.get(j + 1..j + 1 + len).unwrap_or(&[])));
                }
                j += 1 + len;
            }
            if let [c, d] = vals[..] {
                m.error = Some((c, d));
            }
            &[]
        }
        6 | 7 => {
            m.invoke_id = a.get(1).copied();
            m.error = a.get(2).map(|r| (u32::from(ty), u32::from(*r)));
            &[]
        }
        _ => &[],
    };
    // Object identifier and property (context tags 0 and 1) of read/writeProperty requests and
    // readProperty acks; an I-Am's device object, max APDU, segmentation and vendor.
    match (ty, m.service) {
        (0, Some(12 | 15)) | (3, Some(12)) if rest.first() == Some(&0x0c) && rest.len() >= 5 => {
            let v = uint(&rest[1..5]);
            m.object = Some(((v >> 22) as u16, v & 0x3f_ffff));
            if let Some(&t) = rest.get(5) {
                if t & 0xf8 == 0x18 {
                    let len = usize::from(t & 0x07).min(4);
                    m.property = rest.get(6..6 + len).map(uint);
                }
            }
        }
        (1, Some(0)) if rest.first() == Some(&0xc4) && rest.len() >= 5 => {
            let v = uint(&rest[1..5]);
            m.object = Some(((v >> 22) as u16, v & 0x3f_ffff));
            // max APDU (unsigned), segmentation (enumerated), vendor (unsigned).
            let mut j = 5;
            let mut n = 0;
            while j < rest.len() && n < 3 {
                let len = usize::from(rest[j] & 0x07).min(4);
                if n == 2 {
                    m.vendor = rest.get(j + 1..j + 1 + len).map(uint);
                }
                j += 1 + len;
                n += 1;
            }
        }
        _ => {}
    }
    Ok(m)
}

/// Confirmed service names.
pub fn confirmed_name(s: u8) -> &'static str {
    match s {
        0 => "acknowledgeAlarm",
        1 => "confirmedCOVNotification",
        2 => "confirmedEventNotification",
        3 => "getAlarmSummary",
        4 => "getEnrollmentSummary",
        5 => "subscribeCOV",
        6 => "atomicReadFile",
        7 => "atomicWriteFile",
        8 => "addListElement",
        9 => "removeListElement",
        10 => "createObject",
        11 => "deleteObject",
        12 => "readProperty",
        14 => "readPropertyMultiple",
        15 => "writeProperty",
        16 => "writePropertyMultiple",
        17 => "deviceCommunicationControl",
        18 => "confirmedPrivateTransfer",
        19 => "confirmedTextMessage",
        20 => "reinitializeDevice",
        21 => "vtOpen",
        22 => "vtClose",
        23 => "vtData",
        26 => "readRange",
        28 => "subscribeCOVProperty",
        29 => "getEventInformation",
        _ => "unknown",
    }
}

/// Unconfirmed service names.
pub fn unconfirmed_name(s: u8) -> &'static str {
    match s {
        0 => "i-Am",
        1 => "i-Have",
        2 => "unconfirmedCOVNotification",
        3 => "unconfirmedEventNotification",
        4 => "unconfirmedPrivateTransfer",
        5 => "unconfirmedTextMessage",
        6 => "timeSynchronization",
        7 => "who-Has",
        8 => "who-Is",
        9 => "utcTimeSynchronization",
        10 => "writeGroup",
        _ => "unknown",
    }
}

/// What a request does.
pub fn action(m: &Message) -> Action {
    match (m.apdu_type, m.service) {
        (Some(0), Some(s)) => match s {
            12 | 14 | 26 | 1 | 2 | 3 | 4 | 29 => Action::Read,
            15 | 16 | 8 | 9 | 10 | 11 => Action::Write,
            20 => Action::Restart,
            17 => Action::ModeChange,
            7 => Action::Firmware,
            6 => Action::ProgramUpload,
            _ => Action::Other,
        },
        (Some(1), Some(s)) => match s {
            0 | 1 | 7 | 8 => Action::Recon,
            2 | 3 => Action::Read,
            6 | 9 => Action::TimeSet,
            10 => Action::Write,
            _ => Action::Other,
        },
        _ => Action::Other,
    }
}

/// Object type names (the common ones).
pub fn object_name(t: u16) -> &'static str {
    match t {
        0 => "analog-input",
        1 => "analog-output",
        2 => "analog-value",
        3 => "binary-input",
        4 => "binary-output",
        5 => "binary-value",
        8 => "device",
        10 => "file",
        13 => "multi-state-input",
        14 => "multi-state-output",
        17 => "schedule",
        19 => "multi-state-value",
        20 => "trend-log",
        _ => "other",
    }
}
