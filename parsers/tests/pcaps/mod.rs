//! Shared by the capture tests: where the captures are and which ones the oracles cover.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `samples/pcaps`.
pub fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/pcaps")
}

/// Every capture of the oracle tables (ORACLE.md §1), by its path under `samples/pcaps`.
pub const CAPTURES: &[&str] = &[
    "bacnet/icsnpp_bacnet_example.pcap",
    "dnp3/icsnpp_dnp3_example.pcap",
    "dnp3/zeek_dnp3.pcap",
    "dnp3/zeek_dnp3_select_operate.pcap",
    "dnp3/zeek_dnp3_udp_read.pcap",
    "edge/zeek_mixed-vlan-mpls.pcap",
    "enip/icsnpp_enip_cip_example.pcap",
    "enip/iti_cip_stop_plc.pcap",
    "iec104/iti_TestDissectIec104.pcap",
    "it/zeek_wikipedia.pcap",
    "modbus/icsnpp_modbus_example.pcap",
    "modbus/zeek_modbus-and-non-modbus-p502.pcap",
    "modbus/zeek_modbusSmall.pcap",
    "mqtt/zeek_mqtt.pcap",
    "opcua/icsnpp_open62541_client-server_mainloop.pcap",
    "s7comm/icsnpp_s7ident.pcap",
    "s7comm/icsnpp_snap7.pcap",
    "s7comm/iti_s7comm_downloading_block_db1.pcap",
];
