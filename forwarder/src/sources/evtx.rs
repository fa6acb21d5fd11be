/*!
`.evtx` files in a watched directory: Windows event logs copied off hosts that take no agent
(a USB stick from an HMI, a scheduled `wevtutil epl` export to a share, Windows Event
Collector archives).

Every `poll_interval`, each `*.evtx` file in the directory whose size or modification time
changed is read chunk by chunk in record order (a log that has wrapped around is read from
its oldest chunk), records at or below the file's bookmark skipped without rendering, and each
newer record rendered to XML by the `evtx` crate and mapped like any Windows event
(`weir_parsers::windows`).

**Rendering.** Records are rendered as Windows itself renders them (`EvtRender`, `wevtutil qe
/f:xml`, Windows Event Forwarding): one line, no indentation and no `<?xml?>` declaration, so
`event.original` is what the Splunk Windows add-on expects of `XmlWinEventLog` and what a WEF
feed of the same host would have carried. (It is also 11 % shorter to render, parse and
escape than the `evtx` crate's indented default.)

**Bookmarks.** Per file name, the last record id sent, in `STATE_DIR/<source>.bookmarks.json`
(written synced and renamed into place). A record counts as sent once its block is on the link
and the agent's session ledger says so, or once it is with the OS in the spool (see
`crate::ledger`), so a restart, even after `kill -9` or a power loss, never skips a record;
after `kill -9` the records taken since the last save (at most [`SAVE_INTERVAL`]'s worth) are
sent again. A graceful stop waits for
the queue to drain and saves, so it repeats nothing. A file whose highest record id is below
its bookmark was cleared or replaced: it is read from its start. Records overwritten in a
wrapped log before they were read show as a gap after the bookmark and are counted
(`evtx_records_missed_total`) and reported in a `weir` event.

**Damage.** A chunk that cannot be read (bad magic, bad checksum) is skipped and counted
(`evtx_chunks_damaged_total`); so is a record that cannot be rendered
(`evtx_records_damaged_total`). The rest of the file is read.
*/

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use weir_diode_proto::StreamId;
use weir_parsers::windows::{self, WinContext};
use weir_schemas::{Event, EventClass};

use super::{Record, Taken};

/// Bookmarks are saved at most this often while records are taken (each save is synced).
pub const SAVE_INTERVAL: Duration = Duration::from_millis(250);
use crate::config::EvtxSource;
use crate::telemetry::TxStats;

/// What the source needs.
#[derive(Clone)]
pub struct EvtxContext {
    /// Settings.
    pub cfg: EvtxSource,
    /// The agent's name.
    pub agent: Arc<str>,
    /// Its diode stream.
    pub stream: StreamId,
    /// Where records go.
    pub queue: mpsc::Sender<Record>,
    /// Counters.
    pub stats: Arc<TxStats>,
}

/// One file's bookmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bookmark {
    /// The last record id sent.
    pub last_record_id: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct BookmarkFile {
    files: BTreeMap<String, Bookmark>,
}

/// The bookmark file of a source.
pub fn bookmark_path(cfg: &EvtxSource) -> PathBuf {
    cfg.state_dir.join(format!("{}.bookmarks.json", cfg.name))
}

/// The saved bookmarks, and a note when the file was damaged (moved aside; every file is then
/// read from its start: records may come twice, none is skipped).
fn load(path: &Path) -> Result<(BTreeMap<String, Bookmark>, Option<String>)> {
    let parse = |b: &[u8]| serde_json::from_slice::<BookmarkFile>(b).ok();
    match crate::durable::load(path, parse)
        .with_context(|| format!("cannot read {}", path.display()))?
    {
        crate::durable::Loaded::Missing => Ok((BTreeMap::new(), None)),
        crate::durable::Loaded::Read(f) => Ok((f.files, None)),
        crate::durable::Loaded::SetAside { moved_to, bytes } => {
            let note = format!(
                "The bookmark file {} was damaged ({bytes} bytes; a power loss or a full disk can leave it so) and was moved to {}. Every .evtx file is read from its start: records may arrive twice, none is skipped.",
                path.display(),
                moved_to.display()
            );
            warn!(message = "evtx bookmark file damaged; moved aside, reading every file from its start.", path = %path.display(), moved_to = %moved_to.display());
            Ok((BTreeMap::new(), Some(note)))
        }
    }
}

