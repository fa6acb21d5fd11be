//! What a receiver must remember across restarts, and its byte layout.
//!
//! ```text
//! state    = magic "WRS1" | agent count (u16) | *agent | retired count (u16) | *epoch (u64)
//!          | session count (u16) | *session
//! agent    = name length (u8) | name | boot (u64) | newest heartbeat (u64, Unix ms)
//! session  = epoch (u64) | agent name length (u8) | agent name | boot (u64) | key id (u16)
//!          | cipher (u8) | joined (u8) | next block (u64) | last heartbeat (u64, u64::MAX: none)
//!          | stream count (u16) | *( stream id (u16) | next sequence (u64) | name length (u8) | name )
//! ```
//!
//! Agents remember the newest boot they proved (a session of a lower or equal boot is stale);
//! the retired epochs are refused outright; each live session keeps the block and the stream
//! positions up to which the receiver's outputs are durable. Counts are bounded by the
//! constants below, so a state file can never make a reader allocate without limit. The file
//! layer (checksums, torn writes) is the caller's.

use crate::reader::Reader;
use crate::receiver::Output;

/// Agents remembered at most.
pub const MAX_AGENTS: usize = 4096;
/// Retired epochs remembered at most.
pub const MAX_RETIRED: usize = 4096;
/// Live sessions remembered at most.
pub const MAX_SESSIONS: usize = 4096;
/// Streams per session at most.
pub const MAX_STREAMS: usize = 4096;

const MAGIC: &[u8; 4] = b"WRS1";

/// One agent.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AgentRecord {
    /// Its name.
    pub name: String,
    /// The newest boot proved by a heartbeat.
    pub boot: u64,
    /// The newest heartbeat's sent-at time.
    pub newest_heartbeat_unix_ms: u64,
}

/// One stream's durable position.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StreamRecord {
    /// Stream id.
    pub id: u16,
    /// Its name.
    pub name: String,
    /// The next sequence expected: every earlier one is delivered or in a gap record.
    pub next_sequence: u64,
}

/// One live session.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SessionRecord {
    /// Epoch.
    pub epoch: u64,
    /// Its agent.
    pub agent: String,
    /// Its rank among the agent's sessions.
    pub boot: u64,
    /// Key id it is sealed under.
    pub key_id: u16,
    /// Cipher id.
    pub cipher: u8,
    /// The receiver joined the session under way: a stream first named by a heartbeat starts
    /// at the heartbeat's position, not at 0.
    pub joined: bool,
    /// Every block before it is delivered or declared lost.
    pub next_block: u64,
    /// The highest heartbeat counter accepted.
    pub last_heartbeat: Option<u64>,
    /// Stream positions.
    pub streams: Vec<StreamRecord>,
}

/// Everything a receiver persists.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ReceiverState {
    /// Agents by name.
    pub agents: Vec<AgentRecord>,
    /// Epochs whose datagrams are refused, oldest first.
    pub retired: Vec<u64>,
    /// Live sessions.
    pub sessions: Vec<SessionRecord>,
}

