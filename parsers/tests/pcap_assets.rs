//! Asset inventory and baseline notables over the shared captures.

mod pcaps;

use pcaps::samples;
use std::collections::BTreeSet;

use serde_json::Value;
use weir_parsers::packet::capture::{CaptureReader, Item};
use weir_parsers::sensor::baseline::Baseline;
use weir_parsers::sensor::{Sensor, SensorConfig};

fn run(path: &str, cfg: SensorConfig, baseline: Baseline) -> (Vec<Value>, Baseline) {
    let bytes = std::fs::read(samples().join(path)).expect("capture");
    let mut reader = CaptureReader::new();
    let mut sensor = Sensor::with_state(cfg, None, baseline);
    let mut at = 0;
    while let Ok(Some((n, item))) = reader.next(&bytes[at..]) {
        at += n;
        if let Item::Packet(p) = item {
            sensor.packet(p.ts_nanos, p.link, p.data);
        }
    }
    sensor.flush();
    let events = sensor
        .drain()
        .map(|e| serde_json::from_slice(&e.to_json()).expect("json"))
        .collect();
    (events, sensor.baseline().clone())
}

fn assets(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["weir"]["class"] == "asset")
        .collect()
}

/// The last event written for `ip`: what the inventory knows at the end.
fn last<'a>(events: &'a [Value], ip: &str) -> &'a Value {
    assets(events)
        .into_iter()
        .rfind(|e| e["host"]["ip"][0] == ip)
        .expect("asset")
}