fn save(path: &Path, files: &BTreeMap<String, Bookmark>) -> Result<()> {
    let body = serde_json::to_vec_pretty(&BookmarkFile {
        files: files.clone(),
    })?;
    crate::durable::write_synced(path, &body)
        .with_context(|| format!("cannot replace {}", path.display()))
}

/// Check the directories and the bookmark file before starting.
pub fn prepare(cfg: &EvtxSource) -> Result<()> {
    if !cfg.directory.is_dir() {
        anyhow::bail!(
            "source {}: {} is not a directory",
            cfg.name,
            cfg.directory.display()
        );
    }
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("cannot create {}", cfg.state_dir.display()))?;
    Ok(())
}

/// Run until cancelled (on a blocking thread: rendering `.evtx` is CPU work).
pub async fn run(ctx: EvtxContext, cancel: CancellationToken) {
    let name = ctx.cfg.name.clone();
    let result = tokio::task::spawn_blocking(move || Watcher::new(ctx)?.run(&cancel)).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            warn!(message = "evtx source stopped.", source = %name, error = %format!("{error:#}"))
        }
        Err(error) => warn!(message = "evtx source failed.", source = %name, %error),
    }
}

/// Read every `.evtx` file in `ctx.cfg.directory` once, as the source does (panics of the
/// parser caught per file); returns how many records were queued. For the `evtx_directory`
/// fuzz target: `ctx.queue` must have room for them all.
#[doc(hidden)]
pub fn scan_once(ctx: EvtxContext) -> Result<u64> {
    let mut w = Watcher::new(ctx)?;
    w.scan(&CancellationToken::new())?;
    Ok(w.position)
}

/// How records are rendered: compact, as Windows renders them (see the module notes).
pub fn settings() -> evtx::ParserSettings {
    evtx::ParserSettings::default().indent(false)
}

/// Map one record the `evtx` crate rendered (`windows::rendered_record_event`: the record
/// header's id and time fill in for a damaged template's, `event.original` is the event element
/// without the crate's `<?xml?>` declaration).
pub fn record_event(record: evtx::SerializedEvtxRecord<String>, wctx: &WinContext) -> Event {
    let time = chrono::DateTime::from_timestamp(
        record.timestamp.as_second(),
        u32::try_from(record.timestamp.subsec_nanosecond()).unwrap_or(0),
    );
    windows::rendered_record_event(record.data, record.event_record_id, time, wctx)
}

struct Watcher {
    ctx: EvtxContext,
    path: PathBuf,
    /// Saved (and committed) bookmarks.
    saved: BTreeMap<String, Bookmark>,
    /// Bookmarks as far as records were queued.
    queued: BTreeMap<String, Bookmark>,
    /// (position, file, record id) queued and not yet known to be taken.
    pending: VecDeque<(u64, String, u64)>,
    position: u64,
    mark: Arc<AtomicU64>,
    /// (size, mtime) of each file when last read.
    seen: BTreeMap<String, (u64, Option<SystemTime>)>,
    /// The bookmark file was damaged at start: reported once as a `weir` event.
    damaged: Option<String>,
    last_save: Instant,
    /// Saved bookmarks moved since the last write.
    dirty: bool,
}

impl Watcher {
    fn new(ctx: EvtxContext) -> Result<Watcher> {
        let path = bookmark_path(&ctx.cfg);
        let (saved, damaged) = load(&path)?;
        Ok(Watcher {
            damaged,
            queued: saved.clone(),
            saved,
            path,
            pending: VecDeque::new(),
            position: 0,
            mark: Arc::new(AtomicU64::new(0)),
            seen: BTreeMap::new(),
            last_save: Instant::now(),
            dirty: false,
            ctx,
        })
    }

