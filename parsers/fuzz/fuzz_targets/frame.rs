//! Any bytes as one frame of any link type (the first byte picks it), decoded and fed to the
//! sensor twice: never a panic; a decoded IP packet never claims more payload than it has.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_parsers::packet::decode::{decode, Net, Transport};
use weir_parsers::packet::LinkType;
use weir_parsers::sensor::{Sensor, SensorConfig};

const LINKS: [u32; 9] = [1, 113, 276, 0, 108, 101, 228, 229, 147];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let link = LinkType::from_code(LINKS[usize::from(pick) % LINKS.len()]);
    if let Ok(f) = decode(link, frame) {
        if let Net::Ip(ip) = f.net {
            if let Transport::Tcp(t) = ip.transport {
                assert!(t.payload.len() <= frame.len());
            }
        }
    }
    let mut s = Sensor::new(SensorConfig::default());
    s.packet(1_000_000_000, link, frame);
    s.packet(2_000_000_000, link, frame);
    s.flush();
    for e in s.drain() {
        let _ = e.to_json();
    }
});
