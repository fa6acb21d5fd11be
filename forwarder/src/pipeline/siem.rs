//! The receiver's SIEM outputs: each has a crash-safe disk buffer, filled by the sink thread,
//! and a driver task that delivers from it (`weir_integrations::driver`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use weir_integrations::buffer::{Appended, DiskQueue};
use weir_integrations::driver::{self, SharedQueue, SinkStats};
use weir_integrations::elasticsearch::EsSink;
use weir_integrations::hec::HecSink;
use weir_integrations::kafka::KafkaSink;
use weir_schemas::EventClass;

use crate::config::{ClassFilter, SiemKind, SiemSink};
use crate::telemetry::unix_ms;

/// One SIEM output as the sink thread and the counters see it.
#[derive(Debug)]
pub struct SiemOutput {
    /// Sink name.
    pub name: String,
    /// Classes routed to it.
    pub classes: ClassFilter,
    /// Its disk buffer.
    pub queue: Arc<SharedQueue>,
    /// Delivery counters.
    pub stats: Arc<SinkStats>,
    /// Events the full buffer dropped.
    pub buffer_dropped: AtomicU64,
    /// Damaged buffer records found at start.
    pub buffer_corrupt: u64,
    /// When a buffer write error was last logged (Unix ms): at most one line per 10 s.
    pub error_logged_ms: AtomicU64,
    /// When the buffer was last synced to disk (Unix ms): at most a second of events is lost
    /// to a power loss.
    pub synced_ms: AtomicU64,
}

impl SiemOutput {
    /// Append the records (envelope + event JSON) of the events routed here, then hand them to
    /// the OS and wake the driver. Called by the sink thread.
    pub fn append(&self, records: &[(EventClass, &[u8])]) {
        let Ok(mut q) = self.queue.queue.lock() else {
            return;
        };
        let now = unix_ms();
        let mut any = false;
        let mut failed = 0u64;
        let mut last_error: Option<std::io::Error> = None;
        for (class, record) in records {
            if !self.classes.contains(class) {
                continue;
            }
            any = true;
            match q.append(record, now) {
                Ok(Appended::Stored) => {}
                Ok(Appended::StoredDroppingOldest(n)) => {
                    self.buffer_dropped.fetch_add(n, Ordering::Relaxed);
                }
                Ok(Appended::Refused) => {
                    self.buffer_dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    // Not taken (a full disk): counted once here, never also kept.
                    self.buffer_dropped.fetch_add(1, Ordering::Relaxed);
                    failed += 1;
                    last_error = Some(e);
                }
            }
        }
        if any {
            if let Err(e) = q.flush() {
                // The records stay in memory (bounded) and are written by a later flush.
                last_error.get_or_insert(e);
            } else if now.saturating_sub(self.synced_ms.load(Ordering::Relaxed)) >= 1000 {
                match q.sync() {
                    Ok(()) => self.synced_ms.store(now, Ordering::Relaxed),
                    Err(e) => {
                        last_error.get_or_insert(e);
                    }
                }
            }
            if let Some(error) = last_error {
                let last = self.error_logged_ms.load(Ordering::Relaxed);
                if now.saturating_sub(last) >= 10_000 {
                    self.error_logged_ms.store(now, Ordering::Relaxed);
                    error!(message = "Sink buffer write failed (at most one line per 10 s); what is buffered is still delivered.", sink = %self.name, events_dropped = failed, %error);
                }
            }
            drop(q);
            self.queue.notify.notify_one();
        }
    }

    /// Counters for the summary and `/metrics`.
    pub fn to_json(&self) -> Value {
        let mut v = self.stats.to_json();
        if let Value::Object(m) = &mut v {
            let (records, bytes) = self
                .queue
                .queue
                .lock()
                .map(|q| (q.records(), q.bytes()))
                .unwrap_or((0, 0));
            m.insert(
                "buffer_dropped_total".into(),
                self.buffer_dropped.load(Ordering::Relaxed).into(),
            );
            m.insert(
                "buffer_corrupt_records_total".into(),
                self.buffer_corrupt.into(),
            );
            m.insert("buffer_records".into(), records.into());
            m.insert("buffer_bytes".into(), bytes.into());
        }
        v
    }
}

