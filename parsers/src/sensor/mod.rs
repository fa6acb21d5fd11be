//! The SPAN-port sensor: captured frames in, events out (flow records, industrial protocol
//! transactions, notable events).
//!
//! Pure and deterministic: time is the packets' own, the output order depends only on the
//! input, so replaying a capture twice gives the same events.

pub mod assets;
pub mod baseline;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use assets::{Assets, OuiTable};
use baseline::{Baseline, Novelty};

use chrono::{DateTime, TimeZone, Utc};
use weir_schemas::{Endpoint, Event, EventClass, FlowInfo, InnerVlan, Network, Ot, Pairs, Vlan};

use crate::ot::session::{
    BacnetSession, Dnp3Session, EnipSession, Iec104Session, ModbusSession, MqttSession,
    OpcuaSession, S7Session, StreamStats,
};
use crate::ot::{Action, Transaction};
use crate::packet::decode::{decode, Net};
use crate::packet::flow::{EndReason, Flow, FlowConfig, FlowTable};
use crate::packet::LinkType;

/// Sensor settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorConfig {
    /// Flow table settings.
    pub flow: FlowConfig,
    /// Routine reads are summarised per (flow, protocol, function, unit) over windows of this
    /// many nanoseconds (one event with `ot.count`); 0 writes every read on its own. Writes and
    /// every other notable action are always written one by one. Default 60 s.
    pub read_summary: i64,
    /// Write flow records (`flow` events). Default true.
    pub flows: bool,
    /// Keep the asset inventory and write `asset` events. Default true.
    pub assets: bool,
    /// The baseline learning window in nanoseconds from the first packet; afterwards new
    /// assets, conversations and functions raise notable events. 0 turns baseline notables
    /// off. Default 7 days.
    pub baseline_learning: i64,
}

impl Default for SensorConfig {
    fn default() -> Self {
        SensorConfig {
            flow: FlowConfig::default(),
            read_summary: 60_000_000_000,
            flows: true,
            assets: true,
            baseline_learning: 7 * 86_400 * 1_000_000_000,
        }
    }
}

/// What the sensor counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SensorStats {
    /// Frames seen.
    pub packets: u64,
    /// Frames that could not be decoded to IP (truncated or malformed headers, unknown link).
    pub undecodable: u64,
    /// Frames that carry something other than IP (ARP, LLDP, PROFINET RT, ...).
    pub not_ip: u64,
    /// PDUs parsed, by protocol and function code (requests and responses).
    pub pdus: BTreeMap<(&'static str, u32), u64>,
    /// Stream resynchronisations and unparseable bytes, all protocols.
    pub streams: StreamStats,
    /// Flows on a protocol's port that turned out not to speak it.
    pub not_protocol: u64,
    /// Transactions seen.
    pub transactions: u64,
}

/// Per-flow application state.
#[derive(Debug, Default)]
pub enum App {
    /// No payload seen yet.
    #[default]
    Undecided,
    /// No parser for this flow.
    Unparsed,
    /// Modbus/TCP (server port 502).
    Modbus(Box<ModbusSession>),
    /// DNP3 over TCP or UDP (port 20000).
    Dnp3(Box<Dnp3Session>),
    /// S7comm over ISO-on-TCP (port 102).
    S7(Box<S7Session>),
    /// EtherNet/IP and CIP (TCP and UDP 44818).
    Enip(Box<EnipSession>),
    /// CIP implicit I/O (UDP 2222): counted, not parsed.
    CipIo,
    /// IEC 60870-5-104 (port 2404).
    Iec104(Box<Iec104Session>),
    /// BACnet/IP (UDP 47808).
    Bacnet(Box<BacnetSession>),
    /// OPC UA binary (TCP 4840).
    Opcua(Box<OpcuaSession>),
    /// MQTT (TCP 1883).
    Mqtt(Box<MqttSession>),
}

