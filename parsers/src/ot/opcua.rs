//! OPC UA binary (OPC 10000-6): the UACP message header (HEL, ACK, ERR, RHE, OPN, MSG, CLO),
//! the secure-channel and sequence headers, and the service a message carries (its NodeId
//! binary encoding id) when the channel is not encrypted.

// Every index below follows a length check on the same slice; the fuzz target holds that.
#![allow(clippy::indexing_slicing)]

use super::Action;

/// Largest message accepted (the UACP default maximum message size is 16 MiB).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Message types, in the order of their counter codes.
pub const TYPES: [&[u8; 3]; 7] = [b"HEL", b"ACK", b"ERR", b"OPN", b"MSG", b"CLO", b"RHE"];

/// The length of the message starting `buf`; `Err(0)` if it is not OPC UA.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, usize> {
    let n = buf.len().min(3);
    if !TYPES.iter().any(|t| t[..n] == buf[..n]) {
        return Err(0);
    }
    if buf.len() < 8 {
        return Ok(None);
    }
    if !matches!(buf[3], b'F' | b'C' | b'A') {
        return Err(0);
    }
    let size = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if !(8..=MAX_MESSAGE).contains(&size) {
        return Err(0);
    }
    Ok((buf.len() >= size).then_some(size))
}

/// One UACP message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Index into [`TYPES`].
    pub kind: u8,
    /// Chunk type: F final, C intermediate, A abort.
    pub chunk: u8,
    /// Secure channel id.
    pub channel: Option<u32>,
    /// Request id (sequence header).
    pub request_id: Option<u32>,
    /// Security policy URI (OPN).
    pub security_policy: Option<String>,
    /// Endpoint URL (HEL).
    pub endpoint_url: Option<String>,
    /// The body's type: the service's binary encoding id (namespace 0), when readable.
    pub service: Option<u32>,
    /// ERR: the status code.
    pub error: Option<u32>,
}

struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = self.0.split_at_checked(n)?;
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A String or ByteString: i32 length (-1 null) and bytes.
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as i32;
        if n <= 0 {
            return Some(&[]);
        }
        self.take(n as usize)
    }
    fn node_id(&mut self) -> Option<u32> {
        let enc = self.take(1)?[0];
        match enc & 0x0f {
            0 => self.take(1).map(|b| u32::from(b[0])),
            1 => self.take(3).map(|b| {
                if b[0] == 0 {
                    u32::from(u16::from_le_bytes([b[1], b[2]]))
                } else {
                    u32::MAX
                }
            }),
            2 => self.take(6).map(|b| {
                if b[0] == 0 && b[1] == 0 {
                    u32::from_le_bytes([b[2], b[3], b[4], b[5]])
                } else {
                    u32::MAX
                }
            }),
            _ => None,
        }
    }
}

/// Parse one message (as [`frame_len`] delimited it). `encrypted` says the channel's messages
/// cannot be read past their headers.
pub fn parse(b: &[u8], encrypted: bool) -> Option<Message> {
    let kind = TYPES.iter().position(|t| b.get(..3) == Some(&t[..]))? as u8;
    let mut m = Message {
        kind,
        chunk: *b.get(3)?,
        ..Message::default()
    };
    let mut r = Rd(b.get(8..)?);
    match kind {
        0 => {
            r.take(20)?;
            m.endpoint_url = r.bytes().map(|u| String::from_utf8_lossy(u).into_owned());
        }
        2 => m.error = r.u32(),
        3 => {
            m.channel = r.u32();
            m.security_policy = r.bytes().map(|u| String::from_utf8_lossy(u).into_owned());
            r.bytes()?;
            r.bytes()?;
            let plain = m
                .security_policy
                .as_deref()
                .is_none_or(|p| p.ends_with("#None"));
            r.u32()?;
            m.request_id = r.u32();
            if plain {
                m.service = r.node_id();
            }
        }
        4 | 5 => {
            m.channel = r.u32();
            r.u32()?;
            r.u32()?;
            m.request_id = r.u32();
            if !encrypted && m.chunk != b'C' {
                m.service = r.node_id().filter(|s| *s != u32::MAX);
            }
        }
        _ => {}
    }
    Some(m)
}

/// A service's name by its request or response encoding id, and whether it is a response.
pub fn service_name(id: u32) -> Option<(&'static str, bool)> {
    let (base, response) = match REQUESTS.iter().find(|(r, _)| *r == id || *r + 3 == id) {
        Some((r, name)) => ((*r, *name), *r != id),
        None if id == 397 => return Some(("ServiceFault", true)),
        None => return None,
    };
    Some((base.1, response))
}

const REQUESTS: &[(u32, &str)] = &[
    (422, "FindServers"),
    (428, "GetEndpoints"),
    (437, "RegisterServer"),
    (446, "OpenSecureChannel"),
    (452, "CloseSecureChannel"),
    (461, "CreateSession"),
    (467, "ActivateSession"),
    (473, "CloseSession"),
    (479, "Cancel"),
    (488, "AddNodes"),
    (494, "AddReferences"),
    (500, "DeleteNodes"),
    (506, "DeleteReferences"),
    (527, "Browse"),
    (533, "BrowseNext"),
    (554, "TranslateBrowsePathsToNodeIds"),
    (560, "RegisterNodes"),
    (566, "UnregisterNodes"),
    (615, "QueryFirst"),
    (621, "QueryNext"),
    (631, "Read"),
    (664, "HistoryRead"),
    (673, "Write"),
    (700, "HistoryUpdate"),
    (712, "Call"),
    (751, "CreateMonitoredItems"),
    (763, "ModifyMonitoredItems"),
    (769, "SetMonitoringMode"),
    (775, "SetTriggering"),
    (781, "DeleteMonitoredItems"),
    (787, "CreateSubscription"),
    (793, "ModifySubscription"),
    (799, "SetPublishingMode"),
    (826, "Publish"),
    (832, "Republish"),
    (841, "TransferSubscriptions"),
    (847, "DeleteSubscriptions"),
];

/// What a service request does.
pub fn action(id: u32) -> Action {
    match id {
        631 | 664 | 751 | 763 | 769 | 775 | 781 | 787 | 793 | 799 | 826 | 832 | 841 | 847 => {
            Action::Read
        }
        673 | 488 | 494 | 500 | 506 | 700 => Action::Write,
        712 => Action::Control,
        422 | 428 | 527 | 533 | 554 | 615 | 621 => Action::Recon,
        _ => Action::Other,
    }
}
