//! Start and stop the IT-side receiver, and its sink stage: decode records back into events,
//! stamp their diode provenance, turn gaps and session changes into `weir` events, route by
//! class, write.

use std::net::SocketAddr;
use std::sync::mpsc::{sync_channel, Receiver as WorkQueue, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use weir_diode_proto::{Gap, Output, Receiver, ReceiverConfig};
use weir_integrations::file::FileSink;
use weir_integrations::stdout::StdoutSink;
use weir_integrations::LocalSink;
use weir_schemas::{Event, EventClass};

use crate::config::{ClassFilter, RxConfig, SinkConfig};
use crate::diode;
use crate::pipeline::rx_state::Journal;
use crate::pipeline::siem::{SiemOutput, Siems};
use crate::telemetry::RxStats;
use weir_integrations::envelope::{
    complete_record, record_json, routed, stamp_into, stamp_routed_into, Envelope, Peek,
};

/// What the diode task hands the sink thread.
#[derive(Debug)]
pub enum Work {
    /// A receiver output, and the bytes it holds (released when the sinks are done with it).
    Diode(Output, usize),
    /// Flush and stop.
    Stop,
}

/// The bytes queued between the diode task and the sink thread, against a bound.
#[derive(Debug)]
pub struct QueueBudget {
    used: std::sync::atomic::AtomicUsize,
    max: usize,
}

impl QueueBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> QueueBudget {
        QueueBudget {
            used: std::sync::atomic::AtomicUsize::new(0),
            max,
        }
    }

    /// Reserve `n` bytes; false (nothing reserved) when that would pass the bound.
    pub fn try_take(&self, n: usize) -> bool {
        use std::sync::atomic::Ordering;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + n <= self.max).then_some(u + n)
            })
            .is_ok()
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Give `n` bytes back.
    pub fn release(&self, n: usize) {
        self.used.fetch_sub(n, std::sync::atomic::Ordering::AcqRel);
    }
}

/// A running receiver.
pub struct RxHandle {
    /// Counters.
    pub stats: Arc<RxStats>,
    /// The bound diode address.
    pub local_addr: SocketAddr,
    cancel: CancellationToken,
    diode: JoinHandle<()>,
    sinks: std::thread::JoinHandle<()>,
    siems: Siems,
}

impl RxHandle {
    /// Stop reading the diode, write what is queued, flush the sinks.
    pub async fn shutdown(self) -> Result<()> {
        self.cancel.cancel();
        self.diode
            .await
            .map_err(|e| anyhow!("diode receiver task failed: {e}"))?;
        let sinks = self.sinks;
        tokio::task::spawn_blocking(move || sinks.join())
            .await
            .map_err(|e| anyhow!("sink thread: {e}"))?
            .map_err(|_| anyhow!("sink thread panicked"))?;
        // SIEM buffers: a few seconds to deliver what is queued; the rest waits on disk.
        self.siems.shutdown(Duration::from_secs(5)).await;
        Ok(())
    }
}