impl App {
    fn name(&self) -> Option<&'static str> {
        match self {
            App::Modbus(s) if !s.given_up() => Some("modbus"),
            App::Dnp3(s) if !s.given_up() => Some("dnp3"),
            App::S7(s) if !s.given_up() => Some(if s.s7plus > 0 {
                "s7comm_plus"
            } else {
                "s7comm"
            }),
            App::Enip(s) if !s.given_up() => Some("enip"),
            App::CipIo => Some("cip_io"),
            App::Iec104(s) if !s.given_up() => Some("iec104"),
            App::Bacnet(s) if !s.given_up() => Some("bacnet"),
            App::Opcua(s) if !s.given_up() => Some("opcua"),
            App::Mqtt(s) if !s.given_up() => Some("mqtt"),
            _ => None,
        }
    }

    fn server_port(&self) -> u16 {
        match self {
            App::Modbus(_) => 502,
            App::Dnp3(_) => 20000,
            App::S7(_) => 102,
            App::Enip(_) => 44818,
            App::CipIo => 2222,
            App::Iec104(_) => 2404,
            App::Bacnet(_) => 47808,
            App::Opcua(_) => 4840,
            App::Mqtt(_) => 1883,
            _ => 0,
        }
    }

    fn given_up(&self) -> bool {
        match self {
            App::Modbus(s) => s.given_up(),
            App::Dnp3(s) => s.given_up(),
            App::S7(s) => s.given_up(),
            App::Enip(s) => s.given_up(),
            App::Iec104(s) => s.given_up(),
            App::Bacnet(s) => s.given_up(),
            App::Opcua(s) => s.given_up(),
            App::Mqtt(s) => s.given_up(),
            _ => false,
        }
    }

    fn stream_stats(&self) -> StreamStats {
        match self {
            App::Modbus(s) => s.stats,
            App::Dnp3(s) => s.stats,
            App::S7(s) => s.stats,
            App::Enip(s) => s.stats,
            App::Iec104(s) => s.stats,
            App::Bacnet(s) => s.stats,
            App::Opcua(s) => s.stats,
            App::Mqtt(s) => s.stats,
            _ => StreamStats::default(),
        }
    }

    /// The parser for a flow, from its transport and ports.
    fn for_ports(proto: u8, ports: Option<(u16, u16)>) -> App {
        let Some((s, d)) = ports else {
            return App::Unparsed;
        };
        let either = |p: u16| s == p || d == p;
        match proto {
            6 if either(502) => App::Modbus(Box::default()),
            6 | 17 if either(20000) => App::Dnp3(Box::default()),
            6 if either(102) => App::S7(Box::default()),
            6 | 17 if either(44818) => App::Enip(Box::default()),
            17 if either(2222) => App::CipIo,
            6 if either(2404) => App::Iec104(Box::default()),
            17 if either(47808) => App::Bacnet(Box::default()),
            6 if either(4840) => App::Opcua(Box::default()),
            6 if either(1883) => App::Mqtt(Box::default()),
            _ => App::Unparsed,
        }
    }

    fn end(&mut self, out: &mut Vec<Transaction>) {
        match self {
            App::Modbus(s) => s.end(out),
            App::Dnp3(s) => s.end(out),
            App::S7(s) => s.end(out),
            App::Enip(s) => s.end(out),
            App::Iec104(s) => s.end(out),
            App::Bacnet(s) => s.end(out),
            App::Opcua(s) => s.end(out),
            App::Mqtt(s) => s.end(out),
            _ => {}
        }
    }
}

/// A read summary being built.
struct Summary {
    event: Event,
    count: u64,
    exceptions: u64,
    last_ns: i64,
}

/// The sensor.
pub struct Sensor {
    cfg: SensorConfig,
    table: FlowTable<App>,
    out: Vec<Event>,
    stats: SensorStats,
    /// Read summaries by (window end, flow id, protocol, function, unit).
    summaries: BTreeMap<(i64, u64, &'static str, u32, u32), Summary>,
    txs: Vec<Transaction>,
    assets: Assets,
    baseline: Baseline,
    /// When assets last had their last-seen times written (packet time).
    assets_refreshed: i64,
    /// Scratch for the baseline's keys (one per transaction while a baseline is kept).
    key: String,
}

/// How often (packet time) every asset seen since its last event is written again, so the
/// inventory's last-seen times stay current on a long-running span source.
pub const ASSET_REFRESH: i64 = 3_600_000_000_000;

fn at(ns: i64) -> DateTime<Utc> {
    Utc.timestamp_nanos(ns)
}

/// A MAC address as ECS writes it: upper case, dash-separated.
pub fn mac_string(m: &[u8; 6]) -> String {
    fn hex(nibble: u8) -> char {
        char::from(if nibble < 10 {
            b'0' + nibble
        } else {
            b'A' + nibble - 10
        })
    }
    let mut out = String::with_capacity(17);
    for (i, byte) in m.iter().enumerate() {
        if i > 0 {
            out.push('-');
        }
        out.push(hex(byte >> 4));
        out.push(hex(byte & 0xF));
    }
    out
}

fn transport_name(proto: u8) -> Cow<'static, str> {
    match proto {
        6 => Cow::Borrowed("tcp"),
        17 => Cow::Borrowed("udp"),
        1 => Cow::Borrowed("icmp"),
        58 => Cow::Borrowed("ipv6-icmp"),
        132 => Cow::Borrowed("sctp"),
        2 => Cow::Borrowed("igmp"),
        47 => Cow::Borrowed("gre"),
        50 => Cow::Borrowed("esp"),
        89 => Cow::Borrowed("ospf"),
        112 => Cow::Borrowed("vrrp"),
        other => Cow::Owned(other.to_string()),
    }
}

fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 132)
}

impl Sensor {
    /// A sensor with no flows, no assets and an empty baseline.
    pub fn new(cfg: SensorConfig) -> Sensor {
        Sensor::with_state(cfg, None, Baseline::default())
    }

    /// A sensor resolving MAC vendors with `oui`, starting from a saved `baseline`.
    pub fn with_state(cfg: SensorConfig, oui: Option<Arc<OuiTable>>, baseline: Baseline) -> Sensor {
        Sensor {
            cfg,
            table: FlowTable::new(cfg.flow),
            out: Vec::new(),
            stats: SensorStats::default(),
            summaries: BTreeMap::new(),
            txs: Vec::new(),
            assets: Assets::new(oui),
            baseline,
            assets_refreshed: i64::MIN,
            key: String::new(),
        }
    }

    /// The baseline as learnt so far (to persist it).
    pub fn baseline(&self) -> &Baseline {
        &self.baseline
    }

    /// Assets held.
    pub fn asset_count(&self) -> usize {
        self.assets.len()
    }

    /// What the sensor has counted.
    pub fn stats(&self) -> &SensorStats {
        &self.stats
    }

    /// The flow table's counters.
    pub fn flow_stats(&self) -> crate::packet::flow::TableStats {
        self.table.stats()
    }

    /// Flows held now.
    pub fn live_flows(&self) -> usize {
        self.table.len()
    }

