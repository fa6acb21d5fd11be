/*!
The `weir` binary's library: CLI, configuration, sources, the diode drivers, the pipelines and
the demo. `main.rs` only parses arguments and calls [`run`].
*/
#![recursion_limit = "256"]

pub mod cli;
pub mod config;
pub mod demo;
pub mod diode;
pub mod durable;
pub mod health;
pub mod ledger;
pub mod metrics;
pub mod pipeline;
pub mod replay;
pub mod sources;
pub mod spool;
pub mod telemetry;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use cli::{Cli, Command};
use config::{Config, DiodeKey};

/// Run one command to completion.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Validate { config } => validate(&config),
        Command::Keygen { output, key_id } => keygen(output.as_deref(), key_id),
        Command::Tx { config } => runtime()?.block_on(serve(&config, true)),
        Command::Rx { config } => runtime()?.block_on(serve(&config, false)),
        Command::Demo { dir, repeat } => runtime()?.block_on(demo::run(&dir, repeat)),
        Command::Replay { file, to, timezone } => {
            let tz: chrono_tz::Tz = timezone.parse().map_err(|_| {
                anyhow::anyhow!("--timezone: {timezone:?} is not an IANA time zone")
            })?;
            let output = match to {
                Some(addr) => replay::Output::Agent(addr),
                None => replay::Output::Print,
            };
            replay::run(&file, output, tz)
        }
        Command::Buffer {
            action: cli::BufferAction::Inspect { dir },
        } => inspect_buffer(&dir),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weir")
        .build()
        .context("cannot start the async runtime")
}

