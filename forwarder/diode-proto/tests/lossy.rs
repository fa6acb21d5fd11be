//! The diode core over a simulated lossy link: random and burst loss, reordering, duplication,
//! corruption and truncation, with forward error correction. Deterministic (seeded), in memory,
//! on a virtual clock.
//!
//! The invariant checked everywhere: for every stream, the records delivered and the records
//! named in gap records are disjoint and together are exactly the records sent; delivered
//! records are in order, unduplicated and byte-for-byte what was sent; every corrupted or
//! truncated datagram is rejected.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use weir_diode_proto::{Codec, Output, Receiver, ReceiverConfig, Sender, SenderConfig};

const KEY: [u8; 32] = [3; 32];

/// SplitMix64: small, fast, good enough for test randomness, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Impairments {
    loss: f64,
    /// Gilbert-Elliott: (enter bad state, leave bad state, loss while bad).
    burst: Option<(f64, f64, f64)>,
    reorder_window: usize,
    duplicate: f64,
    corrupt: f64,
    truncate: f64,
}

struct Link {
    rng: Rng,
    imp: Impairments,
    bad: bool,
    held: Vec<Vec<u8>>,
    damaged: u64,
}

impl Link {
    fn new(seed: u64, imp: Impairments) -> Link {
        Link {
            rng: Rng(seed),
            imp,
            bad: false,
            held: Vec::new(),
            damaged: 0,
        }
    }

    /// One datagram in; what comes out of the far end now.
    fn carry(&mut self, d: &[u8], out: &mut VecDeque<Vec<u8>>) {
        let lost = match self.imp.burst {
            Some((enter, leave, bad_loss)) => {
                self.bad = if self.bad {
                    !self.rng.chance(leave)
                } else {
                    self.rng.chance(enter)
                };
                self.rng
                    .chance(if self.bad { bad_loss } else { self.imp.loss })
            }
            None => self.rng.chance(self.imp.loss),
        };
        if lost {
            return;
        }
        let copies = if self.rng.chance(self.imp.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut d = d.to_vec();
            if self.rng.chance(self.imp.corrupt) {
                let i = self.rng.below(d.len() as u64) as usize;
                d[i] ^= 1 << self.rng.below(8);
                self.damaged += 1;
            } else if self.rng.chance(self.imp.truncate) {
                let keep = self.rng.below(d.len() as u64) as usize;
                d.truncate(keep);
                self.damaged += 1;
            }
            self.held.push(d);
        }
        while self.held.len() > self.imp.reorder_window {
            let i = self.rng.below(self.held.len() as u64) as usize;
            out.push_back(self.held.swap_remove(i));
        }
    }

    fn drain(&mut self, out: &mut VecDeque<Vec<u8>>) {
        while !self.held.is_empty() {
            let i = self.rng.below(self.held.len() as u64) as usize;
            out.push_back(self.held.swap_remove(i));
        }
    }
}

fn record(stream: usize, seq: u64) -> Vec<u8> {
    // Event-like: compressible but not trivially so.
    format!(
        r#"{{"@timestamp":"2026-01-01T00:00:{:02}Z","message":"stream {stream} seq {seq} pump {} valve {} flow {}","log":{{"syslog":{{"priority":{}}}}}}}"#,
        seq % 60,
        seq.wrapping_mul(2654435761) % 97,
        seq % 13,
        seq.wrapping_mul(40503) % 10007,
        seq % 192
    )
    .into_bytes()
}

struct Outcome {
    sent: [u64; 2],
    delivered: [Vec<u64>; 2],
    gaps: [Vec<(u64, u64)>; 2],
    damaged: u64,
    rejected_damage: u64,
    repaired: u64,
    blocks: u64,
    stats: String,
}

/// The sender's default expected loss (`tx.fec_expected_loss_percent`).
const DEFAULT_EXPECTED_LOSS: f64 = 1.0;

