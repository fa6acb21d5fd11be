//! The receiving loop: datagrams from the socket into the [`Receiver`], its outputs onto the
//! bounded queue towards the sinks. It never waits on the sinks: when the queue is full, what
//! does not fit is dropped and counted, so the socket is always read.

use std::os::fd::AsFd;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;

use tokio::io::Interest;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use weir_diode_proto::{Output, Receiver};

use super::mmsg::{RecvBatch, MAX_BATCH};
use crate::pipeline::rx::{QueueBudget, Work};
use crate::telemetry::RxStats;

/// Run until cancelled; then tell the sink stage to stop. `slot_len` is the largest datagram
/// accepted (the receiver's MTU less IP and UDP headers); longer ones are counted as truncated.
pub async fn run(
    mut receiver: Receiver,
    socket: UdpSocket,
    slot_len: usize,
    work: SyncSender<Work>,
    budget: Arc<QueueBudget>,
    stats: Arc<RxStats>,
    cancel: CancellationToken,
) {
    // With GRO a slot holds a whole coalesced run (up to 64 KiB): fewer slots, same reach.
    let slots = if slot_len > 16_384 { 16 } else { MAX_BATCH };
    let mut batch = RecvBatch::new(slot_len, slots);
    loop {
        let timeout = receiver.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            // Datagrams before timers: everything already in the socket buffer is handled
            // before a block may be declared lost, so a pause in processing never passes for
            // loss on the link.
            biased;
            _ = cancel.cancelled() => break,
            r = socket.readable() => {
                if let Err(error) = r {
                    warn!(message = "Diode receive failed.", %error);
                    continue;
                }
                // Up to 16 batches (1,024 datagrams) before looking at timers and cancel.
                for _ in 0..16 {
                    match socket.try_io(Interest::READABLE, || batch.recv(socket.as_fd())) {
                        Ok(_) => {
                            let now = Instant::now();
                            stats.last_datagram_unix_ms.set(crate::telemetry::unix_ms());
                            for (d, truncated) in batch.datagrams() {
                                stats.datagrams_received.inc();
                                stats.bytes_received.add(d.len() as u64);
                                if truncated {
                                    // Longer than any datagram this receiver's MTU allows.
                                    stats.datagrams_truncated.inc();
                                    continue;
                                }
                                // Rejections are counted by the receiver and mirrored below.
                                let _ = receiver.handle_datagram(now, d);
                                while let Some(output) = receiver.poll_output() {
                                    forward(output, &work, &budget, &stats);
                                }
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(error) => {
                            warn!(message = "Diode receive failed.", %error);
                            break;
                        }
                    }
                }
            }
            _ = sleep_until(timeout), if timeout.is_some() => receiver.handle_timeout(Instant::now()),
        }
        while let Some(output) = receiver.poll_output() {
            forward(output, &work, &budget, &stats);
        }
        mirror(&receiver, &stats);
        stats.sink_queue_bytes.set(budget.used() as u64);
    }
    let _ = work.send(Work::Stop);
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn forward(output: Output, work: &SyncSender<Work>, budget: &QueueBudget, stats: &RxStats) {
    let (records, bytes) = match &output {
        Output::Block { records, .. } => (records.len() as u64, records.byte_len()),
        // Heartbeats and lost-block notices become no event (they are counters and logs):
        // they never take queue space, and are never counted as dropped events.
        Output::Heartbeat { .. } => return,
        Output::BlocksLost { first, last, .. } => {
            warn!(message = "Diode blocks lost.", first, last);
            return;
        }
        // Gap, session and mismatch notices each become one `weir` event.
        _ => (1, 512),
    };
    if !budget.try_take(bytes) {
        stats.dropped_queue_full.add(records);
        return;
    }
    match work.try_send(Work::Diode(output, bytes)) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            budget.release(bytes);
            stats.dropped_queue_full.add(records);
        }
        Err(TrySendError::Disconnected(_)) => budget.release(bytes),
    }
}

fn mirror(receiver: &Receiver, stats: &RxStats) {
    let s = receiver.stats();
    for (counter, value) in stats.datagrams_rejected.iter().zip(s.rejected) {
        counter.set(value);
    }
    stats.records_lost.set(s.records_lost);
    stats.blocks_lost.set(s.blocks_lost);
    stats.blocks_repaired.set(s.blocks_repaired);
    stats.records_duplicate.set(s.records_duplicate);
    stats.sessions.set(s.sessions);
    stats.heartbeats.set(s.heartbeats);
    stats.settings_mismatches.set(s.settings_mismatches);
}
