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

/// A request body written piece by piece and, when gzipped, compressed as it grows: once the
/// uncompressed bytes pass [`Body::PIECE`] they are deflated while still in the cache and
/// dropped, so a large batch is never held whole before compression (writing a few MiB and
/// reading them back for deflate cost the HEC sink more than the copy itself). Gzip as RFC 1952
/// has it, at the fast level: the link to the SIEM is rarely the bottleneck, the CPU is. The
/// compressor writes the header and trailer and sums the CRC-32 as input enters its window. Its
/// state (about 300 KiB of tables) is kept per thread and reset between bodies: allocating it
/// per request cost more than compressing a small batch.
pub struct Body {
    raw: Vec<u8>,
    gz: Option<(flate2::Compress, Vec<u8>)>,
    /// Compression failed: the body is incomplete.
    failed: bool,
}

thread_local! {
    static BODY_DEFLATE: std::cell::Cell<Option<flate2::Compress>> =
        const { std::cell::Cell::new(None) };
}

impl Body {
    /// Uncompressed bytes gathered before they are deflated.
    pub const PIECE: usize = 64 * 1024;

    /// An empty body, gzipped when `gzip`; `hint` is about its uncompressed size.
    pub fn new(gzip: bool, hint: usize) -> Body {
        if !gzip {
            return Body {
                raw: Vec::with_capacity(hint),
                gz: None,
                failed: false,
            };
        }
        let mut deflate = BODY_DEFLATE
            .with(|d| d.take())
            .unwrap_or_else(|| flate2::Compress::new_gzip(flate2::Compression::fast(), 15));
        deflate.reset();
        Body {
            raw: Vec::with_capacity(Body::PIECE + Body::PIECE / 4),
            gz: Some((deflate, Vec::with_capacity(hint / 4 + 64))),
            failed: false,
        }
    }

    /// Where the next bytes go.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.raw
    }

    /// A piece (an event's line) is complete: deflate what has gathered if it is enough.
    /// False if compression failed (see [`finish`](Self::finish)).
    pub fn piece_done(&mut self) -> bool {
        if self.raw.len() < Body::PIECE || self.failed {
            return !self.failed;
        }
        self.failed = !self.deflate(flate2::FlushCompress::None);
        !self.failed
    }

    fn deflate(&mut self, flush: flate2::FlushCompress) -> bool {
        let Some((d, out)) = &mut self.gz else {
            return true;
        };
        let start = d.total_in();
        loop {
            let consumed = usize::try_from(d.total_in() - start).unwrap_or(usize::MAX);
            let Some(rest) = self.raw.get(consumed..) else {
                return false;
            };
            if rest.is_empty() && flush == flate2::FlushCompress::None {
                self.raw.clear();
                return true;
            }
            if out.capacity() - out.len() < 64 {
                out.reserve(out.len().max(4096));
            }
            let before = (d.total_in(), d.total_out());
            match d.compress_vec(rest, out, flush) {
                Ok(flate2::Status::StreamEnd) => {
                    self.raw.clear();
                    return true;
                }
                Ok(_) if (d.total_in(), d.total_out()) != before => {}
                // No progress with room to write: the stream is stuck.
                Ok(_) | Err(_) => return false,
            }
        }
    }

    /// The finished body, and whether it is gzipped. None if compression failed: the caller
    /// writes the body again with `gzip` off.
    pub fn finish(mut self) -> Option<(Vec<u8>, bool)> {
        if self.gz.is_none() {
            return Some((std::mem::take(&mut self.raw), false));
        }
        if self.failed || !self.deflate(flate2::FlushCompress::Finish) {
            return None;
        }
        let (deflate, out) = self.gz.take()?;
        BODY_DEFLATE.with(|d| d.set(Some(deflate)));
        Some((out, true))
    }
}

/// A request body written by `write` (gzipped when `gzip`; `hint` is about its uncompressed
/// size); if compression fails, written again uncompressed. What `write` returned, the body,
/// and whether it is gzipped.
pub fn write_body<T>(
    gzip: bool,
    hint: usize,
    mut write: impl FnMut(&mut Body) -> T,
) -> (T, Vec<u8>, bool) {
    let mut body = Body::new(gzip, hint);
    let written = write(&mut body);
    if let Some((bytes, gzipped)) = body.finish() {
        return (written, bytes, gzipped);
    }
    let mut plain = Body::new(false, hint);
    let written = write(&mut plain);
    let (bytes, gzipped) = plain.finish().unwrap_or_default();
    (written, bytes, gzipped)
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

    /// One piece each: the body round-trips byte for byte, and the kept state starts afresh.
    #[test]
    fn gzip_round_trips_byte_for_byte_and_the_kept_state_resets_between_bodies() {
        let gzip = |body: &[u8]| {
            let mut b = super::Body::new(true, 0);
            b.buf().extend_from_slice(body);
            assert!(b.piece_done());
            let (gz, on) = b.finish().unwrap();
            assert!(on);
            gz
        };
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{{\"n\":{i},\"msg\":\"pump {} ok\"}}\n", i % 7).into_bytes())
            .collect();
        let noise: Vec<u8> = (0..300_000u64)
            .map(|i| (i.wrapping_mul(6_364_136_223_846_793_005) >> 33) as u8)
            .collect();
        for body in [&b""[..], b"x", &text, &noise, &text[..1000]] {
            let gz = gzip(body);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, body, "{} bytes", body.len());
            // One member: the trailer's length field is the body's.
            assert_eq!(&gz[gz.len() - 4..], &(body.len() as u32).to_le_bytes());
        }
        assert!(gzip(&text).len() < text.len() / 4);
    }

    /// A body written in pieces and deflated as it grows reads back as the pieces joined, byte
    /// for byte, gzipped or not, for bodies far past a piece and one after another on a thread
    /// (the kept state starts afresh each time).
    #[test]
    fn a_body_deflated_piece_by_piece_reads_back_whole() {
        use super::Body;
        let mut seed = 7u64;
        for (events, gzip) in [
            (0, true),
            (1, true),
            (5_000, true),
            (3, false),
            (2_000, false),
        ] {
            let mut body = Body::new(gzip, 0);
            let mut want = Vec::new();
            for i in 0..events {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let line = match i % 500 {
                    // Now and then a line larger than a piece, of noise.
                    499 => (0..(Body::PIECE + 1000) as u64)
                        .map(|k| (seed.wrapping_add(k).wrapping_mul(0x9e37_79b9) >> 13) as u8)
                        .collect(),
                    _ => format!("{{\"time\":{i},\"event\":\"pump {} ok\"}}\n", seed % 97)
                        .into_bytes(),
                };
                body.buf().extend_from_slice(&line);
                want.extend_from_slice(&line);
                assert!(body.piece_done());
            }
            let (out, gzipped) = body.finish().unwrap();
            assert_eq!(gzipped, gzip);
            let back = if gzip {
                let mut back = Vec::new();
                flate2::read::GzDecoder::new(&out[..])
                    .read_to_end(&mut back)
                    .unwrap();
                back
            } else {
                out
            };
            assert_eq!(back, want, "{events} events, gzip {gzip}");
        }
    }
}