fn run(seed: u64, n: u64, repair_percent: u32, imp: Impairments) -> Outcome {
    run_opts(
        seed,
        n,
        (repair_percent, DEFAULT_EXPECTED_LOSS),
        1,
        512,
        imp,
    )
}

/// `fec` is (repair percent, expected loss percent) and `interleave_blocks` as in the sender
/// config; the sender transmits after every `push_per_step` records, one millisecond apart (a
/// large value lets blocks queue up, as on a busy link; a small one makes the 20 ms linger seal
/// small blocks, as on a quiet link).
fn run_opts(
    seed: u64,
    n: u64,
    (repair_percent, expected_loss_percent): (u32, f64),
    interleave_blocks: usize,
    push_per_step: u64,
    imp: Impairments,
) -> Outcome {
    let start = Instant::now();
    let mut now = start;
    let mut tx = Sender::new(
        SenderConfig {
            key_id: 1,
            key: KEY,
            cipher: weir_diode_proto::Cipher::default(),
            session: 0x5EED ^ seed,
            mtu_bytes: 1500,
            ip_version: weir_diode_proto::sender::IpVersion::V6,
            codec: Codec::Zstd(1),
            max_block_bytes: 256 * 1024,
            max_record_bytes: 64 * 1024,
            linger: Duration::from_millis(20),
            heartbeat_interval: Duration::from_secs(1),
            fingerprint: 1,
            max_queued_blocks: 1 << 20,
            repair_percent,
            expected_loss_percent,
            interleave_blocks,
            identity: None,
        },
        now,
    )
    .unwrap();
    let streams = [tx.add_stream("plc-syslog"), tx.add_stream("windows")];
    let mut rx = Receiver::new(ReceiverConfig {
        keys: vec![(1, KEY)],
        fingerprint: 1,
        max_block_bytes: 256 * 1024,
        reorder_timeout: Duration::from_millis(50),
        max_pending_bytes: 64 << 20,
        ..ReceiverConfig::default()
    });
    let mut link = Link::new(seed, imp);
    let mut wire = VecDeque::new();
    let mut buf = vec![0u8; tx.max_datagram_len()];
    let mut o = Outcome {
        sent: [0; 2],
        delivered: [Vec::new(), Vec::new()],
        gaps: [Vec::new(), Vec::new()],
        damaged: 0,
        rejected_damage: 0,
        repaired: 0,
        blocks: 0,
        stats: String::new(),
    };
    let mut rng = Rng(seed ^ 0xABCDEF);
    let mut step = |tx: &mut Sender,
                    rx: &mut Receiver,
                    now: &mut Instant,
                    o: &mut Outcome,
                    link: &mut Link,
                    wire: &mut VecDeque<Vec<u8>>,
                    flush: bool| {
        tx.handle_timeout(*now);
        while let Some(len) = tx.poll_transmit(&mut buf) {
            link.carry(&buf[..len], wire);
            *now += Duration::from_micros(12); // ~1 Gb/s at MTU 1500
        }
        if flush {
            link.drain(wire);
        }
        // Like the socket driver: every datagram already received is handled before timers
        // are looked at, so a pause in processing cannot pass for loss.
        while let Some(d) = wire.pop_front() {
            let _ = rx.handle_datagram(*now, &d);
            collect(rx, o);
        }
        rx.handle_timeout(*now);
        collect(rx, o);
    };
    for i in 0..n {
        let s = (rng.below(4) == 0) as usize; // 3:1 mix of the two streams
        let seq = o.sent[s];
        assert_eq!(tx.push(now, streams[s], &record(s, seq)).unwrap(), seq);
        o.sent[s] += 1;
        if i % push_per_step == 0 {
            now += Duration::from_millis(1);
            step(
                &mut tx, &mut rx, &mut now, &mut o, &mut link, &mut wire, false,
            );
        }
    }
    tx.flush();
    // Let everything out, then several heartbeats (any may be lost) and time for the receiver
    // to give up on what is missing.
    for _ in 0..8 {
        now += Duration::from_secs(1);
        tx.queue_heartbeat();
        step(
            &mut tx, &mut rx, &mut now, &mut o, &mut link, &mut wire, true,
        );
    }
    let st = rx.stats();
    o.damaged = link.damaged;
    o.rejected_damage = st.rejected_for("auth_failed")
        + st.rejected_for("bad_frame")
        + st.rejected_for("unknown_key");
    o.repaired = st.blocks_repaired;
    o.blocks = tx.stats().blocks;
    o.stats = format!("{st:?}");
    o
}

