//! The receiver delivering to a SIEM, with real processes: `weir tx` → diode → `weir rx` →
//! Splunk HEC (the in-process model of `weir_integrations::testing`, which follows Splunk's
//! documented endpoints and status codes).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use weir_integrations::testing::{EsServer, HecServer, TansuBroker};

const TOKEN: &str = "8c5b6e1a-0d3f-4c4e-9a57-2f1e6b0c9d11";

fn rx_hec_config(dir: &Path, diode: u16, hec: &HecServer, metrics: u16) -> PathBuf {
    rx_siem_config(dir, diode, hec, None, None, metrics)
}

fn rx_siem_config(
    dir: &Path,
    diode: u16,
    hec: &HecServer,
    es: Option<&EsServer>,
    kafka: Option<&TansuBroker>,
    metrics: u16,
) -> PathBuf {
    let kafka = kafka.map_or(String::new(), |k| {
        format!(
            r#"
[[sinks]]
type = "kafka"
name = "kafka"
brokers = "{}"
key = "stream"

[sinks.batch]
max_events = 1000
max_age_milliseconds = 100
"#,
            k.addr
        )
    });
    let es = es.map_or(String::new(), |es| {
        write_private(&dir.join("es.key"), "d2Vpcjpzb2MtYXBpLWtleQ==\n");
        format!(
            r#"
[[sinks]]
type = "elasticsearch"
name = "elastic"
endpoint = "{}"
namespace = "plant_a"
api_key_file = "es.key"
allow_insecure_http = true
install_template = true

[sinks.batch]
max_events = 1000
max_age_milliseconds = 100
"#,
            es.url()
        )
    });
    write_private(&dir.join("hec.token"), &format!("{TOKEN}\n"));
    let text = format!(
        r#"{DIODE}
[rx]
listen = "127.0.0.1:{diode}"
state_dir = "state"
receive_buffer_bytes = 4194304
reorder_timeout_milliseconds = 300

[[sinks]]
type = "splunk_hec"
name = "splunk"
endpoint = "{url}"
token_file = "hec.token"
allow_insecure_http = true
index = "ot"
acknowledgements = true
ack_timeout_seconds = 10

[sinks.class_metadata.weir]
index = "weir_health"

[sinks.batch]
max_events = 1000
max_age_milliseconds = 100

{es}
{kafka}
[metrics]
listen = "127.0.0.1:{metrics}"
"#,
        url = hec.url()
    );
    let path = dir.join("rx.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A secret file as an operator leaves it (mode 0600).
fn write_private(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn send(tcp: u16, conn: usize, from: usize, to: usize) {
    let mut s = std::io::BufWriter::new(TcpStream::connect(("127.0.0.1", tcp)).unwrap());
    for n in from..to {
        let msg = format!(
            "<134>1 2026-01-01T00:00:00.000Z rtu-{conn} scada - - - conn={conn} n={n:06} breaker 52-{conn} status closed"
        );
        write!(s, "{} {msg}", msg.len()).unwrap();
    }
    s.flush().unwrap();
}

/// (conn, n) → times stored in the model HEC; syslog events only.
fn stored(hec: &HecServer) -> HashMap<(usize, usize), usize> {
    let s = hec.state.lock().unwrap();
    let mut m = HashMap::new();
    for e in &s.events {
        if e["event"]["weir"]["class"] != "syslog" {
            continue;
        }
        let msg = e["event"]["message"].as_str().unwrap();
        let conn = msg[5..6].parse().unwrap();
        let n = msg[9..15].parse().unwrap();
        *m.entry((conn, n)).or_insert(0) += 1;
    }
    m
}

/// (conn, n) → times found in Kafka's `weir.syslog` topic: read until `want` distinct events
/// are seen and then nothing more comes for two seconds (so duplicates are counted too).
fn kafka_syslog(addr: &str, want: usize) -> HashMap<String, usize> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "weir-e2e")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    let md = consumer
        .fetch_metadata(Some("weir.syslog"), Duration::from_secs(10))
        .unwrap();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset("weir.syslog", p.id(), rdkafka::Offset::Beginning)
                .unwrap();
        }
    }
    consumer.assign(&tpl).unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline
        && (seen.len() < want || quiet_since.elapsed() < Duration::from_secs(2))
    {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap();
        let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
        let msg = v["message"].as_str().unwrap();
        *seen.entry(msg[..15].to_owned()).or_insert(0) += 1;
        quiet_since = Instant::now();
    }
    seen
}

fn metric(port: u16, series: &str) -> u64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| v.parse().unwrap())
}

