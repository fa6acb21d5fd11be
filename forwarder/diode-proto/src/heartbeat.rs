//! Heartbeats: the sender's account of what it has sent, about once a second.
//!
//! ```text
//! heartbeat = sent-at (u64, Unix ms, informational)
//!           | next-block (u64: blocks 0 .. next-block-1 have been sent)
//!           | settings fingerprint (u64)
//!           | records sent (u64) | records dropped before the diode (u64) | spool depth (u64, bytes)
//!           | stream count (u16)
//!           | *( stream id (u16) | next sequence (u64) | name length (u8) | name (UTF-8) )
//! ```
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
}