fn collect(rx: &mut Receiver, o: &mut Outcome) {
    while let Some(out) = rx.poll_output() {
        match out {
            Output::Block { records, .. } => {
                for (r, data) in records.records() {
                    let s = r.stream as usize;
                    assert_eq!(data, record(s, r.sequence).as_slice(), "byte-for-byte");
                    o.delivered[s].push(r.sequence);
                }
            }
            Output::Gap(g) => o.gaps[g.stream as usize].push((g.first, g.last)),
            Output::SessionStarted { joined, .. } => {
                assert!(!joined, "the receiver saw the session from its start")
            }
            _ => {}
        }
    }
}

/// Delivered and gaps partition exactly 0..sent, delivered in order without duplicates.
fn assert_exact(o: &Outcome) {
    for s in 0..2 {
        let mut covered = vec![0u8; o.sent[s] as usize];
        for w in o.delivered[s].windows(2) {
            assert!(w[0] < w[1], "stream {s}: {} then {}", w[0], w[1]);
        }
        for &q in &o.delivered[s] {
            covered[q as usize] += 1;
        }
        for &(a, b) in &o.gaps[s] {
            assert!(a <= b);
            for q in a..=b {
                covered[q as usize] += 1;
            }
        }
        let wrong: Vec<usize> = covered
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != 1)
            .map(|(i, _)| i)
            .take(5)
            .collect();
        assert!(
            wrong.is_empty(),
            "stream {s}: sequences not accounted exactly once: {wrong:?}"
        );
    }
    assert_eq!(
        o.rejected_damage, o.damaged,
        "every corrupted or truncated datagram is rejected"
    );
}

fn delivered(o: &Outcome) -> u64 {
    (o.delivered[0].len() + o.delivered[1].len()) as u64
}

fn lost(o: &Outcome) -> u64 {
    o.gaps.iter().flatten().map(|(a, b)| b - a + 1).sum()
}

#[test]
fn one_percent_random_loss_with_default_fec_delivers_a_million_events() {
    let o = run(
        1,
        1_000_000,
        10,
        Impairments {
            loss: 0.01,
            ..Impairments::default()
        },
    );
    assert_exact(&o);
    assert_eq!(
        delivered(&o),
        1_000_000,
        "lost {} in {:?}",
        lost(&o),
        o.gaps
    );
    assert!(o.repaired > 0, "FEC did the work");
}

#[test]
fn one_percent_random_loss_on_a_quiet_link_of_small_blocks_loses_nothing() {
    // A few events per millisecond: the linger seals blocks of 2-4 symbols, which a repair
    // percentage alone would give 2 repair symbols (lost at 1 % about once in 10^5 blocks).
    let o = run_opts(
        4,
        1_000_000,
        (10, DEFAULT_EXPECTED_LOSS),
        1,
        8,
        Impairments {
            loss: 0.01,
            ..Impairments::default()
        },
    );
    assert_exact(&o);
    assert_eq!(
        delivered(&o),
        1_000_000,
        "lost {} in {:?}",
        lost(&o),
        o.gaps
    );
    assert!(o.repaired > 0, "FEC did the work");
    assert!(o.blocks > 6_000, "small blocks: {} blocks", o.blocks);
}

