//! Any bytes through the enip parser: its framer never claims more than it was given, the
//! pure parser never panics, and the session survives the bytes cut at fuzzer-chosen points.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use weir_parsers::ot::enip;
use weir_parsers::ot::session::EnipSession;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    if let Ok(Some(n)) = enip::frame_len(data) {
        assert!(n <= data.len());
    }
    let _ = enip::parse(data);
    let _ = enip::cip(data, 0);
    let mut s = EnipSession::default();
    let mut out = Vec::new();
    for (ts, dir, gap, seg) in common::segments(data) {
        s.data(
            ts,
            dir,
            seg,
            gap,
            ts % 2_000_000 == 0,
            &mut out,
            &mut common::ignore,
        );
    }
    s.end(&mut out);
    assert!(out.iter().all(|t| !t.function.is_empty()));
});
