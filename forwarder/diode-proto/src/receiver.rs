//! The receiving half: datagrams in, blocks of records, gap records and heartbeats out.
//!
//! ```text
//!  handle_datagram(now, bytes)
//!      │ frame check ─► key lookup ─► AEAD verify (nothing is trusted before this)
//!      │ session: same / new (sender restart) / retired (rejected)
//!      ├─ heartbeat ─► replay check ─► held until every earlier block is resolved ─► tail gaps
//!      └─ symbol ────► replay / duplicate check ─► pending block (bounded bytes)
//!                          │
//!  advance(now): deliver blocks strictly in order; a block still missing `reorder_timeout`
//!  after later data proved it was sent is declared lost. Records are checked against each
//!  stream's expected sequence: a jump is a gap record, a repeat is dropped and counted.
//!      ▼
//!  poll_output() ─► SessionStarted | Block | Gap | BlocksLost | Heartbeat | SettingsMismatch
//! ```
//!
//! The receiver never blocks and never sends: the driver feeds it and drains it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::block::{self, DecodedBlock};
use crate::crypto::{SessionKey, KEY_LEN};
use crate::frame::{DatagramType, FrameError, Header, HEADER_LEN, TAG_LEN};
use crate::heartbeat::{Heartbeat, StreamPosition};
use crate::state::ReceiverState;

/// A first block below this number starts a session "from the start": earlier blocks that never
/// arrive are gaps. A higher first block means the receiver joined a running session.
pub const JOIN_SLACK_BLOCKS: u64 = 64;
/// Retired sessions remembered, so that their datagrams cannot be replayed as a new session.
pub const RETIRED_SESSIONS: usize = crate::state::MAX_RETIRED;

/// Everything a receiver needs.
#[derive(Clone, Debug)]
pub struct ReceiverConfig {
    /// Accepted pre-shared keys by key id (two during a key rotation).
    pub keys: Vec<(u16, [u8; KEY_LEN])>,
    /// Fingerprint of our shared settings, compared with every heartbeat's.
    pub fingerprint: u64,
    /// Largest block (records area, and on the wire) accepted.
    pub max_block_bytes: usize,
    /// How long a missing block is waited for once later data shows it was sent.
    pub reorder_timeout: Duration,
    /// What incomplete blocks may cost at most, all sessions together (their symbols and
    /// [`PENDING_BLOCK_OVERHEAD`] each); past it the oldest are declared lost.
    pub max_pending_bytes: usize,
    /// Incomplete blocks held at most, all sessions together.
    pub max_pending_blocks: usize,
    /// Agents accepted by name; `None` accepts any agent holding a key.
    pub agents: Option<Vec<String>>,
    /// How long a new session's blocks are held for a heartbeat that names its agent; then
    /// they are discarded and the epoch refused.
    pub attribution_timeout: Duration,
    /// Sessions held at once (one per agent, and new ones waiting for their heartbeat).
    pub max_sessions: usize,
}

impl Default for ReceiverConfig {
    fn default() -> ReceiverConfig {
        ReceiverConfig {
            keys: Vec::new(),
            fingerprint: 0,
            max_block_bytes: 256 * 1024,
            reorder_timeout: Duration::from_millis(500),
            max_pending_bytes: 64 * 1024 * 1024,
            max_pending_blocks: 65_536,
            agents: None,
            attribution_timeout: Duration::from_secs(10),
            max_sessions: 256,
        }
    }
}

/// What an incomplete block is charged besides its symbols: its bookkeeping and the
/// allocator's share of its two buffers, so that a flood of tiny blocks is bounded too.
pub const PENDING_BLOCK_OVERHEAD: usize = 256;

/// Why a datagram was rejected. Every rejection is counted; nothing from a rejected datagram
/// is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reject {
    /// Framing is wrong (see [`FrameError`]).
    #[error("bad framing: {0}")]
    Frame(#[from] FrameError),
    /// The key id is not configured.
    #[error("unknown key id {0}")]
    UnknownKey(u16),
    /// The AEAD tag does not verify: wrong key, corruption or forgery.
    #[error("authentication failed")]
    Auth,
    /// The session was replaced by a newer one.
    #[error("datagram from a retired session")]
    StaleSession,
    /// A block already delivered or declared lost, or an old heartbeat: a replay or a very
    /// late datagram.
    #[error("replayed or late datagram")]
    Replayed,
    /// A symbol already held.
    #[error("duplicate symbol")]
    Duplicate,
    /// Authentic but inconsistent with the rest of its block, too large, or undecodable.
    #[error("inconsistent datagram")]
    Inconsistent,
    /// The heartbeat names an agent that is not in `[rx] agents`.
    #[error("agent not accepted")]
    UnknownAgent,
    /// The session never named its agent in time, or no session could be held for it.
    #[error("session not attributed to an agent")]
    Unattributed,
}

impl Reject {
    /// Every reason, for metrics.
    pub const ALL: [&'static str; 9] = [
        "bad_frame",
        "unknown_key",
        "auth_failed",
        "stale_session",
        "replayed",
        "duplicate",
        "inconsistent",
        "unknown_agent",
        "unattributed",
    ];

    /// A short stable code for metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            Reject::Frame(_) => "bad_frame",
            Reject::UnknownKey(_) => "unknown_key",
            Reject::Auth => "auth_failed",
            Reject::StaleSession => "stale_session",
            Reject::Replayed => "replayed",
            Reject::Duplicate => "duplicate",
            Reject::Inconsistent => "inconsistent",
            Reject::UnknownAgent => "unknown_agent",
            Reject::Unattributed => "unattributed",
        }
    }

    fn index(&self) -> usize {
        Reject::ALL
            .iter()
            .position(|c| *c == self.code())
            .unwrap_or(0)
    }
}

/// Why records are missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GapReason {
    /// Records after them arrived, they did not: their block was lost.
    LostBlock,
    /// A heartbeat says they were sent; they never arrived.
    TailLoss,
}

