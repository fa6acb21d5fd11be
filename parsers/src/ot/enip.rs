//! EtherNet/IP encapsulation (ODVA Vol. 2) and CIP (Vol. 1): commands, common packet format
//! items, CIP services with their class / instance / attribute or symbolic (tag) path, Multiple
//! Service Packet and Unconnected Send unpacked, general status, and the identity a ListIdentity
//! answer reveals.

// Every index below follows a length check on the same slice; the fuzz target holds that.
#![allow(clippy::indexing_slicing)]

use super::Action;

/// Why bytes are not EtherNet/IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnipError {
    /// Not an encapsulation header Weir knows.
    #[error("not an EtherNet/IP encapsulation header")]
    NotEnip,
    /// Shorter than its headers say.
    #[error("truncated EtherNet/IP message")]
    Truncated,
}

/// Commands Weir accepts in a header (anything else means the stream is not EtherNet/IP).
fn known_command(c: u16) -> bool {
    matches!(
        c,
        0x0001 | 0x0004 | 0x0063 | 0x0064 | 0x0065 | 0x0066 | 0x006f | 0x0070 | 0x0072 | 0x0073
    )
}

/// The length of the encapsulation message starting `buf`.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, EnipError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let command = u16::from_le_bytes([buf[0], buf[1]]);
    if !known_command(command) {
        return Err(EnipError::NotEnip);
    }
    let len = 24 + usize::from(u16::from_le_bytes([buf[2], buf[3]]));
    Ok((buf.len() >= len).then_some(len))
}

/// Command names (as Wireshark and ICSNPP write them).
pub fn command_name(c: u16) -> &'static str {
    match c {
        0x0001 => "NOP",
        0x0004 => "List Services",
        0x0063 => "List Identity",
        0x0064 => "List Interfaces",
        0x0065 => "Register Session",
        0x0066 => "Unregister Session",
        0x006f => "Send RR Data",
        0x0070 => "Send Unit Data",
        0x0072 => "Indicate Status",
        0x0073 => "Cancel",
        _ => "Unknown",
    }
}

/// One CIP service request or response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cip {
    /// Service code, response bit removed.
    pub service: u8,
    /// True for a response.
    pub response: bool,
    /// Class, instance, attribute from the request path.
    pub class: Option<u32>,
    /// Instance.
    pub instance: Option<u32>,
    /// Attribute.
    pub attribute: Option<u32>,
    /// Symbolic segments (Logix tag names), joined with `.`.
    pub tag: Option<String>,
    /// General status (responses).
    pub status: Option<u8>,
    /// Services inside a Multiple Service Packet or an Unconnected Send.
    pub embedded: Vec<Cip>,
}

/// The identity a ListIdentity answer carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// Vendor id.
    pub vendor: u16,
    /// Device type.
    pub device_type: u16,
    /// Product code.
    pub product_code: u16,
    /// Revision major.minor.
    pub revision: (u8, u8),
    /// Serial number.
    pub serial: u32,
    /// Product name.
    pub product_name: String,
}

/// One encapsulation message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Command.
    pub command: u16,
    /// Session handle.
    pub session: u32,
    /// Encapsulation status.
    pub status: u32,
    /// Sender context (echoed in the reply).
    pub context: [u8; 8],
    /// Connection id (connected messages).
    pub connection: Option<u32>,
    /// Connected-data sequence count.
    pub sequence: Option<u16>,
    /// The CIP message carried, if any.
    pub cip: Option<Cip>,
    /// ListIdentity answers.
    pub identities: Vec<Identity>,
}

struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EnipError> {
        let (a, b) = self.0.split_at_checked(n).ok_or(EnipError::Truncated)?;
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, EnipError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, EnipError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, EnipError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Parse one encapsulation message (as [`frame_len`] delimited it, or one UDP datagram).
pub fn parse(b: &[u8]) -> Result<Message, EnipError> {
    let mut r = Rd(b);
    let command = r.u16()?;
    if !known_command(command) {
        return Err(EnipError::NotEnip);
    }
    let len = usize::from(r.u16()?);
    let session = r.u32()?;
    let status = r.u32()?;
    let mut context = [0u8; 8];
    context.copy_from_slice(r.take(8)?);
    r.take(4)?;
    let data = r.take(len.min(r.0.len()))?;
    let mut m = Message {
        command,
        session,
        status,
        context,
        ..Message::default()
    };
    match command {
        0x006f | 0x0070 => {
            let mut d = Rd(data);
            d.take(6)?; // interface handle, timeout
            let items = d.u16()?;
            for _ in 0..items.min(16) {
                let ty = d.u16()?;
                let n = usize::from(d.u16()?);
                let body = d.take(n)?;
                match ty {
                    0x00a1 if body.len() >= 4 => {
                        m.connection =
                            Some(u32::from_le_bytes([body[0], body[1], body[2], body[3]]))
                    }
                    0x00b1 if body.len() >= 2 => {
                        m.sequence = Some(u16::from_le_bytes([body[0], body[1]]));
                        m.cip = cip(&body[2..], 0).ok();
                    }
                    0x00b2 => m.cip = cip(body, 0).ok(),
                    _ => {}
                }
            }
        }
        0x0063 if !data.is_empty() => {
            let mut d = Rd(data);
            let items = d.u16()?;
            for _ in 0..items.min(16) {
                let ty = d.u16()?;
                let n = usize::from(d.u16()?);
                let body = d.take(n)?;
                if ty == 0x000c {
                    if let Ok(id) = identity(body) {
                        m.identities.push(id);
                    }
                }
            }
        }
        _ => {}
    }
    Ok(m)
}

fn identity(b: &[u8]) -> Result<Identity, EnipError> {
    let mut r = Rd(b);
    r.take(2 + 16)?; // encapsulation version, socket address
    let vendor = r.u16()?;
    let device_type = r.u16()?;
    let product_code = r.u16()?;
    let revision = (r.u8()?, r.u8()?);
    r.take(2)?; // status
    let serial = r.u32()?;
    let n = usize::from(r.u8()?);
    let product_name = String::from_utf8_lossy(r.take(n)?).into_owned();
    Ok(Identity {
        vendor,
        device_type,
        product_code,
        revision,
        serial,
        product_name,
    })
}

/// Parse a CIP message (request or response). `depth` bounds the unpacking of embedded
/// services.
pub fn cip(b: &[u8], depth: u8) -> Result<Cip, EnipError> {
    let mut r = Rd(b);
    let sc = r.u8()?;
    let mut c = Cip {
        service: sc & 0x7f,
        response: sc & 0x80 != 0,
        ..Cip::default()
    };
    if c.response {
        r.take(1)?;
        c.status = Some(r.u8()?);
        let extra = usize::from(r.u8()?) * 2;
        r.take(extra)?;
        if c.service == 0x0a && depth < 2 {
            c.embedded = multiple(r.0, depth);
        }
        return Ok(c);
    }
    let words = usize::from(r.u8()?) * 2;
    let path = r.take(words)?;
    epath(path, &mut c);
    match (c.service, c.class) {
        (0x0a, _) if depth < 2 => c.embedded = multiple(r.0, depth),
        (0x52, Some(6)) if depth < 2 => {
            // Unconnected Send: priority/ticks, timeout, message size, message, route path.
            let mut u = Rd(r.0);
            u.take(2)?;
            let n = usize::from(u.u16()?);
            if let Ok(inner) = cip(u.take(n)?, depth + 1) {
                c.embedded.push(inner);
            }
        }
        _ => {}
    }
    Ok(c)
}

fn multiple(b: &[u8], depth: u8) -> Vec<Cip> {
    let mut out = Vec::new();
    let Some(count) = b
        .get(..2)
        .map(|x| usize::from(u16::from_le_bytes([x[0], x[1]])))
    else {
        return out;
    };
    let offsets: Vec<usize> = (0..count.min(256))
        .filter_map(|i| {
            b.get(2 + 2 * i..4 + 2 * i)
                .map(|x| usize::from(u16::from_le_bytes([x[0], x[1]])))
        })
        .collect();
    for (i, &start) in offsets.iter().enumerate() {
        let end = offsets.get(i + 1).copied().unwrap_or(b.len()).min(b.len());
        if let Some(body) = b.get(start..end) {
            if let Ok(c) = cip(body, depth + 1) {
                out.push(c);
            }
        }
    }
    out
}

fn epath(p: &[u8], c: &mut Cip) {
    let mut i = 0;
    while i < p.len() {
        let seg = p[i];
        let (value, used) = match seg {
            0x20 | 0x24 | 0x30 | 0x28 => (p.get(i + 1).map(|v| u32::from(*v)), 2),
            0x21 | 0x25 | 0x31 | 0x29 => (
                p.get(i + 2..i + 4)
                    .map(|v| u32::from(u16::from_le_bytes([v[0], v[1]]))),
                4,
            ),
            0x22 | 0x26 | 0x32 => (
                p.get(i + 2..i + 6)
                    .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]])),
                6,
            ),
            0x91 => {
                let n = usize::from(p.get(i + 1).copied().unwrap_or(0));
                if let Some(name) = p.get(i + 2..i + 2 + n) {
                    let name = String::from_utf8_lossy(name);
                    match &mut c.tag {
                        Some(t) => {
                            t.push('.');
                            t.push_str(&name);
                        }
                        None => c.tag = Some(name.into_owned()),
                    }
                }
                (None, 2 + n + (n & 1))
            }
            _ => return,
        };
        match seg & 0xfc {
            0x20 => c.class = value,
            0x24 => c.instance = value,
            0x30 => c.attribute = value,
            _ => {}
        }
        i += used;
    }
}

