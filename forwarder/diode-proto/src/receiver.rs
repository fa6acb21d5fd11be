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
use crate::heartbeat::Heartbeat;

/// A first block below this number starts a session "from the start": earlier blocks that never
/// arrive are gaps. A higher first block means the receiver joined a running session.
pub const JOIN_SLACK_BLOCKS: u64 = 64;
/// Retired sessions remembered, so that their datagrams cannot be replayed as a new session.
pub const RETIRED_SESSIONS: usize = 64;

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
    /// Bytes of incomplete blocks held at most; past it the oldest are declared lost.
    pub max_pending_bytes: usize,
}

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
}

impl Reject {
    /// Every reason, for metrics.
    pub const ALL: [&'static str; 7] = [
        "bad_frame",
        "unknown_key",
        "auth_failed",
        "stale_session",
        "replayed",
        "duplicate",
        "inconsistent",
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
    /// A new session began (first contact, or the sender restarted).
    SessionStarted {
        /// New epoch.
        session: u64,
        /// The epoch it replaces.
        previous: Option<u64>,
        /// The receiver joined a session already under way (its history is unknown).
        joined: bool,
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
    pub rejected: [u64; 7],
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
}

/// The receiving state machine.
pub struct Receiver {
    cfg: ReceiverConfig,
    session: Option<Session>,
    retired: VecDeque<u64>,
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
            session: None,
            retired: VecDeque::new(),
            scratch: Vec::new(),
            zstd: zstd::bulk::Decompressor::new().ok(),
            fec: None,
            out: VecDeque::new(),
            stats: ReceiverStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &ReceiverStats {
        &self.stats
    }

    /// The current session epoch.
    pub fn session(&self) -> Option<u64> {
        self.session.as_ref().map(|s| s.epoch)
    }

    /// The next output, if any. Drain after every call to `handle_*`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Receiver::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let s = self.session.as_ref()?;
        // Only while delivery is stalled on a block known to have been sent.
        s.stall_since?;
        Some(s.waiting_since(s.next_emit)? + self.cfg.reorder_timeout)
    }

    /// Advance timers: declare overdue blocks lost. Call it only once every datagram already
    /// received has been handled.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance_until(now, Advance::Timeout);
    }

