//! The sending half: records in, datagrams out. No sockets, no clocks: the driver passes `now`
//! and moves the bytes.
//!
//! ```text
//!  push(stream, record) ──► open block ──(full or linger expired)──► sealed blocks (bounded)
//!                                                                         │
//!  handle_timeout(now) ──► heartbeat due ──┐                              ▼
//!                                          └──► poll_transmit(buf) ──► one datagram at a time
//!                                               poll_transmit_parts(buf) (header and tag
//!                                               written, the sealed symbol lent)
//! ```
//!
//! A block is compressed once when sealed, cut into equal source symbols no larger than the
//! MTU allows, given its repair symbols, and then every symbol is encrypted in place in the
//! block buffer, its tag kept beside it. A datagram is then the header, the symbol and the tag:
//! [`Sender::poll_transmit`] copies the three into the caller's buffer, while
//! [`Sender::poll_transmit_parts`] writes only the header and tag and lends the symbol
//! ([`SealedSymbol`]) for a scatter-gather send, so the payload is never copied in user space
//! after it entered the block. No allocation per datagram. Heartbeats jump the queue.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::block::{BlockBuilder, Codec, BLOCK_PREFIX, RECORD_OVERHEAD};
use crate::crypto::{Cipher, SessionKey, KEY_LEN};
use crate::frame::{DatagramType, Header, HEADER_LEN, OVERHEAD, TAG_LEN};
use crate::heartbeat::{Heartbeat, Identity, StreamPosition};

/// The IP version of the diode link: it decides how much of the MTU the IP and UDP headers
/// take (28 bytes for IPv4, 48 for IPv6), and so how large a symbol fits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IpVersion {
    /// IPv4: 20 bytes of IP header, 8 of UDP.
    V4,
    /// IPv6: 40 bytes of IP header, 8 of UDP. The default, as it fits either.
    #[default]
    V6,
}

impl IpVersion {
    /// The version a datagram to `destination` travels as (IPv4-mapped IPv6 as IPv4).
    pub fn of(destination: std::net::SocketAddr) -> IpVersion {
        if destination.ip().to_canonical().is_ipv4() {
            IpVersion::V4
        } else {
            IpVersion::V6
        }
    }

    /// IP and UDP header bytes per datagram.
    pub fn ip_udp_overhead(self) -> usize {
        match self {
            IpVersion::V4 => 28,
            IpVersion::V6 => 48,
        }
    }
}

/// Block buffers kept for reuse, at most.
const MAX_SPARE_BLOCKS: usize = 64;

/// The smallest MTU the protocol accepts.
pub const MIN_MTU: usize = 576;
/// The largest number of source symbols in one block.
pub const MAX_SOURCE_SYMBOLS: usize = 4096;

/// Everything a sender needs; `session` must be drawn at random by the caller at every start.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    /// Id of the pre-shared key.
    pub key_id: u16,
    /// The pre-shared key.
    pub key: [u8; KEY_LEN],
    /// The AEAD.
    pub cipher: Cipher,
    /// Random session epoch.
    pub session: u64,
    /// Link MTU in bytes (IP packet size); datagrams are kept below it.
    pub mtu_bytes: usize,
    /// The IP version of the link, for the header bytes the MTU must hold.
    pub ip_version: IpVersion,
    /// Compression of block bodies.
    pub codec: Codec,
    /// A block is sealed when its records reach this many bytes.
    pub max_block_bytes: usize,
    /// Records larger than this are refused.
    pub max_record_bytes: usize,
    /// The longest a record waits in an open block.
    pub linger: Duration,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
    /// Fingerprint of the shared settings, sent in every heartbeat.
    pub fingerprint: u64,
    /// Sealed blocks waiting for transmission before [`Sender::push`] refuses more.
    pub max_queued_blocks: usize,
    /// Forward error correction: repair symbols per block as a percentage of its source
    /// symbols (rounded up, at least [`MIN_REPAIR_SYMBOLS`] when not 0). 0 turns FEC off.
    pub repair_percent: u32,
    /// The random datagram loss (percent, 0 to [`MAX_EXPECTED_LOSS_PERCENT`]) every block is
    /// sized for: a block gets at least as many repair symbols as it needs to be lost less than
    /// once in [`BLOCK_LOSS_TARGET`] blocks at that loss (see [`repair_count`]). 0: the
    /// percentage alone decides. Ignored when `repair_percent` is 0.
    pub expected_loss_percent: f64,
    /// Interleave the symbols of up to this many queued blocks (1: off), so that a burst of
    /// lost datagrams is spread over several blocks' repair budgets. It only engages when
    /// blocks queue up (a busy link); it never delays a block to wait for others.
    pub interleave_blocks: usize,
    /// The agent and the rank of this session among its sessions, sent in every heartbeat.
    /// A receiver delivers a session's blocks only once a heartbeat has attributed it, and
    /// retires an agent's session only for a newer one of the same agent. `None` sends
    /// heartbeats as agents before 2026-12-08 did (see `docs/diode-protocol.md`).
    pub identity: Option<Identity>,
}