/// Open the sinks, bind the diode socket and start.
pub async fn start(cfg: RxConfig) -> Result<RxHandle> {
    let mut sinks: Vec<(Box<dyn LocalSink>, ClassFilter)> = Vec::new();
    for s in &cfg.sinks {
        match s {
            SinkConfig::File {
                name,
                classes,
                file,
            } => sinks.push((
                Box::new(
                    FileSink::open(name, file.clone()).with_context(|| format!("sink {name}"))?,
                ),
                classes.clone(),
            )),
            SinkConfig::Stdout { name, classes } => {
                sinks.push((Box::new(StdoutSink::new(name)), classes.clone()))
            }
            SinkConfig::Siem(_) => {}
        }
    }
    let siem_cfgs: Vec<_> = cfg
        .sinks
        .iter()
        .filter_map(|s| match s {
            SinkConfig::Siem(s) => Some((**s).clone()),
            _ => None,
        })
        .collect();
    let siems = Siems::start(&siem_cfgs)?;
    let (journal, recovered) = Journal::open(&cfg.state_dir)?;
    if recovered.cut_bytes > 0 {
        warn!(message = "Receiver journal had a torn tail (a crash while writing it); the entry before it stands.", cut_bytes = recovered.cut_bytes);
    }
    let receiver = Receiver::restore(
        ReceiverConfig {
            keys: std::iter::once(&cfg.diode.key)
                .chain(&cfg.additional_keys)
                .map(|k| (k.id, k.secret))
                .collect(),
            fingerprint: cfg.diode.fingerprint(),
            max_block_bytes: cfg.diode.max_block_bytes,
            reorder_timeout: cfg.reorder_timeout,
            max_pending_bytes: cfg.max_pending_bytes,
            max_pending_blocks: cfg.max_pending_blocks,
            agents: cfg.agents.clone(),
            max_sessions: cfg.max_sessions,
            ..ReceiverConfig::default()
        },
        &recovered.state,
        std::time::Instant::now(),
    );
    let restored = receiver.sessions();
    if !restored.is_empty() || !recovered.state.retired.is_empty() {
        info!(
            message = "Receiver state restored.",
            sessions = restored.len(),
            agents = recovered.state.agents.len(),
            refused_epochs = recovered.state.retired.len()
        );
    }
    let socket = diode::udp::bind_udp(cfg.listen, Some(cfg.receive_buffer_bytes), None)
        .with_context(|| format!("cannot bind diode socket {}", cfg.listen))?;
    let local_addr = socket.local_addr()?;
    let slot_len = diode::udp::receive_slot_len(&socket, cfg.receive_offload, cfg.diode.mtu_bytes);
    let stats = Arc::new(RxStats::default());
    if let Ok(mut o) = stats.siem.lock() {
        o.clone_from(&siems.outputs);
    }
    let cancel = CancellationToken::new();
    let (work_tx, work_rx) = sync_channel(cfg.queue_blocks);
    let budget = Arc::new(QueueBudget::new(cfg.queue_max_bytes));
    let sink_stats = stats.clone();
    let sink_budget = budget.clone();
    let outputs = siems.outputs.clone();
    let mut stage = SinkStage {
        sinks,
        siems: outputs,
        journal,
        envelopes: !siem_cfgs.is_empty(),
    };
    if !recovered.redeliver.is_empty() {
        // The receiver stopped while writing these: write them again (some sinks may hold
        // them already; counted as redelivered).
        let mut batch = Received::default();
        for r in &recovered.redeliver {
            let start = batch.bytes.len();
            batch.bytes.extend_from_slice(&r.record);
            batch.push(r.class, start, start + r.json_at);
        }
        stage.write(&batch, &stats);
        stats.events_redelivered.add(batch.events.len() as u64);
        info!(
            message = "Events the receiver was writing when it stopped written again.",
            events = batch.events.len()
        );
    }
    let sinks = std::thread::Builder::new()
        .name("weir-sinks".into())
        .spawn(move || stage.run(work_rx, &sink_stats, &sink_budget))?;
    info!(message = "Receiver started.", listen = %local_addr, key_id = cfg.diode.key.id);
    let diode = tokio::spawn(diode::rx::run(
        receiver,
        socket,
        slot_len,
        work_tx,
        budget,
        stats.clone(),
        cancel.clone(),
    ));
    Ok(RxHandle {
        stats,
        local_addr,
        cancel,
        diode,
        sinks,
        siems,
    })
}

/// One event as the sink thread passes it on: its class and where, in the block's
/// [`Received`] arena, its final JSON lies, preceded by its envelope when SIEM sinks need the
/// buffer record.
#[derive(Clone, Copy, Debug)]
struct Event1 {
    class: EventClass,
    /// The SIEM buffer record (envelope, then the JSON), or just the JSON.
    start: usize,
    /// Where the JSON starts.
    json_at: usize,
    end: usize,
}

/// The events of one receiver output, their bytes in one buffer reused from block to block
/// (no allocation per event).
#[derive(Debug, Default)]
struct Received {
    bytes: Vec<u8>,
    events: Vec<Event1>,
}