    /// Take one datagram. Rejections are counted in [`Receiver::stats`] and returned.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Reject> {
        let result = self.handle_inner(now, datagram);
        match &result {
            Ok(()) => self.stats.datagrams_accepted += 1,
            Err(reject) => {
                if let Some(slot) = self.stats.rejected.get_mut(reject.index()) {
                    *slot += 1;
                }
            }
        }
        result
    }

    fn handle_inner(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Reject> {
        let h = Header::decode(datagram)?;
        let psk = self
            .cfg
            .keys
            .iter()
            .find(|(id, _)| *id == h.key_id)
            .map(|(_, k)| *k)
            .ok_or(Reject::UnknownKey(h.key_id))?;
        let current = self
            .session
            .as_ref()
            .filter(|s| s.epoch == h.session && s.key_id == h.key_id && s.key.cipher() == h.cipher);
        let fresh_key = match current {
            Some(_) => None,
            None => {
                let same_epoch = self.session.as_ref().is_some_and(|s| s.epoch == h.session);
                if !same_epoch && self.retired.contains(&h.session) {
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
        if fresh_key.is_none() {
            if let Some(result) = self.symbol_in_place(now, &h, header_bytes, payload, tag) {
                return result;
            }
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend_from_slice(payload);
        let key = match (&fresh_key, &self.session) {
            (Some(k), _) => k,
            (None, Some(s)) => &s.key,
            (None, None) => return Err(Reject::Inconsistent),
        };
        let verified = key.open(header_bytes, &h, &mut scratch, tag);
        let result = match verified {
            Err(_) => Err(Reject::Auth),
            Ok(()) => {
                if let Some(key) = fresh_key {
                    self.enter_session(now, &h, key, &scratch);
                }
                match h.kind {
                    DatagramType::Heartbeat => self.on_heartbeat(now, &h, &scratch),
                    DatagramType::Source | DatagramType::Repair => {
                        self.on_symbol(now, &h, &scratch)
                    }
                }
            }
        };
        self.scratch = scratch;
        result
    }

    /// A datagram of an unknown epoch authenticated: a sender (re)started, or this receiver
    /// did. The same epoch under another key id or cipher only swaps the key.
    fn enter_session(&mut self, now: Instant, h: &Header, key: SessionKey, payload: &[u8]) {
        if let Some(s) = self.session.as_mut().filter(|s| s.epoch == h.session) {
            s.key = key;
            s.key_id = h.key_id;
            return;
        }
        let previous = self.session.as_ref().map(|s| s.epoch);
        if previous.is_some() {
            self.finish_session(now);
        }
        let mut session = Session {
            epoch: h.session,
            key_id: h.key_id,
            key,
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
        };
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
        self.stats.sessions += 1;
        self.out.push_back(Output::SessionStarted {
            session: h.session,
            previous,
            joined: !session.from_start,
        });
        self.session = Some(session);
    }

    /// The session is being replaced: deliver what can be delivered, declare the rest lost,
    /// settle the last heartbeat's account, and retire the epoch.
    fn finish_session(&mut self, now: Instant) {
        if let Some(s) = self.session.as_mut() {
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
        self.advance_until(now, Advance::Drain);
        if let Some(s) = self.session.take() {
            self.retired.push_back(s.epoch);
            if self.retired.len() > RETIRED_SESSIONS {
                self.retired.pop_front();
            }
        }
    }

    fn on_heartbeat(&mut self, now: Instant, h: &Header, payload: &[u8]) -> Result<(), Reject> {
        let hb = Heartbeat::decode(payload).ok_or(Reject::Inconsistent)?;
        let ours = self.cfg.fingerprint;
        let s = self.session.as_mut().ok_or(Reject::Inconsistent)?;
        if s.last_heartbeat.is_some_and(|last| h.block <= last) {
            return Err(Reject::Replayed);
        }
        s.last_heartbeat = Some(h.block);
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
            heartbeat: hb,
        });
        self.advance(now);
        Ok(())
    }

    fn on_symbol(&mut self, now: Instant, h: &Header, payload: &[u8]) -> Result<(), Reject> {
        let max_block = self.cfg.max_block_bytes + 4096;
        let s = self.session.as_mut().ok_or(Reject::Inconsistent)?;
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
        let p = match s.pending.get_mut(&h.block) {
            Some(p) => p,
            None => {
                if usize::from(h.source_count) * symbol_size > max_block {
                    return Err(Reject::Inconsistent);
                }
                let size = total * symbol_size;
                if size > self.cfg.max_pending_bytes {
                    return Err(Reject::Inconsistent);
                }
                s.pending_bytes += size;
                s.pending.entry(h.block).or_insert(Pending {
                    source_count: h.source_count,
                    repair_count: h.repair_count,
                    symbol_size,
                    // Filled as symbols arrive (in order, the common case, without zeroing
                    // first); holes are zeroed only when a later symbol skips past them.
                    data: Vec::with_capacity(size),
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
        self.symbol_placed(now, h)
    }

    /// A verified symbol is in its place in its pending block: count it, rebuild the block if
    /// it can be, deliver what is complete.
    fn symbol_placed(&mut self, now: Instant, h: &Header) -> Result<(), Reject> {
        let s = self.session.as_mut().ok_or(Reject::Inconsistent)?;
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
        self.advance(now);
        Ok(())
    }

    /// The common case, a symbol of a block already pending in the current session, handled
    /// with one copy instead of two: the ciphertext goes straight to its place in the block and
    /// is verified and decrypted there. If it does not verify, the block is left as it was
    /// (the place is not marked held and an appended one is cut off again), so a forged or
    /// damaged datagram changes nothing. `None` for every other datagram: the general path
    /// verifies it in a scratch buffer before anything else is done with it, and no state is
    /// ever created for a datagram that has not verified.
    fn symbol_in_place(
        &mut self,
        now: Instant,
        h: &Header,
        header_bytes: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
    ) -> Option<Result<(), Reject>> {
        if !matches!(h.kind, DatagramType::Source | DatagramType::Repair) {
            return None;
        }
        let s = self.session.as_mut()?;
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
        Some(self.symbol_placed(now, h))
    }

    /// After a datagram: deliver what is complete. Never declares loss by time: the datagrams
    /// right behind this one may be the missing ones (a receiver that fell behind must not
    /// mistake its own backlog for loss). Only [`Receiver::handle_timeout`] does that.
    fn advance(&mut self, now: Instant) {
        self.advance_until(now, Advance::Deliver);
    }

    /// Deliver complete blocks in order; declare lost the blocks that have waited too long
    /// (`Timeout`) or all missing ones (`Drain`); enforce the pending-bytes bound; settle a held
    /// heartbeat.
    fn advance_until(&mut self, now: Instant, mode: Advance) {
        let timeout = self.cfg.reorder_timeout;
        let max_pending = self.cfg.max_pending_bytes;
        let max_block = self.cfg.max_block_bytes;
        let Some(s) = self.session.as_mut() else {
            return;
        };
        let mut lost_run: Option<(u64, u64)> = None;
        loop {
            let next = s.next_emit;
            if s.pending.get(&next).is_some_and(Pending::complete) {
                if let Some(p) = s.pending.remove(&next) {
                    s.pending_bytes -= p.size;
                    flush_lost(&mut lost_run, s.epoch, &mut self.out, &mut self.stats);
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
            let over_budget = s.pending_bytes > max_pending;
            let overdue =
                mode == Advance::Timeout && now.saturating_duration_since(waited_from) >= timeout;
            if mode == Advance::Drain || over_budget || overdue {
                // Give up on `next`, and in the same step on every following block of which
                // nothing at all arrived: a long outage is one range, not one step per block.
                let stop = match s.pending.remove(&next) {
                    Some(p) => {
                        s.pending_bytes -= p.size;
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
        flush_lost(&mut lost_run, s.epoch, &mut self.out, &mut self.stats);
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

fn flush_lost(
    run: &mut Option<(u64, u64)>,
    session: u64,
    out: &mut VecDeque<Output>,
    _stats: &mut ReceiverStats,
) {
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
