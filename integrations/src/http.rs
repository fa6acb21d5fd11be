//! What the HTTP sinks (Splunk HEC, Elasticsearch) share: the client and body compression.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// A pooled HTTPS client (rustls) with `timeout` per request, trusting `ca_file` (PEM) on top
/// of the system roots when given.
pub fn client(timeout: Duration, ca_file: Option<&Path>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(8)
        .use_rustls_tls();
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("{}: not a PEM certificate: {e}", ca.display()))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| e.to_string())
}

/// Gzip `body` (fast level: the link to the SIEM is rarely the bottleneck, the CPU is). If
/// compression fails the body goes as it is... which the caller must then not label gzip, so
/// failure returns None.
pub fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(body).ok()?;
    enc.finish().ok()
}

/// `body` gzipped when `on` (and compression worked), with whether it is.
pub fn maybe_gzip(body: Vec<u8>, on: bool) -> (Vec<u8>, bool) {
    match on.then(|| gzip(&body)).flatten() {
        Some(gz) => (gz, true),
        None => (body, false),
    }
}

/// `Retry-After` in whole seconds, if the response has one.
pub fn retry_after(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}
