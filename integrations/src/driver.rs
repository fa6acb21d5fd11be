/*!
The one driver every SIEM sink runs on.

```text
receiver ─► DiskQueue (per sink, crash-safe) ─► batch (max events / bytes / age)
                ▲ ack in order                       │ Sink::build (pure)
                │                                    ▼
                └──── all items resolved ◄── Sink::classify (pure) ◄── Sink::send (IO)
                                              │ Retry: backoff with jitter, resend the
                                              │        items still unresolved, forever
                                              │ Dead:  dead-letter file with the reason
                                              └ Ok / Duplicate: done
```

A batch is acknowledged in the disk queue only when every event in it is resolved (delivered,
already present, or dead-lettered with the SIEM's reason), and batches are acknowledged in
order, so after a crash the queue resumes at the oldest batch that was still in flight:
duplicates are limited to the batches in flight. Retryable failures are retried forever with
capped exponential backoff (the disk queue's bound decides what happens if an outage outlasts
it); events the SIEM will never take are dead-lettered at once, never retried.
*/

use std::collections::VecDeque;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Map, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::buffer::{DiskQueue, Position, ReadBatch};

/// A boxed future, for [`Sink::send`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What became of one event of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// Stored by the SIEM.
    Ok,
    /// The SIEM already had it (a retry of something that had been stored).
    Duplicate,
    /// Try again later (throttled, SIEM busy, transport error).
    Retry(String),
    /// The SIEM will never take it: dead-letter it with this reason.
    Dead(String),
}

/// What became of a whole request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every event stored.
    Delivered,
    /// Nothing stored; send it all again (after `after`, if the SIEM said when).
    Retry {
        /// Why (for logs and metrics).
        reason: String,
        /// The SIEM's `Retry-After`, if any.
        after: Option<Duration>,
    },
    /// One result per event, in request order.
    Items(Vec<Item>),
}

/// A SIEM sink: what differs between Splunk HEC, Kafka and Elasticsearch. `build` and
/// `classify` are pure; `send` is the only IO.
pub trait Sink: Send + Sync + 'static {
    /// A request ready to send (kept for resends).
    type Request: Send + Sync;
    /// What came back (transport errors included).
    type Response: Send;
    /// The configured name (metrics, logs, dead-letter records).
    fn name(&self) -> &str;
    /// One request carrying `events` (each an event's canonical JSON), in order.
    fn build(&self, events: &[&[u8]]) -> Self::Request;
    /// Send it.
    fn send<'a>(&'a self, request: &'a Self::Request) -> BoxFuture<'a, Self::Response>;
    /// Judge the response for a request of `events` events.
    fn classify(&self, events: usize, response: &Self::Response) -> Verdict;
}

/// Batching, retry and concurrency settings.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Most events in one request.
    pub max_events: usize,
    /// About the most bytes of events in one request.
    pub max_bytes: usize,
    /// A partial batch goes out once its oldest event waited this long.
    pub max_age: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// First retry delay; doubles up to `backoff_max`, with full jitter.
    pub backoff_initial: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Where dead-lettered events go (NDJSON: reason, sink, time, event).
    pub dead_letter: Option<PathBuf>,
}

impl Default for DriverConfig {
    fn default() -> DriverConfig {
        DriverConfig {
            max_events: 1000,
            max_bytes: 4 << 20,
            max_age: Duration::from_secs(1),
            concurrency: 2,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            dead_letter: None,
        }
    }
}

/// The same counters for every sink.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Events stored by the SIEM (duplicates included).
    pub events_sent: AtomicU64,
    /// Bytes of event JSON stored.
    pub bytes_sent: AtomicU64,
    /// Events the SIEM reported as already stored.
    pub duplicates: AtomicU64,
    /// Requests sent (retries included).
    pub requests: AtomicU64,
    /// Requests or items retried.
    pub retries: AtomicU64,
    /// Events dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Events that could not be written to the dead-letter file (logged).
    pub dead_letter_errors: AtomicU64,
    /// Sum of request latencies, microseconds (with `requests`: the mean).
    pub latency_us_sum: AtomicU64,
    /// Slowest request, microseconds.
    pub latency_us_max: AtomicU64,
}

impl SinkStats {
    /// For the receiver's summary and `/metrics`.
    pub fn to_json(&self) -> Value {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "events_sent_total": g(&self.events_sent),
            "bytes_sent_total": g(&self.bytes_sent),
            "duplicates_total": g(&self.duplicates),
            "requests_total": g(&self.requests),
            "retries_total": g(&self.retries),
            "dead_lettered_total": g(&self.dead_lettered),
            "dead_letter_errors_total": g(&self.dead_letter_errors),
            "request_latency_microseconds_sum": g(&self.latency_us_sum),
            "request_latency_microseconds_max": g(&self.latency_us_max),
        })
    }
}