impl GapReason {
    /// A short stable code.
    pub fn code(&self) -> &'static str {
        match self {
            GapReason::LostBlock => "lost_block",
            GapReason::TailLoss => "tail_loss",
        }
    }
}

/// Records of one stream that were sent and will never arrive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// Session epoch.
    pub session: u64,
    /// Stream id.
    pub stream: u16,
    /// Stream name, as the last heartbeat gave it (`stream-<id>` before any heartbeat).
    pub stream_name: String,
    /// First missing sequence.
    pub first: u64,
    /// Last missing sequence (inclusive).
    pub last: u64,
    /// Why.
    pub reason: GapReason,
}

impl Gap {
    /// Number of missing records.
    pub fn count(&self) -> u64 {
        (self.last - self.first).saturating_add(1)
    }
}

/// What the receiver produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// A session was attributed to its agent (first contact, or the agent restarted); its
    /// blocks follow. Carries what a persisted state needs to follow it.
    SessionStarted {
        /// New epoch.
        session: u64,
        /// Its agent ("" for an agent that does not name itself).
        agent: String,
        /// Its rank among the agent's sessions.
        boot: u64,
        /// The agent's session it replaces (ended just before, see [`Output::SessionEnded`]).
        previous: Option<u64>,
        /// The receiver joined a session already under way (its history is unknown).
        joined: bool,
        /// Key id.
        key_id: u16,
        /// Cipher id.
        cipher: u8,
        /// The first block it will deliver or declare lost.
        next_block: u64,
        /// Stream positions it starts from (a joined session's, from its heartbeat).
        streams: Vec<StreamPosition>,
    },
    /// A session was replaced by a newer one of its agent; everything it will ever produce
    /// has been produced. Its epoch is refused from now on.
    SessionEnded {
        /// Epoch.
        session: u64,
        /// Its agent.
        agent: String,
        /// The session that replaced it.
        replaced_by: u64,
    },
    /// A session was refused: not newer than its agent's newest ([`Reject::StaleSession`]),
    /// its agent not accepted ([`Reject::UnknownAgent`]), or never attributed
    /// ([`Reject::Unattributed`]). Nothing of it was delivered; its epoch is refused from now on.
    SessionRefused {
        /// Epoch.
        session: u64,
        /// The agent it named, if any.
        agent: Option<String>,
        /// The boot it claimed.
        boot: u64,
        /// The agent's newest boot.
        newest_boot: u64,
        /// Why.
        reason: Reject,
        /// Datagrams of it that had been held and were discarded.
        discarded: u64,
    },
    /// A block's records, in order, duplicates removed.
    Block {
        /// Session epoch.
        session: u64,
        /// Block sequence.
        block: u64,
        /// The records.
        records: DecodedBlock,
    },
    /// Records that will never arrive.
    Gap(Gap),
    /// Blocks that were declared lost (their records surface as [`Output::Gap`]s).
    BlocksLost {
        /// Session epoch.
        session: u64,
        /// First lost block.
        first: u64,
        /// Last lost block (inclusive).
        last: u64,
    },
    /// A heartbeat arrived.
    Heartbeat {
        /// Session epoch.
        session: u64,
        /// Its counter (the header's block field).
        counter: u64,
        /// Its contents.
        heartbeat: Heartbeat,
    },
    /// The sender's shared settings differ from ours (reported once per session).
    SettingsMismatch {
        /// Session epoch.
        session: u64,
        /// Our fingerprint.
        ours: u64,
        /// The sender's.
        theirs: u64,
    },
}

/// Counters, for metrics and summaries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Datagrams that verified and were used.
    pub datagrams_accepted: u64,
    /// Rejected datagrams by [`Reject::ALL`] reason.
    pub rejected: [u64; 9],
    /// Blocks delivered.
    pub blocks_delivered: u64,
    /// Blocks declared lost.
    pub blocks_lost: u64,
    /// Blocks rebuilt from repair symbols (some source symbols were lost).
    pub blocks_repaired: u64,
    /// Repair symbols that arrived after their block was already complete (normal with FEC;
    /// not a rejection).
    pub symbols_redundant: u64,
    /// Records delivered.
    pub records_delivered: u64,
    /// Records reported missing in gap records.
    pub records_lost: u64,
    /// Records dropped because their sequence was already delivered.
    pub records_duplicate: u64,
    /// Sessions seen.
    pub sessions: u64,
    /// Heartbeats accepted.
    pub heartbeats: u64,
    /// Heartbeats whose settings fingerprint differed from ours.
    pub settings_mismatches: u64,
    /// Sessions refused (stale, agent not accepted, never attributed).
    pub sessions_refused: u64,
    /// Incomplete blocks held now, all sessions.
    pub pending_blocks: u64,
    /// What they cost now (see [`ReceiverConfig::max_pending_bytes`]).
    pub pending_bytes: u64,
    /// Incomplete blocks given up because the pending bound was reached.
    pub blocks_shed: u64,
}

impl ReceiverStats {
    /// Total rejected datagrams.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// Rejected datagrams for one reason code.
    pub fn rejected_for(&self, code: &str) -> u64 {
        Reject::ALL
            .iter()
            .position(|c| *c == code)
            .and_then(|i| self.rejected.get(i).copied())
            .unwrap_or(0)
    }
}

struct Pending {
    source_count: u16,
    repair_count: u16,
    symbol_size: usize,
    /// Source symbols then repair symbols, `symbol_size` bytes each; shorter until the last
    /// of them arrives (see `on_symbol`).
    data: Vec<u8>,
    /// What the block counts against `max_pending_bytes`: all its symbols.
    size: usize,
    have: Vec<bool>,
    /// Source symbols held (received or rebuilt).
    sources: u32,
    /// Symbols of either kind received.
    received: u32,
    first_seen: Instant,
    /// When its latest symbol arrived: a block still arriving (slowly, on a slow link) is not
    /// overdue.
    last_seen: Instant,
}

impl Pending {
    /// Whether a symbol header describes this block as it was first seen.
    fn shaped_as(&self, h: &Header) -> bool {
        self.source_count == h.source_count
            && self.repair_count == h.repair_count
            && self.symbol_size == usize::from(h.payload_len)
    }

