//! NDJSON on standard output, for debugging and pipes.

use std::io::Write;

use crate::{encode_ndjson, LocalSink, SinkError};

/// Writes one JSON event per line to stdout.
#[derive(Debug, Default)]
pub struct StdoutSink {
    name: String,
    buf: Vec<u8>,
}

impl StdoutSink {
    /// A stdout sink called `name`.
    pub fn new(name: &str) -> StdoutSink {
        StdoutSink {
            name: name.to_owned(),
            buf: Vec::new(),
        }
    }
}

impl LocalSink for StdoutSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write_batch(&mut self, events: &[&[u8]]) -> Result<(), SinkError> {
        self.buf.clear();
        encode_ndjson(events, &mut self.buf);
        std::io::stdout()
            .lock()
            .write_all(&self.buf)
            .map_err(|source| SinkError::Io {
                sink: self.name.clone(),
                source,
            })
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        std::io::stdout()
            .lock()
            .flush()
            .map_err(|source| SinkError::Io {
                sink: self.name.clone(),
                source,
            })
    }
}
