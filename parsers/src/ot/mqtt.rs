//! MQTT 3.1, 3.1.1 and 5.0 control packets: CONNECT (protocol, client id, user name; never the
//! password), CONNACK, PUBLISH (topic, QoS, retain, payload length), SUBSCRIBE / SUBACK,
//! UNSUBSCRIBE, PING and DISCONNECT.

// Every index below follows a length check on the same slice; the fuzz target holds that.
#![allow(clippy::indexing_slicing)]

use super::Action;

/// The largest packet accepted (the protocol allows 256 MiB; brokers cap far lower).
pub const MAX_PACKET: usize = 16 * 1024 * 1024;

/// The length of the packet starting `buf`; `Err(0)` if it cannot be MQTT.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, usize> {
    let Some(&b0) = buf.first() else {
        return Ok(None);
    };
    if b0 >> 4 == 0 {
        return Err(0);
    }
    let mut len = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let total = 2 + i + len;
            if total > MAX_PACKET {
                return Err(0);
            }
            return Ok((buf.len() >= total).then_some(total));
        }
    }
    Err(0)
}

/// One control packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Packet {
    /// Packet type (1 CONNECT ... 15 AUTH).
    pub kind: u8,
    /// Packet identifier (PUBLISH QoS>0, SUBSCRIBE, SUBACK, ...).
    pub packet_id: Option<u16>,
    /// CONNECT: protocol name and level.
    pub protocol: Option<(String, u8)>,
    /// CONNECT: client identifier.
    pub client_id: Option<String>,
    /// CONNECT: user name (the password is never read).
    pub username: Option<String>,
    /// CONNECT: will topic.
    pub will_topic: Option<String>,
    /// CONNACK: return / reason code.
    pub return_code: Option<u8>,
    /// PUBLISH: topic; SUBSCRIBE: the topic filters, comma-separated.
    pub topic: Option<String>,
    /// PUBLISH: QoS; SUBSCRIBE: the first requested QoS.
    pub qos: u8,
    /// PUBLISH: retain flag.
    pub retain: bool,
    /// PUBLISH: payload length.
    pub payload_len: Option<usize>,
}

fn string(b: &[u8], at: &mut usize) -> Option<String> {
    let n = usize::from(u16::from_be_bytes([*b.get(*at)?, *b.get(*at + 1)?]));
    let s = b.get(*at + 2..*at + 2 + n)?;
    *at += 2 + n;
    Some(String::from_utf8_lossy(s).into_owned())
}

fn skip_properties(b: &[u8], at: &mut usize) -> Option<()> {
    let mut len = 0usize;
    for i in 0..4 {
        let x = *b.get(*at)?;
        *at += 1;
        len |= usize::from(x & 0x7f) << (7 * i);
        if x & 0x80 == 0 {
            *at += len;
            return Some(());
        }
    }
    None
}

/// Parse one packet (as [`frame_len`] delimited it). `v5` is the session's protocol level 5
/// (properties present).
pub fn parse(p: &[u8], v5: bool) -> Option<Packet> {
    let b0 = *p.first()?;
    let mut at = 1;
    while p.get(at)? & 0x80 != 0 {
        at += 1;
    }
    at += 1;
    let body = p.get(at..)?;
    let mut i = 0;
    let mut pk = Packet {
        kind: b0 >> 4,
        ..Packet::default()
    };
    match pk.kind {
        1 => {
            let name = string(body, &mut i)?;
            let level = *body.get(i)?;
            let flags = *body.get(i + 1)?;
            i += 4;
            if level == 5 {
                skip_properties(body, &mut i)?;
            }
            pk.protocol = Some((name, level));
            pk.client_id = string(body, &mut i);
            if flags & 0x04 != 0 {
                if level == 5 {
                    skip_properties(body, &mut i)?;
                }
                pk.will_topic = string(body, &mut i);
                string(body, &mut i)?;
            }
            if flags & 0x80 != 0 {
                pk.username = string(body, &mut i);
            }
        }
        2 => pk.return_code = body.get(1).copied(),
        3 => {
            pk.qos = (b0 >> 1) & 3;
            pk.retain = b0 & 1 != 0;
            pk.topic = string(body, &mut i);
            if pk.qos > 0 {
                pk.packet_id = Some(u16::from_be_bytes([*body.get(i)?, *body.get(i + 1)?]));
                i += 2;
            }
            if v5 {
                skip_properties(body, &mut i)?;
            }
            pk.payload_len = Some(body.len().saturating_sub(i));
        }
        4..=7 | 9 | 11 => pk.packet_id = Some(u16::from_be_bytes([*body.first()?, *body.get(1)?])),
        8 | 10 => {
            pk.packet_id = Some(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
            i = 2;
            if v5 {
                skip_properties(body, &mut i)?;
            }
            let mut topics = Vec::new();
            while i < body.len() && topics.len() < 64 {
                let t = string(body, &mut i)?;
                if pk.kind == 8 {
                    if topics.is_empty() {
                        pk.qos = body.get(i).copied().unwrap_or(0) & 3;
                    }
                    i += 1;
                }
                topics.push(t);
            }
            pk.topic = Some(topics.join(","));
        }
        _ => {}
    }
    Some(pk)
}

/// Packet type names.
pub fn type_name(t: u8) -> &'static str {
    match t {
        1 => "CONNECT",
        2 => "CONNACK",
        3 => "PUBLISH",
        4 => "PUBACK",
        5 => "PUBREC",
        6 => "PUBREL",
        7 => "PUBCOMP",
        8 => "SUBSCRIBE",
        9 => "SUBACK",
        10 => "UNSUBSCRIBE",
        11 => "UNSUBACK",
        12 => "PINGREQ",
        13 => "PINGRESP",
        14 => "DISCONNECT",
        15 => "AUTH",
        _ => "RESERVED",
    }
}

/// What a packet from a client does. A publish to a command topic (Sparkplug B `NCMD`/`DCMD`,
/// or a topic ending in `/set` or `/cmd`) controls a device; other publishes report data.
pub fn action(p: &Packet) -> Action {
    match p.kind {
        3 => {
            let t = p.topic.as_deref().unwrap_or("");
            if t.contains("/NCMD/")
                || t.contains("/DCMD/")
                || t.ends_with("/set")
                || t.ends_with("/cmd")
            {
                Action::Control
            } else {
                Action::Read
            }
        }
        8 | 10 => Action::Read,
        _ => Action::Other,
    }
}
