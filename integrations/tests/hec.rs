//! The shared driver and the Splunk HEC sink against the in-process HEC model, over real HTTP
//! on loopback: exactly-once delivery from the disk buffer, an outage, a dead-lettered event,
//! and a crash in the middle.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use weir_integrations::buffer::{Config, DiskQueue, Overflow};
use weir_integrations::driver::{self, DriverConfig, SharedQueue, SinkStats};
use weir_integrations::envelope::Envelope;
use weir_integrations::hec::{Endpoint, HecConfig, HecSink, Metadata};
use weir_integrations::testing::HecServer;
use weir_schemas::{Event, EventClass};

const TOKEN: &str = "00000000-1111-2222-3333-444444444444";

fn event(n: usize) -> Event {
    let t =
        chrono::DateTime::from_timestamp_micros(1_763_800_000_000_000 + n as i64 * 1_001).unwrap();
    let mut e = Event::new(EventClass::Syslog, t);
    e.message = Some(format!("n={n:06} valve 4 opened by operator"));
    e.weir.agent = Some("zone-3".into());
    e.weir.stream = Some("plc".into());
    e.weir.sequence = Some(n as u64);
    e
}

fn hec_cfg(server: &HecServer, ack: bool) -> HecConfig {
    HecConfig {
        name: "splunk".into(),
        endpoint: server.url(),
        token: TOKEN.into(),
        kind: Endpoint::Event,
        gzip: true,
        metadata: vec![(
            "*".into(),
            Metadata {
                index: "ot".into(),
                sourcetype: "weir:{class}".into(),
                source: "weir:{agent}".into(),
                host: String::new(),
                send_original: false,
            },
        )],
        indexed_fields: true,
        ack,
        ack_timeout: Duration::from_secs(5),
        ca_file: None,
        timeout: Duration::from_secs(5),
    }
}

fn open(dir: &std::path::Path) -> Arc<SharedQueue> {
    SharedQueue::new(
        DiskQueue::open(
            dir,
            Config {
                max_bytes: 1 << 30,
                segment_bytes: 1 << 20,
                overflow: Overflow::DropNewest,
            },
        )
        .unwrap(),
    )
}

fn fill(q: &SharedQueue, range: std::ops::Range<usize>) {
    let mut g = q.queue.lock().unwrap();
    for n in range {
        g.append(&Envelope::record(&event(n)), 0).unwrap();
    }
    g.flush().unwrap();
    drop(g);
    q.notify.notify_one();
}

fn numbers(server: &HecServer) -> Vec<usize> {
    let s = server.state.lock().unwrap();
    s.events
        .iter()
        .map(|e| {
            e["event"]["message"].as_str().unwrap()[2..8]
                .parse()
                .unwrap()
        })
        .collect()
}

