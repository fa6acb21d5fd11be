/*!
A bounded, crash-safe, append-only disk queue: the agent's diode spool and (next) each sink's
buffer.

```text
DIR/
  00000000000000000001.wseg   segment: records appended, never rewritten
  00000000000000000002.wseg
  ack                         the first record not yet acknowledged: two slots written in
                              turn in place, each with a sequence and a CRC (see ACK_SLOT)
record = magic "WREC" (4) | length u32 LE (4) | written-at Unix ms u64 LE (8)
         | CRC-32C of length, time and data, u32 LE (4) | data (length bytes)
```

* **Appends** go to the newest segment; a segment is closed at `segment_bytes`.
* **Reads** hand out records from a read cursor without consuming them; **acknowledgements**
  move the persisted ack position (two checksummed slots written in turn, so a torn write
  leaves the previous position). Segments wholly behind it are deleted. After a crash, reading
  resumes at the ack position: records that were read but not acknowledged are read again
  (at-least-once; duplicates are limited to what was in flight).
* **Recovery** checks every record's CRC. A torn tail (a crash mid-append) is cut off; damaged
  records in the middle are skipped by scanning for the next valid record, and counted. Nothing
  ever blocks the queue.
* **Bounds**: at most `max_bytes` on disk. When full, the [`Overflow`] policy drops the
  incoming record or the oldest segment; either way the records dropped are counted and
  returned, so the caller can report them.

Every method does blocking file IO: call it from a thread of its own or `spawn_blocking`.
*/

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes of framing per record.
pub const RECORD_HEADER: usize = 20;
const MAGIC: [u8; 4] = *b"WREC";
/// Appended bytes held in memory before an append first hands them to the OS.
const FLUSH_AT: u64 = 256 * 1024;

/// Largest record accepted (the length field is trusted no further than this when scanning).
pub const MAX_RECORD: usize = 64 << 20;
const SUFFIX: &str = "wseg";
/// Most bytes of the writer segment's tail kept in memory for a reader that keeps up.
const MAX_TAIL: usize = 32 << 20;

/// What to do with a record that does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Refuse the new record.
    DropNewest,
    /// Delete the oldest segment (even unacknowledged records in it) to make room.
    DropOldest,
}

/// Sizes and policy.
#[derive(Clone, Debug)]
pub struct Config {
    /// Most bytes on disk (segments included whole).
    pub max_bytes: u64,
    /// A segment is closed once it reaches this size.
    pub segment_bytes: u64,
    /// When full.
    pub overflow: Overflow,
}

/// A record's place: segment number and the byte offset just past it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    /// Segment number.
    pub segment: u64,
    /// Byte offset in the segment.
    pub offset: u64,
}

/// One record read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Acknowledge up to here to consume this record (and all before it).
    pub end: Position,
    /// When it was appended (Unix ms).
    pub written_unix_ms: u64,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// Records read back together ([`DiskQueue::read_batch`]): their bytes in one buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadBatch {
    data: Vec<u8>,
    records: Vec<BatchRecord>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchRecord {
    start: usize,
    len: usize,
    end: Position,
    written_unix_ms: u64,
}

impl ReadBatch {
    fn push(&mut self, data: &[u8], written_unix_ms: u64, end: Position) {
        self.records.push(BatchRecord {
            start: self.data.len(),
            len: data.len(),
            end,
            written_unix_ms,
        });
        self.data.extend_from_slice(data);
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// No record at all.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Acknowledge up to here to consume the whole batch.
    pub fn end(&self) -> Option<Position> {
        self.records.last().map(|r| r.end)
    }

    /// Record `i`'s bytes.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let r = self.records.get(i)?;
        self.data.get(r.start..r.start + r.len)
    }

    /// Every record's bytes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.records
            .iter()
            .map(|r| self.data.get(r.start..r.start + r.len).unwrap_or_default())
    }
}

/// What recovery and reading found wrong (cumulative).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Damage {
    /// Damaged records skipped (each run of bad bytes counts as one).
    pub corrupt_records: u64,
    /// Bytes skipped with them.
    pub corrupt_bytes: u64,
    /// Bytes of a torn last record cut off at open.
    pub torn_tail_bytes: u64,
}

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Stored.
    Stored,
    /// Stored after deleting the oldest segment, which held this many unacknowledged records.
    StoredDroppingOldest(u64),
    /// Not stored: the queue is full (`DropNewest`), or the record is larger than allowed.
    Refused,
}

#[derive(Clone, Debug, Default)]
struct Segment {
    bytes: u64,
    records: u64,
    /// Records in it behind the ack position (only for the oldest segment).
    acked: u64,
}

