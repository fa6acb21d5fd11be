//! The flow table: packets in, flow records out.
//!
//! A flow is keyed by its 5-tuple (both directions alike; ICMP by type pair as Community ID
//! does). The originator is the side that sent the first SYN, or, for a flow the sensor joined
//! mid-stream, the side that does not use a well-known server port (`direction_known` is then
//! false). Records follow Zeek's `conn.log` semantics where it has them (connection state codes,
//! history letters, payload bytes counted by sequence space, a new flow after a reset or on port
//! reuse after a close), with idle timeouts per transport, an active timeout that emits interim
//! records for long-lived OT sessions, and a bounded table whose evictions are counted.
//!
//! Time is the packets' own: [`FlowTable::advance`] is driven by packet timestamps (or by the
//! caller's clock on a quiet live interface), so replaying a capture gives the same records.

// Every index below follows a length check on the same slice; the fuzz targets hold that.
#![allow(clippy::indexing_slicing)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;

use super::community_id::{community_id, icmp_ports};
use super::decode::{tcp_flags, Frame, Ip, Transport};

const SEC: i64 = 1_000_000_000;

/// Flow table settings. Durations are nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowConfig {
    /// A TCP flow with no packet for this long ends (`idle_timeout`). Default 300 s (Zeek's
    /// `tcp_inactivity_timeout`).
    pub tcp_idle: i64,
    /// Idle timeout for UDP. Default 60 s (Zeek's `udp_inactivity_timeout`).
    pub udp_idle: i64,
    /// Idle timeout for ICMP and every other protocol. Default 60 s.
    pub other_idle: i64,
    /// A flow still live this long after its start (or its last interim record) gets an
    /// interim record. Default 300 s. 0 disables interim records.
    pub active_timeout: i64,
    /// How long a TCP flow closed by FIN from both sides, or reset, stays to collect its last
    /// ACKs before it is written. Default 5 s (Zeek's `tcp_close_delay`).
    pub close_linger: i64,
    /// The most flows held at once; beyond it the longest-idle sixteenth is evicted (counted).
    /// Default 262,144.
    pub max_flows: usize,
    /// Community ID seed. Default 0.
    pub community_id_seed: u16,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            tcp_idle: 300 * SEC,
            udp_idle: 60 * SEC,
            other_idle: 60 * SEC,
            active_timeout: 300 * SEC,
            close_linger: 5 * SEC,
            max_flows: 262_144,
            community_id_seed: 0,
        }
    }
}

/// Which side of a flow sent a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The originator (client, master).
    Orig,
    /// The responder (server, outstation).
    Resp,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Orig => 0,
            Side::Resp => 1,
        }
    }
}

/// Why a flow record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Interim record: the flow is still live.
    ActiveTimeout,
    /// No packet for the idle timeout.
    IdleTimeout,
    /// Closed by FIN from both sides.
    TcpClosed,
    /// Reset.
    TcpReset,
    /// A new connection reused the 5-tuple (a SYN after a close, data after a reset).
    Reused,
    /// Evicted because the table was full.
    Evicted,
    /// End of the capture, or shutdown.
    Flushed,
}

impl EndReason {
    /// The name used in `event.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::ActiveTimeout => "active_timeout",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::TcpClosed => "tcp_closed",
            EndReason::TcpReset => "tcp_reset",
            EndReason::Reused => "reused",
            EndReason::Evicted => "evicted",
            EndReason::Flushed => "flushed",
        }
    }
}

/// One endpoint of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// Address.
    pub ip: IpAddr,
    /// Port (ICMP: the type, as Community ID uses it; 0 for portless protocols).
    pub port: u16,
    /// Ethernet address, when the link layer had one.
    pub mac: Option<[u8; 6]>,
}

/// Per-direction counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirStats {
    /// Packets.
    pub packets: u64,
    /// IP bytes (IP headers included, link layer excluded).
    pub ip_bytes: u64,
    /// Transport payload bytes (TCP: new sequence space only, so retransmissions do not count).
    pub payload_bytes: u64,
    /// TCP bytes skipped by a sequence gap.
    pub missed_bytes: u64,
    /// Union of TCP flags sent.
    pub tcp_flags: u8,
    state: TcpState,
    next_seq: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum TcpState {
    #[default]
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset,
}

