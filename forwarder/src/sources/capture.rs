/*!
`span` and `capture_file` sources: packets from a SPAN port (libpcap) or from capture files,
through the sensor (`weir_parsers::sensor`: flow table, industrial protocol parsers, read
summaries, notable events), onto the diode.

Each source runs on a thread of its own: libpcap blocks, and the sensor is CPU-bound. Records go
to the diode queue with `blocking_send`, so a full queue stops the thread reading; the kernel's
capture buffer then fills and libpcap counts what the kernel drops. Those drops are read every
`stats_interval_seconds` and reported as a `weir` event (`capture-drops`, with `weir.dropped`)
and in `capture_kernel_drops_total` / `capture_interface_drops_total`.

A capture file is read in 1 MiB steps by Weir's own reader (pcap and pcapng, told apart by their
first bytes). A file that ends inside a record, or whose framing breaks, is reported as a `weir`
event (`capture-file-truncated`, `capture-file-corrupt`) and the packets before the damage are
kept. When the last file is done the flows still open are written (`event.reason: flushed`) and
the source stops; restarting the agent reads the files again.
*/

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use weir_diode_proto::StreamId;
use weir_parsers::packet::capture::{CaptureError, CaptureReader, Item};
use weir_parsers::packet::LinkType;
use weir_parsers::sensor::assets::parse_oui;
use weir_parsers::sensor::baseline::Baseline;
use weir_parsers::sensor::Sensor;
use weir_schemas::{Event, EventClass};

use super::Record;
use crate::config::{CaptureFrom, CaptureSource};
use crate::telemetry::TxStats;

/// What a capture source needs.
#[derive(Clone)]
pub struct CaptureContext {
    /// Settings.
    pub cfg: CaptureSource,
    /// The agent's name.
    pub agent: Arc<str>,
    /// Its diode stream.
    pub stream: StreamId,
    /// Where records go.
    pub queue: mpsc::Sender<Record>,
    /// Counters.
    pub stats: Arc<TxStats>,
}

struct Out {
    ctx: CaptureContext,
    input: &'static str,
    /// The queue is gone (the agent is stopping): nothing more can be sent.
    closed: bool,
    mirrored: weir_parsers::sensor::SensorStats,
    mirrored_flows: weir_parsers::packet::flow::TableStats,
    saver: Option<BaselineSaver>,
}

/// Saves the baseline atomically, at most once a minute while running and once at the end.
struct BaselineSaver {
    path: PathBuf,
    last: Instant,
}

impl BaselineSaver {
    fn save(&mut self, b: &Baseline) {
        self.last = Instant::now();
        let written =
            crate::durable::write_synced(&self.path, &serde_json::to_vec(b).unwrap_or_default());
        if let Err(error) = written {
            warn!(message = "Cannot save the baseline.", file = %self.path.display(), %error);
        }
    }

    fn maybe_save(&mut self, b: &Baseline) {
        if self.last.elapsed() >= Duration::from_secs(60) {
            self.save(b);
        }
    }
}

impl Out {
    fn send(&mut self, mut event: Event) {
        if self.closed {
            return;
        }
        event.set_input(self.input, None);
        event.weir.agent = Some(self.ctx.agent.to_string());
        event.weir.stream = Some(self.ctx.cfg.name.clone());
        let class = event.class();
        self.ctx.stats.events_received.of(class).inc();
        let record = Record {
            stream: self.ctx.stream,
            class,
            payload: weir_integrations::envelope::agent_record(&event).into(),
            taken: None,
        };
        if self.ctx.queue.blocking_send(record).is_err() {
            self.closed = true;
        }
    }

    fn drain(&mut self, sensor: &mut Sensor) {
        let events: Vec<Event> = sensor.drain().collect();
        for e in events {
            self.send(e);
        }
        self.mirror(sensor);
        if let Some(s) = &mut self.saver {
            s.maybe_save(sensor.baseline());
        }
    }

    /// Mirror the sensor's counters into the agent's.
    fn mirror(&mut self, sensor: &Sensor) {
        let s = sensor.stats();
        let f = sensor.flow_stats();
        let st = &self.ctx.stats;
        st.capture_packets.add(s.packets - self.mirrored.packets);
        st.capture_undecodable
            .add(s.undecodable - self.mirrored.undecodable);
        st.ot_transactions
            .add(s.transactions - self.mirrored.transactions);
        st.ot_stream_resyncs
            .add(s.streams.resyncs - self.mirrored.streams.resyncs);
        st.flows_evicted
            .add(f.evicted - self.mirrored_flows.evicted);
        st.flows_created.add(f.flows - self.mirrored_flows.flows);
        self.mirrored = s.clone();
        self.mirrored_flows = f;
    }

