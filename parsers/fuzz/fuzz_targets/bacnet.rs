//! Any bytes through the bacnet parser: its framer never claims more than it was given, the
//! pure parser never panics, and the session survives the bytes cut at fuzzer-chosen points.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use weir_parsers::ot::bacnet;
use weir_parsers::ot::session::BacnetSession;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let _ = bacnet::parse(data);
    let mut s = BacnetSession::default();
    let mut out = Vec::new();
    for (ts, _, _, seg) in common::segments(data) {
        s.data(ts, seg, &mut out, &mut common::ignore);
    }
    s.end(&mut out);
    assert!(out.iter().all(|t| !t.function.is_empty()));
});
