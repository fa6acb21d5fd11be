//! Any bytes through the dnp3 parser: its framer never claims more than it was given, the
//! pure parser never panics, and the session survives the bytes cut at fuzzer-chosen points.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use weir_parsers::ot::dnp3;
use weir_parsers::ot::session::Dnp3Session;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    if let Ok(Some(n)) = dnp3::frame_len(data) {
        assert!(n <= data.len());
        if let Ok(l) = dnp3::link(&data[..n]) {
            assert!(l.data.len() <= n);
            let _ = dnp3::parse_app(&l.data);
        }
    }
    let _ = dnp3::parse_app(data);
    let mut r = dnp3::Reassembly::default();
    for seg in data.chunks(17) {
        if let Some(frag) = r.push(seg) {
            assert!(frag.len() <= dnp3::MAX_FRAGMENT);
        }
    }
    let mut s = Dnp3Session::default();
    let mut out = Vec::new();
    for (ts, dir, gap, seg) in common::segments(data) {
        s.data(ts, dir, seg, gap, &mut out, &mut common::ignore);
    }
    s.end(&mut out);
    assert!(out.iter().all(|t| !t.function.is_empty()));
});