/// Service names (CIP common services; Logix and Connection Manager services by class).
pub fn service_name(service: u8, class: Option<u32>) -> &'static str {
    match (service, class) {
        (0x01, _) => "Get_Attributes_All",
        (0x02, _) => "Set_Attributes_All",
        (0x03, _) => "Get_Attribute_List",
        (0x04, _) => "Set_Attribute_List",
        (0x05, _) => "Reset",
        (0x06, _) => "Start",
        (0x07, _) => "Stop",
        (0x08, _) => "Create",
        (0x09, _) => "Delete",
        (0x0a, _) => "Multiple_Service_Packet",
        (0x0d, _) => "Apply_Attributes",
        (0x0e, _) => "Get_Attribute_Single",
        (0x10, _) => "Set_Attribute_Single",
        (0x11, _) => "Find_Next_Object_Instance",
        (0x14, _) => "Error_Response",
        (0x15, _) => "Restore",
        (0x16, _) => "Save",
        (0x17, _) => "No_Operation",
        (0x4e, Some(6)) => "Forward_Close",
        (0x52, Some(6)) => "Unconnected_Send",
        (0x54, Some(6)) => "Forward_Open",
        (0x5b, Some(6)) => "Large_Forward_Open",
        (0x4b, _) => "Execute_PCCC",
        (0x4c, _) => "Read_Tag",
        (0x4d, _) => "Write_Tag",
        (0x4e, _) => "Read_Modify_Write_Tag",
        (0x52, _) => "Read_Tag_Fragmented",
        (0x53, _) => "Write_Tag_Fragmented",
        (0x55, _) => "Get_Instance_Attribute_List",
        _ => "Unknown",
    }
}

/// What a CIP request does.
pub fn action(c: &Cip) -> Action {
    if !c.embedded.is_empty() {
        // The most consequential of the embedded services.
        return c
            .embedded
            .iter()
            .map(action)
            .max_by_key(|a| rank(*a))
            .unwrap_or(Action::Other);
    }
    match (c.service, c.class) {
        (0x4e | 0x52 | 0x54 | 0x5b, Some(6)) => Action::Other,
        (0x01 | 0x03 | 0x0e | 0x4c | 0x52, _) => Action::Read,
        (0x02 | 0x04 | 0x08 | 0x09 | 0x0d | 0x10 | 0x15 | 0x4d | 0x4e | 0x53, _) => Action::Write,
        (0x05, _) => Action::Restart,
        (0x06 | 0x07, _) => Action::ModeChange,
        (0x11 | 0x55, _) => Action::Recon,
        _ => Action::Other,
    }
}

fn rank(a: Action) -> u8 {
    match a {
        Action::Other => 0,
        Action::Recon => 1,
        Action::Read => 2,
        Action::Write | Action::Control | Action::TimeSet => 3,
        _ => 4,
    }
}

/// CIP general status names (Vol. 1 appendix B).
pub fn status_name(s: u8) -> &'static str {
    match s {
        0x00 => "Success",
        0x01 => "Connection failure",
        0x02 => "Resource unavailable",
        0x03 => "Invalid parameter value",
        0x04 => "Path segment error",
        0x05 => "Path destination unknown",
        0x06 => "Partial transfer",
        0x08 => "Service not supported",
        0x09 => "Invalid attribute value",
        0x0c => "Object state conflict",
        0x0e => "Attribute not settable",
        0x0f => "Privilege violation",
        0x10 => "Device state conflict",
        0x13 => "Not enough data",
        0x14 => "Attribute not supported",
        0x15 => "Too much data",
        0x16 => "Object does not exist",
        0x1e => "Embedded service error",
        0x26 => "Invalid path size",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_request_in_send_rr_data() {
        // CIP Stop (0x07) to the Identity object? No: to class 0x8e instance 1.
        let cip_req = [0x07, 0x02, 0x20, 0x8e, 0x24, 0x01];
        let c = cip(&cip_req, 0).expect("cip");
        assert_eq!(
            (c.service, c.class, c.instance, c.response),
            (7, Some(0x8e), Some(1), false)
        );
        assert_eq!(action(&c), Action::ModeChange);
        let tag = [
            0x4c, 0x04, 0x91, 0x05, b'M', b'o', b't', b'o', b'r', 0x00, 0x01, 0x00,
        ];
        let c = cip(&tag, 0).expect("cip");
        assert_eq!(
            (c.tag.as_deref(), action(&c)),
            (Some("Motor"), Action::Read)
        );
        assert_eq!(frame_len(b"GET / HTTP"), Err(EnipError::NotEnip));
    }
}
