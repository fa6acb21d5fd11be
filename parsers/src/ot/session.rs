//! Per-flow protocol sessions: bounded stream buffers that cut a TCP byte stream into PDUs, and
//! request/response matching.

use std::borrow::Cow;
use std::collections::VecDeque;

use super::{bacnet, dnp3, enip, iec104, modbus, mqtt, opcua, s7comm, Action, Transaction};

/// The most bytes a stream buffer holds while waiting for the rest of a PDU. A PDU longer than
/// this is skipped (counted as a resync).
pub const MAX_BUFFER: usize = 64 * 1024;
/// Requests waiting for a response, per flow; beyond it the oldest is written unmatched.
pub const MAX_PENDING: usize = 256;
/// Frames that fail to parse before a flow is no longer treated as the protocol.
pub const MAX_FAILURES: u32 = 4;

/// What a framer made of the bytes at the start of a stream: `Ok(Some(len))` a whole PDU,
/// `Ok(None)` more bytes needed, `Err(n)` not the protocol: skip `n` bytes to where it may
/// start again (0: drop everything buffered).
pub type Framed = Result<Option<usize>, usize>;

/// One direction of a TCP stream, cut into PDUs.
#[derive(Debug, Default)]
pub struct Stream {
    buf: Vec<u8>,
    skip: usize,
}

/// Counters a session keeps for the sensor.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    /// Times a stream lost its framing (gap, garbage, oversized PDU) and started over.
    pub resyncs: u64,
    /// Bytes that could not be parsed as the protocol.
    pub bad_frames: u64,
}

impl Stream {
    /// Add in-order bytes (after a gap if `gap`) and hand every complete PDU to `pdu`.
    /// `framer` returns the length of the PDU at the start of its argument, `Ok(None)` if more
    /// bytes are needed, or `Err` if the bytes are not the protocol. Returns the number of
    /// frames the framer refused.
    pub fn feed(
        &mut self,
        data: &[u8],
        gap: bool,
        framer: fn(&[u8]) -> Framed,
        stats: &mut StreamStats,
        mut pdu: impl FnMut(&[u8]),
    ) -> u32 {
        let mut refused = 0;
        if gap && (!self.buf.is_empty() || self.skip > 0) {
            self.buf.clear();
            self.skip = 0;
            stats.resyncs += 1;
        }
        let mut data = data;
        if self.skip > 0 {
            let n = self.skip.min(data.len());
            self.skip -= n;
            data = data.get(n..).unwrap_or(&[]);
        }
        // Fast path: nothing buffered, whole PDUs straight from the segment.
        if self.buf.is_empty() {
            loop {
                match framer(data) {
                    Ok(Some(len)) if len <= data.len() => {
                        let (one, rest) = data.split_at(len);
                        pdu(one);
                        data = rest;
                        if data.is_empty() {
                            return refused;
                        }
                    }
                    Ok(_) => break,
                    Err(n) if n > 0 && n < data.len() => {
                        stats.bad_frames += n as u64;
                        stats.resyncs += 1;
                        refused += 1;
                        data = data.get(n..).unwrap_or(&[]);
                    }
                    Err(_) => {
                        stats.bad_frames += data.len() as u64;
                        stats.resyncs += 1;
                        return refused + 1;
                    }
                }
            }
        }
        self.buf.extend_from_slice(data);
        let mut at = 0;
        loop {
            let rest = self.buf.get(at..).unwrap_or(&[]);
            if rest.is_empty() {
                break;
            }
            match framer(rest) {
                Ok(Some(len)) if len <= rest.len() => {
                    if let Some(one) = rest.get(..len) {
                        pdu(one);
                    }
                    at += len;
                }
                Ok(Some(len)) if len > MAX_BUFFER => {
                    // Too long to hold: skip it.
                    self.skip = len - rest.len();
                    at = self.buf.len();
                    stats.resyncs += 1;
                }
                Ok(_) => break,
                Err(n) if n > 0 && n < rest.len() => {
                    stats.bad_frames += n as u64;
                    stats.resyncs += 1;
                    refused += 1;
                    at += n;
                }
                Err(_) => {
                    stats.bad_frames += rest.len() as u64;
                    stats.resyncs += 1;
                    refused += 1;
                    at = self.buf.len();
                }
            }
        }
        self.buf.drain(..at);
        if self.buf.len() > MAX_BUFFER {
            self.buf.clear();
            stats.resyncs += 1;
        }
        refused
    }
}

/// Queue a request waiting for its answer; when `MAX_PENDING` wait already, the oldest is
/// written unmatched through `unmatched`.
fn queue<R>(
    pending: &mut VecDeque<(i64, R)>,
    ts: i64,
    request: R,
    out: &mut Vec<Transaction>,
    unmatched: impl Fn(i64, &R) -> Transaction,
) {
    if pending.len() >= MAX_PENDING {
        if let Some((t, old)) = pending.pop_front() {
            out.push(unmatched(t, &old));
        }
    }
    pending.push_back((ts, request));
}

/// Take the oldest waiting request `matches` accepts.
fn take<R>(pending: &mut VecDeque<(i64, R)>, matches: impl Fn(&R) -> bool) -> Option<(i64, R)> {
    let at = pending.iter().position(|(_, r)| matches(r))?;
    pending.remove(at)
}

/// Write every request still waiting, unmatched (the flow ended).
fn flush<R>(
    pending: &mut VecDeque<(i64, R)>,
    out: &mut Vec<Transaction>,
    unmatched: impl Fn(i64, &R) -> Transaction,
) {
    for (t, r) in pending.drain(..) {
        out.push(unmatched(t, &r));
    }
}

fn modbus_framer(b: &[u8]) -> Framed {
    modbus::frame_len(b).map_err(|_| 0)
}

/// A Modbus/TCP session: requests matched to responses by (transaction id, unit).
#[derive(Debug, Default)]
pub struct ModbusSession {
    streams: [Stream; 2],
    pending: VecDeque<(i64, modbus::Pdu)>,
    failures: u32,
    /// Counters.
    pub stats: StreamStats,
}

impl ModbusSession {
    /// True once the flow has proved not to be Modbus.
    pub fn given_up(&self) -> bool {
        self.failures >= MAX_FAILURES
    }

