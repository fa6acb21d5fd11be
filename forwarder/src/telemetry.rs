//! Logging setup and the named counters both sides keep.
//!
//! Counters are plain atomics, shared by `Arc`; the process prints them as one JSON summary when
//! it stops (and `weir demo` prints them as a table). Names follow Vector's component spec:
//! `events_received_total`, `events_dropped_total{reason}`, `diode_gaps_total`, ...

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Map, Value};
use weir_schemas::EventClass;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Add one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Add `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Overwrite (for values mirrored from a state machine).
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }

    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One counter per event class.
#[derive(Debug, Default)]
pub struct PerClass([Counter; 7]);

impl PerClass {
    /// The counter of `class`.
    pub fn of(&self, class: EventClass) -> &Counter {
        let i = EventClass::ALL
            .iter()
            .position(|c| *c == class)
            .unwrap_or(0);
        // `i` < 7 by construction.
        &self.0[i]
    }

    /// Sum over all classes.
    pub fn total(&self) -> u64 {
        self.0.iter().map(Counter::get).sum()
    }

    /// `{"syslog": n, ...}` with zero classes left out.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for c in EventClass::ALL {
            let n = self.of(c).get();
            if n > 0 {
                m.insert(c.as_str().into(), n.into());
            }
        }
        Value::Object(m)
    }
}

/// The OT-side agent's counters.
#[derive(Debug, Default)]
pub struct TxStats {
    /// Events read by sources, by class.
    pub events_received: PerClass,
    /// Inputs that did not parse and travel as raw events.
    pub parse_errors: Counter,
    /// TCP framing problems (oversize, bad octet count, truncated frame).
    pub framing_errors: Counter,
    /// Dropped: the source → diode queue was full (UDP sources cannot push back).
    pub dropped_queue_full: Counter,
    /// Dropped: frames over `max_message_bytes` with `oversize = "drop"`.
    pub dropped_oversize: Counter,
    /// Dropped: the event did not fit a diode block.
    pub dropped_too_large: Counter,
    /// TCP connections accepted.
    pub connections_accepted: Counter,
    /// TCP connections refused (over `max_connections`).
    pub connections_refused: Counter,
    /// TCP connections refused (over `max_connections_per_address`).
    pub connections_refused_per_address: Counter,
    /// TCP connections closed after `idle_timeout_seconds` without a byte.
    pub connections_closed_idle: Counter,
    /// HTTP bodies refused because the source's in-flight body budget was spent (503).
    pub http_bodies_refused_busy: Counter,
    /// HTTP bodies not finished within `body_timeout_seconds` (408).
    pub http_bodies_timed_out: Counter,
    /// Records handed to the diode.
    pub records_sent: Counter,
    /// Blocks sealed.
    pub blocks_sent: Counter,
    /// Datagrams sent.
    pub datagrams_sent: Counter,
    /// Datagram bytes sent.
    pub bytes_sent: Counter,
    /// Heartbeats sent.
    pub heartbeats_sent: Counter,
    /// Repair (FEC) datagrams sent.
    pub repair_sent: Counter,
    /// Datagrams the OS refused to send.
    pub send_errors: Counter,
    /// Writes of the agent session ledger that failed (see `crate::ledger`).
    pub ledger_write_errors: Counter,
    /// Starts that closed a previous session left without its final heartbeats.
    pub sessions_closed_at_start: Counter,
    /// Gauge: sealed blocks waiting for the link.
    pub queued_blocks: Counter,
    /// Events written to the spool.
    pub spooled: Counter,
    /// Dropped: the spool was full (either overflow policy).
    pub dropped_spool_full: Counter,
    /// Dropped: the spool could not be written.
    pub dropped_spool_error: Counter,
    /// Damaged spool records skipped.
    pub spool_corrupt: Counter,
    /// Gauge: spool bytes on disk.
    pub spool_bytes: Counter,
    /// Gauge: events in the spool.
    pub spool_records: Counter,
    /// `.evtx` chunks that could not be read (damaged), skipped.
    pub evtx_chunks_damaged: Counter,
    /// `.evtx` records that could not be read (damaged), skipped.
    pub evtx_records_damaged: Counter,
    /// `.evtx` records overwritten in the log before the agent read them (found as a gap in
    /// record ids after the bookmark).
    pub evtx_records_missed: Counter,
    /// Frames read by capture sources.
    pub capture_packets: Counter,
    /// Frames that could not be decoded to IP.
    pub capture_undecodable: Counter,
    /// Packets the kernel dropped (libpcap `ps_drop`): the capture buffer was full.
    pub capture_kernel_drops: Counter,
    /// Packets the interface dropped (libpcap `ps_ifdrop`).
    pub capture_interface_drops: Counter,
    /// Flows created.
    pub flows_created: Counter,
    /// Flows evicted because the flow table was full.
    pub flows_evicted: Counter,
    /// Industrial protocol transactions seen.
    pub ot_transactions: Counter,
    /// Protocol streams that lost their framing and resynchronised.
    pub ot_stream_resyncs: Counter,
    /// WEC: subscription enumerations answered.
    pub wec_enumerations: Counter,
    /// WEC: event batches acknowledged.
    pub wec_batches: Counter,
    /// WEC: batches sent again after their Ack was lost, acknowledged without queueing.
    pub wec_batches_repeated: Counter,
    /// WEC: heartbeats acknowledged.
    pub wec_heartbeats: Counter,
    /// WEC: subscriptions ended by clients.
    pub wec_subscription_ends: Counter,
    /// WEC: requests answered with a SOAP fault or an HTTP error.
    pub wec_faults: Counter,
    /// WEC: TLS handshakes that failed (no client certificate, another CA, timeout).
    pub wec_tls_refused: Counter,
    /// Configuration reloads (SIGHUP) applied.
    pub reloads_applied: Counter,
    /// Configuration reloads refused (the file did not load, or changed what needs a restart).
    pub reloads_failed: Counter,
    /// `.evtx` files given up because the parser panicked on them.
    pub evtx_files_failed: Counter,
    /// WEC bookmarks forgotten (retention or `max_hosts`).
    pub wec_bookmarks_pruned: Counter,
    /// Panics caught in a source's connection handler (the connection closed, the source goes
    /// on).
    pub component_panics: Counter,
}

impl TxStats {
    /// Records dropped before the diode, all reasons.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_queue_full.get()
            + self.dropped_oversize.get()
            + self.dropped_too_large.get()
            + self.dropped_spool_full.get()
            + self.dropped_spool_error.get()
    }

    /// The summary printed at exit.
    pub fn to_json(&self) -> Value {
        json!({
            "side": "tx",
            "events_received_total": self.events_received.to_json(),
            "parse_errors_total": self.parse_errors.get(),
            "framing_errors_total": self.framing_errors.get(),
            "events_dropped_total": {
                "queue_full": self.dropped_queue_full.get(),
                "oversize": self.dropped_oversize.get(),
                "too_large": self.dropped_too_large.get(),
                "spool_full": self.dropped_spool_full.get(),
                "spool_error": self.dropped_spool_error.get(),
            },
            "connections_accepted_total": self.connections_accepted.get(),
            "connections_refused_total": {
                "max_connections": self.connections_refused.get(),
                "per_address": self.connections_refused_per_address.get(),
            },
            "connections_closed_idle_total": self.connections_closed_idle.get(),
            "http_bodies_refused_total": {
                "busy": self.http_bodies_refused_busy.get(),
                "timeout": self.http_bodies_timed_out.get(),
            },
            "diode_records_sent_total": self.records_sent.get(),
            "diode_blocks_sent_total": self.blocks_sent.get(),
            "diode_datagrams_sent_total": self.datagrams_sent.get(),
            "diode_bytes_sent_total": self.bytes_sent.get(),
            "diode_heartbeats_sent_total": self.heartbeats_sent.get(),
            "diode_repair_datagrams_sent_total": self.repair_sent.get(),
            "diode_send_errors_total": self.send_errors.get(),
            "ledger_write_errors_total": self.ledger_write_errors.get(),
            "diode_sessions_closed_at_start_total": self.sessions_closed_at_start.get(),
            "diode_queued_blocks": self.queued_blocks.get(),
            "spooled_total": self.spooled.get(),
            "spool_corrupt_records_total": self.spool_corrupt.get(),
            "spool_bytes": self.spool_bytes.get(),
            "spool_records": self.spool_records.get(),
            "evtx_chunks_damaged_total": self.evtx_chunks_damaged.get(),
            "evtx_records_damaged_total": self.evtx_records_damaged.get(),
            "evtx_records_missed_total": self.evtx_records_missed.get(),
            "evtx_files_failed_total": self.evtx_files_failed.get(),
            "capture_packets_total": self.capture_packets.get(),
            "capture_undecodable_total": self.capture_undecodable.get(),
            "capture_kernel_drops_total": self.capture_kernel_drops.get(),
            "capture_interface_drops_total": self.capture_interface_drops.get(),
            "flows_created_total": self.flows_created.get(),
            "flows_evicted_total": self.flows_evicted.get(),
            "ot_transactions_total": self.ot_transactions.get(),
            "ot_stream_resyncs_total": self.ot_stream_resyncs.get(),
            "wec_enumerations_total": self.wec_enumerations.get(),
            "wec_batches_total": self.wec_batches.get(),
            "wec_batches_repeated_total": self.wec_batches_repeated.get(),
            "wec_heartbeats_total": self.wec_heartbeats.get(),
            "wec_subscription_ends_total": self.wec_subscription_ends.get(),
            "wec_faults_total": self.wec_faults.get(),
            "wec_tls_refused_total": self.wec_tls_refused.get(),
            "wec_bookmarks_pruned_total": self.wec_bookmarks_pruned.get(),
            "component_panics_total": self.component_panics.get(),
            "config_reloads_total": {
                "applied": self.reloads_applied.get(),
                "failed": self.reloads_failed.get(),
            },
        })
    }
}

/// The IT-side receiver's counters.
#[derive(Debug, Default)]
pub struct RxStats {
    /// Events written to sinks, by class (each event once, whatever the number of sinks).
    pub events_sent: PerClass,
    /// Datagrams read from the socket.
    pub datagrams_received: Counter,
    /// UDP payload bytes read from the socket.
    pub bytes_received: Counter,
    /// Datagrams longer than the receiver's MTU (cut by the kernel, never decoded).
    pub datagrams_truncated: Counter,
    /// Datagrams rejected, by reason (see `weir_diode_proto::Reject::ALL`).
    pub datagrams_rejected: [Counter; 9],
    /// Datagrams the kernel dropped because the socket's receive buffer was full (the
    /// `drops` of this socket in `/proc/net/udp`).
    pub datagrams_dropped_kernel: Counter,
    /// Sessions refused (stale, agent not accepted, never attributed).
    pub sessions_refused: Counter,
    /// Gauge: incomplete diode blocks held.
    pub pending_blocks: Counter,
    /// Gauge: what they cost, bytes.
    pub pending_bytes: Counter,
    /// Incomplete blocks given up at the pending bound.
    pub blocks_shed: Counter,
    /// Records that were not exactly one JSON object without raw control characters (kept
    /// as `record-undecodable` events, never spliced into a SIEM body).
    pub records_invalid: Counter,
    /// Events written again after a restart because the receiver stopped while writing
    /// them (the only duplicates a restart makes).
    pub events_redelivered: Counter,
    /// Times the diode loop waited for the sink stage (the socket buffer absorbs the wait;
    /// what it cannot hold is dropped by the kernel, counted, and becomes gap records).
    pub sink_waits: Counter,
    /// Failed writes of the receiver's state journal or snapshot.
    pub journal_errors: Counter,
    /// Per agent (by `[agent] name`; `""` for agents that do not name themselves).
    pub agents: std::sync::Mutex<std::collections::BTreeMap<String, AgentStats>>,
    /// Records reported lost in gap records.
    pub records_lost: Counter,
    /// Gap records emitted.
    pub gaps: Counter,
    /// Blocks declared lost.
    pub blocks_lost: Counter,
    /// Blocks rebuilt with forward error correction.
    pub blocks_repaired: Counter,
    /// Duplicate records dropped.
    pub records_duplicate: Counter,
    /// Sessions seen (sender starts).
    pub sessions: Counter,
    /// Heartbeats accepted.
    pub heartbeats: Counter,
    /// Heartbeats with another settings fingerprint.
    pub settings_mismatches: Counter,
    /// Records that were not valid event JSON (forwarded as `weir` events).
    pub decode_errors: Counter,
    /// Records dropped because the queue to the sinks was full.
    pub dropped_queue_full: Counter,
    /// Events a sink failed to write.
    pub sink_errors: Counter,
    /// Panics caught in the sink stage (each one logged; the stage goes on).
    pub component_panics: Counter,
    /// Events of a batch that panicked twice: counted as lost.
    pub events_lost_panic: Counter,
    /// Gauge: bytes of decoded records queued towards the sinks.
    pub sink_queue_bytes: Counter,
    /// Gauge: when the last datagram arrived (Unix ms; 0: never).
    pub last_datagram_unix_ms: Counter,
    /// The SIEM outputs (their own counters).
    pub siem: std::sync::Mutex<Vec<std::sync::Arc<crate::pipeline::siem::SiemOutput>>>,
}

/// One agent's counters on the receiver.
#[derive(Debug, Default, Clone, Copy)]
pub struct AgentStats {
    /// Records received from its sessions.
    pub records: u64,
    /// Gap records about its streams.
    pub gaps: u64,
    /// Records in them.
    pub records_lost: u64,
    /// Its sessions taken up.
    pub sessions: u64,
    /// Its sessions refused (stale, not accepted).
    pub sessions_refused: u64,
    /// Datagrams of refused sessions that had been held and were discarded.
    pub datagrams_discarded: u64,
}

impl RxStats {
    /// Count for one agent.
    pub fn agent(&self, name: &str, f: impl FnOnce(&mut AgentStats)) {
        if let Ok(mut m) = self.agents.lock() {
            match m.get_mut(name) {
                Some(a) => f(a),
                None => f(m.entry(name.to_owned()).or_default()),
            }
        }
    }

    /// Rejected datagrams, all reasons.
    pub fn rejected_total(&self) -> u64 {
        self.datagrams_rejected.iter().map(Counter::get).sum()
    }

    /// The summary printed at exit.
    pub fn to_json(&self) -> Value {
        let mut rejected = Map::new();
        for (code, c) in weir_diode_proto::Reject::ALL
            .iter()
            .zip(&self.datagrams_rejected)
        {
            rejected.insert((*code).into(), c.get().into());
        }
        json!({
            "side": "rx",
            "events_sent_total": self.events_sent.to_json(),
            "diode_datagrams_received_total": self.datagrams_received.get(),
            "diode_bytes_received_total": self.bytes_received.get(),
            "diode_datagrams_rejected_total": rejected,
            "diode_datagrams_truncated_total": self.datagrams_truncated.get(),
            "diode_gaps_total": self.gaps.get(),
            "diode_records_lost_total": self.records_lost.get(),
            "diode_blocks_lost_total": self.blocks_lost.get(),
            "diode_blocks_repaired_total": self.blocks_repaired.get(),
            "diode_records_duplicate_total": self.records_duplicate.get(),
            "diode_sessions_total": self.sessions.get(),
            "diode_heartbeats_total": self.heartbeats.get(),
            "diode_settings_mismatches_total": self.settings_mismatches.get(),
            "diode_datagrams_dropped_kernel_total": self.datagrams_dropped_kernel.get(),
            "diode_sessions_refused_total": self.sessions_refused.get(),
            "diode_pending_blocks": self.pending_blocks.get(),
            "diode_pending_bytes": self.pending_bytes.get(),
            "diode_blocks_shed_total": self.blocks_shed.get(),
            "records_invalid_total": self.records_invalid.get(),
            "events_redelivered_total": self.events_redelivered.get(),
            "sink_waits_total": self.sink_waits.get(),
            "state_journal_errors_total": self.journal_errors.get(),
            "agent": self.agents.lock().map(|m| {
                m.iter()
                    .map(|(name, a)| {
                        (
                            name.clone(),
                            json!({
                                "diode_records_total": a.records,
                                "diode_gaps_total": a.gaps,
                                "diode_records_lost_total": a.records_lost,
                                "diode_sessions_total": a.sessions,
                                "diode_sessions_refused_total": a.sessions_refused,
                                "diode_datagrams_discarded_total": a.datagrams_discarded,
                            }),
                        )
                    })
                    .collect::<Map<String, Value>>()
            }).unwrap_or_default(),
            "decode_errors_total": self.decode_errors.get(),
            "events_dropped_total": { "queue_full": self.dropped_queue_full.get() },
            "sink_errors_total": self.sink_errors.get(),
            "component_panics_total": self.component_panics.get(),
            "events_lost_panic_total": self.events_lost_panic.get(),
            "sink_queue_bytes": self.sink_queue_bytes.get(),
            "diode_last_datagram_unix_ms": self.last_datagram_unix_ms.get(),
            "sink": self
                .siem
                .lock()
                .map(|o| crate::pipeline::siem::summary(&o))
                .unwrap_or_default(),
        })
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Log to stderr; `WEIR_LOG` (or `RUST_LOG`) sets the filter, default `info`. The `evtx`
/// crate's own chatter (one line per chunk) is kept at `warn` unless the filter names it.
pub fn init_logging() {
    let mut filter = std::env::var("WEIR_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    if !filter.contains("evtx") {
        filter.push_str(",evtx=warn");
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