    /// One frame of `link` captured at `ts` (ns since the epoch).
    pub fn packet(&mut self, ts: i64, link: LinkType, data: &[u8]) {
        self.stats.packets += 1;
        let frame = match decode(link, data) {
            Ok(f) => f,
            Err(_) => {
                self.stats.undecodable += 1;
                return;
            }
        };
        let ip = match frame.net {
            Net::Ip(ip) => ip,
            Net::Arp(arp) => {
                self.stats.not_ip += 1;
                if self.cfg.assets && !arp.sender_ip.is_unspecified() {
                    let ip = IpAddr::V4(arp.sender_ip);
                    if self.assets.seen(ts, frame.vlan, ip, Some(arp.sender_mac)) {
                        self.new_asset(ts, frame.vlan, ip);
                    }
                    self.assets.changed(&mut self.out);
                }
                self.collect(ts);
                return;
            }
            Net::Other(_) => {
                self.stats.not_ip += 1;
                self.collect(ts);
                return;
            }
        };
        let ports = ip.transport.ports();
        let mut novel: Vec<(IpAddr, Option<Flow>)> = Vec::new();
        if let Some(obs) = self.table.packet(ts, &frame, &ip) {
            if self.cfg.assets {
                let d = usize::from(obs.side != crate::packet::flow::Side::Orig);
                if obs.flow.stats.get(d).is_some_and(|s| s.packets == 1) {
                    if self.assets.seen(ts, frame.vlan, ip.src, frame.src_mac) {
                        novel.push((ip.src, None));
                    }
                    let first = obs.flow.stats.iter().map(|s| s.packets).sum::<u64>() == 1;
                    if first {
                        if self.assets.seen(ts, frame.vlan, ip.dst, None) {
                            novel.push((ip.dst, None));
                        }
                        novel.push((ip.dst, Some(obs.flow.clone())));
                    }
                }
            }
            if matches!(obs.app, App::Undecided) && !obs.payload.is_empty() {
                *obs.app = App::for_ports(ip.proto, ports);
            }
            let stats = &mut self.stats;
            let txs = &mut self.txs;
            if (!obs.payload.is_empty() || obs.gap)
                && !matches!(obs.app, App::Undecided | App::Unparsed)
            {
                let before = obs.app.stream_stats();
                let was = obs.app.given_up();
                let from_orig = obs.side == crate::packet::flow::Side::Orig;
                let udp = ip.proto == 17;
                let to_server = ports.is_some_and(|(_, d)| d == obs.app.server_port());
                let mut count =
                    |key: &'static str, code: u32| *stats.pdus.entry((key, code)).or_default() += 1;
                let (payload, gap) = (obs.payload, obs.gap);
                match &mut *obs.app {
                    App::Modbus(s) => s.data(ts, to_server, payload, gap, txs, &mut count),
                    // DNP3 frames say their own direction; a UDP datagram stands alone.
                    App::Dnp3(s) => s.data(ts, from_orig, payload, gap || udp, txs, &mut count),
                    App::S7(s) => s.data(ts, to_server, payload, gap, txs, &mut count),
                    App::Enip(s) => s.data(ts, to_server, payload, gap, udp, txs, &mut count),
                    App::CipIo => count("cip_io", 0),
                    App::Iec104(s) => s.data(ts, to_server, payload, gap, txs, &mut count),
                    App::Opcua(s) => s.data(ts, to_server, payload, gap, txs, &mut count),
                    App::Mqtt(s) => s.data(ts, to_server, payload, gap, txs, &mut count),
                    App::Bacnet(s) => s.data(ts, payload, txs, &mut count),
                    App::Undecided | App::Unparsed => {}
                }
                let after = obs.app.stream_stats();
                stats.streams.resyncs += after.resyncs - before.resyncs;
                stats.streams.bad_frames += after.bad_frames - before.bad_frames;
                if !was && obs.app.given_up() {
                    stats.not_protocol += 1;
                }
            }
            if !self.txs.is_empty() {
                let server_port = obs.app.server_port();
                let flow = obs.flow.clone();
                let txs = std::mem::take(&mut self.txs);
                for tx in txs {
                    self.transaction(tx, &flow, server_port);
                }
            }
        }
        for (addr, flow) in novel {
            match flow {
                None => self.new_asset(ts, frame.vlan, addr),
                Some(f) => self.new_conversation(ts, &f),
            }
        }
        if self.cfg.assets {
            self.assets.changed(&mut self.out);
        }
        self.collect(ts);
    }

    fn learning(&self) -> Option<i64> {
        (self.cfg.baseline_learning > 0).then_some(self.cfg.baseline_learning)
    }

    fn new_asset(&mut self, ts: i64, vlan: Option<u16>, ip: IpAddr) {
        let Some(window) = self.learning() else {
            return;
        };
        let key = &mut self.key;
        key.clear();
        match vlan {
            Some(v) => key.push_str(itoa::Buffer::new().format(v)),
            None => key.push('-'),
        }
        key.push('/');
        push_ip(key, ip);
        if self.baseline.check(ts, window, Novelty::Asset, key) {
            let mut e = baseline_notable(
                ts,
                "new_asset",
                format!(
                    "new asset {} appeared after the baseline was learnt",
                    ip.to_canonical()
                ),
            );
            let ip_s = ip_text(ip);
            e.host = Some(weir_schemas::Host {
                ip: vec![ip_s.clone()],
                ..Default::default()
            });
            e.relate_ip(&ip_s);
            self.out.push(e);
        }
    }

    /// The baseline's name of a conversation, `proto client server port`, written to `out`;
    /// false (and nothing written) when the server is not a local address.
    fn conversation_key(flow: &Flow, out: &mut String) -> bool {
        out.clear();
        let server = flow.resp.ip.to_canonical();
        if !assets::is_local(server) {
            return false;
        }
        let port = if matches!(flow.proto, 6 | 17 | 132) {
            flow.resp.port
        } else {
            0
        };
        let mut number = itoa::Buffer::new();
        out.push_str(number.format(flow.proto));
        out.push(' ');
        push_ip(out, flow.orig.ip);
        out.push(' ');
        push_ip(out, server);
        out.push(' ');
        out.push_str(number.format(port));
        true
    }

