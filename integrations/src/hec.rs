/*!
Splunk HTTP Event Collector.

Follows Splunk's documentation ("Format events for HTTP Event Collector", "HTTP Event
Collector REST API endpoints", "Troubleshoot HTTP Event Collector", "About HTTP Event Collector
Indexer Acknowledgment"):

* `POST /services/collector/event` with batched JSON objects, one per event:
  `{"time": 1700000000.123456, "host", "source", "sourcetype", "index", "fields": {..}, "event": {..}}`
  (`time` in epoch seconds with microseconds), or `POST /services/collector/raw` with one event
  JSON per line and the metadata as query parameters;
* `Authorization: Splunk <token>`, `Content-Encoding: gzip`;
* answers `{"text":"Success","code":0}`; `400` with code 6 (invalid data format), 12 (event
  field is required) or 13 (event field cannot be blank) and `invalid-event-number` for the
  event that failed: the events before it were indexed, that one is dead-lettered with Splunk's
  reason, the ones after it are sent again; `503` code 9 (server busy), other 5xx, 429 and
  transport errors are retried; 401/403 (token problems) and code 7 (index not allowed) are
  configuration errors, retried (loudly) rather than dead-lettered, since the events are fine;
* indexer acknowledgement: a channel (`X-Splunk-Request-Channel`), the `ackId` of each
  accepted request polled at `/services/collector/ack` until it is true; a batch not
  acknowledged within `ack_timeout` is sent again (duplicates are counted by Splunk, not lost).
*/

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tracing::{info, warn};

use crate::driver::{BoxFuture, Item, Sink, Verdict};
use crate::envelope::{split_into, Envelope, EnvelopeRef};
use crate::http::Body;

/// Which endpoint events go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/services/collector/event` (metadata per event, indexed fields).
    Event,
    /// `/services/collector/raw` (event JSON per line; metadata per request).
    Raw,
}

/// Splunk metadata for one event class (`{class}`, `{agent}`, `{stream}`, `{host}` are
/// replaced from the event).
#[derive(Clone, Debug, Default)]
pub struct Metadata {
    /// `index` (empty: the token's default index).
    pub index: String,
    /// `sourcetype`.
    pub sourcetype: String,
    /// `source`.
    pub source: String,
    /// `host` (empty: the event's host).
    pub host: String,
    /// Send the record as received (`event.original`: a Windows event's XML, a syslog line)
    /// instead of the event's JSON, where the event has it. With `sourcetype = "XmlWinEventLog"`
    /// and `source = "XmlWinEventLog:{channel}"` this is what the Splunk Add-on for Microsoft
    /// Windows reads.
    pub send_original: bool,
}