    fn weir_event(
        &mut self,
        action: &'static str,
        outcome: &'static str,
        message: String,
        dropped: Option<u64>,
    ) {
        let mut e = Event::new(EventClass::Weir, Utc::now());
        e.event.action = Some(action.into());
        e.event.dataset = Some("weir.agent".into());
        e.event.outcome = Some(outcome.into());
        e.message = Some(message);
        e.weir.dropped = dropped;
        self.send(e);
    }
}

/// Start the source on a thread of its own. The thread ends when the input is exhausted (files)
/// or `cancel` fires; either way every open flow is written first.
pub fn spawn(
    ctx: CaptureContext,
    cancel: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let name = format!("capture-{}", ctx.cfg.name);
    std::thread::Builder::new().name(name).spawn(move || {
        let input = match ctx.cfg.from {
            CaptureFrom::Live { .. } => "span",
            CaptureFrom::Files(_) => "capture_file",
        };
        let mut out = Out {
            ctx: ctx.clone(),
            input,
            closed: false,
            mirrored: Default::default(),
            mirrored_flows: Default::default(),
            saver: None,
        };
        let oui = ctx.cfg.oui_file.as_ref().and_then(|p| match std::fs::read_to_string(p) {
            Ok(text) => Some(Arc::new(parse_oui(&text))),
            Err(error) => {
                warn!(message = "Cannot read the OUI registry; MAC vendors will be missing.", file = %p.display(), %error);
                None
            }
        });
        let baseline_path = ctx.cfg.state_dir.join(format!("{}.baseline.json", ctx.cfg.name));
        let baseline = match std::fs::read(&baseline_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                warn!(message = "Baseline file unreadable; learning again.", file = %baseline_path.display(), %error);
                Baseline::default()
            }),
            Err(_) => Baseline::default(),
        };
        let mut sensor = Sensor::with_state(ctx.cfg.sensor, oui, baseline);
        let saver = BaselineSaver { path: baseline_path, last: Instant::now() };
        out.saver = Some(saver);
        match &ctx.cfg.from {
            CaptureFrom::Live { .. } => live(&ctx, &mut sensor, &mut out, &cancel),
            CaptureFrom::Files(path) => files(path, &mut sensor, &mut out, &cancel),
        }
        sensor.flush();
        out.drain(&mut sensor);
        if let Some(s) = &mut out.saver {
            s.save(sensor.baseline());
        }
        info!(message = "Capture source stopped.", source = %ctx.cfg.name, packets = sensor.stats().packets);
    })
}

fn files(path: &Path, sensor: &mut Sensor, out: &mut Out, cancel: &CancellationToken) {
    let list: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect(),
            Err(error) => {
                out.weir_event(
                    "capture-file-unreadable",
                    "failure",
                    format!("{}: {error}", path.display()),
                    None,
                );
                return;
            }
        };
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    for file in list {
        if cancel.is_cancelled() || out.closed {
            return;
        }
        if let Err(message) = one_file(&file, sensor, out, cancel) {
            warn!(message = "Capture file damaged.", file = %file.display(), detail = %message.1);
            out.weir_event(
                message.0,
                "failure",
                format!("{}: {}", file.display(), message.1),
                None,
            );
        }
    }
}

