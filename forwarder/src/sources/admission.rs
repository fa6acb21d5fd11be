/*!
Who may hold a connection to a TCP source, and for how long: the agent's defence against hosts
on the OT side that open connections and never use them.

* **Slots.** At most `max_connections` connections at once per source, and at most
  `max_connections_per_address` of them from one IP address, so one host (or one scanner)
  cannot take every slot; a connection over either limit is closed at once and counted by
  reason (`connections_refused_total{reason="max_connections" | "per_address"}`).
* **Idle connections.** A read that waits longer than `idle_timeout_seconds` for its next byte
  closes the connection (`connections_closed_idle_total`). The clock runs only while the source
  wants to read: a connection paused because the diode pushes back is not idle.
* **Quiet logs.** Refusals are logged at most once per [`LOG_EVERY`] per source, with the count
  since the last line, so a flood of connections cannot flood the journal.
*/

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::warn;

use crate::telemetry::TxStats;

/// At most one refusal log line per source this often.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot of the source is taken.
    MaxConnections,
    /// The peer's address holds its share already.
    PerAddress,
}

/// The slots of one source.
pub struct Admission {
    source: String,
    slots: Arc<Semaphore>,
    max_per_address: usize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    stats: Arc<TxStats>,
    log: Mutex<(Option<Instant>, u64)>,
}

/// A connection's slot; given back when dropped.
pub struct Admitted {
    admission: Arc<Admission>,
    address: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut map = lock(&self.admission.per_address);
        if let Some(n) = map.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.address);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Admission {
    /// Slots for `source`: `max` in all, `max_per_address` per peer address (both at least 1).
    pub fn new(
        source: &str,
        max: usize,
        max_per_address: usize,
        stats: Arc<TxStats>,
    ) -> Arc<Admission> {
        Arc::new(Admission {
            source: source.to_owned(),
            slots: Arc::new(Semaphore::new(max.max(1))),
            max_per_address: max_per_address.max(1),
            per_address: Mutex::new(HashMap::new()),
            stats,
            log: Mutex::new((None, 0)),
        })
    }

    /// Take a slot for a connection from `address`, or count and (rate-limited) log why not.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Admitted, Refusal> {
        let result = self.try_admit(address);
        match result {
            Ok(_) => self.stats.connections_accepted.inc(),
            Err(Refusal::MaxConnections) => self.stats.connections_refused.inc(),
            Err(Refusal::PerAddress) => self.stats.connections_refused_per_address.inc(),
        }
        if let Err(reason) = result {
            self.log_refusal(address, reason);
        }
        result
    }

    fn try_admit(self: &Arc<Self>, address: IpAddr) -> Result<Admitted, Refusal> {
        let permit = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::MaxConnections)?;
        let mut map = lock(&self.per_address);
        let held = map.get(&address).copied().unwrap_or(0);
        if held >= self.max_per_address {
            return Err(Refusal::PerAddress);
        }
        map.insert(address, held + 1);
        Ok(Admitted {
            admission: self.clone(),
            address,
            _permit: permit,
        })
    }

    fn log_refusal(&self, address: IpAddr, reason: Refusal) {
        let mut log = lock(&self.log);
        log.1 += 1;
        if log.0.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            return;
        }
        let refused = std::mem::take(&mut log.1);
        log.0 = Some(Instant::now());
        drop(log);
        let why = match reason {
            Refusal::MaxConnections => "max_connections reached",
            Refusal::PerAddress => "max_connections_per_address reached for this address",
        };
        warn!(
            message = "Connections refused (at most one line per 10 s).",
            source = %self.source,
            last_peer = %address,
            last_reason = why,
            refused_since_last_line = refused,
        );
    }
}

/// A stream whose reads fail with [`io::ErrorKind::TimedOut`] after `idle` without a byte.
/// The clock starts when a read begins to wait, so time the reader spends elsewhere (a full
/// queue) never counts.
pub struct IdleTimeout<S> {
    inner: S,
    idle: Option<Duration>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    waiting: bool,
    stats: Arc<TxStats>,
}

impl<S> IdleTimeout<S> {
    /// Wrap `inner`; `None` never times out.
    pub fn new(inner: S, idle: Option<Duration>, stats: Arc<TxStats>) -> IdleTimeout<S> {
        IdleTimeout {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            waiting: false,
            stats,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.waiting = false;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let Some(idle) = this.idle else {
                    return Poll::Pending;
                };
                if !this.waiting {
                    this.waiting = true;
                    this.sleep
                        .as_mut()
                        .reset(tokio::time::Instant::now() + idle);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.waiting = false;
                        this.stats.connections_closed_idle.inc();
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "idle_timeout_seconds passed without a byte",
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_take_every_slot() {
        let a = Admission::new("t", 4, 2, Arc::new(TxStats::default()));
        let one: IpAddr = "127.0.0.1".parse().unwrap();
        let two: IpAddr = "127.0.0.2".parse().unwrap();
        let x = a.admit(one).unwrap();
        let _y = a.admit(one).unwrap();
        assert_eq!(a.admit(one).err(), Some(Refusal::PerAddress));
        let _z = a.admit(two).unwrap();
        let _w = a.admit(two).unwrap();
        assert_eq!(
            a.admit("127.0.0.3".parse().unwrap()).err(),
            Some(Refusal::MaxConnections)
        );
        drop(x);
        let _v = a.admit(one).unwrap();
        assert_eq!(a.stats.connections_refused.get(), 1);
        assert_eq!(a.stats.connections_refused_per_address.get(), 1);
        assert_eq!(a.stats.connections_accepted.get(), 5);
    }
}
