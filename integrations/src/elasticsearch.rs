/*!
Elasticsearch `_bulk`.

Follows the Elasticsearch documentation ("Bulk API", "Data streams", "Index templates"):

* `POST /_bulk` with NDJSON action/document pairs; every action is `create` (so a document
  whose `_id` exists is refused with 409 instead of overwritten), optionally gzip;
* data streams `logs-weir.<class>-<namespace>` by default (`@timestamp` is always present), or
  plain indices from a template;
* `_id` is deterministic: from the event's provenance (agent, diode session, stream, sequence)
  when it has one, else from its bytes. A resend after a lost answer, a crash or a receiver
  restart therefore cannot store an event twice: Elasticsearch answers 409, counted as already
  stored;
* the answer is read item by item (`errors: true` is not success): 201/200 stored, 409 already
  stored, 429 and 5xx retried alone, any other 4xx (mapping errors) dead-lettered with
  Elasticsearch's error type and reason; a whole-request 429/5xx/timeout is retried; 401/403
  are configuration errors, retried loudly;
* `Authorization: ApiKey <key>` or basic auth; TLS with a custom CA;
* on request (`install_template`), Weir's Elasticsearch assets ([`assets`], "Ingest pipelines",
  "Component templates", "Index templates") are installed before the first document is sent:
  the ingest pipeline `weir@ingest`, the component templates `weir@mappings` (explicit
  mappings for every field Weir emits, from [`weir_schemas::fields`]) and `weir@settings`
  (the pipeline as `index.default_pipeline`, compression, field limits), and the composable
  index template `weir` made of them plus an optional, user-owned `weir@custom`. The data
  streams are therefore created with ECS types (`source.ip` as `ip`, `event.original`
  unindexed, ...) rather than by dynamic mapping. The template's priority (200) is above
  Elastic's built-in `logs` template (100), which would otherwise match `logs-*-*`. Until all
  four are acknowledged no document is sent. The same assets are in
  `integrations/elasticsearch/` for installing by hand.
*/

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::driver::{BoxFuture, Item, Sink, Verdict};
use crate::envelope::{split_into, Envelope, EnvelopeRef};
use crate::http::Body;

/// Where documents go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `logs-weir.<class>-<namespace>` data streams.
    DataStream {
        /// The namespace part.
        namespace: String,
    },
    /// A plain index name with `{class}` replaced.
    Index(String),
}

/// Authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// None.
    None,
    /// `Authorization: ApiKey <encoded key>`.
    ApiKey(crate::Secret),
    /// Basic auth.
    Basic {
        /// User.
        username: String,
        /// Password.
        password: crate::Secret,
    },
}

/// Settings.
#[derive(Clone, Debug)]
pub struct EsConfig {
    /// Sink name.
    pub name: String,
    /// `https://es.example:9200`.
    pub endpoint: String,
    /// Data streams or indices.
    pub target: Target,
    /// Authentication.
    pub auth: Auth,
    /// Gzip request bodies.
    pub gzip: bool,
    /// PEM CA file.
    pub ca_file: Option<std::path::PathBuf>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Install the index template before the first document.
    pub install_template: bool,
}

/// A bulk request.
#[derive(Debug)]
pub struct EsRequest {
    /// Shared with each send (a resend does not copy it).
    body: bytes::Bytes,
    /// The body is gzipped.
    gzip: bool,
}

/// What came back.
#[derive(Debug)]
pub enum EsResponse {
    /// HTTP answer.
    Http {
        /// Status.
        status: u16,
        /// Body.
        body: String,
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
    },
    /// No HTTP answer.
    Transport(String),
}

/// The Elasticsearch sink.
pub struct EsSink {
    cfg: EsConfig,
    client: reqwest::Client,
    template_installed: AtomicBool,
    /// One installation at a time (requests run concurrently).
    template_lock: tokio::sync::Mutex<()>,
}

