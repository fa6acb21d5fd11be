//! The sending loop: records from the sources into the [`Sender`], datagrams out at the link
//! rate.
//!
//! ```text
//!  queue ──► Sender::push ──► Sender::poll_transmit_parts ──► batch ──► pacer ──► sendmmsg
//!              ▲ timers: Sender::poll_timeout / handle_timeout (linger, heartbeats)
//! ```
//! While the pacer holds datagrams back, the loop does not read the queue: sources feel the
//! back-pressure (TCP pauses, UDP drops and counts). A block's symbols are sealed in place in
//! the block buffer and handed to the kernel from there (header and tag from the batch's slot),
//! so record bytes are copied once in user space, into the block.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::os::fd::AsFd;

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::warn;
use weir_diode_proto::{sender::IpVersion, PushError, Sender};

use super::mmsg::SendBatch;
use crate::sources::Record;
use crate::telemetry::TxStats;

/// How the sender paces the link: its line rate, and the longest burst it may send at once
/// after it was held up (the token bucket's depth, in link time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    /// On-wire bits per second (IP, UDP and Ethernet overhead counted).
    pub bits_per_second: u64,
    /// The bucket's depth. It must cover how late the timer wakes the sender: time the link
    /// idles beyond it is lost for good.
    pub burst: Duration,
}

impl Pacing {
    /// The default depth: 4 ms (500 KB at 1 Gb/s). At 2 ms the sender lost 1.5 % of a 1 Gb/s
    /// link on the shared test VM to late timer wake-ups.
    pub const DEFAULT_BURST: Duration = Duration::from_millis(4);

    /// `bits_per_second` with the default burst.
    pub fn at(bits_per_second: u64) -> Pacing {
        Pacing {
            bits_per_second,
            burst: Pacing::DEFAULT_BURST,
        }
    }
}