/// Settings.
#[derive(Clone, Debug)]
pub struct HecConfig {
    /// Sink name.
    pub name: String,
    /// `https://splunk.example:8088`.
    pub endpoint: String,
    /// The HEC token.
    pub token: crate::Secret,
    /// Event or raw endpoint.
    pub kind: Endpoint,
    /// Gzip request bodies.
    pub gzip: bool,
    /// Metadata by event class name; `"*"` is the default.
    pub metadata: Vec<(String, Metadata)>,
    /// Send indexed `fields` (event endpoint).
    pub indexed_fields: bool,
    /// Use indexer acknowledgement.
    pub ack: bool,
    /// How long to wait for an acknowledgement before sending again.
    pub ack_timeout: Duration,
    /// PEM file of the CA that signed Splunk's certificate (else the system roots).
    pub ca_file: Option<std::path::PathBuf>,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// A request ready to send.
#[derive(Debug)]
pub struct HecRequest {
    path: String,
    /// Shared with each send (a resend does not copy it).
    body: bytes::Bytes,
    /// The body is gzipped.
    gzip: bool,
}

/// What came back.
#[derive(Debug)]
pub enum HecResponse {
    /// HTTP answer.
    Http {
        /// Status.
        status: u16,
        /// Body.
        body: String,
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
    },
    /// Accepted, but Splunk did not confirm indexing in time.
    AckTimeout,
    /// No HTTP answer.
    Transport(String),
}

/// The HEC sink.
pub struct HecSink {
    cfg: HecConfig,
    client: reqwest::Client,
    channel: String,
}

impl HecSink {
    /// A sink; reads the CA file if configured.
    pub fn new(cfg: HecConfig) -> Result<HecSink, String> {
        let client = crate::http::client(cfg.timeout, cfg.ca_file.as_deref())?;
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).map_err(|e| e.to_string())?;
        // A random UUID (version 4) names this sink's acknowledgement channel.
        b[6] = (b[6] & 0x0F) | 0x40;
        b[8] = (b[8] & 0x3F) | 0x80;
        let h = hex::encode(b);
        let channel = format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        );
        Ok(HecSink {
            cfg,
            client,
            channel,
        })
    }

    /// Ask `/services/collector/health`; logs what it says (the receiver starts either way:
    /// events wait in the buffer until Splunk is back).
    pub async fn health_check(&self) -> bool {
        let url = format!(
            "{}/services/collector/health",
            self.cfg.endpoint.trim_end_matches('/')
        );
        match self.client.get(&url).send().await {
            Ok(r) if r.status().is_success() => {
                info!(message = "Splunk HEC is healthy.", sink = %self.cfg.name, endpoint = %self.cfg.endpoint);
                true
            }
            Ok(r) => {
                warn!(message = "Splunk HEC health check failed; events wait in the buffer.", sink = %self.cfg.name, status = r.status().as_u16());
                false
            }
            Err(e) => {
                warn!(message = "Splunk HEC unreachable; events wait in the buffer.", sink = %self.cfg.name, error = %e);
                false
            }
        }
    }

    fn metadata(&self, class: &str) -> Option<&Metadata> {
        self.cfg
            .metadata
            .iter()
            .find(|(c, _)| c == class)
            .or_else(|| self.cfg.metadata.iter().find(|(c, _)| c == "*"))
            .map(|(_, m)| m)
    }

    async fn post(&self, request: &HecRequest) -> HecResponse {
        let url = format!(
            "{}{}",
            self.cfg.endpoint.trim_end_matches('/'),
            request.path
        );
        let mut r = self
            .client
            .post(&url)
            .header(
                "Authorization",
                format!("Splunk {}", self.cfg.token.expose()),
            )
            .header("Content-Type", "application/json");
        if request.gzip {
            r = r.header("Content-Encoding", "gzip");
        }
        if self.cfg.ack {
            r = r.header("X-Splunk-Request-Channel", &self.channel);
        }
        match r.body(request.body.clone()).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = crate::http::retry_after(&resp);
                let body = resp.text().await.unwrap_or_default();
                if status == 200 && self.cfg.ack {
                    return self.wait_for_ack(&body).await;
                }
                HecResponse::Http {
                    status,
                    body,
                    retry_after,
                }
            }
            Err(e) => HecResponse::Transport(e.to_string()),
        }
    }

    /// Poll `/services/collector/ack` for the request's `ackId` until it is indexed.
    async fn wait_for_ack(&self, body: &str) -> HecResponse {
        let ok = HecResponse::Http {
            status: 200,
            body: body.to_owned(),
            retry_after: None,
        };
        let Some(id) = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v.get("ackId").and_then(Value::as_u64))
        else {
            // Acknowledgement not enabled on the token: Splunk sends no ackId.
            return ok;
        };
        let url = format!(
            "{}/services/collector/ack",
            self.cfg.endpoint.trim_end_matches('/')
        );
        let deadline = Instant::now() + self.cfg.ack_timeout;
        let mut wait = Duration::from_millis(50);
        while Instant::now() < deadline {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            let r = self
                .client
                .post(&url)
                .header(
                    "Authorization",
                    format!("Splunk {}", self.cfg.token.expose()),
                )
                .header("X-Splunk-Request-Channel", &self.channel)
                .json(&json!({ "acks": [id] }))
                .send()
                .await;
            let Ok(r) = r else { continue };
            let Ok(v) = r.json::<Value>().await else {
                continue;
            };
            if v["acks"][id.to_string()].as_bool() == Some(true) {
                return ok;
            }
        }
        HecResponse::AckTimeout
    }
}

impl Sink for HecSink {
    type Request = HecRequest;
    type Response = HecResponse;

    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn build(&self, records: &[&[u8]]) -> HecRequest {
        let hint = records.iter().map(|r| r.len() + 256).sum();
        let (path, body, gzip) =
            crate::http::write_body(self.cfg.gzip, hint, |b| self.write_body(records, b));
        HecRequest {
            path,
            body: body.into(),
            gzip,
        }
    }

    fn send<'a>(&'a self, request: &'a HecRequest) -> BoxFuture<'a, HecResponse> {
        Box::pin(self.post(request))
    }