impl ReceiverState {
    /// The bytes of the state.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(MAGIC);
        let agents = &self.agents[..self.agents.len().min(MAX_AGENTS)];
        out.extend_from_slice(&(agents.len() as u16).to_be_bytes());
        for a in agents {
            name(out, &a.name);
            out.extend_from_slice(&a.boot.to_be_bytes());
            out.extend_from_slice(&a.newest_heartbeat_unix_ms.to_be_bytes());
        }
        let skip = self.retired.len().saturating_sub(MAX_RETIRED);
        let retired = self.retired.get(skip..).unwrap_or_default();
        out.extend_from_slice(&(retired.len() as u16).to_be_bytes());
        for e in retired {
            out.extend_from_slice(&e.to_be_bytes());
        }
        let sessions = &self.sessions[..self.sessions.len().min(MAX_SESSIONS)];
        out.extend_from_slice(&(sessions.len() as u16).to_be_bytes());
        for s in sessions {
            out.extend_from_slice(&s.epoch.to_be_bytes());
            name(out, &s.agent);
            out.extend_from_slice(&s.boot.to_be_bytes());
            out.extend_from_slice(&s.key_id.to_be_bytes());
            out.push(s.cipher);
            out.push(u8::from(s.joined));
            out.extend_from_slice(&s.next_block.to_be_bytes());
            out.extend_from_slice(&s.last_heartbeat.unwrap_or(u64::MAX).to_be_bytes());
            let streams = &s.streams[..s.streams.len().min(MAX_STREAMS)];
            out.extend_from_slice(&(streams.len() as u16).to_be_bytes());
            for st in streams {
                out.extend_from_slice(&st.id.to_be_bytes());
                out.extend_from_slice(&st.next_sequence.to_be_bytes());
                name(out, &st.name);
            }
        }
    }

    /// Read a state written by [`ReceiverState::encode`]; `None` if it is not exactly one.
    pub fn decode(bytes: &[u8]) -> Option<ReceiverState> {
        let mut r = Reader::new(bytes);
        if r.take(4).ok()? != MAGIC {
            return None;
        }
        let mut st = ReceiverState::default();
        let n = bounded(&mut r, MAX_AGENTS)?;
        for _ in 0..n {
            st.agents.push(AgentRecord {
                name: read_name(&mut r)?,
                boot: r.u64().ok()?,
                newest_heartbeat_unix_ms: r.u64().ok()?,
            });
        }
        let n = bounded(&mut r, MAX_RETIRED)?;
        for _ in 0..n {
            st.retired.push(r.u64().ok()?);
        }
        let n = bounded(&mut r, MAX_SESSIONS)?;
        for _ in 0..n {
            let mut s = SessionRecord {
                epoch: r.u64().ok()?,
                agent: read_name(&mut r)?,
                boot: r.u64().ok()?,
                key_id: r.u16().ok()?,
                cipher: r.u8().ok()?,
                joined: match r.u8().ok()? {
                    0 => false,
                    1 => true,
                    _ => return None,
                },
                next_block: r.u64().ok()?,
                last_heartbeat: Some(r.u64().ok()?).filter(|v| *v != u64::MAX),
                streams: Vec::new(),
            };
            let m = bounded(&mut r, MAX_STREAMS)?;
            for _ in 0..m {
                s.streams.push(StreamRecord {
                    id: r.u16().ok()?,
                    next_sequence: r.u64().ok()?,
                    name: read_name(&mut r)?,
                });
            }
            st.sessions.push(s);
        }
        r.is_empty().then_some(st)
    }
}

impl ReceiverState {
    /// Follow one receiver output: applied to every output in order, once what it carries is
    /// durable in the sinks, this is the state to persist. [`crate::Receiver::restore`] from
    /// it goes on exactly where the durable outputs stopped.
    pub fn apply(&mut self, output: &Output) {
        match output {
            Output::SessionStarted {
                session,
                agent,
                boot,
                joined,
                key_id,
                cipher,
                next_block,
                streams,
                ..
            } => {
                let a = self.agent_mut(agent);
                a.boot = a.boot.max(*boot);
                self.sessions.retain(|s| s.epoch != *session);
                self.sessions.push(SessionRecord {
                    epoch: *session,
                    agent: agent.clone(),
                    boot: *boot,
                    key_id: *key_id,
                    cipher: *cipher,
                    joined: *joined,
                    next_block: *next_block,
                    last_heartbeat: None,
                    streams: streams
                        .iter()
                        .map(|p| StreamRecord {
                            id: p.id,
                            name: p.name.clone(),
                            next_sequence: p.next_sequence,
                        })
                        .collect(),
                });
            }
            Output::SessionEnded { session, .. } | Output::SessionRefused { session, .. } => {
                self.sessions.retain(|s| s.epoch != *session);
                if !self.retired.contains(session) {
                    self.retired.push(*session);
                }
                let extra = self.retired.len().saturating_sub(MAX_RETIRED);
                self.retired.drain(..extra);
            }
            Output::Heartbeat {
                session,
                counter,
                heartbeat,
            } => {
                let Some(s) = self.sessions.iter_mut().find(|s| s.epoch == *session) else {
                    return;
                };
                s.last_heartbeat = Some(*counter);
                for pos in &heartbeat.streams {
                    if let Some(st) = s.streams.iter_mut().find(|st| st.id == pos.id) {
                        st.name.clone_from(&pos.name);
                    } else if s.streams.len() < MAX_STREAMS {
                        s.streams.push(StreamRecord {
                            id: pos.id,
                            name: pos.name.clone(),
                            // The receiver's own default for a stream first named here.
                            next_sequence: if s.joined { pos.next_sequence } else { 0 },
                        });
                    }
                }
                let agent = s.agent.clone();
                let a = self.agent_mut(&agent);
                a.newest_heartbeat_unix_ms =
                    a.newest_heartbeat_unix_ms.max(heartbeat.sent_at_unix_ms);
            }
            Output::Block {
                session,
                block,
                records,
            } => {
                let Some(s) = self.sessions.iter_mut().find(|s| s.epoch == *session) else {
                    return;
                };
                s.next_block = s.next_block.max(block.saturating_add(1));
                for (r, _) in records.records() {
                    advance_stream(s, r.stream, r.sequence.saturating_add(1));
                }
            }
            Output::Gap(g) => {
                if let Some(s) = self.sessions.iter_mut().find(|s| s.epoch == g.session) {
                    advance_stream(s, g.stream, g.last.saturating_add(1));
                }
            }
            Output::BlocksLost { session, last, .. } => {
                if let Some(s) = self.sessions.iter_mut().find(|s| s.epoch == *session) {
                    s.next_block = s.next_block.max(last.saturating_add(1));
                }
            }
            Output::SettingsMismatch { .. } => {}
        }
    }

