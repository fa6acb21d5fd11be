/*!
The agent's on-disk spool: where events wait when the sources outpace the diode link.

```text
sources ─► queue (tx.queue_events) ─► spool stage ─┬─ link keeping up: straight on ─► diode
                                                   └─ link behind: disk (spool.path) ─┘
```

Order is kept: once anything is on disk, new events go behind it until the disk is empty.
The spool is bounded (`spool.max_bytes`); when full, `spool.overflow` drops the newest event
or the oldest segment, counts every event dropped (`events_dropped_total{reason="spool_full"}`)
and reports it as a `weir` event (`event.action = "spool-overflow"`, at most one per 10
seconds, with the count since the last one). On shutdown the spool stays on disk and is sent
first after the next start, so a restart loses nothing that reached it.

File IO runs inline on this task: appends are buffered (256 KiB) and go to the page cache.

**Positions.** Every record the spool passes on carries the spool's own position; the diode
sender reports it back once the record is on the link and the agent's session ledger says so
(`crate::ledger`). Only then is a record read from disk acknowledged there. Records whose
source waits on its position (`.evtx` bookmarks, WEF Acks) always go to disk first, even when
the link keeps up (they are read back from the tail in memory): their source hears they are
taken once they are with the OS, which a `kill -9` of the agent does not undo. After a crash,
what was read from disk and not yet acknowledged is sent again: those records may arrive
twice, never not at all.
*/

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use tokio::sync::mpsc::{self, error::TrySendError};
use tracing::{error, info, warn};
use weir_diode_proto::StreamId;
use weir_integrations::buffer::{Appended, Config, DiskQueue, Overflow, Position};
use weir_schemas::{Event, EventClass};

use crate::sources::{Record, Taken};
use crate::telemetry::{unix_ms, TxStats};

/// Spool settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SpoolConfig {
    /// Directory of the segments.
    pub path: PathBuf,
    /// Most bytes on disk.
    pub max_bytes: u64,
    /// Segment size.
    pub segment_bytes: u64,
    /// When full.
    pub overflow: Overflow,
    /// How often the spool is synced to disk (`None`: after every batch).
    pub sync_every: Option<Duration>,
}

/// How often at most an overflow is reported as a `weir` event.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The spool stage; open it before the sources start.
pub struct Spool {
    queue: DiskQueue,
    stats: Arc<TxStats>,
    /// The agent's own stream (spool reports; records of streams no longer configured).
    agent_stream: StreamId,
    /// Stream ids below this are the diode sender's (a configuration reload may add some).
    streams: Arc<std::sync::atomic::AtomicU16>,
    agent: Arc<str>,
    unreported: u64,
    last_report: Option<Instant>,
    /// The highest position passed on that the diode sender reports on the link.
    progress: Arc<AtomicU64>,
    /// Records passed on with a position so far (the last one's position).
    passed: u64,
    /// Disk positions to acknowledge once `progress` reaches a position, in order.
    disk: VecDeque<(u64, Position)>,
    /// Sources' positions of records stored and not yet handed to the OS.
    unflushed: Vec<Taken>,
    /// Sources' positions of records with the OS and not yet synced to disk.
    unsynced: Vec<Taken>,
    /// Written since the last sync.
    dirty: bool,
    synced_at: Instant,
    sync_every: Option<Duration>,
    /// Sources with a record the spool could not store: held at their position until restart.
    held_back: Vec<Arc<AtomicU64>>,
    /// When a write error was last logged: at most one line per 10 s (a full disk fails every
    /// append).
    error_logged: Option<Instant>,
}