fn wait(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_hundred_thousand_events_reach_splunk_elasticsearch_and_kafka_through_outages() {
    const TOPICS: [&str; 2] = ["weir.syslog", "weir.weir"];
    let kafka = TansuBroker::start(&TOPICS).expect("tansu starts");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hec = rt.block_on(HecServer::start(TOKEN)).unwrap();
    let es = rt.block_on(EsServer::start()).unwrap();
    {
        let mut s = es.state.lock().unwrap();
        s.throttle_a_third = true;
        s.fail_requests = 5;
    }
    let dir = workdir();
    let (diode, tcp, metrics) = (free_udp(), free_tcp(), free_tcp());
    let rx = Proc::start(
        &["rx"],
        &rx_siem_config(dir.path(), diode, &hec, Some(&es), Some(&kafka), metrics),
    );
    let sources = format!(
        "[[sources]]\ntype = \"syslog_tcp\"\nname = \"rtu\"\naddress = \"127.0.0.1:{tcp}\"\n"
    );
    let tx = Proc::start(&["tx"], &tx_config(dir.path(), diode, &sources));
    tx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], tcp)));

    // Half the stream, then Splunk is busy (503, code 9) for 60 seconds and the Kafka broker is
    // killed (SIGKILL) while the other half arrives: it waits in the receiver's disk buffers.
    // The broker keeps its log in memory, so what it held dies with it: the first half is read
    // from it before the kill, the rest from the restarted broker.
    let senders: Vec<_> = (0..4)
        .map(|c| std::thread::spawn(move || send(tcp, c, 0, 12_500)))
        .collect();
    senders.into_iter().for_each(|s| s.join().unwrap());
    wait("the first half in Splunk", Duration::from_secs(120), || {
        stored(&hec).len() >= 50_000
    });
    let kafka_first = kafka_syslog(&kafka.addr, 50_000);
    assert_eq!(kafka_first.len(), 50_000, "the first half in Kafka");
    let kafka_port = kafka.port();
    drop(kafka);
    hec.state.lock().unwrap().busy_until = Some(Instant::now() + Duration::from_secs(60));
    let senders: Vec<_> = (0..4)
        .map(|c| std::thread::spawn(move || send(tcp, c, 12_500, 25_000)))
        .collect();
    senders.into_iter().for_each(|s| s.join().unwrap());
    std::thread::sleep(Duration::from_secs(15));
    let kafka = TansuBroker::start_on(kafka_port, &TOPICS).expect("tansu restarts");
    wait(
        "the second half in the buffer",
        Duration::from_secs(60),
        || metric(metrics, "weir_events_sent_total{class=\"syslog\"}") >= 100_000,
    );
    assert!(stored(&hec).len() < 100_000, "Splunk was busy");
    wait("everything in Splunk", Duration::from_secs(120), || {
        stored(&hec).len() >= 100_000
    });
    let es_syslog = |es: &EsServer| {
        es.state
            .lock()
            .unwrap()
            .docs
            .keys()
            .filter(|(i, _)| i == "logs-weir.syslog-plant_a")
            .count()
    };
    wait(
        "everything in Elasticsearch",
        Duration::from_secs(120),
        || es_syslog(&es) >= 100_000,
    );

    let (_, tx_summary, _) = tx.stop();
    std::thread::sleep(Duration::from_millis(500));
    let (_, rx_summary, _) = rx.stop();
    let got = stored(&hec);
    assert_eq!(got.len(), 100_000, "tx: {tx_summary}\nrx: {rx_summary}");
    let duplicated = got.values().filter(|&&c| c > 1).count();
    assert_eq!(duplicated, 0, "each once; rx: {rx_summary}");
    let sink = &rx_summary["sink"]["splunk"];
    assert_eq!(sink["dead_lettered_total"], 0);
    assert_eq!(sink["buffer_dropped_total"], 0);
    assert!(
        sink["retries_total"].as_u64().unwrap() > 0,
        "the outage was retried: {sink}"
    );
    let s = hec.state.lock().unwrap();
    assert!(s.answers.contains(&503));
    // Routing metadata per class: syslog to `ot`, Weir's own events to `weir_health`.
    let syslog = s
        .events
        .iter()
        .find(|e| e["event"]["weir"]["class"] == "syslog")
        .unwrap();
    assert_eq!(syslog["index"], "ot");
    assert_eq!(syslog["sourcetype"], "weir:syslog");
    let conn = &syslog["event"]["message"].as_str().unwrap()[5..6];
    assert_eq!(syslog["host"], format!("rtu-{conn}"));
    assert_eq!(syslog["fields"]["weir.stream"], "rtu");
    let session = s
        .events
        .iter()
        .find(|e| e["event"]["event"]["action"] == "diode-session-started")
        .unwrap();
    assert_eq!(session["index"], "weir_health");
    drop(s);

    // Elasticsearch: exactly once by `_id`, through 429 on a third of the items and 503s.
    let e = es.state.lock().unwrap();
    let mut seen = std::collections::HashSet::new();
    for ((index, _), doc) in &e.docs {
        if index == "logs-weir.syslog-plant_a" {
            let m = doc["message"].as_str().unwrap();
            assert!(seen.insert(m[..15].to_owned()), "stored twice: {m}");
        }
    }
    assert_eq!(seen.len(), 100_000);
    assert!(e.item_statuses.iter().filter(|&&c| c == 429).count() > 30_000);
    assert_eq!(e.answers.iter().filter(|&&c| c == 503).count(), 5);
    assert_eq!(
        e.requests.first().map(String::as_str),
        Some("PUT /_ingest/pipeline/weir@ingest"),
        "the assets before any document"
    );
    assert_eq!(
        e.requests.iter().position(|r| r == "POST /_bulk"),
        Some(4),
        "pipeline, two component templates and the index template, then documents"
    );
    assert!(
        e.docs.keys().any(|(i, _)| i == "logs-weir.weir-plant_a"),
        "weir events in their own data stream"
    );
    drop(e);
    let elastic = &rx_summary["sink"]["elastic"];
    assert_eq!(elastic["dead_lettered_total"], 0, "{elastic}");
    assert_eq!(elastic["buffer_dropped_total"], 0, "{elastic}");

    // Kafka: every event at least once across the broker's two lives; duplicates counted.
    let mut consumed = kafka_first;
    for (k, n) in kafka_syslog(&kafka.addr, 50_000) {
        *consumed.entry(k).or_insert(0) += n;
    }
    assert_eq!(consumed.len(), 100_000, "every event in Kafka");
    let duplicates: usize = consumed.values().map(|c| c - 1).sum();
    eprintln!("kafka through a broker kill: 100000 events, {duplicates} duplicates");
    let k = &rx_summary["sink"]["kafka"];
    assert!(
        k["retries_total"].as_u64().unwrap() > 0,
        "deliveries failed while the broker was down and were retried: {k}"
    );
    assert_eq!(k["dead_lettered_total"], 0, "{k}");
    assert_eq!(k["buffer_dropped_total"], 0, "{k}");
    drop(rt);
}

