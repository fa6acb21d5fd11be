/*!
Prometheus `/metrics` and `/health` on both sides.

The exposition is rendered from the same counters as the JSON summary printed at exit (one
source of truth): a number `x_total` becomes `weir_x_total`, an object of numbers becomes one
series per key with a `class` or `reason` label. Names ending in `_total` are counters, the
rest gauges. Text format 0.0.4.

The server is deliberately small: HTTP/1.1 `GET` only, one request per connection, a request
head of at most 8 KiB read within 5 seconds, at most 16 connections at once. Bind it to a
management address; it serves counters, never events.
*/

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// What the endpoint shows: the counters (as in the exit summary) and the health document.
pub trait Source: Send + Sync + 'static {
    /// The counters, as the JSON summary.
    fn counters(&self) -> Value;
    /// `/health`: (healthy, document).
    fn health(&self) -> (bool, Value);
}

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: usize = 16;

/// Bind `listen` and serve until `cancel`; returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    source: Arc<dyn Source>,
    cancel: CancellationToken,
) -> Result<SocketAddr> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot bind metrics listener {listen}"))?;
    let local = listener.local_addr()?;
    info!(message = "Metrics listening.", address = %local, paths = "/metrics /health");
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                _ = cancel.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(error) => {
                        debug!(message = "Metrics accept failed.", %error);
                        continue;
                    }
                },
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                drop(stream); // over the limit: close at once
                continue;
            };
            let source = source.clone();
            tokio::spawn(async move {
                if let Err(error) = handle(stream, &*source).await {
                    debug!(message = "Metrics request failed.", %peer, %error);
                }
                drop(permit);
            });
        }
    });
    Ok(local)
}

async fn handle(mut stream: TcpStream, source: &dyn Source) -> Result<()> {
    let mut head = Vec::with_capacity(1024);
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            respond(&mut stream, 431, "text/plain", "request head too large\n").await?;
            // Read what the client is still sending (briefly, boundedly) so that closing does
            // not reset the connection before it has read the answer.
            let mut drained = 0usize;
            while drained < (1 << 20) {
                match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => drained += n,
                    _ => break,
                }
            }
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let n = match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(r) => r?,
            Err(_) => return respond(&mut stream, 408, "text/plain", "timeout\n").await,
        };
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => {
            let body = render(&source.counters());
            respond(&mut stream, 200, "text/plain; version=0.0.4", &body).await
        }
        ("GET", "/health") => {
            let (ok, doc) = source.health();
            let status = if ok { 200 } else { 503 };
            respond(&mut stream, status, "application/json", &format!("{doc}\n")).await
        }
        ("GET", _) => respond(&mut stream, 404, "text/plain", "try /metrics or /health\n").await,
        _ => respond(&mut stream, 405, "text/plain", "GET only\n").await,
    }
}

async fn respond(stream: &mut TcpStream, status: u16, kind: &str, body: &str) -> Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

/// Prometheus text exposition of a JSON summary.
pub fn render(summary: &Value) -> String {
    let mut out = String::new();
    let Some(map) = summary.as_object() else {
        return out;
    };
    // Sorted, whatever the map's own order (serde_json's `preserve_order` may be on).
    for (key, value) in sorted(map) {
        let name = format!("weir_{key}");
        let kind = if key.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        match value {
            Value::Number(n) => {
                let _ = writeln!(out, "# TYPE {name} {kind}\n{name} {n}");
            }
            Value::Object(series) if series.values().any(Value::is_object) => {
                // `{"sink": {"NAME": {"events_sent_total": n, ..}}}` →
                // `weir_sink_events_sent_total{sink="NAME"} n`
                let mut names: Vec<&String> = series
                    .values()
                    .filter_map(Value::as_object)
                    .flat_map(|o| o.keys())
                    .collect();
                names.sort();
                names.dedup();
                for sub in names {
                    let metric = format!("weir_{key}_{sub}");
                    let kind = if sub.ends_with("_total") {
                        "counter"
                    } else {
                        "gauge"
                    };
                    let _ = writeln!(out, "# TYPE {metric} {kind}");
                    for (label_value, obj) in sorted(series) {
                        if let Some(n) = obj.get(sub).and_then(Value::as_u64) {
                            let _ =
                                writeln!(out, "{metric}{{{key}=\"{}\"}} {n}", escape(label_value));
                        }
                    }
                }
            }
            Value::Object(series) => {
                let label = if key.contains("dropped")
                    || key.contains("rejected")
                    || key.contains("refused")
                {
                    "reason"
                } else if key.contains("reloads") {
                    "result"
                } else {
                    "class"
                };
                let _ = writeln!(out, "# TYPE {name} {kind}");
                for (label_value, v) in sorted(series) {
                    if let Some(n) = v.as_u64() {
                        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {n}", escape(label_value));
                    }
                }
            }
            _ => {} // `side` and other strings are not samples
        }
    }
    out
}

fn sorted(map: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summaries_render_as_prometheus_text() {
        let text = render(&json!({
            "side": "rx",
            "diode_gaps_total": 3,
            "events_sent_total": {"syslog": 10, "weir": 2},
            "events_dropped_total": {"queue_full": 0},
            "sink_queue_bytes": 512,
            "sink": {"splunk": {"events_sent_total": 7, "buffer_records": 1}},
        }));
        assert_eq!(
            text,
            "# TYPE weir_diode_gaps_total counter\nweir_diode_gaps_total 3\n\
             # TYPE weir_events_dropped_total counter\nweir_events_dropped_total{reason=\"queue_full\"} 0\n\
             # TYPE weir_events_sent_total counter\nweir_events_sent_total{class=\"syslog\"} 10\nweir_events_sent_total{class=\"weir\"} 2\n\
             # TYPE weir_sink_buffer_records gauge\nweir_sink_buffer_records{sink=\"splunk\"} 1\n\
             # TYPE weir_sink_events_sent_total counter\nweir_sink_events_sent_total{sink=\"splunk\"} 7\n\
             # TYPE weir_sink_queue_bytes gauge\nweir_sink_queue_bytes 512\n"
        );
    }

    /// The Grafana dashboard shipped in forwarder/packaging/grafana only queries metrics that
    /// the two sides export.
    #[test]
    fn the_grafana_dashboard_queries_exported_metrics() {
        let mut sink = weir_integrations::driver::SinkStats::default().to_json();
        if let Value::Object(m) = &mut sink {
            for k in [
                "buffer_dropped_total",
                "buffer_corrupt_records_total",
                "buffer_records",
                "buffer_bytes",
            ] {
                m.insert(k.into(), 0.into());
            }
        }
        let mut rx = crate::telemetry::RxStats::default().to_json();
        rx["sink"] = json!({ "splunk": sink });
        let exported = format!(
            "{}{}",
            render(&crate::telemetry::TxStats::default().to_json()),
            render(&rx)
        );
        let names: std::collections::BTreeSet<&str> = exported
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let dashboard: Value =
            serde_json::from_str(include_str!("../packaging/grafana/weir-overview.json"))
                .expect("dashboard JSON");
        let mut used = 0;
        for panel in dashboard["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("expr");
                for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if word.starts_with("weir_") {
                        used += 1;
                        assert!(
                            names.contains(word),
                            "{word} is not exported (panel {})",
                            panel["title"]
                        );
                    }
                }
            }
        }
        assert!(used >= 25, "{used}");
    }
}
