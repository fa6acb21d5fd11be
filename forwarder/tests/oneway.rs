//! The one-way proof: agent and receiver in two network namespaces joined by a veth pair, as
//! they would be on either side of a hardware diode. The receiver's side answers no ARP, has
//! IPv6 off, and a firewall rule that drops (and counts) anything it tries to send towards the
//! agent; the link drops 1 % of datagrams at random (iptables `statistic`). A million events
//! are sent with default settings.
//!
//! Asserted: all 1,000,000 arrive, none twice; the receiver's interface transmitted zero
//! packets and its firewall rule never matched; the agent's side received nothing.
//!
//! Needs root, iproute2 and iptables (`scripts/test` installs them). If namespaces cannot be
//! created the test fails and says why: a one-way claim that was not checked is not a pass.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::*;

const EVENTS: usize = 1_000_000;

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| {
        panic!("ONE-WAY PROOF NOT RUN: cannot execute {args:?}: {e}. It needs root, iproute2 and iptables.")
    });
    assert!(
        out.status.success(),
        "ONE-WAY PROOF NOT RUN: {args:?} failed: {}. It needs root, iproute2 and iptables (scripts/test installs them).",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces and a veth pair; removed on drop.
struct Netns {
    ot: String,
    it: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.ot, &self.it] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

const OT_IP: &str = "169.254.77.1";
const IT_IP: &str = "169.254.77.2";

fn setup() -> (Netns, String) {
    let id = std::process::id();
    let n = Netns {
        ot: format!("weir-ot-{id}"),
        it: format!("weir-it-{id}"),
    };
    let (vot, vit) = (format!("wo{id}"), format!("wi{id}"));
    sh(&["ip", "netns", "add", &n.ot]);
    sh(&["ip", "netns", "add", &n.it]);
    sh(&[
        "ip", "link", "add", &vot, "type", "veth", "peer", "name", &vit,
    ]);
    sh(&["ip", "link", "set", &vot, "netns", &n.ot]);
    sh(&["ip", "link", "set", &vit, "netns", &n.it]);
    for (ns, dev, addr) in [(&n.ot, &vot, OT_IP), (&n.it, &vit, IT_IP)] {
        for key in ["all", "default", dev.as_str()] {
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
            ]);
        }
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        sh(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/30"),
            "dev",
            dev,
        ]);
    }
    // The agent's end behaves like a diode NIC without UDP segmentation offload: the kernel
    // cuts each GSO run into its datagrams before the device, so the loss rule below sees, and
    // drops, single datagrams as a real link would (a veth would otherwise carry a whole run of
    // ~44 datagrams as one packet, and iptables would drop it whole).
    sh(&[
        "ip",
        "-n",
        &n.ot,
        "link",
        "set",
        "dev",
        &vot,
        "gso_max_segs",
        "1",
    ]);
    // The receiver's side never answers ARP; the agent knows its address statically, as with
    // a real diode.
    sh(&["ip", "-n", &n.it, "link", "set", &vit, "arp", "off"]);
    sh(&["ip", "-n", &n.ot, "link", "set", &vot, "up"]);
    sh(&["ip", "-n", &n.it, "link", "set", &vit, "up"]);
    let link = sh(&["ip", "-n", &n.it, "-j", "link", "show", &vit]);
    let link: serde_json::Value = serde_json::from_str(&link).unwrap();
    let mac = link[0]["address"].as_str().unwrap().to_string();
    sh(&[
        "ip",
        "-n",
        &n.ot,
        "neigh",
        "replace",
        IT_IP,
        "lladdr",
        &mac,
        "dev",
        &vot,
        "nud",
        "permanent",
    ]);
    // Count (and drop) anything going back; drop 1 % of what comes in.
    sh(&[
        "ip", "netns", "exec", &n.it, "iptables", "-A", "OUTPUT", "-o", &vit, "-j", "DROP",
    ]);
    sh(&[
        "ip", "netns", "exec", &n.ot, "iptables", "-A", "INPUT", "-i", &vot, "-j", "DROP",
    ]);
    sh(&[
        "ip",
        "netns",
        "exec",
        &n.it,
        "iptables",
        "-A",
        "INPUT",
        "-i",
        &vit,
        "-p",
        "udp",
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        "0.01",
        "-j",
        "DROP",
    ]);
    (n, vit)
}

