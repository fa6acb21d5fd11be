//! Authentic but arbitrary datagrams: the fuzzer chooses every header field and payload, the
//! target seals them with the right key, so the receiver's state machine (sessions of several
//! agents, blocks, crafted repair symbols and the erasure decoder, heartbeats, gap accounting,
//! block decoding) is exercised past authentication. Each of the three sessions is first
//! attributed to an agent by a genuine heartbeat (the fuzzer picks the boots, so some are
//! refused as stale), since a receiver delivers nothing of a session before that.
//!
//! Input: 3 boot bytes, then a sequence of `type u8 | session u8 | block u16 | symbol u8 |
//! counts u8 | len u16 | payload` records (all little pieces, to keep the search space small).
//!
//! Checked: gaps are never empty; records delivered never exceed what the input could hold;
//! the state mirrored from the outputs survives its byte round trip, and a receiver restored
//! from it refuses every epoch it refused.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use weir_diode_proto::crypto::{Cipher, SessionKey};
use weir_diode_proto::frame::{DatagramType, Header, HEADER_LEN};
use weir_diode_proto::{Heartbeat, Identity, Output, Receiver, ReceiverConfig, ReceiverState};

const KEY: [u8; 32] = [7; 32];

fn seal(h: &Header, payload: &[u8]) -> Vec<u8> {
    let mut header = [0u8; HEADER_LEN];
    h.encode(&mut header);
    let mut body = payload.to_vec();
    let tag = SessionKey::derive(&KEY, h.session, h.cipher).seal(&header, h, &mut body);
    let mut datagram = header.to_vec();
    datagram.extend_from_slice(&body);
    datagram.extend_from_slice(&tag);
    datagram
}

fn cfg() -> ReceiverConfig {
    ReceiverConfig {
        keys: vec![(1, KEY)],
        fingerprint: 1,
        max_block_bytes: 1 << 16,
        reorder_timeout: Duration::from_millis(100),
        max_pending_bytes: 1 << 20,
        max_pending_blocks: 256,
        ..ReceiverConfig::default()
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (boots, data) = data.split_at(3);
    let mut rx = Receiver::new(cfg());
    let mut state = ReceiverState::default();
    let start = Instant::now();
    let drain = |rx: &mut Receiver, state: &mut ReceiverState| {
        while let Some(o) = rx.poll_output() {
            state.apply(&o);
            if let Output::Gap(g) = o {
                assert!(g.first <= g.last, "a gap is never empty");
            }
        }
    };
    for session in 1..=3u64 {
        let hb = Heartbeat {
            identity: Some(Identity {
                agent: format!("agent-{}", session % 2),
                boot: u64::from(boots[(session - 1) as usize]),
                started_unix_ms: 0,
            }),
            fingerprint: 1,
            ..Heartbeat::default()
        };
        let mut payload = Vec::new();
        hb.encode_from(0, 1400, &mut payload);
        let h = Header {
            kind: DatagramType::Heartbeat,
            key_id: 1,
            cipher: Cipher::default(),
            session,
            block: 0,
            symbol: 0,
            source_count: 1,
            repair_count: 0,
            payload_len: payload.len() as u16,
        };
        let _ = rx.handle_datagram(start, &seal(&h, &payload));
        drain(&mut rx, &mut state);
    }
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
        let source_count = u16::from(head[5] % 8).max(1);
        let h = Header {
            kind,
            key_id: 1,
            cipher: Cipher::default(),
            session,
            block,
            symbol: u16::from(head[4] % 16),
            source_count,
            // Crafted repair symbols: any count the receiver accepts and some it refuses.
            repair_count: u16::from(head[5] >> 3) % (4 * source_count + 4),
            payload_len: payload.len() as u16,
        };
        step += 1;
        let now = start + Duration::from_millis(step * 7);
        let _ = rx.handle_datagram(now, &seal(&h, payload));
        rx.handle_timeout(now);
        drain(&mut rx, &mut state);
    }
    // Every delivered record came out of the input (each takes at least 14 bytes of framing,
    // and a repaired block is rebuilt from symbols that were in it).
    let st = rx.stats();
    assert!(st.records_delivered as usize <= data.len() / 14 + 1);
    assert!(st.pending_blocks <= 256);
    let mut bytes = Vec::new();
    state.encode(&mut bytes);
    assert_eq!(ReceiverState::decode(&bytes).as_ref(), Some(&state));
    let mut back = Receiver::restore(cfg(), &state, start);
    for epoch in &state.retired {
        let h = Header {
            kind: DatagramType::Heartbeat,
            key_id: 1,
            cipher: Cipher::default(),
            session: *epoch,
            block: u64::MAX,
            symbol: 0,
            source_count: 1,
            repair_count: 0,
            payload_len: 1,
        };
        assert_eq!(
            back.handle_datagram(start, &seal(&h, &[0])),
            Err(weir_diode_proto::Reject::StaleSession)
        );
    }
});