    fn classify(&self, events: usize, response: &HecResponse) -> Verdict {
        classify(events, response)
    }
}

impl HecSink {
    /// Write the request body for `records` into `out`, a line per event; returns the path
    /// (the raw endpoint carries the metadata in its query).
    fn write_body(&self, records: &[&[u8]], out: &mut Body) -> String {
        let mut raw_meta: Option<(String, Metadata)> = None;
        let mut ok = true;
        let mut decoded = EnvelopeRef::default();
        for record in records {
            if !ok {
                break;
            }
            let Some((legacy, event)) = split_into(record, &mut decoded) else {
                continue; // never written by this version; counted at the buffer
            };
            let legacy = legacy.as_deref().map(Envelope::view);
            let env = legacy.as_ref().unwrap_or(&decoded);
            let body = out.buf();
            let default_meta = Metadata::default();
            let meta = self.metadata(env.class).unwrap_or(&default_meta);
            match self.cfg.kind {
                Endpoint::Event => {
                    // Written by hand, straight into the body: `time` keeps its microseconds
                    // exactly (a float would not), and the event's JSON goes in as is.
                    body.extend_from_slice(b"{\"time\":");
                    epoch_seconds(body, env.time_us);
                    let host_field = |body: &mut Vec<u8>, value: &str| {
                        body.extend_from_slice(b",\"host\":");
                        json_str(body, value);
                    };
                    if meta.host.is_empty() {
                        if let Some(h) = env.host.filter(|h| !h.is_empty()) {
                            host_field(body, h);
                        }
                    } else {
                        let h = template(&meta.host, env);
                        if !h.is_empty() {
                            host_field(body, &h);
                        }
                    }
                    for (k, v) in [
                        (&b",\"index\":"[..], &meta.index),
                        (b",\"sourcetype\":", &meta.sourcetype),
                        (b",\"source\":", &meta.source),
                    ] {
                        if !v.is_empty() {
                            body.extend_from_slice(k);
                            template_json(body, v, env);
                        }
                    }
                    if self.cfg.indexed_fields && !env.fields.is_empty() {
                        body.extend_from_slice(b",\"fields\":{");
                        for (i, (k, v)) in env.fields.iter().enumerate() {
                            if i > 0 {
                                body.push(b',');
                            }
                            json_str(body, k);
                            body.push(b':');
                            json_str(body, v);
                        }
                        body.push(b'}');
                    }
                    body.extend_from_slice(b",\"event\":");
                    match meta
                        .send_original
                        .then(|| crate::envelope::original(event))
                        .flatten()
                    {
                        Some(text) => json_str(body, &text),
                        None => body.extend_from_slice(event),
                    }
                    body.extend_from_slice(b"}\n");
                    ok = out.piece_done();
                }
                Endpoint::Raw => {
                    raw_meta.get_or_insert_with(|| {
                        (env.host.unwrap_or_default().to_owned(), meta.clone())
                    });
                    match meta
                        .send_original
                        .then(|| crate::envelope::original(event))
                        .flatten()
                    {
                        Some(text) => body.extend_from_slice(text.as_bytes()),
                        None => body.extend_from_slice(event),
                    }
                    body.push(b'\n');
                    ok = out.piece_done();
                }
            }
        }
        match (self.cfg.kind, &raw_meta) {
            (Endpoint::Raw, Some((host, meta))) => {
                let mut q = Vec::new();
                for (k, v) in [
                    ("index", &meta.index),
                    ("sourcetype", &meta.sourcetype),
                    ("source", &meta.source),
                ] {
                    if !v.is_empty() {
                        q.push(format!("{k}={}", urlencode(v)));
                    }
                }
                let host = if meta.host.is_empty() {
                    host.clone()
                } else {
                    meta.host.clone()
                };
                if !host.is_empty() {
                    q.push(format!("host={}", urlencode(&host)));
                }
                if q.is_empty() {
                    "/services/collector/raw".to_owned()
                } else {
                    format!("/services/collector/raw?{}", q.join("&"))
                }
            }
            (Endpoint::Raw, None) => "/services/collector/raw".to_owned(),
            (Endpoint::Event, _) => "/services/collector/event".to_owned(),
        }
    }
}