    fn complete(&self) -> bool {
        self.sources == u32::from(self.source_count)
    }

    /// The block's buffer, cut after its source symbols.
    fn into_source_bytes(self) -> Vec<u8> {
        let end = usize::from(self.source_count) * self.symbol_size;
        let mut data = self.data;
        data.resize(end, 0);
        data
    }
}

struct StreamState {
    name: String,
    expected: Option<u64>,
}

struct Session {
    epoch: u64,
    key_id: u16,
    key: SessionKey,
    /// The agent, once a heartbeat named it; until then nothing is delivered.
    agent: Option<String>,
    boot: u64,
    /// When the session was first seen (its attribution deadline runs from here).
    created: Instant,
    /// Datagrams used while it waited for attribution (discarded if it never comes).
    held: u64,
    next_emit: u64,
    /// One past the highest block known to have been sent.
    known_end: u64,
    pending: BTreeMap<u64, Pending>,
    pending_bytes: usize,
    stall_since: Option<Instant>,
    last_heartbeat: Option<u64>,
    held_heartbeat: Option<Heartbeat>,
    streams: HashMap<u16, StreamState>,
    from_start: bool,
    mismatch_reported: bool,
}

impl Session {
    fn new(epoch: u64, key_id: u16, key: SessionKey, now: Instant) -> Session {
        Session {
            epoch,
            key_id,
            key,
            agent: None,
            boot: 0,
            created: now,
            held: 0,
            next_emit: 0,
            known_end: 0,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            stall_since: None,
            last_heartbeat: None,
            held_heartbeat: None,
            streams: HashMap::new(),
            from_start: true,
            mismatch_reported: false,
        }
    }

    /// Since when block `block` has been overdue: its latest symbol's arrival, or, if none of
    /// it arrived, the arrival of the first later block (which proves it was sent), or when the
    /// receiver noticed it missing. Each block waits its own reorder timeout from there, so
    /// blocks queued behind a lost one are not made to wait again.
    fn waiting_since(&self, block: u64) -> Option<Instant> {
        match self.pending.get(&block) {
            Some(p) => Some(p.last_seen),
            None => {
                let later = self
                    .pending
                    .range(block..)
                    .next()
                    .map(|(_, p)| p.first_seen);
                match (later, self.stall_since) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
        }
    }

    /// When the timer next has work for this session.
    fn deadline(&self, cfg: &ReceiverConfig) -> Option<Instant> {
        if self.agent.is_none() {
            return Some(self.created + cfg.attribution_timeout);
        }
        // Only while delivery is stalled on a block known to have been sent.
        self.stall_since?;
        Some(self.waiting_since(self.next_emit)? + cfg.reorder_timeout)
    }

    fn positions(&self) -> Vec<StreamPosition> {
        let mut v: Vec<StreamPosition> = self
            .streams
            .iter()
            .filter_map(|(id, st)| {
                Some(StreamPosition {
                    id: *id,
                    next_sequence: st.expected?,
                    name: st.name.clone(),
                })
            })
            .collect();
        v.sort_by_key(|p| p.id);
        v
    }
}

/// What the receiver knows of one agent.
#[derive(Clone, Debug, Default)]
struct AgentState {
    /// The newest boot a heartbeat proved.
    boot: u64,
    /// Its live session.
    current: Option<u64>,
    newest_heartbeat_unix_ms: u64,
}

/// The receiving state machine.
pub struct Receiver {
    cfg: ReceiverConfig,
    sessions: Vec<Session>,
    agents: HashMap<String, AgentState>,
    retired: VecDeque<u64>,
    retired_set: std::collections::HashSet<u64>,
    /// What all sessions' incomplete blocks cost, and how many there are.
    pending_bytes: usize,
    pending_blocks: usize,
    scratch: Vec<u8>,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
    fec: Option<reed_solomon_simd::ReedSolomonDecoder>,
    out: VecDeque<Output>,
    stats: ReceiverStats,
}

impl Receiver {
    /// A receiver with no session yet.
    pub fn new(cfg: ReceiverConfig) -> Receiver {
        Receiver {
            cfg,
            sessions: Vec::new(),
            agents: HashMap::new(),
            retired: VecDeque::new(),
            retired_set: std::collections::HashSet::new(),
            pending_bytes: 0,
            pending_blocks: 0,
            scratch: Vec::new(),
            zstd: zstd::bulk::Decompressor::new().ok(),
            fec: None,
            out: VecDeque::new(),
            stats: ReceiverStats::default(),
        }
    }

    /// A receiver that goes on from a persisted state: its agents' newest boots, the refused
    /// epochs, and each live session from the positions its outputs had reached. Sessions
    /// under a key id no longer configured are left out (their agent must start anew).
    pub fn restore(cfg: ReceiverConfig, state: &ReceiverState, now: Instant) -> Receiver {
        let mut rx = Receiver::new(cfg);
        for a in &state.agents {
            rx.agents.insert(
                a.name.clone(),
                AgentState {
                    boot: a.boot,
                    current: None,
                    newest_heartbeat_unix_ms: a.newest_heartbeat_unix_ms,
                },
            );
        }
        for e in &state.retired {
            rx.retire(*e);
        }
        for rec in &state.sessions {
            let Some(psk) = rx.psk(rec.key_id) else {
                continue;
            };
            let Some(cipher) = crate::crypto::Cipher::from_u8(rec.cipher) else {
                continue;
            };
            if rx.retired_set.contains(&rec.epoch) || rx.sessions.len() >= rx.cfg.max_sessions {
                continue;
            }
            let mut s = Session::new(
                rec.epoch,
                rec.key_id,
                SessionKey::derive(&psk, rec.epoch, cipher),
                now,
            );
            s.agent = Some(rec.agent.clone());
            s.boot = rec.boot;
            s.next_emit = rec.next_block;
            s.known_end = rec.next_block;
            s.last_heartbeat = rec.last_heartbeat;
            s.from_start = !rec.joined;
            for st in &rec.streams {
                s.streams.insert(
                    st.id,
                    StreamState {
                        name: st.name.clone(),
                        expected: Some(st.next_sequence),
                    },
                );
            }
            let agent = rx.agents.entry(rec.agent.clone()).or_default();
            agent.boot = agent.boot.max(rec.boot);
            agent.current = Some(rec.epoch);
            rx.sessions.push(s);
        }
        rx
    }