#[test]
fn a_receiver_killed_with_sigkill_loses_nothing_it_had_taken() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hec = rt.block_on(HecServer::start(TOKEN)).unwrap();
    let dir = workdir();
    let (diode, tcp, metrics) = (free_udp(), free_tcp(), free_tcp());
    let rx_cfg = rx_hec_config(dir.path(), diode, &hec, metrics);
    let rx = Proc::start(&["rx"], &rx_cfg);
    let sources = format!(
        "[[sources]]\ntype = \"syslog_tcp\"\nname = \"rtu\"\naddress = \"127.0.0.1:{tcp}\"\n"
    );
    let tx = Proc::start(&["tx"], &tx_config(dir.path(), diode, &sources));
    tx.wait_tcp(SocketAddr::from(([127, 0, 0, 1], tcp)));

    // Splunk is busy, so what the receiver takes waits in its disk buffer; then kill -9.
    hec.state.lock().unwrap().busy_until = Some(Instant::now() + Duration::from_secs(3600));
    send(tcp, 0, 0, 20_000);
    wait(
        "the receiver to take everything",
        Duration::from_secs(60),
        || metric(metrics, "weir_events_sent_total{class=\"syslog\"}") >= 20_000,
    );
    let pid = rx.pid().to_string();
    assert!(Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap()
        .success());
    drop(rx);
    let inspect = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["buffer", "inspect"])
        .arg(dir.path().join("state/buffers/splunk"))
        .output()
        .unwrap();
    assert!(inspect.status.success());
    let report: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert!(report["records"].as_u64().unwrap() >= 20_000, "{report}");
    assert_eq!(report["corrupt_records"], 0);
    assert!(report["oldest_event_age_seconds"].as_f64().unwrap() >= 0.0);

    // Restart: the buffer is delivered once Splunk is back; then more events flow.
    hec.state.lock().unwrap().busy_until = None;
    let rx = Proc::start(&["rx"], &rx_cfg);
    wait(
        "the buffered events in Splunk",
        Duration::from_secs(60),
        || stored(&hec).len() >= 20_000,
    );
    // Heartbeats resynchronise the restarted receiver with the running session.
    std::thread::sleep(Duration::from_millis(600));
    send(tcp, 1, 0, 5_000);
    wait(
        "the later events in Splunk",
        Duration::from_secs(60),
        || stored(&hec).len() >= 25_000,
    );
    let (_, _, _) = tx.stop();
    let (_, rx_summary, _) = rx.stop();
    let got = stored(&hec);
    for n in 0..20_000 {
        assert!(
            got.contains_key(&(0, n)),
            "event {n} taken before the kill is missing"
        );
    }
    for n in 0..5_000 {
        assert!(
            got.contains_key(&(1, n)),
            "event {n} after the restart is missing"
        );
    }
    let duplicates: usize = got.values().map(|c| c - 1).sum();
    // Splunk stored nothing while busy: nothing was in flight to be duplicated.
    assert_eq!(duplicates, 0, "rx: {rx_summary}");
    drop(rt);
}