/// Splunk's answer → what to do with each event (pure; see the module documentation).
pub fn classify(events: usize, response: &HecResponse) -> Verdict {
    let (status, body, retry_after) = match response {
        HecResponse::Transport(e) => {
            return Verdict::Retry {
                reason: format!("transport: {e}"),
                after: None,
            }
        }
        HecResponse::AckTimeout => {
            return Verdict::Retry {
                reason: "not acknowledged by the indexers in time".into(),
                after: None,
            }
        }
        HecResponse::Http {
            status,
            body,
            retry_after,
        } => (*status, body, *retry_after),
    };
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let code = v.get("code").and_then(Value::as_i64);
    let text = v
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let after = retry_after.map(Duration::from_secs);
    match (status, code) {
        (200..=299, _) => Verdict::Delivered,
        (400, Some(6 | 12 | 13)) => {
            let Some(bad) = v.get("invalid-event-number").and_then(Value::as_u64) else {
                // No position given: if the request held one event, it is the one.
                return if events == 1 {
                    Verdict::Items(vec![Item::Dead(format!(
                        "splunk code {}: {text}",
                        code.unwrap_or(0)
                    ))])
                } else {
                    Verdict::Retry {
                        reason: format!(
                            "splunk code {}: {text} (no event number)",
                            code.unwrap_or(0)
                        ),
                        after: None,
                    }
                };
            };
            let bad = bad as usize;
            let items = (0..events)
                .map(|i| match i.cmp(&bad) {
                    std::cmp::Ordering::Less => Item::Ok,
                    std::cmp::Ordering::Equal => {
                        Item::Dead(format!("splunk code {}: {text}", code.unwrap_or(0)))
                    }
                    std::cmp::Ordering::Greater => Item::Retry("after an invalid event".into()),
                })
                .collect();
            Verdict::Items(items)
        }
        _ => Verdict::Retry {
            reason: format!("HTTP {status}, splunk code {}: {text}", code.unwrap_or(-1)),
            after,
        },
    }
}

/// `s` as a JSON string. Most metadata values need no escaping: those are copied as they are.
fn json_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    json_str_inner(out, s);
    out.push(b'"');
}

/// `time_us` (microseconds since the epoch) as HEC's `time`: seconds with six decimals, exact
/// (a float would not be).
fn epoch_seconds(out: &mut Vec<u8>, time_us: i64) {
    let secs = time_us.div_euclid(1_000_000);
    let micros = time_us.rem_euclid(1_000_000) as u32;
    out.extend_from_slice(itoa::Buffer::new().format(secs).as_bytes());
    let mut frac = *b".000000";
    let mut m = micros;
    for d in frac.iter_mut().skip(1).rev() {
        *d = b'0' + (m % 10) as u8;
        m /= 10;
    }
    out.extend_from_slice(&frac);
}

/// [`template`] written straight into `out` as a JSON string (no string built per event).
fn template_json(out: &mut Vec<u8>, t: &str, env: &EnvelopeRef<'_>) {
    if !t.contains('{') {
        return json_str(out, t);
    }
    out.push(b'"');
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        json_str_inner(out, rest.get(..open).unwrap_or_default());
        let after = rest.get(open..).unwrap_or_default();
        let (value, len) = placeholder(after, env);
        json_str_inner(out, value);
        rest = after.get(len..).unwrap_or_default();
    }
    json_str_inner(out, rest);
    out.push(b'"');
}

/// The value of the placeholder `after` starts with, and the placeholder's length (a lone `{`
/// stands for itself).
fn placeholder<'e>(after: &str, env: &EnvelopeRef<'e>) -> (&'e str, usize) {
    [
        ("{class}", Some(env.class)),
        ("{agent}", env.agent),
        ("{stream}", env.stream),
        ("{host}", env.host),
        ("{channel}", env.channel),
    ]
    .into_iter()
    .find(|(name, _)| after.starts_with(name))
    .map_or(("{", 1), |(name, v)| (v.unwrap_or(""), name.len()))
}