/// The fewest repair symbols a block gets when FEC is on: small blocks (a few events at low
/// rate) would otherwise get one repair symbol, which cannot cover two losses.
pub const MIN_REPAIR_SYMBOLS: usize = 2;
/// The per-block loss probability [`repair_count`] sizes blocks for at the expected loss.
pub const BLOCK_LOSS_TARGET: f64 = 1e-9;
/// The highest expected loss a sender accepts.
pub const MAX_EXPECTED_LOSS_PERCENT: f64 = 20.0;

/// The most repair symbols a block of `source_count` may carry: what the receiver accepts.
pub fn max_repair(source_count: usize) -> usize {
    4 * source_count + 2
}

/// Repair symbols for a block of `source_count` symbols: `ceil(K × repair_percent / 100)`, at
/// least [`MIN_REPAIR_SYMBOLS`], and at least the fewest `R` for which a block of `K + R`
/// datagrams, each lost independently with probability `expected_loss_percent / 100`, loses
/// more than `R` of them with probability below [`BLOCK_LOSS_TARGET`]; never above
/// [`max_repair`]. 0 when `repair_percent` is 0.
///
/// A percentage alone cannot do this: at 1 % loss a 40-symbol block needs 20 % repair, a
/// 4-symbol block (a quiet link sealing small blocks) 100 %, a 187-symbol block 8 %. Small
/// blocks only occur when the link has room to spare, so their extra repair is nearly free.
pub fn repair_count(source_count: usize, repair_percent: u32, expected_loss_percent: f64) -> usize {
    if repair_percent == 0 {
        return 0;
    }
    let floor = (source_count * repair_percent as usize)
        .div_ceil(100)
        .max(MIN_REPAIR_SYMBOLS);
    let p = expected_loss_percent.clamp(0.0, MAX_EXPECTED_LOSS_PERCENT) / 100.0;
    if p <= 0.0 {
        return floor.min(max_repair(source_count));
    }
    let mut r = floor;
    while r < max_repair(source_count)
        && more_than_lost(source_count + r, r, p) >= BLOCK_LOSS_TARGET
    {
        r += 1;
    }
    r.min(max_repair(source_count))
}

/// P(X > r) for X ~ Binomial(n, p), 0 < p < 1, summed from the first term of the tail until
/// the terms stop mattering.
fn more_than_lost(n: usize, r: usize, p: f64) -> f64 {
    if r >= n {
        return 0.0;
    }
    let x0 = r + 1;
    // ln C(n, x0) = sum over i in 1..=x0 of ln((n - x0 + i) / i)
    let ln_choose: f64 = (1..=x0)
        .map(|i| ((n - x0 + i) as f64 / i as f64).ln())
        .sum();
    let mut term = (ln_choose + x0 as f64 * p.ln() + (n - x0) as f64 * (-p).ln_1p()).exp();
    let mut tail = 0.0;
    let odds = p / (1.0 - p);
    for x in x0..=n {
        tail += term;
        if term < tail * 1e-12 {
            break;
        }
        term *= (n - x) as f64 / (x + 1) as f64 * odds;
    }
    tail
}

/// Why a configuration cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The MTU leaves no room for a payload.
    #[error("mtu_bytes {0} is below the minimum of {MIN_MTU}")]
    MtuTooSmall(usize),
    /// The MTU exceeds what a UDP datagram can carry.
    #[error("mtu_bytes {0} is above 65535")]
    MtuTooLarge(usize),
    /// Blocks could not hold the largest record, or would need too many symbols.
    #[error("max_block_bytes {0} must be at least max_record_bytes and fit {MAX_SOURCE_SYMBOLS} symbols")]
    BadBlockSize(usize),
    /// More repair than the erasure code supports.
    #[error("repair_percent {0} is above 400")]
    BadRepair(u32),
    /// The expected loss is not a percentage the sender can size blocks for.
    #[error("expected_loss_percent must be between 0 and {MAX_EXPECTED_LOSS_PERCENT}")]
    BadExpectedLoss,
}

/// Why a record was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// Larger than `max_record_bytes`.
    #[error("record of {0} bytes exceeds max_record_bytes")]
    TooLarge(usize),
    /// The queue of sealed blocks is full: transmit first.
    #[error("sender queue full")]
    Full,
    /// An unknown stream id.
    #[error("unknown stream {0}")]
    UnknownStream(u16),
}

/// A stream handle returned by [`Sender::add_stream`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamId(pub u16);