impl Received {
    fn clear(&mut self) {
        self.bytes.clear();
        self.events.clear();
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    fn json(&self, e: &Event1) -> &[u8] {
        self.bytes.get(e.json_at..e.end).unwrap_or_default()
    }

    fn record(&self, e: &Event1) -> &[u8] {
        self.bytes.get(e.start..e.end).unwrap_or_default()
    }

    /// Record the event written into `bytes` from `start` on, its JSON from `json_at`.
    fn push(&mut self, class: EventClass, start: usize, json_at: usize) {
        self.events.push(Event1 {
            class,
            start,
            json_at,
            end: self.bytes.len(),
        });
    }

    /// A receiver-made event (gap, session, undecodable record).
    fn typed(&mut self, e: &Event, envelope: bool) {
        let start = self.bytes.len();
        if envelope {
            Envelope::of(e).view().start_record(&mut self.bytes);
        }
        let json_at = self.bytes.len();
        e.write_json(&mut self.bytes);
        self.push(e.class(), start, json_at);
    }
}

/// The sink thread: receiver outputs in, in order; each one's state and events journaled,
/// then its events written to every sink that takes their class.
struct SinkStage {
    sinks: Vec<(Box<dyn LocalSink>, ClassFilter)>,
    siems: Vec<Arc<SiemOutput>>,
    journal: Journal,
    envelopes: bool,
}

impl SinkStage {
    fn run(mut self, work: WorkQueue<Work>, stats: &RxStats, budget: &QueueBudget) {
        let mut batch = Received::default();
        let mut backoff = Duration::from_millis(100);
        loop {
            let item = match work.recv_timeout(Duration::from_millis(100)) {
                Ok(item) => item,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => Work::Stop,
            };
            let (output, bytes) = match item {
                Work::Stop => break,
                Work::Diode(output, bytes) => (output, bytes),
            };
            // A panic while handling one output (a bug, in Weir or a sink library) is caught
            // and counted, and the stage goes on after a pause; the events it was writing are
            // tried once more, then counted as lost, never silently gone.
            let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.handle(output, bytes, &mut batch, stats, budget)
            }));
            match handled {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(_) => {
                    stats.component_panics.inc();
                    error!(message = "The sink stage panicked while writing a batch; it goes on after a pause.", events = batch.events.len(), pause_ms = backoff.as_millis() as u64);
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.write(&batch, stats)
                    }));
                    if again.is_err() {
                        stats.component_panics.inc();
                        stats.events_lost_panic.add(batch.events.len() as u64);
                        error!(
                            message = "The batch panicked again; its events are counted as lost.",
                            events = batch.events.len()
                        );
                    }
                    if let Err(error) = self.journal.done() {
                        stats.journal_errors.inc();
                        error!(message = "Receiver journal write failed.", %error);
                    }
                }
            }
        }
        if let Err(error) = self.journal.compact(true) {
            error!(message = "Receiver state snapshot failed at shutdown.", %error);
        }
    }

    /// One receiver output: journal it, hand its events to the sinks, mark it done.
    fn handle(
        &mut self,
        output: Output,
        bytes: usize,
        batch: &mut Received,
        stats: &RxStats,
        budget: &QueueBudget,
    ) {
        count_by_agent(&output, self.journal.state(), stats);
        self.journal.apply(&output);
        batch.clear();
        events_of(output, batch, stats, self.envelopes);
        budget.release(bytes);
        // The state after this output and its events, before any sink has them: a crash
        // from here on redelivers them at the next start.
        let committed = self.journal.commit(
            &batch.bytes,
            batch
                .events
                .iter()
                .map(|e| (e.class, e.start, e.json_at, e.end)),
        );
        let journaled = committed.is_ok();
        if let Err(error) = committed {
            stats.journal_errors.inc();
            error!(message = "Receiver journal write failed; the positions of these events will be written with the next output.", %error);
        }
        if !batch.is_empty() {
            self.write(batch, stats);
            if journaled {
                if let Err(error) = self.journal.done() {
                    stats.journal_errors.inc();
                    error!(message = "Receiver journal write failed.", %error);
                }
            }
        }
        if let Err(error) = self.journal.compact(false) {
            stats.journal_errors.inc();
            error!(message = "Receiver state snapshot failed.", %error);
        }
    }

    /// Hand the events to the sinks: local sinks written and flushed to the OS, SIEM buffers
    /// appended (both survive a `kill -9` from then on).
    fn write(&mut self, batch: &Received, stats: &RxStats) {
        if failpoint_sink_panic() {
            panic!("failpoint WEIR_FAILPOINT=sink-panic");
        }
        for (sink, classes) in self.sinks.iter_mut() {
            let routed: Vec<&[u8]> = batch
                .events
                .iter()
                .filter(|e| classes.contains(&e.class))
                .map(|e| batch.json(e))
                .collect();
            if routed.is_empty() {
                continue;
            }
            if let Err(err) = sink.write_batch(&routed).and_then(|()| sink.flush()) {
                stats.sink_errors.add(routed.len() as u64);
                error!(message = "Sink write failed; batch dropped.", sink = sink.name(), error = %err);
            }
        }
        if self.envelopes {
            // One envelope record per event, shared by every SIEM that takes its class.
            let view: Vec<(EventClass, &[u8])> = batch
                .events
                .iter()
                .map(|e| (e.class, batch.record(e)))
                .collect();
            for siem in &self.siems {
                siem.append(&view);
            }
        }
        for e in &batch.events {
            stats.events_sent.of(e.class).inc();
        }
    }
}