fn one_file(
    file: &Path,
    sensor: &mut Sensor,
    out: &mut Out,
    cancel: &CancellationToken,
) -> Result<(), (&'static str, String)> {
    let mut f =
        std::fs::File::open(file).map_err(|e| ("capture-file-unreadable", e.to_string()))?;
    let mut reader = CaptureReader::new();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut start = 0usize;
    let mut eof = false;
    let mut packets = 0u64;
    loop {
        // Consume whole items from buf[start..].
        loop {
            match reader.next(buf.get(start..).unwrap_or(&[])) {
                Ok(Some((n, item))) => {
                    start += n;
                    if let Item::Packet(p) = item {
                        packets += 1;
                        sensor.packet(p.ts_nanos, p.link, p.data);
                        if packets.is_multiple_of(256) {
                            out.drain(sensor);
                            if cancel.is_cancelled() || out.closed {
                                return Ok(());
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(CaptureError::NotACapture(magic)) => {
                    return Err((
                        "capture-file-not-a-capture",
                        format!("not a pcap or pcapng file (first bytes {magic:08x}); skipped"),
                    ));
                }
                Err(e) => {
                    out.drain(sensor);
                    return Err((
                        "capture-file-corrupt",
                        format!("{e}; {packets} packets before it were read"),
                    ));
                }
            }
        }
        if eof {
            out.drain(sensor);
            let left = buf.len() - start;
            if left > 0 {
                return Err(("capture-file-truncated", format!("the file ends inside a record ({left} bytes left over); {packets} packets were read")));
            }
            info!(message = "Capture file read.", file = %file.display(), packets);
            return Ok(());
        }
        buf.drain(..start);
        start = 0;
        let have = buf.len();
        buf.resize(have + (1 << 20), 0);
        let n = f
            .read(&mut buf[have..])
            .map_err(|e| ("capture-file-unreadable", e.to_string()))?;
        buf.truncate(have + n);
        eof = n == 0;
    }
}

fn now_ns() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

fn live(ctx: &CaptureContext, sensor: &mut Sensor, out: &mut Out, cancel: &CancellationToken) {
    let CaptureFrom::Live {
        interface,
        bpf_filter,
        snaplen,
        promiscuous,
        buffer_bytes,
    } = &ctx.cfg.from
    else {
        return;
    };
    let opened = pcap::Capture::from_device(interface.as_str())
        .map(|c| {
            c.promisc(*promiscuous)
                .snaplen(i32::try_from(*snaplen).unwrap_or(65535))
                .buffer_size(i32::try_from(*buffer_bytes).unwrap_or(i32::MAX))
                .timeout(100)
                .immediate_mode(true)
                .precision(pcap::Precision::Nano)
        })
        .and_then(|c| c.open())
        // Non-blocking: libpcap's read timeout does not fire on an idle Linux interface, and
        // the thread must see shutdown and advance the flow clock when nothing arrives.
        .and_then(|c| c.setnonblock());
    let mut cap = match opened {
        Ok(c) => c,
        Err(error) => {
            warn!(message = "Cannot capture.", source = %ctx.cfg.name, %interface, %error);
            out.weir_event("capture-failed", "failure", format!("cannot capture on {interface}: {error} (the agent needs CAP_NET_RAW and CAP_NET_ADMIN, or root)"), None);
            return;
        }
    };
    if let Some(filter) = bpf_filter {
        if let Err(error) = cap.filter(filter, true) {
            warn!(message = "Bad BPF filter.", source = %ctx.cfg.name, %filter, %error);
            out.weir_event(
                "capture-failed",
                "failure",
                format!("BPF filter {filter:?} on {interface}: {error}"),
                None,
            );
            return;
        }
    }
    let link = LinkType::from_code(u32::try_from(cap.get_datalink().0).unwrap_or(u32::MAX));
    info!(message = "Capturing.", source = %ctx.cfg.name, %interface, link = ?link, filter = bpf_filter.as_deref().unwrap_or(""));
    let mut last_stats = Instant::now();
    let mut last_drain = Instant::now();
    let (mut dropped, mut if_dropped) = (0u64, 0u64);
    let mut pending = 0u32;
    loop {
        if cancel.is_cancelled() || out.closed {
            break;
        }
        match cap.next_packet() {
            Ok(p) => {
                let ts = p.header.ts.tv_sec * 1_000_000_000 + p.header.ts.tv_usec;
                sensor.packet(ts, link, p.data);
                pending += 1;
            }
            Err(pcap::Error::TimeoutExpired) => {
                // Nothing waiting.
                std::thread::sleep(Duration::from_millis(5));
                sensor.advance(now_ns());
            }
            Err(error) => {
                warn!(message = "Capture failed.", source = %ctx.cfg.name, %interface, %error);
                out.weir_event(
                    "capture-failed",
                    "failure",
                    format!("capture on {interface} stopped: {error}"),
                    None,
                );
                break;
            }
        }
        if pending >= 256 || last_drain.elapsed() >= Duration::from_millis(100) {
            pending = 0;
            last_drain = Instant::now();
            out.drain(sensor);
        }
        if last_stats.elapsed() >= ctx.cfg.stats_interval {
            last_stats = Instant::now();
            report_drops(&mut cap, interface, out, &mut dropped, &mut if_dropped);
        }
    }
    report_drops(&mut cap, interface, out, &mut dropped, &mut if_dropped);
}

fn report_drops(
    cap: &mut pcap::Capture<pcap::Active>,
    interface: &str,
    out: &mut Out,
    dropped: &mut u64,
    if_dropped: &mut u64,
) {
    let Ok(s) = cap.stats() else { return };
    let (d, i) = (u64::from(s.dropped), u64::from(s.if_dropped));
    let (nd, ni) = (d.saturating_sub(*dropped), i.saturating_sub(*if_dropped));
    *dropped = d;
    *if_dropped = i;
    out.ctx.stats.capture_kernel_drops.add(nd);
    out.ctx.stats.capture_interface_drops.add(ni);
    if nd + ni > 0 {
        out.weir_event(
            "capture-drops",
            "failure",
            format!("{interface}: the kernel dropped {nd} packets and the interface {ni} since the last report (capture buffer full: raise buffer_bytes, or narrow bpf_filter)"),
            Some(nd + ni),
        );
    }
}
