/*!
Kafka, with `rdkafka` and its bundled librdkafka.

* `acks=all` and `enable.idempotence=true` by default: the broker keeps each message once per
  producer session even when librdkafka resends it;
* a topic per event class from a template (`weir.{class}`), a message key per event (the
  event's host, its network community id, its diode stream, or none), and provenance headers:
  `weir.agent`, `weir.stream`, `weir.session`, `weir.sequence`, `weir.schema_version`;
* every message of a batch is awaited: a delivery failure (broker down, leader moving, message
  timeout) goes back to the driver as a retry of that message, which stays in the disk buffer
  until the broker has it: nothing is purged. Messages the broker can never take (too large, a
  topic name it refuses) are dead-lettered with librdkafka's reason;
* any librdkafka property can be passed through (`[sinks.options]`);
* a producer that stops making progress is replaced: when a whole batch fails with local
  timeouts (or librdkafka reports a fatal error), the next attempt uses a new producer. An
  idempotent producer whose broker lost its producer state (a broker restarted without its
  log, a leader elected from a truncated replica without KIP-360 support) otherwise retries
  the same sequence numbers until every message times out, for ever. Rebuilding costs the
  idempotence guarantee only across that boundary: what the old producer may have delivered
  unacknowledged can arrive twice (counted by Kafka consumers as duplicates, never lost).
*/

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

use crate::driver::{BoxFuture, Item, Sink, Verdict};
use crate::envelope::split_view;

/// Which field keys a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyField {
    /// The event's host (keeps one host's events in order in one partition).
    Host,
    /// `network.community_id` (one flow's events together).
    CommunityId,
    /// The diode stream (one input's events in order).
    Stream,
    /// No key: spread over partitions.
    None,
}

/// Settings.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// Sink name.
    pub name: String,
    /// `host:port,host:port`.
    pub brokers: String,
    /// Topic template; `{class}` is replaced.
    pub topic: String,
    /// Message key.
    pub key: KeyField,
    /// `zstd`, `lz4`, `gzip`, `snappy` or `none`.
    pub compression: String,
    /// librdkafka properties set last (they win).
    pub options: Vec<(String, String)>,
    /// librdkafka properties that are secrets (`sasl.password`, `ssl.key.password`), set after
    /// `options`; never printed.
    pub secret_options: Vec<(String, crate::Secret)>,
    /// How long librdkafka may try to deliver one message before reporting failure.
    pub message_timeout: Duration,
}

/// One batch as messages.
#[derive(Debug)]
pub struct KafkaRequest {
    messages: Vec<Message>,
}

#[derive(Debug)]
struct Message {
    topic: String,
    key: Option<String>,
    payload: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

/// Per message: delivered, or librdkafka's error.
pub type KafkaResponse = Vec<Result<(), KafkaFailure>>;

/// A failed delivery.
#[derive(Debug, Clone)]
pub struct KafkaFailure {
    /// The broker can never take it.
    pub permanent: bool,
    /// librdkafka gave up on it locally (`message.timeout.ms`).
    pub timed_out: bool,
    /// librdkafka's words.
    pub reason: String,
}

/// The Kafka sink.
pub struct KafkaSink {
    cfg: KafkaConfig,
    producer: Mutex<ProducerSlot>,
}

struct ProducerSlot {
    current: Arc<FutureProducer>,
    since: Instant,
    replaced: u64,
}

impl KafkaSink {
    /// A producer with Weir's defaults, then the configured options.
    pub fn new(cfg: KafkaConfig) -> Result<KafkaSink, String> {
        let producer = KafkaSink::producer(&cfg)?;
        Ok(KafkaSink {
            cfg,
            producer: Mutex::new(ProducerSlot {
                current: Arc::new(producer),
                since: Instant::now(),
                replaced: 0,
            }),
        })
    }

    /// Producers replaced because they stopped making progress.
    pub fn producers_replaced(&self) -> u64 {
        self.producer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replaced
    }

    fn current(&self) -> Arc<FutureProducer> {
        self.producer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .current
            .clone()
    }

    /// After a batch of which nothing was delivered: replace `failed` if it timed out every
    /// message or is in a fatal state, at most once per message timeout.
    fn replace_if_stuck(&self, failed: &Arc<FutureProducer>, response: &KafkaResponse) {
        let fatal = failed.client().fatal_error().is_some();
        let timed_out = response.iter().all(|r| matches!(r, Err(f) if f.timed_out));
        if response.is_empty() || !(fatal || timed_out) {
            return;
        }
        let mut p = self.producer.lock().unwrap_or_else(PoisonError::into_inner);
        if !Arc::ptr_eq(&p.current, failed)
            || (!fatal && p.since.elapsed() < self.cfg.message_timeout)
        {
            return;
        }
        match KafkaSink::producer(&self.cfg) {
            Ok(fresh) => {
                tracing::warn!(
                    message = "Kafka producer made no progress; replaced with a new one.",
                    sink = %self.cfg.name,
                    fatal,
                );
                p.current = Arc::new(fresh);
                p.since = Instant::now();
                p.replaced += 1;
            }
            Err(error) => {
                tracing::warn!(message = "Kafka producer could not be replaced.", sink = %self.cfg.name, %error);
            }
        }
    }