    fn new_conversation(&mut self, ts: i64, flow: &Flow) {
        let Some(window) = self.learning() else {
            return;
        };
        if !Sensor::conversation_key(flow, &mut self.key) {
            return;
        }
        if matches!(flow.resp.ip, IpAddr::V4(v) if v.is_broadcast() || v.octets()[3] == 255)
            || flow.resp.ip.is_multicast()
        {
            return;
        }
        if self
            .baseline
            .check(ts, window, Novelty::Conversation, &self.key)
        {
            let mut e = baseline_notable(
                ts,
                "new_conversation",
                format!(
                    "new conversation {} -> {}:{} ({}) after the baseline was learnt",
                    flow.orig.ip.to_canonical(),
                    flow.resp.ip.to_canonical(),
                    flow.resp.port,
                    transport_name(flow.proto)
                ),
            );
            e.source = Some(endpoint(&flow.orig, flow.proto, None, None));
            e.destination = Some(endpoint(&flow.resp, flow.proto, None, None));
            e.network = Some(network(flow, None));
            relate(&mut e, flow);
            self.out.push(e);
        }
    }

    /// Move the clock to `now` (ns) without a packet: idle flows end, summaries close.
    pub fn advance(&mut self, now: i64) {
        self.table.advance(now);
        self.collect(now);
    }

    /// End of capture or shutdown: every flow and summary is written, and every asset seen
    /// since its last event.
    pub fn flush(&mut self) {
        self.table.flush();
        self.collect(i64::MAX);
        if self.cfg.assets {
            self.assets.last_seen(&mut self.out);
        }
    }

    /// Take the events written so far, in order.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Event> {
        self.out.drain(..)
    }

    fn collect(&mut self, now: i64) {
        let records: Vec<_> = self.table.drain().collect();
        for rec in records {
            let final_record = rec.reason != EndReason::ActiveTimeout;
            let mut app_name = None;
            if let Some(mut app) = rec.app {
                app_name = app.name();
                let server_port = app.server_port();
                let mut txs = Vec::new();
                app.end(&mut txs);
                for tx in txs {
                    self.transaction(tx, &rec.flow, server_port);
                }
                // Summaries of this flow end with it.
                let keys: Vec<_> = self
                    .summaries
                    .keys()
                    .filter(|k| k.1 == rec.flow.id)
                    .copied()
                    .collect();
                for k in keys {
                    if let Some(s) = self.summaries.remove(&k) {
                        self.out.push(summary_event(s));
                    }
                }
            }
            if self.cfg.flows {
                self.out
                    .push(flow_event(&rec.flow, rec.reason, final_record, app_name));
            }
        }
        while let Some(entry) = self.summaries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let s = entry.remove();
            self.out.push(summary_event(s));
        }
        if self.cfg.assets && now != i64::MAX {
            if self.assets_refreshed == i64::MIN {
                self.assets_refreshed = now;
            } else if now - self.assets_refreshed >= ASSET_REFRESH {
                self.assets_refreshed = now;
                self.assets.last_seen(&mut self.out);
            }
        }
    }

    fn transaction(&mut self, mut tx: Transaction, flow: &Flow, server_port: u16) {
        self.stats.transactions += 1;
        let ts = tx.request_ns.or(tx.response_ns).unwrap_or(flow.first_ns);
        // Routine reads are summarised: the summary they join (one per flow, protocol,
        // function, unit and window).
        let summary_key = (tx.action == Action::Read && self.cfg.read_summary > 0).then(|| {
            let window = self.cfg.read_summary;
            let end = ts
                .div_euclid(window)
                .saturating_add(1)
                .saturating_mul(window);
            (
                end,
                flow.id,
                tx.protocol,
                tx.function_code,
                tx.unit.unwrap_or(0),
            )
        });
        // Joining a summary already open: count it and stop there (the event, the roles and
        // the baseline were done when the summary opened).
        if let Some(s) = summary_key.and_then(|k| self.summaries.get_mut(&k)) {
            s.count += 1;
            s.exceptions += u64::from(tx.exception_code.is_some());
            s.last_ns = s.last_ns.max(tx.response_ns.unwrap_or(ts));
            return;
        }
        let event = ot_event(&mut tx, flow, server_port);
        if self.cfg.assets {
            self.assets.transaction(ts, flow.vlan, &event);
        }
        if let Some(window) = self.learning() {
            // Only on conversations the baseline knows (a new one has raised its own notable).
            let key = &mut self.key;
            if Sensor::conversation_key(flow, key) && self.baseline.knows_conversation(key) {
                key.push('|');
                key.push_str(tx.protocol);
                key.push('|');
                key.push_str(itoa::Buffer::new().format(tx.function_code));
                if self.baseline.check(ts, window, Novelty::Function, key) {
                    let mut n = event.clone();
                    n.weir.class = EventClass::Notable;
                    n.event.kind = Cow::Borrowed("alert");
                    n.event.category = vec![Cow::Borrowed("intrusion_detection")];
                    n.event.kind_type = vec![Cow::Borrowed("info")];
                    n.event.action = Some("new_function".to_string());
                    n.event.dataset = Some(Cow::Borrowed("weir.notable"));
                    n.event.severity = Some(47);
                    n.tags.push(Cow::Borrowed("ot_baseline"));
                    n.message = Some(format!("{} function {} ({}) used on a known conversation for the first time since the baseline was learnt", tx.protocol, tx.function, tx.function_code));
                    self.out.push(n);
                }
            }
        }
        if tx.action.is_notable() {
            self.out.push(notable_event(&event, tx.action));
        }
        if let Some(key) = summary_key {
            // The first read of its summary (a later one returned above).
            let summary = Summary {
                event,
                count: 1,
                exceptions: u64::from(tx.exception_code.is_some()),
                last_ns: tx.response_ns.unwrap_or(ts),
            };
            self.summaries.insert(key, summary);
            return;
        }
        self.out.push(event);
    }
}