    fn agent_mut(&mut self, name: &str) -> &mut AgentRecord {
        let i = match self.agents.iter().position(|a| a.name == name) {
            Some(i) => i,
            None => {
                self.agents.push(AgentRecord {
                    name: name.to_owned(),
                    ..AgentRecord::default()
                });
                self.agents.len() - 1
            }
        };
        let last = self.agents.len() - 1;
        &mut self.agents[i.min(last)]
    }
}

fn advance_stream(s: &mut SessionRecord, id: u16, next: u64) {
    if let Some(st) = s.streams.iter_mut().find(|st| st.id == id) {
        st.next_sequence = st.next_sequence.max(next);
    } else if s.streams.len() < MAX_STREAMS {
        s.streams.push(StreamRecord {
            id,
            name: format!("stream-{id}"),
            next_sequence: next,
        });
    }
}

fn name(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let s = s.get(..end).unwrap_or_default();
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

/// What an agent must remember of its current session so that the next start can close it:
/// where every stream's fully transmitted records end, and the heartbeat counter from which
/// closing heartbeats are safe to seal (see [`SenderLedger::closing_counter`]).
///
/// ```text
/// ledger = magic "WSL1" | epoch (u64) | closed (u8) | next block (u64) | heartbeat counter (u64)
///        | agent name length (u8) | agent name | boot (u64) | started (u64, Unix ms)
///        | stream count (u16) | *( stream id (u16) | next sequence (u64) | name length (u8) | name )
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SenderLedger {
    /// The session's epoch.
    pub session: u64,
    /// The session ended with its final heartbeats: nothing to close at the next start.
    pub closed: bool,
    /// Blocks before it have been handed to the link whole.
    pub next_block: u64,
    /// The next heartbeat counter the session would have used when this was written.
    pub heartbeat_counter: u64,
    /// The agent and the session's boot.
    pub identity: crate::Identity,
    /// Per stream, the sequence after the last record handed to the link in a whole block.
    pub streams: Vec<crate::StreamPosition>,
}

/// Counters a session may use after its ledger was last written before a closing heartbeat
/// could collide with one it sent: 2^32 heartbeats, 136 years at one a second.
pub const CLOSING_COUNTER_MARGIN: u64 = 1 << 32;

const LEDGER_MAGIC: &[u8; 4] = b"WSL1";

impl SenderLedger {
    /// The bytes of the ledger.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(LEDGER_MAGIC);
        out.extend_from_slice(&self.session.to_be_bytes());
        out.push(u8::from(self.closed));
        out.extend_from_slice(&self.next_block.to_be_bytes());
        out.extend_from_slice(&self.heartbeat_counter.to_be_bytes());
        name(out, &self.identity.agent);
        out.extend_from_slice(&self.identity.boot.to_be_bytes());
        out.extend_from_slice(&self.identity.started_unix_ms.to_be_bytes());
        let streams = &self.streams[..self.streams.len().min(MAX_STREAMS)];
        out.extend_from_slice(&(streams.len() as u16).to_be_bytes());
        for st in streams {
            out.extend_from_slice(&st.id.to_be_bytes());
            out.extend_from_slice(&st.next_sequence.to_be_bytes());
            name(out, &st.name);
        }
    }

    /// Read a ledger written by [`SenderLedger::encode`]; `None` if it is not exactly one.
    pub fn decode(bytes: &[u8]) -> Option<SenderLedger> {
        let mut r = Reader::new(bytes);
        if r.take(4).ok()? != LEDGER_MAGIC {
            return None;
        }
        let mut l = SenderLedger {
            session: r.u64().ok()?,
            closed: match r.u8().ok()? {
                0 => false,
                1 => true,
                _ => return None,
            },
            next_block: r.u64().ok()?,
            heartbeat_counter: r.u64().ok()?,
            identity: crate::Identity {
                agent: read_name(&mut r)?,
                boot: r.u64().ok()?,
                started_unix_ms: r.u64().ok()?,
            },
            streams: Vec::new(),
        };
        let n = bounded(&mut r, MAX_STREAMS)?;
        for _ in 0..n {
            l.streams.push(crate::StreamPosition {
                id: r.u16().ok()?,
                next_sequence: r.u64().ok()?,
                name: read_name(&mut r)?,
            });
        }
        r.is_empty().then_some(l)
    }

    /// The first heartbeat counter a closing heartbeat of this session may use: beyond every
    /// counter the session can have used after this ledger was written (a counter sealed twice
    /// with different contents would reuse an AEAD nonce). The caller writes the ledger again
    /// with `heartbeat_counter` past the copies it sends before sending them, so that a start
    /// that dies while closing never reuses them either.
    pub fn closing_counter(&self) -> u64 {
        self.heartbeat_counter
            .saturating_add(CLOSING_COUNTER_MARGIN)
    }
}

