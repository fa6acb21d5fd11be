//! The sending loop: records from the sources into the [`Sender`], datagrams out at the link
//! rate.
//!
//! ```text
//!  queue ──► Sender::push ──► Sender::poll_transmit ──► pacer ──► send_to(destination)
//!              ▲ timers: Sender::poll_timeout / handle_timeout (linger, heartbeats)
//! ```
//! While the pacer holds datagrams back, the loop does not read the queue: sources feel the
//! back-pressure (TCP pauses, UDP drops and counts).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::warn;
use weir_diode_proto::{PushError, Sender};

use super::WIRE_OVERHEAD_BYTES;
use crate::sources::Record;
use crate::telemetry::TxStats;

/// A token bucket at the link rate, counting on-wire bytes.
#[derive(Debug)]
pub struct Pacer {
    bytes_per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    /// A full bucket for `bits_per_second`; bursts of 2 ms (at least 64 KiB).
    pub fn new(bits_per_second: u64, now: Instant) -> Pacer {
        let bytes_per_second = bits_per_second as f64 / 8.0;
        let burst = (bytes_per_second * 0.002).max(65_536.0);
        Pacer {
            bytes_per_second,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Take `bytes`; returns how long to wait first if the bucket is short.
    pub fn take(&mut self, now: Instant, bytes: usize) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.bytes_per_second).min(self.burst);
        self.tokens -= bytes as f64;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / self.bytes_per_second))
    }
}

/// Run until every source has closed its side of the queue; then flush, send a final
/// heartbeat and return.
pub async fn run(
    mut sender: Sender,
    mut queue: mpsc::Receiver<Record>,
    socket: UdpSocket,
    destination: SocketAddr,
    link_rate_bits_per_second: u64,
    stats: Arc<TxStats>,
) {
    let mut pacer = Pacer::new(link_rate_bits_per_second, Instant::now());
    let mut buf = vec![0u8; sender.max_datagram_len()];
    let mut open = true;
    while open || !sender.is_idle() {
        if open {
            let deadline = tokio::time::Instant::from_std(sender.poll_timeout());
            tokio::select! {
                biased;
                r = queue.recv(), if sender.can_push() => match r {
                    Some(record) => {
                        push(&mut sender, record, &stats);
                        // Take what is already queued without going back to the scheduler.
                        while sender.can_push() {
                            match queue.try_recv() {
                                Ok(record) => push(&mut sender, record, &stats),
                                Err(_) => break,
                            }
                        }
                    }
                    None => {
                        open = false;
                        sender.flush();
                        sender.queue_heartbeat();
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
        let now = Instant::now();
        sender.set_report(unix_ms(), stats.dropped_total(), 0);
        sender.handle_timeout(now);
        while let Some(n) = sender.poll_transmit(&mut buf) {
            if let Some(wait) = pacer.take(Instant::now(), n + WIRE_OVERHEAD_BYTES) {
                tokio::time::sleep(wait).await;
            }
            let Some(datagram) = buf.get(..n) else { break };
            if let Err(error) = socket.send_to(datagram, destination).await {
                stats.send_errors.inc();
                warn!(message = "Diode send failed.", %error, %destination);
            }
        }
        let s = sender.stats();
        stats.records_sent.set(s.records);
        stats.blocks_sent.set(s.blocks);
        stats.datagrams_sent.set(s.datagrams);
        stats.bytes_sent.set(s.bytes);
        stats.heartbeats_sent.set(s.heartbeats);
        stats.repair_sent.set(s.repair_symbols);
    }
}

fn push(sender: &mut Sender, record: Record, stats: &TxStats) {
    match sender.push(Instant::now(), record.stream, &record.json) {
        Ok(_) => {}
        Err(PushError::TooLarge(len)) => {
            stats.dropped_too_large.inc();
            warn!(message = "Event too large for a diode block; dropped.", len);
        }
        Err(error) => {
            stats.dropped_queue_full.inc();
            warn!(message = "Diode sender refused a record.", %error);
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
