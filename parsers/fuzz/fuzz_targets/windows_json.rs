//! Any bytes through the Windows JSON reader (NXLog, Winlogbeat, OpenWEC shapes) and the ECS
//! mapping: never a panic, and the event survives its own JSON round trip unchanged.
#![no_main]

use chrono::TimeZone;
use libfuzzer_sys::fuzz_target;
use weir_parsers::windows::{normalise_json, WinContext};
use weir_schemas::Event;

fuzz_target!(|data: &[u8]| {
    let at = chrono::Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 5)
        .single()
        .unwrap_or_default();
    let event = normalise_json(data, &WinContext::new(at, "fuzz"));
    let json = event.to_json();
    assert_eq!(
        json,
        serde_json::to_vec(&event).expect("json"),
        "Weir's JSON writer is serde_json's"
    );
    let back = Event::from_json(&json).expect("an event always parses back");
    assert_eq!(back.to_json(), json, "round trip is byte-identical");
});
