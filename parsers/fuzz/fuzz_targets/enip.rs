//! Any bytes through the enip parser: its framer never claims more than it was given, the
//! pure parser never panics, and the session survives the bytes cut at fuzzer-chosen points,
//! both directions, with gaps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_parsers::ot::session::EnipSession;
use weir_parsers::ot::enip;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    if let Ok(Some(n)) = enip::frame_len(data) {
        assert!(n <= data.len());
    }
    let _ = enip::parse(data);
    let _ = enip::cip(data, 0);
    let step = usize::from(data[0] % 61) + 1;
    let mut sess = EnipSession::default();
    let mut out = Vec::new();
    #[allow(unused_mut, unused_variables)]
    let mut count1 = |_c: u32| {};
    #[allow(unused_mut, unused_variables)]
    let mut count2 = |_k: &'static str, _c: u32| {};
    for (n, chunk) in data[1..].chunks(step).enumerate() {
        let ts = n as i64 * 1_000_000;
        #[allow(unused_variables)]
        let dir = n % 3 != 0;
        #[allow(unused_variables)]
        let gap = n % 7 == 6;
        sess.data(ts, dir, chunk, gap, n % 2 == 0, &mut out, &mut count2);
    }
    sess.end(&mut out);
    for t in &out {
        assert!(!t.function.is_empty());
    }
});