fn endpoint(
    e: &crate::packet::flow::Endpoint,
    proto: u8,
    bytes: Option<u64>,
    packets: Option<u64>,
) -> Endpoint {
    Endpoint {
        address: None,
        ip: Some(ip_text(e.ip)),
        port: has_ports(proto).then_some(e.port),
        mac: e.mac.as_ref().map(mac_string),
        bytes,
        packets,
        domain: None,
    }
}

fn network(flow: &Flow, protocol: Option<&'static str>) -> Network {
    Network {
        transport: Some(transport_name(flow.proto)),
        protocol: protocol.map(Cow::Borrowed),
        community_id: Some(flow.community_id.clone()),
        kind: Some(Cow::Borrowed(match flow.orig.ip {
            IpAddr::V4(_) => "ipv4",
            IpAddr::V6(_) => "ipv6",
        })),
        iana_number: Some(Cow::Owned(flow.proto.to_string())),
        vlan: flow.vlan.map(|v| Vlan { id: v.to_string() }),
        inner: flow.inner_vlan.map(|v| InnerVlan {
            vlan: Vlan { id: v.to_string() },
        }),
        ..Network::default()
    }
}

/// `related.ip` from the flow's endpoints (the text already in `source.ip` and
/// `destination.ip` when they are set).
fn relate(e: &mut Event, flow: &Flow) {
    for (set, ip) in [
        (e.source.as_ref().and_then(|s| s.ip.clone()), flow.orig.ip),
        (
            e.destination.as_ref().and_then(|d| d.ip.clone()),
            flow.resp.ip,
        ),
    ] {
        let text = set.unwrap_or_else(|| ip_text(ip));
        if !e.related.ip.contains(&text) {
            e.related.ip.push(text);
        }
    }
}

/// An address as ECS wants it (IPv4-mapped IPv6 as IPv4), IPv4 written without the
/// formatting machinery: every event of a flow carries its addresses several times.
pub(crate) fn ip_text(ip: IpAddr) -> String {
    let mut out = String::with_capacity(15);
    push_ip(&mut out, ip);
    out
}