/// The queue.
#[derive(Debug)]
pub struct DiskQueue {
    dir: PathBuf,
    cfg: Config,
    segments: BTreeMap<u64, Segment>,
    writer: Option<(u64, File)>,
    /// The writer segment's newest bytes, from offset `pending_at` on: the first `written` of
    /// them are in the file, the rest not yet. A reader that keeps up is served from here
    /// instead of reading the file back (no copy out of the page cache, no second CRC pass).
    pending: Vec<u8>,
    /// Offset in the writer segment of `pending[0]`.
    pending_at: u64,
    /// Where each record in `pending` starts, its data's length and time, in order: a reader
    /// that keeps up finds its records here without touching their headers (which the writer's
    /// core wrote: each a cache miss the reader would wait for, where its later pass over the
    /// data streams).
    pending_records: Vec<TailRecord>,
    /// How much of `pending` is written.
    written: usize,
    /// Records read back from the file rather than from `pending` (for tests).
    records_from_file: u64,
    read: Position,
    ack: Position,
    damage: Damage,
    total_bytes: u64,
    /// Ends of records read and not yet acknowledged, oldest first.
    inflight: VecDeque<Position>,
    /// Records appended and not yet read (for batching decisions).
    unread_records: u64,
    /// Their bytes (approximate after a rewind).
    unread_bytes: u64,
    /// The segment being read, kept open between reads.
    reader: Option<(u64, File)>,
    /// Read buffer, reused: a fresh zeroed one per read cost more than the read (page faults).
    read_buf: Vec<u8>,
    /// The ack file, once this run has written it (see [`ACK_SLOT`]).
    ack_file: Option<File>,
    /// The batch [`read`](Self::read) reads into, kept with its memory.
    read_scratch: ReadBatch,
    /// Sequence of the ack slot written last.
    ack_sequence: u64,
}

/// A summary for `weir buffer inspect` and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Segment files.
    pub segments: usize,
    /// Records not yet acknowledged.
    pub records: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Append time of the oldest unacknowledged record (Unix ms).
    pub oldest_unix_ms: Option<u64>,
    /// Damage found.
    pub damage: Damage,
}

impl DiskQueue {
    /// Open (or create) the queue in `dir`, checking every record.
    pub fn open(dir: &Path, cfg: Config) -> io::Result<DiskQueue> {
        fs::create_dir_all(dir)?;
        let mut q = DiskQueue::open_inner(dir, cfg, true)?;
        // The ack file now, while there is room: later acknowledgements rewrite it in place and
        // need no new block, so they go on when the disk fills up. (If even this fails, the
        // first acknowledgement tries again.)
        let _ = q.ensure_ack_file();
        Ok(q)
    }