/// `WEIR_FAILPOINT=sink-panic` makes the sink stage panic on its first batch, once (for the
/// supervision test; never set in production).
fn failpoint_sink_panic() -> bool {
    static FIRED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    std::env::var_os("WEIR_FAILPOINT").is_some_and(|v| v == "sink-panic")
        && !FIRED.swap(true, std::sync::atomic::Ordering::Relaxed)
}

/// Per-agent counters of one output (before the state follows it).
fn count_by_agent(output: &Output, state: &weir_diode_proto::ReceiverState, stats: &RxStats) {
    let agent_of = |epoch: u64| {
        state
            .sessions
            .iter()
            .find(|s| s.epoch == epoch)
            .map(|s| s.agent.as_str())
    };
    match output {
        Output::Block {
            session, records, ..
        } => {
            if let Some(a) = agent_of(*session) {
                stats.agent(a, |c| c.records += records.len() as u64);
            }
        }
        Output::Gap(g) => {
            if let Some(a) = agent_of(g.session) {
                stats.agent(a, |c| {
                    c.gaps += 1;
                    c.records_lost += g.count();
                });
            }
        }
        Output::SessionStarted { agent, .. } => stats.agent(agent, |c| c.sessions += 1),
        // A session refused before any heartbeat named its agent counts only by reason.
        Output::SessionRefused {
            agent: Some(agent),
            discarded,
            ..
        } => stats.agent(agent, |c| {
            c.sessions_refused += 1;
            c.datagrams_discarded += discarded;
        }),
        _ => {}
    }
}