fn read_name(r: &mut Reader<'_>) -> Option<String> {
    let len = r.u8().ok()?;
    std::str::from_utf8(r.take(usize::from(len)).ok()?)
        .ok()
        .map(str::to_owned)
}

fn bounded(r: &mut Reader<'_>, max: usize) -> Option<usize> {
    let n = usize::from(r.u16().ok()?);
    (n <= max).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_round_trips_and_rejects_every_cut_and_extra_byte() {
        let l = SenderLedger {
            session: 0x0123_4567_89ab_cdef,
            closed: false,
            next_block: 77,
            heartbeat_counter: 12,
            identity: crate::Identity {
                agent: "zone-3".into(),
                boot: 1_765_000_000,
                started_unix_ms: 1_765_000_000_123,
            },
            streams: vec![
                crate::StreamPosition {
                    id: 0,
                    next_sequence: 600,
                    name: "syslog".into(),
                },
                crate::StreamPosition {
                    id: 1,
                    next_sequence: 3,
                    name: "agent".into(),
                },
            ],
        };
        let mut bytes = Vec::new();
        l.encode(&mut bytes);
        assert_eq!(SenderLedger::decode(&bytes), Some(l.clone()));
        for cut in 0..bytes.len() {
            assert_eq!(SenderLedger::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        bytes.push(0);
        assert_eq!(SenderLedger::decode(&bytes), None);
        assert_eq!(l.closing_counter(), 12 + (1 << 32));
    }

    fn sample() -> ReceiverState {
        ReceiverState {
            agents: vec![AgentRecord {
                name: "zone-3".into(),
                boot: 1_765_000_000,
                newest_heartbeat_unix_ms: 1_765_000_000_999,
            }],
            retired: vec![1, 2, 3],
            sessions: vec![SessionRecord {
                epoch: 0xfeed,
                agent: "zone-3".into(),
                boot: 1_765_000_000,
                key_id: 1,
                cipher: 1,
                joined: false,
                next_block: 77,
                last_heartbeat: Some(12),
                streams: vec![StreamRecord {
                    id: 0,
                    name: "syslog".into(),
                    next_sequence: 1234,
                }],
            }],
        }
    }

    #[test]
    fn state_round_trips_and_every_cut_is_refused() {
        let st = sample();
        let mut out = Vec::new();
        st.encode(&mut out);
        assert_eq!(ReceiverState::decode(&out), Some(st.clone()));
        for cut in 0..out.len() {
            assert_eq!(ReceiverState::decode(&out[..cut]), None, "cut {cut}");
        }
        out.push(0);
        assert_eq!(ReceiverState::decode(&out), None);
        let mut none = st;
        none.sessions[0].last_heartbeat = None;
        none.encode(&mut out);
        assert_eq!(ReceiverState::decode(&out), Some(none));
    }
}