/// The index template's name (`_index_template/weir`).
pub const TEMPLATE_NAME: &str = "weir";
/// The ingest pipeline every Weir document goes through (`index.default_pipeline`).
pub const PIPELINE_NAME: &str = "weir@ingest";
/// The component template with the field mappings.
pub const MAPPINGS_NAME: &str = "weir@mappings";
/// The component template with the index settings.
pub const SETTINGS_NAME: &str = "weir@settings";
/// The component template the index template names for the user's own changes (retention,
/// replicas, extra mappings); Weir never writes it, and it may be missing.
pub const CUSTOM_NAME: &str = "weir@custom";

/// One Elasticsearch asset: where it is `PUT` and its body.
#[derive(Clone, Debug, PartialEq)]
pub struct Asset {
    /// The API path, `_ingest/pipeline/weir@ingest` and so on.
    pub path: String,
    /// The request body.
    pub body: Value,
}

fn meta(description: &str) -> Value {
    serde_json::json!({
        "description": description,
        "managed_by": "weir",
        "weir_schema_version": weir_schemas::SCHEMA_VERSION,
        "ecs_version": weir_schemas::ECS_VERSION,
    })
}

/// The ingest pipeline: `event.ingested` becomes Elasticsearch's arrival time (ECS: "when the
/// event arrived in the central data store"). Elastic Security's prebuilt rules look back on
/// `event.ingested`; an event that waited in the receiver's buffer during an outage keeps the
/// receiver's time otherwise and would fall before every rule's window. A processor failure
/// never loses the document: it is stored with `error.message` and a tag.
pub fn ingest_pipeline() -> Value {
    serde_json::json!({
        "description": "Weir: event.ingested = arrival in Elasticsearch (Elastic Security rules look back on it)",
        "processors": [
            {"set": {
                "tag": "weir-ingested",
                "field": "event.ingested",
                "value": "{{{_ingest.timestamp}}}",
                "override": true,
            }},
        ],
        "on_failure": [
            {"set": {"field": "error.message", "value": "{{{_ingest.on_failure_message}}}"}},
            {"append": {"field": "tags", "value": ["weir_ingest_pipeline_failed"]}},
        ],
        "_meta": meta("Weir's ingest pipeline (index.default_pipeline of weir@settings)"),
    })
}

/// The component template with the mappings of every field Weir emits.
pub fn mappings_component() -> Value {
    serde_json::json!({
        "template": {"mappings": weir_schemas::fields::elasticsearch_mappings()},
        "_meta": meta("Weir events: every field Weir emits with its ECS type; weir.* provenance"),
    })
}

/// The component template with the index settings.
pub fn settings_component() -> Value {
    serde_json::json!({
        "template": {"settings": {"index": {
            "default_pipeline": PIPELINE_NAME,
            "codec": "best_compression",
            // Windows events bring their own EventData names (mapped dynamically as keywords).
            "mapping": {"total_fields": {"limit": 5000}, "ignore_malformed": true},
        }}},
        "_meta": meta("Weir events: default pipeline, compression, field limits"),
    })
}

/// The composable index template for `target`: every data stream (or index) Weir writes,
/// made of [`MAPPINGS_NAME`], [`SETTINGS_NAME`] and (if it exists) [`CUSTOM_NAME`].
pub fn index_template(target: &Target) -> Value {
    let (pattern, data_stream) = match target {
        Target::DataStream { .. } => ("logs-weir.*-*".to_owned(), true),
        Target::Index(t) => (t.replace("{class}", "*"), false),
    };
    let mut t = serde_json::json!({
        "index_patterns": [pattern],
        "priority": 200,
        "composed_of": [MAPPINGS_NAME, SETTINGS_NAME, CUSTOM_NAME],
        "ignore_missing_component_templates": [CUSTOM_NAME],
        "_meta": meta("Weir events (ECS fields with their ECS types, weir.* provenance)"),
    });
    if data_stream {
        t["data_stream"] = serde_json::json!({});
    }
    t
}

