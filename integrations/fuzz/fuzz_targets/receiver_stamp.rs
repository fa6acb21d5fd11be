//! Whatever a diode record holds: the receiver's peek never panics, and when it stamps the
//! provenance into the text the result is still one JSON object (where the provenance lands in
//! a document not shaped as this build writes events is not promised; see `stamp`). An agent
//! record (envelope first) is completed and stamped without a panic, and the buffer record made
//! from it splits back into the same envelope.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_integrations::envelope::{
    record_json, routed, split_view, stamp, stamp_routed_into, Peek,
};

fuzz_target!(|data: &[u8]| {
    if let Some((mut env, _class, json)) = routed(data) {
        env.sequence = Some(77);
        env.session = Some("0000000000000abc");
        let mut record = Vec::new();
        env.start_record(&mut record);
        let at = record.len();
        if stamp_routed_into(&mut record, json, 77, "0000000000000abc", "2026-01-01T00:00:00Z") {
            let (back, body) = split_view(&record).expect("the record splits");
            assert_eq!(back.get(), env);
            assert_eq!(body, &record[at..]);
        } else {
            assert_eq!(record.len(), at);
        }
    }
    let data = record_json(data);
    let Ok(peek) = Peek::of(data) else { return };
    let _ = peek.envelope(Some(1), Some("s"));
    if let Some(out) = stamp(data, &peek, 77, "0000000000000abc", "2026-01-01T00:00:00Z") {
        let v: serde_json::Value = serde_json::from_slice(&out).expect("stamped output is JSON");
        assert!(v.is_object());
    }
});