/// [`ip_text`] appended to `out`.
pub(crate) fn push_ip(out: &mut String, ip: IpAddr) {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        v6 => {
            use std::fmt::Write;
            // Writing to a String cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

/// The `flow` event for a flow record.
pub fn flow_event(
    flow: &Flow,
    reason: EndReason,
    final_record: bool,
    protocol: Option<&'static str>,
) -> Event {
    let mut e = Event::new(EventClass::Flow, at(flow.first_ns));
    e.event.category = vec![Cow::Borrowed("network")];
    e.event.kind_type = vec![
        Cow::Borrowed("connection"),
        Cow::Borrowed(if final_record { "end" } else { "info" }),
    ];
    e.event.action = Some("network_flow".to_string());
    e.event.dataset = Some(Cow::Borrowed("weir.flow"));
    e.event.reason = Some(reason.as_str().to_string());
    e.event.start = Some(at(flow.first_ns));
    e.event.end = Some(at(flow.last_ns));
    e.event.duration = Some(flow.last_ns - flow.first_ns);
    let [o, r] = &flow.stats;
    e.source = Some(endpoint(
        &flow.orig,
        flow.proto,
        Some(o.ip_bytes),
        Some(o.packets),
    ));
    e.destination = Some(endpoint(
        &flow.resp,
        flow.proto,
        Some(r.ip_bytes),
        Some(r.packets),
    ));
    let mut net = network(flow, protocol);
    net.bytes = Some(o.ip_bytes + r.ip_bytes);
    net.packets = Some(o.packets + r.packets);
    e.network = Some(net);
    let tcp_or_udp = matches!(flow.proto, 6 | 17);
    e.flow = Some(Box::new(FlowInfo {
        id: Some(format!("{:x}-{:x}", flow.first_ns, flow.id)),
        state: Some(Cow::Borrowed(flow.state())),
        history: (!flow.history().is_empty()).then(|| flow.history().to_string()),
        direction_known: flow.direction_known,
        is_final: final_record,
        source_payload_bytes: tcp_or_udp.then_some(o.payload_bytes),
        destination_payload_bytes: tcp_or_udp.then_some(r.payload_bytes),
        mpls_label: flow.mpls_label,
        missed_bytes: (o.missed_bytes + r.missed_bytes > 0)
            .then_some(o.missed_bytes + r.missed_bytes),
    }));
    relate(&mut e, flow);
    e
}

/// The `ot` event for a transaction. The client is the side not on `server_port`.
/// The transaction's detail and values move into the event.
pub fn ot_event(tx: &mut Transaction, flow: &Flow, server_port: u16) -> Event {
    let start = tx.request_ns.or(tx.response_ns).unwrap_or(flow.first_ns);
    let mut e = Event::new(EventClass::Ot, at(start));
    e.event.category = vec![Cow::Borrowed("network")];
    e.event.kind_type = vec![Cow::Borrowed("protocol")];
    e.event.action = Some(tx.function.to_ascii_lowercase());
    e.event.dataset = Some(Cow::Borrowed("weir.ot"));
    e.event.outcome = Some(Cow::Borrowed(match (tx.exception_code, tx.response_ns) {
        (Some(_), _) => "failure",
        (None, Some(_)) => "success",
        (None, None) => "unknown",
    }));
    e.event.start = Some(at(start));
    if let (Some(a), Some(b)) = (tx.request_ns, tx.response_ns) {
        e.event.end = Some(at(b));
        e.event.duration = Some(b - a);
    }
    let client_is_orig = !(flow.orig.port == server_port && flow.resp.port != server_port);
    let (client, server) = if client_is_orig {
        (&flow.orig, &flow.resp)
    } else {
        (&flow.resp, &flow.orig)
    };
    e.source = Some(endpoint(client, flow.proto, None, None));
    e.destination = Some(endpoint(server, flow.proto, None, None));
    e.network = Some(network(flow, Some(tx.protocol)));
    e.ot = Some(Box::new(Ot {
        protocol: Cow::Borrowed(tx.protocol),
        action: Cow::Borrowed(tx.action.as_str()),
        function: Some(tx.function.clone()),
        function_code: Some(tx.function_code),
        unit: tx.unit,
        transaction_id: tx.transaction_id,
        address: tx.address,
        quantity: tx.quantity,
        request_values: std::mem::take(&mut tx.request_values),
        response_values: std::mem::take(&mut tx.response_values),
        exception: tx.exception.clone(),
        exception_code: tx.exception_code,
        matched: tx.matched(),
        detail: Pairs(
            std::mem::take(&mut tx.detail)
                .into_iter()
                .map(|(k, v)| (Cow::Borrowed(k), v))
                .collect(),
        ),
        count: None,
    }));
    let mut msg = String::with_capacity(64);
    msg.push_str(tx.protocol);
    msg.push(' ');
    msg.push_str(&tx.function);
    msg.push(' ');
    msg.push_str(tx.action.as_str());
    let mut number = itoa::Buffer::new();
    for (label, value) in [
        (" unit ", tx.unit),
        (" address ", tx.address),
        (" quantity ", tx.quantity),
    ] {
        if let Some(v) = value {
            msg.push_str(label);
            msg.push_str(number.format(v));
        }
    }
    if let Some(x) = &tx.exception {
        msg.push_str(" exception ");
        msg.push_str(x);
    }
    e.message = Some(msg);
    relate(&mut e, flow);
    e
}

fn summary_event(s: Summary) -> Event {
    let mut e = s.event;
    if let Some(ot) = e.ot.as_deref_mut() {
        ot.count = Some(s.count);
        ot.request_values.clear();
        ot.response_values.clear();
        ot.transaction_id = None;
        if s.exceptions > 0 {
            ot.detail
                .0
                .push((Cow::Borrowed("exceptions"), s.exceptions.to_string()));
        }
    }
    let start = e.event.start.unwrap_or(e.timestamp);
    e.event.end = Some(at(s.last_ns));
    e.event.duration = Some((s.last_ns - start.timestamp_nanos_opt().unwrap_or(0)).max(0));
    e.event.outcome = Some(Cow::Borrowed(if s.exceptions == 0 {
        "success"
    } else {
        "unknown"
    }));
    if let Some(m) = &mut e.message {
        *m = format!("{m} ({} transactions)", s.count);
    }
    e
}

/// A notable event of the baseline (`new_asset`, `new_conversation`).
fn baseline_notable(ts: i64, action: &'static str, message: String) -> Event {
    let mut e = Event::new(EventClass::Notable, at(ts));
    e.event.kind = Cow::Borrowed("alert");
    e.event.category = vec![Cow::Borrowed("intrusion_detection")];
    e.event.kind_type = vec![Cow::Borrowed("info")];
    e.event.action = Some(action.to_string());
    e.event.dataset = Some(Cow::Borrowed("weir.notable"));
    e.event.severity = Some(47);
    e.tags.push(Cow::Borrowed("ot_baseline"));
    e.message = Some(message);
    e
}

/// The notable event an always-reported action raises.
fn notable_event(ot: &Event, action: Action) -> Event {
    let mut e = ot.clone();
    e.weir.class = EventClass::Notable;
    e.event.kind = Cow::Borrowed("alert");
    e.event.category = vec![Cow::Borrowed("intrusion_detection")];
    e.event.kind_type = vec![Cow::Borrowed("info")];
    e.event.action = Some(format!("ot_{}", action.as_str()));
    e.event.dataset = Some(Cow::Borrowed("weir.notable"));
    e.event.severity = Some(match action {
        Action::ProgramDownload | Action::Firmware | Action::ModeChange | Action::Restart => 73,
        _ => 47,
    });
    e.tags.push(Cow::Borrowed("ot_notable"));
    let src = e
        .source
        .as_ref()
        .and_then(|s| s.ip.clone())
        .unwrap_or_default();
    let dst = e
        .destination
        .as_ref()
        .and_then(|s| s.ip.clone())
        .unwrap_or_default();
    if let Some(o) = &e.ot {
        e.message = Some(format!(
            "{} {} ({}) from {src} to {dst}",
            o.protocol,
            o.function.as_deref().unwrap_or("?"),
            action.as_str().replace('_', " ")
        ));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_upper_case_and_dash_separated() {
        assert_eq!(
            mac_string(&[0x00, 0x1b, 0x1b, 0xa0, 0xff, 0x0f]),
            "00-1B-1B-A0-FF-0F"
        );
        for b in 0..=255u8 {
            let m = [b, b.wrapping_add(1), 0, 255, b / 2, b ^ 0x5a];
            let want = m
                .iter()
                .map(|x| format!("{x:02X}"))
                .collect::<Vec<_>>()
                .join("-");
            assert_eq!(mac_string(&m), want);
        }
    }

    #[test]
    fn addresses_are_written_as_the_standard_library_writes_them() {
        let mut cases: Vec<IpAddr> = [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.9",
            "1.20.3.199",
            "192.168.1.10",
            "::ffff:10.0.0.5",
            "2001:db8::1",
            "fe80::1%0",
        ]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
        cases.extend(
            (0..=255u8).map(|o| IpAddr::V4(std::net::Ipv4Addr::new(o, 255 - o, o / 3, o % 100))),
        );
        assert!(cases.len() > 256);
        for ip in cases {
            assert_eq!(ip_text(ip), ip.to_canonical().to_string(), "{ip:?}");
        }
        assert_eq!(ip_text("::ffff:10.0.0.5".parse().expect("ip")), "10.0.0.5");
    }
}
