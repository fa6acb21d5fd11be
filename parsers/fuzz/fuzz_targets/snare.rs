//! Any text as a Snare record inside syslog, and as a rendered message read back into
//! EventData: never a panic; the event survives its JSON round trip.
#![no_main]

use chrono::TimeZone;
use libfuzzer_sys::fuzz_target;
use weir_parsers::syslog::{normalise, ParseContext};
use weir_parsers::windows::snare::message_data;
use weir_schemas::Event;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = message_data(4624, text);
    let line = format!("<13>Jan  1 00:00:01 host MSWinEventLog\t{text}");
    let at = chrono::Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 5)
        .single()
        .unwrap_or_default();
    let event = normalise(line.as_bytes(), &ParseContext::new(at, "syslog_udp"));
    let json = event.to_json();
    assert_eq!(
        json,
        serde_json::to_vec(&event).expect("json"),
        "Weir's JSON writer is serde_json's"
    );
    let back = Event::from_json(&json).expect("an event always parses back");
    assert_eq!(back.to_json(), json, "round trip is byte-identical");
});
