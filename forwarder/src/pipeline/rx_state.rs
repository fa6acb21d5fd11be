//! The receiver's durable state: which agents and sessions it knows, the epochs it refuses, and
//! for each live session the block and stream positions up to which every sink holds the
//! events. Kept in `rx.state_dir` so that after any restart a replay is still refused and what
//! an agent sent while the receiver was down becomes gap records.
//!
//! ```text
//! rx-state    snapshot, replaced whole (synced temporary file renamed over it):
//!             crc32c (u32) | state (weir_diode_proto::state)
//! rx-journal  entries appended by the sink stage, one per receiver output:
//!             "WRJ1" | body length (u32) | crc32c(body) (u32) | body
//!             body = state length (u32) | state | event count (u32)
//!                    | *( class (u8) | start (u32) | JSON start (u32) | end (u32) )
//!                    | arena length (u32) | arena (the events' records, back to back)
//!             "WRJD" after an entry: the sinks hold its events
//! ```
//!
//! The sink stage writes an output's entry (the state *after* it, and the events it makes)
//! before it hands those events to the sinks, and a done mark once they hold them. After a
//! `kill -9` the last entry is therefore the truth: its state is restored, and if it has no done
//! mark its events are written to every sink again (they may be there already: the only
//! duplicates a restart makes, counted as redelivered). An entry torn
//! by the crash was never handed to a sink; the state before it stands, and the events it
//! carried are accounted for as lost by the protocol (gap records). The journal is folded into
//! the snapshot every [`COMPACT_BYTES`]. Entries are written, not synced: a `kill -9` loses
//! nothing, a power loss may lose the last moments (see `docs/operations.md`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use weir_diode_proto::{Output, ReceiverState};
use weir_schemas::EventClass;

/// The journal is folded into the snapshot when it grows past this.
pub const COMPACT_BYTES: u64 = 32 << 20;
const MAGIC: &[u8; 4] = b"WRJ1";
/// Appended once the sinks hold an entry's events: that entry is not written again.
const DONE: &[u8; 4] = b"WRJD";
/// The largest entry a reader accepts (a decoded block's events and the state).
const MAX_ENTRY: usize = 256 << 20;

/// One event of the last entry, to be written again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redeliver {
    /// Its class (routing).
    pub class: EventClass,
    /// The record as the sink stage made it (envelope, then JSON, or JSON alone).
    pub record: Vec<u8>,
    /// Where its JSON starts.
    pub json_at: usize,
}

/// What [`Journal::open`] found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The state to go on from.
    pub state: ReceiverState,
    /// The last entry's events.
    pub redeliver: Vec<Redeliver>,
    /// Bytes of a torn or damaged journal tail that were cut off.
    pub cut_bytes: u64,
}

/// The open journal, owned by the sink stage.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    file: File,
    len: u64,
    state: ReceiverState,
    scratch: Vec<u8>,
    state_bytes: Vec<u8>,
}

impl Journal {
    /// Open (creating) the state in `dir` and recover what a previous run left.
    pub fn open(dir: &Path) -> Result<(Journal, Recovered)> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
        let mut recovered = Recovered::default();
        let snap = dir.join("rx-state");
        match std::fs::read(&snap) {
            Ok(bytes) => {
                recovered.state = decode_snapshot(&bytes).with_context(|| {
                    format!(
                        "{} is damaged: the receiver will not start without knowing which sessions it must refuse. Move it away to start afresh (replays of sessions older than the move are then no longer refused)",
                        snap.display()
                    )
                })?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", snap.display())),
        }
        let path = dir.join("rx-journal");
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let (good, last) = scan(&bytes);
        if let Some((state, redeliver)) = last {
            recovered.state = state;
            recovered.redeliver = redeliver;
        }
        recovered.cut_bytes = (bytes.len() - good) as u64;
        if recovered.cut_bytes > 0 {
            file.set_len(good as u64)
                .with_context(|| format!("cannot cut the torn tail of {}", path.display()))?;
        }
        let journal = Journal {
            dir: dir.to_owned(),
            file,
            len: good as u64,
            state: recovered.state.clone(),
            scratch: Vec::new(),
            state_bytes: Vec::new(),
        };
        Ok((journal, recovered))
    }

    /// The state as of the outputs applied so far.
    pub fn state(&self) -> &ReceiverState {
        &self.state
    }

    /// Follow one receiver output (before [`Journal::commit`]).
    pub fn apply(&mut self, output: &Output) {
        self.state.apply(output);
    }

