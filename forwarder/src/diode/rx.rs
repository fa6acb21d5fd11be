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
    let inode = socket_inode(&socket);
    let mut last_drops_check = Instant::now();
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
                                    forward(output, &work, &budget, &stats, &cancel).await;
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
            forward(output, &work, &budget, &stats, &cancel).await;
        }
        mirror(&receiver, &stats);
        if last_drops_check.elapsed() >= std::time::Duration::from_secs(1) {
            last_drops_check = Instant::now();
            if let Some(drops) = kernel_drops(inode) {
                stats.datagrams_dropped_kernel.set(drops);
            }
        }
        stats.sink_queue_bytes.set(budget.used() as u64);
    }
    if let Some(drops) = kernel_drops(inode) {
        stats.datagrams_dropped_kernel.set(drops);
    }
    let _ = work.send(Work::Stop);
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Hand one output to the sink stage, in order, never dropping it: when the queue is full
/// the loop waits (the socket buffer absorbs the wait; datagrams the kernel has to drop are
/// counted and the blocks they belonged to become gap records, so loss stays exactly
/// accounted). Heartbeats and lost-block notices make no event but move the durable state.
async fn forward(
    output: Output,
    work: &SyncSender<Work>,
    budget: &QueueBudget,
    stats: &RxStats,
    cancel: &CancellationToken,
) {
    let bytes = match &output {
        Output::Block { records, .. } => records.byte_len().min(budget.max()),
        Output::Heartbeat { .. } => 0,
        Output::BlocksLost { first, last, .. } => {
            warn!(message = "Diode blocks lost.", first, last);
            0
        }
        _ => 512.min(budget.max()),
    };
    let mut item = Work::Diode(output, bytes);
    let mut waited = false;
    loop {
        if budget.try_take(bytes) {
            match work.try_send(item) {
                Ok(()) => return,
                Err(TrySendError::Full(back)) => {
                    budget.release(bytes);
                    item = back;
                }
                Err(TrySendError::Disconnected(_)) => {
                    budget.release(bytes);
                    return;
                }
            }
        }
        if !waited {
            waited = true;
            stats.sink_waits.inc();
        }
        if cancel.is_cancelled() {
            // Shutting down: wait for the sink stage without the timer (it drains the queue),
            // and outside the byte budget, so the item carries no bytes to give back.
            if let Work::Diode(output, _) = item {
                let _ = work.send(Work::Diode(output, 0));
            }
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// The inode of the socket, to find its line in `/proc/net/udp`.
fn socket_inode(socket: &UdpSocket) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
    let text = link.to_str()?;
    text.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Datagrams the kernel dropped for this socket (receive buffer full), from the `drops` column
/// of `/proc/net/udp` or `/proc/net/udp6`.
fn kernel_drops(inode: Option<u64>) -> Option<u64> {
    let inode = inode?.to_string();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.get(9) == Some(&inode.as_str()) {
                return cols.last()?.parse().ok();
            }
        }
    }
    None
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
    stats.pending_blocks.set(s.pending_blocks);
    stats.pending_bytes.set(s.pending_bytes);
    stats.blocks_shed.set(s.blocks_shed);
}
