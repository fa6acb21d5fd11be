//! The receiver's journal reader and its check of routed records, on any bytes.
//!
//! * Journal: the valid prefix never runs past the input, and reading that prefix again finds
//!   the same last entry.
//! * Record check (`one_json_object`): a record it passes starts with `{`, ends with `}` and
//!   has no raw control character (so it cannot end an NDJSON line or carry a second value);
//!   every object serde_json reads without raw control characters passes (no valid event is
//!   refused).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::pipeline::rx::one_json_object;
use weir::pipeline::rx_state::scan;

fuzz_target!(|data: &[u8]| {
    let (good, last) = scan(data);
    assert!(good <= data.len());
    let (again, last_again) = scan(&data[..good]);
    assert_eq!(again, good);
    assert_eq!(last, last_again);

    let passed = one_json_object(data).is_ok();
    if passed {
        assert_eq!(data.first(), Some(&b'{'));
        assert_eq!(data.last(), Some(&b'}'));
        assert!(data.iter().all(|&b| b >= 0x20));
    }
    let object = matches!(
        serde_json::from_slice::<serde_json::Value>(data),
        Ok(serde_json::Value::Object(_))
    );
    if object && data.iter().all(|&b| b >= 0x20) && data.first() == Some(&b'{') && data.last() == Some(&b'}') {
        assert!(passed, "a JSON object was refused");
    }
});