impl Spool {
    /// Open (and check) the spool directory. `streams` is the number of diode streams the
    /// sender has (the sources' and the agent's own); `agent_stream` takes the agent's own
    /// events and spooled records of streams the sender does not have.
    pub fn open(
        cfg: &SpoolConfig,
        stats: Arc<TxStats>,
        streams: Arc<std::sync::atomic::AtomicU16>,
        agent_stream: StreamId,
        agent: Arc<str>,
    ) -> Result<Spool> {
        let queue = DiskQueue::open(
            &cfg.path,
            Config {
                max_bytes: cfg.max_bytes,
                segment_bytes: cfg.segment_bytes,
                overflow: cfg.overflow,
            },
        )
        .with_context(|| format!("cannot open spool {}", cfg.path.display()))?;
        let mut spool = Spool {
            queue,
            stats,
            agent_stream,
            streams,
            agent,
            unreported: 0,
            last_report: None,
            progress: Arc::new(AtomicU64::new(0)),
            passed: 0,
            disk: VecDeque::new(),
            unflushed: Vec::new(),
            unsynced: Vec::new(),
            dirty: false,
            synced_at: Instant::now(),
            sync_every: cfg.sync_every,
            error_logged: None,
            held_back: Vec::new(),
        };
        let s = spool.queue.summary()?;
        if s.damage.corrupt_records + s.damage.torn_tail_bytes > 0 {
            warn!(
                message = "Spool damage found and skipped.",
                corrupt_records = s.damage.corrupt_records,
                corrupt_bytes = s.damage.corrupt_bytes,
                torn_tail_bytes = s.damage.torn_tail_bytes
            );
            spool.stats.spool_corrupt.add(s.damage.corrupt_records);
        }
        if s.records > 0 {
            info!(
                message = "Spool holds events from before the restart; sending them first.",
                records = s.records,
                bytes = s.bytes
            );
        }
        spool.gauges();
        Ok(spool)
    }

