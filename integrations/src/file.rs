//! NDJSON files with size-based rotation.
//!
//! Events are appended to `path`. When the file would grow past `max_bytes`, it is closed and
//! renamed `path.1` (an existing `path.1` becomes `path.2`, and so on up to `max_files`; the
//! oldest is deleted), and a new `path` is started. A batch is never split across files.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{encode_ndjson, LocalSink, SinkError};

/// File sink settings.
#[derive(Clone, Debug)]
pub struct FileSinkConfig {
    /// The file written.
    pub path: PathBuf,
    /// Rotate once the file reaches this size (0: never).
    pub max_bytes: u64,
    /// Rotated files kept (`path.1` .. `path.N`).
    pub max_files: u32,
}

/// The NDJSON file sink.
#[derive(Debug)]
pub struct FileSink {
    name: String,
    cfg: FileSinkConfig,
    out: BufWriter<File>,
    size: u64,
    buf: Vec<u8>,
    rotations: u64,
}

impl FileSink {
    /// Open (append to) the file, creating its directory.
    pub fn open(name: &str, cfg: FileSinkConfig) -> Result<FileSink, SinkError> {
        let err = |source| SinkError::Io {
            sink: name.to_owned(),
            source,
        };
        if let Some(dir) = cfg.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        cut_torn_line(&cfg.path).map_err(err)?;
        let file = open_append(&cfg.path).map_err(err)?;
        let size = file.metadata().map_err(err)?.len();
        Ok(FileSink {
            name: name.to_owned(),
            cfg,
            out: BufWriter::with_capacity(256 * 1024, file),
            size,
            buf: Vec::new(),
            rotations: 0,
        })
    }

    /// How many times the file was rotated.
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        let path = &self.cfg.path;
        let numbered = |n: u32| -> PathBuf {
            let mut p = path.clone().into_os_string();
            p.push(format!(".{n}"));
            p.into()
        };
        if self.cfg.max_files == 0 {
            std::fs::remove_file(path)?;
        } else {
            let _ = std::fs::remove_file(numbered(self.cfg.max_files));
            for n in (1..self.cfg.max_files).rev() {
                let from = numbered(n);
                if from.exists() {
                    std::fs::rename(&from, numbered(n + 1))?;
                }
            }
            std::fs::rename(path, numbered(1))?;
        }
        self.out = BufWriter::with_capacity(256 * 1024, open_append(path)?);
        self.size = 0;
        self.rotations += 1;
        Ok(())
    }
}

/// A process killed while writing leaves the file's last line unfinished: cut it off, back to
/// the last newline, so that the next event starts a line of its own. (The receiver journals
/// every batch before a sink gets it and writes the last one again at start, so the cut
/// event is written again whole.)
pub fn cut_torn_line(path: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        let part = chunk.get_mut(..n).unwrap_or_default();
        f.read_exact(part)?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if end != len {
        f.set_len(end)?;
    }
    Ok(())
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl LocalSink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn write_batch(&mut self, events: &[&[u8]]) -> Result<(), SinkError> {
        self.buf.clear();
        encode_ndjson(events, &mut self.buf);
        let len = self.buf.len() as u64;
        let result = (|| {
            if self.cfg.max_bytes > 0 && self.size > 0 && self.size + len > self.cfg.max_bytes {
                self.rotate()?;
            }
            self.out.write_all(&self.buf)
        })();
        result.map_err(|source| SinkError::Io {
            sink: self.name.clone(),
            source,
        })?;
        self.size += len;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError::Io {
            sink: self.name.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_schemas::{Event, EventClass};

    fn event(i: usize) -> Event {
        let mut e = Event::new(EventClass::Syslog, chrono::DateTime::UNIX_EPOCH);
        e.message = Some(format!("event {i:04}"));
        e
    }

    /// A line torn by a kill is cut back to the last newline wherever it was torn (also past a
    /// 64 KiB read chunk, and with no newline at all); whole files are left as they are.
    #[test]
    fn a_torn_last_line_is_cut_off_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("e.ndjson");
        let long = "y".repeat(200_000);
        for (content, kept) in [
            ("{\"a\":1}\n{\"b\":2}\n".to_owned(), 16),
            ("{\"a\":1}\n{\"b\":2}\n{\"c\"".to_owned(), 16),
            (format!("{{\"a\":1}}\n{long}"), 8),
            (long.clone(), 0),
            (String::new(), 0),
        ] {
            std::fs::write(&path, &content).expect("write");
            cut_torn_line(&path).expect("cut");
            let back = std::fs::read(&path).expect("read");
            assert_eq!(back.len(), kept);
            assert_eq!(&back[..], &content.as_bytes()[..kept]);
        }
        std::fs::remove_file(&path).expect("rm");
        cut_torn_line(&path).expect("a missing file is fine");
    }

    #[test]
    fn rotates_by_size_and_keeps_every_event_exactly_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out/events.ndjson");
        let one = event(0).to_json().len() as u64 + 1;
        let mut sink = FileSink::open(
            "file",
            FileSinkConfig {
                path: path.clone(),
                max_bytes: one * 10,
                max_files: 5,
            },
        )
        .expect("opens");
        for i in 0..35 {
            sink.write_batch(&[&event(i).to_json()]).expect("writes");
        }
        sink.flush().expect("flush");
        assert_eq!(sink.rotations(), 3);
        let mut all = Vec::new();
        for name in [
            "events.ndjson.3",
            "events.ndjson.2",
            "events.ndjson.1",
            "events.ndjson",
        ] {
            let text = std::fs::read_to_string(dir.path().join("out").join(name)).expect("file");
            all.extend(text.lines().map(|l| {
                let e = Event::from_json(l.as_bytes()).expect("valid json");
                e.message.unwrap_or_default()
            }));
        }
        let expected: Vec<String> = (0..35).map(|i| format!("event {i:04}")).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn oldest_rotation_is_deleted_past_max_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("e.ndjson");
        let mut sink = FileSink::open(
            "file",
            FileSinkConfig {
                path,
                max_bytes: 1,
                max_files: 2,
            },
        )
        .expect("opens");
        for i in 0..5 {
            sink.write_batch(&[&event(i).to_json()]).expect("writes");
        }
        sink.flush().expect("flush");
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        names.sort();
        assert_eq!(names, vec!["e.ndjson", "e.ndjson.1", "e.ndjson.2"]);
        let newest = std::fs::read_to_string(dir.path().join("e.ndjson")).expect("read");
        assert!(newest.contains("event 0004"));
    }
}
