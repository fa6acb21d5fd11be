//! SPAN-port sensor throughput, packets per second on one core:
//! `cargo bench -p weir-parsers --bench sensor`.
//!
//! * "decode + flows": link/IP/transport decoding and the flow table (Community ID, TCP state,
//!   timeouts), nothing else.
//! * "sensor, flows + OT + assets + baseline": the whole sensor as a `span` source runs it;
//!   "events built" stops at the normalised `Event`s, "events to JSON" also serialises each one
//!   as the agent does before the diode.
//!
//! Inputs, loaded into memory first: the largest shared capture (BACnet, 3,257 packets) and
//! every OT capture together (Modbus, DNP3, S7comm, EtherNet/IP, IEC 104, OPC UA, MQTT;
//! 2,495 packets), each repeated 10 times with timestamps shifted so flows carry on.
#![allow(missing_docs, clippy::unwrap_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use weir_parsers::packet::capture::{CaptureReader, Item};
use weir_parsers::packet::decode::{decode, Net};
use weir_parsers::packet::flow::{FlowConfig, FlowTable};
use weir_parsers::packet::LinkType;
use weir_parsers::sensor::{Sensor, SensorConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Pkt = (i64, LinkType, Vec<u8>);

fn load(files: &[&str], repeat: usize) -> Vec<Pkt> {
    let mut once: Vec<Pkt> = Vec::new();
    for f in files {
        let bytes = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../samples/pcaps")
                .join(f),
        )
        .unwrap();
        let mut r = CaptureReader::new();
        let mut at = 0;
        let mut file: Vec<Pkt> = Vec::new();
        while let Ok(Some((n, item))) = r.next(&bytes[at..]) {
            at += n;
            if let Item::Packet(p) = item {
                file.push((p.ts_nanos, p.link, p.data.to_vec()));
            }
        }
        // Files follow one another in time.
        let base = once.last().map_or(0, |p| p.0 + 1_000_000_000);
        let first = file.first().map_or(0, |p| p.0);
        once.extend(file.into_iter().map(|(t, l, d)| (t - first + base, l, d)));
    }
    let span = once.last().map_or(0, |p| p.0) + 1_000_000_000;
    (0..repeat as i64)
        .flat_map(|i| {
            once.iter()
                .map(move |(t, l, d)| (t + i * span, *l, d.clone()))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let inputs = [
        (
            "bacnet x10",
            load(&["bacnet/icsnpp_bacnet_example.pcap"], 10),
        ),
        (
            "ot captures x10",
            load(
                &[
                    "modbus/icsnpp_modbus_example.pcap",
                    "modbus/zeek_modbusSmall.pcap",
                    "dnp3/icsnpp_dnp3_example.pcap",
                    "dnp3/zeek_dnp3.pcap",
                    "s7comm/icsnpp_snap7.pcap",
                    "s7comm/iti_s7comm_downloading_block_db1.pcap",
                    "enip/icsnpp_enip_cip_example.pcap",
                    "iec104/iti_TestDissectIec104.pcap",
                    "opcua/icsnpp_open62541_client-server_mainloop.pcap",
                    "mqtt/zeek_mqtt.pcap",
                ],
                10,
            ),
        ),
    ];
    let mut group = c.benchmark_group("sensor");
    for (name, pkts) in &inputs {
        group.throughput(Throughput::Elements(pkts.len() as u64));
        group.bench_function(format!("decode + flows ({name})"), |b| {
            b.iter(|| {
                let mut table: FlowTable<()> = FlowTable::new(FlowConfig::default());
                for (ts, link, data) in pkts {
                    if let Ok(frame) = decode(*link, data) {
                        if let Net::Ip(ip) = frame.net {
                            black_box(table.packet(*ts, &frame, &ip).map(|o| o.flow_id));
                        }
                    }
                    for r in table.drain() {
                        black_box(r.flow.id);
                    }
                }
                table.flush();
                black_box(table.drain().count())
            })
        });
        group.bench_function(
            format!("sensor, flows + OT + assets + baseline, events built ({name})"),
            |b| {
                b.iter(|| {
                    let mut s = Sensor::new(SensorConfig::default());
                    for (ts, link, data) in pkts {
                        s.packet(*ts, *link, data);
                        for e in s.drain() {
                            black_box(&e);
                        }
                    }
                    s.flush();
                    black_box(s.drain().count())
                })
            },
        );
        group.bench_function(
            format!("sensor, flows + OT + assets + baseline, events to JSON ({name})"),
            |b| {
                let mut buf = Vec::with_capacity(1 << 16);
                b.iter(|| {
                    let mut s = Sensor::new(SensorConfig::default());
                    for (ts, link, data) in pkts {
                        s.packet(*ts, *link, data);
                        for e in s.drain() {
                            buf.clear();
                            e.write_json(&mut buf);
                            black_box(&buf);
                        }
                    }
                    s.flush();
                    black_box(s.drain().count())
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