/// Packets matched by the rules of `chain` in `ns`, in order.
fn rule_packets(ns: &str, chain: &str) -> Vec<u64> {
    sh(&[
        "ip", "netns", "exec", ns, "iptables", "-L", chain, "-v", "-n", "-x",
    ])
    .lines()
    .skip(2)
    .filter_map(|l| l.split_whitespace().next()?.parse().ok())
    .collect()
}

fn tx_packets(ns: &str, dev: &str) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(&sh(&["ip", "-n", ns, "-s", "-j", "link", "show", dev])).unwrap();
    v[0]["stats64"]["tx"]["packets"].as_u64().unwrap()
}

#[test]
fn a_million_events_cross_a_lossy_one_way_link_and_nothing_goes_back() {
    let (ns, vit) = setup();
    let dir = workdir();
    let rx_cfg = dir.path().join("rx.toml");
    std::fs::write(
        &rx_cfg,
        format!("{DIODE}\n[rx]\nlisten = \"{IT_IP}:7000\"\nstate_dir = \"rx-state\"\nreceive_buffer_bytes = 4194304\nqueue_blocks = 65536\nqueue_max_bytes = 4294967296\n\n[[sinks]]\ntype = \"file\"\npath = \"out/events.ndjson\"\nmax_bytes = 0\n"),
    )
    .unwrap();
    let tx_cfg = dir.path().join("tx.toml");
    std::fs::write(
        &tx_cfg,
        format!("[agent]\nname = \"ot-netns\"\n{DIODE}\n[tx]\ndestination = \"{IT_IP}:7000\"\nbind = \"{OT_IP}:0\"\nlink_rate_bits_per_second = 400000000\n\n[[sources]]\ntype = \"syslog_tcp\"\nname = \"plant\"\naddress = \"127.0.0.1:6514\"\nkeep_original = false\n"),
    )
    .unwrap();
    let rx = Proc::start_in(Some(&ns.it), &["rx"], &rx_cfg);
    let tx = Proc::start_in(Some(&ns.ot), &["tx"], &tx_cfg);

    // util-linux logger, inside the OT namespace, reads the messages from a file.
    let input = dir.path().join("input.txt");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    for n in 0..EVENTS {
        writeln!(f, "load n={n:07} pump station 3 flow nominal").unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let status = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.ot,
            "logger",
            "--tcp",
            "--octet-count",
            "--rfc5424",
            "--server",
            "127.0.0.1",
            "--port",
            "6514",
            "--tag",
            "load",
            "-f",
        ])
        .arg(&input)
        .status()
        .unwrap();
    assert!(status.success(), "logger failed");

    let _ = wait_for_syslog(dir.path(), EVENTS, Duration::from_secs(600));
    let (tx_ok, tx_summary, _) = tx.stop();
    std::thread::sleep(Duration::from_millis(700));
    let (rx_ok, rx_summary, rx_log) = rx.stop();
    assert!(tx_ok && rx_ok, "{rx_log}");

    let text = std::fs::read_to_string(dir.path().join("out/events.ndjson")).unwrap();
    let mut seen = vec![false; EVENTS];
    let mut count = 0;
    for line in text.lines().filter(|l| l.contains("\"class\":\"syslog\"")) {
        let at = line.find("load n=").expect("message present") + 7;
        let n: usize = line[at..at + 7].parse().unwrap();
        assert!(!seen[n], "event {n} delivered twice");
        seen[n] = true;
        count += 1;
    }
    let dropped_by_link = rule_packets(&ns.it, "INPUT")[0];
    assert_eq!(count, EVENTS, "tx: {tx_summary}\nrx: {rx_summary}");
    assert!(dropped_by_link > 0, "the link really lost datagrams");
    assert_eq!(rx_summary["diode_gaps_total"], 0);
    assert!(rx_summary["diode_blocks_repaired_total"].as_u64().unwrap() > 0);
    // One way: the receiver's interface sent nothing, its firewall never had to stop anything,
    // and nothing arrived at the agent's side.
    assert_eq!(
        tx_packets(&ns.it, &vit),
        0,
        "packets transmitted by the receiver's interface"
    );
    assert_eq!(
        rule_packets(&ns.it, "OUTPUT"),
        vec![0],
        "packets the receiver's side tried to send"
    );
    assert_eq!(
        rule_packets(&ns.ot, "INPUT"),
        vec![0],
        "packets that reached the agent's side"
    );
    eprintln!(
        "one-way proof: {count} events delivered, {dropped_by_link} datagrams dropped by the link (1 %), {} blocks repaired, 0 packets back",
        rx_summary["diode_blocks_repaired_total"]
    );
}
