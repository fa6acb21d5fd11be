//! Arbitrary bytes as one datagram: header decoding and the receiver's whole front end (framing,
//! key lookup, authentication) must reject them without panicking.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use weir_diode_proto::frame::Header;
use weir_diode_proto::{Receiver, ReceiverConfig};

fuzz_target!(|data: &[u8]| {
    let _ = Header::decode(data);
    let mut rx = Receiver::new(ReceiverConfig {
        keys: vec![(1, [7; 32])],
        fingerprint: 1,
        max_block_bytes: 1 << 20,
        reorder_timeout: Duration::from_millis(100),
        max_pending_bytes: 8 << 20,
        ..ReceiverConfig::default()
    });
    let _ = rx.handle_datagram(Instant::now(), data);
    while rx.poll_output().is_some() {}
});
