//! Syslog parse + normalise throughput, per core: `cargo bench -p weir-parsers --bench syslog`.
//!
//! "normalise" is the full work an agent does per message before the diode: parse the header,
//! build the ECS event (all owned strings), and serialise it to its canonical JSON.
#![allow(missing_docs)]

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use weir_parsers::syslog::{normalise, parse, ParseContext};

// The same allocator as the `weir` binary, so the figures are the agent's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SAMPLES: &[&str] = &[
    include_str!("../../samples/syslog/linux.log"),
    include_str!("../../samples/syslog/rfc.log"),
    include_str!("../../samples/syslog/cisco_ios.log"),
    include_str!("../../samples/syslog/cisco_asa.log"),
    include_str!("../../samples/syslog/fortigate.log"),
    include_str!("../../samples/syslog/paloalto.log"),
    include_str!("../../samples/syslog/industrial.log"),
    include_str!("../../samples/syslog/snare.log"),
];

fn ctx() -> ParseContext {
    let mut c = ParseContext::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 5)
            .single()
            .unwrap_or_default(),
        "syslog_udp",
    );
    c.peer = "192.0.2.10:514".parse().ok();
    c
}

fn bench(c: &mut Criterion) {
    let lines: Vec<&[u8]> = SAMPLES
        .iter()
        .flat_map(|s| s.lines())
        .map(str::as_bytes)
        .collect();
    let ctx = ctx();
    let mut group = c.benchmark_group("syslog");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("parse (mixed 42 lines)", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(parse(black_box(l), &ctx).ok());
            }
        })
    });
    group.bench_function("parse+normalise+json (mixed 42 lines)", |b| {
        let mut buf = Vec::with_capacity(4096);
        b.iter(|| {
            for l in &lines {
                buf.clear();
                normalise(black_box(l), &ctx).write_json(&mut buf);
                black_box(&buf);
            }
        })
    });
    let rfc5424 = b"<165>1 2026-01-01T00:00:01.003Z hist01.plant.example sshd 4121 ID47 [origin ip=\"10.20.0.5\"] Accepted publickey for operator from 10.20.1.15 port 52144 ssh2";
    let rfc3164 = b"<38>Jan  1 00:00:03 hist01 sshd[2214]: Failed password for invalid user admin from 203.0.113.55 port 40022 ssh2";
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse rfc5424", |b| {
        b.iter(|| black_box(parse(black_box(rfc5424), &ctx).ok()))
    });
    group.bench_function("parse rfc3164", |b| {
        b.iter(|| black_box(parse(black_box(rfc3164), &ctx).ok()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