#[test]
fn an_s7_plc_is_identified_from_szl() {
    let (events, _) = run(
        "s7comm/icsnpp_s7ident.pcap",
        SensorConfig::default(),
        Baseline::default(),
    );
    let plc = last(&events, "172.17.0.2");
    assert_eq!(plc["device"]["model"]["name"], "CPU 315-2 PN/DP");
    assert_eq!(plc["device"]["serial_number"], "S C-C2UR28922012");
    assert_eq!(plc["device"]["type"], "controller");
    assert_eq!(
        plc["asset"]["identity"]["s7comm.automation_system_name"],
        "SNAP7-SERVER"
    );
    let roles: BTreeSet<&str> = plc["asset"]["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(roles.contains("s7comm:plc"), "{roles:?}");
    assert_eq!(plc["asset"]["reason"], "last_seen");
    assert_eq!(plc["event"]["kind"], "asset");
}

#[test]
fn a_cip_adapter_is_identified_from_list_identity() {
    let (events, _) = run(
        "enip/icsnpp_enip_cip_example.pcap",
        SensorConfig::default(),
        Baseline::default(),
    );
    let a = last(&events, "10.1.1.164");
    assert_eq!(
        a["device"]["manufacturer"],
        "Rockwell Automation/Allen-Bradley"
    );
    assert_eq!(a["device"]["vendor"]["id"], "1");
    assert_eq!(a["device"]["model"]["name"], "1756-ENBT/A");
    assert_eq!(a["device"]["product"]["id"], "58");
    assert_eq!(a["device"]["serial_number"], "0x00524d8e");
    assert!(a["asset"]["firmware"].is_string());
    assert!(a["host"]["mac"][0].is_string());
}

#[test]
fn bacnet_devices_and_every_local_address_become_assets() {
    let (events, _) = run(
        "bacnet/icsnpp_bacnet_example.pcap",
        SensorConfig::default(),
        Baseline::default(),
    );
    let new: BTreeSet<&str> = assets(&events)
        .iter()
        .filter(|e| e["asset"]["reason"] == "new")
        .filter_map(|e| e["host"]["ip"][0].as_str())
        .collect();
    // tshark: 40 distinct source addresses, all in 172.20.32.0/24; broadcasts are not assets.
    assert_eq!(new.len(), 40, "{new:?}");
    assert!(!new.contains("172.20.32.255"));
    let devices = assets(&events)
        .iter()
        .filter(|e| e["asset"]["identity"]["bacnet.device_instance"].is_string())
        .count();
    assert!(devices > 0);
}

#[test]
fn only_plant_addresses_are_assets() {
    // modbus_example: 127.0.0.1 (loopback) and 3.15.227.20 (internet) are not plant assets.
    let (events, _) = run(
        "modbus/icsnpp_modbus_example.pcap",
        SensorConfig::default(),
        Baseline::default(),
    );
    let ips: BTreeSet<&str> = assets(&events)
        .iter()
        .filter_map(|e| e["host"]["ip"][0].as_str())
        .collect();
    assert_eq!(ips, BTreeSet::from(["192.168.1.6"]));
}

#[test]
fn after_learning_new_functions_raise_notables_once_and_a_saved_baseline_silences_them() {
    // A 1 ns learning window: the first asset starts it, and everything met later is new.
    let cfg = SensorConfig {
        baseline_learning: 1,
        read_summary: 0,
        ..SensorConfig::default()
    };
    let (events, baseline) = run("dnp3/icsnpp_dnp3_example.pcap", cfg, Baseline::default());
    let notables = |evs: &[Value], action: &str| {
        evs.iter()
            .filter(|e| e["event"]["action"] == action)
            .cloned()
            .collect::<Vec<Value>>()
    };
    // The two addresses and their one conversation (port 20000) were met in the first packet.
    assert_eq!(notables(&events, "new_asset").len(), 0);
    assert_eq!(notables(&events, "new_conversation").len(), 0);
    let functions: BTreeSet<String> = notables(&events, "new_function")
        .iter()
        .map(|e| e["ot"]["function"].as_str().unwrap_or("?").to_string())
        .collect();
    let all: BTreeSet<String> = events
        .iter()
        .filter(|e| e["weir"]["class"] == "ot")
        .map(|e| e["ot"]["function"].as_str().unwrap_or("?").to_string())
        .collect();
    // Every function but the very first one seen is new once.
    assert_eq!(notables(&events, "new_function").len(), functions.len());
    assert_eq!(functions.len() + 1, all.len(), "{functions:?} vs {all:?}");
    assert_eq!(baseline.conversations.len(), 1);
    assert_eq!(baseline.assets.len(), 2);

    // The same traffic against the saved baseline (a restarted agent): nothing is new.
    let saved: Baseline =
        serde_json::from_str(&serde_json::to_string(&baseline).expect("save")).expect("load");
    let (again, _) = run("dnp3/icsnpp_dnp3_example.pcap", cfg, saved);
    for action in ["new_asset", "new_conversation", "new_function"] {
        assert_eq!(notables(&again, action).len(), 0, "{action}");
    }
}

#[test]
fn a_new_conversation_after_learning_is_notable() {
    // The port-502 capture: 10.0.0.9 -> 10.0.0.3 first (learnt), then six internet clients
    // reach the plant's 192.168.10.111 and .113 on port 502 (one of them twice, after a reset:
    // one conversation).
    let cfg = SensorConfig {
        baseline_learning: 1,
        ..SensorConfig::default()
    };
    let (events, _) = run(
        "modbus/zeek_modbus-and-non-modbus-p502.pcap",
        cfg,
        Baseline::default(),
    );
    let convs: Vec<String> = events
        .iter()
        .filter(|e| e["event"]["action"] == "new_conversation")
        .map(|e| {
            format!(
                "{} {}",
                e["destination"]["ip"].as_str().unwrap_or("?"),
                e["destination"]["port"]
            )
        })
        .collect();
    // Conversations: (client, server, port). The first flow's is learnt; the other clients'
    // conversations with the plant's servers on 502 are new.
    assert_eq!(convs.len(), 6, "{convs:?}");
    assert!(convs.iter().all(|c| c.ends_with(" 502")), "{convs:?}");
}

#[test]
fn last_seen_times_are_refreshed_hourly_on_a_live_source() {
    use weir_parsers::packet::LinkType;
    // ARP replies from 10.1.2.3 (MAC 00:0e:8c:01:02:03), at 0 s and then every 30 minutes.
    let arp = |sender_last: u8| {
        let mut f = vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x0e, 0x8c, 0x01, 0x02, 0x03, 0x08, 0x06,
        ];
        f.extend_from_slice(&[
            0,
            1,
            0x08,
            0x00,
            6,
            4,
            0,
            2,
            0x00,
            0x0e,
            0x8c,
            0x01,
            0x02,
            0x03,
            10,
            1,
            2,
            sender_last,
        ]);
        f.extend_from_slice(&[0; 10]);
        f
    };
    let oui = weir_parsers::sensor::assets::parse_oui("00-0E-8C   (hex)\t\tSiemens AG\n");
    let mut s = Sensor::with_state(
        SensorConfig::default(),
        Some(std::sync::Arc::new(oui)),
        Baseline::default(),
    );
    let half_hour = 1_800_000_000_000i64;
    let mut reasons = Vec::new();
    for i in 0..5 {
        s.packet(i * half_hour, LinkType::Ethernet, &arp(3));
        for e in s.drain() {
            let v: Value = serde_json::from_slice(&e.to_json()).expect("json");
            reasons.push(format!(
                "{} {}",
                v["asset"]["reason"].as_str().unwrap_or("?"),
                v["asset"]["mac_vendor"].as_str().unwrap_or("-")
            ));
        }
    }
    // New at 0 s; refreshed at 1 h and 2 h (the hour counted from the first packet).
    assert_eq!(
        reasons,
        [
            "new Siemens AG",
            "last_seen Siemens AG",
            "last_seen Siemens AG"
        ]
    );
}