/// A token bucket at the link rate, counting on-wire bytes.
#[derive(Debug)]
pub struct Pacer {
    bytes_per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    /// A full bucket for `pacing`: bursts of `pacing.burst` of link time, at least 64 KiB.
    pub fn new(pacing: Pacing, now: Instant) -> Pacer {
        let bytes_per_second = pacing.bits_per_second as f64 / 8.0;
        let burst = (bytes_per_second * pacing.burst.as_secs_f64()).max(65_536.0);
        Pacer {
            bytes_per_second,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// The largest burst the bucket lets out at once.
    pub fn burst_bytes(&self) -> usize {
        self.burst as usize
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

/// A request for the diode stream of a source (a configuration reload starting a source).
#[derive(Debug)]
pub struct StreamRequest {
    /// The source's name.
    pub name: String,
    /// Where the stream id goes.
    pub reply: tokio::sync::oneshot::Sender<weir_diode_proto::StreamId>,
}

/// Run until every source has closed its side of the queue; then flush, send a final
/// heartbeat and return. Stream requests are answered as they come; `known_streams` follows
/// the sender's stream count.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    mut sender: Sender,
    mut queue: mpsc::Receiver<Record>,
    mut streams: mpsc::UnboundedReceiver<StreamRequest>,
    known_streams: Arc<std::sync::atomic::AtomicU16>,
    socket: UdpSocket,
    destination: SocketAddr,
    pacing: Pacing,
    segmentation_offload: bool,
    stats: Arc<TxStats>,
    ledger: Option<crate::ledger::Writer>,
) {
    let mut durable = Durable {
        ledger,
        awaiting: VecDeque::new(),
    };
    let mut pacer = Pacer::new(pacing, Instant::now());
    // A batch never holds more than half the pacer's burst, so one sendmmsg stays inside it.
    let slot = sender.max_datagram_len();
    let overhead = super::wire_overhead_bytes(IpVersion::of(destination));
    // A quarter of the burst per batch: the timer wakes up to a millisecond late, and the
    // bucket must have room for what accrues meanwhile or the link idles.
    let per_batch = (pacer.burst_bytes() / 4) / (slot + overhead);
    let mut batch = SendBatch::new(slot, per_batch, destination, segmentation_offload);
    let mut open = true;
    while open || !sender.is_idle() {
        if open {
            let deadline = tokio::time::Instant::from_std(sender.poll_timeout());
            tokio::select! {
                biased;
                r = queue.recv(), if sender.can_push() => match r {
                    Some(record) => {
                        push(&mut sender, record, &stats, &mut durable);
                        // Take what is already queued without going back to the scheduler.
                        while sender.can_push() {
                            match queue.try_recv() {
                                Ok(record) => push(&mut sender, record, &stats, &mut durable),
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
                Some(req) = streams.recv() => {
                    let id = sender.stream(&req.name);
                    known_streams.store(
                        u16::try_from(sender.stream_count()).unwrap_or(u16::MAX),
                        std::sync::atomic::Ordering::Release,
                    );
                    let _ = req.reply.send(id);
                }
                Some(written) = recv_written(&mut durable.ledger) => {
                    durable.written(written, &stats);
                }
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
        transmit(
            &mut sender,
            &mut batch,
            &mut pacer,
            &socket,
            overhead,
            &stats,
            &mut durable,
        )
        .await;
        durable.poll(&sender, &stats);
    }
    // The final heartbeat tells the receiver where every stream ended, so that records lost
    // at the very end are reported as a gap. The link has no return path, so only repetition
    // makes it likely to arrive; the copies are spaced so that one burst of loss does not take
    // them all.
    for _ in 0..FINAL_HEARTBEAT_REPEATS {
        tokio::time::sleep(FINAL_HEARTBEAT_SPACING).await;
        sender.queue_heartbeat();
        transmit(
            &mut sender,
            &mut batch,
            &mut pacer,
            &socket,
            overhead,
            &stats,
            &mut durable,
        )
        .await;
    }
    // Every record is on the link and the receiver has been told where each stream ends: the
    // next start has nothing to close.
    let last = sender.ledger();
    if let Some(w) = durable.ledger.take() {
        if let Err(error) = w.close(last.clone()).await {
            stats.ledger_write_errors.inc();
            warn!(message = "Cannot write the agent session ledger at shutdown; the next start closes this session again.", %error);
        }
    }
    release(&mut durable.awaiting, &last.streams);
}

/// Records whose source waits to hear they are on the link (bookmarks, Acks, the spool), in
/// push order, and the ledger whose writes release them (see `crate::ledger`).
struct Durable {
    ledger: Option<crate::ledger::Writer>,
    awaiting: VecDeque<Awaiting>,
}

impl Durable {
    /// A ledger write finished: release what it covers (also when it failed: positions then
    /// advance on transmission alone, counted).
    fn written(
        &mut self,
        written: Result<weir_diode_proto::SenderLedger, weir_diode_proto::SenderLedger>,
        stats: &TxStats,
    ) {
        if let Some(w) = self.ledger.as_mut() {
            w.finished();
        }
        let l = match written {
            Ok(l) => l,
            Err(l) => {
                stats.ledger_write_errors.inc();
                l
            }
        };
        release(&mut self.awaiting, &l.streams);
    }

    /// Take finished writes (a busy queue wins the sending loop's select every time, and a
    /// slow link keeps it in `transmit` for long) and ask for the next one.
    fn poll(&mut self, sender: &Sender, stats: &TxStats) {
        while let Some(written) = self.ledger.as_mut().and_then(|w| w.done.try_recv().ok()) {
            self.written(written, stats);
        }
        let urgent = !self.awaiting.is_empty();
        if let Some(w) = self.ledger.as_mut() {
            w.offer(sender, urgent);
        }
    }
}

/// A pushed record whose source waits on it.
struct Awaiting {
    stream: u16,
    /// Its sequence; `None`: it was dropped (counted), done once everything before it is.
    sequence: Option<u64>,
    taken: crate::sources::Taken,
}

/// The next ledger write finished, if a write is under way (else never).
async fn recv_written(
    ledger: &mut Option<crate::ledger::Writer>,
) -> Option<Result<weir_diode_proto::SenderLedger, weir_diode_proto::SenderLedger>> {
    match ledger {
        Some(w) if w.busy() => w.done.recv().await,
        _ => std::future::pending().await,
    }
}

/// Tell the sources about every awaiting record the positions cover (in push order: blocks
/// go out whole and in order, so the first one not covered stops the walk).
fn release(awaiting: &mut VecDeque<Awaiting>, positions: &[weir_diode_proto::StreamPosition]) {
    while let Some(a) = awaiting.front() {
        let done = match a.sequence {
            None => true,
            Some(seq) => positions
                .iter()
                .find(|p| p.id == a.stream)
                .is_some_and(|p| seq < p.next_sequence),
        };
        if !done {
            break;
        }
        if let Some(a) = awaiting.pop_front() {
            a.taken.done();
        }
    }
}

/// Copies of the final heartbeat sent after the first one.
pub const FINAL_HEARTBEAT_REPEATS: u32 = 4;
/// Time between them.
pub const FINAL_HEARTBEAT_SPACING: Duration = Duration::from_millis(100);

/// Everything the sender has to send, out at the link rate; then the counters.
async fn transmit(
    sender: &mut Sender,
    batch: &mut SendBatch,
    pacer: &mut Pacer,
    socket: &UdpSocket,
    overhead: usize,
    stats: &TxStats,
    durable: &mut Durable,
) {
    sender.set_report(
        crate::telemetry::unix_ms(),
        stats.dropped_total(),
        stats.spool_bytes.get(),
    );
    sender.handle_timeout(Instant::now());
    loop {
        batch.fill_from(sender);
        if batch.pending() == 0 {
            break;
        }
        let wire = batch.pending_bytes() + batch.pending() * overhead;
        if let Some(wait) = pacer.take(Instant::now(), wire) {
            tokio::time::sleep(wait).await;
        }
        send_batch(socket, batch, stats).await;
        durable.poll(sender, stats);
    }
    let s = sender.stats();
    stats.records_sent.set(s.records);
    stats.blocks_sent.set(s.blocks);
    stats.datagrams_sent.set(s.datagrams);
    stats.bytes_sent.set(s.bytes);
    stats.heartbeats_sent.set(s.heartbeats);
    stats.repair_sent.set(s.repair_symbols);
    stats.queued_blocks.set(sender.queued_blocks() as u64);
}

/// Send every datagram of `batch`, waiting for socket space as needed. A send error drops the
/// rest of the batch, counted per datagram.
async fn send_batch(socket: &UdpSocket, batch: &mut SendBatch, stats: &TxStats) {
    while batch.pending() > 0 {
        match socket
            .async_io(Interest::WRITABLE, || batch.send(socket.as_fd()))
            .await
        {
            Ok(_) => {}
            Err(error) => {
                stats.send_errors.add(batch.pending() as u64);
                warn!(message = "Diode send failed.", %error, datagrams = batch.pending());
                batch.clear();
            }
        }
    }
}

/// Push one record. Its source hears it is taken once the ledger covers it (`ledgered`), or
/// at once without a ledger (benchmarks, tests).
fn push(sender: &mut Sender, record: Record, stats: &TxStats, durable: &mut Durable) {
    let result = sender.push(Instant::now(), record.stream, &record.payload);
    if let Some(taken) = record.taken {
        if durable.ledger.is_some() {
            durable.awaiting.push_back(Awaiting {
                stream: record.stream.0,
                sequence: result.as_ref().ok().copied(),
                taken,
            });
        } else {
            taken.done();
        }
    }
    match result {
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

#[cfg(test)]
mod tests {
    use super::*;
    use weir_diode_proto::{Cipher, Codec, SenderConfig};

    /// The bucket holds `burst` of link time and no more: after any idle time the sender may
    /// send that much at once, and the next byte waits exactly its own time at the rate.
    #[test]
    fn the_pacer_lets_out_one_burst_after_idle_time_then_the_rate() {
        let t0 = Instant::now();
        for ms in [2u64, 4, 10] {
            let pacing = Pacing {
                bits_per_second: 1_000_000_000,
                burst: Duration::from_millis(ms),
            };
            let mut p = Pacer::new(pacing, t0);
            let burst = 125_000 * ms as usize;
            assert_eq!(p.burst_bytes(), burst);
            // A second of idle time fills the bucket, never beyond its depth.
            let later = t0 + Duration::from_secs(1);
            assert_eq!(p.take(later, burst), None);
            let wait = p.take(later, 125_000).expect("empty bucket waits");
            assert!((wait.as_secs_f64() - 0.001).abs() < 1e-9, "{wait:?}");
        }
        // Slow links keep at least 64 KiB (one GSO batch).
        let slow = Pacer::new(Pacing::at(1_000_000), t0);
        assert_eq!(slow.burst_bytes(), 65_536);
    }

    /// A stopping agent sends its final heartbeat more than once, spaced in time: over a
    /// one-way link only repetition makes the news of the streams' last records arrive.
    #[tokio::test]
    async fn the_final_heartbeat_is_repeated() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        receiver
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        let destination = receiver.local_addr().expect("addr");
        let key = crate::config::DiodeKey::generate(1).expect("key");
        let sender = Sender::new(
            SenderConfig {
                key_id: key.id,
                key: key.secret,
                cipher: Cipher::Aes256Gcm,
                session: 7,
                mtu_bytes: 1500,
                ip_version: IpVersion::of(destination),
                codec: Codec::None,
                max_block_bytes: 65_536,
                max_record_bytes: 60_000,
                linger: Duration::from_millis(20),
                heartbeat_interval: Duration::from_secs(60),
                fingerprint: 1,
                max_queued_blocks: 8,
                repair_percent: 0,
                expected_loss_percent: 0.0,
                interleave_blocks: 1,
                identity: None,
            },
            Instant::now(),
        )
        .expect("sender");
        let socket =
            crate::diode::udp::bind_udp("127.0.0.1:0".parse().expect("address"), None, None)
                .expect("socket");
        let (queue_tx, queue_rx) = mpsc::channel(1);
        drop(queue_tx);
        let (_streams_tx, streams_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(TxStats::default());
        let started = Instant::now();
        run(
            sender,
            queue_rx,
            streams_rx,
            Arc::new(std::sync::atomic::AtomicU16::new(0)),
            socket,
            destination,
            Pacing::at(1_000_000_000),
            false,
            stats.clone(),
            None,
        )
        .await;
        assert!(started.elapsed() >= FINAL_HEARTBEAT_SPACING * FINAL_HEARTBEAT_REPEATS);
        let mut received = 0u64;
        let mut buf = [0u8; 2048];
        while receiver.recv(&mut buf).is_ok() {
            received += 1;
        }
        let sent = stats.heartbeats_sent.get();
        assert!(
            sent > u64::from(FINAL_HEARTBEAT_REPEATS),
            "{sent} heartbeats"
        );
        assert_eq!(received, sent, "only heartbeats, each one datagram");
        assert_eq!(stats.datagrams_sent.get(), sent);
    }
}