/// A flow as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// Sequence number of the flow within this table (stable across its interim records).
    pub id: u64,
    /// IP protocol number.
    pub proto: u8,
    /// The originator.
    pub orig: Endpoint,
    /// The responder.
    pub resp: Endpoint,
    /// False when the sensor joined the flow mid-stream and guessed the originator from ports.
    pub direction_known: bool,
    /// First packet, ns since the epoch.
    pub first_ns: i64,
    /// Last packet.
    pub last_ns: i64,
    /// Counters: `[orig, resp]`.
    pub stats: [DirStats; 2],
    /// Outer VLAN id.
    pub vlan: Option<u16>,
    /// Inner VLAN id.
    pub inner_vlan: Option<u16>,
    /// Top MPLS label.
    pub mpls_label: Option<u32>,
    /// Community ID v1.
    pub community_id: String,
    history: [u8; 24],
    history_len: u8,
    history_seen: u64,
    interim_ns: i64,
}

impl Flow {
    /// Zeek-style history: `S` SYN, `H` SYN-ACK, `A` pure ACK, `D` data, `F` FIN, `R` RST, `T`
    /// retransmission, `G` gap, `^` originator guessed by port; upper case for the originator,
    /// lower case for the responder; each letter once per side.
    pub fn history(&self) -> &str {
        std::str::from_utf8(&self.history[..usize::from(self.history_len)]).unwrap_or("")
    }

    fn note(&mut self, side: Side, letter: u8) {
        let letter = if side == Side::Resp {
            letter.to_ascii_lowercase()
        } else {
            letter
        };
        let bit = match letter {
            b'a'..=b'z' => 1u64 << (letter - b'a'),
            b'A'..=b'Z' => 1u64 << (26 + letter - b'A'),
            _ => 1u64 << 63,
        };
        if self.history_seen & bit != 0 || usize::from(self.history_len) >= self.history.len() {
            return;
        }
        self.history_seen |= bit;
        self.history[usize::from(self.history_len)] = letter;
        self.history_len += 1;
    }

    /// Zeek's `conn_state` for the flow as it stands.
    pub fn state(&self) -> &'static str {
        let (o, r) = (&self.stats[0], &self.stats[1]);
        match self.proto {
            6 => {
                use TcpState::*;
                let o_inactive = matches!(o.state, Inactive | Partial);
                let r_inactive = matches!(r.state, Inactive | Partial);
                if r.state == Reset {
                    if matches!(o.state, SynSent | SynAckSent)
                        || (o.state == Reset && o.payload_bytes == 0 && r.payload_bytes == 0)
                    {
                        "REJ"
                    } else if o_inactive {
                        "RSTRH"
                    } else {
                        "RSTR"
                    }
                } else if o.state == Reset {
                    let h = self.history();
                    let h = h.strip_prefix('^').unwrap_or(h);
                    if r_inactive
                        && h.starts_with('S')
                        && !h[1..].contains(['H', 'A', 'F', 'G', 'I', 'Q'])
                    {
                        "RSTOS0"
                    } else {
                        "RSTO"
                    }
                } else if r.state == Closed && o.state == Closed {
                    "SF"
                } else if o.state == Closed {
                    if r_inactive {
                        "SH"
                    } else {
                        "S2"
                    }
                } else if r.state == Closed {
                    if o_inactive {
                        "SHR"
                    } else {
                        "S3"
                    }
                } else if o.state == SynSent && r.state == Inactive {
                    "S0"
                } else if o.state == Established && r.state == Established {
                    "S1"
                } else {
                    "OTH"
                }
            }
            17 => match (o.packets > 0, r.packets > 0) {
                (true, true) => "SF",
                (true, false) => "S0",
                (false, true) => "SHR",
                (false, false) => "OTH",
            },
            _ => "OTH",
        }
    }

    fn tcp_done(&self) -> bool {
        let (o, r) = (self.stats[0].state, self.stats[1].state);
        o == TcpState::Reset
            || r == TcpState::Reset
            || (o == TcpState::Closed && r == TcpState::Closed)
    }
}

