/*!
`weir replay FILE`: feed a recorded file through the agent's normalisation.

The file's kind is detected by content, never by name: an `.evtx` log (`ElfFile` magic), a
packet capture (pcap or pcapng magic), Windows events as JSON lines (a first non-blank byte
`{`), or syslog lines (anything else). A capture goes through the same sensor as a `span`
source (flows, industrial protocol transactions, notable events) with its default settings.

* `--print` (the default): the normalised events as NDJSON on stdout, exactly as the agent
  would put them on the diode.
* `--to HOST:PORT`: stream the file into a running agent's TCP source, as a device would:
  syslog as RFC 6587 octet-counted frames (to a `syslog_tcp` source), Windows JSON lines as
  they are, `.evtx` records as one JSON object per line (to a `windows_json_tcp` source, which
  maps them exactly as the XML). Captures cannot be sent this way (an agent reads packets from
  an interface or a `capture_file` source, not from a socket): use `--print`, or replay the
  capture onto the SPAN interface with `tcpreplay`.

A progress line is drawn on stderr when it is a terminal; a summary always ends the run.
*/

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::Utc;
use chrono_tz::Tz;
use weir_parsers::syslog::{self, ParseContext};
use weir_parsers::windows::{self, WinContext};
use weir_schemas::{Event, EventClass};

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A Windows `.evtx` log.
    Evtx,
    /// Windows events, one JSON object per line.
    WindowsJson,
    /// Syslog, one message per line.
    Syslog,
    /// A packet capture (pcap or pcapng).
    Capture,
}

/// The kind of a file from its first bytes.
pub fn detect(head: &[u8]) -> Kind {
    const PCAP: [[u8; 4]; 5] = [
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
        [0x0a, 0x0d, 0x0d, 0x0a],
    ];
    if head.starts_with(b"ElfFile\0") {
        Kind::Evtx
    } else if head.get(..4).is_some_and(|m| PCAP.iter().any(|p| p == m)) {
        Kind::Capture
    } else if head
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
    {
        Kind::WindowsJson
    } else {
        Kind::Syslog
    }
}

/// Where the events go.
pub enum Output {
    /// NDJSON on stdout.
    Print,
    /// A running agent's TCP source.
    Agent(SocketAddr),
}

struct Progress {
    started: Instant,
    last: Instant,
    draw: bool,
    records: u64,
    per_class: [u64; EventClass::ALL.len()],
    raw: u64,
    damaged: u64,
    total_bytes: u64,
}

impl Progress {
    fn tick(&mut self, done_bytes: Option<u64>) {
        if !self.draw || self.last.elapsed() < Duration::from_millis(250) {
            return;
        }
        self.last = Instant::now();
        let rate = self.records as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let pct = done_bytes
            .filter(|_| self.total_bytes > 0)
            .map(|d| format!(" {:>3}%", d * 100 / self.total_bytes))
            .unwrap_or_default();
        eprint!("\r  {} records{pct}  {rate:.0}/s   ", self.records);
    }

    fn count(&mut self, event: Option<&Event>) {
        self.records += 1;
        if let Some(e) = event {
            if let Some(i) = EventClass::ALL.iter().position(|c| *c == e.class()) {
                if let Some(n) = self.per_class.get_mut(i) {
                    *n += 1;
                }
            }
            if e.weir.parse_error.is_some() {
                self.raw += 1;
            }
        }
    }
}