    fn run(mut self, cancel: &CancellationToken) -> Result<()> {
        info!(message = "evtx source watching.", source = %self.ctx.cfg.name, directory = %self.ctx.cfg.directory.display());
        if let Some(note) = self.damaged.take() {
            let mut e = Event::new(EventClass::Weir, Utc::now());
            e.event.action = Some("state-file-damaged".into());
            e.event.dataset = Some("weir.agent".into());
            e.event.outcome = Some("failure".into());
            e.message = Some(note);
            self.send(e, None)?;
        }
        while !cancel.is_cancelled() {
            self.scan(cancel)?;
            self.commit(false)?;
            let until = Instant::now() + self.ctx.cfg.poll_interval;
            while Instant::now() < until && !cancel.is_cancelled() {
                std::thread::sleep(Duration::from_millis(50).min(self.ctx.cfg.poll_interval));
                self.commit(false)?;
            }
        }
        // Let the diode take what is queued (it drains while we still hold the queue), then
        // save: a graceful restart repeats nothing.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.mark.load(Ordering::Acquire) < self.position && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.commit(true)
    }

    /// Move the saved bookmarks up to what the diode has taken; write them at most once a
    /// second (or now).
    fn commit(&mut self, now: bool) -> Result<()> {
        let taken = self.mark.load(Ordering::Acquire);
        let mut changed = false;
        while let Some((pos, _, _)) = self.pending.front() {
            if *pos > taken {
                break;
            }
            if let Some((_, file, id)) = self.pending.pop_front() {
                if !file.is_empty() {
                    self.saved.insert(file, Bookmark { last_record_id: id });
                    changed = true;
                }
            }
        }
        self.dirty |= changed;
        if now || (self.dirty && self.last_save.elapsed() >= SAVE_INTERVAL) {
            save(&self.path, &self.saved)?;
            self.last_save = Instant::now();
            self.dirty = false;
        }
        Ok(())
    }