    /// Check the queue in `dir` without changing anything (no repair, no deletion): for
    /// `weir buffer inspect`, also while the receiver runs.
    pub fn inspect(dir: &Path) -> io::Result<(Summary, Position)> {
        if !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not a directory", dir.display()),
            ));
        }
        let cfg = Config {
            max_bytes: u64::MAX,
            segment_bytes: u64::MAX,
            overflow: Overflow::DropNewest,
        };
        let q = DiskQueue::open_inner(dir, cfg, false)?;
        let ack = q.ack;
        let summary = Summary {
            segments: q.segments.len(),
            records: q.records(),
            bytes: q.bytes(),
            oldest_unix_ms: q.oldest_unacked()?,
            damage: q.damage.clone(),
        };
        Ok((summary, ack))
    }

    fn open_inner(dir: &Path, cfg: Config, repair: bool) -> io::Result<DiskQueue> {
        let mut q = DiskQueue {
            dir: dir.to_path_buf(),
            cfg,
            segments: BTreeMap::new(),
            writer: None,
            pending: Vec::new(),
            pending_at: 0,
            pending_records: Vec::new(),
            written: 0,
            records_from_file: 0,
            read: Position::default(),
            ack: Position::default(),
            damage: Damage::default(),
            total_bytes: 0,
            inflight: VecDeque::new(),
            unread_records: 0,
            unread_bytes: 0,
            reader: None,
            read_buf: Vec::new(),
            ack_file: None,
            ack_sequence: 0,
            read_scratch: ReadBatch::default(),
        };
        let mut numbers: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(&format!(".{SUFFIX}"))?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        (q.ack, q.ack_sequence) = read_ack(dir).unwrap_or_default();
        let last = numbers.last().copied();
        for n in numbers {
            if n < q.ack.segment {
                // Wholly acknowledged; a crash came between the ack and the delete.
                if repair {
                    let _ = fs::remove_file(q.segment_path(n));
                }
                continue;
            }
            let path = q.segment_path(n);
            let data = fs::read(&path)?;
            let mut seg = Segment {
                bytes: data.len() as u64,
                ..Segment::default()
            };
            let mut at = 0usize;
            let mut valid_end = 0usize;
            while at < data.len() {
                match parse(&data, at) {
                    Parsed::Record { end, .. } => {
                        seg.records += 1;
                        if n == q.ack.segment && (end as u64) <= q.ack.offset {
                            seg.acked += 1;
                        }
                        at = end;
                        valid_end = end;
                    }
                    Parsed::Incomplete => break,
                    Parsed::Corrupt { skip_to } => match skip_to {
                        Some(next) => {
                            q.damage.corrupt_records += 1;
                            q.damage.corrupt_bytes += (next - at) as u64;
                            at = next;
                            valid_end = next;
                        }
                        None => break,
                    },
                }
            }
            if valid_end < data.len() {
                if Some(n) == last {
                    // A torn append: cut it so new records follow the last good one.
                    q.damage.torn_tail_bytes += (data.len() - valid_end) as u64;
                    if repair {
                        let f = OpenOptions::new().write(true).open(&path)?;
                        f.set_len(valid_end as u64)?;
                    }
                    seg.bytes = valid_end as u64;
                } else {
                    q.damage.corrupt_records += 1;
                    q.damage.corrupt_bytes += (data.len() - valid_end) as u64;
                }
            }
            q.total_bytes += seg.bytes;
            q.segments.insert(n, seg);
        }
        let first = q.segments.keys().next().copied();
        q.ack = match first {
            Some(f) if f > q.ack.segment => Position {
                segment: f,
                offset: 0,
            },
            Some(_) => q.ack,
            None => Position {
                segment: q.ack.segment.max(1),
                offset: 0,
            },
        };
        q.read = q.ack;
        q.unread_records = q.records();
        q.unread_bytes = q.total_bytes;
        Ok(q)
    }

    fn segment_path(&self, n: u64) -> PathBuf {
        self.dir.join(format!("{n:020}.{SUFFIX}"))
    }

    /// Append one record (buffered until [`flush`](Self::flush) or a read).
    pub fn append(&mut self, data: &[u8], now_unix_ms: u64) -> io::Result<Appended> {
        let size = (RECORD_HEADER + data.len()) as u64;
        if data.len() > MAX_RECORD || size > self.cfg.max_bytes {
            return Ok(Appended::Refused);
        }
        let mut dropped = None;
        while self.total_bytes + self.unwritten() + size > self.cfg.max_bytes {
            match self.cfg.overflow {
                Overflow::DropNewest => return Ok(Appended::Refused),
                Overflow::DropOldest => {
                    let Some(n) = self.drop_oldest()? else {
                        return Ok(Appended::Refused);
                    };
                    *dropped.get_or_insert(0) += n;
                }
            }
        }
        let writer_full = self.writer.as_ref().is_some_and(|(n, _)| {
            self.segments.get(n).map_or(0, |s| s.bytes) + self.unwritten() >= self.cfg.segment_bytes
        });
        if self.writer.is_none() || writer_full {
            self.roll()?;
        }
        // Hand what is buffered to the OS first: if that fails (a full disk), this record is
        // not taken, so the caller counts exactly what was refused, and memory stays bounded.
        if self.unwritten() >= FLUSH_AT {
            self.flush()?;
        }
        let len = data.len() as u32;
        let mut crc = crc32c::crc32c(&len.to_le_bytes());
        crc = crc32c::crc32c_append(crc, &now_unix_ms.to_le_bytes());
        crc = crc32c::crc32c_append(crc, data);
        self.pending_records.push(TailRecord {
            at: self.pending.len(),
            len: data.len(),
            time: now_unix_ms,
        });
        self.pending.extend_from_slice(&MAGIC);
        self.pending.extend_from_slice(&len.to_le_bytes());
        self.pending.extend_from_slice(&now_unix_ms.to_le_bytes());
        self.pending.extend_from_slice(&crc.to_le_bytes());
        self.pending.extend_from_slice(data);
        if let Some((n, _)) = &self.writer {
            if let Some(seg) = self.segments.get_mut(n) {
                seg.records += 1;
            }
        }
        self.unread_records += 1;
        self.unread_bytes += data.len() as u64;
        Ok(match dropped {
            Some(n) => Appended::StoredDroppingOldest(n),
            None => Appended::Stored,
        })
    }

    /// Appended bytes not yet written to the file.
    fn unwritten(&self) -> u64 {
        (self.pending.len() - self.written) as u64
    }

    /// Hand appended records to the OS (they survive a crash of this process from here on).
    pub fn flush(&mut self) -> io::Result<()> {
        let fresh = self.pending.get(self.written..).unwrap_or_default();
        if fresh.is_empty() {
            return Ok(());
        }
        if let Some((n, file)) = &mut self.writer {
            if let Err(e) = file.write_all(fresh) {
                // A full disk takes part of the bytes: cut them off again, so that the file
                // ends where the segment's records do and the next flush writes them whole.
                let known = self.segments.get(n).map_or(0, |s| s.bytes);
                let _ = file.set_len(known);
                // When everything written is acknowledged, this segment's space is ours to
                // give back: start a fresh segment with what waits (else a disk filled by
                // delivered events would stay full for ever).
                if self.recycle_writer()? {
                    return self.flush();
                }
                return Err(e);
            }
            if let Some(seg) = self.segments.get_mut(n) {
                seg.bytes += fresh.len() as u64;
            }
            self.total_bytes += fresh.len() as u64;
        }
        self.written = self.pending.len();
        if self.pending.len() > MAX_TAIL {
            self.trim_tail();
        }
        Ok(())
    }

    /// Keep no more than [`MAX_TAIL`] in memory: drop what the reader is past (moving the
    /// unread rest to the front costs less than reading it back from the file), or all of it
    /// when the reader is far behind and reads the file anyway.
    fn trim_tail(&mut self) {
        let reading_here = self.writer.as_ref().map(|(n, _)| *n) == Some(self.read.segment)
            && self.read.offset >= self.pending_at;
        let read = (self.read.offset.saturating_sub(self.pending_at) as usize).min(self.written);
        if reading_here && self.pending.len() - read <= MAX_TAIL / 4 {
            self.pending.drain(..read);
            self.pending_at += read as u64;
            let gone = self.pending_records.partition_point(|r| r.at < read);
            self.shift_tail_records(gone, read);
            self.written -= read;
        } else {
            self.forget_tail();
        }
    }

    /// The first `records` of the tail and its first `bytes` are gone: forget those records,
    /// and the rest now start `bytes` earlier.
    fn shift_tail_records(&mut self, records: usize, bytes: usize) {
        self.pending_records.drain(..records);
        for r in &mut self.pending_records {
            r.at -= bytes;
        }
    }

    /// If every record written to the writer segment is acknowledged (and it holds some),
    /// replace it by a fresh segment holding the records not yet written: the old file is
    /// emptied first (its space back), then the new one made and the old one deleted.
    fn recycle_writer(&mut self) -> io::Result<bool> {
        let Some((n, _)) = &self.writer else {
            return Ok(false);
        };
        let n = *n;
        let Some(seg) = self.segments.get(&n) else {
            return Ok(false);
        };
        let end = Position {
            segment: n,
            offset: seg.bytes,
        };
        if seg.bytes == 0 || self.ack != end || self.read != end || !self.inflight.is_empty() {
            return Ok(false);
        }
        let old_bytes = seg.bytes;
        let written = self.written;
        let gone = self.pending_records.partition_point(|r| r.at < written);
        let waiting = self.pending_records.len() - gone;
        if let Some((_, file)) = &self.writer {
            file.set_len(0)?;
        }
        let next = n + 1;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.segment_path(next))?;
        let _ = fs::remove_file(self.segment_path(n));
        self.segments.remove(&n);
        self.total_bytes -= old_bytes;
        self.segments.insert(
            next,
            Segment {
                bytes: 0,
                records: waiting as u64,
                acked: 0,
            },
        );
        self.writer = Some((next, file));
        // The tail keeps only what was not written, now at the start of the new segment.
        self.pending.drain(..written);
        self.shift_tail_records(gone, written);
        self.pending_at = 0;
        self.written = 0;
        self.read = Position {
            segment: next,
            offset: 0,
        };
        self.ack = self.read;
        let _ = self.write_ack(self.ack);
        Ok(true)
    }

    /// Drop the in-memory copy of the writer segment's tail (all of it written).
    fn forget_tail(&mut self) {
        self.pending_at += self.pending.len() as u64;
        self.pending.clear();
        self.pending_records.clear();
        self.written = 0;
    }

    /// Make everything flushed durable against power loss too (`fdatasync`).
    pub fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        if let Some((_, file)) = &self.writer {
            file.sync_data()?;
        }
        Ok(())
    }

    fn roll(&mut self) -> io::Result<()> {
        self.flush()?;
        // The segment being closed reaches the disk before the next one exists: a sync of the
        // writer then covers every record before it.
        if let Some((_, file)) = &self.writer {
            file.sync_data()?;
        }
        let next = self
            .segments
            .keys()
            .next_back()
            .map_or(self.ack.segment.max(1), |n| n + 1);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.segment_path(next))?;
        // Its name too (the directory entry), or a power loss may forget the file.
        File::open(&self.dir)?.sync_all()?;
        self.segments.insert(next, Segment::default());
        self.writer = Some((next, file));
        self.pending.clear();
        self.pending_records.clear();
        self.pending_at = 0;
        self.written = 0;
        Ok(())
    }

    /// Delete the oldest segment; returns the unacknowledged records it held, or None if it is
    /// the one being written and holds nothing to give up.
    fn drop_oldest(&mut self) -> io::Result<Option<u64>> {
        self.flush()?;
        let Some((&n, seg)) = self.segments.iter().next() else {
            return Ok(None);
        };
        let lost = seg.records - seg.acked;
        if self.writer.as_ref().is_some_and(|(w, _)| *w == n) {
            if seg.bytes == 0 {
                return Ok(None);
            }
            self.writer = None; // the next append starts a new segment
        }
        let bytes = seg.bytes;
        if self.writer.is_none() {
            self.forget_tail();
        }
        self.segments.remove(&n);
        let before = self.inflight.len();
        self.inflight.retain(|p| p.segment != n);
        let read_in_segment = (before - self.inflight.len()) as u64;
        let unread_lost = if self.read.segment > n {
            0
        } else {
            lost.saturating_sub(read_in_segment)
        };
        self.unread_records = self.unread_records.saturating_sub(unread_lost);
        self.unread_bytes = self.unread_bytes.saturating_sub(bytes);
        fs::remove_file(self.segment_path(n))?;
        self.total_bytes -= bytes;
        let next = Position {
            segment: self.segments.keys().next().copied().unwrap_or(n + 1),
            offset: 0,
        };
        if self.ack < next {
            self.ack = next;
            self.write_ack(self.ack)?;
        }
        if self.read < next {
            self.read = next;
        }
        Ok(Some(lost))
    }

    /// Up to `max_records` records (and about `max_bytes`) from the read cursor on; they stay
    /// in the queue until acknowledged.
    pub fn read(&mut self, max_records: usize, max_bytes: usize) -> io::Result<Vec<Record>> {
        // Through a batch kept for this: the tail's buffer and the batch's trade places, so
        // both keep their memory from one read to the next.
        let mut batch = std::mem::take(&mut self.read_scratch);
        let read = self.read_batch_into(&mut batch, max_records, max_bytes);
        let records = batch
            .records
            .iter()
            .map(|r| Record {
                end: r.end,
                written_unix_ms: r.written_unix_ms,
                data: batch
                    .data
                    .get(r.start..r.start + r.len)
                    .unwrap_or_default()
                    .to_vec(),
            })
            .collect();
        self.read_scratch = batch;
        read.map(|()| records)
    }

    /// [`read`](Self::read), with the records' bytes in one buffer (no allocation per record).
    pub fn read_batch(&mut self, max_records: usize, max_bytes: usize) -> io::Result<ReadBatch> {
        let mut out = ReadBatch::default();
        self.read_batch_into(&mut out, max_records, max_bytes)?;
        Ok(out)
    }

    /// [`read_batch`](Self::read_batch) into `out`, emptied first (its memory is reused).
    pub fn read_batch_into(
        &mut self,
        out: &mut ReadBatch,
        max_records: usize,
        max_bytes: usize,
    ) -> io::Result<()> {
        // A flush that fails (a full disk) must not stop delivery of what is on disk: records
        // still only in memory are read once a later flush has written them.
        let _ = self.flush();
        out.data.clear();
        out.records.clear();
        let mut taken = 0usize;
        while out.len() < max_records && taken < max_bytes {
            let Some(seg) = self.segments.get(&self.read.segment) else {
                // Move to the next segment, if any.
                match self.segments.range(self.read.segment + 1..).next() {
                    Some((&n, _)) => {
                        self.read = Position {
                            segment: n,
                            offset: 0,
                        };
                        continue;
                    }
                    None => break,
                }
            };
            let limit = seg.bytes;
            if self.read.offset >= limit {
                match self.segments.range(self.read.segment + 1..).next() {
                    Some((&n, _)) => {
                        self.read = Position {
                            segment: n,
                            offset: 0,
                        };
                        continue;
                    }
                    None => break,
                }
            }
            if self.writer.as_ref().map(|(n, _)| *n) == Some(self.read.segment)
                && self.read.offset >= self.pending_at
            {
                // The tail this queue wrote and still holds: no file read, no CRC pass.
                let first = (self.read.offset - self.pending_at) as usize;
                let taken_before = out.len();
                let mut at = first;
                let from = self.pending_records.partition_point(|r| r.at < first);
                let mut upto = from;
                for r in self.pending_records.get(from..).unwrap_or_default() {
                    let end = r.at + RECORD_HEADER + r.len;
                    if end > self.written || out.len() >= max_records || taken >= max_bytes {
                        break;
                    }
                    let end_at = Position {
                        segment: self.read.segment,
                        offset: self.pending_at + end as u64,
                    };
                    taken += r.len;
                    // Where the data lies in the tail for now.
                    out.records.push(BatchRecord {
                        start: r.at + RECORD_HEADER,
                        len: r.len,
                        end: end_at,
                        written_unix_ms: r.time,
                    });
                    self.inflight.push_back(end_at);
                    at = end;
                    upto += 1;
                }
                self.read.offset = self.pending_at + at as u64;
                let leftover = self.written - at;
                // Records appended but not yet written (a flush that failed on a full disk)
                // stay in the tail whatever the reader takes.
                let all_written = self.written == self.pending.len();
                if all_written && taken_before == 0 && out.data.is_empty() && leftover <= at - first
                {
                    // The batch takes the tail's buffer itself, not a copy of it: the records
                    // stay where they were framed, and the batch's old buffer becomes the tail.
                    // What the batch leaves (less than it takes) is moved over.
                    let mut tail = std::mem::take(&mut out.data);
                    std::mem::swap(&mut tail, &mut self.pending);
                    out.data = tail;
                    self.pending
                        .extend_from_slice(out.data.get(at..self.written).unwrap_or_default());
                    self.written = self.pending.len();
                    self.pending_at += at as u64;
                    self.shift_tail_records(upto, at);
                } else {
                    // A reader far behind (or a batch begun from the file): copy the records out.
                    for r in out.records.iter_mut().skip(taken_before) {
                        let data = self.pending.get(r.start..r.start + r.len);
                        r.start = out.data.len();
                        out.data.extend_from_slice(data.unwrap_or_default());
                    }
                    if at == self.written && all_written {
                        self.forget_tail();
                    }
                }
                if at == first {
                    break;
                }
                continue;
            }
            let want = (limit - self.read.offset).min((max_bytes - taken).max(64 * 1024) as u64);
            if self.reader.as_ref().map(|(n, _)| *n) != Some(self.read.segment) {
                let file = File::open(self.segment_path(self.read.segment))?;
                self.reader = Some((self.read.segment, file));
            }
            let Some((_, file)) = self.reader.as_mut() else {
                break;
            };
            let mut buf = std::mem::take(&mut self.read_buf);
            buf.clear();
            // Into the buffer's spare capacity: `read_to_end` does not zero it first.
            file.seek(SeekFrom::Start(self.read.offset))?;
            (&*file).take(want).read_to_end(&mut buf)?;
            if (buf.len() as u64) < want {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "buffer segment shorter than its records",
                ));
            }
            let file = &*file;
            let mut at = 0usize;
            let mut progressed = false;
            while at < buf.len() && out.len() < max_records && taken < max_bytes {
                match parse(&buf, at) {
                    Parsed::Record { end, time, data } => {
                        self.records_from_file += 1;
                        taken += data.len();
                        out.push(
                            data,
                            time,
                            Position {
                                segment: self.read.segment,
                                offset: self.read.offset + end as u64,
                            },
                        );
                        self.inflight.push_back(Position {
                            segment: self.read.segment,
                            offset: self.read.offset + end as u64,
                        });
                        at = end;
                        progressed = true;
                    }
                    Parsed::Incomplete if progressed => break,
                    Parsed::Incomplete => {
                        // One record larger than the read: read exactly it.
                        let need = record_len(&buf, at).unwrap_or(0);
                        if need == 0 || self.read.offset + (at + need) as u64 > limit {
                            // Cannot complete within the segment: damage at its end.
                            self.damage.corrupt_records += 1;
                            self.damage.corrupt_bytes += limit - self.read.offset - at as u64;
                            at = (limit - self.read.offset) as usize;
                            progressed = true;
                            break;
                        }
                        let mut big = vec![0u8; need];
                        file.read_exact_at(&mut big, self.read.offset + at as u64)?;
                        if let Parsed::Record { end, time, data } = parse(&big, 0) {
                            taken += data.len();
                            out.push(
                                data,
                                time,
                                Position {
                                    segment: self.read.segment,
                                    offset: self.read.offset + (at + end) as u64,
                                },
                            );
                            self.inflight.push_back(Position {
                                segment: self.read.segment,
                                offset: self.read.offset + (at + end) as u64,
                            });
                            at += end;
                        } else {
                            self.damage.corrupt_records += 1;
                            self.damage.corrupt_bytes += need as u64;
                            at += need;
                        }
                        progressed = true;
                        break;
                    }
                    Parsed::Corrupt { skip_to } => {
                        let next = skip_to.unwrap_or(buf.len());
                        self.damage.corrupt_records += 1;
                        self.damage.corrupt_bytes += (next - at) as u64;
                        at = next;
                        progressed = true;
                    }
                }
            }
            self.read.offset += at as u64;
            self.read_buf = buf;
            if !progressed {
                break;
            }
        }
        self.unread_records = self.unread_records.saturating_sub(out.len() as u64);
        self.unread_bytes = self.unread_bytes.saturating_sub(taken as u64);
        Ok(())
    }

    /// Everything up to `upto` has been delivered: persist it and delete finished segments.
    pub fn ack(&mut self, upto: Position) -> io::Result<()> {
        if upto <= self.ack {
            return Ok(());
        }
        let done: Vec<u64> = self
            .segments
            .range(..upto.segment)
            .map(|(&n, _)| n)
            .filter(|&n| self.writer.as_ref().is_none_or(|(w, _)| *w != n))
            .collect();
        for n in done {
            if let Some(seg) = self.segments.remove(&n) {
                self.total_bytes -= seg.bytes;
                fs::remove_file(self.segment_path(n))?;
            }
        }
        while let Some(&front) = self.inflight.front() {
            if front > upto {
                break;
            }
            self.inflight.pop_front();
            if let Some(seg) = self.segments.get_mut(&front.segment) {
                seg.acked += 1;
            }
        }
        self.ack = upto;
        self.write_ack(upto)
    }

    /// Rewind the read cursor to the ack position (after a failed delivery, to read the
    /// unacknowledged records again).
    pub fn rewind(&mut self) {
        self.read = self.ack;
        self.inflight.clear();
        self.unread_records = self.records();
        self.unread_bytes = self.bytes();
    }

    /// Records appended and not yet read.
    pub fn unread_records(&self) -> u64 {
        self.unread_records
    }

    /// About the bytes of those records.
    pub fn unread_bytes(&self) -> u64 {
        self.unread_bytes
    }

    /// True when nothing is left to read.
    pub fn is_drained(&self) -> bool {
        let pending = self.unwritten() == 0;
        let tail = self.segments.iter().next_back();
        pending
            && match tail {
                None => true,
                Some((&n, seg)) => {
                    self.read.segment > n
                        || (self.read.segment == n && self.read.offset >= seg.bytes)
                }
            }
    }

    /// Bytes on disk (and buffered).
    pub fn bytes(&self) -> u64 {
        self.total_bytes + self.unwritten()
    }

    /// Records appended and not yet acknowledged.
    pub fn records(&self) -> u64 {
        self.segments.values().map(|s| s.records - s.acked).sum()
    }

    /// Segments, unacknowledged records, bytes, oldest record time and damage.
    pub fn summary(&mut self) -> io::Result<Summary> {
        self.flush()?;
        Ok(Summary {
            segments: self.segments.len(),
            records: self.records(),
            bytes: self.bytes(),
            oldest_unix_ms: self.oldest_unacked()?,
            damage: self.damage.clone(),
        })
    }

    /// The append time of the first record at or after the ack position (one header read).
    fn oldest_unacked(&self) -> io::Result<Option<u64>> {
        for (&n, seg) in self.segments.range(self.ack.segment..) {
            let offset = if n == self.ack.segment {
                self.ack.offset
            } else {
                0
            };
            if offset + RECORD_HEADER as u64 > seg.bytes {
                continue;
            }
            let mut h = [0u8; RECORD_HEADER];
            File::open(self.segment_path(n))?.read_exact_at(&mut h, offset)?;
            if h[..4] == MAGIC {
                let t = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
                return Ok(Some(t));
            }
        }
        Ok(None)
    }
}