    /// Bytes from the client (`to_server`) or the server. Complete transactions go to `out`;
    /// every PDU parsed is counted through `count("modbus", function_code)`.
    pub fn data(
        &mut self,
        ts: i64,
        to_server: bool,
        payload: &[u8],
        gap: bool,
        out: &mut Vec<Transaction>,
        count: &mut impl FnMut(&'static str, u32),
    ) {
        if self.given_up() {
            return;
        }
        let ModbusSession {
            streams,
            pending,
            failures,
            stats,
        } = self;
        let mut bad = 0;
        let [to_server_stream, to_client_stream] = streams;
        let stream = if to_server {
            to_server_stream
        } else {
            to_client_stream
        };
        let refused = stream.feed(payload, gap, modbus_framer, stats, |adu| {
            if to_server {
                match modbus::parse(adu, true, None) {
                    Ok(p) => {
                        count("modbus", u32::from(p.function));
                        queue(pending, ts, p, out, |t, old| {
                            transaction(Some((t, old)), None)
                        });
                    }
                    Err(_) => bad += 1,
                }
                return;
            }
            let (tid, unit) = match (adu.first(), adu.get(1), adu.get(6)) {
                (Some(&a), Some(&b), Some(&u)) => (u16::from_be_bytes([a, b]), u),
                _ => return,
            };
            let req = take(pending, |p| p.tid == tid && p.unit == unit);
            let qty = req.as_ref().and_then(|(_, p)| p.quantity);
            match modbus::parse(adu, false, qty) {
                Ok(p) => {
                    count("modbus", u32::from(p.function));
                    out.push(transaction(
                        req.as_ref().map(|(t, p)| (*t, p)),
                        Some((ts, &p)),
                    ));
                }
                Err(_) => {
                    bad += 1;
                    if let Some((t, p)) = req {
                        out.push(transaction(Some((t, &p)), None));
                    }
                }
            }
        });
        *failures += refused + bad;
    }

    /// The flow ended: requests still waiting are written unmatched.
    pub fn end(&mut self, out: &mut Vec<Transaction>) {
        flush(&mut self.pending, out, |t, p| {
            transaction(Some((t, p)), None)
        });
    }
}

fn transaction(req: Option<(i64, &modbus::Pdu)>, resp: Option<(i64, &modbus::Pdu)>) -> Transaction {
    let Some(first) = req.or(resp).map(|(_, p)| p) else {
        return Transaction::new("modbus", super::Action::Other, Cow::Borrowed("UNKNOWN"), 0);
    };
    let code = first.function;
    let function = modbus::function_name(code)
        .map_or_else(|| Cow::Owned(format!("FUNCTION_{code}")), Cow::Borrowed);
    let action = req.map_or(super::Action::Other, |(_, p)| modbus::action(p));
    let action = if req.is_none() {
        // A response alone: judge by its function.
        modbus::action(first)
    } else {
        action
    };
    let mut t = Transaction::new("modbus", action, function, u32::from(code));
    t.unit = Some(u32::from(first.unit));
    t.transaction_id = Some(u32::from(first.tid));
    if let Some((ts, p)) = req {
        t.request_ns = Some(ts);
        t.address = p.address.map(u32::from);
        t.quantity = p.quantity.map(u32::from);
        t.request_values = p.values.clone();
        t.detail.extend(p.detail.iter().cloned());
    }
    if let Some((ts, p)) = resp {
        t.response_ns = Some(ts);
        if t.address.is_none() {
            t.address = p.address.map(u32::from);
        }
        if t.quantity.is_none() {
            t.quantity = p.quantity.map(u32::from);
        }
        t.response_values = p.values.clone();
        if let Some(code) = p.exception {
            t.exception_code = Some(u32::from(code));
            t.exception = Some(
                modbus::exception_name(code)
                    .map_or_else(|| Cow::Owned(format!("EXCEPTION_{code}")), Cow::Borrowed),
            );
        }
        for (k, v) in &p.detail {
            // Echoed request detail is not repeated.
            if !t.detail.iter().any(|(k2, v2)| k2 == k && v2 == v) {
                t.detail.push((*k, v.clone()));
            }
        }
    }
    t
}

fn dnp3_framer(b: &[u8]) -> Framed {
    dnp3::frame_len(b).map_err(|_| 0)
}

/// A DNP3 session (TCP or UDP): link frames checked, transport segments reassembled per
/// direction, requests matched to responses by outstation address and application sequence.
#[derive(Debug, Default)]
pub struct Dnp3Session {
    streams: [Stream; 2],
    reassembly: [dnp3::Reassembly; 2],
    pending: VecDeque<(i64, (u16, u16, dnp3::App))>,
    failures: u32,
    /// Link frames whose CRC did not match (dropped).
    pub crc_errors: u64,
    /// Counters.
    pub stats: StreamStats,
}

impl Dnp3Session {
    /// True once the flow has proved not to be DNP3.
    pub fn given_up(&self) -> bool {
        self.failures >= MAX_FAILURES
    }

