//! Any bytes through the syslog parser: never a panic, and the event it makes (raw or parsed)
//! survives its own JSON round trip unchanged.
#![no_main]

use chrono::TimeZone;
use libfuzzer_sys::fuzz_target;
use weir_parsers::syslog::{normalise, ParseContext};
use weir_schemas::Event;

fuzz_target!(|data: &[u8]| {
    let at = chrono::Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 5)
        .single()
        .unwrap_or_default();
    let mut ctx = ParseContext::new(at, "syslog_udp");
    ctx.timezone = chrono_tz_berlin();
    let event = normalise(data, &ctx);
    let json = event.to_json();
    assert_eq!(
        json,
        serde_json::to_vec(&event).expect("json"),
        "Weir's JSON writer is serde_json's"
    );
    let back = Event::from_json(&json).expect("an event always parses back");
    assert_eq!(back.to_json(), json, "round trip is byte-identical");
});

fn chrono_tz_berlin() -> weir_parsers::syslog::Tz {
    "Europe/Berlin"
        .parse()
        .unwrap_or(weir_parsers::syslog::Tz::UTC)
}
