//! Command-line interface (the "low args": parsed, not yet validated).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Weir: security telemetry from OT networks through a one-way data diode.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the OT-side agent: collect, normalise, send through the diode.
    Tx {
        /// Agent config file (TOML with [agent], [diode], [tx], [[sources]]).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Run the IT-side receiver: receive from the diode, write to the sinks.
    Rx {
        /// Receiver config file (TOML with [diode], [rx], [[sinks]]).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Run both sides on loopback with a fresh key and replay the bundled samples.
    Demo {
        /// Where to write the key and the received events.
        #[arg(long, default_value = "weir-demo")]
        dir: PathBuf,
        /// How many times to replay the bundled samples.
        #[arg(long, default_value_t = 100)]
        repeat: usize,
    },
    /// Check a config file without starting anything.
    Validate {
        /// Config file of either side.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Generate a pre-shared diode key.
    Keygen {
        /// Write the key to this file (created with mode 0600; never overwritten).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Key id carried in datagram headers (change it when rotating keys).
        #[arg(long, default_value_t = 1)]
        key_id: u16,
    },
    /// Normalise a recorded file (.evtx, Windows JSON lines, syslog): print the events, or
    /// stream the file into a running agent's TCP source.
    Replay {
        /// The file; its kind is detected by content.
        file: PathBuf,
        /// Send to a running agent's TCP source (`syslog_tcp` for syslog, `windows_json_tcp`
        /// for Windows events) instead of printing.
        #[arg(long)]
        to: Option<std::net::SocketAddr>,
        /// IANA zone for timestamps that carry none.
        #[arg(long, default_value = "UTC")]
        timezone: String,
    },
    /// Look at a disk buffer or spool (read-only; safe while weir runs).
    Buffer {
        /// What to do with it.
        #[command(subcommand)]
        action: BufferAction,
    },
}

/// `weir buffer ...`.
#[derive(Debug, Subcommand)]
pub enum BufferAction {
    /// Segments, records waiting, damage and the oldest waiting event's age.
    Inspect {
        /// The buffer directory (a sink's `buffer.path`, or the agent's `spool.path`).
        dir: PathBuf,
    },
}