/// All SIEM outputs of a receiver.
pub struct Siems {
    /// The outputs.
    pub outputs: Vec<Arc<SiemOutput>>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Siems {
    /// Open every buffer (recovering what a previous run left) and start every driver.
    pub fn start(sinks: &[SiemSink]) -> Result<Siems> {
        let cancel = CancellationToken::new();
        let mut outputs = Vec::new();
        let mut tasks = Vec::new();
        for s in sinks {
            let mut q = DiskQueue::open(&s.buffer_path, s.buffer.clone()).with_context(|| {
                format!(
                    "sink {}: cannot open buffer {}",
                    s.name,
                    s.buffer_path.display()
                )
            })?;
            let summary = q.summary()?;
            if summary.records > 0 {
                info!(message = "Sink buffer holds events from before the restart; delivering them first.", sink = %s.name, records = summary.records);
            }
            let d = &summary.damage;
            if d.corrupt_records + d.torn_tail_bytes > 0 {
                warn!(message = "Sink buffer damage skipped.", sink = %s.name, corrupt_records = d.corrupt_records, corrupt_bytes = d.corrupt_bytes, torn_tail_bytes = d.torn_tail_bytes);
            }
            let output = Arc::new(SiemOutput {
                name: s.name.clone(),
                classes: s.classes.clone(),
                queue: SharedQueue::new(q),
                stats: Arc::new(SinkStats::default()),
                buffer_dropped: AtomicU64::new(0),
                buffer_corrupt: d.corrupt_records,
                error_logged_ms: AtomicU64::new(0),
                synced_ms: AtomicU64::new(0),
            });
            let named = |e: String| anyhow::anyhow!("sink {}: {e}", s.name);
            let task = match &s.kind {
                SiemKind::SplunkHec(cfg) => {
                    let sink = Arc::new(HecSink::new(cfg.clone()).map_err(named)?);
                    let check = sink.clone();
                    tokio::spawn(async move {
                        check.health_check().await;
                    });
                    spawn_driver(sink, &output, s, &cancel)
                }
                SiemKind::Kafka(cfg) => spawn_driver(
                    Arc::new(KafkaSink::new(cfg.clone()).map_err(named)?),
                    &output,
                    s,
                    &cancel,
                ),
                SiemKind::Elasticsearch(cfg) => spawn_driver(
                    Arc::new(EsSink::new(cfg.clone()).map_err(named)?),
                    &output,
                    s,
                    &cancel,
                ),
            };
            outputs.push(output);
            tasks.push(task);
        }
        Ok(Siems {
            outputs,
            cancel,
            tasks,
        })
    }

    /// Give the drivers up to `drain` to empty their buffers, then stop them. What is left
    /// stays in the buffers for the next start.
    pub async fn shutdown(self, drain: Duration) {
        let deadline = Instant::now() + drain;
        while Instant::now() < deadline
            && self.outputs.iter().any(|o| {
                o.queue
                    .queue
                    .lock()
                    .map(|q| q.records() > 0)
                    .unwrap_or(false)
            })
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.cancel.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        for o in &self.outputs {
            if let Ok(mut q) = o.queue.queue.lock() {
                let _ = q.sync();
                let left = q.records();
                if left > 0 {
                    info!(message = "Sink buffer kept for the next start.", sink = %o.name, records = left);
                }
            }
        }
    }
}

fn spawn_driver<S: driver::Sink>(
    sink: Arc<S>,
    output: &SiemOutput,
    cfg: &SiemSink,
    cancel: &CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(driver::run(
        sink,
        output.queue.clone(),
        cfg.driver.clone(),
        output.stats.clone(),
        cancel.clone(),
    ))
}

/// `{"NAME": {counters}}` for the summary.
pub fn summary(outputs: &[Arc<SiemOutput>]) -> Value {
    let mut m = Map::new();
    for o in outputs {
        m.insert(o.name.clone(), o.to_json());
    }
    if m.is_empty() {
        return json!({});
    }
    Value::Object(m)
}