/// The events of one receiver output. An agent record brings its routing envelope (see
/// [`weir_integrations::envelope::agent_record`]); either way the JSON is kept and the receiver's
/// provenance is written into it as text ([`stamp`]); a record that does not have the shape
/// this build writes is decoded and re-encoded instead, and one that is not an event at all
/// becomes a counted `record-undecodable` event holding it.
fn events_of(output: Output, out: &mut Received, stats: &RxStats, envelopes: bool) {
    let now = Utc::now();
    match output {
        Output::Block {
            session, records, ..
        } => {
            let session = format!("{session:016x}");
            let ingested = weir_schemas::format_timestamp(&now);
            for (r, mut bytes) in records.records() {
                let start = out.bytes.len();
                if let Some((_, class, json)) = routed(bytes) {
                    if let Err(reason) = one_json_object(json) {
                        invalid(
                            out, stats, json, reason, r.sequence, &session, now, envelopes,
                        );
                        continue;
                    }
                    // The agent's envelope: complete it with the diode provenance (its bytes
                    // spliced, not encoded again) and stamp the JSON, which is not parsed at all.
                    if !envelopes || complete_record(&mut out.bytes, bytes, &session, r.sequence) {
                        let json_at = out.bytes.len();
                        if stamp_routed_into(&mut out.bytes, json, r.sequence, &session, &ingested)
                        {
                            out.push(class, start, json_at);
                            continue;
                        }
                    }
                    out.bytes.truncate(start);
                }
                bytes = record_json(bytes);
                if let Err(reason) = one_json_object(bytes) {
                    invalid(
                        out, stats, bytes, reason, r.sequence, &session, now, envelopes,
                    );
                    continue;
                }
                if let Ok(peek) = Peek::of(bytes) {
                    // The buffer record (binary envelope, then the stamped JSON) is written
                    // straight from the borrowed peek.
                    if envelopes {
                        peek.view(Some(r.sequence), Some(&session))
                            .start_record(&mut out.bytes);
                    }
                    let json_at = out.bytes.len();
                    if stamp_into(
                        &mut out.bytes,
                        bytes,
                        &peek,
                        r.sequence,
                        &session,
                        &ingested,
                    ) {
                        out.push(peek.class(), start, json_at);
                        continue;
                    }
                    out.bytes.truncate(start);
                }
                let mut event = match Event::from_json(bytes) {
                    Ok(e) => e,
                    Err(err) => {
                        stats.decode_errors.inc();
                        undecodable(bytes, &err.to_string())
                    }
                };
                event.weir.sequence = Some(r.sequence);
                event.weir.session = Some(session.clone());
                event.event.ingested = Some(now);
                out.typed(&event, envelopes);
            }
        }
        Output::Gap(gap) => {
            stats.gaps.inc();
            warn!(message = "Diode gap: records lost.", stream = %gap.stream_name, first = gap.first, last = gap.last, reason = gap.reason.code());
            out.typed(&gap_event(&gap), envelopes);
        }
        Output::SessionStarted {
            session,
            agent,
            boot,
            previous,
            joined,
            ..
        } => {
            let who = agent_label(&agent);
            let text = match (previous, joined) {
                (Some(p), _) => format!("Diode agent {who} restarted: session {p:016x} replaced by {session:016x} (boot {boot})."),
                (None, true) => format!("Diode receiver joined agent {who}'s session {session:016x} under way; earlier records are not accounted for."),
                (None, false) => format!("Diode session {session:016x} of agent {who} started (boot {boot})."),
            };
            info!(message = %text);
            let mut e = weir_event("diode-session-started", text, session);
            e.event.kind_type = vec!["start".into()];
            e.weir.agent = Some(agent);
            out.typed(&e, envelopes);
        }
        Output::SessionEnded {
            session,
            agent,
            replaced_by,
        } => {
            let text = format!(
                "Diode session {session:016x} of agent {} ended: replaced by its newer session {replaced_by:016x}.",
                agent_label(&agent)
            );
            info!(message = %text);
            let mut e = weir_event("diode-session-ended", text, session);
            e.event.kind_type = vec!["end".into()];
            e.weir.agent = Some(agent);
            out.typed(&e, envelopes);
        }
        Output::SessionRefused {
            session,
            agent,
            boot,
            newest_boot,
            reason,
            discarded,
        } => {
            let text = match reason {
                weir_diode_proto::Reject::StaleSession => format!(
                    "Diode session {session:016x} of agent {} refused: its boot {boot} is not newer than the agent's newest {newest_boot} (a replay of an old session, or an agent whose state and clock were both reset). {discarded} datagram(s) discarded.",
                    agent_label(agent.as_deref().unwrap_or_default())
                ),
                weir_diode_proto::Reject::UnknownAgent => format!(
                    "Diode session {session:016x} refused: agent {} is not in [rx] agents. {discarded} datagram(s) discarded.",
                    agent_label(agent.as_deref().unwrap_or_default())
                ),
                _ => format!(
                    "Diode session {session:016x} refused: no heartbeat named its agent in time. {discarded} datagram(s) discarded."
                ),
            };
            warn!(message = %text);
            stats.sessions_refused.inc();
            let mut e = weir_event("diode-session-refused", text, session);
            e.event.outcome = Some("failure".into());
            e.event.reason = Some(reason.code().into());
            e.weir.agent = agent;
            out.typed(&e, envelopes);
        }
        Output::SettingsMismatch {
            session,
            ours,
            theirs,
        } => {
            let text = format!(
                "Diode settings mismatch: the sender's [diode] settings fingerprint {theirs:016x} differs from this receiver's {ours:016x}. Make the [diode] tables identical on both sides."
            );
            error!(message = %text);
            let mut e = weir_event("diode-settings-mismatch", text, session);
            e.event.outcome = Some("failure".into());
            out.typed(&e, envelopes);
        }
        // Handled (logged, counted) by the diode task; never queued.
        Output::BlocksLost { .. } | Output::Heartbeat { .. } => {}
    }
}