impl Drop for DiskQueue {
    /// Appended records reach the file even if the owner forgot to flush (an inspected queue
    /// never has any).
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

enum Parsed<'a> {
    Record {
        end: usize,
        time: u64,
        data: &'a [u8],
    },
    /// The buffer ends inside a record.
    Incomplete,
    /// Bad bytes at `at`; the next valid record starts at `skip_to` (None: none in the buffer).
    Corrupt { skip_to: Option<usize> },
}

/// A record of the in-memory tail: where its header starts in the tail, its data's length and
/// its append time.
#[derive(Clone, Copy, Debug)]
struct TailRecord {
    at: usize,
    len: usize,
    time: u64,
}

fn record_len(buf: &[u8], at: usize) -> Option<usize> {
    let h = buf.get(at..at + RECORD_HEADER)?;
    let len = u32::from_le_bytes(h.get(4..8)?.try_into().ok()?) as usize;
    (len <= MAX_RECORD).then_some(RECORD_HEADER + len)
}

fn parse(buf: &[u8], at: usize) -> Parsed<'_> {
    match check(buf, at) {
        Check::Ok(end, time) => Parsed::Record {
            end,
            time,
            data: buf.get(at + RECORD_HEADER..end).unwrap_or_default(),
        },
        // A record running past the end is a torn append only if no whole record follows: a
        // damaged length field must not cost the intact records behind it.
        Check::Short => match next_whole(buf, at + 1) {
            Some(cand) => Parsed::Corrupt {
                skip_to: Some(cand),
            },
            None => Parsed::Incomplete,
        },
        Check::Bad => {
            // Resynchronise: the next magic whose record checks out (or runs past the buffer).
            let mut from = at + 1;
            while let Some(i) = memchr::memmem::find(buf.get(from..).unwrap_or_default(), &MAGIC) {
                let cand = from + i;
                match check(buf, cand) {
                    Check::Ok(..) | Check::Short => {
                        return Parsed::Corrupt {
                            skip_to: Some(cand),
                        }
                    }
                    Check::Bad => from = cand + 1,
                }
            }
            Parsed::Corrupt { skip_to: None }
        }
    }
}

