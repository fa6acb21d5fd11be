//! Authentic but arbitrary datagrams: the fuzzer chooses every header field and payload, the
//! target seals them with the right key, so the receiver's state machine (sessions, blocks,
//! heartbeats, gap accounting, block decoding) is exercised past authentication.
//!
//! Input: a sequence of `type u8 | session u8 | block u16 | symbol u8 | count u8 | len u16 |
//! payload` records (all little pieces, to keep the search space small).
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use weir_diode_proto::crypto::{Cipher, SessionKey};
use weir_diode_proto::frame::{DatagramType, Header, HEADER_LEN};
use weir_diode_proto::{Output, Receiver, ReceiverConfig};

const KEY: [u8; 32] = [7; 32];

fuzz_target!(|data: &[u8]| {
    let mut rx = Receiver::new(ReceiverConfig {
        keys: vec![(1, KEY)],
        fingerprint: 1,
        max_block_bytes: 1 << 16,
        reorder_timeout: Duration::from_millis(100),
        max_pending_bytes: 1 << 20,
        ..ReceiverConfig::default()
    });
    let start = Instant::now();
    let mut rest = data;
    let mut step = 0u64;
    while rest.len() >= 8 {
        let (head, tail) = rest.split_at(8);
        let kind = match head[0] % 3 {
            0 => DatagramType::Source,
            1 => DatagramType::Repair,
            _ => DatagramType::Heartbeat,
        };
        let session = u64::from(head[1] % 3) + 1;
        let block = u64::from(u16::from_le_bytes([head[2], head[3]]));
        let len = usize::from(u16::from_le_bytes([head[6], head[7]]) % 512) + 1;
        let take = len.min(tail.len());
        let (payload, tail) = tail.split_at(take);
        rest = tail;
        if payload.is_empty() {
            break;
        }
        let h = Header {
            kind,
            key_id: 1,
            cipher: Cipher::from_u8(head[1] & 1).unwrap_or_default(),
            session,
            block,
            symbol: u16::from(head[4] % 8),
            source_count: u16::from(head[5] % 8).max(1),
            repair_count: 0,
            payload_len: payload.len() as u16,
        };
        let mut header = [0u8; HEADER_LEN];
        h.encode(&mut header);
        let mut body = payload.to_vec();
        let tag = SessionKey::derive(&KEY, session, h.cipher).seal(&header, &h, &mut body);
        let mut datagram = header.to_vec();
        datagram.extend_from_slice(&body);
        datagram.extend_from_slice(&tag);
        step += 1;
        let now = start + Duration::from_millis(step * 7);
        let _ = rx.handle_datagram(now, &datagram);
        rx.handle_timeout(now);
        while let Some(o) = rx.poll_output() {
            if let Output::Gap(g) = o {
                assert!(g.first <= g.last, "a gap is never empty");
            }
        }
    }
    // Every delivered record came out of the input (each takes at least 14 bytes of framing).
    let st = rx.stats();
    assert!(st.records_delivered as usize <= data.len() / 14 + 1);
});
