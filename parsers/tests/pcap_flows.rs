//! Flow records from the shared captures, held to the oracles in `samples/pcaps/ORACLE.md`
//! (tshark 4.0 conversations and Community IDs) and the Zeek `conn.log` baselines in
//! `samples/pcaps/expected/`.

mod pcaps;

use pcaps::{samples, CAPTURES};
use std::collections::{BTreeMap, BTreeSet};

use weir_parsers::packet::capture::{CaptureReader, Item};
use weir_parsers::packet::community_id::{community_id, icmp_ports};
use weir_parsers::packet::decode::{decode, Net, Transport};
use weir_parsers::packet::flow::{EndReason, FlowConfig, FlowRecord, FlowTable};

struct Run {
    records: Vec<FlowRecord<()>>,
    packets: u64,
}

fn run(path: &str, cfg: FlowConfig) -> Run {
    let bytes = std::fs::read(samples().join(path)).expect("capture");
    let mut reader = CaptureReader::new();
    let mut table: FlowTable<()> = FlowTable::new(cfg);
    let mut at = 0;
    let mut records = Vec::new();
    let mut packets = 0;
    while let Some((n, item)) = reader.next(&bytes[at..]).expect("well-formed capture") {
        at += n;
        if let Item::Packet(p) = item {
            packets += 1;
            let frame = decode(p.link, p.data).expect("decodable");
            if let Net::Ip(ip) = frame.net {
                table.packet(p.ts_nanos, &frame, &ip);
            }
            records.extend(table.drain());
        }
    }
    assert_eq!(at, bytes.len(), "{path}: trailing bytes");
    table.flush();
    records.extend(table.drain());
    Run { records, packets }
}

/// Timeouts long enough that no flow of these captures is split: one record per 5-tuple, as
/// tshark's conversation tables count them.
fn unsplit() -> FlowConfig {
    FlowConfig {
        tcp_idle: i64::MAX / 4,
        udp_idle: i64::MAX / 4,
        other_idle: i64::MAX / 4,
        active_timeout: 0,
        ..FlowConfig::default()
    }
}

fn oracle(path: &str) -> BTreeMap<String, u64> {
    let name = path.replace('/', "_");
    let text = std::fs::read_to_string(
        samples()
            .join("oracle-community-id")
            .join(format!("{name}.tsv")),
    )
    .expect("oracle");
    text.lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols[5].to_string(), cols[6].parse().expect("count"))
        })
        .collect()
}

#[test]
fn community_ids_and_packet_counts_match_tshark_for_every_flow() {
    for path in CAPTURES {
        let run = run(path, unsplit());
        let mut ours: BTreeMap<String, u64> = BTreeMap::new();
        for r in &run.records {
            *ours.entry(r.flow.community_id.clone()).or_default() +=
                r.flow.stats[0].packets + r.flow.stats[1].packets;
        }
        assert_eq!(ours, oracle(path), "{path}");
        assert!(run.packets > 0);
    }
}

/// `tshark -q -z conv,tcp -z conv,udp` (ORACLE.md §1).
const CONVERSATIONS: &[(&str, usize, usize)] = &[
    ("bacnet/icsnpp_bacnet_example.pcap", 0, 91),
    ("dnp3/icsnpp_dnp3_example.pcap", 11, 0),
    ("dnp3/zeek_dnp3.pcap", 9, 0),
    ("dnp3/zeek_dnp3_select_operate.pcap", 1, 0),
    ("dnp3/zeek_dnp3_udp_read.pcap", 0, 1),
    ("edge/zeek_mixed-vlan-mpls.pcap", 3, 0),
    ("enip/icsnpp_enip_cip_example.pcap", 3, 1),
    ("enip/iti_cip_stop_plc.pcap", 1, 0),
    ("iec104/iti_TestDissectIec104.pcap", 6, 0),
    ("it/zeek_wikipedia.pcap", 10, 24),
    ("modbus/icsnpp_modbus_example.pcap", 2, 0),
    ("modbus/zeek_modbus-and-non-modbus-p502.pcap", 7, 0),
    ("modbus/zeek_modbusSmall.pcap", 16, 3),
    ("mqtt/zeek_mqtt.pcap", 2, 0),
    ("opcua/icsnpp_open62541_client-server_mainloop.pcap", 2, 2),
    ("s7comm/icsnpp_s7ident.pcap", 1, 0),
    ("s7comm/icsnpp_snap7.pcap", 1, 0),
    ("s7comm/iti_s7comm_downloading_block_db1.pcap", 4, 0),
];

