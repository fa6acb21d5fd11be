//! What `/health` reports on each side (served by [`crate::metrics`]).

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::metrics::Source;
use crate::telemetry::{unix_ms, RxStats, TxStats};

/// The agent: alive while it runs; says whether it is sending and dropping.
pub struct TxHealth {
    /// Counters.
    pub stats: Arc<TxStats>,
    /// Diode session epoch.
    pub session: u64,
    /// Process start.
    pub started: Instant,
}

impl Source for TxHealth {
    fn counters(&self) -> Value {
        self.stats.to_json()
    }

    fn health(&self) -> (bool, Value) {
        (
            true,
            json!({
                "status": "ok",
                "side": "tx",
                "session": format!("{:016x}", self.session),
                "uptime_seconds": self.started.elapsed().as_secs(),
                "records_sent": self.stats.records_sent.get(),
                "events_dropped": self.stats.dropped_total(),
                "queued_blocks": self.stats.queued_blocks.get(),
            }),
        )
    }
}

/// The receiver: alive while it runs; `link` says whether datagrams are arriving (heartbeats
/// come every second by default, so 5 seconds of silence means the agent or the link is down).
pub struct RxHealth {
    /// Counters.
    pub stats: Arc<RxStats>,
    /// Process start.
    pub started: Instant,
}

/// Silence after which the receiver reports the link as silent.
const SILENT_AFTER_MS: u64 = 5_000;

impl Source for RxHealth {
    fn counters(&self) -> Value {
        self.stats.to_json()
    }

    fn health(&self) -> (bool, Value) {
        let last = self.stats.last_datagram_unix_ms.get();
        let (link, age) = match last {
            0 => ("never_seen", Value::Null),
            t => {
                let age = unix_ms().saturating_sub(t);
                let state = if age > SILENT_AFTER_MS {
                    "silent"
                } else {
                    "up"
                };
                (state, json!(age as f64 / 1000.0))
            }
        };
        (
            true,
            json!({
                "status": "ok",
                "side": "rx",
                "link": link,
                "seconds_since_last_datagram": age,
                "uptime_seconds": self.started.elapsed().as_secs(),
                "sessions": self.stats.sessions.get(),
                "records_lost": self.stats.records_lost.get(),
                "events_dropped": self.stats.dropped_queue_full.get(),
            }),
        )
    }
}