/// Counters, for metrics and heartbeats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Records accepted.
    pub records: u64,
    /// Blocks sealed.
    pub blocks: u64,
    /// Datagrams produced (heartbeats included).
    pub datagrams: u64,
    /// Bytes of datagrams produced.
    pub bytes: u64,
    /// Heartbeats produced.
    pub heartbeats: u64,
    /// Repair (FEC) symbols produced.
    pub repair_symbols: u64,
}

struct Outgoing {
    block: u64,
    /// Source symbols, then repair symbols, each `symbol_size` bytes, encrypted in place.
    data: Arc<Vec<u8>>,
    /// Each symbol's authentication tag, by symbol index.
    tags: Vec<[u8; TAG_LEN]>,
    source_count: u16,
    repair_count: u16,
    symbol_size: usize,
    next_symbol: u16,
    /// Each stream's next sequence once this block is out.
    positions: Vec<(u16, u64)>,
}

impl Outgoing {
    fn finished(&self) -> bool {
        self.next_symbol >= self.source_count + self.repair_count
    }
}

struct Stream {
    name: String,
    next_sequence: u64,
    /// Next sequence counting only records in fully transmitted blocks.
    sent_next_sequence: u64,
}

/// The sending state machine.
pub struct Sender {
    cfg: SenderConfig,
    key: SessionKey,
    symbol_capacity: usize,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    builder: BlockBuilder,
    /// Round-robin position over the interleaved blocks.
    interleave_turn: usize,
    /// Emptied block buffers, reused for the next blocks.
    spare: Vec<Vec<u8>>,
    /// Buffers of finished blocks whose symbols may still be lent to the driver
    /// ([`SealedSymbol`]); they become spare once the driver has let go of them.
    lent: Vec<Arc<Vec<u8>>>,
    /// Emptied tag lists, reused likewise.
    spare_tags: Vec<Vec<[u8; TAG_LEN]>>,
    builder_touched: Vec<u16>,
    builder_since: Option<Instant>,
    queue: VecDeque<Outgoing>,
    next_block: u64,
    streams: Vec<Stream>,
    heartbeat_due: bool,
    next_heartbeat: Instant,
    heartbeat_counter: u64,
    heartbeat_cursor: usize,
    heartbeat_buf: Vec<u8>,
    fec: Option<reed_solomon_simd::ReedSolomonEncoder>,
    /// `repair_count` by source count (`u16::MAX`: not computed yet).
    repair_table: Vec<u16>,
    wall_clock_ms: u64,
    dropped: u64,
    spool_depth: u64,
    stats: SenderStats,
}

/// One datagram from [`Sender::poll_transmit_parts`].
#[derive(Debug)]
pub enum Transmit {
    /// Written whole into the buffer: this many bytes.
    Whole(usize),
    /// Header and tag written into the buffer; the datagram is the header, this symbol and
    /// the tag.
    Parts(SealedSymbol),
}

/// A sealed (encrypted) symbol lent from its block buffer. The buffer is shared, not copied;
/// it returns to the sender's pool once every lent symbol of it is dropped.
#[derive(Clone, Debug)]
pub struct SealedSymbol {
    block: Arc<Vec<u8>>,
    start: usize,
    len: usize,
}

impl SealedSymbol {
    /// The symbol's bytes, as they go on the wire.
    pub fn bytes(&self) -> &[u8] {
        self.block
            .get(self.start..self.start + self.len)
            .unwrap_or_default()
    }

    /// The whole datagram's length: header, symbol and tag.
    pub fn datagram_len(&self) -> usize {
        HEADER_LEN + self.len + TAG_LEN
    }
}

/// The payload bytes one datagram can carry at `mtu_bytes` (even, for the erasure code).
pub fn symbol_capacity(mtu_bytes: usize, ip: IpVersion) -> usize {
    mtu_bytes.saturating_sub(ip.ip_udp_overhead() + OVERHEAD) & !1
}

