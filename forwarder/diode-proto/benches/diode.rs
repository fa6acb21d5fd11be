//! CPU cost of the diode protocol itself (no sockets): `cargo bench -p weir-diode-proto`.
//!
//! Throughput is in bytes of record payload; one core's CPU-seconds per GiB is 1 / (GiB/s).
//! Records are 1 KiB of incompressible bytes with compression off (the transport's own cost,
//! comparable to moving a file), and event-like JSON with zstd (what Weir carries).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use weir_diode_proto::{Codec, Output, Receiver, ReceiverConfig, Sender, SenderConfig};

const KEY: [u8; 32] = [5; 32];
const BATCH: usize = 4 * 1024 * 1024;

fn sender(mtu: usize, codec: Codec, repair: u32) -> Sender {
    Sender::new(
        SenderConfig {
            key_id: 1,
            key: KEY,
            cipher: weir_diode_proto::Cipher::default(),
            session: 42,
            mtu_bytes: mtu,
            ip_version: weir_diode_proto::sender::IpVersion::V6,
            codec,
            max_block_bytes: 256 * 1024,
            max_record_bytes: 64 * 1024,
            linger: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(3600),
            fingerprint: 1,
            max_queued_blocks: 1 << 20,
            repair_percent: repair,
            // The percentage alone, so the figures are for exactly that much repair.
            expected_loss_percent: 0.0,
            interleave_blocks: 1,
            identity: None,
        },
        Instant::now(),
    )
    .unwrap()
}

fn receiver() -> Receiver {
    Receiver::new(ReceiverConfig {
        keys: vec![(1, KEY)],
        fingerprint: 1,
        max_block_bytes: 256 * 1024,
        reorder_timeout: Duration::from_millis(100),
        max_pending_bytes: 256 << 20,
        ..ReceiverConfig::default()
    })
}

fn records(json: bool) -> Vec<Vec<u8>> {
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut out = Vec::new();
    let mut total = 0;
    while total < BATCH {
        let r = if json {
            format!(r#"{{"@timestamp":"2026-01-01T00:00:{:02}Z","message":"pump {} flow {} pressure {}","log":{{"syslog":{{"hostname":"plc-{}","priority":134}}}},"weir":{{"class":"syslog","stream":"plant"}}}}"#, total % 60, total % 97, total % 1013, total % 7, total % 11).into_bytes()
        } else {
            (0..1024)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        };
        total += r.len();
        out.push(r);
    }
    out
}

/// All datagrams for one batch.
fn encode(tx: &mut Sender, recs: &[Vec<u8>], buf: &mut [u8], out: &mut Vec<Vec<u8>>) {
    let now = Instant::now();
    let s = weir_diode_proto::StreamId(0);
    for r in recs {
        tx.push(now, s, r).unwrap();
        while let Some(n) = tx.poll_transmit(buf) {
            out.push(buf[..n].to_vec());
        }
    }
    tx.flush();
    while let Some(n) = tx.poll_transmit(buf) {
        out.push(buf[..n].to_vec());
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("diode");
    g.sample_size(20);
    for (name, json, codec) in [
        ("random-1KiB", false, Codec::None),
        ("event-json-zstd", true, Codec::Zstd(1)),
    ] {
        let recs = records(json);
        let bytes: usize = recs.iter().map(Vec::len).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        for (mtu, repair) in [(1500, 0), (1500, 10), (9000, 10)] {
            let id = format!("{name}/mtu{mtu}/fec{repair}");
            g.bench_function(BenchmarkId::new("send", &id), |b| {
                let mut tx = sender(mtu, codec, repair);
                tx.add_stream("s");
                let mut buf = vec![0u8; tx.max_datagram_len()];
                let now = Instant::now();
                b.iter(|| {
                    for r in &recs {
                        tx.push(now, weir_diode_proto::StreamId(0), r).unwrap();
                        while let Some(n) = tx.poll_transmit(&mut buf) {
                            black_box(&buf[..n]);
                        }
                    }
                    tx.flush();
                    while let Some(n) = tx.poll_transmit(&mut buf) {
                        black_box(&buf[..n]);
                    }
                })
            });
            // The receiver: a fresh session per iteration over pre-encoded datagrams, with 1 %
            // of the source datagrams removed when FEC is on (repair work included).
            let mut tx = sender(mtu, codec, repair);
            tx.add_stream("s");
            let mut buf = vec![0u8; tx.max_datagram_len()];
            let mut dgrams = Vec::new();
            encode(&mut tx, &recs, &mut buf, &mut dgrams);
            if repair > 0 {
                dgrams = dgrams
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| i % 100 != 50)
                    .map(|(_, d)| d)
                    .collect();
            }
            g.bench_function(BenchmarkId::new("receive", &id), |b| {
                b.iter(|| {
                    let mut rx = receiver();
                    let now = Instant::now();
                    let mut got = 0usize;
                    for d in &dgrams {
                        let _ = rx.handle_datagram(now, d);
                        while let Some(o) = rx.poll_output() {
                            if let Output::Block { records, .. } = o {
                                got += records.len();
                            }
                        }
                    }
                    assert_eq!(got, recs.len());
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