/// A flow record: the flow and why it was written. `app` is the caller's per-flow state, handed
/// back with the final record (interim records carry `None`).
#[derive(Debug)]
pub struct FlowRecord<A> {
    /// The flow (a snapshot for interim records).
    pub flow: Flow,
    /// Why it was written.
    pub reason: EndReason,
    /// The caller's state for the flow, on its final record.
    pub app: Option<A>,
}

/// What the table made of one packet.
pub struct Observed<'t, 'p, A> {
    /// Which side sent it.
    pub side: Side,
    /// The flow's id.
    pub flow_id: u64,
    /// The flow (after this packet).
    pub flow: &'t Flow,
    /// The caller's state for the flow.
    pub app: &'t mut A,
    /// The application bytes to parse, in order: TCP payload beyond what was already seen
    /// (retransmissions removed), UDP payload as is.
    pub payload: &'p [u8],
    /// True when TCP bytes before `payload` were never seen (a gap): stream parsers resync.
    pub gap: bool,
}

/// Counters of the table itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Flows created.
    pub flows: u64,
    /// Flows evicted because the table was full.
    pub evicted: u64,
    /// Non-first IP fragments (no ports: not attributed to a flow).
    pub fragments: u64,
    /// Packets whose transport header was cut short.
    pub truncated: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    lo: IpAddr,
    hi: IpAddr,
    lo_port: u16,
    hi_port: u16,
    proto: u8,
}

struct Entry<A> {
    flow: Flow,
    app: A,
}

/// The flow table. `A` is per-flow state owned by the caller (application parsers).
pub struct FlowTable<A> {
    cfg: FlowConfig,
    /// ahash with per-process random keys: fast, and not predictable by whoever crafts the
    /// packets (a fixed-key hash would let an attacker on the SPAN collide flows).
    flows: HashMap<Key, Entry<A>, ahash::RandomState>,
    out: Vec<FlowRecord<A>>,
    /// Timers, earliest first: `(due, flow id, key)`. A flow's entry may be stale (the flow
    /// saw packets since, or is gone); popping it re-checks and reschedules. Zeek keeps its
    /// inactivity timers the same way.
    timers: BinaryHeap<Reverse<(i64, u64, Key)>>,
    next_id: u64,
    stats: TableStats,
}

/// Ports a server listens on, used to guess the originator of a flow joined mid-stream: every
/// port below 1024 and the registered ports of the OT and IT protocols Weir sees most.
pub fn is_server_port(port: u16) -> bool {
    port < 1024
        || matches!(
            port,
            1089..=1091 // FF HSE
                | 1883 | 8883 // MQTT
                | 2222 // EtherNet/IP implicit I/O
                | 2404 // IEC 60870-5-104
                | 4000 // Emerson ROC
                | 4840 | 4843 // OPC UA
                | 5007 // Mitsubishi MELSEC
                | 5094 // HART-IP
                | 9600 // OMRON FINS
                | 18245 | 18246 // GE SRTP
                | 20000 // DNP3
                | 34962..=34964 // PROFINET
                | 44818 // EtherNet/IP
                | 47808 // BACnet/IP
                | 1433 | 1521 | 3306 | 3389 | 5432 | 5900 | 8080 | 8443
        )
}

impl<A: Default> FlowTable<A> {
    /// An empty table.
    pub fn new(cfg: FlowConfig) -> FlowTable<A> {
        FlowTable {
            cfg,
            flows: HashMap::with_hasher(ahash::RandomState::new()),
            out: Vec::new(),
            timers: BinaryHeap::new(),
            next_id: 0,
            stats: TableStats::default(),
        }
    }

