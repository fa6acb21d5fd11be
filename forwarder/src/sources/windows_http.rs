//! Windows events as JSON over HTTP POST (NXLog `om_http`, Logstash/Fluent Bit HTTP outputs,
//! scripts): each request body is newline-delimited JSON, or one JSON array of events. Every
//! event is mapped as on the TCP input; the answer comes once all are queued for the diode
//! (`200 {"accepted": N}`), so a full queue slows the client down instead of losing events.
//!
//! Limits: bodies of at most [`MAX_BODY`] (`413` beyond), `POST` only (`405`), no content
//! encoding (`415`), the connection slots and idle timeout of every TCP source
//! ([`super::admission`]), a whole body within `body_timeout_seconds` (`408` and the
//! connection closed), and at most `max_inflight_body_bytes` of bodies held at once over all
//! connections (`503` with `Retry-After` beyond: the client sends again later). Memory is
//! therefore bounded by the in-flight budget plus `max_connections` × 64 KiB of read buffers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::SourceContext;

/// The largest request body accepted.
pub const MAX_BODY: usize = 32 << 20;

/// Bind the listener.
pub async fn bind(ctx: &SourceContext) -> Result<(TcpListener, SocketAddr)> {
    super::bind_tcp(ctx, "HTTP").await
}

/// Serve until cancelled.
pub async fn run(ctx: SourceContext, listener: TcpListener, cancel: CancellationToken) {
    let budget = Arc::new(BodyBudget {
        total: Arc::new(Semaphore::new(ctx.cfg.max_inflight_body_bytes)),
        per_address_max: (ctx.cfg.max_inflight_body_bytes / 2).max(MAX_BODY),
        per_address: std::sync::Mutex::new(std::collections::HashMap::new()),
    });
    super::accept_loop(ctx, listener, cancel, move |ctx, stream, peer, cancel| {
        let budget = budget.clone();
        async move {
            let service = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                let budget = budget.clone();
                async move { Ok::<_, Infallible>(handle(&ctx, &budget, req, peer).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .max_buf_size(READ_BUFFER)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                r = conn => if let Err(error) = r {
                    debug!(message = "HTTP connection ended.", %peer, %error);
                },
                _ = cancel.cancelled() => {}
            }
        }
    })
    .await;
}

/// Hyper's read buffer per connection at most (headers must fit).
const READ_BUFFER: usize = 64 << 10;

fn answer(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Why a body was not read.
enum BodyError {
    TooLarge,
    Busy,
    Unreadable,
}

/// Request body bytes held at once: over all connections, and per peer address (half of the
/// whole, at least one full body), so that one host's unfinished bodies cannot refuse every
/// other host.
struct BodyBudget {
    total: Arc<Semaphore>,
    per_address_max: usize,
    per_address: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// Bytes held for one body; given back when dropped.
struct Held {
    budget: Arc<BodyBudget>,
    address: std::net::IpAddr,
    bytes: usize,
    _permits: Vec<tokio::sync::OwnedSemaphorePermit>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut map = self
            .budget
            .per_address
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.address) {
            *n = n.saturating_sub(self.bytes);
            if *n == 0 {
                map.remove(&self.address);
            }
        }
    }
}

impl Held {
    /// Hold `n` more bytes, or say the budget is spent.
    fn add(&mut self, n: usize) -> Result<(), BodyError> {
        let mut map = self
            .budget
            .per_address
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = map.entry(self.address).or_insert(0);
        if *mine + n > self.budget.per_address_max {
            return Err(BodyError::Busy);
        }
        let permits = u32::try_from(n).map_err(|_| BodyError::TooLarge)?;
        let permit = self
            .budget
            .total
            .clone()
            .try_acquire_many_owned(permits)
            .map_err(|_| BodyError::Busy)?;
        *mine += n;
        self.bytes += n;
        self._permits.push(permit);
        Ok(())
    }
}

/// Read a whole body, holding its bytes against the budget as they come; they go back when
/// the caller drops the [`Held`] (once the events are queued).
async fn read_body(
    mut body: Incoming,
    budget: &Arc<BodyBudget>,
    peer: SocketAddr,
) -> Result<(Bytes, Held), BodyError> {
    // Chunks as they come (no growing buffer that doubles and copies), joined once complete.
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    let mut held = Held {
        budget: budget.clone(),
        address: peer.ip(),
        bytes: 0,
        _permits: Vec::new(),
    };
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Unreadable)?;
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers
        };
        if len + chunk.len() > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        held.add(chunk.len())?;
        len += chunk.len();
        chunks.push(chunk);
    }
    let body = match chunks.len() {
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut data = Vec::with_capacity(len);
            for c in chunks.drain(..) {
                data.extend_from_slice(&c);
            }
            Bytes::from(data)
        }
    };
    Ok((body, held))
}