/// `s` holds a byte JSON escapes (a control character, a quote or a backslash). Without an
/// early exit, so the compiler checks many bytes at a time.
fn needs_escape(s: &str) -> bool {
    s.bytes().fold(false, |acc, b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// `s` escaped for inside a JSON string (no quotes).
fn json_str_inner(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s) {
        out.extend_from_slice(s.as_bytes());
    } else {
        let quoted = serde_json::to_string(s).unwrap_or_default();
        let inner = quoted.get(1..quoted.len().saturating_sub(1));
        out.extend_from_slice(inner.unwrap_or_default().as_bytes());
    }
}

/// `t` with `{class}`, `{agent}`, `{stream}`, `{host}` and `{channel}` replaced, in one pass.
fn template<'t>(t: &'t str, env: &EnvelopeRef<'_>) -> std::borrow::Cow<'t, str> {
    if !t.contains('{') {
        return std::borrow::Cow::Borrowed(t);
    }
    let mut out = String::with_capacity(t.len() + 32);
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        out.push_str(rest.get(..open).unwrap_or_default());
        let after = rest.get(open..).unwrap_or_default();
        let (value, len) = placeholder(after, env);
        out.push_str(value);
        rest = after.get(len..).unwrap_or_default();
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Read the token from `path` (trimmed).
pub fn read_token(path: &Path) -> Result<String, String> {
    let t = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let t = t.trim().to_owned();
    if t.is_empty() {
        return Err(format!("{}: empty token file", path.display()));
    }
    Ok(t)
}

/// Wrap for the driver.
pub fn shared(sink: HecSink) -> Arc<HecSink> {
    Arc::new(sink)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn http(status: u16, body: &str) -> HecResponse {
        HecResponse::Http {
            status,
            body: body.into(),
            retry_after: None,
        }
    }

    #[test]
    fn metadata_strings_are_written_as_serde_json_writes_them() {
        for s in [
            "",
            "plc-7",
            "hmi \"2\"",
            "back\\slash",
            "tab\there",
            "\u{1f}\u{7f}",
            "Überwachung 東京",
            "a/b<c>&'",
        ] {
            let mut ours = Vec::new();
            super::json_str(&mut ours, s);
            assert_eq!(ours, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn templates_and_times_are_written_as_the_general_path_writes_them() {
        let env = EnvelopeRef {
            class: "syslog",
            agent: Some("zone \"3\""),
            stream: Some("tab\tstream"),
            host: Some("plc-7"),
            channel: None,
            ..EnvelopeRef::default()
        };
        for t in [
            "",
            "weir:{class}",
            "{agent}/{stream}/{host}/{channel}/{class}",
            "plain",
            "odd { brace {unknown} and back\\slash {class",
            "Überwachung {host} 東京",
        ] {
            let mut ours = Vec::new();
            super::template_json(&mut ours, t, &env);
            let general = serde_json::to_vec(&*super::template(t, &env)).unwrap();
            assert_eq!(ours, general, "{t:?}");
        }
        for us in [
            0i64,
            1,
            999_999,
            1_000_000,
            1_700_000_000_123_456,
            -1,
            -1_500_000,
            i64::MAX,
            i64::MIN,
        ] {
            let mut ours = Vec::new();
            super::epoch_seconds(&mut ours, us);
            let general = format!(
                "{}.{:06}",
                us.div_euclid(1_000_000),
                us.rem_euclid(1_000_000)
            );
            assert_eq!(String::from_utf8(ours).unwrap(), general, "{us}");
        }
    }

    #[test]
    fn splunk_answers_become_the_documented_actions() {
        assert_eq!(
            classify(3, &http(200, r#"{"text":"Success","code":0}"#)),
            Verdict::Delivered
        );
        assert_eq!(
            classify(
                4,
                &http(
                    400,
                    r#"{"text":"Invalid data format","code":6,"invalid-event-number":2}"#
                )
            ),
            Verdict::Items(vec![
                Item::Ok,
                Item::Ok,
                Item::Dead("splunk code 6: Invalid data format".into()),
                Item::Retry("after an invalid event".into()),
            ])
        );
        assert!(matches!(
            classify(4, &http(503, r#"{"text":"Server is busy","code":9}"#)),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            classify(4, &http(403, r#"{"text":"Invalid token","code":4}"#)),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            classify(1, &HecResponse::Transport("refused".into())),
            Verdict::Retry { .. }
        ));
        assert_eq!(
            classify(
                1,
                &http(400, r#"{"text":"Event field is required","code":12}"#)
            ),
            Verdict::Items(vec![Item::Dead(
                "splunk code 12: Event field is required".into()
            )])
        );
        let r = HecResponse::Http {
            status: 429,
            body: String::new(),
            retry_after: Some(7),
        };
        assert_eq!(
            classify(1, &r),
            Verdict::Retry {
                reason: "HTTP 429, splunk code -1: ".into(),
                after: Some(Duration::from_secs(7))
            }
        );
    }
}
