//! Whatever a diode record holds: the receiver's peek never panics, and when it stamps the
//! provenance into the text the result is still one JSON object (where the provenance lands in
//! a document not shaped as this build writes events is not promised; see `stamp`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_integrations::envelope::{stamp, Peek};

fuzz_target!(|data: &[u8]| {
    let Ok(peek) = Peek::of(data) else { return };
    let _ = peek.envelope(Some(1), Some("s"));
    if let Some(out) = stamp(data, &peek, 77, "0000000000000abc", "2026-01-01T00:00:00Z") {
        let v: serde_json::Value = serde_json::from_slice(&out).expect("stamped output is JSON");
        assert!(v.is_object());
    }
});
