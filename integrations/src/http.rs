//! What the HTTP sinks (Splunk HEC, Elasticsearch) share: the client and body compression.

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

/// Gzip `body` (RFC 1952; fast level: the link to the SIEM is rarely the bottleneck, the CPU
/// is). The deflate state (about 300 KiB of tables) is kept per thread and reset between
/// bodies: allocating it per request cost more than compressing a small batch. The compressor
/// writes the gzip header and trailer itself and sums the CRC-32 over each piece of input as
/// it enters its window (a separate pass over a large body read it back from memory). If
/// compression fails the body goes as it is... which the caller must then not label gzip, so
/// failure returns None.
pub fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        static DEFLATE: std::cell::RefCell<flate2::Compress> =
            std::cell::RefCell::new(flate2::Compress::new_gzip(flate2::Compression::fast(), 15));
    }
    let mut out = Vec::with_capacity(body.len() / 4 + 64);
    DEFLATE.with(|d| {
        let mut d = d.try_borrow_mut().ok()?;
        d.reset();
        loop {
            let consumed = usize::try_from(d.total_in()).ok()?;
            let rest = body.get(consumed..)?;
            if out.capacity() - out.len() < 64 {
                out.reserve(out.len().max(4096));
            }
            match d.compress_vec(rest, &mut out, flate2::FlushCompress::Finish) {
                Ok(flate2::Status::StreamEnd) => return Some(()),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    })?;
    Some(out)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod gzip_tests {
    use std::io::Read;

    #[test]
    fn gzip_round_trips_byte_for_byte_and_the_kept_state_resets_between_bodies() {
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{{\"n\":{i},\"msg\":\"pump {} ok\"}}\n", i % 7).into_bytes())
            .collect();
        let noise: Vec<u8> = (0..300_000u64)
            .map(|i| (i.wrapping_mul(6_364_136_223_846_793_005) >> 33) as u8)
            .collect();
        for body in [&b""[..], b"x", &text, &noise, &text[..1000]] {
            let gz = super::gzip(body).unwrap();
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, body, "{} bytes", body.len());
            // One member: the trailer's length field is the body's.
            assert_eq!(&gz[gz.len() - 4..], &(body.len() as u32).to_le_bytes());
        }
        assert!(super::gzip(&text).unwrap().len() < text.len() / 4);
    }
}