    fn scan(&mut self, cancel: &CancellationToken) -> Result<()> {
        let dir = &self.ctx.cfg.directory;
        let mut files: Vec<(String, PathBuf, u64, Option<SystemTime>)> = Vec::new();
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let is_evtx = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("evtx"));
            let Ok(meta) = entry.metadata() else { continue };
            if !is_evtx || !meta.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            files.push((name, path, meta.len(), meta.modified().ok()));
        }
        files.sort();
        for (name, path, size, mtime) in files {
            if cancel.is_cancelled() {
                break;
            }
            if self.seen.get(&name) == Some(&(size, mtime)) {
                continue;
            }
            // The third-party parser may panic on a crafted or damaged file: that file is given
            // up (until it changes), counted and reported; the source goes on with the others.
            let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.read_file(&name, &path, cancel)
            }));
            match read {
                Ok(done) => {
                    if done? {
                        self.seen.insert(name, (size, mtime));
                    }
                }
                Err(_) => {
                    self.ctx.stats.evtx_files_failed.inc();
                    warn!(message = "The evtx parser panicked on a file; it is skipped until it changes.", file = %path.display());
                    let mut e = Event::new(EventClass::Weir, Utc::now());
                    e.event.action = Some("evtx-file-failed".into());
                    e.event.dataset = Some("weir.agent".into());
                    e.event.outcome = Some("failure".into());
                    e.message = Some(format!(
                        "{name}: the evtx parser failed on this file (a panic in the parser, caught); records after the last one sent were not read. The file is read again if it changes."
                    ));
                    self.send(e, None)?;
                    self.seen.insert(name, (size, mtime));
                }
            }
        }
        Ok(())
    }

    /// Read one file from its bookmark; false when interrupted (read again next time).
    fn read_file(&mut self, name: &str, path: &Path, cancel: &CancellationToken) -> Result<bool> {
        let mut parser = match evtx::EvtxParser::from_path(path) {
            Ok(p) => p,
            Err(error) => {
                // A file still being copied in has no valid header yet: try again next time.
                warn!(message = "Cannot open evtx file (yet).", file = %path.display(), %error);
                return Ok(true);
            }
        };
        let settings = Arc::new(settings());
        let mut bookmark = self
            .queued
            .get(name)
            .copied()
            .unwrap_or_default()
            .last_record_id;
        // A log cleared or replaced since: its ids start again below the bookmark.
        let highest = parser
            .chunks()
            .flatten()
            .map(|c| c.header.last_event_record_id)
            .max()
            .unwrap_or(0);
        if highest < bookmark {
            info!(message = "evtx file restarted (cleared or replaced); reading it from the start.", file = %path.display(), bookmark, highest);
            bookmark = 0;
        }
        let mut expected = bookmark + 1;
        let wctx = WinContext {
            received_at: Utc::now(),
            peer: None,
            input: "evtx",
            keep_original: self.ctx.cfg.keep_original,
            timezone: chrono_tz::Tz::UTC,
        };
        for chunk in parser.chunks() {
            if cancel.is_cancelled() {
                return Ok(false);
            }
            let mut chunk = match chunk {
                Ok(c) => c,
                Err(error) => {
                    self.ctx.stats.evtx_chunks_damaged.inc();
                    warn!(message = "Damaged evtx chunk skipped.", file = %path.display(), %error);
                    continue;
                }
            };
            if chunk.header.last_event_record_id <= bookmark {
                continue;
            }
            let mut parsed = match chunk.parse(settings.clone()) {
                Ok(p) => p,
                Err(error) => {
                    self.ctx.stats.evtx_chunks_damaged.inc();
                    warn!(message = "Damaged evtx chunk skipped.", file = %path.display(), %error);
                    continue;
                }
            };
            for record in parsed.iter() {
                let record = match record.and_then(|r| r.into_xml()) {
                    Ok(r) => r,
                    Err(error) => {
                        self.ctx.stats.evtx_records_damaged.inc();
                        warn!(message = "Damaged evtx record skipped.", file = %path.display(), %error);
                        continue;
                    }
                };
                let id = record.event_record_id;
                if id <= bookmark {
                    continue;
                }
                if id > expected && bookmark > 0 {
                    let missed = id - expected;
                    self.ctx.stats.evtx_records_missed.add(missed);
                    warn!(message = "evtx records overwritten before they were read.", file = %path.display(), first = expected, last = id - 1, missed);
                    self.send(self.missed_event(name, expected, id - 1, missed), None)?;
                }
                expected = id + 1;
                let event = record_event(record, &wctx);
                self.send(event, Some((name, id)))?;
            }
        }
        Ok(true)
    }

    fn missed_event(&self, file: &str, first: u64, last: u64, missed: u64) -> Event {
        let mut e = Event::new(EventClass::Weir, Utc::now());
        e.event.action = Some("evtx-records-missed".into());
        e.event.dataset = Some("weir.agent".into());
        e.event.outcome = Some("failure".into());
        e.message = Some(format!(
            "{file}: records {first}..={last} were overwritten in the log before the agent read them ({missed} lost)."
        ));
        e.weir.dropped = Some(missed);
        e
    }

    fn send(&mut self, mut event: Event, at: Option<(&str, u64)>) -> Result<()> {
        if event.weir.parse_error.is_some() {
            self.ctx.stats.parse_errors.inc();
        }
        event.weir.agent = Some(self.ctx.agent.to_string());
        event.weir.stream = Some(self.ctx.cfg.name.clone());
        let class = event.class();
        self.ctx.stats.events_received.of(class).inc();
        self.position += 1;
        let record = Record {
            stream: self.ctx.stream,
            class,
            payload: weir_integrations::envelope::agent_record(&event).into(),
            taken: Some(Taken {
                mark: self.mark.clone(),
                position: self.position,
            }),
        };
        if let Some((file, id)) = at {
            self.queued
                .insert(file.to_owned(), Bookmark { last_record_id: id });
            self.pending.push_back((self.position, file.to_owned(), id));
        } else {
            // Not a record of a file: nothing to commit for it, but positions stay in order.
            self.pending.push_back((self.position, String::new(), 0));
        }
        // Waits while the queue is full: files can wait.
        self.ctx
            .queue
            .blocking_send(record)
            .map_err(|_| anyhow::anyhow!("the diode queue closed"))?;
        if self.pending.len().is_multiple_of(256) {
            self.commit(false)?;
        }
        Ok(())
    }
}