/// A disk queue shared between the receiver (appending) and the driver (reading, acking).
#[derive(Debug)]
pub struct SharedQueue {
    /// The queue.
    pub queue: Mutex<DiskQueue>,
    /// Signalled after appends.
    pub notify: Notify,
}

impl SharedQueue {
    /// Wrap `queue`.
    pub fn new(queue: DiskQueue) -> Arc<SharedQueue> {
        Arc::new(SharedQueue {
            queue: Mutex::new(queue),
            notify: Notify::new(),
        })
    }
}

struct Batch {
    end: Position,
    events: ReadBatch,
}

/// Run `sink` over `queue` until `cancel`; in-flight requests are abandoned at cancel (their
/// batches are not acknowledged, so they are sent again after the restart).
pub async fn run<S: Sink>(
    sink: Arc<S>,
    queue: Arc<SharedQueue>,
    cfg: DriverConfig,
    stats: Arc<SinkStats>,
    cancel: CancellationToken,
) {
    let dead = Arc::new(DeadLetter::new(cfg.dead_letter.clone(), sink.name()));
    let mut in_flight = FuturesUnordered::new();
    // Batches in read order, with whether they are resolved.
    let mut order: VecDeque<(u64, Position, bool)> = VecDeque::new();
    let mut next_id = 0u64;
    let mut waiting_since: Option<Instant> = None;
    // Batch buffers of delivered batches, reused: a fresh one per batch costs page faults.
    let mut spare: Vec<ReadBatch> = Vec::new();
    loop {
        // Take a batch if there is room for one and it is full or old enough. Room counts every
        // batch not yet acknowledged (in flight, or delivered and waiting for an earlier one):
        // that bounds what a crash can send twice to `concurrency` batches.
        if order.len() < cfg.concurrency.max(1) {
            let (ready, pending) = match queue.queue.lock() {
                Ok(q) => (
                    q.unread_records() >= cfg.max_events as u64
                        || q.unread_bytes() >= cfg.max_bytes as u64,
                    q.unread_records() > 0,
                ),
                Err(_) => (false, false),
            };
            if pending {
                let since = *waiting_since.get_or_insert_with(Instant::now);
                if ready || since.elapsed() >= cfg.max_age {
                    match read_batch(&queue, &cfg, spare.pop().unwrap_or_default()) {
                        Ok(Some(batch)) => {
                            waiting_since = None;
                            let id = next_id;
                            next_id += 1;
                            order.push_back((id, batch.end, false));
                            in_flight.push(deliver(
                                id,
                                sink.clone(),
                                batch,
                                cfg.clone(),
                                stats.clone(),
                                dead.clone(),
                                cancel.clone(),
                            ));
                            continue;
                        }
                        Ok(None) => waiting_since = None,
                        Err(e) => {
                            error!(message = "Sink buffer read failed.", sink = sink.name(), error = %e)
                        }
                    }
                }
            } else {
                waiting_since = None;
            }
        }
        let age_left = waiting_since
            .map(|t| cfg.max_age.saturating_sub(t.elapsed()))
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            Some((id, complete, events)) = in_flight.next(), if !in_flight.is_empty() => {
                if spare.len() < cfg.concurrency.max(1) {
                    spare.push(events);
                }
                if !complete {
                    break; // cancelled: never acknowledge what was not delivered
                }
                if let Some(entry) = order.iter_mut().find(|(i, _, _)| *i == id) {
                    entry.2 = true;
                }
                // Acknowledge the longest resolved prefix: batches are acked in order.
                let mut upto = None;
                while order.front().is_some_and(|(_, _, done)| *done) {
                    upto = order.pop_front().map(|(_, end, _)| end);
                }
                if let Some(end) = upto {
                    if let Ok(mut q) = queue.queue.lock() {
                        if let Err(e) = q.ack(end) {
                            error!(message = "Sink buffer ack failed.", sink = sink.name(), error = %e);
                        }
                    }
                }
            }
            _ = queue.notify.notified() => {}
            _ = tokio::time::sleep(age_left) => {}
        }
    }
}

fn read_batch(
    queue: &SharedQueue,
    cfg: &DriverConfig,
    mut events: ReadBatch,
) -> std::io::Result<Option<Batch>> {
    let Ok(mut q) = queue.queue.lock() else {
        return Ok(None);
    };
    q.read_batch_into(&mut events, cfg.max_events, cfg.max_bytes)?;
    let Some(end) = events.end() else {
        return Ok(None);
    };
    Ok(Some(Batch { end, events }))
}

