//! Any bytes through the iec104 parser: its framer never claims more than it was given, the
//! pure parser never panics, and the session survives the bytes cut at fuzzer-chosen points.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use weir_parsers::ot::iec104;
use weir_parsers::ot::session::Iec104Session;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    if let Ok(Some(n)) = iec104::frame_len(data) {
        assert!(n <= data.len());
        let _ = iec104::parse(&data[..n]);
    }
    let mut s = Iec104Session::default();
    let mut out = Vec::new();
    for (ts, dir, gap, seg) in common::segments(data) {
        s.data(ts, dir, seg, gap, &mut out, &mut common::ignore);
    }
    s.end(&mut out);
    assert!(out.iter().all(|t| !t.function.is_empty()));
});