impl Sender {
    /// A sender for a new session. A heartbeat is due at once, announcing the session.
    pub fn new(cfg: SenderConfig, now: Instant) -> Result<Sender, ConfigError> {
        if cfg.mtu_bytes < MIN_MTU {
            return Err(ConfigError::MtuTooSmall(cfg.mtu_bytes));
        }
        if cfg.mtu_bytes > 65535 {
            return Err(ConfigError::MtuTooLarge(cfg.mtu_bytes));
        }
        let symbol_capacity = symbol_capacity(cfg.mtu_bytes, cfg.ip_version);
        if cfg.max_block_bytes < cfg.max_record_bytes + RECORD_OVERHEAD
            || (cfg.max_block_bytes + 64) / symbol_capacity + 1 > MAX_SOURCE_SYMBOLS
        {
            return Err(ConfigError::BadBlockSize(cfg.max_block_bytes));
        }
        if cfg.repair_percent > 400 {
            return Err(ConfigError::BadRepair(cfg.repair_percent));
        }
        if !(0.0..=MAX_EXPECTED_LOSS_PERCENT).contains(&cfg.expected_loss_percent) {
            return Err(ConfigError::BadExpectedLoss);
        }
        let zstd = match cfg.codec {
            Codec::Zstd(level) => zstd::bulk::Compressor::new(level).ok(),
            Codec::None => None,
        };
        Ok(Sender {
            key: SessionKey::derive(&cfg.key, cfg.session, cfg.cipher),
            symbol_capacity,
            zstd,
            builder: BlockBuilder::default(),
            interleave_turn: 0,
            spare: Vec::new(),
            lent: Vec::new(),
            spare_tags: Vec::new(),
            builder_touched: Vec::new(),
            builder_since: None,
            queue: VecDeque::new(),
            next_block: 0,
            streams: Vec::new(),
            heartbeat_due: true,
            next_heartbeat: now + cfg.heartbeat_interval,
            heartbeat_counter: 0,
            heartbeat_cursor: 0,
            heartbeat_buf: Vec::new(),
            fec: None,
            repair_table: vec![u16::MAX; MAX_SOURCE_SYMBOLS + 1],
            wall_clock_ms: 0,
            dropped: 0,
            spool_depth: 0,
            stats: SenderStats::default(),
            cfg,
        })
    }

    /// Where this session stands, for the agent's ledger: blocks and, per stream, records
    /// handed to the link in whole blocks, and the next heartbeat counter.
    pub fn ledger(&self) -> crate::SenderLedger {
        crate::SenderLedger {
            session: self.cfg.session,
            closed: false,
            next_block: self.queue.front().map_or(self.next_block, |o| o.block),
            heartbeat_counter: self.heartbeat_counter,
            identity: self.cfg.identity.clone().unwrap_or_default(),
            streams: self.sent_positions(),
        }
    }

    /// Per stream, the sequence after the last record in a block handed out whole: what
    /// heartbeats announce and the ledger keeps.
    fn sent_positions(&self) -> Vec<StreamPosition> {
        self.streams
            .iter()
            .enumerate()
            .map(|(i, s)| StreamPosition {
                id: u16::try_from(i).unwrap_or(u16::MAX),
                next_sequence: s.sent_next_sequence,
                name: s.name.clone(),
            })
            .collect()
    }

    /// Blocks handed to the link whole so far (cheap: a ledger is due when it changes).
    pub fn sent_blocks(&self) -> u64 {
        self.queue.front().map_or(self.next_block, |o| o.block)
    }

    /// A sender that only closes an earlier session of this agent, the one `ledger` describes
    /// (after a start that did not end with final heartbeats: a crash, `kill -9`, a power
    /// loss). Its heartbeats tell the receiver where each stream of that session ended, so the
    /// records it never received become gap records. `cfg` is this start's configuration
    /// (key, cipher, link); the session, the identity and the positions come from the ledger,
    /// and heartbeat counters from [`crate::SenderLedger::closing_counter`] on. Push nothing.
    pub fn closing(
        cfg: &SenderConfig,
        ledger: &crate::SenderLedger,
        now: Instant,
    ) -> Result<Sender, ConfigError> {
        let mut cfg = cfg.clone();
        cfg.session = ledger.session;
        cfg.identity = Some(ledger.identity.clone());
        let mut sender = Sender::new(cfg, now)?;
        let mut streams: Vec<&StreamPosition> = ledger.streams.iter().collect();
        streams.sort_by_key(|s| s.id);
        for (i, s) in streams.into_iter().enumerate() {
            if usize::from(s.id) != i {
                break;
            }
            sender.streams.push(Stream {
                name: s.name.clone(),
                next_sequence: s.next_sequence,
                sent_next_sequence: s.next_sequence,
            });
        }
        sender.next_block = ledger.next_block;
        sender.heartbeat_counter = ledger.closing_counter();
        Ok(sender)
    }

    /// The largest datagram this sender produces; size transmit buffers by it.
    pub fn max_datagram_len(&self) -> usize {
        self.symbol_capacity + OVERHEAD
    }

    /// The session epoch.
    pub fn session(&self) -> u64 {
        self.cfg.session
    }

    /// Register a stream (one per input). Its records are numbered from 0.
    pub fn add_stream(&mut self, name: &str) -> StreamId {
        let id = u16::try_from(self.streams.len()).unwrap_or(u16::MAX);
        self.streams.push(Stream {
            name: name.to_owned(),
            next_sequence: 0,
            sent_next_sequence: 0,
        });
        StreamId(id)
    }

    /// The stream named `name`, added if there is none (a configuration reload keeps a
    /// source's stream, and its sequence numbers, when the source stays).
    pub fn stream(&mut self, name: &str) -> StreamId {
        match self.streams.iter().position(|s| s.name == name) {
            Some(i) => StreamId(u16::try_from(i).unwrap_or(u16::MAX)),
            None => self.add_stream(name),
        }
    }

