/*!
The agent's session ledger (`agent-session` in `[tx] state_dir`): how far the current diode
session has handed records to the link, written synced while the agent runs.

```text
 diode sender ──(positions of whole blocks sent)──► ledger writer thread ──► agent-session
      ▲                                                   │ (synced, renamed into place)
      └──── sources' positions advance (bookmarks, WEF Acks) ◄┘ only up to what it holds
```

Two promises rest on it:

* **A source position never runs ahead of the link.** An `.evtx` bookmark, a WEF Ack or a
  spool acknowledgement advances for a record only once the block holding it has been handed
  to the link *and* the ledger saying so is on disk. What a `kill -9` or a power loss leaves
  unsent is read again from the source after the restart.
* **The tail of a killed session is counted.** A start that finds a ledger not marked closed
  (the agent died without its final heartbeats) first sends heartbeats of that old session
  with the ledger's positions ([`weir_diode_proto::Sender::closing`]): the receiver turns
  whatever of it never arrived into gap records before the new session replaces it.

File layout: the [`SenderLedger`] bytes, then their CRC-32C (4 bytes, big-endian). A file
that is empty, torn or damaged is moved aside (`agent-session.damaged`), logged, and the start
goes on without closing (the receiver then closes the old session from its last heartbeat).
A write that fails (full disk) is logged and counted (`ledger_write_errors_total`); positions
then advance on transmission alone, so that a full disk never stops the sources.
*/

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{info, warn};
use weir_diode_proto::{Sender, SenderConfig, SenderLedger};

/// The ledger file's name in the state directory.
pub const FILE: &str = "agent-session";
/// Closing heartbeats sent for a session that ended without its own.
pub const CLOSING_COPIES: u64 = 5;
/// Time between them.
pub const CLOSING_SPACING: Duration = Duration::from_millis(20);
/// The ledger is written at most this often when no source waits on it.
pub const IDLE_WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// The ledger's bytes with their checksum.
pub fn encode(ledger: &SenderLedger) -> Vec<u8> {
    let mut out = Vec::new();
    ledger.encode(&mut out);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A ledger from its file bytes; `None` unless checksum and layout hold exactly.
pub fn decode(bytes: &[u8]) -> Option<SenderLedger> {
    let split = bytes.len().checked_sub(4)?;
    let (body, crc) = bytes.split_at(split);
    let crc = u32::from_be_bytes(crc.try_into().ok()?);
    if crc32c::crc32c(body) != crc {
        return None;
    }
    SenderLedger::decode(body)
}

/// Write `ledger` to `path`, synced.
pub fn write(path: &Path, ledger: &SenderLedger) -> std::io::Result<()> {
    crate::durable::write_synced(path, &encode(ledger))
}

/// Read the ledger at `path`. Missing: `None`. Unreadable or damaged: moved aside, logged,
/// `None`.
pub fn read(path: &Path) -> Option<SenderLedger> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            warn!(message = "Agent session ledger unreadable; the previous session is left to the receiver to close.", path = %path.display(), %error);
            return None;
        }
    };
    match decode(&bytes) {
        Some(l) => Some(l),
        None => {
            let mut aside = path.as_os_str().to_owned();
            aside.push(".damaged");
            let moved = std::fs::rename(path, &aside).is_ok();
            warn!(
                message = "Agent session ledger damaged (a power loss can leave it so); moved aside, the previous session is left to the receiver to close.",
                path = %path.display(),
                bytes = bytes.len(),
                moved_to = %if moved { PathBuf::from(aside).display().to_string() } else { String::new() },
            );
            None
        }
    }
}

/// What closing the previous session did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The session closed.
    pub session: u64,
    /// Its boot.
    pub boot: u64,
    /// Records it had handed to the link, summed over its streams.
    pub records: u64,
}

/// Close the session of the previous start if it ended without its final heartbeats: send
/// [`CLOSING_COPIES`] heartbeats of it, from its ledger, before anything of the new session.
/// The ledger is written first with the counters those copies use, so that a start that dies
/// right here never seals the same counter twice.
pub async fn close_previous(
    path: &Path,
    cfg: &SenderConfig,
    socket: &UdpSocket,
    destination: SocketAddr,
) -> Option<Closed> {
    let mut ledger = read(path)?;
    if ledger.closed {
        return None;
    }
    let agent = cfg.identity.as_ref().map(|i| i.agent.as_str());
    if agent != Some(ledger.identity.agent.as_str()) {
        info!(message = "Agent session ledger is of another agent name; not closing it.", ledger_agent = %ledger.identity.agent);
        return None;
    }
    let mut closing = match Sender::closing(cfg, &ledger, Instant::now()) {
        Ok(s) => s,
        Err(error) => {
            warn!(message = "Cannot close the previous diode session.", %error);
            return None;
        }
    };
    // Counters from closing_counter() on are about to be used: record that first.
    ledger.heartbeat_counter = ledger.closing_counter().saturating_add(CLOSING_COPIES);
    if let Err(error) = write(path, &ledger) {
        warn!(message = "Cannot write the agent session ledger; the previous session is left to the receiver to close.", path = %path.display(), %error);
        return None;
    }
    let mut buf = vec![0u8; closing.max_datagram_len()];
    for i in 0..CLOSING_COPIES {
        if i > 0 {
            tokio::time::sleep(CLOSING_SPACING).await;
        }
        closing.set_report(crate::telemetry::unix_ms(), 0, 0);
        closing.queue_heartbeat();
        while let Some(n) = closing.poll_transmit(&mut buf) {
            if let Some(d) = buf.get(..n) {
                if let Err(error) = socket.send_to(d, destination).await {
                    warn!(message = "Cannot send a closing heartbeat.", %error);
                }
            }
        }
    }
    ledger.closed = true;
    if let Err(error) = write(path, &ledger) {
        warn!(message = "Cannot write the agent session ledger.", path = %path.display(), %error);
    }
    let records = ledger.streams.iter().map(|s| s.next_sequence).sum();
    info!(
        message = "Previous diode session ended without its final heartbeats (crash, kill or power loss); closed it from the ledger so the receiver counts what never arrived.",
        session = %format!("{:016x}", ledger.session),
        boot = ledger.identity.boot,
        records,
    );
    Some(Closed {
        session: ledger.session,
        boot: ledger.identity.boot,
        records,
    })
}

