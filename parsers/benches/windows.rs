//! Windows event normalisation throughput, per core: `cargo bench -p weir-parsers --bench windows`.
//!
//! * "xml": rendered event XML (as WEF, `wevtutil` and the `evtx` crate produce it) → ECS event
//!   → canonical JSON: the agent's work per forwarded event.
//! * "nxlog json": an NXLog-style JSON line → ECS event → canonical JSON.
//! * "evtx file": a whole `.evtx` file read by the `evtx` crate (binary XML rendered to XML)
//!   and normalised as above: the `evtx_directory` source's work per record.
//!
//! Records come from the real logs in samples/windows (security.evtx: 2,261 Security events).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use weir_parsers::windows::{normalise_json, normalise_xml, WinContext};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn sample(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples/windows")
        .join(name)
}

fn bench(c: &mut Criterion) {
    let ctx = WinContext::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap(),
        "bench",
    );
    let mut parser = evtx::EvtxParser::from_path(sample("evtx/security.evtx")).unwrap();
    let xml: Vec<String> = parser.records().flatten().map(|r| r.data).collect();
    let json_text =
        std::fs::read_to_string(sample("json/otrf_psexec_lsa_secrets_dump.json")).unwrap();
    let json: Vec<&[u8]> = json_text.lines().map(str::as_bytes).collect();

    let mut group = c.benchmark_group("windows");
    group.throughput(Throughput::Elements(xml.len() as u64));
    group.bench_function("xml -> event -> json (security.evtx records)", |b| {
        let mut buf = Vec::with_capacity(8192);
        b.iter(|| {
            for x in &xml {
                buf.clear();
                normalise_xml(black_box(x), &ctx).write_json(&mut buf);
                black_box(&buf);
            }
        })
    });
    group.throughput(Throughput::Elements(json.len() as u64));
    group.bench_function("nxlog json -> event -> json (OTRF records)", |b| {
        let mut buf = Vec::with_capacity(8192);
        b.iter(|| {
            for j in &json {
                buf.clear();
                normalise_json(black_box(j), &ctx).write_json(&mut buf);
                black_box(&buf);
            }
        })
    });
    group.throughput(Throughput::Elements(xml.len() as u64));
    group.sample_size(20);
    group.bench_function("evtx file -> xml -> event -> json (security.evtx)", |b| {
        let path = sample("evtx/security.evtx");
        let mut buf = Vec::with_capacity(8192);
        b.iter(|| {
            let mut p = evtx::EvtxParser::from_path(&path)
                .unwrap()
                .with_configuration(evtx::ParserSettings::new().num_threads(1));
            for r in p.records().flatten() {
                buf.clear();
                normalise_xml(&r.data, &ctx).write_json(&mut buf);
                black_box(&buf);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