    /// How many streams there are (their ids are `0..stream_count()`).
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// True when [`Sender::push`] will accept a record.
    pub fn can_push(&self) -> bool {
        self.queue.len() < self.cfg.max_queued_blocks
    }

    /// Add a record to `stream`; returns its sequence number.
    pub fn push(
        &mut self,
        now: Instant,
        stream: StreamId,
        record: &[u8],
    ) -> Result<u64, PushError> {
        if record.len() > self.cfg.max_record_bytes {
            return Err(PushError::TooLarge(record.len()));
        }
        if !self.can_push() {
            return Err(PushError::Full);
        }
        let Some(sequence) = self
            .streams
            .get(usize::from(stream.0))
            .map(|s| s.next_sequence)
        else {
            return Err(PushError::UnknownStream(stream.0));
        };
        // Seal the open block first: its stream positions must not include this record.
        if self.builder.records() > 0
            && self.builder.raw_len() + RECORD_OVERHEAD + record.len() > self.cfg.max_block_bytes
        {
            self.seal();
        }
        if let Some(s) = self.streams.get_mut(usize::from(stream.0)) {
            s.next_sequence += 1;
        }
        self.builder.push(stream.0, sequence, record);
        if !self.builder_touched.contains(&stream.0) {
            self.builder_touched.push(stream.0);
        }
        self.builder_since.get_or_insert(now);
        self.stats.records += 1;
        if self.builder.raw_len() >= self.cfg.max_block_bytes {
            self.seal();
        }
        Ok(sequence)
    }

    /// Seal the open block now (shutdown, or a caller that wants low latency).
    pub fn flush(&mut self) {
        if self.builder.records() > 0 {
            self.seal();
        }
    }

    fn seal(&mut self) {
        // Room for padding and repair symbols, so neither reallocates.
        let most_sources = (self.builder.raw_len() + BLOCK_PREFIX).div_ceil(self.symbol_capacity);
        let reserve = (1 + self.repair_for(most_sources)) * self.symbol_capacity;
        self.reclaim();
        let spare = self.spare.pop();
        let mut data = self
            .builder
            .seal(self.cfg.codec, &mut self.zstd, spare, reserve);
        let source_count = data.len().div_ceil(self.symbol_capacity).max(1);
        let symbol_size = (data.len().div_ceil(source_count) + 1) & !1;
        data.resize(source_count * symbol_size, 0);
        let repair_count = self.add_repair(&mut data, source_count, symbol_size);
        // Bounded by MAX_SOURCE_SYMBOLS through the block size check in `new`, and the repair
        // count by 400 % of it.
        let source_count = u16::try_from(source_count).unwrap_or(u16::MAX);
        let repair_count = u16::try_from(repair_count).unwrap_or(0);
        let mut tags = self.spare_tags.pop().unwrap_or_default();
        tags.clear();
        let block = self.next_block;
        for (symbol, body) in (0u16..).zip(data.chunks_exact_mut(symbol_size)) {
            let header = self.symbol_header(block, symbol, source_count, repair_count, symbol_size);
            let mut head = [0u8; HEADER_LEN];
            header.encode(&mut head);
            tags.push(self.key.seal(&head, &header, body));
        }
        let positions = self
            .builder_touched
            .drain(..)
            .filter_map(|id| Some((id, self.streams.get(usize::from(id))?.next_sequence)))
            .collect();
        self.queue.push_back(Outgoing {
            block,
            data: Arc::new(data),
            tags,
            source_count,
            repair_count,
            symbol_size,
            next_symbol: 0,
            positions,
        });
        self.next_block += 1;
        self.builder_since = None;
        self.stats.blocks += 1;
    }

    /// The header of symbol `symbol` of block `block`.
    fn symbol_header(
        &self,
        block: u64,
        symbol: u16,
        source_count: u16,
        repair_count: u16,
        symbol_size: usize,
    ) -> Header {
        Header {
            kind: if symbol < source_count {
                DatagramType::Source
            } else {
                DatagramType::Repair
            },
            key_id: self.cfg.key_id,
            cipher: self.cfg.cipher,
            session: self.cfg.session,
            block,
            symbol,
            source_count,
            repair_count,
            // Symbols fit a datagram: at most the MTU, itself at most 65,535 (checked in `new`).
            payload_len: u16::try_from(symbol_size).unwrap_or(u16::MAX),
        }
    }