/// Deliver one batch completely: resend what is unresolved until every event is stored,
/// already present or dead-lettered. Returns the batch id, and false if cancelled first.
async fn deliver<S: Sink>(
    id: u64,
    sink: Arc<S>,
    batch: Batch,
    cfg: DriverConfig,
    stats: Arc<SinkStats>,
    dead: Arc<DeadLetter>,
    cancel: CancellationToken,
) -> (u64, bool, ReadBatch) {
    // Indices (into the batch) still to deliver.
    let mut todo: Vec<usize> = (0..batch.events.len()).collect();
    let mut attempt = 0u32;
    while !todo.is_empty() {
        let events: Vec<&[u8]> = todo.iter().filter_map(|&i| batch.events.get(i)).collect();
        let request = sink.build(&events);
        let started = Instant::now();
        let response = tokio::select! {
            r = sink.send(&request) => r,
            _ = cancel.cancelled() => return (id, false, batch.events),
        };
        let us = started.elapsed().as_micros() as u64;
        stats.requests.fetch_add(1, Ordering::Relaxed);
        stats.latency_us_sum.fetch_add(us, Ordering::Relaxed);
        stats.latency_us_max.fetch_max(us, Ordering::Relaxed);
        let (retry, after, reason) = match sink.classify(events.len(), &response) {
            Verdict::Delivered => {
                count_sent(&stats, &events);
                break;
            }
            Verdict::Retry { reason, after } => (todo.clone(), after, reason),
            Verdict::Items(items) => {
                let mut retry = Vec::new();
                let mut reason = String::new();
                for (k, &i) in todo.iter().enumerate() {
                    let event = batch.events.get(i).unwrap_or_default();
                    // A response with fewer results than events: the rest are retried.
                    match items
                        .get(k)
                        .cloned()
                        .unwrap_or(Item::Retry("no result".into()))
                    {
                        Item::Ok => count_sent(&stats, &[event]),
                        Item::Duplicate => {
                            count_sent(&stats, &[event]);
                            stats.duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                        Item::Retry(r) => {
                            retry.push(i);
                            reason = r;
                        }
                        Item::Dead(r) => {
                            stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                            if !dead.write(event, &r) {
                                stats.dead_letter_errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                (retry, None, reason)
            }
        };
        if retry.is_empty() {
            break;
        }
        stats.retries.fetch_add(1, Ordering::Relaxed);
        let delay = after.unwrap_or_else(|| backoff(attempt, &cfg));
        if attempt < 3 || attempt.is_multiple_of(20) {
            warn!(message = "Sink delivery will be retried.", sink = sink.name(), reason = %reason, events = retry.len(), attempt, delay_ms = delay.as_millis() as u64);
        }
        attempt = attempt.saturating_add(1);
        todo = retry;
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return (id, false, batch.events),
        }
    }
    (id, true, batch.events)
}

fn count_sent(stats: &SinkStats, events: &[&[u8]]) {
    stats
        .events_sent
        .fetch_add(events.len() as u64, Ordering::Relaxed);
    let bytes: usize = events.iter().map(|e| e.len()).sum();
    stats.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// Capped exponential backoff with full jitter: uniform in [0, min(max, initial * 2^attempt)].
pub fn backoff(attempt: u32, cfg: &DriverConfig) -> Duration {
    let cap = cfg
        .backoff_initial
        .saturating_mul(1u32 << attempt.min(20))
        .min(cfg.backoff_max);
    let mut b = [0u8; 8];
    let r = getrandom::fill(&mut b).map_or(0.5, |_| u64::from_le_bytes(b) as f64 / u64::MAX as f64);
    // At least a millisecond, so a SIEM that fails at once is never hammered.
    cap.mul_f64(r).max(Duration::from_millis(1))
}

/// The dead-letter file: one JSON line per event the SIEM refused for good.
struct DeadLetter {
    path: Option<PathBuf>,
    sink: String,
    file: Mutex<Option<std::fs::File>>,
}

impl DeadLetter {
    fn new(path: Option<PathBuf>, sink: &str) -> DeadLetter {
        DeadLetter {
            path,
            sink: sink.to_owned(),
            file: Mutex::new(None),
        }
    }

    fn write(&self, event: &[u8], reason: &str) -> bool {
        let mut line = Map::new();
        line.insert("sink".into(), self.sink.clone().into());
        line.insert("reason".into(), reason.into());
        line.insert(
            "dead_lettered_at".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        );
        // Buffer records are an envelope and the event's JSON: keep the event.
        let event = crate::envelope::Envelope::split(event).map_or(event, |(_, json)| json);
        let event = serde_json::from_slice::<Value>(event)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(event).into_owned()));
        line.insert("event".into(), event);
        let text = format!("{}\n", Value::Object(line));
        error!(message = "Event dead-lettered.", sink = %self.sink, reason);
        let Some(path) = &self.path else {
            return false;
        };
        let Ok(mut file) = self.file.lock() else {
            return false;
        };
        if file.is_none() {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            *file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok();
        }
        file.as_mut()
            .is_some_and(|f| f.write_all(text.as_bytes()).is_ok())
    }
}