    /// Run until the input closes; the spool's contents stay on disk.
    pub async fn run(mut self, mut input: mpsc::Receiver<Record>, output: mpsc::Sender<Record>) {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.settle();
            if let Err(e) = self.refill(&output) {
                error!(message = "Spool read failed.", error = %e);
            }
            let drained = self.queue.is_drained();
            tokio::select! {
                biased;
                r = input.recv() => match r {
                    Some(record) => {
                        self.take(record, &output);
                        while let Ok(record) = input.try_recv() {
                            self.take(record, &output);
                        }
                        self.flush();
                    }
                    None => break,
                },
                // Room downstream while events wait on disk.
                p = output.reserve(), if !drained => match p {
                    Ok(permit) => drop(permit),
                    Err(_) => break,
                },
                // The diode sender's progress, while something waits on it.
                _ = tick.tick(), if self.waiting() => {}
            }
            self.gauges();
        }
        // What was dropped since the last report is reported now (sent next if there is room,
        // else first after the next start).
        self.report_overflow(&output, true);
        self.flush();
        // Let what was passed on reach the link (the diode sender runs until `output` is
        // dropped), so that the disk is acknowledged and sources hear of it; bounded.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.waiting() && !output.is_closed() && Instant::now() < deadline {
            tick.tick().await;
            self.settle();
        }
        if let Err(e) = self.queue.sync() {
            error!(message = "Spool sync at shutdown failed.", error = %e);
        }
        self.gauges();
        let records = self.queue.records();
        if records > 0 {
            info!(message = "Spool kept on disk for the next start.", records);
        }
    }

    /// Something waits on the diode sender's progress or on a flush.
    fn waiting(&self) -> bool {
        !self.disk.is_empty()
            || !self.unflushed.is_empty()
            || !self.unsynced.is_empty()
            || self.dirty
    }

    /// Hand stored records to the OS, and sync them to disk as the policy says; their sources
    /// move on once a sync covers them (a bookmark or a WEF Ack never outlives the records on
    /// a power loss).
    fn flush(&mut self) {
        match self.queue.flush() {
            Ok(()) => {
                if !self.unflushed.is_empty() {
                    self.dirty = true;
                }
                self.unsynced.append(&mut self.unflushed);
                self.maybe_sync();
            }
            // The records stay in memory (bounded) and their sources wait: written by a later
            // flush once there is room.
            Err(e) => self.log_error("Spool write failed; the records wait in memory.", &e),
        }
    }

    /// Sync when the policy says so (and something was written since the last sync).
    fn maybe_sync(&mut self) {
        if !self.dirty {
            return;
        }
        let due = self
            .sync_every
            .is_none_or(|every| self.synced_at.elapsed() >= every);
        if !due {
            return;
        }
        match self.queue.sync() {
            Ok(()) => {
                self.dirty = false;
                self.synced_at = Instant::now();
                for t in self.unsynced.drain(..) {
                    t.done();
                }
            }
            Err(e) => self.log_error("Spool sync failed; the records wait.", &e),
        }
    }

    fn log_error(&mut self, message: &str, error: &std::io::Error) {
        if self
            .error_logged
            .is_none_or(|t| t.elapsed() >= REPORT_EVERY)
        {
            self.error_logged = Some(Instant::now());
            error!(message = %message, %error, note = "at most one line per 10 s");
        }
    }

    /// Act on what the diode sender has put on the link.
    fn settle(&mut self) {
        self.maybe_sync();
        let on_link = self.progress.load(Ordering::Acquire);
        let mut ack = None;
        while self.disk.front().is_some_and(|(p, _)| *p <= on_link) {
            ack = self.disk.pop_front().map(|(_, pos)| pos);
        }
        if let Some(pos) = ack {
            if let Err(e) = self.queue.ack(pos) {
                error!(message = "Spool acknowledgement failed.", error = %e);
            }
            self.gauges();
        }
    }

    /// The spool's own position for the next record passed on.
    fn next_position(&mut self) -> Taken {
        self.passed += 1;
        Taken {
            mark: self.progress.clone(),
            position: self.passed,
        }
    }

    /// One event in: straight on if nothing waits on disk and there is room, else to disk.
    /// A record whose source waits on its position (`.evtx` bookmarks, WEF Acks) always goes
    /// to disk first (read back from the tail in memory at once when the link keeps up): its
    /// source may then move on as soon as it is with the OS, and a `kill -9` of the agent
    /// repeats at most what was on the link and not yet acknowledged on disk.
    fn take(&mut self, mut record: Record, output: &mpsc::Sender<Record>) {
        let source = record.taken.take();
        if source.is_none() && self.queue.is_drained() {
            let position = self.next_position();
            record.taken = Some(position);
            match output.try_send(record) {
                Ok(()) => return,
                Err(TrySendError::Full(r)) | Err(TrySendError::Closed(r)) => {
                    self.passed -= 1;
                    record = r;
                }
            }
        }
        record.taken = None;
        let stored = self.store(&record);
        // Stored: the source may move on once it is with the OS. Not stored (spool full, disk
        // full; counted): its source is never told again in this run, so that no later record
        // carries its position past this one; it reads again from there after a restart (a
        // WEF batch is not acknowledged, and the host sends it again).
        if let Some(t) = source {
            let held_back = self.held_back.iter().any(|m| Arc::ptr_eq(m, &t.mark));
            if !stored {
                if !held_back {
                    // Marks no source holds any more (a WEF batch answered) are forgotten.
                    self.held_back.retain(|m| Arc::strong_count(m) > 1);
                    self.held_back.push(t.mark.clone());
                }
            } else if !held_back {
                match self.unflushed.last_mut() {
                    Some(last) if Arc::ptr_eq(&last.mark, &t.mark) => *last = t,
                    _ => self.unflushed.push(t),
                }
            }
        }
        self.report_overflow(output, false);
    }

    /// Append one record; false when it was not stored (counted).
    fn store(&mut self, record: &Record) -> bool {
        let mut buf = Vec::with_capacity(3 + record.payload.len());
        buf.extend_from_slice(&record.stream.0.to_be_bytes());
        buf.push(class_code(record.class));
        buf.extend_from_slice(&record.payload);
        match self.queue.append(&buf, unix_ms()) {
            Ok(Appended::Stored) => {
                self.stats.spooled.inc();
                self.dirty = true;
                true
            }
            Ok(Appended::StoredDroppingOldest(n)) => {
                self.stats.spooled.inc();
                self.dirty = true;
                self.stats.dropped_spool_full.add(n);
                self.unreported += n;
                true
            }
            Ok(Appended::Refused) => {
                self.stats.dropped_spool_full.inc();
                self.unreported += 1;
                false
            }
            Err(e) => {
                // Not taken (a full disk): counted once, never also kept.
                self.stats.dropped_spool_error.inc();
                self.log_error("Spool write failed; event dropped.", &e);
                false
            }
        }
    }

    /// Move events from disk downstream while there is room.
    fn refill(&mut self, output: &mpsc::Sender<Record>) -> std::io::Result<()> {
        while !self.queue.is_drained() {
            let room = output.capacity();
            if room == 0 {
                break;
            }
            let batch = self.queue.read(room, 4 << 20)?;
            let Some(last) = batch.last().map(|r| r.end) else {
                break;
            };
            for r in batch {
                match self.decode(&r.data) {
                    Some(mut record) => {
                        record.taken = Some(self.next_position());
                        if output.try_send(record).is_err() {
                            // Room was reserved above; only a closed channel gets here.
                            self.queue.rewind();
                            return Ok(());
                        }
                    }
                    None => self.stats.spool_corrupt.inc(),
                }
            }
            // Acknowledged on disk once the diode sender has it on the link.
            self.disk.push_back((self.passed, last));
        }
        Ok(())
    }

    fn decode(&self, data: &[u8]) -> Option<Record> {
        let stream = u16::from_be_bytes([*data.first()?, *data.get(1)?]);
        let class = class_of(*data.get(2)?)?;
        let json = data.get(3..)?;
        let known = self.streams.load(std::sync::atomic::Ordering::Acquire);
        let stream = if stream < known || stream == self.agent_stream.0 {
            StreamId(stream)
        } else {
            self.agent_stream
        };
        Some(Record {
            stream,
            class,
            payload: bytes::Bytes::copy_from_slice(json),
            taken: None,
        })
    }

    /// At most one `spool-overflow` event per [`REPORT_EVERY`], carrying the count since the
    /// last one (it goes behind what is queued, like any event).
    fn report_overflow(&mut self, output: &mpsc::Sender<Record>, now: bool) {
        if self.unreported == 0
            || (!now && self.last_report.is_some_and(|t| t.elapsed() < REPORT_EVERY))
        {
            return;
        }
        let n = self.unreported;
        let mut e = Event::new(EventClass::Weir, Utc::now());
        e.event.kind = "event".into();
        e.event.action = Some("spool-overflow".into());
        e.event.dataset = Some("weir.agent".into());
        e.event.outcome = Some("failure".into());
        e.message = Some(format!(
            "Agent spool full: {n} event(s) dropped since the last report (the diode link is slower than the sources)."
        ));
        e.weir.agent = Some(self.agent.to_string());
        e.weir.stream = Some("agent".into());
        e.weir.dropped = Some(n);
        let record = Record {
            stream: self.agent_stream,
            class: EventClass::Weir,
            payload: weir_integrations::envelope::agent_record(&e).into(),
            taken: None,
        };
        // Behind everything on disk, like any event; if even that fails it stays unreported.
        let stored = if self.queue.is_drained() {
            output.try_send(record).is_ok()
        } else {
            let mut buf = Vec::new();
            buf.extend_from_slice(&self.agent_stream.0.to_be_bytes());
            buf.push(class_code(EventClass::Weir));
            buf.extend_from_slice(&record.payload);
            matches!(
                self.queue.append(&buf, unix_ms()),
                Ok(Appended::Stored | Appended::StoredDroppingOldest(_))
            )
        };
        if stored {
            self.unreported = 0;
            self.last_report = Some(Instant::now());
            warn!(message = "Spool full; events dropped.", dropped = n);
        }
    }

    fn gauges(&self) {
        self.stats.spool_bytes.set(self.queue.bytes());
        self.stats.spool_records.set(self.queue.records());
    }
}

fn class_code(c: EventClass) -> u8 {
    EventClass::ALL
        .iter()
        .position(|x| *x == c)
        .map_or(0, |i| i as u8)
}

fn class_of(code: u8) -> Option<EventClass> {
    EventClass::ALL.get(usize::from(code)).copied()
}