    /// Buffers of finished blocks the driver no longer holds become spare again. Keep the
    /// buffers of as many blocks as may queue: a driver that empties the queue onto a paced link
    /// refills it all at once, and fresh buffers would grow by reallocation and fault in cold
    /// pages (a fifth of the sender's CPU at line rate). Memory stays at the peak the queue
    /// bound already allows.
    fn reclaim(&mut self) {
        let keep = self.cfg.max_queued_blocks.min(MAX_SPARE_BLOCKS);
        let mut i = 0;
        while i < self.lent.len() {
            if self.lent.get(i).is_some_and(|b| Arc::strong_count(b) == 1) {
                let buffer = self.lent.swap_remove(i);
                if self.spare.len() < keep {
                    if let Ok(buffer) = Arc::try_unwrap(buffer) {
                        self.spare.push(buffer);
                    }
                }
            } else {
                i += 1;
            }
        }
    }

    /// [`repair_count`] for this sender's settings, remembered per source count.
    fn repair_for(&mut self, source_count: usize) -> usize {
        if let Some(&known) = self
            .repair_table
            .get(source_count)
            .filter(|&&r| r != u16::MAX)
        {
            return usize::from(known);
        }
        let r = repair_count(
            source_count,
            self.cfg.repair_percent,
            self.cfg.expected_loss_percent,
        );
        if let (Some(slot), Ok(r16)) = (self.repair_table.get_mut(source_count), u16::try_from(r)) {
            *slot = r16;
        }
        r
    }

    /// Append the block's Reed-Solomon repair symbols to `data`; returns how many. The encoder
    /// is kept and reset between blocks, so FEC allocates per block, never per datagram.
    fn add_repair(&mut self, data: &mut Vec<u8>, source_count: usize, symbol_size: usize) -> usize {
        let repair = self.repair_for(source_count);
        if repair == 0 {
            return 0;
        }
        let ready = match self.fec.as_mut() {
            Some(enc) => enc.reset(source_count, repair, symbol_size).is_ok(),
            None => {
                self.fec =
                    reed_solomon_simd::ReedSolomonEncoder::new(source_count, repair, symbol_size)
                        .ok();
                self.fec.is_some()
            }
        };
        let Some(enc) = self.fec.as_mut().filter(|_| ready) else {
            return 0;
        };
        for shard in data.chunks_exact(symbol_size) {
            if enc.add_original_shard(shard).is_err() {
                return 0;
            }
        }
        let Ok(result) = enc.encode() else {
            return 0;
        };
        let before = data.len();
        for shard in result.recovery_iter() {
            data.extend_from_slice(shard);
        }
        if data.len() != before + repair * symbol_size {
            data.truncate(before);
            return 0;
        }
        repair
    }

    /// Tell the sender the wall clock (Unix ms), records dropped before the diode and the
    /// spool depth; all three travel in heartbeats.
    pub fn set_report(&mut self, wall_clock_ms: u64, dropped: u64, spool_depth_bytes: u64) {
        self.wall_clock_ms = wall_clock_ms;
        self.dropped = dropped;
        self.spool_depth = spool_depth_bytes;
    }

    /// Make a heartbeat due now (for example right before shutting down).
    pub fn queue_heartbeat(&mut self) {
        self.heartbeat_due = true;
    }

