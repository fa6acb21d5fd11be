//! The shared driver and the Elasticsearch sink against the in-process `_bulk` model over real
//! HTTP: data streams, item-by-item results, 429 on a third of the items, a whole-request
//! outage, a mapping error dead-lettered, and a crash whose resends Elasticsearch deduplicates
//! by `_id`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use weir_integrations::buffer::{Config, DiskQueue, Overflow};
use weir_integrations::driver::{self, DriverConfig, SharedQueue, SinkStats};
use weir_integrations::elasticsearch::{Auth, EsConfig, EsSink, Target};
use weir_integrations::envelope::Envelope;
use weir_integrations::testing::EsServer;
use weir_schemas::{Event, EventClass};

fn event(n: usize) -> Event {
    let t = chrono::DateTime::from_timestamp_micros(1_763_800_000_000_000 + n as i64).unwrap();
    let class = if n.is_multiple_of(10) {
        EventClass::Weir
    } else {
        EventClass::Syslog
    };
    let mut e = Event::new(class, t);
    e.message = Some(format!("n={n:06} pump 3 tripped"));
    e.weir.agent = Some("zone-3".into());
    e.weir.stream = Some("plc".into());
    e.weir.session = Some("00000000000000ab".into());
    e.weir.sequence = Some(n as u64);
    e
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

fn sink(server: &EsServer) -> Arc<EsSink> {
    Arc::new(
        EsSink::new(EsConfig {
            name: "elastic".into(),
            endpoint: server.url(),
            target: Target::DataStream {
                namespace: "plant_a".into(),
            },
            auth: Auth::ApiKey("a2V5OnNlY3JldA==".into()),
            gzip: true,
            ca_file: None,
            timeout: Duration::from_secs(5),
            install_template: true,
        })
        .unwrap(),
    )
}

fn cfg(dead: Option<std::path::PathBuf>) -> DriverConfig {
    DriverConfig {
        max_events: 400,
        max_age: Duration::from_millis(50),
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        dead_letter: dead,
        ..DriverConfig::default()
    }
}

async fn drained(q: &SharedQueue) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while q.queue.lock().unwrap().records() > 0 {
        assert!(Instant::now() < deadline, "queue did not drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sequences(server: &EsServer) -> Vec<u64> {
    let s = server.state.lock().unwrap();
    let mut v: Vec<u64> = s
        .docs
        .values()
        .map(|d| d["weir"]["sequence"].as_u64().unwrap())
        .collect();
    v.sort_unstable();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_stored_once_through_item_throttling_and_an_outage() {
    let server = EsServer::start().await.unwrap();
    {
        let mut s = server.state.lock().unwrap();
        s.throttle_a_third = true;
        s.fail_requests = 3;
    }
    let dir = tempfile::tempdir().unwrap();
    let q = open(dir.path());
    let stats = Arc::new(SinkStats::default());
    let cancel = CancellationToken::new();
    tokio::spawn(driver::run(
        sink(&server),
        q.clone(),
        cfg(None),
        stats.clone(),
        cancel.clone(),
    ));
    fill(&q, 0..10_000);
    drained(&q).await;
    cancel.cancel();
    assert_eq!(sequences(&server), (0..10_000).collect::<Vec<u64>>());
    let s = server.state.lock().unwrap();
    let throttled = s.item_statuses.iter().filter(|&&c| c == 429).count();
    assert!(
        throttled >= 3_000,
        "a third of the items were throttled ({throttled})"
    );
    assert_eq!(s.answers.iter().filter(|&&c| c == 503).count(), 3);
    assert_eq!(
        s.docs
            .keys()
            .filter(|(i, _)| i == "logs-weir.syslog-plant_a")
            .count(),
        9_000
    );
    assert_eq!(
        s.docs
            .keys()
            .filter(|(i, _)| i == "logs-weir.weir-plant_a")
            .count(),
        1_000
    );
    assert_eq!(stats.dead_lettered.load(Ordering::Relaxed), 0);
    assert_eq!(stats.events_sent.load(Ordering::Relaxed), 10_000);
    // The assets went in once each, in dependency order, before any document.
    assert_eq!(
        s.requests[..4],
        [
            "PUT /_ingest/pipeline/weir@ingest",
            "PUT /_component_template/weir@mappings",
            "PUT /_component_template/weir@settings",
            "PUT /_index_template/weir",
        ]
    );
    assert_eq!(
        s.requests.iter().filter(|r| r.starts_with("PUT")).count(),
        4
    );
    let t = &s.templates["weir"];
    assert_eq!(t["index_patterns"], serde_json::json!(["logs-weir.*-*"]));
    assert_eq!(t["data_stream"], serde_json::json!({}));
    assert_eq!(t["priority"], 200);
    assert_eq!(
        t["composed_of"],
        serde_json::json!(["weir@mappings", "weir@settings", "weir@custom"])
    );
    let props = &s.components["weir@mappings"]["template"]["mappings"]["properties"];
    assert_eq!(props["source"]["properties"]["ip"]["type"], "ip");
    assert_eq!(props["@timestamp"]["type"], "date");
    assert_eq!(props["event"]["properties"]["original"]["index"], false);
    assert_eq!(
        s.components["weir@settings"]["template"]["settings"]["index"]["default_pipeline"],
        "weir@ingest"
    );
    // Every stored document went through the pipeline: event.ingested is Elasticsearch's time.
    assert!(s.docs.values().all(|d| {
        d["event"]["ingested"] == EsServer::INGEST_TIMESTAMP && d["weir"]["sequence"].is_u64()
    }));
}

/// Elasticsearch refuses a template naming a component template that does not exist, so
/// the order matters; and a document naming a pipeline that does not exist fails. The model
/// holds both rules (the sink's order is checked above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_refuses_assets_out_of_order() {
    use weir_integrations::elasticsearch::{assets, Target};
    let server = EsServer::start().await.unwrap();
    let client = reqwest::Client::new();
    let all = assets(&Target::DataStream {
        namespace: "default".into(),
    });
    let put = |a: &weir_integrations::elasticsearch::Asset| {
        client
            .put(format!("{}/{}", server.url(), a.path))
            .header("Content-Type", "application/json")
            .body(a.body.to_string())
            .send()
    };
    // The index template first: its components are missing (weir@custom may be).
    let r = put(&all[3]).await.unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_index_template_exception");
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("weir@mappings"),
        "{body}"
    );
    assert!(!body["error"]["reason"]
        .as_str()
        .unwrap()
        .contains("weir@custom"));
    // Components and template without the pipeline: documents fail, item by item.
    for a in &all[1..] {
        assert_eq!(put(a).await.unwrap().status(), 200, "{}", a.path);
    }
    let bulk = "{\"create\":{\"_index\":\"logs-weir.syslog-default\",\"_id\":\"a\"}}\n{\"@timestamp\":\"2026-01-01T00:00:00Z\"}\n";
    let r: serde_json::Value = client
        .post(format!("{}/_bulk", server.url()))
        .body(bulk)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["errors"], true);
    assert_eq!(r["items"][0]["create"]["status"], 400);
    assert_eq!(
        r["items"][0]["create"]["error"]["reason"],
        "pipeline with id [weir@ingest] does not exist"
    );
    // With the pipeline the same document is stored, stamped.
    assert_eq!(put(&all[0]).await.unwrap().status(), 200);
    let r: serde_json::Value = client
        .post(format!("{}/_bulk", server.url()))
        .body(bulk)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["items"][0]["create"]["status"], 201, "{r}");
    let doc = server.state.lock().unwrap().docs
        [&("logs-weir.syslog-default".to_owned(), "a".to_owned())]
        .clone();
    assert_eq!(doc["event"]["ingested"], EsServer::INGEST_TIMESTAMP);
    // A processor the model does not know is refused, as a node without it would.
    let r = client
        .put(format!("{}/_ingest/pipeline/other", server.url()))
        .body(r#"{"processors":[{"geoip":{"field":"source.ip"}}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_error_is_dead_lettered_and_the_rest_of_the_batch_stored() {
    let server = EsServer::start().await.unwrap();
    server.state.lock().unwrap().reject_marker = Some("n=000042".into());
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir.path().join("buffer"));
    let dead = dir.path().join("dead.ndjson");
    let stats = Arc::new(SinkStats::default());
    let cancel = CancellationToken::new();
    tokio::spawn(driver::run(
        sink(&server),
        q.clone(),
        cfg(Some(dead.clone())),
        stats.clone(),
        cancel.clone(),
    ));
    fill(&q, 0..400);
    drained(&q).await;
    cancel.cancel();
    let got = sequences(&server);
    assert_eq!(got.len(), 399);
    assert!(!got.contains(&42));
    let line: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&dead)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["event"]["weir"]["sequence"], 42);
    assert!(
        line["reason"]
            .as_str()
            .unwrap()
            .starts_with("400 document_parsing_exception"),
        "{line}"
    );
    assert_eq!(stats.dead_lettered.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_after_a_crash_are_refused_as_duplicates_so_each_event_is_stored_once() {
    let server = EsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    {
        let q = open(dir.path());
        let cancel = CancellationToken::new();
        tokio::spawn(driver::run(
            sink(&server),
            q.clone(),
            cfg(None),
            Arc::new(SinkStats::default()),
            cancel.clone(),
        ));
        fill(&q, 0..20_000);
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.state.lock().unwrap().docs.len() < 5_000 {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancel.cancel();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Forget the last run's acknowledgements: everything still on disk (acknowledged or not)
    // is sent again, much of it already stored.
    std::fs::remove_file(dir.path().join("ack")).unwrap();
    let q = open(dir.path());
    let stats = Arc::new(SinkStats::default());
    let cancel = CancellationToken::new();
    tokio::spawn(driver::run(
        sink(&server),
        q.clone(),
        cfg(None),
        stats.clone(),
        cancel.clone(),
    ));
    drained(&q).await;
    cancel.cancel();
    assert_eq!(
        sequences(&server),
        (0..20_000).collect::<Vec<u64>>(),
        "each once, by _id"
    );
    assert!(
        stats.duplicates.load(Ordering::Relaxed) > 0,
        "the resends were answered 409"
    );
}