    /// Bytes from one side (`from_orig`); `datagram` for UDP (each payload stands alone).
    #[allow(clippy::too_many_arguments)]
    pub fn data(
        &mut self,
        ts: i64,
        from_orig: bool,
        payload: &[u8],
        gap: bool,
        out: &mut Vec<Transaction>,
        count: &mut impl FnMut(&'static str, u32),
    ) {
        if self.given_up() {
            return;
        }
        let Dnp3Session {
            streams,
            reassembly,
            pending,
            failures,
            crc_errors,
            stats,
        } = self;
        let [s0, s1] = streams;
        let [r0, r1] = reassembly;
        let (stream, reasm) = if from_orig { (s0, r0) } else { (s1, r1) };
        let mut frames: Vec<dnp3::Link> = Vec::new();
        let refused = stream.feed(payload, gap, dnp3_framer, stats, |f| match dnp3::link(f) {
            Ok(l) => frames.push(l),
            Err(_) => *crc_errors += 1,
        });
        *failures += refused;
        for l in frames {
            if l.data.is_empty() {
                continue;
            }
            let Some(frag) = reasm.push(&l.data) else {
                continue;
            };
            let Ok(app) = dnp3::parse_app(&frag) else {
                stats.bad_frames += frag.len() as u64;
                continue;
            };
            count("dnp3", u32::from(app.function));
            match app.function {
                0..=128 if app.function != 0 => {
                    // A request from the master (link src) to the outstation (link dst).
                    queue(pending, ts, (l.dst, l.src, app), out, |t, (o, m, old)| {
                        dnp3_transaction(Some((t, old)), None, *o, *m)
                    });
                }
                129 => {
                    let req = take(pending, |(o, _, r)| *o == l.src && r.seq() == app.seq());
                    let (outstation, master) = (l.src, l.dst);
                    out.push(dnp3_transaction(
                        req.as_ref().map(|(t, (_, _, r))| (*t, r)),
                        Some((ts, &app)),
                        outstation,
                        master,
                    ));
                }
                0 => out.push(dnp3_transaction(Some((ts, &app)), None, l.dst, l.src)),
                _ => out.push(dnp3_transaction(None, Some((ts, &app)), l.src, l.dst)),
            }
        }
    }

    /// The flow ended: requests still waiting are written unmatched.
    pub fn end(&mut self, out: &mut Vec<Transaction>) {
        flush(&mut self.pending, out, |t, (o, m, r)| {
            dnp3_transaction(Some((t, r)), None, *o, *m)
        });
    }
}

fn dnp3_transaction(
    req: Option<(i64, &dnp3::App)>,
    resp: Option<(i64, &dnp3::App)>,
    outstation: u16,
    master: u16,
) -> Transaction {
    let Some(first) = req.or(resp).map(|(_, a)| a) else {
        return Transaction::new("dnp3", Action::Other, Cow::Borrowed("UNKNOWN"), 0);
    };
    let code = first.function;
    let function = dnp3::function_name(code)
        .map_or_else(|| Cow::Owned(format!("FUNCTION_{code}")), Cow::Borrowed);
    let mut t = Transaction::new("dnp3", dnp3::action(first), function, u32::from(code));
    t.unit = Some(u32::from(outstation));
    t.transaction_id = Some(u32::from(first.seq()));
    t.detail.push(("master_address", master.to_string()));
    let describe = |t: &mut Transaction, app: &dnp3::App, key: &'static str| {
        if !app.objects.is_empty() {
            t.detail.push((key, dnp3::summary(&app.objects)));
        }
    };
    if let Some((ts, app)) = req {
        t.request_ns = Some(ts);
        describe(&mut t, app, "objects");
        if let Some(o) = app.objects.first() {
            t.address = o
                .crobs
                .first()
                .map(|c| c.index)
                .or(o.first_index)
                .or(o.range.map(|r| r.0));
            t.quantity = (o.count > 0).then_some(o.count);
        }
        let crob = app.objects.iter().flat_map(|o| o.crobs.iter()).next();
        if let Some(c) = crob {
            t.detail
                .push(("trip_control_code", c.trip_close().to_string()));
            t.detail.push(("operation_type", c.operation().to_string()));
            t.detail
                .push(("clear_bit", (c.code & 0x20 != 0).to_string()));
            t.detail.push(("execute_count", c.count.to_string()));
            t.detail.push(("on_time", c.on_time.to_string()));
            t.detail.push(("off_time", c.off_time.to_string()));
        }
        for o in &app.objects {
            for (i, v) in &o.analog_outputs {
                t.detail.push(("analog_output", format!("{i}={v}")));
            }
        }
    }
    if let Some((ts, app)) = resp {
        t.response_ns = Some(ts);
        if req.is_none() {
            describe(&mut t, app, "objects");
        } else if !app.objects.is_empty() {
            describe(&mut t, app, "response_objects");
        }
        if let Some(iin) = app.iin {
            let names = dnp3::iin_names(iin);
            if !names.is_empty() {
                t.detail.push(("iin", names.join(",")));
            }
            // IIN2 bits 0-2: the outstation refused the request.
            let refused = iin >> 8 & 0x07;
            if refused != 0 && req.is_some() {
                t.exception_code = Some(u32::from(refused));
                t.exception = Some(Cow::Borrowed(match refused.trailing_zeros() {
                    0 => "NO_FUNC_CODE_SUPPORT",
                    1 => "OBJECT_UNKNOWN",
                    _ => "PARAMETER_ERROR",
                }));
            }
        }
        if let Some(c) = app.objects.iter().flat_map(|o| o.crobs.iter()).next() {
            t.detail
                .push(("status_code", dnp3::status_name(c.status).to_string()));
            if c.status != 0 && t.exception.is_none() {
                t.exception_code = Some(u32::from(c.status));
                t.exception = Some(Cow::Borrowed(dnp3::status_name(c.status)));
            }
        }
    }
    t
}

fn s7_framer(b: &[u8]) -> Framed {
    s7comm::frame_len(b).map_err(|_| 0)
}

/// An S7comm session over ISO-on-TCP (port 102): jobs matched to their ack-data by PDU
/// reference, user-data requests to responses by function.
#[derive(Debug, Default)]
pub struct S7Session {
    streams: [Stream; 2],
    pending: VecDeque<(i64, s7comm::Pdu)>,
    failures: u32,
    /// The PLC's TSAP from the COTP connection request (rack and slot).
    pub called_tsap: Option<u16>,
    /// S7comm-plus PDUs seen (not decoded).
    pub s7plus: u64,
    /// Counters.
    pub stats: StreamStats,
}

impl S7Session {
    /// True once the flow has proved not to be ISO-on-TCP.
    pub fn given_up(&self) -> bool {
        self.failures >= MAX_FAILURES
    }

