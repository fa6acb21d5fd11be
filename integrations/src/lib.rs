/*!
The IT side's outputs: every sink consumes events (their canonical JSON) through the one [`Sink`]
trait.

Today: [`file::FileSink`] (NDJSON with size-based rotation) and [`stdout::StdoutSink`]. The
Splunk HEC, Kafka and Elasticsearch sinks, with the shared batching/retry driver and crash-safe
buffers, build on the same trait.
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
