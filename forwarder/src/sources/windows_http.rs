//! Windows events as JSON over HTTP POST (NXLog `om_http`, Logstash/Fluent Bit HTTP outputs,
//! scripts): each request body is newline-delimited JSON, or one JSON array of events. Every
//! event is mapped as on the TCP input; the answer comes once all are queued for the diode
//! (`200 {"accepted": N}`), so a full queue slows the client down instead of losing events.
//!
//! Limits: bodies of at most [`MAX_BODY`] (`413` beyond), `POST` only (`405`), no content
//! encoding (`415`), `max_connections` connections at once (more are closed and counted).

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Result;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
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
    super::accept_loop(
        ctx,
        listener,
        cancel,
        |ctx, stream, peer, cancel| async move {
            let service = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(handle(&ctx, req, peer).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                r = conn => if let Err(error) = r {
                    debug!(message = "HTTP connection ended.", %peer, %error);
                },
                _ = cancel.cancelled() => {}
            }
        },
    )
    .await;
}

fn answer(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(
    ctx: &SourceContext,
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
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(error) => {
            if error.is::<http_body_util::LengthLimitError>() {
                return answer(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!(r#"{{"error":"bodies are limited to {MAX_BODY} bytes"}}"#),
                );
            }
            return answer(
                StatusCode::BAD_REQUEST,
                r#"{"error":"the body could not be read"}"#,
            );
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