    fn producer(cfg: &KafkaConfig) -> Result<FutureProducer, String> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &cfg.brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", &cfg.compression)
            .set("linger.ms", "5")
            .set(
                "message.timeout.ms",
                cfg.message_timeout.as_millis().to_string(),
            )
            .set("client.id", format!("weir-{}", cfg.name));
        for (k, v) in &cfg.options {
            c.set(k, v);
        }
        for (k, v) in &cfg.secret_options {
            c.set(k, v.expose());
        }
        c.create().map_err(|e| e.to_string())
    }

    async fn produce(&self, request: &KafkaRequest) -> KafkaResponse {
        let producer = self.current();
        let response = self.produce_with(&producer, request).await;
        if !response.iter().any(Result::is_ok) {
            self.replace_if_stuck(&producer, &response);
        }
        response
    }

    async fn produce_with(
        &self,
        producer: &FutureProducer,
        request: &KafkaRequest,
    ) -> KafkaResponse {
        let mut pending = Vec::with_capacity(request.messages.len());
        for m in &request.messages {
            let mut headers = OwnedHeaders::new_with_capacity(m.headers.len());
            for (k, v) in &m.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
            let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(&m.topic)
                .payload(m.payload.as_slice())
                .headers(headers);
            if let Some(k) = &m.key {
                record = record.key(k.as_str());
            }
            // A full local queue: wait for librdkafka to drain some, then enqueue again.
            let mut record = Some(record);
            let mut result = None;
            for _ in 0..200 {
                let Some(r) = record.take() else { break };
                match producer.send_result(r) {
                    Ok(delivery) => {
                        result = Some(Ok(delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        producer.poll(Duration::from_millis(10));
                        record = Some(r);
                    }
                    Err((e, _)) => {
                        result = Some(Err(failure(&e)));
                        break;
                    }
                }
            }
            pending.push(result.unwrap_or_else(|| {
                Err(KafkaFailure {
                    permanent: false,
                    timed_out: false,
                    reason: "librdkafka queue full".into(),
                })
            }));
        }
        let mut out = Vec::with_capacity(pending.len());
        for p in pending {
            out.push(match p {
                Ok(delivery) => match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((e, _))) => Err(failure(&e)),
                    Err(_) => Err(KafkaFailure {
                        permanent: false,
                        timed_out: false,
                        reason: "producer closed".into(),
                    }),
                },
                Err(f) => Err(f),
            });
        }
        out
    }
}

fn failure(e: &KafkaError) -> KafkaFailure {
    let permanent = matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidTopic
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::InvalidRecord
        )
    );
    KafkaFailure {
        permanent,
        timed_out: e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut),
        reason: e.to_string(),
    }
}

impl Sink for KafkaSink {
    type Request = KafkaRequest;
    type Response = KafkaResponse;

    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn build(&self, records: &[&[u8]]) -> KafkaRequest {
        let messages = records
            .iter()
            .filter_map(|r| split_view(r))
            .map(|(view, event)| {
                let env = view.get();
                let key = match self.cfg.key {
                    KeyField::Host => env.host,
                    KeyField::CommunityId => env.community_id,
                    KeyField::Stream => env.stream,
                    KeyField::None => None,
                }
                .map(str::to_owned);
                let mut headers = vec![("weir.schema_version", env.schema_version.to_owned())];
                for (k, v) in [
                    ("weir.agent", env.agent),
                    ("weir.stream", env.stream),
                    ("weir.session", env.session),
                ] {
                    if let Some(v) = v {
                        headers.push((k, v.to_owned()));
                    }
                }
                if let Some(s) = env.sequence {
                    headers.push(("weir.sequence", s.to_string()));
                }
                Message {
                    topic: self.cfg.topic.replace("{class}", env.class),
                    key,
                    payload: event.to_vec(),
                    headers,
                }
            })
            .collect();
        KafkaRequest { messages }
    }

    fn send<'a>(&'a self, request: &'a KafkaRequest) -> BoxFuture<'a, KafkaResponse> {
        Box::pin(self.produce(request))
    }

    fn classify(&self, _events: usize, response: &KafkaResponse) -> Verdict {
        if response.iter().all(Result::is_ok) {
            return Verdict::Delivered;
        }
        Verdict::Items(
            response
                .iter()
                .map(|r| match r {
                    Ok(()) => Item::Ok,
                    Err(f) if f.permanent => Item::Dead(format!("kafka: {}", f.reason)),
                    Err(f) => Item::Retry(format!("kafka: {}", f.reason)),
                })
                .collect(),
        )
    }
}