    /// Bytes to the PLC (`to_server`) or from it. PDUs are counted through `count(key, code)`:
    /// jobs as `s7comm`, ack-data as `s7comm.ack_data`, user-data as `s7comm.userdata` with
    /// `group << 8 | sub-function`.
    pub fn data(
        &mut self,
        ts: i64,
        to_server: bool,
        payload: &[u8],
        gap: bool,
        out: &mut Vec<Transaction>,
        count: &mut impl FnMut(&'static str, u32),
    ) {
        if self.given_up() {
            return;
        }
        let S7Session {
            streams,
            pending,
            failures,
            called_tsap,
            s7plus,
            stats,
        } = self;
        let [s0, s1] = streams;
        let stream = if to_server { s0 } else { s1 };
        let mut bad = 0;
        let refused = stream.feed(payload, gap, s7_framer, stats, |pkt| {
            match s7comm::parse(pkt) {
                Ok(s7comm::Tpdu::Connect {
                    request: true,
                    called,
                    ..
                }) => *called_tsap = called,
                Ok(s7comm::Tpdu::S7Plus) => *s7plus += 1,
                Ok(s7comm::Tpdu::S7(p)) => {
                    match (p.rosctr, p.userdata) {
                        (1, _) => count("s7comm", u32::from(p.function.unwrap_or(0))),
                        (3, _) => count("s7comm.ack_data", u32::from(p.function.unwrap_or(0))),
                        (7, Some((_, tg, sub))) => count(
                            "s7comm.userdata",
                            (u32::from(tg & 0x0f) << 8) | u32::from(sub),
                        ),
                        _ => {}
                    }
                    let is_request =
                        p.rosctr == 1 || p.userdata.is_some_and(|(_, tg, _)| tg >> 4 == 4);
                    // The parts of a segmented user-data answer: the request for the next part and
                    // every answer but the last belong to the transaction already open.
                    if p.userdata.is_some()
                        && ((is_request && p.userdata_seq != 0) || (!is_request && p.more_follows))
                    {
                        return;
                    }
                    if is_request {
                        queue(pending, ts, p, out, |t, old| {
                            s7_transaction(Some((t, old)), None, *called_tsap)
                        });
                    } else {
                        let req = match p.userdata {
                            Some((_, tg, sub)) => take(pending, |q| {
                                q.userdata.is_some_and(|(_, qtg, qsub)| {
                                    qtg & 0x0f == tg & 0x0f && qsub == sub
                                })
                            }),
                            None => take(pending, |q| q.rosctr == 1 && q.pdu_ref == p.pdu_ref),
                        };
                        out.push(s7_transaction(
                            req.as_ref().map(|(t, q)| (*t, q)),
                            Some((ts, &p)),
                            *called_tsap,
                        ));
                    }
                }
                Ok(_) => {}
                Err(_) => bad += 1,
            }
        });
        *failures += refused + bad;
    }

    /// The flow ended: requests still waiting are written unmatched.
    pub fn end(&mut self, out: &mut Vec<Transaction>) {
        flush(&mut self.pending, out, |t, p| {
            s7_transaction(Some((t, p)), None, self.called_tsap)
        });
    }
}

fn s7_transaction(
    req: Option<(i64, &s7comm::Pdu)>,
    resp: Option<(i64, &s7comm::Pdu)>,
    tsap: Option<u16>,
) -> Transaction {
    let Some(first) = req.or(resp).map(|(_, p)| p) else {
        return Transaction::new("s7comm", Action::Other, Cow::Borrowed("Unknown"), 0);
    };
    let (function, code) = match first.userdata {
        Some((_, tg, sub)) => (
            s7comm::userdata_name(tg, sub).1,
            (u32::from(tg & 0x0f) << 8) | u32::from(sub),
        ),
        None => {
            let f = first.function.unwrap_or(0);
            let pi = first
                .pi_service
                .as_deref()
                .and_then(s7comm::pi_service_name);
            (pi.unwrap_or(s7comm::function_name(f)), u32::from(f))
        }
    };
    let mut t = Transaction::new(
        "s7comm",
        s7comm::action(first),
        Cow::Borrowed(function),
        code,
    );
    t.transaction_id = Some(u32::from(first.pdu_ref));
    if let Some(tsap) = tsap {
        // The called TSAP's low byte: rack in the upper 3 bits, slot in the lower 5.
        t.unit = Some(u32::from(tsap & 0xff));
        t.detail.push(("rack", ((tsap & 0xff) >> 5).to_string()));
        t.detail.push(("slot", (tsap & 0x1f).to_string()));
    }
    if let Some((_, tg, _)) = first.userdata {
        t.detail
            .push(("function_group", s7comm::userdata_name(tg, 0).0.to_string()));
    }
    t.detail.push((
        "rosctr",
        if first.userdata.is_some() {
            "User-Data"
        } else {
            "Job-Request"
        }
        .to_string(),
    ));
    if let Some((ts, p)) = req {
        t.request_ns = Some(ts);
        if let Some((n, area, db, addr)) = p.items {
            t.quantity = Some(u32::from(n));
            if area != 0 {
                t.address = Some(addr);
                t.detail.push(("area", s7comm::area_name(area).to_string()));
                if area == 0x84 || area == 0x85 {
                    t.detail.push(("db_number", db.to_string()));
                }
            }
        }
        if let Some(pi) = &p.pi_service {
            t.detail.push(("pi_service", pi.clone()));
        }
        if let Some(b) = &p.block {
            t.detail.push(("filename", b.clone()));
            if let (Some(ty), Some(num)) = (b.get(1..3), b.get(3..8)) {
                t.detail.push(("block_type", block_type(ty).to_string()));
                if let Ok(n) = num.parse::<u32>() {
                    t.detail.push(("block_number", n.to_string()));
                }
            }
        }
        if let Some((id, index)) = p.szl {
            t.detail.push(("szl_id", format!("0x{id:04x}")));
            t.detail.push(("szl_index", format!("0x{index:04x}")));
        }
    }
    if let Some((ts, p)) = resp {
        t.response_ns = Some(ts);
        if let Some(e) = p.error.filter(|e| *e != 0) {
            t.exception_code = Some(u32::from(e));
            t.exception = Some(Cow::Owned(error_name(e, p.userdata.is_some())));
        }
        for (idx, text) in &p.identity {
            if let Some(name) = s7comm::identity_name(*idx) {
                t.detail.push((name, text.clone()));
            }
        }
    }
    t
}

fn block_type(code: &str) -> &'static str {
    match code {
        "08" => "OB",
        "0A" => "DB",
        "0B" => "SDB",
        "0C" => "FC",
        "0D" => "SFC",
        "0E" => "FB",
        "0F" => "SFB",
        _ => "unknown",
    }
}

fn error_name(code: u16, userdata: bool) -> String {
    if userdata {
        return format!("0x{code:04x}");
    }
    match code >> 8 {
        0x81 => "Application relationship error",
        0x82 => "Object definition error",
        0x83 => "No resources available error",
        0x84 => "Error on service processing",
        0x85 => "Error on supplies",
        0x87 => "Access error",
        // Not an error class: a parameter error code, written as hex as for user-data.
        _ => return format!("0x{code:04x}"),
    }
    .to_string()
}

fn enip_framer(b: &[u8]) -> Framed {
    enip::frame_len(b).map_err(|_| 0)
}

/// An EtherNet/IP session (TCP or UDP 44818): unconnected requests matched to replies by
/// sender context, connected ones by sequence count.
#[derive(Debug, Default)]
pub struct EnipSession {
    streams: [Stream; 2],
    pending: VecDeque<(i64, enip::Message)>,
    failures: u32,
    /// Counters.
    pub stats: StreamStats,
}

fn count_cip(c: &enip::Cip, count: &mut impl FnMut(&'static str, u32)) {
    count("cip", u32::from(c.service));
    for e in &c.embedded {
        count_cip(e, count);
    }
}

impl EnipSession {
    /// True once the flow has proved not to be EtherNet/IP.
    pub fn given_up(&self) -> bool {
        self.failures >= MAX_FAILURES
    }

    /// Bytes to the device (`to_server`) or from it; `datagram` for UDP. Encapsulation commands
    /// are counted as `enip`, every CIP service (embedded ones too) as `cip`.
    #[allow(clippy::too_many_arguments)]
    pub fn data(
        &mut self,
        ts: i64,
        to_server: bool,
        payload: &[u8],
        gap: bool,
        datagram: bool,
        out: &mut Vec<Transaction>,
        count: &mut impl FnMut(&'static str, u32),
    ) {
        if self.given_up() {
            return;
        }
        let EnipSession {
            streams,
            pending,
            failures,
            stats,
        } = self;
        let mut messages = Vec::new();
        let mut bad = 0u32;
        if datagram {
            match enip::parse(payload) {
                Ok(m) => messages.push(m),
                Err(_) => bad += 1,
            }
        } else {
            let [s0, s1] = streams;
            let stream = if to_server { s0 } else { s1 };
            let refused = stream.feed(payload, gap, enip_framer, stats, |m| match enip::parse(m) {
                Ok(m) => messages.push(m),
                Err(_) => bad += 1,
            });
            bad += refused;
        }
        *failures += bad;
        for m in messages {
            count("enip", u32::from(m.command));
            if let Some(c) = &m.cip {
                count_cip(c, count);
            }
            let is_reply = match &m.cip {
                Some(c) => c.response,
                None => !to_server,
            };
            if !is_reply {
                queue(pending, ts, m, out, |t, old| {
                    enip_transaction(Some((t, old)), None)
                });
                continue;
            }
            let req = take(pending, |q| match (q.sequence, m.sequence) {
                (Some(a), Some(b)) => a == b && q.command == m.command,
                _ => q.context == m.context && q.command == m.command,
            });
            out.push(enip_transaction(
                req.as_ref().map(|(t, q)| (*t, q)),
                Some((ts, &m)),
            ));
        }
    }

    /// The flow ended: requests still waiting are written unmatched.
    pub fn end(&mut self, out: &mut Vec<Transaction>) {
        flush(&mut self.pending, out, |t, m| {
            enip_transaction(Some((t, m)), None)
        });
    }
}

fn enip_transaction(
    req: Option<(i64, &enip::Message)>,
    resp: Option<(i64, &enip::Message)>,
) -> Transaction {
    let Some(first) = req.or(resp).map(|(_, m)| m) else {
        return Transaction::new("enip", Action::Other, Cow::Borrowed("Unknown"), 0);
    };
    let request_cip = req.and_then(|(_, m)| m.cip.as_ref());
    let mut t = match request_cip.or(first.cip.as_ref()) {
        Some(c) => {
            let action = if req.is_some() {
                enip::action(c)
            } else {
                Action::Other
            };
            Transaction::new(
                "cip",
                action,
                Cow::Borrowed(enip::service_name(c.service, c.class)),
                u32::from(c.service),
            )
        }
        None => {
            let action =
                if first.command == 0x0063 || first.command == 0x0004 || first.command == 0x0064 {
                    Action::Recon
                } else {
                    Action::Other
                };
            Transaction::new(
                "enip",
                action,
                Cow::Borrowed(enip::command_name(first.command)),
                u32::from(first.command),
            )
        }
    };
    t.detail
        .push(("command", enip::command_name(first.command).to_string()));
    if first.session != 0 {
        t.detail
            .push(("session_handle", format!("0x{:08x}", first.session)));
    }
    if let Some(seq) = first.sequence {
        t.transaction_id = Some(u32::from(seq));
    }
    if let Some(c) = request_cip {
        if let Some(v) = c.class {
            t.detail.push(("class", format!("0x{v:02x}")));
        }
        if let Some(v) = c.instance {
            t.address = Some(v);
            t.detail.push(("instance", v.to_string()));
        }
        if let Some(v) = c.attribute {
            t.detail.push(("attribute", v.to_string()));
        }
        if let Some(tag) = &c.tag {
            t.detail.push(("tag", tag.clone()));
        }
        if !c.embedded.is_empty() {
            t.quantity = Some(c.embedded.len() as u32);
            let names: Vec<&str> = c
                .embedded
                .iter()
                .map(|e| enip::service_name(e.service, e.class))
                .collect();
            t.detail.push(("services", names.join(",")));
            let tags: Vec<&str> = c.embedded.iter().filter_map(|e| e.tag.as_deref()).collect();
            if !tags.is_empty() {
                t.detail.push(("tags", tags.join(",")));
            }
        }
    }
    if let Some((ts, _)) = req {
        t.request_ns = Some(ts);
    }
    if let Some((ts, m)) = resp {
        t.response_ns = Some(ts);
        if m.status != 0 {
            t.exception_code = Some(m.status);
            t.exception = Some(Cow::Borrowed("Encapsulation error"));
        }
        if let Some(c) = &m.cip {
            if let Some(s) = c.status.filter(|s| *s != 0) {
                t.exception_code = Some(u32::from(s));
                t.exception = Some(Cow::Borrowed(enip::status_name(s)));
            }
        }
        if let Some(id) = m.identities.first() {
            t.detail.push(("vendor_id", id.vendor.to_string()));
            t.detail.push(("device_type", id.device_type.to_string()));
            t.detail.push(("product_code", id.product_code.to_string()));
            t.detail
                .push(("revision", format!("{}.{}", id.revision.0, id.revision.1)));
            t.detail
                .push(("serial_number", format!("0x{:08x}", id.serial)));
            t.detail.push(("product_name", id.product_name.clone()));
        }
    }
    t
}

fn iec104_framer(b: &[u8]) -> Framed {
    // Bytes before a start byte are skipped to the next 0x68, as tshark's dissector does.
    iec104::frame_len(b).map_err(|_| memchr::memchr(0x68, b).unwrap_or(0))
}

/// An IEC 60870-5-104 session (port 2404): commands matched to their activation confirmation by
/// type, common address and information object address; monitored data reported as reads.
#[derive(Debug, Default)]
pub struct Iec104Session {
    streams: [Stream; 2],
    pending: VecDeque<(i64, iec104::Asdu)>,
    failures: u32,
    valid: bool,
    /// Counters.
    pub stats: StreamStats,
}

impl Iec104Session {
    /// True once the flow has proved not to be IEC 104 (garbage and no valid APDU).
    pub fn given_up(&self) -> bool {
        self.failures >= MAX_FAILURES && !self.valid
    }

    /// Bytes to the controlled station (`to_server`) or from it. APDUs are counted as `iec104`
    /// by format (0 I, 1 S, 3 U, 255 too short), ASDUs as `iec104.asdu` by type id.
    pub fn data(
        &mut self,
        ts: i64,
        to_server: bool,
        payload: &[u8],
        gap: bool,
        out: &mut Vec<Transaction>,
        count: &mut impl FnMut(&'static str, u32),
    ) {
        if self.given_up() {
            return;
        }
        let Iec104Session {
            streams,
            pending,
            failures,
            valid,
            stats,
        } = self;
        let [s0, s1] = streams;
        let stream = if to_server { s0 } else { s1 };
        let refused = stream.feed(
            payload,
            gap,
            iec104_framer,
            stats,
            |b| match iec104::parse(b) {
                iec104::Apdu::Malformed => count("iec104", 255),
                iec104::Apdu::S { .. } => {
                    *valid = true;
                    count("iec104", 1);
                }
                iec104::Apdu::U { .. } => {
                    *valid = true;
                    count("iec104", 3);
                }
                iec104::Apdu::I { asdu, type_id, .. } => {
                    *valid = true;
                    count("iec104", 0);
                    if let Some(t) = type_id {
                        count("iec104.asdu", u32::from(t));
                    }
                    let Some(a) = asdu else { return };
                    let command = matches!(a.type_id, 45..=69 | 100..=127);
                    match (command, a.cause) {
                        (true, 6 | 8) if to_server => {
                            queue(pending, ts, a, out, |t, old| {
                                iec104_transaction(Some((t, old)), None)
                            });
                        }
                        (true, 7 | 9) => {
                            let req = take(pending, |q| {
                                q.type_id == a.type_id
                                    && q.common_address == a.common_address
                                    && q.ioa == a.ioa
                            });
                            out.push(iec104_transaction(
                                req.as_ref().map(|(t, q)| (*t, q)),
                                Some((ts, &a)),
                            ));
                        }
                        // Activation termination follows the confirmation already written.
                        (true, 10) => {}
                        _ => out.push(iec104_transaction(None, Some((ts, &a)))),
                    }
                }
            },
        );
        *failures += refused;
    }

    /// The flow ended: commands still waiting are written unmatched.
    pub fn end(&mut self, out: &mut Vec<Transaction>) {
        flush(&mut self.pending, out, |t, a| {
            iec104_transaction(Some((t, a)), None)
        });
    }
}

fn iec104_transaction(
    req: Option<(i64, &iec104::Asdu)>,
    resp: Option<(i64, &iec104::Asdu)>,
) -> Transaction {
    let Some(a) = req.or(resp).map(|(_, a)| a) else {
        return Transaction::new("iec104", Action::Other, Cow::Borrowed("unknown"), 0);
    };
    let name = iec104::type_name(a.type_id)
        .map_or_else(|| Cow::Owned(format!("TYPE_{}", a.type_id)), Cow::Borrowed);
    let mut t = Transaction::new(
        "iec104",
        iec104::action(a.type_id),
        name,
        u32::from(a.type_id),
    );
    t.unit = Some(u32::from(a.common_address));
    t.address = a.ioa;
    t.quantity = Some(u32::from(a.count));
    t.detail
        .push(("cause", iec104::cause_name(a.cause).to_string()));
    t.detail.push(("cause_code", a.cause.to_string()));
    if a.originator != 0 {
        t.detail
            .push(("originator_address", a.originator.to_string()));
    }
    if a.test {
        t.detail.push(("test", "true".to_string()));
    }
    if let Some((ts, _)) = req {
        t.request_ns = Some(ts);
    }
    if let Some((ts, r)) = resp {
        t.response_ns = Some(ts);
        if r.negative || matches!(r.cause, 44..=47) {
            t.exception_code = Some(u32::from(r.cause));
            t.exception = Some(Cow::Borrowed(if r.negative {
                "negative_confirmation"
            } else {
                iec104::cause_name(r.cause)
            }));
        }
    }
    t
}

/// A BACnet/IP session (UDP 47808): confirmed requests matched to their answers by invoke id.
#[derive(Debug, Default)]
pub struct BacnetSession {
    pending: VecDeque<(i64, bacnet::Message)>,
    failures: u32,
    /// Counters.
    pub stats: StreamStats,
}

impl BacnetSession {
    /// True once the flow has proved not to be BACnet/IP.
    pub fn given_up(&self) -> bool {
        self.failures >= MAX_FAILURES
    }

    /// One datagram. APDUs are counted as `bacnet` by type, services as `bacnet.confirmed` and
    /// `bacnet.unconfirmed`.
    pub fn data(
        &mut self,
        ts: i64,
        datagram: &[u8],
        out: &mut Vec<Transaction>,
        count: &mut impl FnMut(&'static str, u32),
    ) {
        if self.given_up() {
            return;
        }
        let m = match bacnet::parse(datagram) {
            Ok(m) => m,
            Err(_) => {
                self.failures += 1;
                self.stats.bad_frames += datagram.len() as u64;
                return;
            }
        };
        let Some(ty) = m.apdu_type else { return };
        count("bacnet", u32::from(ty));
        match (ty, m.service) {
            (0, Some(s)) => count("bacnet.confirmed", u32::from(s)),
            (1, Some(s)) => count("bacnet.unconfirmed", u32::from(s)),
            _ => {}
        }
        match ty {
            0 => {
                queue(&mut self.pending, ts, m, out, |t, old| {
                    bacnet_transaction(Some((t, old)), None)
                });
            }
            1 => out.push(bacnet_transaction(Some((ts, &m)), None)),
            2 | 3 | 5 | 6 | 7 => {
                let req = take(&mut self.pending, |q| q.invoke_id == m.invoke_id);
                out.push(bacnet_transaction(
                    req.as_ref().map(|(t, q)| (*t, q)),
                    Some((ts, &m)),
                ));
            }
            _ => {}
        }
    }

    /// The flow ended: requests still waiting are written unmatched.
    pub fn end(&mut self, out: &mut Vec<Transaction>) {
        flush(&mut self.pending, out, |t, m| {
            bacnet_transaction(Some((t, m)), None)
        });
    }
}

fn bacnet_transaction(
    req: Option<(i64, &bacnet::Message)>,
    resp: Option<(i64, &bacnet::Message)>,
) -> Transaction {
    let Some(first) = req.or(resp).map(|(_, m)| m) else {
        return Transaction::new("bacnet", Action::Other, Cow::Borrowed("unknown"), 0);
    };
    let service = first.service.unwrap_or(255);
    let (name, code) = match first.apdu_type {
        Some(1) => (bacnet::unconfirmed_name(service), u32::from(service)),
        _ => (bacnet::confirmed_name(service), u32::from(service)),
    };
    let action = if req.is_some() {
        bacnet::action(first)
    } else {
        Action::Other
    };
    let mut t = Transaction::new("bacnet", action, Cow::Borrowed(name), code);
    t.transaction_id = first.invoke_id.map(u32::from);
    t.detail.push((
        "pdu_type",
        if first.apdu_type == Some(1) {
            "unconfirmed"
        } else {
            "confirmed"
        }
        .to_string(),
    ));
    if let Some((ty, inst)) = first.object {
        t.address = Some(inst);
        t.detail
            .push(("object_type", bacnet::object_name(ty).to_string()));
        t.detail.push(("object_instance", inst.to_string()));
    }
    if let Some(p) = first.property {
        t.detail.push(("property", p.to_string()));
    }
    if let Some(v) = first.vendor {
        t.detail.push(("vendor_id", v.to_string()));
    }
    if let Some((ts, _)) = req {
        t.request_ns = Some(ts);
    }
    if let Some((ts, m)) = resp {
        t.response_ns = Some(ts);
        match (m.apdu_type, m.error) {
            (Some(5), Some((class, code))) => {
                t.exception_code = Some(code);
                t.exception = Some(Cow::Owned(format!("error class {class} code {code}")));
            }
            (Some(6), Some((_, reason))) => {
                t.exception_code = Some(reason);
                t.exception = Some(Cow::Borrowed("reject"));
            }
            (Some(7), Some((_, reason))) => {
                t.exception_code = Some(reason);
                t.exception = Some(Cow::Borrowed("abort"));
            }
            _ => {}
        }
    }
    t
}

/// An OPC UA binary session (port 4840): service requests matched to responses by request id;
/// channels opened with a security policy other than None are counted but not read.
#[derive(Debug, Default)]
pub struct OpcuaSession {
    streams: [Stream; 2],
    pending: VecDeque<(i64, opcua::Message)>,
    encrypted: Vec<u32>,
    failures: u32,
    /// Counters.
    pub stats: StreamStats,
}

impl OpcuaSession {
    /// True once the flow has proved not to be OPC UA.
    pub fn given_up(&self) -> bool {
        self.failures >= MAX_FAILURES
    }

    /// Bytes to the server (`to_server`) or from it. Messages are counted as `opcua.msg` by type
    /// (index into [`opcua::TYPES`]), services as `opcua` by encoding id.
    pub fn data(
        &mut self,
        ts: i64,
        to_server: bool,
        payload: &[u8],
        gap: bool,
        out: &mut Vec<Transaction>,
        count: &mut impl FnMut(&'static str, u32),
    ) {
        if self.given_up() {
            return;
        }
        let OpcuaSession {
            streams,
            pending,
            encrypted,
            failures,
            stats,
        } = self;
        let [s0, s1] = streams;
        let stream = if to_server { s0 } else { s1 };
        let mut messages = Vec::new();
        let refused = stream.feed(payload, gap, opcua::frame_len, stats, |b| {
            let enc = b
                .get(8..12)
                .and_then(|c| <[u8; 4]>::try_from(c).ok())
                .is_some_and(|c| encrypted.contains(&u32::from_le_bytes(c)));
            if let Some(m) = opcua::parse(b, enc) {
                messages.push(m);
            }
        });
        *failures += refused;
        for m in messages {
            count("opcua.msg", u32::from(m.kind));
            if let Some(s) = m.service {
                count("opcua", s);
            }
            if m.kind == 3 && !to_server {
                if let (Some(c), Some(p)) = (m.channel, m.security_policy.as_deref()) {
                    if !p.ends_with("#None") && !encrypted.contains(&c) && encrypted.len() < 64 {
                        encrypted.push(c);
                    }
                }
            }
            let response = match (m.kind, m.service.and_then(opcua::service_name)) {
                (1, _) => true,
                (0, _) => false,
                (2, _) => true,
                (_, Some((_, r))) => r,
                _ => continue,
            };
            if !response {
                queue(pending, ts, m, out, |t, old| {
                    opcua_transaction(Some((t, old)), None)
                });
                continue;
            }
            let req = take(pending, |q| match m.kind {
                1 | 2 => q.kind == 0 || q.request_id.is_none(),
                _ => q.request_id == m.request_id && q.kind != 0,
            });
            out.push(opcua_transaction(
                req.as_ref().map(|(t, q)| (*t, q)),
                Some((ts, &m)),
            ));
        }
    }

    /// The flow ended: requests still waiting are written unmatched.
    pub fn end(&mut self, out: &mut Vec<Transaction>) {
        flush(&mut self.pending, out, |t, m| {
            opcua_transaction(Some((t, m)), None)
        });
    }
}

fn opcua_transaction(
    req: Option<(i64, &opcua::Message)>,
    resp: Option<(i64, &opcua::Message)>,
) -> Transaction {
    let Some(first) = req.or(resp).map(|(_, m)| m) else {
        return Transaction::new("opcua", Action::Other, Cow::Borrowed("unknown"), 0);
    };
    let (name, code, action) = match (first.kind, first.service) {
        (0 | 1, _) => ("Hello", 0, Action::Other),
        (2, _) => ("Error", 0, Action::Other),
        (_, Some(s)) => {
            let base = opcua::service_name(s).map_or("unknown", |(n, _)| n);
            let req_id = if opcua::service_name(s).is_some_and(|(_, r)| r) {
                s.saturating_sub(3)
            } else {
                s
            };
            (
                base,
                req_id,
                if req.is_some() {
                    opcua::action(req_id)
                } else {
                    Action::Other
                },
            )
        }
        _ => ("unknown", 0, Action::Other),
    };
    let mut t = Transaction::new("opcua", action, Cow::Borrowed(name), code);
    t.transaction_id = first.request_id;
    if let Some(c) = first.channel.filter(|c| *c != 0) {
        t.detail.push(("secure_channel_id", c.to_string()));
    }
    if let Some(u) = &first.endpoint_url {
        t.detail.push(("endpoint_url", u.clone()));
    }
    if let Some(p) = &first.security_policy {
        t.detail.push(("security_policy", p.clone()));
    }
    if let Some((ts, _)) = req {
        t.request_ns = Some(ts);
    }
    if let Some((ts, m)) = resp {
        t.response_ns = Some(ts);
        if let Some(e) = m.error {
            t.exception_code = Some(e);
            t.exception = Some(Cow::Owned(format!("0x{e:08x}")));
        } else if m.service == Some(397) {
            t.exception = Some(Cow::Borrowed("ServiceFault"));
        }
    }
    t
}

/// An MQTT session (ports 1883, 8883 unencrypted only): CONNECT matched to CONNACK, SUBSCRIBE
/// and UNSUBSCRIBE to their acknowledgements by packet id; every PUBLISH written on its own.
#[derive(Debug, Default)]
pub struct MqttSession {
    streams: [Stream; 2],
    pending: VecDeque<(i64, mqtt::Packet)>,
    v5: bool,
    failures: u32,
    /// Counters.
    pub stats: StreamStats,
}

impl MqttSession {
    /// True once the flow has proved not to be MQTT.
    pub fn given_up(&self) -> bool {
        self.failures >= MAX_FAILURES
    }

    /// Bytes to the broker (`to_server`) or from it. Packets are counted as `mqtt` by type.
    pub fn data(
        &mut self,
        ts: i64,
        to_server: bool,
        payload: &[u8],
        gap: bool,
        out: &mut Vec<Transaction>,
        count: &mut impl FnMut(&'static str, u32),
    ) {
        if self.given_up() {
            return;
        }
        let MqttSession {
            streams,
            pending,
            v5,
            failures,
            stats,
        } = self;
        let [s0, s1] = streams;
        let stream = if to_server { s0 } else { s1 };
        let mut packets = Vec::new();
        let mut bad = 0;
        let is_v5 = *v5;
        let refused = stream.feed(payload, gap, mqtt::frame_len, stats, |b| match mqtt::parse(
            b, is_v5,
        ) {
            Some(p) => packets.push(p),
            None => bad += 1,
        });
        *failures += refused + bad;
        for p in packets {
            count("mqtt", u32::from(p.kind));
            match p.kind {
                1 => {
                    *v5 = p.protocol.as_ref().is_some_and(|(_, l)| *l == 5);
                    queue(pending, ts, p, out, |t, old| {
                        mqtt_transaction(Some((t, old)), None, true)
                    });
                }
                8 | 10 => {
                    queue(pending, ts, p, out, |t, old| {
                        mqtt_transaction(Some((t, old)), None, true)
                    });
                }
                2 | 9 | 11 => {
                    let want = match p.kind {
                        2 => 1,
                        9 => 8,
                        _ => 10,
                    };
                    let req = take(pending, |q| {
                        q.kind == want && (want == 1 || q.packet_id == p.packet_id)
                    });
                    out.push(mqtt_transaction(
                        req.as_ref().map(|(t, q)| (*t, q)),
                        Some((ts, &p)),
                        true,
                    ));
                }
                3 => out.push(mqtt_transaction(Some((ts, &p)), None, to_server)),
                14 => out.push(mqtt_transaction(Some((ts, &p)), None, to_server)),
                _ => {}
            }
        }
    }

    /// The flow ended: requests still waiting are written unmatched.
    pub fn end(&mut self, out: &mut Vec<Transaction>) {
        flush(&mut self.pending, out, |t, p| {
            mqtt_transaction(Some((t, p)), None, true)
        });
    }
}

fn mqtt_transaction(
    req: Option<(i64, &mqtt::Packet)>,
    resp: Option<(i64, &mqtt::Packet)>,
    from_client: bool,
) -> Transaction {
    let Some(first) = req.or(resp).map(|(_, p)| p) else {
        return Transaction::new("mqtt", Action::Other, Cow::Borrowed("unknown"), 0);
    };
    let action = if req.is_some() {
        mqtt::action(first)
    } else {
        Action::Other
    };
    let mut t = Transaction::new(
        "mqtt",
        action,
        Cow::Borrowed(mqtt::type_name(first.kind)),
        u32::from(first.kind),
    );
    t.transaction_id = first.packet_id.map(u32::from);
    if first.kind == 3 {
        t.detail.push(("from_client", from_client.to_string()));
        t.detail.push(("qos", first.qos.to_string()));
        t.detail.push(("retain", first.retain.to_string()));
        if let Some(n) = first.payload_len {
            t.detail.push(("payload_len", n.to_string()));
        }
    }
    if let Some(topic) = &first.topic {
        t.detail.push(("topic", topic.clone()));
    }
    if let Some((name, level)) = &first.protocol {
        t.detail.push(("proto_name", name.clone()));
        let version = match level {
            3 => "3.1",
            4 => "3.1.1",
            5 => "5.0",
            _ => "unknown",
        };
        t.detail.push(("proto_version", version.to_string()));
    }
    if let Some(c) = &first.client_id {
        t.detail.push(("client_id", c.clone()));
    }
    if let Some(u) = &first.username {
        t.detail.push(("username", u.clone()));
    }
    if let Some(w) = &first.will_topic {
        t.detail.push(("will_topic", w.clone()));
    }
    if let Some((ts, _)) = req {
        t.request_ns = Some(ts);
    }
    if let Some((ts, p)) = resp {
        t.response_ns = Some(ts);
        if let Some(rc) = p.return_code {
            t.detail
                .push(("connect_status", connack_name(rc).to_string()));
            if rc != 0 {
                t.exception_code = Some(u32::from(rc));
                t.exception = Some(Cow::Borrowed(connack_name(rc)));
            }
        }
    }
    t
}

fn connack_name(rc: u8) -> &'static str {
    match rc {
        0 => "Connection Accepted",
        1 => "Refused: unacceptable protocol version",
        2 => "Refused: identifier rejected",
        3 => "Refused: server unavailable",
        4 => "Refused: bad user name or password",
        5 => "Refused: not authorized",
        0x86 => "Bad user name or password",
        0x87 => "Not authorized",
        _ => "Refused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_cuts_pdus_across_segments_and_resyncs_after_a_gap() {
        // Two Modbus ADUs in one segment, a third split over two segments.
        let a = [0u8, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1];
        let mut seg1 = a.to_vec();
        seg1.extend_from_slice(&a);
        seg1.extend_from_slice(&a[..5]);
        let mut s = Stream::default();
        let mut st = StreamStats::default();
        let mut got = Vec::new();
        s.feed(&seg1, false, modbus_framer, &mut st, |p| got.push(p.len()));
        assert_eq!(got, [12, 12]);
        s.feed(&a[5..], false, modbus_framer, &mut st, |p| {
            got.push(p.len())
        });
        assert_eq!(got, [12, 12, 12]);
        // Half an ADU, then a gap: the half is dropped, framing starts again.
        s.feed(&a[..7], false, modbus_framer, &mut st, |p| {
            got.push(p.len())
        });
        s.feed(&a, true, modbus_framer, &mut st, |p| got.push(p.len()));
        assert_eq!(got, [12, 12, 12, 12]);
        assert_eq!(st.resyncs, 1);
        // Garbage is refused and counted.
        let refused = s.feed(b"GET / HTTP/1.1\r\n", false, modbus_framer, &mut st, |_| {});
        assert_eq!(refused, 1);
        assert!(st.bad_frames >= 16);
    }
}
