//! Windows event normalisation throughput, per core: `cargo bench -p weir-parsers --bench windows`.
//!
//! * "xml": rendered event XML (as WEF, `wevtutil` and the `evtx` crate produce it) → ECS event
//!   → canonical JSON: the agent's work per forwarded event.
//! * "nxlog json": an NXLog-style JSON line → ECS event → canonical JSON.
//! * "wef envelope": the same records in Windows Event Forwarding `Events` envelopes of 100,
//!   UTF-16: the WEC endpoint's pure work (body decoding and envelope alone, then with every
//!   event normalised).
//! * "evtx file": a whole `.evtx` file read by the `evtx` crate (binary XML rendered to XML)
//!   and normalised as the `evtx_directory` source does (`windows::rendered_record_event`):
//!   the source's work per record (and the same without the JSON step).
//!
//! Records come from the real logs in samples/windows (security.evtx: 2,261 Security events),
//! rendered as the `evtx_directory` source renders them: compact, as Windows renders event XML
//! (no indentation, no `<?xml?>` declaration; 1,148 bytes a record on average). One case keeps
//! the `evtx` crate's indented default (1,329 bytes), the form the figures before 2026-12-07
//! were measured on.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use weir_parsers::windows::{normalise_json, normalise_xml, rendered_record_event, WinContext};
use weir_parsers::winxml::strip_declaration;
use weir_parsers::wsman::envelope;
use weir_parsers::wsman::text::{self, Charset};

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
    // As the evtx_directory source renders records (weir::sources::evtx::settings).
    let compact = || evtx::ParserSettings::new().num_threads(1).indent(false);
    let mut parser = evtx::EvtxParser::from_path(sample("evtx/security.evtx"))
        .unwrap()
        .with_configuration(compact());
    let xml: Vec<String> = parser
        .records()
        .flatten()
        .map(|r| strip_declaration(&r.data).to_owned())
        .collect();
    let mut parser = evtx::EvtxParser::from_path(sample("evtx/security.evtx")).unwrap();
    let indented: Vec<String> = parser.records().flatten().map(|r| r.data).collect();
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
    group.bench_function(
        "indented xml -> event -> json (security.evtx records)",
        |b| {
            let mut buf = Vec::with_capacity(8192);
            b.iter(|| {
                for x in &indented {
                    buf.clear();
                    normalise_xml(black_box(x), &ctx).write_json(&mut buf);
                    black_box(&buf);
                }
            })
        },
    );
    // The two halves of the first line, apart: normalising alone, then serialising alone.
    group.bench_function("xml -> event (security.evtx records)", |b| {
        b.iter(|| {
            for x in &xml {
                black_box(normalise_xml(black_box(x), &ctx));
            }
        })
    });
    // The reading alone: the document into the record the mapping reads (`winxml::parse`).
    group.bench_function("xml -> record (security.evtx records)", |b| {
        b.iter(|| {
            for x in &xml {
                black_box(weir_parsers::winxml::parse(black_box(x)).ok());
            }
        })
    });
    let events: Vec<_> = xml.iter().map(|x| normalise_xml(x, &ctx)).collect();
    group.bench_function("event -> json (security.evtx records)", |b| {
        let mut buf = Vec::with_capacity(8192);
        b.iter(|| {
            for e in &events {
                buf.clear();
                black_box(e).write_json(&mut buf);
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
    // Windows Event Forwarding: the same records in Events envelopes of 100, UTF-16 as
    // Windows sends them; the WEC endpoint's pure work per batch (body decoding, envelope,
    // then every event as above).
    let envelopes: Vec<Vec<u8>> = xml
        .chunks(100)
        .map(|chunk| {
            let mut e = String::from(concat!(
                "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" xmlns:w=\"http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd\">",
                "<s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/Events</a:Action><a:MessageID>uuid:31652DEB-C9E8-45D6-B3E8-90AC64D48422</a:MessageID>",
                "<w:Bookmark><BookmarkList><Bookmark Channel=\"Security\" RecordId=\"1\" IsCurrent=\"true\"/></BookmarkList></w:Bookmark><w:AckRequested/></s:Header><s:Body><w:Events>"
            ));
            for x in chunk {
                e.push_str("<w:Event Action=\"http://schemas.dmtf.org/wbem/wsman/1/wsman/Event\"><![CDATA[");
                e.push_str(x);
                e.push_str("]]></w:Event>");
            }
            e.push_str("</w:Events></s:Body></s:Envelope>");
            text::encode(&e, Charset::Utf16Le)
        })
        .collect();
    group.throughput(Throughput::Elements(xml.len() as u64));
    group.bench_function(
        "wef envelope utf-16 -> envelope only (100 per batch)",
        |b| {
            b.iter(|| {
                for body in &envelopes {
                    let (t, _) = text::decode(black_box(body), None).unwrap();
                    black_box(envelope::parse(&t).unwrap());
                }
            })
        },
    );
    group.bench_function(
        "wef envelope utf-16 -> events -> json (100 per batch)",
        |b| {
            let mut buf = Vec::with_capacity(8192);
            b.iter(|| {
                for body in &envelopes {
                    let (t, _) = text::decode(black_box(body), None).unwrap();
                    for x in envelope::parse(&t).unwrap().events {
                        buf.clear();
                        normalise_xml(&x, &ctx).write_json(&mut buf);
                        black_box(&buf);
                    }
                }
            })
        },
    );
    group.throughput(Throughput::Elements(xml.len() as u64));
    group.sample_size(20);
    group.bench_function("evtx file -> xml -> event -> json (security.evtx)", |b| {
        let path = sample("evtx/security.evtx");
        let mut buf = Vec::with_capacity(8192);
        b.iter(|| {
            let mut p = evtx::EvtxParser::from_path(&path)
                .unwrap()
                .with_configuration(compact());
            for r in p.records().flatten() {
                buf.clear();
                rendered_record_event(r.data, r.event_record_id, None, &ctx).write_json(&mut buf);
                black_box(&buf);
            }
        })
    });
    // The same without the JSON step: the records read and normalised into events.
    group.bench_function("evtx file -> xml -> event (security.evtx)", |b| {
        let path = sample("evtx/security.evtx");
        b.iter(|| {
            let mut p = evtx::EvtxParser::from_path(&path)
                .unwrap()
                .with_configuration(compact());
            for r in p.records().flatten() {
                black_box(rendered_record_event(r.data, r.event_record_id, None, &ctx));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