fn agent_label(agent: &str) -> String {
    if agent.is_empty() {
        "(unnamed, an agent before 2026-12-08)".into()
    } else {
        format!("\"{agent}\"")
    }
}

/// Whether `json` can be spliced into a SIEM body as one event: exactly one JSON object, no
/// raw control character anywhere (a raw newline would end an Elasticsearch bulk line; a second
/// value would be a second HEC event or bulk action). One pass over the bytes, not a parse:
/// brackets outside strings must close exactly at the last byte.
pub fn one_json_object(json: &[u8]) -> Result<(), &'static str> {
    if json.first() != Some(&b'{') {
        return Err("not_an_object");
    }
    // Open brackets as bits, 1 for `{`, 0 for `[`: closing ones must match (an event nests far
    // less than 128 deep).
    let mut open: u128 = 0;
    let mut depth = 0u32;
    let mut i = 0;
    // Outside strings: to the next quote, bracket or control character.
    while let Some(at) = json
        .get(i..)
        .and_then(|rest| rest.iter().position(|&b| OUTSIDE[usize::from(b)]))
    {
        i += at;
        match json.get(i).copied().unwrap_or_default() {
            b'"' => {
                // Inside a string: to its closing quote, past escapes.
                loop {
                    i += 1;
                    let Some(at) = json
                        .get(i..)
                        .and_then(|rest| rest.iter().position(|&b| INSIDE[usize::from(b)]))
                    else {
                        return Err("unterminated");
                    };
                    i += at;
                    match json.get(i).copied().unwrap_or_default() {
                        b'"' => break,
                        b'\\' => {
                            i += 1;
                            if json.get(i).is_some_and(|&b| b < 0x20) {
                                return Err("control_character");
                            }
                        }
                        _ => return Err("control_character"),
                    }
                }
            }
            b @ (b'{' | b'[') => {
                if depth == 128 {
                    return Err("too_deep");
                }
                open = (open << 1) | u128::from(b == b'{');
                depth += 1;
            }
            b @ (b'}' | b']') => {
                if depth == 0 || (open & 1 == 1) != (b == b'}') {
                    return Err("unbalanced");
                }
                open >>= 1;
                depth -= 1;
                if depth == 0 && i + 1 != json.len() {
                    return Err("trailing_data");
                }
            }
            _ => return Err("control_character"),
        }
        i += 1;
    }
    if depth != 0 {
        return Err("unterminated");
    }
    Ok(())
}

/// Bytes that matter outside a string: a quote, a bracket, a control character.
static OUTSIDE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'}' as usize] = true;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t
};

/// Bytes that matter inside a string: a quote, a backslash, a control character.
static INSIDE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// A record that cannot be spliced into a SIEM body: kept as a counted `record-undecodable`
/// event whose `event.original` holds it as an escaped string.
#[allow(clippy::too_many_arguments)]
fn invalid(
    out: &mut Received,
    stats: &RxStats,
    bytes: &[u8],
    reason: &str,
    sequence: u64,
    session: &str,
    now: chrono::DateTime<Utc>,
    envelopes: bool,
) {
    stats.records_invalid.inc();
    let mut event = undecodable(bytes, &format!("not exactly one JSON object ({reason})"));
    event.weir.parse_error = Some(format!("invalid_record_{reason}"));
    event.weir.sequence = Some(sequence);
    event.weir.session = Some(session.to_owned());
    event.event.ingested = Some(now);
    out.typed(&event, envelopes);
}

fn weir_event(action: &str, message: String, session: u64) -> Event {
    let mut e = Event::new(EventClass::Weir, Utc::now());
    e.event.action = Some(action.to_owned());
    e.event.dataset = Some("weir.diode".into());
    e.event.kind = "event".into();
    e.message = Some(message);
    e.weir.session = Some(format!("{session:016x}"));
    e
}

