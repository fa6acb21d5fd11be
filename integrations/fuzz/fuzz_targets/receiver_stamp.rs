//! Whatever a diode record holds: the receiver's peek never panics, and when it stamps the
//! provenance into the text the result is still one JSON object (where the provenance lands in
//! a document not shaped as this build writes events is not promised; see `stamp`). An agent
//! record (envelope first) is completed (its bytes spliced) and stamped without a panic, and the
//! buffer record made from it splits back into the same envelope.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_integrations::envelope::{
    complete_record, record_json, routed, split_view, stamp, stamp_routed_into, Peek,
};

fuzz_target!(|data: &[u8]| {
    if let Some((mut env, _class, json)) = routed(data) {
        env.sequence = Some(77);
        env.session = Some("0000000000000abc");
        // The receiver splices the two members into the agent's bytes: the result must read
        // back as the agent's envelope with them set.
        let mut record = Vec::new();
        assert!(complete_record(&mut record, data, "0000000000000abc", 77));
        let (spliced, _) = split_view(&record).expect("the completed envelope splits");
        assert_eq!(spliced.get(), env);
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
