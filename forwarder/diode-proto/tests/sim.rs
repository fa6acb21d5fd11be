//! The diode core over an in-memory link: loss, reordering, duplication, corruption, replay,
//! wrong keys, restarts. Time is simulated; nothing here touches a socket or a clock.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use weir_diode_proto::{
    Codec, GapReason, Output, Receiver, ReceiverConfig, Reject, Sender, SenderConfig, StreamId,
};

const KEY: [u8; 32] = [7; 32];
const REORDER: Duration = Duration::from_millis(200);

fn sender_cfg(session: u64) -> SenderConfig {
    SenderConfig {
        key_id: 1,
        key: KEY,
        cipher: weir_diode_proto::Cipher::default(),
        session,
        mtu_bytes: 1500,
        ip_version: weir_diode_proto::sender::IpVersion::V6,
        codec: Codec::Zstd(1),
        max_block_bytes: 16 * 1024,
        max_record_bytes: 8 * 1024,
        linger: Duration::from_millis(10),
        heartbeat_interval: Duration::from_secs(1),
        fingerprint: 0xF1,
        max_queued_blocks: 1 << 20,
        repair_percent: 0,
        expected_loss_percent: 0.0,
        interleave_blocks: 1,
        identity: None,
    }
}

fn receiver() -> Receiver {
    Receiver::new(ReceiverConfig {
        keys: vec![(1, KEY)],
        fingerprint: 0xF1,
        max_block_bytes: 1 << 20,
        reorder_timeout: REORDER,
        max_pending_bytes: 64 << 20,
        ..ReceiverConfig::default()
    })
}

