/*!
The IT side's outputs: every sink consumes events (their canonical JSON) through the one [`Sink`]
trait.

Local outputs ([`file::FileSink`], NDJSON with size-based rotation, and [`stdout::StdoutSink`])
are written directly; the Splunk HEC ([`hec`]), Kafka ([`kafka`]) and Elasticsearch
([`elasticsearch`]) sinks share one batching/retry [`driver`] and a crash-safe [`buffer`] each.
[`kibana`] generates the saved objects shipped in `integrations/kibana/`.
*/

pub mod buffer;
pub mod driver;
pub mod elasticsearch;
pub mod envelope;
pub mod file;
pub mod hec;
pub mod http;
pub mod kafka;
pub mod kibana;
pub mod stdout;
#[cfg(feature = "testing")]
pub mod testing;

/// `v` with the keys of every object in byte order, so that text generated from it is the same
/// whether or not another crate in the build turned on serde_json's `preserve_order` feature
/// (which keeps insertion order instead). The shipped SIEM content is generated through it.
pub fn canonical_json(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical_json(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical_json).collect()),
        other => other.clone(),
    }
}

/// Why a sink could not take a batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// An IO error writing the output.
    #[error("{sink}: {source}")]
    Io {
        /// The sink's name.
        sink: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A local output (file, stdout), written directly by the receiver's sink thread. SIEMs go
/// through [`driver::Sink`] and a disk buffer instead.
pub trait LocalSink: Send {
    /// The sink's configured name (for logs and metrics).
    fn name(&self) -> &str;
    /// Write a batch of events, each its canonical JSON (one line, no newline). On error
    /// nothing of the batch may be assumed written.
    fn write_batch(&mut self, events: &[&[u8]]) -> Result<(), SinkError>;
    /// Make everything written so far durable (or at least handed to the OS).
    fn flush(&mut self) -> Result<(), SinkError>;
}

/// Events' JSON as NDJSON into `buf` (appending).
pub fn encode_ndjson(events: &[&[u8]], buf: &mut Vec<u8>) {
    for e in events {
        buf.extend_from_slice(e);
        buf.push(b'\n');
    }
}

/// A secret (a token, a password, an API key): `Debug` never prints it, only
/// [`Secret::expose`] hands it out, where it goes on the wire.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_owned())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}