    /// Counters so far.
    pub fn stats(&self) -> &ReceiverStats {
        &self.stats
    }

    /// The live sessions' epochs (attributed or waiting for their heartbeat).
    pub fn sessions(&self) -> Vec<u64> {
        self.sessions.iter().map(|s| s.epoch).collect()
    }

    /// The session of `agent`, if it has a live one.
    pub fn session_of(&self, agent: &str) -> Option<u64> {
        self.agents.get(agent)?.current
    }

    /// The next output, if any. Drain after every call to `handle_*`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Receiver::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .iter()
            .filter_map(|s| s.deadline(&self.cfg))
            .min()
    }

    /// Advance timers: declare overdue blocks lost, refuse sessions never attributed. Call it
    /// only once every datagram already received has been handled.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.sessions.len() {
            let expired = self.sessions.get(i).is_some_and(|s| {
                s.agent.is_none() && now >= s.created + self.cfg.attribution_timeout
            });
            if expired {
                self.refuse(i, None, 0, Reject::Unattributed);
                continue;
            }
            self.advance_until(now, i, Advance::Timeout);
            i += 1;
        }
        self.stats.pending_blocks = self.pending_blocks as u64;
        self.stats.pending_bytes = self.pending_bytes as u64;
    }

    /// Take one datagram. Rejections are counted in [`Receiver::stats`] and returned.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Reject> {
        let result = self.handle_inner(now, datagram);
        match &result {
            Ok(()) => self.stats.datagrams_accepted += 1,
            Err(reject) => self.count_reject(*reject, 1),
        }
        self.stats.pending_blocks = self.pending_blocks as u64;
        self.stats.pending_bytes = self.pending_bytes as u64;
        result
    }

    fn count_reject(&mut self, reject: Reject, n: u64) {
        if let Some(slot) = self.stats.rejected.get_mut(reject.index()) {
            *slot += n;
        }
    }

    fn psk(&self, key_id: u16) -> Option<[u8; KEY_LEN]> {
        self.cfg
            .keys
            .iter()
            .find(|(id, _)| *id == key_id)
            .map(|(_, k)| *k)
    }

    fn retire(&mut self, epoch: u64) {
        if self.retired_set.insert(epoch) {
            self.retired.push_back(epoch);
        }
        while self.retired.len() > RETIRED_SESSIONS {
            if let Some(old) = self.retired.pop_front() {
                self.retired_set.remove(&old);
            }
        }
    }

    fn handle_inner(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Reject> {
        let h = Header::decode(datagram)?;
        let psk = self.psk(h.key_id).ok_or(Reject::UnknownKey(h.key_id))?;
        let found = self.sessions.iter().position(|s| s.epoch == h.session);
        let current = found.filter(|i| {
            self.sessions
                .get(*i)
                .is_some_and(|s| s.key_id == h.key_id && s.key.cipher() == h.cipher)
        });
        let fresh_key = match current {
            Some(_) => None,
            None => {
                if found.is_none() && self.retired_set.contains(&h.session) {
                    return Err(Reject::StaleSession);
                }
                Some(SessionKey::derive(&psk, h.session, h.cipher))
            }
        };
        // Verify before anything else is done with the datagram.
        let header_bytes = datagram.get(..HEADER_LEN).ok_or(Reject::Inconsistent)?;
        let payload_end = HEADER_LEN + usize::from(h.payload_len);
        let payload = datagram
            .get(HEADER_LEN..payload_end)
            .ok_or(Reject::Inconsistent)?;
        let tag = datagram
            .get(payload_end..payload_end + TAG_LEN)
            .ok_or(Reject::Inconsistent)?;
        if let Some(si) = current {
            if let Some(result) = self.symbol_in_place(now, si, &h, header_bytes, payload, tag) {
                return result;
            }
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend_from_slice(payload);
        let key = match (&fresh_key, current.and_then(|i| self.sessions.get(i))) {
            (Some(k), _) => k,
            (None, Some(s)) => &s.key,
            (None, None) => return Err(Reject::Inconsistent),
        };
        let verified = key.open(header_bytes, &h, &mut scratch, tag);
        let result = match verified {
            Err(_) => Err(Reject::Auth),
            Ok(()) => {
                let si = match (fresh_key, found) {
                    (None, Some(si)) => Ok(si),
                    // The same epoch under another key id or cipher only swaps the key.
                    (Some(key), Some(si)) => match self.sessions.get_mut(si) {
                        Some(s) => {
                            s.key = key;
                            s.key_id = h.key_id;
                            Ok(si)
                        }
                        None => Err(Reject::Inconsistent),
                    },
                    (Some(key), None) => self.new_session(now, &h, key, &scratch),
                    (None, None) => Err(Reject::Inconsistent),
                };
                match si {
                    Err(e) => Err(e),
                    Ok(si) => match h.kind {
                        DatagramType::Heartbeat => self.on_heartbeat(now, si, &h, &scratch),
                        DatagramType::Source | DatagramType::Repair => {
                            let epoch = h.session;
                            let r = self.on_symbol(now, si, &h, &scratch);
                            if r.is_ok() {
                                self.note_held(epoch);
                            }
                            r
                        }
                    },
                }
            }
        };
        self.scratch = scratch;
        result
    }

    /// A datagram of an unknown epoch authenticated: an agent (re)started, a new agent, or a
    /// replay of a session this receiver never saw. It is held, undelivered, until a heartbeat
    /// names its agent and proves it newer than that agent's live session.
    fn new_session(
        &mut self,
        now: Instant,
        h: &Header,
        key: SessionKey,
        payload: &[u8],
    ) -> Result<usize, Reject> {
        if self.sessions.len() >= self.cfg.max_sessions {
            // Make room by refusing the oldest session still waiting for its agent.
            let oldest = self
                .sessions
                .iter()
                .enumerate()
                .filter(|(_, s)| s.agent.is_none())
                .min_by_key(|(_, s)| s.created)
                .map(|(i, _)| i);
            match oldest {
                Some(i) => self.refuse(i, None, 0, Reject::Unattributed),
                None => return Err(Reject::Unattributed),
            }
        }
        let mut session = Session::new(h.session, h.key_id, key, now);
        match h.kind {
            DatagramType::Heartbeat => {
                // Resynchronise on the sender's own account of where it is.
                if let Some(hb) = Heartbeat::decode(payload) {
                    session.from_start = hb.next_block == 0;
                    session.next_emit = hb.next_block;
                    session.known_end = hb.next_block;
                    for pos in &hb.streams {
                        session.streams.insert(
                            pos.id,
                            StreamState {
                                name: pos.name.clone(),
                                expected: Some(pos.next_sequence),
                            },
                        );
                    }
                }
            }
            _ => {
                if h.block >= JOIN_SLACK_BLOCKS {
                    session.from_start = false;
                    session.next_emit = h.block;
                    session.known_end = h.block;
                }
            }
        }
        self.sessions.push(session);
        Ok(self.sessions.len() - 1)
    }

    /// Drop session `si` without delivering anything of it, refuse its epoch from now on, and
    /// count the datagrams it had held as rejected for `reason`.
    fn refuse(&mut self, si: usize, agent: Option<String>, boot: u64, reason: Reject) {
        if si >= self.sessions.len() {
            return;
        }
        let s = self.sessions.swap_remove(si);
        self.pending_bytes -= s.pending_bytes;
        self.pending_blocks -= s.pending.len();
        self.retire(s.epoch);
        self.stats.sessions_refused += 1;
        self.stats.datagrams_accepted = self.stats.datagrams_accepted.saturating_sub(s.held);
        self.count_reject(reason, s.held);
        let newest_boot = agent
            .as_deref()
            .and_then(|a| self.agents.get(a))
            .map_or(0, |a| a.boot);
        self.out.push_back(Output::SessionRefused {
            session: s.epoch,
            agent,
            boot,
            newest_boot,
            reason,
            discarded: s.held,
        });
    }

    /// A heartbeat named session `si`'s agent: accept the session if it is newer than the
    /// agent's live one (which then ends), refuse it otherwise. Returns the session's index
    /// afterwards, or the reason it was refused.
    fn attribute(&mut self, now: Instant, si: usize, hb: &Heartbeat) -> Result<usize, Reject> {
        let (name, boot, legacy) = match &hb.identity {
            Some(id) => (id.agent.clone(), id.boot, false),
            // An agent from before identities: its sessions replace each other as they
            // appear (the rule of protocol 1 as first written).
            None => (String::new(), 0, true),
        };
        if let Some(allowed) = &self.cfg.agents {
            if !allowed.contains(&name) {
                self.refuse(si, Some(name), boot, Reject::UnknownAgent);
                return Err(Reject::UnknownAgent);
            }
        }
        let epoch = self
            .sessions
            .get(si)
            .map(|s| s.epoch)
            .ok_or(Reject::Inconsistent)?;
        let agent = self.agents.get(&name).cloned().unwrap_or_default();
        if self.agents.contains_key(&name) && !legacy && boot <= agent.boot {
            self.refuse(si, Some(name), boot, Reject::StaleSession);
            return Err(Reject::StaleSession);
        }
        let mut si = si;
        let previous = agent.current.filter(|c| *c != epoch);
        if let Some(prev) = previous {
            if let Some(pi) = self.sessions.iter().position(|s| s.epoch == prev) {
                self.finish_session(now, pi);
                self.sessions.swap_remove(pi);
                si = self
                    .sessions
                    .iter()
                    .position(|s| s.epoch == epoch)
                    .ok_or(Reject::Inconsistent)?;
            }
            self.retire(prev);
            self.out.push_back(Output::SessionEnded {
                session: prev,
                agent: name.clone(),
                replaced_by: epoch,
            });
        }
        let entry = self.agents.entry(name.clone()).or_default();
        entry.boot = entry.boot.max(boot);
        entry.current = Some(epoch);
        let s = self.sessions.get_mut(si).ok_or(Reject::Inconsistent)?;
        s.agent = Some(name.clone());
        s.boot = boot;
        s.held = 0;
        self.stats.sessions += 1;
        self.out.push_back(Output::SessionStarted {
            session: epoch,
            agent: name,
            boot,
            previous,
            joined: !s.from_start,
            key_id: s.key_id,
            cipher: s.key.cipher() as u8,
            next_block: s.next_emit,
            streams: s.positions(),
        });
        Ok(si)
    }

    /// Session `si` is being replaced: deliver what can be delivered, declare the rest lost,
    /// settle the last heartbeat's account. The caller removes it.
    fn finish_session(&mut self, now: Instant, si: usize) {
        if let Some(s) = self.sessions.get_mut(si) {
            let end = s
                .pending
                .keys()
                .next_back()
                .map_or(s.known_end, |last| last.saturating_add(1).max(s.known_end));
            s.known_end = end;
            // Everything still missing has waited long enough: the sender is gone.
            s.stall_since = Some(now.checked_sub(self.cfg.reorder_timeout).unwrap_or(now));
            for p in s.pending.values_mut() {
                p.first_seen = s.stall_since.unwrap_or(now);
                p.last_seen = p.first_seen;
            }
        }
        self.advance_until(now, si, Advance::Drain);
    }

    fn on_heartbeat(
        &mut self,
        now: Instant,
        si: usize,
        h: &Header,
        payload: &[u8],
    ) -> Result<(), Reject> {
        let hb = Heartbeat::decode(payload).ok_or(Reject::Inconsistent)?;
        let ours = self.cfg.fingerprint;
        let s = self.sessions.get(si).ok_or(Reject::Inconsistent)?;
        if s.last_heartbeat.is_some_and(|last| h.block <= last) {
            return Err(Reject::Replayed);
        }
        let si = match &s.agent {
            None => self.attribute(now, si, &hb)?,
            Some(agent) => {
                let same = match &hb.identity {
                    Some(id) => id.agent == *agent && id.boot == s.boot,
                    None => agent.is_empty(),
                };
                if !same {
                    return Err(Reject::Inconsistent);
                }
                si
            }
        };
        let s = self.sessions.get_mut(si).ok_or(Reject::Inconsistent)?;
        s.last_heartbeat = Some(h.block);
        if let Some(a) = s.agent.as_ref().and_then(|a| self.agents.get_mut(a)) {
            a.newest_heartbeat_unix_ms = a.newest_heartbeat_unix_ms.max(hb.sent_at_unix_ms);
        }
        for pos in &hb.streams {
            // Same defaults as for a stream first seen in a record: a session followed from its
            // start expects sequence 0, so records lost before the first one delivered are a
            // gap, not silently skipped.
            stream_state(s, pos.id).name.clone_from(&pos.name);
        }
        if hb.fingerprint != ours {
            self.stats.settings_mismatches += 1;
            if !s.mismatch_reported {
                s.mismatch_reported = true;
                self.out.push_back(Output::SettingsMismatch {
                    session: s.epoch,
                    ours,
                    theirs: hb.fingerprint,
                });
            }
        }
        s.known_end = s.known_end.max(hb.next_block);
        let keep = s
            .held_heartbeat
            .as_ref()
            .is_none_or(|held| hb.next_block >= held.next_block);
        if keep {
            s.held_heartbeat = Some(hb.clone());
        }
        self.stats.heartbeats += 1;
        self.out.push_back(Output::Heartbeat {
            session: s.epoch,
            counter: h.block,
            heartbeat: hb,
        });
        self.advance(now, si);
        Ok(())
    }

    fn on_symbol(
        &mut self,
        now: Instant,
        si: usize,
        h: &Header,
        payload: &[u8],
    ) -> Result<(), Reject> {
        let max_block = self.cfg.max_block_bytes + 4096;
        let max_pending = self.cfg.max_pending_bytes;
        let s = self.sessions.get_mut(si).ok_or(Reject::Inconsistent)?;
        let repair = h.kind == DatagramType::Repair;
        if h.block < s.next_emit {
            if repair {
                // Repair symbols trail their block; once it is delivered they are not needed.
                self.stats.symbols_redundant += 1;
                return Ok(());
            }
            return Err(Reject::Replayed);
        }
        if !symbol_in_range(h) {
            return Err(Reject::Inconsistent);
        }
        let total = usize::from(h.source_count) + usize::from(h.repair_count);
        let symbol_size = usize::from(h.payload_len);
        let mut added = false;
        let p = match s.pending.get_mut(&h.block) {
            Some(p) => p,
            None => {
                if usize::from(h.source_count) * symbol_size > max_block {
                    return Err(Reject::Inconsistent);
                }
                let size = total * symbol_size + total + PENDING_BLOCK_OVERHEAD;
                if size > max_pending {
                    return Err(Reject::Inconsistent);
                }
                s.pending_bytes += size;
                self.pending_bytes += size;
                self.pending_blocks += 1;
                added = true;
                s.pending.entry(h.block).or_insert(Pending {
                    source_count: h.source_count,
                    repair_count: h.repair_count,
                    symbol_size,
                    // Filled as symbols arrive (in order, the common case, without zeroing
                    // first); holes are zeroed only when a later symbol skips past them.
                    data: Vec::with_capacity(total * symbol_size),
                    size,
                    have: vec![false; total],
                    sources: 0,
                    received: 0,
                    first_seen: now,
                    last_seen: now,
                })
            }
        };
        if !p.shaped_as(h) {
            return Err(Reject::Inconsistent);
        }
        let index = usize::from(h.symbol);
        match p.have.get(index) {
            Some(true) => return Err(Reject::Duplicate),
            Some(false) if p.complete() => {
                self.stats.symbols_redundant += 1;
                return Ok(());
            }
            Some(false) => {}
            None => return Err(Reject::Inconsistent),
        }
        place(&mut p.data, index * symbol_size, payload);
        let result = self.symbol_placed(now, si, h);
        if added {
            self.shed(now);
        }
        result
    }

    /// Over the pending bound (bytes or blocks): give up the oldest incomplete blocks of the
    /// session holding the most until under it. An attributed session declares them lost at
    /// once (gap records follow); one still waiting for its agent just forgets them, and they
    /// are declared lost once it is attributed.
    fn shed(&mut self, now: Instant) {
        while self.pending_bytes > self.cfg.max_pending_bytes
            || self.pending_blocks > self.cfg.max_pending_blocks
        {
            let Some(victim) = self
                .sessions
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.pending.is_empty())
                .max_by_key(|(_, s)| s.pending_bytes)
                .map(|(i, _)| i)
            else {
                return;
            };
            let Some(s) = self.sessions.get_mut(victim) else {
                return;
            };
            if s.agent.is_some() {
                let before = self.pending_blocks;
                self.advance_until(now, victim, Advance::Shed);
                if self.pending_blocks == before {
                    return;
                }
                continue;
            }
            if let Some((&b, _)) = s.pending.iter().next() {
                if let Some(p) = s.pending.remove(&b) {
                    s.pending_bytes -= p.size;
                    self.pending_bytes -= p.size;
                    self.pending_blocks -= 1;
                    self.stats.blocks_shed += 1;
                    s.known_end = s.known_end.max(b.saturating_add(1));
                }
            }
        }
    }

    /// A verified symbol is in its place in its pending block: count it, rebuild the block if
    /// it can be, deliver what is complete.
    fn symbol_placed(&mut self, now: Instant, si: usize, h: &Header) -> Result<(), Reject> {
        let s = self.sessions.get_mut(si).ok_or(Reject::Inconsistent)?;
        let p = s.pending.get_mut(&h.block).ok_or(Reject::Inconsistent)?;
        if let Some(slot) = p.have.get_mut(usize::from(h.symbol)) {
            *slot = true;
        }
        p.last_seen = now;
        p.received += 1;
        if h.kind != DatagramType::Repair {
            p.sources += 1;
        }
        if !p.complete() && p.received >= u32::from(p.source_count) {
            if repair_block(p, &mut self.fec) {
                self.stats.blocks_repaired += 1;
            } else {
                return Err(Reject::Inconsistent);
            }
        }
        s.known_end = s.known_end.max(h.block.saturating_add(1));
        self.advance(now, si);
        Ok(())
    }

    /// The common case, a symbol of a block already pending in a known session, handled
    /// with one copy instead of two: the ciphertext goes straight to its place in the block and
    /// is verified and decrypted there. If it does not verify, the block is left as it was
    /// (the place is not marked held and an appended one is cut off again), so a forged or
    /// damaged datagram changes nothing. `None` for every other datagram: the general path
    /// verifies it in a scratch buffer before anything else is done with it, and no state is
    /// ever created for a datagram that has not verified.
    fn symbol_in_place(
        &mut self,
        now: Instant,
        si: usize,
        h: &Header,
        header_bytes: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
    ) -> Option<Result<(), Reject>> {
        if !matches!(h.kind, DatagramType::Source | DatagramType::Repair) {
            return None;
        }
        let s = self.sessions.get_mut(si)?;
        let p = s.pending.get_mut(&h.block)?;
        let symbol_size = usize::from(h.payload_len);
        let index = usize::from(h.symbol);
        if !symbol_in_range(h)
            || !p.shaped_as(h)
            || ciphertext.len() != symbol_size
            || p.complete()
            || p.have.get(index) != Some(&false)
        {
            return None;
        }
        let start = index * symbol_size;
        let before = p.data.len();
        place(&mut p.data, start, ciphertext);
        let verified = match p.data.get_mut(start..start + symbol_size) {
            Some(slot) => s.key.open(header_bytes, h, slot, tag).is_ok(),
            None => false,
        };
        if !verified {
            if before <= start {
                p.data.truncate(before);
            }
            return Some(Err(Reject::Auth));
        }
        let r = self.symbol_placed(now, si, h);
        if r.is_ok() {
            self.note_held(h.session);
        }
        Some(r)
    }

    /// A datagram of a session not yet attributed was used: counted, so that it can be
    /// counted as rejected if the session is refused.
    fn note_held(&mut self, epoch: u64) {
        if let Some(s) = self.sessions.iter_mut().find(|s| s.epoch == epoch) {
            if s.agent.is_none() {
                s.held += 1;
            }
        }
    }

    /// After a datagram: deliver what is complete. Never declares loss by time: the datagrams
    /// right behind this one may be the missing ones (a receiver that fell behind must not
    /// mistake its own backlog for loss). Only [`Receiver::handle_timeout`] does that.
    fn advance(&mut self, now: Instant, si: usize) {
        self.advance_until(now, si, Advance::Deliver);
    }

    /// Deliver complete blocks of session `si` in order; declare lost the blocks that have
    /// waited too long (`Timeout`), all missing ones (`Drain`) or the oldest while over the
    /// pending bound (`Shed`); settle a held heartbeat. Nothing of a session not yet attributed
    /// to its agent is delivered.
    fn advance_until(&mut self, now: Instant, si: usize, mode: Advance) {
        let timeout = self.cfg.reorder_timeout;
        let max_pending = self.cfg.max_pending_bytes;
        let max_blocks = self.cfg.max_pending_blocks;
        let max_block = self.cfg.max_block_bytes;
        let Some(s) = self.sessions.get_mut(si) else {
            return;
        };
        if s.agent.is_none() {
            return;
        }
        let mut lost_run: Option<(u64, u64)> = None;
        loop {
            let next = s.next_emit;
            if s.pending.get(&next).is_some_and(Pending::complete) {
                if let Some(p) = s.pending.remove(&next) {
                    s.pending_bytes -= p.size;
                    self.pending_bytes -= p.size;
                    self.pending_blocks -= 1;
                    flush_lost(&mut lost_run, s.epoch, &mut self.out);
                    s.next_emit = s.next_emit.saturating_add(1);
                    s.stall_since = None;
                    let decoded = match self.zstd.as_mut() {
                        Some(z) => block::decode_owned(p.into_source_bytes(), max_block, z).ok(),
                        None => None,
                    };
                    match decoded {
                        Some(records) => deliver(s, next, records, &mut self.out, &mut self.stats),
                        None => note_lost(&mut lost_run, next, next, &mut self.stats),
                    }
                }
                continue;
            }
            if next >= s.known_end {
                s.stall_since = None;
                break;
            }
            // Block `next` was sent (later data or a heartbeat says so) but is not complete.
            s.stall_since.get_or_insert(now);
            let waited_from = s.waiting_since(next).unwrap_or(now);
            let over_budget = self.pending_bytes > max_pending || self.pending_blocks > max_blocks;
            let overdue =
                mode == Advance::Timeout && now.saturating_duration_since(waited_from) >= timeout;
            let shed = mode == Advance::Shed && over_budget && !s.pending.is_empty();
            if mode == Advance::Drain || shed || overdue {
                // Give up on `next`, and in the same step on every following block of which
                // nothing at all arrived: a long outage is one range, not one step per block.
                let stop = match s.pending.remove(&next) {
                    Some(p) => {
                        s.pending_bytes -= p.size;
                        self.pending_bytes -= p.size;
                        self.pending_blocks -= 1;
                        if shed {
                            self.stats.blocks_shed += 1;
                        }
                        next.saturating_add(1)
                    }
                    None => s
                        .pending
                        .range(next..)
                        .next()
                        .map_or(s.known_end, |(k, _)| *k)
                        .min(s.known_end),
                };
                let stop = stop.max(next.saturating_add(1));
                note_lost(&mut lost_run, next, stop - 1, &mut self.stats);
                s.next_emit = stop;
                continue;
            }
            break;
        }
        flush_lost(&mut lost_run, s.epoch, &mut self.out);
        if s.held_heartbeat
            .as_ref()
            .is_some_and(|hb| hb.next_block <= s.next_emit)
        {
            if let Some(hb) = s.held_heartbeat.take() {
                settle_tails(s, &hb, &mut self.out, &mut self.stats);
            }
        }
    }
}