/// The first offset from `from` on where a whole record checks out.
fn next_whole(buf: &[u8], mut from: usize) -> Option<usize> {
    while let Some(i) = memchr::memmem::find(buf.get(from..)?, &MAGIC) {
        let cand = from + i;
        if let Check::Ok(..) = check(buf, cand) {
            return Some(cand);
        }
        from = cand + 1;
    }
    None
}

enum Check {
    Ok(usize, u64),
    Short,
    Bad,
}

fn check(buf: &[u8], at: usize) -> Check {
    let Some(h) = buf.get(at..at + RECORD_HEADER) else {
        // A partial header that starts with (part of) the magic may be a torn append.
        let rest = buf.get(at..).unwrap_or_default();
        return if MAGIC.starts_with(rest) || rest.starts_with(&MAGIC) {
            Check::Short
        } else {
            Check::Bad
        };
    };
    if h[..4] != MAGIC {
        return Check::Bad;
    }
    let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
    if len > MAX_RECORD {
        return Check::Bad;
    }
    let time = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
    let crc = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
    let end = at + RECORD_HEADER + len;
    let Some(data) = buf.get(at + RECORD_HEADER..end) else {
        return Check::Short;
    };
    let mut c = crc32c::crc32c(&h[4..8]);
    c = crc32c::crc32c_append(c, &h[8..16]);
    c = crc32c::crc32c_append(c, data);
    if c == crc {
        Check::Ok(end, time)
    } else {
        Check::Bad
    }
}