#[test]
fn small_blocks_sized_for_the_expected_loss_survive_what_a_percentage_alone_does_not() {
    let imp = Impairments {
        loss: 0.10,
        ..Impairments::default()
    };
    let by_percent = run_opts(5, 100_000, (10, 0.0), 1, 8, imp);
    let by_loss = run_opts(5, 100_000, (10, 10.0), 1, 8, imp);
    assert_exact(&by_percent);
    assert_exact(&by_loss);
    assert!(
        lost(&by_percent) > 0,
        "10 % of 3-5 symbols with 2 repair symbols must fail"
    );
    assert_eq!(lost(&by_loss), 0, "{}", by_loss.stats);
}

#[test]
fn five_percent_loss_with_raised_repair_loses_nothing() {
    let o = run(
        2,
        200_000,
        40,
        Impairments {
            loss: 0.05,
            ..Impairments::default()
        },
    );
    assert_exact(&o);
    assert_eq!(delivered(&o), 200_000, "lost {}", lost(&o));
}

#[test]
fn thirty_percent_loss_gap_records_add_up_exactly_to_the_missing_events() {
    let o = run(
        3,
        200_000,
        10,
        Impairments {
            loss: 0.30,
            ..Impairments::default()
        },
    );
    assert_exact(&o);
    assert!(lost(&o) > 0, "30 % loss must overwhelm 10 % repair");
    assert_eq!(delivered(&o) + lost(&o), 200_000);
}

#[test]
fn burst_loss_reordering_duplication_and_corruption_keep_the_accounting_exact() {
    let mut rng = Rng(0xC0FFEE);
    for seed in 0..24 {
        let imp = Impairments {
            loss: rng.below(150) as f64 / 1000.0,
            burst: (seed % 3 == 0).then_some((0.01, 0.2, 0.5)),
            reorder_window: rng.below(48) as usize,
            duplicate: rng.below(50) as f64 / 1000.0,
            corrupt: rng.below(20) as f64 / 1000.0,
            truncate: rng.below(20) as f64 / 1000.0,
        };
        let repair = [0, 10, 25, 50][(seed % 4) as usize];
        let o = run(100 + seed, 20_000, repair, imp);
        assert_exact(&o);
        let effective = imp.loss + imp.corrupt + imp.truncate;
        if imp.burst.is_none() && repair >= 25 && effective <= 0.05 {
            assert_eq!(
                lost(&o),
                0,
                "seed {seed}: {imp:?} with {repair} % repair: {}",
                o.stats
            );
        }
        if imp.loss == 0.0 && imp.burst.is_none() && imp.corrupt == 0.0 && imp.truncate == 0.0 {
            assert_eq!(
                delivered(&o),
                20_000,
                "seed {seed}: a clean link loses nothing"
            );
        }
    }
}

#[test]
fn without_fec_a_single_loss_costs_its_block_and_with_fec_it_does_not() {
    let imp = Impairments {
        loss: 0.002,
        ..Impairments::default()
    };
    let without = run(7, 100_000, 0, imp);
    let with = run(7, 100_000, 10, imp);
    assert_exact(&without);
    assert_exact(&with);
    assert!(lost(&without) > 0);
    assert_eq!(lost(&with), 0);
}

#[test]
fn interleaving_spreads_burst_loss_over_several_blocks_repair_budgets() {
    // Bursts of about 10 datagrams (Gilbert-Elliott), blocks queued 16 deep, 20 % repair.
    let imp = Impairments {
        burst: Some((0.002, 0.1, 1.0)),
        ..Impairments::default()
    };
    // The percentage alone (no expected random loss), so that only interleaving differs.
    let plain = run_opts(11, 300_000, (20, 0.0), 1, 20_000, imp);
    let interleaved = run_opts(11, 300_000, (20, 0.0), 8, 20_000, imp);
    assert_exact(&plain);
    assert_exact(&interleaved);
    assert!(
        lost(&plain) > lost(&interleaved),
        "interleaving must help: {} lost plain, {} interleaved",
        lost(&plain),
        lost(&interleaved)
    );
    assert_eq!(lost(&interleaved), 0, "{}", interleaved.stats);
}