    /// Write the state and the events the output made, before they go to the sinks: `arena`
    /// holds their records, each event given as (class, start, JSON start, end) in it. The
    /// arena is written as it is (no copy), beside a small index.
    pub fn commit(
        &mut self,
        arena: &[u8],
        events: impl ExactSizeIterator<Item = (EventClass, usize, usize, usize)>,
    ) -> std::io::Result<()> {
        self.state.encode(&mut self.state_bytes);
        let head = &mut self.scratch;
        head.clear();
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&[0; 8]);
        head.extend_from_slice(&(self.state_bytes.len() as u32).to_be_bytes());
        head.extend_from_slice(&self.state_bytes);
        head.extend_from_slice(&(events.len() as u32).to_be_bytes());
        for (class, start, json_at, end) in events {
            head.push(class_code(class));
            for v in [start, json_at, end] {
                head.extend_from_slice(&(v as u32).to_be_bytes());
            }
        }
        head.extend_from_slice(&(arena.len() as u32).to_be_bytes());
        let body_len = head.len() - 12 + arena.len();
        let crc = crc32c::crc32c_append(crc32c::crc32c(head.get(12..).unwrap_or_default()), arena);
        if let Some(h) = head.get_mut(4..12) {
            h[..4].copy_from_slice(&(body_len as u32).to_be_bytes());
            h[4..].copy_from_slice(&crc.to_be_bytes());
        }
        write_all_vectored(&mut self.file, head, arena)?;
        self.len += (head.len() + arena.len()) as u64;
        Ok(())
    }

    /// The sinks hold the last entry's events: a restart need not write them again.
    pub fn done(&mut self) -> std::io::Result<()> {
        self.file.write_all(DONE)?;
        self.len += DONE.len() as u64;
        Ok(())
    }

    /// Once the sinks hold the last entry's events: fold the journal into the snapshot if it
    /// has grown past [`COMPACT_BYTES`] (or always, with `force`, at shutdown).
    pub fn compact(&mut self, force: bool) -> std::io::Result<()> {
        if !force && self.len < COMPACT_BYTES {
            return Ok(());
        }
        self.state.encode(&mut self.state_bytes);
        let mut snap = crc32c::crc32c(&self.state_bytes).to_be_bytes().to_vec();
        snap.extend_from_slice(&self.state_bytes);
        crate::durable::write_synced(&self.dir.join("rx-state"), &snap)?;
        self.file.set_len(0)?;
        self.len = 0;
        Ok(())
    }
}

/// Both slices, in as few system calls as the kernel allows.
fn write_all_vectored(file: &mut File, a: &[u8], b: &[u8]) -> std::io::Result<()> {
    let (mut a, mut b) = (a, b);
    while !a.is_empty() || !b.is_empty() {
        let n = file.write_vectored(&[std::io::IoSlice::new(a), std::io::IoSlice::new(b)])?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_a = n.min(a.len());
        a = a.get(from_a..).unwrap_or_default();
        b = b.get(n - from_a..).unwrap_or_default();
    }
    Ok(())
}

fn decode_snapshot(bytes: &[u8]) -> Result<ReceiverState> {
    let (crc, state) = bytes
        .split_first_chunk::<4>()
        .context("shorter than its checksum")?;
    if u32::from_be_bytes(*crc) != crc32c::crc32c(state) {
        bail!("checksum mismatch");
    }
    ReceiverState::decode(state).context("not a receiver state")
}

type Entry = (ReceiverState, Vec<Redeliver>);

/// The length of the journal's valid prefix and its last entry.
pub fn scan(bytes: &[u8]) -> (usize, Option<Entry>) {
    let mut at = 0;
    let mut last: Option<Entry> = None;
    while let Some(rest) = bytes.get(at..) {
        if rest.starts_with(DONE) && last.is_some() {
            at += DONE.len();
            if let Some((_, events)) = last.as_mut() {
                events.clear();
            }
            continue;
        }
        match entry(rest) {
            Some((len, e)) => {
                at += len;
                last = Some(e);
            }
            None => break,
        }
    }
    (at, last)
}

