//! Per-flow protocol sessions: bounded stream buffers that cut a TCP byte stream into PDUs, and
//! request/response matching.

use std::borrow::Cow;
use std::collections::VecDeque;

use super::{modbus, Transaction};

/// The most bytes a stream buffer holds while waiting for the rest of a PDU. A PDU longer than
/// this is skipped (counted as a resync).
pub const MAX_BUFFER: usize = 64 * 1024;
/// Requests waiting for a response, per flow; beyond it the oldest is written unmatched.
pub const MAX_PENDING: usize = 256;
/// Frames that fail to parse before a flow is no longer treated as the protocol.
pub const MAX_FAILURES: u32 = 4;

/// What a framer made of the bytes at the start of a stream.
pub type Framed = Result<Option<usize>, ()>;

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
                    Err(()) => {
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
                Err(()) => {
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

fn modbus_framer(b: &[u8]) -> Framed {
    modbus::frame_len(b).map_err(|_| ())
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
    /// every PDU parsed is counted through `count(function_code)`.
    pub fn data(
        &mut self,
        ts: i64,
        to_server: bool,
        payload: &[u8],
        gap: bool,
        out: &mut Vec<Transaction>,
        count: &mut impl FnMut(u32),
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
                        count(u32::from(p.function));
                        if pending.len() >= MAX_PENDING {
                            if let Some((t, old)) = pending.pop_front() {
                                out.push(transaction(Some((t, &old)), None));
                            }
                        }
                        pending.push_back((ts, p));
                    }
                    Err(_) => bad += 1,
                }
                return;
            }
            let (tid, unit) = match (adu.first(), adu.get(1), adu.get(6)) {
                (Some(&a), Some(&b), Some(&u)) => (u16::from_be_bytes([a, b]), u),
                _ => return,
            };
            let at = pending
                .iter()
                .position(|(_, p)| p.tid == tid && p.unit == unit);
            let req = at.and_then(|i| pending.remove(i));
            let qty = req.as_ref().and_then(|(_, p)| p.quantity);
            match modbus::parse(adu, false, qty) {
                Ok(p) => {
                    count(u32::from(p.function));
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
        for (t, p) in self.pending.drain(..) {
            out.push(transaction(Some((t, &p)), None));
        }
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
