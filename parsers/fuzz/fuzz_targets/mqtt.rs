//! Any bytes through the mqtt parser: its framer never claims more than it was given, the
//! pure parser never panics, and the session survives the bytes cut at fuzzer-chosen points.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use weir_parsers::ot::mqtt;
use weir_parsers::ot::session::MqttSession;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    if let Ok(Some(n)) = mqtt::frame_len(data) {
        assert!(n <= data.len());
        let _ = mqtt::parse(&data[..n], false);
        let _ = mqtt::parse(&data[..n], true);
    }
    let mut s = MqttSession::default();
    let mut out = Vec::new();
    for (ts, dir, gap, seg) in common::segments(data) {
        s.data(ts, dir, seg, gap, &mut out, &mut common::ignore);
    }
    s.end(&mut out);
    assert!(out.iter().all(|t| !t.function.is_empty()));
});