/// Every asset, in the order they must be installed (a template may only name component
/// templates that exist; a document may only name a pipeline that exists).
pub fn assets(target: &Target) -> Vec<Asset> {
    vec![
        Asset {
            path: format!("_ingest/pipeline/{PIPELINE_NAME}"),
            body: ingest_pipeline(),
        },
        Asset {
            path: format!("_component_template/{MAPPINGS_NAME}"),
            body: mappings_component(),
        },
        Asset {
            path: format!("_component_template/{SETTINGS_NAME}"),
            body: settings_component(),
        },
        Asset {
            path: format!("_index_template/{TEMPLATE_NAME}"),
            body: index_template(target),
        },
    ]
}

impl EsSink {
    /// A sink; reads the CA file if configured.
    pub fn new(cfg: EsConfig) -> Result<EsSink, String> {
        let client = crate::http::client(cfg.timeout, cfg.ca_file.as_deref())?;
        Ok(EsSink {
            client,
            template_installed: AtomicBool::new(!cfg.install_template),
            template_lock: tokio::sync::Mutex::new(()),
            cfg,
        })
    }

    fn authorise(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cfg.auth {
            Auth::None => r,
            Auth::ApiKey(k) => r.header("Authorization", format!("ApiKey {}", k.expose())),
            Auth::Basic { username, password } => r.basic_auth(username, Some(password.expose())),
        }
    }

    /// `PUT` every asset in order; `None` once Elasticsearch acknowledged all of them, else
    /// the answer to retry on (as a failed bulk request would be).
    async fn install_assets(&self) -> Option<EsResponse> {
        for asset in assets(&self.cfg.target) {
            let url = format!("{}/{}", self.cfg.endpoint.trim_end_matches('/'), asset.path);
            let r = self
                .authorise(self.client.put(&url))
                .header("Content-Type", "application/json")
                .body(asset.body.to_string());
            match r.send().await {
                Ok(resp) if resp.status().is_success() => {
                    tracing::info!(message = "Elasticsearch asset installed.", sink = %self.cfg.name, asset = %asset.path);
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = crate::http::retry_after(&resp);
                    let body = resp.text().await.unwrap_or_default();
                    // Whatever Elasticsearch says, the documents wait: a retry, never a dead letter.
                    let status = if (400..500).contains(&status) && status != 429 {
                        503
                    } else {
                        status
                    };
                    return Some(EsResponse::Http {
                        status,
                        body: format!("installing {}: {body}", asset.path),
                        retry_after,
                    });
                }
                Err(e) => {
                    return Some(EsResponse::Transport(format!(
                        "installing {}: {e}",
                        asset.path
                    )))
                }
            }
        }
        self.template_installed.store(true, Ordering::Relaxed);
        None
    }

    async fn post(&self, request: &EsRequest) -> EsResponse {
        if !self.template_installed.load(Ordering::Relaxed) {
            let _one = self.template_lock.lock().await;
            if !self.template_installed.load(Ordering::Relaxed) {
                if let Some(failed) = self.install_assets().await {
                    return failed;
                }
            }
        }
        let url = format!("{}/_bulk", self.cfg.endpoint.trim_end_matches('/'));
        let mut r = self
            .client
            .post(&url)
            .header("Content-Type", "application/x-ndjson");
        if request.gzip {
            r = r.header("Content-Encoding", "gzip");
        }
        r = self.authorise(r);
        match r.body(request.body.clone()).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = crate::http::retry_after(&resp);
                EsResponse::Http {
                    status,
                    body: resp.text().await.unwrap_or_default(),
                    retry_after,
                }
            }
            Err(e) => EsResponse::Transport(e.to_string()),
        }
    }
}

/// The document id of an event: from its provenance, else its bytes.
pub fn document_id(env: &Envelope, event: &[u8]) -> String {
    document_id_of(&env.view(), event)
}