fn validate(path: &std::path::Path) -> Result<ExitCode> {
    match config::load(path)? {
        Config::Tx(c) => {
            // A WEC source's certificates and key are loaded now, not at the first client.
            let mut wec = Vec::new();
            for w in &c.wec_sources {
                let (_, thumbprints) = sources::wec::tls_config(w)
                    .with_context(|| format!("source {}", w.name))?;
                wec.push(format!(
                    "  source {}: Group Policy 'Configure target Subscription Manager': Server=HTTPS://{}:{}/wsman/SubscriptionManager/WEC,Refresh=60,IssuerCA={}",
                    w.name,
                    w.hostname,
                    w.public_port.unwrap_or(w.address.port()),
                    thumbprints.first().map(String::as_str).unwrap_or("")
                ));
            }
            println!(
                "OK: agent config for {:?}: {} source(s), diode to {} (key id {}, settings fingerprint {:016x})",
                c.agent_name,
                c.sources.len()
                    + c.evtx_sources.len()
                    + c.capture_sources.len()
                    + c.wec_sources.len(),
                c.destination,
                c.diode.key.id,
                c.diode.fingerprint()
            );
            for line in wec {
                println!("{line}");
            }
        }
        Config::Rx(c) => println!(
            "OK: receiver config: diode on {}, {} sink(s) (key id {}, settings fingerprint {:016x})",
            c.listen,
            c.sinks.len(),
            c.diode.key.id,
            c.diode.fingerprint()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect_buffer(dir: &std::path::Path) -> Result<ExitCode> {
    let (s, ack) = weir_integrations::buffer::DiskQueue::inspect(dir)
        .with_context(|| format!("cannot inspect {}", dir.display()))?;
    let now = telemetry::unix_ms();
    let age = s
        .oldest_unix_ms
        .map(|t| now.saturating_sub(t) as f64 / 1000.0);
    let report = serde_json::json!({
        "path": dir.display().to_string(),
        "segments": s.segments,
        "records": s.records,
        "bytes": s.bytes,
        "oldest_event_age_seconds": age,
        "ack": { "segment": ack.segment, "offset": ack.offset },
        "corrupt_records": s.damage.corrupt_records,
        "corrupt_bytes": s.damage.corrupt_bytes,
        "torn_tail_bytes": s.damage.torn_tail_bytes,
    });
    println!("{report}");
    eprintln!(
        "{}: {} segment(s), {} record(s) waiting in {} bytes{}; damage: {} corrupt record(s) ({} bytes), {} torn tail bytes",
        dir.display(),
        s.segments,
        s.records,
        s.bytes,
        age.map_or(String::new(), |a| format!(", oldest waiting {a:.1} s")),
        s.damage.corrupt_records,
        s.damage.corrupt_bytes,
        s.damage.torn_tail_bytes
    );
    Ok(ExitCode::SUCCESS)
}

fn keygen(output: Option<&std::path::Path>, key_id: u16) -> Result<ExitCode> {
    let key = DiodeKey::generate(key_id)?;
    match output {
        Some(path) => {
            key.write(path)?;
            eprintln!("Wrote diode key id {key_id} to {} (mode 0600). Copy it to both sides over a trusted channel.", path.display());
        }
        None => print!("{}", key.to_file_text()),
    }
    Ok(ExitCode::SUCCESS)
}

/// What the serve loop waits for.
enum Signal {
    /// SIGTERM or Ctrl-C: drain and stop.
    Stop,
    /// SIGHUP: read the configuration again.
    Reload,
}

/// The process's signals, registered once (so none is lost between two waits).
struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Result<Signal> {
        tokio::select! {
            r = tokio::signal::ctrl_c() => { r?; Ok(Signal::Stop) }
            _ = self.term.recv() => Ok(Signal::Stop),
            _ = self.hup.recv() => Ok(Signal::Reload),
        }
    }
}

/// SIGHUP: read and check the file again; the agent applies source changes in place
/// ([`pipeline::tx::TxHandle::reload`]); the receiver only checks the file.
async fn reload(path: &std::path::Path, running: &mut Running) {
    let loaded = config::load(path);
    match (loaded, running) {
        (Err(error), Running::Tx(h)) => {
            h.stats.reloads_failed.inc();
            tracing::error!(message = "Configuration reload refused: the file does not load; the agent keeps running as it was.", file = %path.display(), error = %format!("{error:#}"));
        }
        (Err(error), Running::Rx(_)) => {
            tracing::error!(message = "Configuration check failed; the receiver keeps running as it was.", file = %path.display(), error = %format!("{error:#}"));
        }
        (Ok(Config::Tx(new)), Running::Tx(h)) => match h.reload(new).await {
            Ok(r) => {
                h.stats.reloads_applied.inc();
                tracing::info!(
                    message = "Configuration reloaded.",
                    unchanged = ?r.unchanged,
                    restarted = ?r.restarted,
                    started = ?r.started,
                    stopped = ?r.stopped
                );
            }
            Err(error) => {
                h.stats.reloads_failed.inc();
                tracing::error!(message = "Configuration reload refused.", error = %format!("{error:#}"));
            }
        },
        (Ok(_), Running::Rx(_)) => {
            tracing::warn!(message = "The receiver does not reload its configuration: the file is valid; restart the receiver to apply it (its sink buffers keep every event across the restart; datagrams arriving while it is down are reported as gaps).", file = %path.display());
        }
        (Ok(Config::Rx(_)), Running::Tx(h)) => {
            h.stats.reloads_failed.inc();
            tracing::error!(message = "Configuration reload refused: the file is now a receiver configuration.", file = %path.display());
        }
    }
}

/// A running side, for the shared serve loop.
enum Running {
    Tx(Box<pipeline::tx::TxHandle>),
    Rx(pipeline::rx::RxHandle),
}

/// Start the side `path` configures (it must be the side the command asked for), run until
/// SIGTERM or Ctrl-C, stop cleanly, and print the counters as one JSON line.
async fn serve(path: &std::path::Path, want_tx: bool) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let mut signals = Signals::new()?;
    let metrics_cancel = tokio_util::sync::CancellationToken::new();
    let mut running = match (config::load(path)?, want_tx) {
        (Config::Tx(cfg), true) => {
            let listen = cfg.metrics_listen;
            let h = pipeline::tx::start(cfg).await?;
            if let Some(addr) = listen {
                let source = Arc::new(health::TxHealth {
                    stats: h.stats.clone(),
                    session: h.session,
                    started,
                });
                metrics::serve(addr, source, metrics_cancel.clone()).await?;
            }
            Running::Tx(Box::new(h))
        }
        (Config::Rx(cfg), false) => {
            let listen = cfg.metrics_listen;
            let h = pipeline::rx::start(cfg).await?;
            if let Some(addr) = listen {
                let source = Arc::new(health::RxHealth {
                    stats: h.stats.clone(),
                    started,
                });
                metrics::serve(addr, source, metrics_cancel.clone()).await?;
            }
            Running::Rx(h)
        }
        (Config::Rx(_), true) => bail!(
            "{} is a receiver config; `weir tx` needs an agent config",
            path.display()
        ),
        (Config::Tx(_), false) => bail!(
            "{} is an agent config; `weir rx` needs a receiver config",
            path.display()
        ),
    };
    while let Signal::Reload = signals.next().await? {
        reload(path, &mut running).await;
    }
    metrics_cancel.cancel();
    tracing::info!(message = "Shutting down: sending and writing what is queued.");
    let summary = match running {
        Running::Tx(h) => {
            let stats = h.stats.clone();
            h.shutdown().await?;
            stats.to_json()
        }
        Running::Rx(h) => {
            let stats = h.stats.clone();
            h.shutdown().await?;
            stats.to_json()
        }
    };
    println!("{summary}");
    Ok(ExitCode::SUCCESS)
}