/// Replay `file`.
pub fn run(file: &Path, output: Output, timezone: Tz) -> Result<ExitCode> {
    let mut head = [0u8; 4096];
    let n = std::fs::File::open(file)
        .and_then(|mut f| f.read(&mut head))
        .with_context(|| format!("cannot read {}", file.display()))?;
    let kind = detect(head.get(..n).unwrap_or_default());
    if kind == Kind::Capture && !matches!(output, Output::Print) {
        bail!(
            "{} is a packet capture: it can only be printed (--print); to feed it to an agent, use a capture_file source or tcpreplay it onto the span interface",
            file.display()
        );
    }
    let total_bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let mut progress = Progress {
        started: Instant::now(),
        last: Instant::now(),
        draw: std::io::stderr().is_terminal(),
        records: 0,
        per_class: [0; EventClass::ALL.len()],
        raw: 0,
        damaged: 0,
        total_bytes,
    };
    let stdout = std::io::stdout();
    let mut out: Box<dyn Write> = match output {
        Output::Print => Box::new(std::io::BufWriter::with_capacity(1 << 16, stdout.lock())),
        Output::Agent(addr) => Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            TcpStream::connect(addr)
                .with_context(|| format!("cannot connect to the agent at {addr}"))?,
        )),
    };
    let print = matches!(output, Output::Print);
    let received_at = Utc::now();
    let wctx = WinContext {
        received_at,
        peer: None,
        input: "replay",
        keep_original: true,
        timezone,
    };
    let sctx = ParseContext {
        received_at,
        timezone,
        peer: None,
        input: "replay",
        keep_original: true,
    };
    let mut buf = Vec::with_capacity(8192);
    match kind {
        Kind::Evtx => {
            let mut parser = evtx::EvtxParser::from_path(file)
                .with_context(|| format!("{} is not a readable .evtx file", file.display()))?
                .with_configuration(crate::sources::evtx::settings());
            if print {
                for record in parser.records() {
                    let Ok(record) = record else {
                        progress.damaged += 1;
                        continue;
                    };
                    let event = crate::sources::evtx::record_event(record, &wctx);
                    buf.clear();
                    event.write_json(&mut buf);
                    buf.push(b'\n');
                    out.write_all(&buf)?;
                    progress.count(Some(&event));
                    progress.tick(None);
                }
            } else {
                for record in parser.records_json_value() {
                    let Ok(record) = record else {
                        progress.damaged += 1;
                        continue;
                    };
                    serde_json::to_writer(&mut out, &record.data)?;
                    out.write_all(b"\n")?;
                    progress.count(None);
                    progress.tick(None);
                }
            }
        }
        Kind::WindowsJson | Kind::Syslog => {
            let reader = BufReader::with_capacity(
                1 << 16,
                std::fs::File::open(file)
                    .with_context(|| format!("cannot read {}", file.display()))?,
            );
            let mut done = 0u64;
            for line in reader.split(b'\n') {
                let line = line?;
                done += line.len() as u64 + 1;
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if print {
                    let event = if kind == Kind::Syslog {
                        syslog::normalise(line, &sctx)
                    } else {
                        windows::normalise_json(line, &wctx)
                    };
                    buf.clear();
                    event.write_json(&mut buf);
                    buf.push(b'\n');
                    out.write_all(&buf)?;
                    progress.count(Some(&event));
                } else {
                    if kind == Kind::Syslog {
                        write!(out, "{} ", line.len())?;
                        out.write_all(line)?;
                    } else {
                        out.write_all(line)?;
                        out.write_all(b"\n")?;
                    }
                    progress.count(None);
                }
                progress.tick(Some(done));
            }
        }
        Kind::Capture => {
            use weir_parsers::packet::capture::{CaptureReader, Item};
            let mut sensor = weir_parsers::sensor::Sensor::new(Default::default());
            let mut f = std::fs::File::open(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let mut reader = CaptureReader::new();
            let mut data: Vec<u8> = Vec::with_capacity(1 << 20);
            let (mut start, mut done, mut eof) = (0usize, 0u64, false);
            let mut emit = |sensor: &mut weir_parsers::sensor::Sensor,
                            out: &mut Box<dyn Write>,
                            progress: &mut Progress|
             -> Result<()> {
                for mut event in sensor.drain() {
                    event.set_input("replay", None);
                    buf.clear();
                    event.write_json(&mut buf);
                    buf.push(b'\n');
                    out.write_all(&buf)?;
                    progress.count(Some(&event));
                }
                Ok(())
            };
            loop {
                loop {
                    match reader.next(data.get(start..).unwrap_or_default()) {
                        Ok(Some((n, item))) => {
                            start += n;
                            done += n as u64;
                            if let Item::Packet(p) = item {
                                sensor.packet(p.ts_nanos, p.link, p.data);
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            progress.damaged += 1;
                            eprintln!("weir replay: {}: {e}; stopping there", file.display());
                            eof = true;
                            start = data.len();
                            break;
                        }
                    }
                }
                emit(&mut sensor, &mut out, &mut progress)?;
                progress.tick(Some(done));
                if eof {
                    if data.len() > start {
                        progress.damaged += 1;
                        eprintln!(
                            "weir replay: {}: the file ends inside a record ({} bytes left over)",
                            file.display(),
                            data.len() - start
                        );
                    }
                    break;
                }
                data.drain(..start);
                start = 0;
                let have = data.len();
                data.resize(have + (1 << 20), 0);
                let n = f.read(&mut data[have..])?;
                data.truncate(have + n);
                eof = n == 0;
            }
            sensor.flush();
            emit(&mut sensor, &mut out, &mut progress)?;
            let st = sensor.stats();
            eprintln!(
                "  packets {}  not IP {}  undecodable {}  flows {}  OT transactions {}",
                st.packets,
                st.not_ip,
                st.undecodable,
                sensor.flow_stats().flows,
                st.transactions
            );
        }
    }
    out.flush()?;
    drop(out);
    if progress.draw {
        eprintln!();
    }
    let secs = progress.started.elapsed().as_secs_f64();
    eprintln!(
        "weir replay: {} ({:?}): {} records in {:.2}s ({:.0}/s){}",
        file.display(),
        kind,
        progress.records,
        secs,
        progress.records as f64 / secs.max(1e-9),
        match output {
            Output::Print => String::new(),
            Output::Agent(addr) => format!(", sent to the agent at {addr}"),
        }
    );
    if print {
        for (class, n) in EventClass::ALL.iter().zip(progress.per_class) {
            if n > 0 {
                eprintln!("  {:<10} {n}", class.as_str());
            }
        }
        eprintln!("  raw (unparsed) {}", progress.raw);
    }
    if kind == Kind::Evtx {
        eprintln!("  damaged records skipped {}", progress.damaged);
    }
    if kind == Kind::Capture && progress.damaged > 0 {
        eprintln!("  damage: the capture is cut or corrupt (see above)");
    }
    Ok(ExitCode::SUCCESS)
}
