//! Heartbeats: the sender's account of what it has sent, about once a second.
//!
//! ```text
//! heartbeat = sent-at (u64, Unix ms, informational)
//!           | next-block (u64: blocks 0 .. next-block-1 have been sent)
//!           | settings fingerprint (u64)
//!           | records sent (u64) | records dropped before the diode (u64) | spool depth (u64, bytes)
//!           | stream count (u16)
//!           | *( stream id (u16) | next sequence (u64) | name length (u8) | name (UTF-8) )
//!           [ identity ]
//! identity  = agent name length (u8) | agent name (UTF-8) | boot (u64) | session started (u64, Unix ms)
//! ```
//!
//! The identity (since 2026-12-08) names the agent whose session this is and ranks the session
//! among that agent's sessions: `boot` grows with every start of the agent (see
//! `docs/diode-protocol.md`, "Sessions"). A receiver holds a new session's blocks until a
//! heartbeat with an identity attributes it. Heartbeats without one come from earlier agents.
//!
//! The receiver uses a heartbeat once every block before `next-block` is resolved (delivered or
//! declared lost): any stream whose `next sequence` is beyond what arrived has lost its tail,
//! which becomes a gap record. A receiver that starts mid-session resynchronises from the first
//! heartbeat it sees.

use crate::reader::Reader;

/// One stream's position in a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamPosition {
    /// Stream id used in records.
    pub id: u16,
    /// The sequence number the stream's next record will get.
    pub next_sequence: u64,
    /// The stream's name (the configured input name).
    pub name: String,
}

/// A decoded heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Heartbeat {
    /// Sender's wall clock, Unix milliseconds.
    pub sent_at_unix_ms: u64,
    /// Blocks `0..next_block` have been sent.
    pub next_block: u64,
    /// Fingerprint of the settings that must match on both sides.
    pub fingerprint: u64,
    /// Records accepted into the diode so far this session.
    pub records_sent: u64,
    /// Records the sender dropped before the diode (overflow, oversize).
    pub records_dropped: u64,
    /// Bytes waiting in the sender's spool.
    pub spool_depth_bytes: u64,
    /// Per-stream positions.
    pub streams: Vec<StreamPosition>,
    /// Which agent's session this is, and its rank among that agent's sessions (absent from
    /// agents before 2026-12-08).
    pub identity: Option<Identity>,
}

/// The agent a session belongs to and the session's rank among that agent's sessions.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Identity {
    /// The agent's name (`[agent] name`), at most [`MAX_AGENT_NAME`] bytes.
    pub agent: String,
    /// Grows with every start of the agent: persisted in the agent's state directory, never
    /// below the start's Unix time in seconds.
    pub boot: u64,
    /// When the session started, the agent's Unix milliseconds.
    pub started_unix_ms: u64,
}

/// The longest agent name a heartbeat carries.
pub const MAX_AGENT_NAME: usize = 64;

impl Identity {
    fn encoded_len(&self) -> usize {
        1 + truncate(&self.agent, MAX_AGENT_NAME).len() + 16
    }
}

impl Heartbeat {
    /// Encode into at most `max_len` bytes; streams that do not fit are left out (the next
    /// heartbeat starts the list where this one stopped, see [`Heartbeat::encode_from`]).
    pub fn encode_from(&self, first_stream: usize, max_len: usize, out: &mut Vec<u8>) -> usize {
        out.clear();
        for v in [
            self.sent_at_unix_ms,
            self.next_block,
            self.fingerprint,
            self.records_sent,
            self.records_dropped,
            self.spool_depth_bytes,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        let count_at = out.len();
        out.extend_from_slice(&0u16.to_be_bytes());
        let max_len =
            max_len.saturating_sub(self.identity.as_ref().map_or(0, Identity::encoded_len));
        let mut count = 0u16;
        let mut next = first_stream;
        let n = self.streams.len();
        for i in 0..n {
            let Some(s) = self.streams.get((first_stream + i) % n) else {
                break;
            };
            let name = truncate(&s.name, 255);
            if out.len() + 2 + 8 + 1 + name.len() > max_len || count == u16::MAX {
                break;
            }
            out.extend_from_slice(&s.id.to_be_bytes());
            out.extend_from_slice(&s.next_sequence.to_be_bytes());
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            count += 1;
            next = (first_stream + i + 1) % n;
        }
        if let Some(slot) = out.get_mut(count_at..count_at + 2) {
            slot.copy_from_slice(&count.to_be_bytes());
        }
        if let Some(id) = &self.identity {
            let name = truncate(&id.agent, MAX_AGENT_NAME);
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&id.boot.to_be_bytes());
            out.extend_from_slice(&id.started_unix_ms.to_be_bytes());
        }
        next
    }