fn gap_event(g: &Gap) -> Event {
    let text = format!(
        "Diode gap: {} record(s) of stream {} lost (sequences {}..={}, {}).",
        g.count(),
        g.stream_name,
        g.first,
        g.last,
        g.reason.code()
    );
    let mut e = weir_event("diode-gap", text, g.session);
    e.event.outcome = Some("failure".into());
    e.weir.stream = Some(g.stream_name.clone());
    e.weir.gap = Some(weir_schemas::Gap {
        stream: g.stream_name.clone(),
        first_sequence: g.first,
        last_sequence: g.last,
        count: g.count(),
        reason: g.reason.code().to_owned(),
    });
    e
}

fn undecodable(bytes: &[u8], error: &str) -> Event {
    let mut e = Event::new(EventClass::Weir, Utc::now());
    e.event.kind = "pipeline_error".into();
    e.event.action = Some("record-undecodable".into());
    e.event.original = Some(String::from_utf8_lossy(bytes).into_owned());
    e.weir.parse_error = Some("undecodable_record".into());
    e.message = Some(format!("A diode record is not a valid event: {error}"));
    e
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// What may be spliced into a SIEM body: one object, brackets matched by kind, nothing
    /// after it, no raw control character anywhere (the fuzzer found `{"a":[1}]`-like shapes
    /// passing a plain depth count).
    #[test]
    fn only_one_json_object_without_control_characters_is_spliced() {
        for ok in [
            &br#"{}"#[..],
            br#"{"a":"}{\"]","b":[1,{"c":[]}],"d":"\u00e9 \\"}"#,
            "{\"é\":\"ü\"}".as_bytes(),
        ] {
            assert_eq!(
                one_json_object(ok),
                Ok(()),
                "{}",
                String::from_utf8_lossy(ok)
            );
        }
        for (bad, why) in [
            (&b"[1]"[..], "not_an_object"),
            (b" {}", "not_an_object"),
            (b"{\"a\":1}\n{\"b\":2}", "trailing_data"),
            (b"{\"a\":\n1}", "control_character"),
            (b"{\"a\":\"x\ty\"}", "control_character"),
            (b"{\"a\":1}{\"b\":2}", "trailing_data"),
            (b"{\"a\":1} ", "trailing_data"),
            (b"{\"a\":[1}]", "unbalanced"),
            (b"{\"a\":[1]]", "unbalanced"),
            (b"{\"a\":\"}", "unterminated"),
            (b"{\"a\":{}", "unterminated"),
        ] {
            assert_eq!(
                one_json_object(bad),
                Err(why),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // The eight-byte skip inside strings: a special byte at every offset of a long string.
        for at in 0..40 {
            for (special, why) in [
                (b'\n', Some("control_character")),
                (b'"', Some("trailing_data")),
                (b'\\', None),
            ] {
                let mut v = b"{\"k\":\"".to_vec();
                v.extend((0..40).map(|i| if i == at { special } else { b'x' }));
                v.extend_from_slice(b"\"}");
                let want = match (special, why) {
                    // A backslash escapes the next byte: at the end, the closing quote.
                    (b'\\', _) if at == 39 => Err("unterminated"),
                    (b'\\', _) => Ok(()),
                    // A quote ends the string early: what follows is outside it.
                    (b'"', _) => Err("trailing_data"),
                    (_, Some(w)) => Err(w),
                    _ => Ok(()),
                };
                let got = one_json_object(&v);
                if special == b'"' {
                    assert!(got.is_err(), "{}", String::from_utf8_lossy(&v));
                } else {
                    assert_eq!(got, want, "{}", String::from_utf8_lossy(&v));
                }
            }
        }
        let deep = format!("{}{}", "{\"a\":[".repeat(65), "]}".repeat(65));
        assert_eq!(one_json_object(deep.as_bytes()), Err("too_deep"));
        let fine = format!("{}{}", "{\"a\":[".repeat(64), "]}".repeat(64));
        assert_eq!(one_json_object(fine.as_bytes()), Ok(()));
    }
    use weir_diode_proto::block::{decode, BlockBuilder};
    use weir_diode_proto::Codec;
    use weir_integrations::envelope::{agent_record, split_view, EnvelopeRef};

    fn block_of(records: &[Vec<u8>]) -> Output {
        let mut b = BlockBuilder::default();
        for (i, r) in records.iter().enumerate() {
            b.push(0, i as u64, r);
        }
        let block = b.seal(Codec::None, &mut None, None, 0);
        let mut d = zstd::bulk::Decompressor::new().unwrap();
        Output::Block {
            session: 0xab,
            block: 0,
            records: decode(&block, 1 << 20, &mut d).unwrap(),
        }
    }

    /// The same events sent as plain JSON (earlier agents, the spool of one) and as agent
    /// records (envelope first) leave the receiver as the same buffer records, byte for byte
    /// apart from `event.ingested`; an agent record of another schema version is still read.
    #[test]
    fn agent_records_and_plain_json_records_come_out_the_same() {
        let mut events = Vec::new();
        for (i, line) in [
            "<134>1 2026-01-01T00:00:00.000Z plc-1 pumpd 1 - - pump station 3",
            "<13>Oct 11 22:14:15 hmi-2 su: 'su root' failed for lonvick on /dev/pts/8",
            "<190>1 2026-03-01T10:00:00.5+01:00 rtu-\"7\" app - - [a b=\"c\"] é \\ \u{1}",
        ]
        .iter()
        .enumerate()
        {
            let ctx = weir_parsers::syslog::ParseContext::new(Utc::now(), "syslog_tcp");
            let mut e = weir_parsers::syslog::parse(line.as_bytes(), &ctx).unwrap();
            e.weir.agent = Some("zone-3".into());
            e.weir.stream = Some(format!("s{i}"));
            events.push(e);
        }
        let plain: Vec<Vec<u8>> = events.iter().map(Event::to_json).collect();
        let routed: Vec<Vec<u8>> = events.iter().map(agent_record).collect();
        // The receiver takes the agent's envelope (no JSON pass) for these, and only these.
        assert!(routed.iter().all(|r| super::routed(r).is_some()));
        assert!(plain.iter().all(|r| super::routed(r).is_none()));
        let mut old = events[0].clone();
        old.weir.schema_version = "0.9.0".into();
        // Written by an agent of another version: envelope first, then its JSON.
        let mut other = Vec::new();
        EnvelopeRef::of_event(&old).start_record(&mut other);
        old.write_json(&mut other);
        let (_, old_json) = split_view(&other).unwrap();
        assert_eq!(old_json, old.to_json().as_slice());
        let stats = RxStats::default();
        let (mut a, mut b, mut c) = (
            Received::default(),
            Received::default(),
            Received::default(),
        );
        events_of(block_of(&plain), &mut a, &stats, true);
        events_of(block_of(&routed), &mut b, &stats, true);
        events_of(block_of(&[other]), &mut c, &stats, true);
        assert_eq!((a.events.len(), b.events.len(), c.events.len()), (3, 3, 1));
        // The JSON without its `event.ingested` value (the receiver's clock).
        let ingested = |j: &[u8]| {
            let at = j.windows(12).position(|w| w == b"\"ingested\":\"").unwrap() + 12;
            let end = at + j[at..].iter().position(|&b| b == b'"').unwrap();
            [&j[..at], &j[end..]].concat()
        };
        for (x, y) in a.events.iter().zip(&b.events) {
            assert_eq!(x.class, y.class);
            let (ex, jx) = split_view(a.record(x)).unwrap();
            let (ey, jy) = split_view(b.record(y)).unwrap();
            assert_eq!(ex.get(), ey.get());
            assert_eq!(ex.get().sequence, ey.get().sequence);
            assert_eq!(ingested(jx), ingested(jy));
            assert_eq!(a.json(x), jx);
        }
        // The other version's record: decoded and re-encoded by the typed path, not lost.
        assert_eq!(c.events[0].class, EventClass::Syslog);
        let back = Event::from_json(c.json(&c.events[0])).unwrap();
        assert_eq!(back.weir.sequence, Some(0));
        assert_eq!(back.message, old.message);
        assert_eq!(stats.decode_errors.get(), 0);
    }
}
