//! Any bytes as the two directions of every industrial protocol session, cut into segments
//! at fuzzer-chosen points, with and without gaps: never a panic, and the pure parsers agree
//! with their framers (a framed PDU is never longer than the bytes given).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_parsers::ot::session::{
    BacnetSession, Dnp3Session, EnipSession, Iec104Session, ModbusSession, MqttSession,
    OpcuaSession, S7Session,
};
use weir_parsers::ot::{dnp3, enip, iec104, modbus, mqtt, opcua, s7comm};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // Framers: a length is never beyond the input.
    if let Ok(Some(n)) = modbus::frame_len(data) {
        assert!(n <= data.len());
        let _ = modbus::parse(&data[..n], data[0] & 1 == 0, Some(u16::from(data[1])));
    }
    if let Ok(Some(n)) = dnp3::frame_len(data) {
        assert!(n <= data.len());
        if let Ok(l) = dnp3::link(&data[..n]) {
            let _ = dnp3::parse_app(&l.data);
        }
    }
    let _ = dnp3::parse_app(data);
    if let Ok(Some(n)) = s7comm::frame_len(data) {
        assert!(n <= data.len());
        let _ = s7comm::parse(&data[..n]);
    }
    let _ = enip::parse(data);
    let _ = enip::cip(data, 0);
    if let Ok(Some(n)) = iec104::frame_len(data) {
        assert!(n <= data.len());
        let _ = iec104::parse(&data[..n]);
    }
    let _ = weir_parsers::ot::bacnet::parse(data);
    let _ = opcua::parse(data, data[0] & 1 == 1);
    let _ = mqtt::parse(data, data[0] & 1 == 1);

    // Sessions: split at the positions the first byte suggests, alternate directions.
    let step = usize::from(data[0] % 61) + 1;
    let (mut m, mut d, mut s7, mut e, mut i, mut b, mut o, mut q) = (
        ModbusSession::default(),
        Dnp3Session::default(),
        S7Session::default(),
        EnipSession::default(),
        Iec104Session::default(),
        BacnetSession::default(),
        OpcuaSession::default(),
        MqttSession::default(),
    );
    let mut out = Vec::new();
    let mut count2 = |_k: &'static str, _c: u32| {};
    for (n, chunk) in data[1..].chunks(step).enumerate() {
        let ts = n as i64 * 1_000_000;
        let dir = n % 3 != 0;
        let gap = n % 7 == 6;
        m.data(ts, dir, chunk, gap, &mut out, &mut count2);
        d.data(ts, dir, chunk, gap, &mut out, &mut count2);
        s7.data(ts, dir, chunk, gap, &mut out, &mut count2);
        e.data(ts, dir, chunk, gap, n % 2 == 0, &mut out, &mut count2);
        i.data(ts, dir, chunk, gap, &mut out, &mut count2);
        b.data(ts, chunk, &mut out, &mut count2);
        o.data(ts, dir, chunk, gap, &mut out, &mut count2);
        q.data(ts, dir, chunk, gap, &mut out, &mut count2);
    }
    m.end(&mut out);
    d.end(&mut out);
    s7.end(&mut out);
    e.end(&mut out);
    i.end(&mut out);
    b.end(&mut out);
    o.end(&mut out);
    q.end(&mut out);
});