    /// Decode a heartbeat payload.
    pub fn decode(bytes: &[u8]) -> Option<Heartbeat> {
        let mut r = Reader::new(bytes);
        let mut hb = Heartbeat {
            sent_at_unix_ms: r.u64().ok()?,
            next_block: r.u64().ok()?,
            fingerprint: r.u64().ok()?,
            records_sent: r.u64().ok()?,
            records_dropped: r.u64().ok()?,
            spool_depth_bytes: r.u64().ok()?,
            streams: Vec::new(),
            identity: None,
        };
        let count = r.u16().ok()?;
        for _ in 0..count {
            let id = r.u16().ok()?;
            let next_sequence = r.u64().ok()?;
            let len = r.u8().ok()?;
            let name = String::from_utf8_lossy(r.take(usize::from(len)).ok()?).into_owned();
            hb.streams.push(StreamPosition {
                id,
                next_sequence,
                name,
            });
        }
        if !r.is_empty() {
            let len = r.u8().ok()?;
            if usize::from(len) > MAX_AGENT_NAME {
                return None;
            }
            let agent = std::str::from_utf8(r.take(usize::from(len)).ok()?)
                .ok()?
                .to_owned();
            hb.identity = Some(Identity {
                agent,
                boot: r.u64().ok()?,
                started_unix_ms: r.u64().ok()?,
            });
        }
        r.is_empty().then_some(hb)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_round_trips_and_splits_long_stream_lists() {
        let hb = Heartbeat {
            sent_at_unix_ms: 1,
            next_block: 2,
            fingerprint: 3,
            records_sent: 4,
            records_dropped: 5,
            spool_depth_bytes: 6,
            streams: (0..10)
                .map(|i| StreamPosition {
                    id: i,
                    next_sequence: u64::from(i) * 100,
                    name: format!("stream-{i}"),
                })
                .collect(),
            identity: None,
        };
        let mut out = Vec::new();
        assert_eq!(hb.encode_from(0, 1400, &mut out), 0, "all fit: wraps to 0");
        assert_eq!(Heartbeat::decode(&out), Some(hb.clone()));
        // Room for 3 streams only (50 bytes of fixed fields, 19 per stream).
        let next = hb.encode_from(8, 50 + 3 * 19, &mut out);
        let part = Heartbeat::decode(&out).expect("decodes");
        assert_eq!(
            part.streams.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![8, 9, 0]
        );
        assert_eq!(next, 1);
        assert_eq!(Heartbeat::decode(&out[..out.len() - 1]), None);
    }

    /// The identity trailer round-trips, its room is kept free of streams, and a damaged one
    /// (cut, overlong name, bytes after it, a name that is not UTF-8) does not decode.
    #[test]
    fn identity_round_trips_and_keeps_its_room() {
        let id = Identity {
            agent: "zone-3".into(),
            boot: 1_765_000_000,
            started_unix_ms: 1_765_000_000_123,
        };
        let hb = Heartbeat {
            next_block: 7,
            streams: (0..10)
                .map(|i| StreamPosition {
                    id: i,
                    next_sequence: 5,
                    name: format!("stream-{i}"),
                })
                .collect(),
            identity: Some(id.clone()),
            ..Heartbeat::default()
        };
        let mut out = Vec::new();
        hb.encode_from(0, 1400, &mut out);
        assert_eq!(Heartbeat::decode(&out), Some(hb.clone()));
        // 50 fixed bytes, room for 3 streams and the identity (1 + 6 + 16).
        let next = hb.encode_from(0, 50 + 3 * 19 + 23, &mut out);
        assert_eq!(next, 3);
        assert_eq!(out.len(), 50 + 3 * 19 + 23);
        let part = Heartbeat::decode(&out).expect("decodes");
        assert_eq!(part.identity, Some(id));
        for cut in 1..23 {
            assert_eq!(
                Heartbeat::decode(&out[..out.len() - cut]),
                None,
                "cut {cut}"
            );
        }
        let mut longer = out.clone();
        longer.push(0);
        assert_eq!(Heartbeat::decode(&longer), None);
        let name_at = 50 + 3 * 19;
        let mut bad = out.clone();
        bad[name_at] = 65;
        assert_eq!(Heartbeat::decode(&bad), None);
        let mut bad = out.clone();
        bad[name_at + 1] = 0xff;
        assert_eq!(Heartbeat::decode(&bad), None);
    }
}