/// [`document_id`] of a borrowed envelope.
pub fn document_id_of(env: &EnvelopeRef<'_>, event: &[u8]) -> String {
    let mut h = Sha256::new();
    match (env.session, env.sequence, env.stream) {
        (Some(session), Some(sequence), Some(stream)) => {
            h.update(b"weir/1\0");
            h.update(env.agent.unwrap_or("").as_bytes());
            h.update(b"\0");
            h.update(session.as_bytes());
            h.update(b"\0");
            h.update(stream.as_bytes());
            h.update(b"\0");
            h.update(sequence.to_be_bytes());
        }
        _ => {
            h.update(b"weir/bytes\0");
            h.update(event);
        }
    }
    // 128 bits, URL-safe: 32 hex digits.
    hex::encode(&h.finalize()[..16])
}

/// The index or data stream of an event.
pub fn target_of(target: &Target, class: &str) -> String {
    match target {
        Target::DataStream { namespace } => format!("logs-weir.{class}-{namespace}"),
        Target::Index(t) => t.replace("{class}", class),
    }
}

impl Sink for EsSink {
    type Request = EsRequest;
    type Response = EsResponse;

    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn build(&self, records: &[&[u8]]) -> EsRequest {
        let hint = records.iter().map(|r| r.len() + 128).sum();
        let ((), body, gzip) =
            crate::http::write_body(self.cfg.gzip, hint, |b| self.write_body(records, b));
        EsRequest {
            body: body.into(),
            gzip,
        }
    }

    fn send<'a>(&'a self, request: &'a EsRequest) -> BoxFuture<'a, EsResponse> {
        Box::pin(self.post(request))
    }

    fn classify(&self, events: usize, response: &EsResponse) -> Verdict {
        classify(events, response)
    }
}

impl EsSink {
    /// Write the `_bulk` body for `records` into `out`: a `create` action and the document per
    /// event.
    fn write_body(&self, records: &[&[u8]], out: &mut Body) {
        let mut decoded = EnvelopeRef::default();
        for record in records {
            let Some((legacy, event)) = split_into(record, &mut decoded) else {
                continue;
            };
            let legacy = legacy.as_deref().map(Envelope::view);
            let env = legacy.as_ref().unwrap_or(&decoded);
            let index = target_of(&self.cfg.target, env.class);
            let id = document_id_of(env, event);
            let body = out.buf();
            body.extend_from_slice(b"{\"create\":{\"_index\":");
            body.extend_from_slice(serde_json::to_string(&index).unwrap_or_default().as_bytes());
            body.extend_from_slice(b",\"_id\":\"");
            body.extend_from_slice(id.as_bytes());
            body.extend_from_slice(b"\"}}\n");
            body.extend_from_slice(event);
            body.push(b'\n');
            if !out.piece_done() {
                return;
            }
        }
    }
}

/// Elasticsearch's answer → what to do with each event (pure; see the module documentation).
pub fn classify(events: usize, response: &EsResponse) -> Verdict {
    let (status, body, retry_after) = match response {
        EsResponse::Transport(e) => {
            return Verdict::Retry {
                reason: format!("transport: {e}"),
                after: None,
            }
        }
        EsResponse::Http {
            status,
            body,
            retry_after,
        } => (*status, body, *retry_after),
    };
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if status == 400 {
        // The whole request refused: a malformed bulk body, which no resend will fix.
        let reason = error_text(&v["error"]);
        return Verdict::Items(
            (0..events)
                .map(|_| Item::Dead(format!("bulk request refused: {reason}")))
                .collect(),
        );
    }
    if !(200..300).contains(&status) {
        return Verdict::Retry {
            reason: format!("HTTP {status}: {}", error_text(&v["error"])),
            after: retry_after.map(Duration::from_secs),
        };
    }
    if v.get("errors").and_then(Value::as_bool) == Some(false) {
        return Verdict::Delivered;
    }
    let Some(items) = v.get("items").and_then(Value::as_array) else {
        return Verdict::Retry {
            reason: "bulk answer without items".into(),
            after: None,
        };
    };
    Verdict::Items(
        items
            .iter()
            .map(|item| {
                let r = item
                    .as_object()
                    .and_then(|o| o.values().next())
                    .cloned()
                    .unwrap_or(Value::Null);
                let code = r.get("status").and_then(Value::as_u64).unwrap_or(0);
                match code {
                    200..=299 => Item::Ok,
                    409 => Item::Duplicate,
                    429 => Item::Retry("429 too many requests".into()),
                    500..=599 => Item::Retry(format!("{code}: {}", error_text(&r["error"]))),
                    0 => Item::Retry("item without status".into()),
                    _ => Item::Dead(format!("{code} {}", error_text(&r["error"]))),
                }
            })
            .collect(),
    )
}

