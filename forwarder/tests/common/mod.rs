//! Helpers for the end-to-end tests: real `weir` processes, real sockets on loopback.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// A free loopback port for UDP and one for TCP (bound, then released).
pub fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_tcp() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A temp dir with a fresh diode key written by `weir keygen`.
pub fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(WEIR)
        .args(["keygen", "-o"])
        .arg(dir.path().join("diode.key"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

pub const DIODE: &str = r#"
[diode]
key_file = "diode.key"
mtu_bytes = 1500
compression = "zstd"
max_block_bytes = 262144
"#;

pub fn rx_config(dir: &Path, diode_port: u16) -> PathBuf {
    let text = format!(
        r#"{DIODE}
[rx]
listen = "127.0.0.1:{diode_port}"
state_dir = "rx-state"
receive_buffer_bytes = 4194304
reorder_timeout_milliseconds = 300
queue_blocks = 65536
queue_max_bytes = 4294967296

[[sinks]]
type = "file"
path = "out/events.ndjson"
max_bytes = 0
"#
    );
    let path = dir.join("rx.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// An agent config with the given `[[sources]]` text.
pub fn tx_config(dir: &Path, diode_port: u16, sources: &str) -> PathBuf {
    let text = format!(
        r#"
[agent]
name = "e2e-agent"
{DIODE}
[tx]
destination = "127.0.0.1:{diode_port}"
bind = "127.0.0.1:0"
link_rate_bits_per_second = 300000000
heartbeat_interval_milliseconds = 200
linger_milliseconds = 10
{sources}
"#
    );
    let path = dir.join("tx.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `weir` process; stopped with SIGTERM. Its stderr is collected as it comes.
pub struct Proc {
    child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Proc {
    /// Start `weir ARGS -c CONFIG` and wait until it says it has started (sockets bound), so
    /// that a slow start under load cannot lose the first datagrams.
    pub fn start(args: &[&str], config: &Path) -> Proc {
        Proc::start_in(None, args, config)
    }

    /// Like [`Proc::start`], inside network namespace `netns` when given.
    pub fn start_in(netns: Option<&str>, args: &[&str], config: &Path) -> Proc {
        Proc::start_env(netns, args, config, &[])
    }

    /// Like [`Proc::start_in`], with extra environment variables for the process only.
    pub fn start_env(
        netns: Option<&str>,
        args: &[&str],
        config: &Path,
        env: &[(&str, &str)],
    ) -> Proc {
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, WEIR]);
                c
            }
            None => Command::new(WEIR),
        };
        let mut child = command
            .args(args)
            .arg("-c")
            .arg(config)
            .env("WEIR_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            while stderr.read_line(&mut line).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let proc = Proc {
            child,
            log,
            reader: Some(reader),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        // "Agent started." follows every source's bind; "Source started." lines come before.
        while !["Agent started.", "Receiver started."]
            .iter()
            .any(|m| proc.log().contains(m))
        {
            assert!(
                Instant::now() < deadline,
                "weir did not start: {}",
                proc.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        proc
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait until something accepts TCP connections at `addr` (a source or endpoint of this
    /// process); fails at once, with the process's log, if the process has exited.
    pub fn wait_tcp(&self, addr: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            // The state letter follows the command name in /proc/PID/stat; Z: exited, unreaped.
            let state = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()
                        .and_then(|r| r.trim_start().chars().next())
                });
            assert!(
                !matches!(state, None | Some('Z')),
                "weir exited before listening on {addr}: {}",
                self.log()
            );
            assert!(
                Instant::now() < deadline,
                "nothing listening on {addr}; weir's log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Take the process's stdout, to read it while it runs ([`Proc::stop`] then reads none).
    pub fn take_stdout(&mut self) -> std::process::ChildStdout {
        self.child.stdout.take().unwrap()
    }

    /// Everything written to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, wait, and return (exit success, stdout summary JSON, stderr).
    pub fn stop(self) -> (bool, Value, String) {
        let (ok, summary, err) = self.stop_expecting_panics();
        assert!(!err.contains("panicked"), "weir panicked: {err}");
        (ok, summary, err)
    }

    /// [`Proc::stop`] for a test that injects a panic the process must survive.
    #[allow(dead_code)]
    pub fn stop_expecting_panics(mut self) -> (bool, Value, String) {
        // Drain stdout while the process shuts down: a stdout sink may be blocked on a full
        // pipe (the stalled-output test leaves it unread until now).
        let stdout = self.child.stdout.take();
        let out_reader = std::thread::spawn(move || {
            let mut out = String::new();
            if let Some(mut stdout) = stdout {
                let _ = stdout.read_to_string(&mut out);
            }
            out
        });
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "weir did not stop within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = out_reader.join().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let err = self.log();
        let summary = out
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l).ok())
            .unwrap_or(Value::Null);
        (status.success(), summary, err)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Events in the receiver's output file. While the receiver runs, the last line may still be
/// half written: only complete lines count.
pub fn events(dir: &Path) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(dir.join("out/events.ndjson")) else {
        return Vec::new();
    };
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Wait until the output file holds at least `n` events of class syslog (or time runs out).
/// Counts without parsing (the file may hold 100,000 events), then parses once.
pub fn wait_for_syslog(dir: &Path, n: usize, timeout: Duration) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(dir.join("out/events.ndjson")).unwrap_or_default();
        let count = text.matches("\"class\":\"syslog\"").count();
        if count >= n || Instant::now() > deadline {
            return events(dir);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Events of `class` in the receiver's output file, counted without parsing.
pub fn class_count(dir: &Path, class: &str) -> usize {
    std::fs::read_to_string(dir.join("out/events.ndjson"))
        .unwrap_or_default()
        .matches(&format!("\"class\":\"{class}\""))
        .count()
}

/// Wait until the output file holds at least `n` events of `class`; fail after `timeout`.
pub fn wait_class(dir: &Path, class: &str, n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while class_count(dir, class) < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} {class} events after {timeout:?}",
            class_count(dir, class)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn syslog_only(evs: &[Value]) -> Vec<&Value> {
    evs.iter()
        .filter(|e| e["weir"]["class"] == "syslog")
        .collect()
}

/// Every event conforms to ECS.
pub fn assert_ecs(evs: &[Value]) {
    let schema = weir_schemas::ecs::EcsSchema::load_bundled().unwrap();
    for e in evs {
        let v = schema.check(e);
        assert!(v.is_empty(), "{e}\n{v:?}");
    }
}