/// The ack file: two slots of [`ACK_SLOT`] bytes, written in turn in place, each
/// `"WACK" | sequence u64 | segment u64 | offset u64 | CRC-32C of the 24 bytes before it`
/// (little-endian). The valid slot with the higher sequence is the position; a write torn by a
/// crash spoils only the slot it went to, so the other (the previous position) stands. One
/// `pwrite` per acknowledgement, where writing a new file and renaming it over the old one cost
/// a few percent of a busy receiver's CPU.
const ACK_MAGIC: [u8; 4] = *b"WACK";
const ACK_SLOT: usize = 32;

fn ack_slot(sequence: u64, p: Position) -> [u8; ACK_SLOT] {
    let mut slot = [0u8; ACK_SLOT];
    slot[..4].copy_from_slice(&ACK_MAGIC);
    slot[4..12].copy_from_slice(&sequence.to_le_bytes());
    slot[12..20].copy_from_slice(&p.segment.to_le_bytes());
    slot[20..28].copy_from_slice(&p.offset.to_le_bytes());
    let crc = crc32c::crc32c(&slot[4..28]);
    slot[28..].copy_from_slice(&crc.to_le_bytes());
    slot
}

/// The position in `bytes` (an ack file), and the sequence of the slot it came from. The file
/// is two slots, always 64 bytes: told apart by its length, not by a magic a torn write may have
/// spoilt, so the other slot still stands. Earlier versions wrote the position as text,
/// `"SEGMENT OFFSET\n"` (at most 41 bytes): read as sequence 0.
fn parse_ack(bytes: &[u8]) -> Option<(Position, u64)> {
    if bytes.len() != 2 * ACK_SLOT {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut it = text.split_whitespace();
        let p = Position {
            segment: it.next()?.parse().ok()?,
            offset: it.next()?.parse().ok()?,
        };
        return Some((p, 0));
    }
    bytes
        .chunks_exact(ACK_SLOT)
        .take(2)
        .filter_map(|slot| {
            let word = |at: usize| -> Option<u64> {
                Some(u64::from_le_bytes(slot.get(at..at + 8)?.try_into().ok()?))
            };
            let crc = u32::from_le_bytes(slot.get(28..32)?.try_into().ok()?);
            (slot.starts_with(&ACK_MAGIC) && crc32c::crc32c(slot.get(4..28)?) == crc).then_some((
                Position {
                    segment: word(12)?,
                    offset: word(20)?,
                },
                word(4)?,
            ))
        })
        .max_by_key(|(_, sequence)| *sequence)
}