fn error_text(e: &Value) -> String {
    match e {
        Value::Object(o) => {
            let kind = o.get("type").and_then(Value::as_str).unwrap_or("error");
            let reason = o.get("reason").and_then(Value::as_str).unwrap_or("");
            format!("{kind}: {reason}")
        }
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn http(status: u16, body: &str) -> EsResponse {
        EsResponse::Http {
            status,
            body: body.into(),
            retry_after: None,
        }
    }

    #[test]
    fn bulk_answers_are_read_item_by_item() {
        assert_eq!(
            classify(2, &http(200, r#"{"errors":false,"items":[]}"#)),
            Verdict::Delivered
        );
        let body = r#"{"errors":true,"items":[
            {"create":{"status":201}},
            {"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"document already exists"}}},
            {"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
            {"create":{"status":400,"error":{"type":"document_parsing_exception","reason":"failed to parse field [source.port] of type [long]"}}},
            {"create":{"status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}}
        ]}"#;
        assert_eq!(
            classify(5, &http(200, body)),
            Verdict::Items(vec![
                Item::Ok,
                Item::Duplicate,
                Item::Retry("429 too many requests".into()),
                Item::Dead("400 document_parsing_exception: failed to parse field [source.port] of type [long]".into()),
                Item::Retry("503: unavailable_shards_exception: primary shard is not active".into()),
            ])
        );
        assert!(matches!(classify(3, &http(429, "")), Verdict::Retry { .. }));
        assert!(matches!(classify(3, &http(503, "")), Verdict::Retry { .. }));
        assert!(matches!(classify(3, &http(401, "")), Verdict::Retry { .. }));
        assert!(matches!(
            classify(3, &EsResponse::Transport("refused".into())),
            Verdict::Retry { .. }
        ));
        assert_eq!(
            classify(1, &http(400, r#"{"error":{"type":"illegal_argument_exception","reason":"Malformed action/metadata line [1]"}}"#)),
            Verdict::Items(vec![Item::Dead("bulk request refused: illegal_argument_exception: Malformed action/metadata line [1]".into())])
        );
    }

    #[test]
    fn ids_come_from_provenance_and_survive_a_resend() {
        let env = Envelope {
            class: "syslog".into(),
            agent: Some("zone-3".into()),
            session: Some("00000000000000aa".into()),
            stream: Some("plc".into()),
            sequence: Some(7),
            ..Envelope::default()
        };
        let a = document_id(&env, b"{}");
        assert_eq!(a, document_id(&env, b"{\"other\":1}"), "provenance decides");
        assert_eq!(a.len(), 32);
        let next = Envelope {
            sequence: Some(8),
            ..env.clone()
        };
        assert_ne!(a, document_id(&next, b"{}"));
        let bare = Envelope::default();
        assert_ne!(
            document_id(&bare, b"{\"a\":1}"),
            document_id(&bare, b"{\"a\":2}")
        );
        assert_eq!(
            target_of(
                &Target::DataStream {
                    namespace: "plant_a".into()
                },
                "syslog"
            ),
            "logs-weir.syslog-plant_a"
        );
        assert_eq!(
            target_of(&Target::Index("weir-{class}".into()), "ot"),
            "weir-ot"
        );
    }
}