/// Everything a sender emits, as separate datagrams.
fn drain(tx: &mut Sender) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; tx.max_datagram_len()];
    let mut out = Vec::new();
    while let Some(n) = tx.poll_transmit(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

fn record(stream: usize, seq: u64) -> Vec<u8> {
    format!("stream {stream} record {seq:08} {}", "payload ".repeat(8)).into_bytes()
}

/// Push `n` records round-robin over `streams` and seal everything.
fn load(tx: &mut Sender, now: Instant, streams: &[StreamId], n: u64) {
    for i in 0..n {
        let s = (i % streams.len() as u64) as usize;
        let seq = i / streams.len() as u64;
        assert_eq!(tx.push(now, streams[s], &record(s, seq)).unwrap(), seq);
    }
    tx.flush();
}

#[derive(Default, Debug)]
struct Seen {
    records: Vec<(u16, u64, Vec<u8>)>,
    gaps: Vec<(u16, String, u64, u64, GapReason)>,
    lost_blocks: Vec<(u64, u64)>,
    sessions: Vec<(u64, Option<u64>, bool)>,
    mismatches: usize,
    heartbeats: usize,
    ended: Vec<u64>,
    refused: Vec<(u64, Reject)>,
}

fn collect(rx: &mut Receiver, seen: &mut Seen) {
    while let Some(o) = rx.poll_output() {
        match o {
            Output::Block { records, .. } => {
                for (r, data) in records.records() {
                    seen.records.push((r.stream, r.sequence, data.to_vec()));
                }
            }
            Output::Gap(g) => seen
                .gaps
                .push((g.stream, g.stream_name, g.first, g.last, g.reason)),
            Output::BlocksLost { first, last, .. } => seen.lost_blocks.push((first, last)),
            Output::SessionStarted {
                session,
                previous,
                joined,
                ..
            } => seen.sessions.push((session, previous, joined)),
            Output::SettingsMismatch { .. } => seen.mismatches += 1,
            Output::Heartbeat { .. } => seen.heartbeats += 1,
            Output::SessionEnded { session, .. } => seen.ended.push(session),
            Output::SessionRefused {
                session, reason, ..
            } => seen.refused.push((session, reason)),
        }
    }
}

fn feed(rx: &mut Receiver, now: Instant, datagrams: &[Vec<u8>], seen: &mut Seen) {
    for d in datagrams {
        rx.handle_datagram(now, d).unwrap();
        collect(rx, seen);
    }
}

/// Block number of a source datagram (header bytes 16..24), or None for heartbeats.
fn block_of(d: &[u8]) -> Option<u64> {
    (d[3] == 1).then(|| u64::from_be_bytes(d[16..24].try_into().unwrap()))
}

fn setup(n: u64, streams: usize) -> (Sender, Vec<StreamId>, Instant, Vec<Vec<u8>>) {
    let now = Instant::now();
    let mut tx = Sender::new(sender_cfg(0xABCD), now).unwrap();
    let ids: Vec<_> = (0..streams)
        .map(|i| tx.add_stream(&format!("input-{i}")))
        .collect();
    load(&mut tx, now, &ids, n);
    let dgrams = drain(&mut tx);
    (tx, ids, now, dgrams)
}

#[test]
fn lossless_link_delivers_every_record_once_in_order() {
    let (_tx, _ids, now, dgrams) = setup(20_000, 3);
    let mut rx = receiver();
    let mut seen = Seen::default();
    feed(&mut rx, now, &dgrams, &mut seen);
    assert_eq!(seen.records.len(), 20_000);
    for s in 0..3u16 {
        let seqs: Vec<u64> = seen
            .records
            .iter()
            .filter(|r| r.0 == s)
            .map(|r| r.1)
            .collect();
        let expected: Vec<u64> = (0..seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "stream {s} in order, no gaps");
    }
    for (stream, seq, data) in &seen.records {
        assert_eq!(data, &record(*stream as usize, *seq), "byte-for-byte");
    }
    assert!(seen.gaps.is_empty());
    assert_eq!(seen.sessions, vec![(0xABCD, None, false)]);
    assert_eq!(rx.stats().rejected_total(), 0);
    assert_eq!(rx.stats().records_delivered, 20_000);
}

#[test]
fn a_dropped_block_becomes_exact_gap_records_and_later_data_flows() {
    let (_tx, _ids, now, dgrams) = setup(2_000, 2);
    let blocks: Vec<u64> = dgrams.iter().filter_map(|d| block_of(d)).collect();
    let last_block = *blocks.iter().max().unwrap();
    assert!(last_block >= 4, "enough blocks for the test ({last_block})");
    let victim = 2u64;
    let kept: Vec<Vec<u8>> = dgrams
        .iter()
        .filter(|d| block_of(d) != Some(victim))
        .cloned()
        .collect();
    let mut rx = receiver();
    let mut seen = Seen::default();
    feed(&mut rx, now, &kept, &mut seen);
    // Nothing after the hole is delivered until the reorder timeout says the block is gone.
    let before = seen.records.len();
    rx.handle_timeout(now + REORDER / 2);
    collect(&mut rx, &mut seen);
    assert_eq!(seen.records.len(), before);
    assert_eq!(rx.poll_timeout(), Some(now + REORDER));
    rx.handle_timeout(now + REORDER);
    collect(&mut rx, &mut seen);
    assert_eq!(seen.lost_blocks, vec![(victim, victim)]);

    // Which records were in the victim block? Exactly those absent from the output.
    let mut missing = Vec::new();
    for s in 0..2u16 {
        let got: Vec<u64> = seen
            .records
            .iter()
            .filter(|r| r.0 == s)
            .map(|r| r.1)
            .collect();
        let first_missing = (0..).find(|q| !got.contains(q)).unwrap();
        let last_missing = (first_missing..).find(|q| got.contains(q)).unwrap() - 1;
        assert_eq!(got.len() as u64, 1000 - (last_missing - first_missing + 1));
        missing.push((
            s,
            format!("input-{s}"),
            first_missing,
            last_missing,
            GapReason::LostBlock,
        ));
    }
    seen.gaps.sort_by_key(|g| g.0);
    assert_eq!(
        seen.gaps, missing,
        "one gap per stream naming exactly the missing range"
    );
    assert_eq!(rx.stats().records_lost + seen.records.len() as u64, 2000);
}

#[test]
fn tail_loss_is_revealed_by_the_next_heartbeat() {
    let (mut tx, _ids, now, dgrams) = setup(500, 1);
    let last = dgrams.iter().filter_map(|d| block_of(d)).max().unwrap();
    let kept: Vec<Vec<u8>> = dgrams
        .iter()
        .filter(|d| block_of(d) != Some(last))
        .cloned()
        .collect();
    let mut rx = receiver();
    let mut seen = Seen::default();
    feed(&mut rx, now, &kept, &mut seen);
    assert!(seen.gaps.is_empty(), "nothing says the tail is missing yet");
    let delivered = seen.records.len() as u64;
    tx.handle_timeout(now + Duration::from_secs(1));
    let hb = drain(&mut tx);
    assert_eq!(hb.len(), 1);
    feed(&mut rx, now + Duration::from_secs(1), &hb, &mut seen);
    rx.handle_timeout(now + Duration::from_secs(2));
    collect(&mut rx, &mut seen);
    assert_eq!(
        seen.gaps,
        vec![(
            0,
            "input-0".to_string(),
            delivered,
            499,
            GapReason::TailLoss
        )]
    );
}

#[test]
fn wrong_key_flipped_bits_and_replays_are_rejected_and_counted() {
    let (_tx, _ids, now, dgrams) = setup(50, 1);
    let mut rx = receiver();
    let mut seen = Seen::default();

    // Wrong key: a sender with another PSK under the same key id.
    let mut bad = Sender::new(
        SenderConfig {
            key: [9; 32],
            ..sender_cfg(0xBAD)
        },
        now,
    )
    .unwrap();
    let s = bad.add_stream("evil");
    bad.push(now, s, b"forged").unwrap();
    bad.flush();
    for d in drain(&mut bad) {
        assert_eq!(rx.handle_datagram(now, &d), Err(Reject::Auth));
    }
    // Unknown key id.
    let mut other = Sender::new(
        SenderConfig {
            key_id: 2,
            ..sender_cfg(0xBAD)
        },
        now,
    )
    .unwrap();
    for d in drain(&mut other) {
        assert_eq!(rx.handle_datagram(now, &d), Err(Reject::UnknownKey(2)));
    }
    // Every single-bit flip of a real datagram is rejected.
    let target = dgrams.iter().find(|d| block_of(d).is_some()).unwrap();
    let mut flips = 0;
    for bit in 0..target.len() * 8 {
        let mut d = target.clone();
        d[bit / 8] ^= 1 << (bit % 8);
        assert!(rx.handle_datagram(now, &d).is_err(), "bit {bit} accepted");
        flips += 1;
    }
    collect(&mut rx, &mut seen);
    assert!(
        seen.records.is_empty() && seen.sessions.is_empty(),
        "nothing from forged datagrams"
    );

    feed(&mut rx, now, &dgrams, &mut seen);
    assert_eq!(seen.records.len(), 50);
    // Replays: every datagram again.
    for d in &dgrams {
        let r = rx.handle_datagram(now, d);
        assert!(matches!(r, Err(Reject::Replayed)), "{r:?}");
    }
    collect(&mut rx, &mut seen);
    assert_eq!(seen.records.len(), 50, "replays add nothing");
    let st = rx.stats();
    // Flips in the key id field read as unknown keys; all others fail framing or the tag.
    assert_eq!(
        st.rejected_total(),
        2 + 1 + flips as u64 + dgrams.len() as u64
    );
    assert_eq!(st.rejected_for("unknown_key"), 1 + 16);
    assert_eq!(st.rejected_for("replayed"), dgrams.len() as u64);
}

#[test]
fn reordering_and_duplication_within_the_window_lose_nothing() {
    let (_tx, _ids, now, mut dgrams) = setup(5_000, 2);
    // Reverse every window of 7 datagrams and repeat every 5th one.
    for chunk in dgrams.chunks_mut(7) {
        chunk.reverse();
    }
    let mut rx = receiver();
    let mut seen = Seen::default();
    for (i, d) in dgrams.iter().enumerate() {
        rx.handle_datagram(now, d).unwrap();
        if i % 5 == 0 {
            // Still pending: a duplicate symbol. Just completed and delivered: a replay.
            let r = rx.handle_datagram(now, d);
            assert!(
                matches!(r, Err(Reject::Duplicate | Reject::Replayed)),
                "{r:?}"
            );
        }
        collect(&mut rx, &mut seen);
    }
    assert_eq!(seen.records.len(), 5_000);
    assert!(seen.gaps.is_empty());
}

#[test]
fn sender_restart_is_reported_and_the_old_session_cannot_be_replayed() {
    let (_tx, _ids, now, first) = setup(100, 1);
    let mut rx = receiver();
    let mut seen = Seen::default();
    feed(&mut rx, now, &first, &mut seen);
    let mut tx2 = Sender::new(sender_cfg(0x2222), now).unwrap();
    let s = tx2.add_stream("input-0");
    load(&mut tx2, now, &[s], 10);
    feed(&mut rx, now, &drain(&mut tx2), &mut seen);
    assert_eq!(
        seen.sessions,
        vec![(0xABCD, None, false), (0x2222, Some(0xABCD), false)]
    );
    assert_eq!(seen.records.len(), 110);
    assert_eq!(
        rx.handle_datagram(now, &first[1]),
        Err(Reject::StaleSession)
    );
}

#[test]
fn a_receiver_joining_mid_session_resynchronises_on_a_heartbeat() {
    let now = Instant::now();
    let mut tx = Sender::new(sender_cfg(0x3333), now).unwrap();
    let s = tx.add_stream("input-0");
    load(&mut tx, now, &[s], 100_000);
    drain(&mut tx); // the receiver was not running for all of this
    tx.handle_timeout(now + Duration::from_secs(1));
    let mut rx = receiver();
    let mut seen = Seen::default();
    feed(&mut rx, now, &drain(&mut tx), &mut seen);
    for seq in 100_000..100_010 {
        assert_eq!(tx.push(now, s, &record(0, seq)).unwrap(), seq);
    }
    tx.flush();
    feed(&mut rx, now, &drain(&mut tx), &mut seen);
    assert_eq!(seen.sessions, vec![(0x3333, None, true)]);
    assert!(
        seen.gaps.is_empty(),
        "history before joining is not a gap: {:?}",
        seen.gaps
    );
    assert_eq!(
        seen.records.iter().map(|r| r.1).collect::<Vec<_>>(),
        (100_000..100_010).collect::<Vec<_>>()
    );
}

#[test]
fn a_settings_mismatch_is_reported_once() {
    let now = Instant::now();
    let mut tx = Sender::new(
        SenderConfig {
            fingerprint: 0xF2,
            ..sender_cfg(0x4444)
        },
        now,
    )
    .unwrap();
    tx.add_stream("x");
    let mut rx = receiver();
    let mut seen = Seen::default();
    feed(&mut rx, now, &drain(&mut tx), &mut seen);
    tx.handle_timeout(now + Duration::from_secs(1));
    feed(&mut rx, now, &drain(&mut tx), &mut seen);
    assert_eq!(seen.mismatches, 1);
    assert_eq!(rx.stats().settings_mismatches, 2);
}

#[test]
fn pending_memory_is_bounded() {
    let (_tx, _ids, now, dgrams) = setup(20_000, 1);
    let mut rx = Receiver::new(ReceiverConfig {
        max_pending_bytes: 64 * 1024,
        ..ReceiverConfig {
            keys: vec![(1, KEY)],
            fingerprint: 0xF1,
            max_block_bytes: 1 << 20,
            reorder_timeout: Duration::from_secs(3600),
            max_pending_bytes: 0,
            ..ReceiverConfig::default()
        }
    });
    let mut seen = Seen::default();
    // Block 0 never arrives; everything after it must not pile up without bound.
    let kept: Vec<Vec<u8>> = dgrams
        .iter()
        .filter(|d| block_of(d) != Some(0))
        .cloned()
        .collect();
    feed(&mut rx, now, &kept, &mut seen);
    assert_eq!(
        seen.lost_blocks,
        vec![(0, 0)],
        "only the missing block is given up"
    );
    assert_eq!(seen.records.len() as u64 + rx.stats().records_lost, 20_000);
    assert_eq!(seen.gaps.len(), 1);
    assert_eq!((seen.gaps[0].2, seen.gaps[0].3 + 1), (0, seen.records[0].1));
}

/// Regression: a block sealed because the next record did not fit must not count that record
/// in the heartbeat's stream positions (the demo once reported a 1-record tail "gap" and then
/// dropped the record as a duplicate).
#[test]
fn heartbeats_interleaved_with_a_lossless_stream_never_report_gaps() {
    let now = Instant::now();
    // A long linger keeps records in the open block while heartbeats go out.
    let cfg = SenderConfig {
        linger: Duration::from_secs(3600),
        ..sender_cfg(0x5555)
    };
    let mut tx = Sender::new(cfg, now).unwrap();
    let ids = [tx.add_stream("a"), tx.add_stream("b")];
    let mut rx = receiver();
    let mut seen = Seen::default();
    let mut t = now;
    for i in 0..20_000u64 {
        let s = (i % 2) as usize;
        tx.push(t, ids[s], &record(s, i / 2)).unwrap();
        if i % 97 == 0 {
            t += Duration::from_millis(300);
            tx.handle_timeout(t);
            feed(&mut rx, t, &drain(&mut tx), &mut seen);
        }
    }
    tx.flush();
    tx.queue_heartbeat();
    feed(&mut rx, t, &drain(&mut tx), &mut seen);
    assert!(seen.heartbeats > 50);
    assert_eq!(seen.gaps, vec![]);
    assert_eq!(seen.records.len(), 20_000);
    assert_eq!(rx.stats().records_duplicate, 0);
}

#[test]
fn the_receiver_accepts_either_cipher_as_the_header_says() {
    use weir_diode_proto::Cipher;
    let now = Instant::now();
    let mut rx = receiver();
    let mut seen = Seen::default();
    for (session, cipher) in [
        (0x6001, Cipher::ChaCha20Poly1305),
        (0x6002, Cipher::Aes256Gcm),
    ] {
        let mut tx = Sender::new(
            SenderConfig {
                cipher,
                ..sender_cfg(session)
            },
            now,
        )
        .unwrap();
        let s = tx.add_stream("x");
        load(&mut tx, now, &[s], 100);
        let dgrams = drain(&mut tx);
        assert!(
            dgrams.iter().all(|d| d[6] == cipher as u8),
            "cipher id in every header"
        );
        feed(&mut rx, now, &dgrams, &mut seen);
    }
    assert_eq!(seen.records.len(), 200);
    assert_eq!(rx.stats().rejected_total(), 0);
}

#[test]
fn during_a_key_rotation_both_key_ids_are_accepted() {
    let now = Instant::now();
    let mut rx = Receiver::new(ReceiverConfig {
        keys: vec![(1, KEY), (2, [8; 32])],
        fingerprint: 0xF1,
        max_block_bytes: 1 << 20,
        reorder_timeout: REORDER,
        max_pending_bytes: 64 << 20,
        ..ReceiverConfig::default()
    });
    let mut seen = Seen::default();
    for (session, key_id, key) in [(0x7001, 1, KEY), (0x7002, 2, [8; 32])] {
        let mut tx = Sender::new(
            SenderConfig {
                key_id,
                key,
                ..sender_cfg(session)
            },
            now,
        )
        .unwrap();
        let s = tx.add_stream("x");
        load(&mut tx, now, &[s], 50);
        feed(&mut rx, now, &drain(&mut tx), &mut seen);
    }
    assert_eq!(seen.records.len(), 100);
    assert_eq!(seen.sessions.len(), 2);
}

/// Found by the `receiver` fuzz target: an authentic heartbeat claiming 2^64 - 1 records made the
/// loss counter overflow. A sender holding the key is trusted with data, not with arithmetic.
#[test]
fn authentic_but_absurd_counters_never_overflow() {
    use weir_diode_proto::crypto::SessionKey;
    use weir_diode_proto::frame::{DatagramType, Header, HEADER_LEN};
    use weir_diode_proto::{Cipher, Heartbeat, StreamPosition};

    let now = Instant::now();
    let mut rx = receiver();
    let mut seen = Seen::default();
    let seal = |h: Header, payload: &[u8]| {
        let mut head = [0u8; HEADER_LEN];
        h.encode(&mut head);
        let mut body = payload.to_vec();
        let tag = SessionKey::derive(&KEY, h.session, h.cipher).seal(&head, &h, &mut body);
        [head.as_slice(), &body, &tag].concat()
    };
    let hb = |counter: u64, next_sequence: u64, next_block: u64| {
        let mut payload = Vec::new();
        Heartbeat {
            next_block,
            fingerprint: 0xF1,
            streams: vec![StreamPosition {
                id: 0,
                next_sequence,
                name: "x".into(),
            }],
            ..Heartbeat::default()
        }
        .encode_from(0, 1400, &mut payload);
        let h = Header {
            kind: DatagramType::Heartbeat,
            key_id: 1,
            cipher: Cipher::default(),
            session: 0x8888,
            block: counter,
            symbol: 0,
            source_count: 1,
            repair_count: 0,
            payload_len: payload.len() as u16,
        };
        seal(h, &payload)
    };
    feed(&mut rx, now, &[hb(0, 0, 0)], &mut seen);
    feed(&mut rx, now, &[hb(1, u64::MAX, 0)], &mut seen);
    feed(&mut rx, now, &[hb(2, u64::MAX, u64::MAX)], &mut seen);
    rx.handle_timeout(now + Duration::from_secs(10));
    collect(&mut rx, &mut seen);
    assert_eq!(seen.gaps.len(), 1);
    assert_eq!(rx.stats().records_lost, u64::MAX);
}

#[test]
fn blocks_lost_behind_each_other_each_wait_one_timeout_not_one_each_in_series() {
    // Every other block loses its last symbol (no FEC): each is unrecoverable. They all
    // arrived at the same time, so one reorder timeout later all of them are declared lost in
    // one step and every complete block between them is delivered. (A receiver that restarted
    // the clock for each stalled block would take a timeout per lost block, and fall behind a
    // lossy link for good.)
    let (_tx, _ids, now, dgrams) = setup(4_000, 1);
    let blocks: Vec<u64> = dgrams.iter().filter_map(|d| block_of(d)).collect();
    let last_block = *blocks.iter().max().unwrap();
    assert!(last_block >= 8, "enough blocks for the test ({last_block})");
    let last_symbol_of = |b: u64| dgrams.iter().rposition(|d| block_of(d) == Some(b)).unwrap();
    // Not the last block: only the next heartbeat can tell that one is incomplete.
    let victims: Vec<u64> = (1..last_block).step_by(2).collect();
    let dropped: Vec<usize> = victims.iter().map(|&b| last_symbol_of(b)).collect();
    let kept: Vec<Vec<u8>> = dgrams
        .iter()
        .enumerate()
        .filter(|(i, _)| !dropped.contains(i))
        .map(|(_, d)| d.clone())
        .collect();
    let mut rx = receiver();
    let mut seen = Seen::default();
    feed(&mut rx, now, &kept, &mut seen);
    assert_eq!(rx.poll_timeout(), Some(now + REORDER));
    rx.handle_timeout(now + REORDER);
    collect(&mut rx, &mut seen);
    let lost: Vec<u64> = seen.lost_blocks.iter().flat_map(|&(a, b)| a..=b).collect();
    assert_eq!(lost, victims, "every victim lost in the same step");
    assert_eq!(rx.stats().records_lost + seen.records.len() as u64, 4_000);
    assert_eq!(rx.poll_timeout(), None, "nothing left waiting");
}

/// The scatter-gather path (`poll_transmit_parts`: header and tag written, the sealed symbol
/// lent) puts exactly the bytes on the wire that the copying path does, datagram for datagram,
/// with repair symbols too; and lent block buffers return to the sender once the driver lets
/// go of them (the receiver still gets everything).
#[test]
fn lent_symbols_make_the_same_datagrams_as_copied_ones() {
    let now = Instant::now();
    let cfg = SenderConfig {
        repair_percent: 10,
        expected_loss_percent: 1.0,
        codec: Codec::None,
        ..sender_cfg(42)
    };
    let mut copying = Sender::new(cfg.clone(), now).unwrap();
    let mut lending = Sender::new(cfg, now).unwrap();
    let a = copying.add_stream("s");
    let b = lending.add_stream("s");
    let mut rx = receiver();
    let mut buf = vec![0u8; lending.max_datagram_len()];
    let (mut copied, mut lent, mut parts) = (0usize, 0usize, 0usize);
    for round in 0..20u64 {
        for i in 0..50 {
            copying.push(now, a, &record(0, round * 50 + i)).unwrap();
            lending.push(now, b, &record(0, round * 50 + i)).unwrap();
        }
        copying.flush();
        lending.flush();
        let want = drain(&mut copying);
        let mut got = Vec::new();
        while let Some(t) = lending.poll_transmit_parts(&mut buf) {
            got.push(match t {
                weir_diode_proto::Transmit::Whole(n) => buf[..n].to_vec(),
                weir_diode_proto::Transmit::Parts(symbol) => {
                    parts += 1;
                    let mut d = buf[..32].to_vec();
                    d.extend_from_slice(symbol.bytes());
                    d.extend_from_slice(&buf[32..48]);
                    assert_eq!(d.len(), symbol.datagram_len());
                    d
                }
            });
        }
        assert_eq!(got, want, "round {round}");
        copied += want.len();
        lent += got.len();
        for d in &got {
            rx.handle_datagram(now, d).unwrap();
        }
    }
    assert_eq!(copied, lent);
    assert!(parts > 20 * 4, "{parts} lent symbols");
    assert!(lending.stats().repair_symbols > 0);
    let mut records = 0;
    while let Some(o) = rx.poll_output() {
        if let Output::Block { records: r, .. } = o {
            records += r.len();
        }
    }
    assert_eq!(records, 1000);
}

/// Symbols of a block already under way are verified where they land in the block: a forged
/// one (one byte changed) is rejected and changes nothing, whether it would have been appended
/// past a hole, appended at the end or written into a hole; the genuine symbols then complete
/// the block and every record arrives as it was sent.
#[test]
fn a_forged_symbol_for_a_pending_block_is_rejected_where_it_lands() {
    // Uncompressed, so that a block spans several datagrams.
    let now = Instant::now();
    let mut tx = Sender::new(
        SenderConfig {
            codec: Codec::None,
            ..sender_cfg(0xABCD)
        },
        now,
    )
    .unwrap();
    let ids = [tx.add_stream("input-0")];
    load(&mut tx, now, &ids, 20_000);
    let dgrams = drain(&mut tx);
    let forged = |d: &Vec<u8>| {
        let mut f = d.clone();
        let at = f.len() - 20; // in the symbol, just before the tag
        f[at] ^= 0x40;
        f
    };
    // A block of at least three source datagrams.
    let (first, target) = dgrams
        .iter()
        .enumerate()
        .find_map(|(i, d)| {
            let b = block_of(d)?;
            let run = dgrams[i..]
                .iter()
                .take_while(|x| block_of(x) == Some(b))
                .count();
            (run >= 3 && (i == 0 || block_of(&dgrams[i - 1]) != Some(b))).then_some((i, b))
        })
        .expect("a block of three or more datagrams");
    let mut rx = receiver();
    let mut seen = Seen::default();
    feed(&mut rx, now, &dgrams[..first], &mut seen);
    let (d0, d1, d2) = (&dgrams[first], &dgrams[first + 1], &dgrams[first + 2]);
    assert_eq!(block_of(d2), Some(target));
    rx.handle_datagram(now, d0).unwrap();
    // Past a hole (index 2 while only 0 is held), then at the end (index 1).
    assert_eq!(rx.handle_datagram(now, &forged(d2)), Err(Reject::Auth));
    assert_eq!(rx.handle_datagram(now, &forged(d1)), Err(Reject::Auth));
    // Into the hole left before a genuine later symbol.
    rx.handle_datagram(now, d2).unwrap();
    assert_eq!(rx.handle_datagram(now, &forged(d1)), Err(Reject::Auth));
    collect(&mut rx, &mut seen);
    feed(&mut rx, now, std::slice::from_ref(d1), &mut seen);
    feed(&mut rx, now, &dgrams[first + 3..], &mut seen);
    assert_eq!(seen.records.len(), 20_000);
    for (i, (stream, seq, data)) in seen.records.iter().enumerate() {
        assert_eq!((*stream, *seq), (0, i as u64));
        assert_eq!(data, &record(0, i as u64));
    }
    assert!(seen.gaps.is_empty() && seen.lost_blocks.is_empty());
}