/// Rebuild the missing source symbols of `p` from the symbols it holds (at least as many as it
/// has source symbols). Returns false if the erasure decoder refuses (a sender bug).
fn repair_block(p: &mut Pending, fec: &mut Option<reed_solomon_simd::ReedSolomonDecoder>) -> bool {
    let (k, r, size) = (
        usize::from(p.source_count),
        usize::from(p.repair_count),
        p.symbol_size,
    );
    let ready = match fec.as_mut() {
        Some(dec) => dec.reset(k, r, size).is_ok(),
        None => {
            *fec = reed_solomon_simd::ReedSolomonDecoder::new(k, r, size).ok();
            fec.is_some()
        }
    };
    let Some(dec) = fec.as_mut().filter(|_| ready) else {
        return false;
    };
    p.data.resize((k + r) * size, 0);
    for (i, shard) in p.data.chunks_exact(size).enumerate() {
        if !p.have.get(i).copied().unwrap_or(false) {
            continue;
        }
        let added = if i < k {
            dec.add_original_shard(i, shard)
        } else {
            dec.add_recovery_shard(i - k, shard)
        };
        if added.is_err() {
            return false;
        }
    }
    let Ok(result) = dec.decode() else {
        return false;
    };
    for (i, shard) in result.restored_original_iter() {
        if let Some(dst) = p.data.get_mut(i * size..(i + 1) * size) {
            dst.copy_from_slice(shard);
            if let Some(slot) = p.have.get_mut(i) {
                *slot = true;
            }
            p.sources += 1;
        }
    }
    p.complete()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Advance {
    Deliver,
    Timeout,
    Drain,
    Shed,
}

fn note_lost(run: &mut Option<(u64, u64)>, first: u64, last: u64, stats: &mut ReceiverStats) {
    stats.blocks_lost = stats
        .blocks_lost
        .saturating_add((last - first).saturating_add(1));
    *run = match *run {
        Some((start, _)) => Some((start, last)),
        None => Some((first, last)),
    };
}

fn flush_lost(run: &mut Option<(u64, u64)>, session: u64, out: &mut VecDeque<Output>) {
    if let Some((first, last)) = run.take() {
        out.push_back(Output::BlocksLost {
            session,
            first,
            last,
        });
    }
}

fn stream_state(s: &mut Session, id: u16) -> &mut StreamState {
    let from_start = s.from_start;
    s.streams.entry(id).or_insert_with(|| StreamState {
        name: format!("stream-{id}"),
        expected: from_start.then_some(0),
    })
}

fn gap(s: &Session, id: u16, name: &str, first: u64, last: u64, reason: GapReason) -> Output {
    Output::Gap(Gap {
        session: s.epoch,
        stream: id,
        stream_name: name.to_owned(),
        first,
        last,
        reason,
    })
}

/// Whether a symbol's index fits its own header's counts (a source index among the sources, a
/// repair index after them) and the counts are ones a sender makes.
fn symbol_in_range(h: &Header) -> bool {
    let total = usize::from(h.source_count) + usize::from(h.repair_count);
    let index_ok = if h.kind == DatagramType::Repair {
        h.symbol >= h.source_count && usize::from(h.symbol) < total
    } else {
        h.symbol < h.source_count
    };
    index_ok && usize::from(h.repair_count) <= 4 * usize::from(h.source_count) + 2
}

/// Write `bytes` at `start` of a block's buffer, growing it (holes zeroed) if it ends before.
fn place(data: &mut Vec<u8>, start: usize, bytes: &[u8]) {
    if data.len() <= start {
        data.resize(start, 0);
        data.extend_from_slice(bytes);
    } else if let Some(dst) = data.get_mut(start..start + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn deliver(
    s: &mut Session,
    block: u64,
    mut records: DecodedBlock,
    out: &mut VecDeque<Output>,
    stats: &mut ReceiverStats,
) {
    let mut gaps = Vec::new();
    let mut duplicates = 0u64;
    records.retain(|r| {
        let state = stream_state(s, r.stream);
        match state.expected {
            Some(expected) if r.sequence < expected => {
                duplicates += 1;
                return false;
            }
            Some(expected) if r.sequence > expected => {
                gaps.push((r.stream, state.name.clone(), expected, r.sequence - 1));
            }
            _ => {}
        }
        state.expected = Some(r.sequence.saturating_add(1));
        true
    });
    for (id, name, first, last) in gaps {
        stats.records_lost = stats
            .records_lost
            .saturating_add((last - first).saturating_add(1));
        out.push_back(gap(s, id, &name, first, last, GapReason::LostBlock));
    }
    stats.records_duplicate += duplicates;
    stats.blocks_delivered += 1;
    stats.records_delivered += records.len() as u64;
    out.push_back(Output::Block {
        session: s.epoch,
        block,
        records,
    });
}

fn settle_tails(
    s: &mut Session,
    hb: &Heartbeat,
    out: &mut VecDeque<Output>,
    stats: &mut ReceiverStats,
) {
    for pos in &hb.streams {
        let state = stream_state(s, pos.id);
        let missing = match state.expected {
            Some(expected) if expected < pos.next_sequence => {
                Some((expected, pos.next_sequence - 1))
            }
            _ => None,
        };
        if state.expected.is_none_or(|e| e < pos.next_sequence) {
            state.expected = Some(pos.next_sequence);
        }
        if let Some((first, last)) = missing {
            let name = state.name.clone();
            stats.records_lost = stats
                .records_lost
                .saturating_add((last - first).saturating_add(1));
            out.push_back(gap(s, pos.id, &name, first, last, GapReason::TailLoss));
        }
    }
}