/// The writer thread's handle, owned by the diode sending loop.
pub struct Writer {
    path: PathBuf,
    requests: std::sync::mpsc::Sender<SenderLedger>,
    /// Written (or failed: `Err` carries the ledger that could not be written) ledgers.
    pub done: mpsc::UnboundedReceiver<Result<SenderLedger, SenderLedger>>,
    busy: bool,
    /// (blocks sent whole, streams) of the last ledger asked for.
    last: Option<(u64, usize)>,
    last_at: Option<Instant>,
}

impl Writer {
    /// Start the writer thread for the ledger at `path`.
    pub fn spawn(path: PathBuf) -> std::io::Result<Writer> {
        let (requests, inbox) = std::sync::mpsc::channel::<SenderLedger>();
        let (reply, done) = mpsc::unbounded_channel();
        let file = path.clone();
        std::thread::Builder::new()
            .name("weir-ledger".into())
            .spawn(move || {
                let mut warned: Option<Instant> = None;
                while let Ok(mut ledger) = inbox.recv() {
                    // Only the newest matters.
                    while let Ok(newer) = inbox.try_recv() {
                        ledger = newer;
                    }
                    let result = match write(&file, &ledger) {
                        Ok(()) => Ok(ledger),
                        Err(error) => {
                            if warned.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                                warned = Some(Instant::now());
                                warn!(message = "Cannot write the agent session ledger; source positions advance on transmission alone until it can.", path = %file.display(), %error);
                            }
                            Err(ledger)
                        }
                    };
                    if reply.send(result).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Writer {
            path,
            requests,
            done,
            busy: false,
            last: None,
            last_at: None,
        })
    }

    /// A write is under way.
    pub fn busy(&self) -> bool {
        self.busy
    }

    /// The writer finished one write.
    pub fn finished(&mut self) {
        self.busy = false;
    }

    /// Ask for `sender`'s ledger to be written unless a write is under way or no block has
    /// gone out whole since the last one; `urgent`: a source waits on it (else at most once
    /// per [`IDLE_WRITE_INTERVAL`]).
    pub fn offer(&mut self, sender: &Sender, urgent: bool) {
        if self.busy {
            return;
        }
        let mark = (sender.sent_blocks(), sender.stream_count());
        if self.last == Some(mark) {
            return;
        }
        let due = self
            .last_at
            .is_none_or(|t| t.elapsed() >= IDLE_WRITE_INTERVAL);
        if !(urgent || due) {
            return;
        }
        self.last_at = Some(Instant::now());
        self.last = Some(mark);
        if self.requests.send(sender.ledger()).is_ok() {
            self.busy = true;
        }
    }

    /// The session's end: its final heartbeats are sent, nothing needs closing at the next
    /// start. Written here and now, after any write under way.
    pub async fn close(mut self, mut ledger: SenderLedger) -> Result<(), std::io::Error> {
        if self.busy {
            let _ = self.done.recv().await;
        }
        ledger.closed = true;
        let path = self.path.clone();
        drop(self.requests);
        tokio::task::spawn_blocking(move || write(&path, &ledger))
            .await
            .map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> SenderLedger {
        SenderLedger {
            session: 9,
            closed: false,
            next_block: 4,
            heartbeat_counter: 3,
            identity: weir_diode_proto::Identity {
                agent: "zone-1".into(),
                boot: 17,
                started_unix_ms: 17_000,
            },
            streams: vec![weir_diode_proto::StreamPosition {
                id: 0,
                next_sequence: 42,
                name: "syslog".into(),
            }],
        }
    }

    /// Round trip through the file; any flipped bit, a cut or an empty file is refused and the
    /// file moved aside.
    #[test]
    fn damaged_ledgers_are_refused_and_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        write(&path, &sample()).unwrap();
        assert_eq!(read(&path), Some(sample()));
        let good = encode(&sample());
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            assert_eq!(decode(&bad), None, "bit flipped in byte {i}");
        }
        assert_eq!(decode(&good[..good.len() - 1]), None);
        std::fs::write(&path, b"").unwrap();
        assert_eq!(read(&path), None);
        assert!(!path.exists());
        assert!(dir.path().join("agent-session.damaged").exists());
    }
}