#[test]
fn distinct_flows_equal_tshark_conversations() {
    assert_eq!(CONVERSATIONS.len(), CAPTURES.len());
    for (path, tcp, udp) in CONVERSATIONS {
        // With Weir's default timeouts: records may split (see below), distinct 5-tuples not.
        for cfg in [unsplit(), FlowConfig::default()] {
            let run = run(path, cfg);
            let distinct = |proto: u8| {
                run.records
                    .iter()
                    .filter(|r| r.flow.proto == proto)
                    .map(|r| r.flow.community_id.clone())
                    .collect::<BTreeSet<_>>()
                    .len()
            };
            assert_eq!((distinct(6), distinct(17)), (*tcp, *udp), "{path}");
        }
    }
}

#[test]
fn where_records_split_like_zeek() {
    // BACnet: Zeek writes 357 conn records for 91 UDP 5-tuples, because its 60 s UDP
    // inactivity timeout (Weir's default too) ends and restarts the periodic broadcasts.
    let bacnet = run("bacnet/icsnpp_bacnet_example.pcap", FlowConfig::default());
    let finals = |r: &Run| {
        r.records
            .iter()
            .filter(|r| r.reason != EndReason::ActiveTimeout)
            .count()
    };
    assert_eq!(finals(&bacnet), 357);
    // Eight BACnet polls outlive the default 300 s active timeout: each also gets one interim
    // record (Zeek writes none).
    assert_eq!(bacnet.records.len() - finals(&bacnet), 8);
    let unsplit_bacnet = run("bacnet/icsnpp_bacnet_example.pcap", unsplit());
    assert_eq!(unsplit_bacnet.records.len(), 91);
    // Port 502 with non-Modbus traffic: data after a RST starts a new connection (Zeek: 8
    // records for tshark's 7 conversations), with Zeek's states and histories.
    let p502 = run(
        "modbus/zeek_modbus-and-non-modbus-p502.pcap",
        FlowConfig::default(),
    );
    let rows: Vec<String> = p502
        .records
        .iter()
        .map(|r| {
            let f = &r.flow;
            format!(
                "{} {} {} {} {} {} {} {} {} {}",
                f.orig.ip,
                f.orig.port,
                f.resp.ip,
                f.resp.port,
                f.stats[0].payload_bytes,
                f.stats[1].payload_bytes,
                f.state(),
                f.history(),
                f.stats[0].packets,
                f.stats[1].packets
            )
        })
        .collect();
    let expected = conn_log("zeek/modbus-and-non-modbus-p502/conn.log");
    let mut rows_sorted = rows.clone();
    rows_sorted.sort();
    assert_eq!(rows_sorted, expected, "records: {rows:#?}");
}

/// `id.orig_h id.orig_p id.resp_h id.resp_p orig_bytes resp_bytes conn_state history
/// orig_pkts resp_pkts` of a Zeek conn.log, sorted.
fn conn_log(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(samples().join("expected").join(path)).expect("conn.log");
    let mut fields: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Some(f) = line.strip_prefix("#fields\t") {
            fields = f.split('\t').map(str::to_string).collect();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let get = |name: &str| -> String {
            let i = fields
                .iter()
                .position(|f| f == name)
                .unwrap_or_else(|| panic!("no {name}"));
            cols[i].to_string()
        };
        rows.push(format!(
            "{} {} {} {} {} {} {} {} {} {}",
            get("id.orig_h"),
            get("id.orig_p"),
            get("id.resp_h"),
            get("id.resp_p"),
            get("orig_bytes"),
            get("resp_bytes"),
            get("conn_state"),
            get("history"),
            get("orig_pkts"),
            get("resp_pkts")
        ));
    }
    rows.sort();
    rows
}