async fn wait_until(mut f: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn driver_cfg(dead: Option<std::path::PathBuf>) -> DriverConfig {
    DriverConfig {
        max_events: 500,
        max_age: Duration::from_millis(50),
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        dead_letter: dead,
        ..DriverConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_once_with_its_metadata_and_an_outage_only_delays_it() {
    let server = HecServer::start(TOKEN).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let stats = Arc::new(SinkStats::default());
    let cancel = CancellationToken::new();
    let sink = Arc::new(HecSink::new(hec_cfg(&server, true)).unwrap());
    assert!(sink.health_check().await);
    tokio::spawn(driver::run(
        sink,
        q.clone(),
        driver_cfg(None),
        stats.clone(),
        cancel.clone(),
    ));

    fill(&q, 0..10_000);
    wait_until(|| numbers(&server).len() >= 10_000, "the first 10,000").await;
    // Splunk busy for 2 seconds: the next events wait and then arrive.
    server.state.lock().unwrap().busy_until = Some(Instant::now() + Duration::from_secs(2));
    fill(&q, 10_000..20_000);
    wait_until(|| numbers(&server).len() >= 20_000, "all 20,000").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cancel.cancel();

    let mut got = numbers(&server);
    got.sort_unstable();
    assert_eq!(got.len(), 20_000, "no duplicates");
    assert!(
        got.iter().enumerate().all(|(i, n)| i == *n),
        "every event once"
    );
    let s = server.state.lock().unwrap();
    assert!(s.answers.contains(&503), "the outage happened");
    // Two requests in flight: batches may land in either order.
    let e = s
        .events
        .iter()
        .find(|e| e["event"]["weir"]["sequence"] == 0)
        .unwrap();
    assert_eq!(e["index"], "ot");
    assert_eq!(e["sourcetype"], "weir:syslog");
    assert_eq!(e["source"], "weir:zone-3");
    assert_eq!(e["fields"]["weir.agent"], "zone-3");
    assert_eq!(e["event"]["weir"]["sequence"], 0);
    // `time` is epoch seconds with the microseconds, exactly.
    let raw = serde_json::to_string(&e["time"]).unwrap();
    assert_eq!(raw, "1763800000.0");
    let e1 = s
        .events
        .iter()
        .find(|e| e["event"]["weir"]["sequence"] == 1)
        .unwrap();
    assert_eq!(
        serde_json::to_string(&e1["time"]).unwrap(),
        "1763800000.001001"
    );
    assert_eq!(stats.events_sent.load(Ordering::Relaxed), 20_000);
    assert!(stats.retries.load(Ordering::Relaxed) > 0);
    assert_eq!(stats.dead_lettered.load(Ordering::Relaxed), 0);
    assert_eq!(
        q.queue.lock().unwrap().records(),
        0,
        "everything acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_event_is_dead_lettered_with_splunks_reason_and_the_rest_of_its_batch_delivered()
{
    let server = HecServer::start(TOKEN).await.unwrap();
    server.state.lock().unwrap().reject_marker = Some("n=000123".into());
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir.path().join("buffer"));
    let dead = dir.path().join("dead-letter.ndjson");
    let stats = Arc::new(SinkStats::default());
    let cancel = CancellationToken::new();
    let sink = Arc::new(HecSink::new(hec_cfg(&server, false)).unwrap());
    tokio::spawn(driver::run(
        sink,
        q.clone(),
        driver_cfg(Some(dead.clone())),
        stats.clone(),
        cancel.clone(),
    ));
    fill(&q, 0..1_000);
    wait_until(
        || q.queue.lock().unwrap().records() == 0,
        "the queue to drain",
    )
    .await;
    cancel.cancel();
    let got = numbers(&server);
    assert_eq!(got.len(), 999);
    assert!(!got.contains(&123));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["reason"], "splunk code 6: Invalid data format");
    assert_eq!(lines[0]["sink"], "splunk");
    assert_eq!(lines[0]["event"]["weir"]["sequence"], 123);
    assert_eq!(stats.dead_lettered.load(Ordering::Relaxed), 1);
    assert_eq!(stats.events_sent.load(Ordering::Relaxed), 999);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_the_middle_loses_nothing_and_duplicates_at_most_the_batches_in_flight() {
    let server = HecServer::start(TOKEN).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = driver_cfg(None);
    let in_flight_max = cfg.max_events * cfg.concurrency;
    {
        let q = open(dir.path());
        let cancel = CancellationToken::new();
        let sink = Arc::new(HecSink::new(hec_cfg(&server, false)).unwrap());
        tokio::spawn(driver::run(
            sink,
            q.clone(),
            cfg.clone(),
            Arc::new(SinkStats::default()),
            cancel.clone(),
        ));
        fill(&q, 0..20_000);
        wait_until(|| numbers(&server).len() >= 5_000, "some delivery").await;
        // The crash: the driver stops dead, nothing more is acknowledged; the queue is
        // dropped without any orderly close.
        cancel.cancel();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let q = open(dir.path());
    let cancel = CancellationToken::new();
    let sink = Arc::new(HecSink::new(hec_cfg(&server, false)).unwrap());
    tokio::spawn(driver::run(
        sink,
        q.clone(),
        cfg.clone(),
        Arc::new(SinkStats::default()),
        cancel.clone(),
    ));
    wait_until(|| q.queue.lock().unwrap().records() == 0, "the rest").await;
    cancel.cancel();
    let got = numbers(&server);
    let mut unique = got.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique, (0..20_000).collect::<Vec<_>>(), "nothing lost");
    let duplicates = got.len() - unique.len();
    assert!(
        duplicates <= in_flight_max,
        "{duplicates} duplicates > {in_flight_max} in flight"
    );
}

/// A CA and a server certificate it signed for 127.0.0.1: (CA PEM, server cert PEM, key PEM).
fn test_pki(cn: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, cn);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "splunk-hec.test");
    leaf.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_configured_ca_is_trusted_and_nothing_else() {
    let (ca, cert, key) = test_pki("Weir test SOC CA");
    let (other_ca, _, _) = test_pki("Some other CA");
    let tls = weir_integrations::testing::tls_acceptor(&cert, &key).unwrap();
    let server = HecServer::start_tls(TOKEN, tls).await.unwrap();
    let endpoint = format!("https://{}", server.addr);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca).unwrap();
    std::fs::write(dir.path().join("other.pem"), &other_ca).unwrap();

    let run = |ca_file: Option<std::path::PathBuf>, buffer: &str, range: std::ops::Range<usize>| {
        let mut cfg = hec_cfg(&server, false);
        cfg.endpoint = endpoint.clone();
        cfg.ca_file = ca_file;
        let q = open(&dir.path().join(buffer));
        let stats = Arc::new(SinkStats::default());
        let cancel = CancellationToken::new();
        tokio::spawn(driver::run(
            Arc::new(HecSink::new(cfg).unwrap()),
            q.clone(),
            driver_cfg(None),
            stats.clone(),
            cancel.clone(),
        ));
        fill(&q, range);
        (q, stats, cancel)
    };
    // Signed by the configured CA: delivered.
    let (q, stats, cancel) = run(Some(dir.path().join("ca.pem")), "good", 0..1_000);
    wait_until(
        || q.queue.lock().unwrap().records() == 0,
        "delivery over TLS",
    )
    .await;
    cancel.cancel();
    let mut got = numbers(&server);
    got.sort_unstable(); // two requests in flight may land in either order
    assert_eq!(got, (0..1_000).collect::<Vec<_>>());
    assert_eq!(stats.retries.load(Ordering::Relaxed), 0);
    // Another CA, or only the system roots: the handshake fails, events wait, nothing is sent.
    for (ca_file, buffer) in [
        (Some(dir.path().join("other.pem")), "other"),
        (None, "system"),
    ] {
        let (q, stats, cancel) = run(ca_file, buffer, 1_000..1_100);
        wait_until(
            || stats.retries.load(Ordering::Relaxed) >= 3,
            "refused handshakes retried",
        )
        .await;
        cancel.cancel();
        assert_eq!(
            q.queue.lock().unwrap().records(),
            100,
            "{buffer}: still buffered"
        );
        assert_eq!(stats.dead_lettered.load(Ordering::Relaxed), 0);
    }
    assert_eq!(
        numbers(&server).len(),
        1_000,
        "nothing reached an untrusted server"
    );
}

/// Windows events as the Splunk Add-on for Microsoft Windows reads them: sourcetype
/// `XmlWinEventLog`, source `XmlWinEventLog:<channel>`, the event's XML as `_raw`; other classes
/// keep their JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_events_go_to_splunk_as_xml_win_event_log() {
    let server = HecServer::start(TOKEN).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let mut cfg = hec_cfg(&server, false);
    cfg.metadata.push((
        "windows".into(),
        Metadata {
            index: "wineventlog".into(),
            sourcetype: "XmlWinEventLog".into(),
            source: "XmlWinEventLog:{channel}".into(),
            host: String::new(),
            send_original: true,
        },
    ));
    let sink = Arc::new(HecSink::new(cfg).unwrap());
    let stats = Arc::new(SinkStats::default());
    let cancel = CancellationToken::new();
    tokio::spawn(driver::run(
        sink,
        q.clone(),
        driver_cfg(None),
        stats,
        cancel.clone(),
    ));

    let xml = "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-Security-Auditing'/><EventID>4624</EventID><Channel>Security</Channel><Computer>hmi01</Computer></System><EventData><Data Name='TargetUserName'>operator1</Data></EventData></Event>";
    let mut w = Event::new(
        EventClass::Windows,
        chrono::DateTime::from_timestamp(1_763_800_000, 0).unwrap(),
    );
    w.event.original = Some(xml.into());
    w.host = Some(weir_schemas::Host {
        name: Some("hmi01".into()),
        ..Default::default()
    });
    w.winlog = Some(Box::new(weir_schemas::Winlog {
        channel: Some("Security".into()),
        event_id: "4624".into(),
        ..Default::default()
    }));
    {
        let mut g = q.queue.lock().unwrap();
        g.append(&Envelope::record(&w), 0).unwrap();
        g.append(&Envelope::record(&event(1)), 0).unwrap();
        g.flush().unwrap();
    }
    q.notify.notify_one();
    wait_until(
        || server.state.lock().unwrap().events.len() >= 2,
        "both events",
    )
    .await;
    cancel.cancel();
    let s = server.state.lock().unwrap();
    let win = s
        .events
        .iter()
        .find(|e| e["sourcetype"] == "XmlWinEventLog")
        .unwrap();
    assert_eq!(win["event"], xml, "the XML itself is the event");
    assert_eq!(win["source"], "XmlWinEventLog:Security");
    assert_eq!(win["index"], "wineventlog");
    assert_eq!(win["host"], "hmi01");
    let syslog = s
        .events
        .iter()
        .find(|e| e["sourcetype"] == "weir:syslog")
        .unwrap();
    assert!(syslog["event"].is_object(), "other classes keep their JSON");
}