/// Ask the client to close the connection after this answer.
fn close(r: &mut Response<Full<Bytes>>) {
    r.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
}

async fn handle(
    ctx: &SourceContext,
    budget: &Arc<BodyBudget>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    if req.method() != Method::POST {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"error":"POST events here"}"#,
        );
    }
    if req
        .headers()
        .get(hyper::header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() != b"identity")
    {
        return answer(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            r#"{"error":"content encodings are not accepted"}"#,
        );
    }
    let (body, _held) = match tokio::time::timeout(
        ctx.cfg.body_timeout,
        read_body(req.into_body(), budget, peer),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(BodyError::TooLarge)) => {
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(r#"{{"error":"bodies are limited to {MAX_BODY} bytes"}}"#),
            );
        }
        Ok(Err(BodyError::Busy)) => {
            ctx.stats.http_bodies_refused_busy.inc();
            let mut r = answer(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"error":"too many request bodies in flight; send again later"}"#,
            );
            r.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from_static("1"),
            );
            close(&mut r);
            return r;
        }
        Ok(Err(BodyError::Unreadable)) => {
            return answer(
                StatusCode::BAD_REQUEST,
                r#"{"error":"the body could not be read"}"#,
            );
        }
        Err(_) => {
            ctx.stats.http_bodies_timed_out.inc();
            let mut r = answer(
                StatusCode::REQUEST_TIMEOUT,
                r#"{"error":"the body was not complete within body_timeout_seconds"}"#,
            );
            close(&mut r);
            return r;
        }
    };
    let mut accepted = 0u64;
    for item in items(&body) {
        let record = if item.len() > ctx.cfg.max_message_bytes {
            ctx.stats.framing_errors.inc();
            ctx.raw_record(
                item.get(..ctx.cfg.max_message_bytes).unwrap_or(item),
                peer,
                "frame_too_long",
                "event longer than max_message_bytes cut",
            )
        } else {
            ctx.record(item, peer)
        };
        if ctx.queue.send(record).await.is_err() {
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"error":"shutting down"}"#,
            );
        }
        accepted += 1;
    }
    answer(StatusCode::OK, &format!(r#"{{"accepted":{accepted}}}"#))
}

/// The events of a body: the elements of a top-level JSON array, or its non-blank lines.
fn items(body: &[u8]) -> Vec<&[u8]> {
    let trimmed = body.trim_ascii();
    if trimmed.starts_with(b"[") {
        if let Ok(values) = serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(trimmed) {
            return values.into_iter().map(|v| v.get().as_bytes()).collect();
        }
    }
    body.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.trim_ascii().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::items;

    #[test]
    fn bodies_are_lines_or_an_array() {
        assert_eq!(
            items(b"{\"a\":1}\r\n\n{\"b\":2}\n"),
            vec![&b"{\"a\":1}"[..], b"{\"b\":2}"]
        );
        assert_eq!(
            items(b" [ {\"a\":[1,2]} , {\"b\":2} ] "),
            vec![&b"{\"a\":[1,2]}"[..], b"{\"b\":2}"]
        );
        // Not a valid array: lines, each of which becomes a raw event downstream.
        assert_eq!(
            items(b"[not json\n{\"b\":2}"),
            vec![&b"[not json"[..], b"{\"b\":2}"]
        );
    }
}