    /// The table's counters.
    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// Flows held now.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// True when no flow is held.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    fn idle_for(&self, proto: u8) -> i64 {
        match proto {
            6 => self.cfg.tcp_idle,
            17 => self.cfg.udp_idle,
            _ => self.cfg.other_idle,
        }
    }

    /// Account one IP packet seen at `ts` (ns). Returns `None` for packets that belong to no
    /// flow (non-first fragments, truncated transport headers), counted in [`TableStats`].
    pub fn packet<'p>(
        &mut self,
        ts: i64,
        frame: &Frame<'p>,
        ip: &Ip<'p>,
    ) -> Option<Observed<'_, 'p, A>> {
        let v6 = ip.src.is_ipv6();
        let (sport, dport, one_way) = match ip.transport {
            Transport::Tcp(t) => (t.src_port, t.dst_port, false),
            Transport::Udp {
                src_port, dst_port, ..
            }
            | Transport::Sctp { src_port, dst_port } => (src_port, dst_port, false),
            Transport::Icmp { kind, code } => icmp_ports(v6, kind, code),
            Transport::Other => (0, 0, false),
            Transport::Fragment => {
                self.stats.fragments += 1;
                return None;
            }
            Transport::Truncated => {
                self.stats.truncated += 1;
                return None;
            }
        };
        let forward = (ip.src, sport) <= (ip.dst, dport);
        let key = if forward || one_way {
            Key {
                lo: ip.src,
                hi: ip.dst,
                lo_port: sport,
                hi_port: dport,
                proto: ip.proto,
            }
        } else {
            Key {
                lo: ip.dst,
                hi: ip.src,
                lo_port: dport,
                hi_port: sport,
                proto: ip.proto,
            }
        };
        let tcp = match ip.transport {
            Transport::Tcp(t) => Some(t),
            _ => None,
        };

        // Timers due by now fire first: a flow idle for exactly its timeout has ended (Zeek's
        // `last_time + inactivity_timeout <= t`).
        self.expire(ts);
        // An existing flow that this packet does not continue is written out first.
        if let Some(e) = self.flows.get(&key) {
            let reused = match tcp {
                Some(t) if e.flow.tcp_done() => {
                    let syn = t.flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN;
                    let reset = e.flow.stats.iter().any(|d| d.state == TcpState::Reset);
                    syn || (reset && t.payload_len > 0)
                }
                _ => false,
            };
            if reused {
                if let Some(e) = self.flows.remove(&key) {
                    self.out.push(FlowRecord {
                        flow: e.flow,
                        reason: EndReason::Reused,
                        app: Some(e.app),
                    });
                }
            }
        }
        if !self.flows.contains_key(&key) {
            if self.flows.len() >= self.cfg.max_flows.max(1) {
                self.evict();
            }
            let flow = self.new_flow(ts, frame, ip, sport, dport, one_way, tcp.map(|t| t.flags));
            self.timers.push(Reverse((
                ts.saturating_add(self.idle_for(ip.proto)),
                flow.id,
                key,
            )));
            self.flows.insert(
                key,
                Entry {
                    flow,
                    app: A::default(),
                },
            );
        }
        let entry = self.flows.get_mut(&key)?;
        let flow = &mut entry.flow;
        let side = if (ip.src, sport) == (flow.orig.ip, flow.orig.port)
            && (ip.dst, dport) == (flow.resp.ip, flow.resp.port)
        {
            Side::Orig
        } else {
            Side::Resp
        };
        flow.last_ns = flow.last_ns.max(ts);
        let d = side.index();
        flow.stats[d].packets += 1;
        flow.stats[d].ip_bytes += u64::from(ip.ip_len);
        if flow.vlan.is_none() {
            flow.vlan = frame.vlan;
            flow.inner_vlan = frame.inner_vlan;
        }
        if flow.mpls_label.is_none() {
            flow.mpls_label = frame.mpls_label;
        }
        let mac = if side == Side::Orig {
            &mut flow.orig.mac
        } else {
            &mut flow.resp.mac
        };
        if mac.is_none() {
            *mac = frame.src_mac;
        }
        let (payload, gap) = match ip.transport {
            Transport::Tcp(t) => tcp_update(flow, side, &t),
            Transport::Udp { payload, .. } => {
                flow.stats[d].payload_bytes += payload.len() as u64;
                flow.stats[d].state = TcpState::Established;
                if !payload.is_empty() {
                    flow.note(side, b'D');
                }
                (payload, false)
            }
            _ => (&[][..], false),
        };
        Some(Observed {
            side,
            flow_id: flow.id,
            flow: &entry.flow,
            app: &mut entry.app,
            payload,
            gap,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn new_flow(
        &mut self,
        ts: i64,
        frame: &Frame<'_>,
        ip: &Ip<'_>,
        sport: u16,
        dport: u16,
        one_way: bool,
        flags: Option<u8>,
    ) -> Flow {
        self.next_id += 1;
        self.stats.flows += 1;
        let (mut flip, mut known) = (false, true);
        match flags {
            Some(f) if f & tcp_flags::SYN != 0 && f & tcp_flags::ACK == 0 => {}
            Some(f) if f & tcp_flags::SYN != 0 => flip = true,
            Some(_) => {
                known = false;
                flip = is_server_port(sport) && !is_server_port(dport);
            }
            None if ip.proto == 17 || ip.proto == 132 => {
                flip = is_server_port(sport) && !is_server_port(dport);
                known = !flip;
            }
            None => {
                // ICMP: a reply seen first means the request was missed.
                if let Transport::Icmp { kind, .. } = ip.transport {
                    flip = matches!(
                        (ip.src.is_ipv6(), kind),
                        (false, 0 | 14 | 16 | 18) | (true, 129 | 131 | 134 | 136)
                    );
                    known = !flip;
                }
            }
        }
        if one_way {
            flip = false;
        }
        let a = Endpoint {
            ip: ip.src,
            port: sport,
            mac: None,
        };
        let b = Endpoint {
            ip: ip.dst,
            port: dport,
            mac: None,
        };
        let (orig, resp) = if flip { (b, a) } else { (a, b) };
        let ports = match ip.proto {
            6 | 17 | 132 | 1 | 58 => Some((orig.port, resp.port)),
            _ => None,
        };
        let cid = community_id(
            self.cfg.community_id_seed,
            orig.ip,
            resp.ip,
            ip.proto,
            ports,
            one_way,
        );
        let mut flow = Flow {
            id: self.next_id,
            proto: ip.proto,
            orig,
            resp,
            direction_known: known,
            first_ns: ts,
            last_ns: ts,
            stats: [DirStats::default(); 2],
            vlan: frame.vlan,
            inner_vlan: frame.inner_vlan,
            mpls_label: frame.mpls_label,
            community_id: cid,
            history: [0; 24],
            history_len: 0,
            history_seen: 0,
            interim_ns: ts,
        };
        if flip && flags.is_some_and(|f| f & tcp_flags::SYN == 0) {
            flow.note(Side::Orig, b'^');
        }
        flow
    }

    /// Move time forward to `now` (ns): flows idle for their timeout, or closed and lingered,
    /// are written; live flows past the active timeout get an interim record. [`FlowTable::packet`]
    /// does this with each packet's time; on a quiet live interface call it with the wall clock.
    pub fn advance(&mut self, now: i64) {
        self.expire(now);
    }

    /// When a flow next needs attention, and what happens then.
    fn due(&self, f: &Flow) -> (i64, EndReason) {
        due_of(&self.cfg, f)
    }

    fn expire(&mut self, now: i64) {
        while let Some(&Reverse((at, id, key))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(e) = self.flows.get(&key) else {
                continue;
            };
            if e.flow.id != id {
                continue;
            }
            let (due, reason) = self.due(&e.flow);
            if due > now {
                self.timers.push(Reverse((due, id, key)));
            } else if reason == EndReason::ActiveTimeout {
                if let Some(e) = self.flows.get_mut(&key) {
                    e.flow.interim_ns = due;
                    self.out.push(FlowRecord {
                        flow: e.flow.clone(),
                        reason,
                        app: None,
                    });
                    let next = due_of(&self.cfg, &e.flow).0;
                    self.timers.push(Reverse((next, id, key)));
                }
            } else if let Some(e) = self.flows.remove(&key) {
                self.out.push(FlowRecord {
                    flow: e.flow,
                    reason,
                    app: Some(e.app),
                });
            }
        }
    }

    fn evict(&mut self) {
        let mut by_age: Vec<(i64, u64, Key)> = self
            .flows
            .iter()
            .map(|(k, e)| (e.flow.last_ns, e.flow.id, *k))
            .collect();
        let n = (by_age.len() / 16).max(1);
        by_age.sort_unstable_by_key(|&(last, id, _)| (last, id));
        for (_, _, key) in by_age.into_iter().take(n) {
            if let Some(e) = self.flows.remove(&key) {
                self.stats.evicted += 1;
                self.out.push(FlowRecord {
                    flow: e.flow,
                    reason: EndReason::Evicted,
                    app: Some(e.app),
                });
            }
        }
    }

    /// Write every flow out (end of a capture, shutdown), oldest first.
    pub fn flush(&mut self) {
        let mut all: Vec<(i64, u64, Key)> = self
            .flows
            .iter()
            .map(|(k, e)| (e.flow.first_ns, e.flow.id, *k))
            .collect();
        all.sort_unstable_by_key(|&(first, id, _)| (first, id));
        for (_, _, key) in all {
            if let Some(e) = self.flows.remove(&key) {
                let reason = if e.flow.proto == 6 && e.flow.tcp_done() {
                    if e.flow.stats.iter().any(|d| d.state == TcpState::Reset) {
                        EndReason::TcpReset
                    } else {
                        EndReason::TcpClosed
                    }
                } else {
                    EndReason::Flushed
                };
                self.out.push(FlowRecord {
                    flow: e.flow,
                    reason,
                    app: Some(e.app),
                });
            }
        }
    }

    /// Take the records written so far, in order.
    pub fn drain(&mut self) -> std::vec::Drain<'_, FlowRecord<A>> {
        self.out.drain(..)
    }
}

fn due_of(cfg: &FlowConfig, f: &Flow) -> (i64, EndReason) {
    let idle = match f.proto {
        6 => cfg.tcp_idle,
        17 => cfg.udp_idle,
        _ => cfg.other_idle,
    };
    let end = if f.proto == 6 && f.tcp_done() {
        let reset = f.stats.iter().any(|d| d.state == TcpState::Reset);
        let reason = if reset {
            EndReason::TcpReset
        } else {
            EndReason::TcpClosed
        };
        (f.last_ns.saturating_add(cfg.close_linger), reason)
    } else {
        (f.last_ns.saturating_add(idle), EndReason::IdleTimeout)
    };
    if cfg.active_timeout > 0 {
        let interim = f.interim_ns.saturating_add(cfg.active_timeout);
        if interim < end.0 {
            return (interim, EndReason::ActiveTimeout);
        }
    }
    end
}

/// TCP bookkeeping for one segment: state machine, history, sequence space. Returns the new
/// in-order payload and whether a gap preceded it.
fn tcp_update<'p>(flow: &mut Flow, side: Side, t: &super::decode::Tcp<'p>) -> (&'p [u8], bool) {
    use TcpState::*;
    let d = side.index();
    let o = 1 - d;
    let f = t.flags;
    flow.stats[d].tcp_flags |= f;
    let syn = f & tcp_flags::SYN != 0;
    let ack = f & tcp_flags::ACK != 0;
    let fin = f & tcp_flags::FIN != 0;
    let rst = f & tcp_flags::RST != 0;
    if syn {
        flow.note(side, if ack { b'H' } else { b'S' });
        if flow.stats[d].state == Inactive || flow.stats[d].state == Partial {
            flow.stats[d].state = if ack { SynAckSent } else { SynSent };
        }
    } else if ack && t.payload_len == 0 && !fin && !rst {
        flow.note(side, b'A');
    }
    if !syn && !rst {
        match flow.stats[d].state {
            Inactive => {
                flow.stats[d].state = if ack && flow.stats[o].state == SynAckSent {
                    Established
                } else {
                    Partial
                }
            }
            SynSent | SynAckSent if ack => {
                flow.stats[d].state = Established;
                if flow.stats[o].state == SynAckSent || flow.stats[o].state == SynSent {
                    flow.stats[o].state = Established;
                }
            }
            _ => {}
        }
    }
    // Sequence space: SYN and FIN take one number each.
    let mut payload: &'p [u8] = &[];
    let mut gap = false;
    let len = t.payload_len;
    let start = t.seq.wrapping_add(u32::from(syn));
    let end = start.wrapping_add(len);
    match flow.stats[d].next_seq {
        None => {
            flow.stats[d].next_seq = Some(end.wrapping_add(u32::from(fin)));
            flow.stats[d].payload_bytes += u64::from(len);
            payload = t.payload;
            if len > 0 {
                flow.note(side, b'D');
            }
        }
        Some(next) => {
            let ahead = end.wrapping_sub(next) as i32;
            if len > 0 && ahead <= 0 {
                flow.note(side, b'T');
            } else if ahead > 0 {
                let behind = next.wrapping_sub(start) as i32;
                if behind < 0 {
                    // Bytes between `next` and `start` were never seen.
                    flow.stats[d].missed_bytes += u64::from(behind.unsigned_abs());
                    flow.stats[d].payload_bytes += u64::from(len);
                    if len > 0 {
                        flow.note(side, b'G');
                        gap = true;
                    }
                    payload = t.payload;
                } else {
                    let skip = behind as usize;
                    flow.stats[d].payload_bytes += u64::from(len) - skip as u64;
                    payload = t.payload.get(skip..).unwrap_or(&[]);
                }
                if len > 0 {
                    flow.note(side, b'D');
                }
                flow.stats[d].next_seq = Some(end.wrapping_add(u32::from(fin)));
            } else if fin {
                flow.stats[d].next_seq = Some(end.wrapping_add(1));
            }
        }
    }
    if fin {
        flow.note(side, b'F');
        if flow.stats[d].state != Reset {
            flow.stats[d].state = Closed;
        }
    }
    if rst {
        flow.note(side, b'R');
        flow.stats[d].state = Reset;
    }
    (payload, gap)
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::packet::decode::decode;
    use crate::packet::LinkType;

    fn udp(src_port: u16) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend_from_slice(&src_port.to_be_bytes());
        p.extend_from_slice(&[0x01, 0xf6, 0, 8, 0, 0]);
        p
    }

    #[test]
    fn a_full_table_evicts_the_longest_idle_and_counts_them() {
        let cfg = FlowConfig {
            max_flows: 16,
            ..FlowConfig::default()
        };
        let mut t: FlowTable<()> = FlowTable::new(cfg);
        for i in 0..40u16 {
            let p = udp(2000 + i);
            let f = decode(LinkType::Raw, &p).unwrap();
            let crate::packet::decode::Net::Ip(ip) = f.net else {
                panic!("not IP")
            };
            t.packet(i64::from(i) * 1_000_000, &f, &ip);
        }
        let evicted: Vec<_> = t.drain().collect();
        assert!(t.len() <= 16);
        assert_eq!(t.stats().evicted, evicted.len() as u64);
        assert_eq!(t.stats().flows, 40);
        assert_eq!(evicted.len() + t.len(), 40);
        // The oldest go first.
        assert_eq!(evicted.first().map(|r| r.flow.orig.port), Some(2000));
        assert!(evicted.iter().all(|r| r.reason == EndReason::Evicted));
    }

    #[test]
    fn interim_records_for_long_flows_then_idle_end() {
        let cfg = FlowConfig {
            active_timeout: 10 * SEC,
            udp_idle: 5 * SEC,
            ..FlowConfig::default()
        };
        let mut t: FlowTable<()> = FlowTable::new(cfg);
        let p = udp(3000);
        let f = decode(LinkType::Raw, &p).unwrap();
        let crate::packet::decode::Net::Ip(ip) = f.net else {
            panic!("not IP")
        };
        // A packet every 2 s for 25 s: interim records at 10 s and 20 s, then the idle end.
        for s in 0..=12 {
            t.packet(s * 2 * SEC, &f, &ip);
        }
        t.advance(40 * SEC);
        let recs: Vec<(EndReason, u64)> = t
            .drain()
            .map(|r| (r.reason, r.flow.stats[0].packets))
            .collect();
        assert_eq!(
            recs,
            vec![
                (EndReason::ActiveTimeout, 5),
                (EndReason::ActiveTimeout, 10),
                (EndReason::IdleTimeout, 13)
            ]
        );
    }
}
