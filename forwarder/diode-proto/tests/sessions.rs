//! Sessions of several agents on one receiver, replays of old sessions, restarts of either
//! side with the receiver's persisted state, and the pending bound under a key holder's flood.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use weir_diode_proto::frame::{DatagramType, Header, HEADER_LEN, TAG_LEN};
use weir_diode_proto::{
    Codec, Identity, Output, Receiver, ReceiverConfig, ReceiverState, Reject, Sender, SenderConfig,
    StreamId,
};

const KEY: [u8; 32] = [7; 32];

fn sender(agent: &str, boot: u64, session: u64, now: Instant) -> (Sender, StreamId) {
    let mut tx = Sender::new(sender_cfg(agent, boot, session), now).unwrap();
    let id = tx.add_stream(&format!("{agent}-syslog"));
    (tx, id)
}

fn cfg() -> ReceiverConfig {
    ReceiverConfig {
        keys: vec![(1, KEY)],
        fingerprint: 0xF1,
        max_block_bytes: 1 << 20,
        reorder_timeout: Duration::from_millis(200),
        ..ReceiverConfig::default()
    }
}

/// `n` records of `agent` from sequence `from`, and every datagram the sender makes for them
/// (a heartbeat first when the session is new).
fn send(
    tx: &mut Sender,
    id: StreamId,
    now: Instant,
    agent: &str,
    from: u64,
    n: u64,
) -> Vec<Vec<u8>> {
    for i in from..from + n {
        tx.push(
            now,
            id,
            format!("{agent} {i:06} {}", "x".repeat(40)).as_bytes(),
        )
        .unwrap();
    }
    tx.flush();
    let mut buf = vec![0u8; tx.max_datagram_len()];
    let mut out = Vec::new();
    while let Some(n) = tx.poll_transmit(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

/// A heartbeat now (the sender's timer forced).
fn heartbeat(tx: &mut Sender, now: Instant) -> Vec<Vec<u8>> {
    tx.handle_timeout(now + Duration::from_secs(2));
    let mut buf = vec![0u8; tx.max_datagram_len()];
    let mut out = Vec::new();
    while let Some(n) = tx.poll_transmit(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

#[derive(Default, Debug)]
struct Seen {
    /// (session, record text)
    records: Vec<(u64, String)>,
    gaps: Vec<(u64, u64, u64)>,
    started: Vec<(u64, String)>,
    ended: Vec<u64>,
    refused: Vec<(u64, Reject)>,
}

/// Feed datagrams, drain outputs into `seen` and into the mirrored state.
fn feed(
    rx: &mut Receiver,
    now: Instant,
    dgrams: &[Vec<u8>],
    seen: &mut Seen,
    state: &mut ReceiverState,
) {
    for d in dgrams {
        let _ = rx.handle_datagram(now, d);
        collect(rx, seen, state);
    }
}

fn collect(rx: &mut Receiver, seen: &mut Seen, state: &mut ReceiverState) {
    while let Some(o) = rx.poll_output() {
        state.apply(&o);
        match o {
            Output::Block {
                session, records, ..
            } => {
                for (_, data) in records.records() {
                    seen.records
                        .push((session, String::from_utf8_lossy(data).into_owned()));
                }
            }
            Output::Gap(g) => seen.gaps.push((g.session, g.first, g.last)),
            Output::SessionStarted { session, agent, .. } => seen.started.push((session, agent)),
            Output::SessionEnded { session, .. } => seen.ended.push(session),
            Output::SessionRefused {
                session, reason, ..
            } => seen.refused.push((session, reason)),
            _ => {}
        }
    }
}

fn count(seen: &Seen, prefix: &str) -> usize {
    seen.records
        .iter()
        .filter(|(_, r)| r.starts_with(prefix))
        .count()
}

/// Eight agents interleaved on one receiver: every record of every agent once; one agent's
/// restart ends only its own session.
#[test]
fn eight_agents_interleaved_each_deliver_everything_once() {
    let now = Instant::now();
    let mut rx = Receiver::new(cfg());
    let (mut seen, mut state) = (Seen::default(), ReceiverState::default());
    let mut agents: Vec<_> = (0..8u64)
        .map(|i| {
            let name = format!("zone-{i}");
            let (tx, id) = sender(&name, 100, 0x1000 + i, now);
            (name, tx, id)
        })
        .collect();
    for round in 0..5u64 {
        let mut per_agent: Vec<Vec<Vec<u8>>> = agents
            .iter_mut()
            .map(|(name, tx, id)| send(tx, *id, now, name, round * 60, 60))
            .collect();
        // Interleave datagram by datagram.
        let most = per_agent.iter().map(Vec::len).max().unwrap();
        for k in 0..most {
            for d in per_agent.iter_mut() {
                if let Some(x) = d.get(k) {
                    feed(&mut rx, now, std::slice::from_ref(x), &mut seen, &mut state);
                }
            }
        }
    }
    for (name, _, _) in &agents {
        assert_eq!(count(&seen, &format!("{name} ")), 300, "{name}");
    }
    assert_eq!(seen.records.len(), 2400);
    assert_eq!(seen.started.len(), 8);
    assert!(seen.gaps.is_empty() && seen.ended.is_empty() && seen.refused.is_empty());
    // zone-3 restarts (boot 101): only its old session ends.
    let (mut tx, id) = sender("zone-3", 101, 0x2003, now);
    feed(
        &mut rx,
        now,
        &send(&mut tx, id, now, "zone-3", 0, 10),
        &mut seen,
        &mut state,
    );
    assert_eq!(seen.ended, vec![0x1003]);
    let (name, tx5, id5) = &mut agents[5];
    feed(
        &mut rx,
        now,
        &send(tx5, *id5, now, name, 300, 10),
        &mut seen,
        &mut state,
    );
    assert_eq!(count(&seen, "zone-5 "), 310);
    assert_eq!(count(&seen, "zone-3 "), 310);
    assert_eq!(rx.sessions().len(), 8);
    assert!(seen.refused.is_empty());
}

/// The attack of the issue: the agent restarted (new session), the receiver restarted (from
/// its persisted state), then datagrams of the agent's previous session are replayed. The
/// replay is refused and delivers nothing; the live session keeps delivering. Replaying the
/// live session's own delivered blocks delivers nothing either.
#[test]
fn replays_of_an_old_session_after_both_sides_restarted_are_refused() {
    let now = Instant::now();
    let mut rx = Receiver::new(cfg());
    let (mut seen, mut state) = (Seen::default(), ReceiverState::default());
    let (mut old, id) = sender("zone-1", 10, 0xAAAA, now);
    let recorded = send(&mut old, id, now, "zone-1", 0, 300);
    feed(&mut rx, now, &recorded, &mut seen, &mut state);
    assert_eq!(count(&seen, "zone-1 "), 300);
    // The agent restarts: boot 11.
    let (mut new, nid) = sender("zone-1", 11, 0xBBBB, now);
    let first = send(&mut new, nid, now, "zone-1", 0, 100);
    feed(&mut rx, now, &first, &mut seen, &mut state);
    assert_eq!(seen.ended, vec![0xAAAA]);
    // The receiver restarts from its state (encoded and decoded, as from its file).
    let mut bytes = Vec::new();
    state.encode(&mut bytes);
    let state_back = ReceiverState::decode(&bytes).unwrap();
    let mut rx = Receiver::restore(cfg(), &state_back, now);
    let mut seen = Seen::default();
    let mut state = state_back;
    // One datagram of the old session, then all of it: refused as stale.
    feed(&mut rx, now, &recorded[1..2], &mut seen, &mut state);
    feed(&mut rx, now, &recorded, &mut seen, &mut state);
    assert_eq!(
        rx.stats().rejected_for("stale_session"),
        recorded.len() as u64 + 1
    );
    // The live session's own datagrams, replayed: nothing twice.
    feed(&mut rx, now, &first, &mut seen, &mut state);
    assert!(
        seen.records.is_empty(),
        "{:?}",
        &seen.records[..3.min(seen.records.len())]
    );
    // The live agent goes on: 300 more, all delivered.
    let more = send(&mut new, nid, now, "zone-1", 100, 300);
    feed(&mut rx, now, &more, &mut seen, &mut state);
    assert_eq!(count(&seen, "zone-1 "), 300);
    assert!(seen.records.iter().all(|(s, _)| *s == 0xBBBB));
    assert!(seen.gaps.is_empty() && seen.refused.is_empty());
}

/// A session this receiver never saw, replayed after a newer one of the same agent: its heartbeat
/// shows an older boot, so it is refused and nothing of it (held until then) is delivered.
/// Without any heartbeat, held blocks are discarded when the attribution time runs out.
#[test]
fn an_unseen_older_session_is_refused_and_blocks_without_a_heartbeat_expire() {
    let now = Instant::now();
    let mut rx = Receiver::new(cfg());
    let (mut seen, mut state) = (Seen::default(), ReceiverState::default());
    let (mut old, oid) = sender("zone-2", 50, 0x50, now);
    let recorded = send(&mut old, oid, now, "zone-2", 0, 200);
    let (mut live, lid) = sender("zone-2", 51, 0x51, now);
    feed(
        &mut rx,
        now,
        &send(&mut live, lid, now, "zone-2", 0, 20),
        &mut seen,
        &mut state,
    );
    feed(&mut rx, now, &recorded, &mut seen, &mut state);
    assert_eq!(count(&seen, "zone-2 "), 20);
    assert_eq!(seen.refused, vec![(0x50, Reject::StaleSession)]);
    // Data of another unseen session, its heartbeats stripped.
    let (mut ghost, gid) = sender("zone-9", 1, 0x99, now);
    let data: Vec<_> = send(&mut ghost, gid, now, "zone-9", 0, 100)
        .into_iter()
        .filter(|d| Header::decode(d).unwrap().kind != DatagramType::Heartbeat)
        .collect();
    feed(&mut rx, now, &data, &mut seen, &mut state);
    assert_eq!(count(&seen, "zone-9 "), 0);
    let later = now + Duration::from_secs(11);
    assert!(rx.poll_timeout().unwrap() <= later);
    rx.handle_timeout(later);
    collect(&mut rx, &mut seen, &mut state);
    assert_eq!(seen.refused.last(), Some(&(0x99, Reject::Unattributed)));
    assert_eq!(rx.stats().rejected_for("unattributed"), data.len() as u64);
    assert_eq!(rx.stats().pending_blocks, 0);
    // Its datagrams are refused from now on.
    feed(&mut rx, later, &data[..1], &mut seen, &mut state);
    assert_eq!(count(&seen, "zone-9 "), 0);
    assert!(state.retired.contains(&0x99) && state.retired.contains(&0x50));
}

/// `[rx] agents`: a session naming an agent not listed is refused with its held datagrams.
#[test]
fn agents_not_listed_are_refused() {
    let now = Instant::now();
    let mut rx = Receiver::new(ReceiverConfig {
        agents: Some(vec!["zone-1".into()]),
        ..cfg()
    });
    let (mut seen, mut state) = (Seen::default(), ReceiverState::default());
    let (mut a, aid) = sender("zone-1", 1, 1, now);
    let (mut b, bid) = sender("intruder", 1, 2, now);
    feed(
        &mut rx,
        now,
        &send(&mut a, aid, now, "zone-1", 0, 50),
        &mut seen,
        &mut state,
    );
    let bd = send(&mut b, bid, now, "intruder", 0, 50);
    feed(&mut rx, now, &bd, &mut seen, &mut state);
    assert_eq!(count(&seen, "zone-1 "), 50);
    assert_eq!(count(&seen, "intruder "), 0);
    assert_eq!(seen.refused, vec![(2, Reject::UnknownAgent)]);
    assert_eq!(
        rx.stats().rejected_for("unknown_agent") + rx.stats().rejected_for("stale_session"),
        bd.len() as u64
    );
}

/// The receiver is down while the agent goes on: after the restart from its state, what was
/// sent meanwhile becomes gap records, and delivered + gaps = sent, exactly. The agent is
/// then restarted while the receiver is down again: the old session's tail is settled by the
/// last heartbeat it saw, and the new session delivers from its start.
#[test]
fn loss_while_the_receiver_is_down_becomes_exact_gap_records() {
    let now = Instant::now();
    let mut rx = Receiver::new(cfg());
    let (mut seen, mut state) = (Seen::default(), ReceiverState::default());
    let (mut tx, id) = sender("zone-4", 7, 0x44, now);
    feed(
        &mut rx,
        now,
        &send(&mut tx, id, now, "zone-4", 0, 1000),
        &mut seen,
        &mut state,
    );
    // Down: 2,000 records go nowhere.
    let _ = send(&mut tx, id, now, "zone-4", 1000, 2000);
    let mut rx = Receiver::restore(cfg(), &state, now);
    // Up again: a heartbeat and 500 more.
    let t = now + Duration::from_secs(3);
    let mut after = heartbeat(&mut tx, t);
    after.extend(send(&mut tx, id, t, "zone-4", 3000, 500));
    feed(&mut rx, t, &after, &mut seen, &mut state);
    rx.handle_timeout(t + Duration::from_secs(1));
    collect(&mut rx, &mut seen, &mut state);
    let gap_sum: u64 = seen.gaps.iter().map(|(_, f, l)| l - f + 1).sum();
    let delivered = count(&seen, "zone-4 ") as u64;
    assert_eq!(delivered, 1500);
    assert_eq!(delivered + gap_sum, 3500, "{:?}", seen.gaps);
    assert_eq!(seen.gaps, vec![(0x44, 1000, 2999)]);
}

/// A key holder's flood of one-symbol blocks that never complete: what they are charged keeps
/// their number and cost within the bound, whatever their size.
#[test]
fn a_flood_of_tiny_never_complete_blocks_stays_within_the_pending_bound() {
    let now = Instant::now();
    let max_pending_bytes = 1 << 20;
    let mut rx = Receiver::new(ReceiverConfig {
        max_pending_bytes,
        max_pending_blocks: 100_000,
        ..cfg()
    });
    let (mut seen, mut state) = (Seen::default(), ReceiverState::default());
    let (mut tx, id) = sender("zone-5", 1, 0x55, now);
    feed(
        &mut rx,
        now,
        &send(&mut tx, id, now, "zone-5", 0, 1),
        &mut seen,
        &mut state,
    );
    // Forge (with the key) symbol 0 of blocks with 2 source symbols of 2 bytes each.
    let key = weir_diode_proto::crypto::SessionKey::derive(
        &KEY,
        0x55,
        weir_diode_proto::Cipher::default(),
    );
    let mut most = 0u64;
    for block in 10..200_010u64 {
        let h = Header {
            kind: DatagramType::Source,
            key_id: 1,
            cipher: weir_diode_proto::Cipher::default(),
            session: 0x55,
            block,
            symbol: 0,
            source_count: 2,
            repair_count: 0,
            payload_len: 2,
        };
        let mut d = vec![0u8; HEADER_LEN + 2 + TAG_LEN];
        let (head, rest) = d.split_at_mut(HEADER_LEN);
        let head: &mut [u8; HEADER_LEN] = head.try_into().unwrap();
        h.encode(head);
        let (body, tag) = rest.split_at_mut(2);
        tag.copy_from_slice(&key.seal(head, &h, body));
        rx.handle_datagram(now, &d).unwrap();
        collect(&mut rx, &mut seen, &mut state);
        most = most.max(rx.stats().pending_bytes);
        assert!(rx.stats().pending_bytes <= max_pending_bytes as u64);
    }
    assert!(most > max_pending_bytes as u64 / 2);
    assert!(rx.stats().blocks_shed > 190_000, "{:?}", rx.stats());
    // The genuine session still works afterwards... its lost blocks are gaps only if records
    // were in them (none were: the forged blocks held nothing), so no gap record appears.
    assert!(seen.gaps.is_empty());
}

/// An agent killed without final heartbeats: the last blocks it handed to the link were lost
/// and no heartbeat of the session ever mentioned them. The next start closes the session from
/// the agent's ledger (positions of records handed out in whole blocks): the receiver turns the
/// lost tail into one exact gap, then the new session takes over. A closing heartbeat replayed
/// later, or one older than a heartbeat already seen, changes nothing.
#[test]
fn a_killed_agent_closes_its_old_session_from_the_ledger_and_the_lost_tail_is_a_gap() {
    let now = Instant::now();
    let mut rx = Receiver::new(cfg());
    let (mut seen, mut state) = (Seen::default(), ReceiverState::default());
    let (mut old, id) = sender("zone-7", 50, 0xC0DE, now);
    // 200 records arrive (with the session's first heartbeat); 100 more are handed to the link
    // and lost, and the agent dies before its next heartbeat.
    let first = send(&mut old, id, now, "zone-7", 0, 200);
    feed(&mut rx, now, &first, &mut seen, &mut state);
    let _lost = send(&mut old, id, now, "zone-7", 200, 100);
    let ledger = old.ledger();
    assert_eq!(ledger.streams[0].next_sequence, 300);
    // The ledger as read back from the file.
    let mut bytes = Vec::new();
    ledger.encode(&mut bytes);
    let ledger = weir_diode_proto::SenderLedger::decode(&bytes).unwrap();
    drop(old);
    // The next start: closing heartbeats of the old session, then the new session.
    let mut closing = Sender::closing(&sender_cfg("zone-7", 51, 0xD00D), &ledger, now).unwrap();
    let close = heartbeat(&mut closing, now);
    assert!(!close.is_empty());
    feed(&mut rx, now, &close, &mut seen, &mut state);
    let (mut new, nid) = sender("zone-7", 51, 0xD00D, now);
    let later = now + Duration::from_secs(1);
    feed(
        &mut rx,
        later,
        &send(&mut new, nid, later, "zone-7", 0, 10),
        &mut seen,
        &mut state,
    );
    rx.handle_timeout(later + Duration::from_secs(1));
    collect(&mut rx, &mut seen, &mut state);
    assert_eq!(seen.ended, vec![0xC0DE]);
    assert_eq!(seen.gaps, vec![(0xC0DE, 200, 299)]);
    assert_eq!(count(&seen, "zone-7 "), 210);
    // The closing heartbeats replayed: the old session is retired, they are refused.
    feed(&mut rx, later, &close, &mut seen, &mut state);
    assert_eq!(seen.gaps.len(), 1);
    assert_eq!(count(&seen, "zone-7 "), 210);
}

fn sender_cfg(agent: &str, boot: u64, session: u64) -> SenderConfig {
    SenderConfig {
        key_id: 1,
        key: KEY,
        cipher: weir_diode_proto::Cipher::default(),
        session,
        mtu_bytes: 1500,
        ip_version: weir_diode_proto::sender::IpVersion::V4,
        codec: Codec::Zstd(1),
        max_block_bytes: 4096,
        max_record_bytes: 2048,
        linger: Duration::from_millis(10),
        heartbeat_interval: Duration::from_secs(1),
        fingerprint: 0xF1,
        max_queued_blocks: 1 << 20,
        repair_percent: 0,
        expected_loss_percent: 0.0,
        interleave_blocks: 1,
        identity: Some(Identity {
            agent: agent.into(),
            boot,
            started_unix_ms: boot * 1000,
        }),
    }
}

/// Fuzz finding (2026-12-08, `sender_ledger`): a ledger whose heartbeat counter is near the
/// end of u64 made the closing sender's counter overflow (wrap in release: a reused nonce).
/// The counter never wraps: no heartbeat is sealed once it is exhausted.
#[test]
fn a_closing_sender_never_wraps_its_heartbeat_counter() {
    let now = Instant::now();
    let ledger = weir_diode_proto::SenderLedger {
        session: 4,
        heartbeat_counter: u64::MAX - 7,
        identity: Identity {
            agent: "zone-9".into(),
            boot: 1,
            started_unix_ms: 1,
        },
        ..Default::default()
    };
    let mut closing = Sender::closing(&sender_cfg("zone-9", 2, 5), &ledger, now).unwrap();
    let mut buf = vec![0u8; closing.max_datagram_len()];
    for _ in 0..3 {
        closing.queue_heartbeat();
        assert_eq!(closing.poll_transmit(&mut buf), None);
    }
    assert_eq!(closing.ledger().heartbeat_counter, u64::MAX);
}