fn read_ack(dir: &Path) -> Option<(Position, u64)> {
    parse_ack(&fs::read(dir.join("ack")).ok()?)
}

impl DiskQueue {
    /// Persist `p` as the ack position: in place, in the slot after the last one written; the
    /// first time in a run, as a new file with both slots renamed over the old one (which may
    /// be in the text form of an earlier version).
    /// Create the ack file (both slots holding the current position) if there is none, and keep
    /// it open when it has the two-slot layout, so that acknowledgements write in place.
    fn ensure_ack_file(&mut self) -> io::Result<()> {
        if self.ack_file.is_some() {
            return Ok(());
        }
        let path = self.dir.join("ack");
        match fs::metadata(&path) {
            Ok(m) if m.len() == 2 * ACK_SLOT as u64 => {
                self.ack_file = Some(OpenOptions::new().write(true).open(&path)?);
            }
            Ok(_) => {} // an earlier version's file: replaced at the first acknowledgement
            Err(_) => {
                let slot = ack_slot(self.ack_sequence, self.ack);
                let tmp = self.dir.join("ack.tmp");
                fs::write(&tmp, [slot, slot].concat())?;
                fs::rename(&tmp, &path)?;
                self.ack_file = Some(OpenOptions::new().write(true).open(&path)?);
            }
        }
        Ok(())
    }

    fn write_ack(&mut self, p: Position) -> io::Result<()> {
        self.ack_sequence += 1;
        let slot = ack_slot(self.ack_sequence, p);
        let at = (self.ack_sequence % 2) * ACK_SLOT as u64;
        if let Some(file) = &self.ack_file {
            return file.write_all_at(&slot, at);
        }
        let tmp = self.dir.join("ack.tmp");
        fs::write(&tmp, [slot, slot].concat())?;
        fs::rename(&tmp, self.dir.join("ack"))?;
        self.ack_file = Some(OpenOptions::new().write(true).open(self.dir.join("ack"))?);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
