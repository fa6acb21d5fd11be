//! Any bytes as a receiver state file: never a panic, and what decodes encodes back to the same
//! bytes and restores a receiver.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use weir_diode_proto::{Receiver, ReceiverConfig, ReceiverState};

fuzz_target!(|data: &[u8]| {
    if let Some(state) = ReceiverState::decode(data) {
        let mut out = Vec::new();
        state.encode(&mut out);
        assert_eq!(out.as_slice(), data);
        let rx = Receiver::restore(
            ReceiverConfig {
                keys: vec![(1, [7; 32]), (2, [8; 32])],
                ..ReceiverConfig::default()
            },
            &state,
            Instant::now(),
        );
        assert!(rx.sessions().len() <= state.sessions.len());
    }
});
