//! Any text through the Windows event XML reader and the ECS mapping: never a panic, and the
//! event it makes (mapped or raw) survives its own JSON round trip unchanged; and whatever the
//! single-pass scanner reads, it reads as the general XML reader does.
#![no_main]

use chrono::TimeZone;
use libfuzzer_sys::fuzz_target;
use weir_parsers::windows::{normalise_xml, WinContext};
use weir_schemas::Event;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(fast) = weir_parsers::winxml::parse_fast(text) {
        assert_eq!(
            Ok(fast),
            weir_parsers::winxml::parse_general(text),
            "scanner and reader differ"
        );
    }
    let at = chrono::Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 5)
        .single()
        .unwrap_or_default();
    let event = normalise_xml(text, &WinContext::new(at, "fuzz"));
    let json = event.to_json();
    assert_eq!(
        json,
        serde_json::to_vec(&event).expect("json"),
        "Weir's JSON writer is serde_json's"
    );
    let back = Event::from_json(&json).expect("an event always parses back");
    assert_eq!(back.to_json(), json, "round trip is byte-identical");
});