fn entry(bytes: &[u8]) -> Option<(usize, Entry)> {
    let mut r = weir_diode_proto::reader::Reader::new(bytes);
    if r.take(4).ok()? != MAGIC {
        return None;
    }
    let len = r.u32().ok()? as usize;
    let crc = r.u32().ok()?;
    if len > MAX_ENTRY {
        return None;
    }
    let body = r.take(len).ok()?;
    if crc32c::crc32c(body) != crc {
        return None;
    }
    let mut b = weir_diode_proto::reader::Reader::new(body);
    let state_len = b.u32().ok()? as usize;
    let state = ReceiverState::decode(b.take(state_len).ok()?)?;
    let n = b.u32().ok()? as usize;
    let mut index = Vec::new();
    for _ in 0..n {
        let class = *EventClass::ALL.get(usize::from(b.u8().ok()?))?;
        let (start, json_at, end) = (
            b.u32().ok()? as usize,
            b.u32().ok()? as usize,
            b.u32().ok()? as usize,
        );
        index.push((class, start, json_at, end));
    }
    let arena_len = b.u32().ok()? as usize;
    let arena = b.take(arena_len).ok()?;
    let mut events = Vec::with_capacity(index.len());
    for (class, start, json_at, end) in index {
        if !(start <= json_at && json_at <= end) {
            return None;
        }
        events.push(Redeliver {
            class,
            record: arena.get(start..end)?.to_vec(),
            json_at: json_at - start,
        });
    }
    b.is_empty().then_some((12 + len, (state, events)))
}

fn class_code(class: EventClass) -> u8 {
    EventClass::ALL
        .iter()
        .position(|c| *c == class)
        .map_or(u8::MAX, |i| i as u8)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use weir_diode_proto::state::{AgentRecord, SessionRecord};

    fn state(n: u64) -> ReceiverState {
        ReceiverState {
            agents: vec![AgentRecord {
                name: "a".into(),
                boot: n,
                newest_heartbeat_unix_ms: 0,
            }],
            retired: vec![n],
            sessions: vec![SessionRecord {
                epoch: n + 100,
                agent: "a".into(),
                next_block: n,
                ..SessionRecord::default()
            }],
        }
    }

    /// The last whole entry wins, with its events; a tail torn anywhere is cut off and the
    /// entry before it stands; after compaction nothing is redelivered and the snapshot
    /// holds the state; a damaged snapshot refuses to start.
    #[test]
    fn journal_recovers_the_last_whole_entry_wherever_it_was_torn() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, rec) = Journal::open(dir.path()).unwrap();
        assert_eq!(rec.state, ReceiverState::default());
        for n in 1..=3u64 {
            j.state = state(n);
            let rec = format!("{{\"n\":{n}}}").into_bytes();
            j.commit(&rec, [(EventClass::Syslog, 0, 0, rec.len())].into_iter())
                .unwrap();
        }
        drop(j);
        let path = dir.path().join("rx-journal");
        let whole = std::fs::read(&path).unwrap();
        let (_, rec) = Journal::open(dir.path()).unwrap();
        assert_eq!(rec.state, state(3));
        assert_eq!(rec.redeliver.len(), 1);
        assert_eq!(rec.redeliver[0].record, b"{\"n\":3}");
        let (two, _) = scan(&whole);
        assert_eq!(two, whole.len());
        let third_at = {
            let one = entry(&whole).unwrap().0;
            one + entry(&whole[one..]).unwrap().0
        };
        for cut in third_at..whole.len() {
            std::fs::write(&path, &whole[..cut]).unwrap();
            let (_, rec) = Journal::open(dir.path()).unwrap();
            assert_eq!(rec.state, state(2), "cut at {cut}");
            assert_eq!(rec.redeliver[0].record, b"{\"n\":2}");
            assert_eq!(rec.cut_bytes, (cut - third_at) as u64);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), third_at as u64);
        }
        // A done marker after the last entry: the state stands, nothing is written again; a
        // marker cut short is a torn tail (cut off, the events written again).
        let mut marked = whole.clone();
        marked.extend_from_slice(DONE);
        std::fs::write(&path, &marked).unwrap();
        let (_, rec) = Journal::open(dir.path()).unwrap();
        assert_eq!(rec.state, state(3));
        assert!(rec.redeliver.is_empty());
        std::fs::write(&path, &marked[..marked.len() - 1]).unwrap();
        let (_, rec) = Journal::open(dir.path()).unwrap();
        assert_eq!((rec.redeliver.len(), rec.cut_bytes), (1, 3));
        let mut flipped = whole.clone();
        flipped[third_at + 20] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        let (mut j, rec) = Journal::open(dir.path()).unwrap();
        assert_eq!(rec.state, state(2));
        j.compact(true).unwrap();
        drop(j);
        let (_, rec) = Journal::open(dir.path()).unwrap();
        assert_eq!(rec.state, state(2));
        assert!(rec.redeliver.is_empty());
        let snap = dir.path().join("rx-state");
        let mut bad = std::fs::read(&snap).unwrap();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        std::fs::write(&snap, &bad).unwrap();
        let err = Journal::open(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("is damaged"), "{err:#}");
    }
}