    /// When [`Sender::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Instant {
        match self.builder_since {
            Some(since) => self.next_heartbeat.min(since + self.cfg.linger),
            None => self.next_heartbeat,
        }
    }

    /// Advance timers: seal a block whose linger expired, make a heartbeat due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self
            .builder_since
            .is_some_and(|since| now >= since + self.cfg.linger)
        {
            self.flush();
        }
        if now >= self.next_heartbeat {
            self.heartbeat_due = true;
            self.next_heartbeat = now + self.cfg.heartbeat_interval;
        }
    }

    /// True when nothing waits to be transmitted.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.builder.records() == 0 && !self.heartbeat_due
    }

    /// Sealed blocks waiting for transmission.
    pub fn queued_blocks(&self) -> usize {
        self.queue.len()
    }

    /// Counters so far.
    pub fn stats(&self) -> SenderStats {
        self.stats
    }

    /// Write the next datagram into `buf` (at least [`Sender::max_datagram_len`] bytes) and
    /// return its length, or `None` when there is nothing to send.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<usize> {
        match self.poll_transmit_parts(buf)? {
            Transmit::Whole(len) => Some(len),
            Transmit::Parts(symbol) => {
                let body = symbol.bytes();
                let total = symbol.datagram_len();
                let tag: [u8; TAG_LEN] =
                    buf.get(HEADER_LEN..HEADER_LEN + TAG_LEN)?.try_into().ok()?;
                let datagram = buf.get_mut(..total)?;
                let (_, rest) = datagram.split_at_mut(HEADER_LEN);
                let (middle, end) = rest.split_at_mut(body.len());
                middle.copy_from_slice(body);
                end.copy_from_slice(&tag);
                Some(total)
            }
        }
    }

    /// The next datagram without copying a block's symbol: a heartbeat is written whole into
    /// `buf` ([`Transmit::Whole`]); a symbol's header goes to `buf[..HEADER_LEN]`, its tag to
    /// `buf[HEADER_LEN..HEADER_LEN + TAG_LEN]`, and the sealed symbol is lent
    /// ([`Transmit::Parts`]): the datagram is header, symbol, tag, in that order. `buf` must
    /// hold at least [`Sender::max_datagram_len`] bytes.
    pub fn poll_transmit_parts(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        if buf.len() < self.max_datagram_len() {
            return None;
        }
        let out = if self.heartbeat_due {
            self.heartbeat_due = false;
            Transmit::Whole(self.write_heartbeat(buf)?)
        } else {
            Transmit::Parts(self.next_symbol(buf)?)
        };
        let len = match &out {
            Transmit::Whole(len) => *len,
            Transmit::Parts(symbol) => symbol.datagram_len(),
        };
        self.stats.datagrams += 1;
        self.stats.bytes += len as u64;
        Some(out)
    }

    /// Header and tag of the next symbol into `buf`; the symbol itself lent.
    fn next_symbol(&mut self, buf: &mut [u8]) -> Option<SealedSymbol> {
        // The first `interleave_blocks` unfinished blocks take turns (finished ones wait in
        // the queue until every block before them is finished too, so that stream positions
        // in heartbeats never run ahead of the blocks fully sent).
        let depth = self
            .queue
            .iter()
            .filter(|o| !o.finished())
            .take(self.cfg.interleave_blocks.max(1))
            .count()
            .max(1);
        self.interleave_turn = (self.interleave_turn + 1) % depth;
        let index = self
            .queue
            .iter()
            .enumerate()
            .filter(|(_, o)| !o.finished())
            .nth(self.interleave_turn)
            .map(|(i, _)| i)?;
        let out = self.queue.get(index)?;
        let symbol = out.next_symbol;
        let header = self.symbol_header(
            out.block,
            symbol,
            out.source_count,
            out.repair_count,
            out.symbol_size,
        );
        let head: &mut [u8; HEADER_LEN] = buf.get_mut(..HEADER_LEN)?.try_into().ok()?;
        header.encode(head);
        buf.get_mut(HEADER_LEN..HEADER_LEN + TAG_LEN)?
            .copy_from_slice(out.tags.get(usize::from(symbol))?);
        let start = usize::from(symbol) * out.symbol_size;
        // In bounds by construction; checked so that a lent symbol never reads past its block.
        out.data.get(start..start + out.symbol_size)?;
        let lent = SealedSymbol {
            block: Arc::clone(&out.data),
            start,
            len: out.symbol_size,
        };
        if header.kind == DatagramType::Repair {
            self.stats.repair_symbols += 1;
        }
        if let Some(out) = self.queue.get_mut(index) {
            out.next_symbol += 1;
        }
        while self.queue.front().is_some_and(Outgoing::finished) {
            if let Some(done) = self.queue.pop_front() {
                for (id, next) in done.positions {
                    if let Some(s) = self.streams.get_mut(usize::from(id)) {
                        s.sent_next_sequence = next;
                    }
                }
                if self.lent.len() < MAX_SPARE_BLOCKS {
                    self.lent.push(done.data);
                }
                if self.spare_tags.len() < MAX_SPARE_BLOCKS {
                    self.spare_tags.push(done.tags);
                }
            }
        }
        Some(lent)
    }

    fn write_heartbeat(&mut self, buf: &mut [u8]) -> Option<usize> {
        // The counter is the nonce's block field: it must never wrap (only a forged or damaged
        // ledger handed to `closing` could bring it near the end).
        let next_counter = self.heartbeat_counter.checked_add(1)?;
        let hb = Heartbeat {
            sent_at_unix_ms: self.wall_clock_ms,
            next_block: self.queue.front().map_or(self.next_block, |o| o.block),
            fingerprint: self.cfg.fingerprint,
            records_sent: self.stats.records,
            records_dropped: self.dropped,
            spool_depth_bytes: self.spool_depth,
            streams: self.sent_positions(),
            identity: self.cfg.identity.clone(),
        };
        let mut payload = std::mem::take(&mut self.heartbeat_buf);
        self.heartbeat_cursor =
            hb.encode_from(self.heartbeat_cursor, self.symbol_capacity, &mut payload);
        let header = Header {
            kind: DatagramType::Heartbeat,
            key_id: self.cfg.key_id,
            cipher: self.cfg.cipher,
            session: self.cfg.session,
            block: self.heartbeat_counter,
            symbol: 0,
            source_count: 1,
            repair_count: 0,
            payload_len: u16::try_from(payload.len()).ok()?,
        };
        let len = seal_into(&self.key, &header, &payload, buf);
        self.heartbeat_buf = payload;
        self.heartbeat_counter = next_counter;
        self.stats.heartbeats += 1;
        len
    }
}

