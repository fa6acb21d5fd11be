//! Any bytes as a capture file (pcap or pcapng) through the whole sensor: never a panic, the
//! reader's offsets add up, and every event survives its JSON round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_parsers::packet::capture::{CaptureReader, Item};
use weir_parsers::sensor::{Sensor, SensorConfig};
use weir_schemas::Event;

fuzz_target!(|data: &[u8]| {
    let mut reader = CaptureReader::new();
    let mut sensor = Sensor::new(SensorConfig {
        baseline_learning: 1,
        ..SensorConfig::default()
    });
    let mut at = 0usize;
    while let Ok(Some((n, item))) = reader.next(&data[at..]) {
        assert!(
            n > 0 && at + n <= data.len(),
            "consumed {n} at {at} of {}",
            data.len()
        );
        at += n;
        assert_eq!(reader.offset(), at as u64);
        if let Item::Packet(p) = item {
            sensor.packet(p.ts_nanos, p.link, p.data);
        }
    }
    sensor.flush();
    for e in sensor.drain() {
        let json = e.to_json();
        let back = Event::from_json(&json).expect("an event always parses back");
        assert_eq!(back.to_json(), json);
    }
});