#[test]
fn modbus_example_flows_match_zeek_field_for_field() {
    let run = run("modbus/icsnpp_modbus_example.pcap", FlowConfig::default());
    let mut rows: Vec<String> = run
        .records
        .iter()
        .map(|r| {
            let f = &r.flow;
            format!(
                "{} {} {} {} {} {} {} {} {} {}",
                f.orig.ip,
                f.orig.port,
                f.resp.ip,
                f.resp.port,
                f.stats[0].payload_bytes,
                f.stats[1].payload_bytes,
                f.state(),
                f.history(),
                f.stats[0].packets,
                f.stats[1].packets
            )
        })
        .collect();
    rows.sort();
    assert_eq!(rows, conn_log("icsnpp-modbus/modbus_example/conn.log"));
    let main = run
        .records
        .iter()
        .find(|r| r.flow.orig.port == 47785)
        .expect("flow");
    assert_eq!(
        (main.flow.stats[0].ip_bytes, main.flow.stats[1].ip_bytes),
        (2900, 2897)
    );
    // Duration runs from the first packet to the last. Zeek's 0.006324 s stops at the last FIN
    // and leaves out the final ACK 4 µs later.
    assert_eq!(main.flow.last_ns - main.flow.first_ns, 6_328_000);
    assert!(main.flow.direction_known);
    let mid = run
        .records
        .iter()
        .find(|r| r.flow.orig.port == 37699)
        .expect("flow");
    assert!(!mid.flow.direction_known, "no handshake seen");
}

#[test]
fn community_id_spec_baselines_seed_0_and_1() {
    let dir = samples().join("community-id/spec");
    for (file, seed) in [("baseline_deflt.json", 0u16), ("baseline_seed1.json", 1)] {
        let text = std::fs::read_to_string(dir.join(file)).expect("baseline");
        let want: Vec<serde_json::Value> = serde_json::from_str(&text).expect("json");
        let want: BTreeSet<String> = want
            .iter()
            .map(|v| {
                format!(
                    "{} {} {} {} {} {}",
                    v["proto"], v["saddr"], v["daddr"], v["sport"], v["dport"], v["communityid"]
                )
            })
            .collect();
        let mut got = BTreeSet::new();
        for pcap in [
            "icmp.pcap",
            "icmp6.pcap",
            "ipv6.pcap",
            "rsvp.pcap",
            "sctp.pcap",
            "tcp.pcap",
            "udp.pcap",
        ] {
            let bytes = std::fs::read(dir.join(pcap)).expect("pcap");
            let mut reader = CaptureReader::new();
            let mut at = 0;
            while let Some((n, item)) = reader.next(&bytes[at..]).expect("capture") {
                at += n;
                let Item::Packet(p) = item else { continue };
                let Ok(frame) = decode(p.link, p.data) else {
                    continue;
                };
                let Net::Ip(ip) = frame.net else { continue };
                let (ports, one_way) = match ip.transport {
                    Transport::Icmp { kind, code } => {
                        let (s, d, one_way) = icmp_ports(ip.src.is_ipv6(), kind, code);
                        (Some((s, d)), one_way)
                    }
                    t => (t.ports(), false),
                };
                let id = community_id(seed, ip.src, ip.dst, ip.proto, ports, one_way);
                let port = |p: Option<u16>| p.map_or("null".to_string(), |p| p.to_string());
                got.insert(format!(
                    "{} \"{}\" \"{}\" {} {} \"{}\"",
                    ip.proto,
                    ip.src,
                    ip.dst,
                    port(ports.map(|p| p.0)),
                    port(ports.map(|p| p.1)),
                    id
                ));
            }
        }
        assert_eq!(got, want, "{file}");
    }
}