/// Header, sealed payload and tag into `buf`; returns the datagram length.
fn seal_into(key: &SessionKey, header: &Header, payload: &[u8], buf: &mut [u8]) -> Option<usize> {
    let total = HEADER_LEN + payload.len() + TAG_LEN;
    let buf = buf.get_mut(..total)?;
    let (head, rest) = buf.split_at_mut(HEADER_LEN);
    let head: &mut [u8; HEADER_LEN] = head.try_into().ok()?;
    header.encode(head);
    let (body, tag) = rest.split_at_mut(payload.len());
    body.copy_from_slice(payload);
    tag.copy_from_slice(&key.seal(head, header, body));
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values from an exact binomial sum over rationals (Python `math.comb`), not from
    /// this code: (K, repair at 10 % floor and 1 % loss, at 0.1 % loss, at 5 % loss).
    const EXACT: [(usize, usize, usize, usize); 10] = [
        (1, 4, 3, 6),
        (2, 4, 3, 7),
        (4, 5, 3, 8),
        (10, 6, 3, 10),
        (20, 7, 4, 13),
        (30, 8, 4, 15),
        (40, 9, 5, 17),
        (60, 10, 6, 20),
        (100, 12, 10, 25),
        (187, 19, 19, 35),
    ];

    #[test]
    fn repair_is_sized_for_the_expected_loss_and_never_below_the_percentage() {
        for (k, at_1, at_01, at_5) in EXACT {
            assert_eq!(repair_count(k, 10, 1.0), at_1, "K={k} at 1 %");
            assert_eq!(repair_count(k, 10, 0.1), at_01, "K={k} at 0.1 %");
            assert_eq!(repair_count(k, 10, 5.0), at_5, "K={k} at 5 %");
        }
        // The percentage is a floor; 0 turns FEC off whatever the loss; no loss model: the
        // percentage alone, with its minimum.
        assert_eq!(repair_count(100, 40, 1.0), 40);
        assert_eq!(repair_count(100, 0, 5.0), 0);
        assert_eq!(repair_count(100, 10, 0.0), 10);
        assert_eq!(repair_count(3, 10, 0.0), MIN_REPAIR_SYMBOLS);
        // Never more than a receiver accepts.
        assert_eq!(repair_count(1, 10, 20.0), max_repair(1));
        assert_eq!(
            repair_count(MAX_SOURCE_SYMBOLS, 400, 20.0),
            4 * MAX_SOURCE_SYMBOLS
        );
    }

    /// A block buffer whose symbols the driver still holds is not reused; once they are
    /// dropped it is, so a sender in steady state allocates no block buffers.
    #[test]
    fn lent_block_buffers_are_reused_only_once_released() {
        let now = Instant::now();
        let mut tx = Sender::new(
            SenderConfig {
                key_id: 1,
                key: [3; 32],
                cipher: Cipher::default(),
                session: 9,
                mtu_bytes: 1500,
                ip_version: IpVersion::V4,
                codec: Codec::None,
                max_block_bytes: 8192,
                max_record_bytes: 4096,
                linger: Duration::from_millis(10),
                heartbeat_interval: Duration::from_secs(60),
                fingerprint: 0,
                max_queued_blocks: 8,
                repair_percent: 0,
                expected_loss_percent: 0.0,
                interleave_blocks: 1,
                identity: None,
            },
            now,
        )
        .expect("sender");
        let stream = tx.add_stream("s");
        let mut buf = vec![0u8; tx.max_datagram_len()];
        let mut block = |tx: &mut Sender| -> Vec<SealedSymbol> {
            tx.push(now, stream, &[5u8; 3000]).expect("push");
            tx.flush();
            let mut held = Vec::new();
            while let Some(t) = tx.poll_transmit_parts(&mut buf) {
                if let Transmit::Parts(s) = t {
                    held.push(s);
                }
            }
            held
        };
        let first = block(&mut tx);
        assert_eq!(first.len(), 3);
        let first_buffer = Arc::as_ptr(&first[0].block);
        // Held: the next block cannot take its buffer.
        let second = block(&mut tx);
        assert_ne!(Arc::as_ptr(&second[0].block), first_buffer);
        assert_eq!(tx.lent.len(), 2);
        drop(second);
        drop(first);
        // Released: reclaimed at the next seal and reused.
        let third = block(&mut tx);
        let reused = Arc::as_ptr(&third[0].block);
        assert!(
            tx.spare.len() == 1 && tx.lent.len() == 1,
            "{} spare, {} lent",
            tx.spare.len(),
            tx.lent.len()
        );
        drop(third);
        let fourth = block(&mut tx);
        assert!(Arc::as_ptr(&fourth[0].block) == reused || tx.spare.len() == 1);
        assert_eq!(
            tx.stats().datagrams,
            1 + 4 * 3,
            "one heartbeat, three symbols per block"
        );
    }
}
