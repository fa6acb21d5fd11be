/*!
A Windows Event Collector endpoint: Windows hosts forward their own events with built-in
Windows Event Forwarding (source-initiated subscriptions set by Group Policy), over HTTPS with
a client certificate. The protocol core is pure (`weir_parsers::wsman`); this module is its IO.

```text
  Windows host ──TLS (client cert from client_ca)──► weir tx
    POST /wsman/SubscriptionManager/WEC  Enumerate ─► EnumerateResponse (subscriptions, with
                                                      this host's saved bookmark)
    POST /wsman/subscriptions/<id>      Events    ─► each event → XML parser → ECS → diode
                                                      queue; once the diode sender holds them
                                                      all, the bookmark is saved, then Ack
                                        Heartbeat ─► Ack (liveness)
                                        SubscriptionEnd ─► Ack + a `weir` event
```

* **No loss, no repeats across restarts**: a batch is acknowledged only after every one of its
  events is in the diode sender's (or the spool's) hands and the host's bookmark is written to
  `STATE_DIR/<name>.wec-bookmarks.json`. After a restart the host gets its bookmark back in
  the next `EnumerateResponse` and resumes after it. The file also keeps the `MessageID` of
  the last batch acknowledged per host: a client that did not see an `Ack` (connection lost,
  agent restarted) and sends the batch again gets an `Ack` without its events being queued a
  second time.
* **Liveness**: a host (per subscription) that neither sends events nor heartbeats for
  `2 x heartbeat + max_latency` is reported `wec-host-silent`; after `host_gone_seconds`
  `wec-host-gone`; on contact again (or first contact) `wec-host-active`.
* **Limits**: TLS handshake and request headers within 10 s, bodies within 30 s, bodies up
  to `max_envelope_bytes` (plus 64 KiB; larger get a `wsman:EncodingLimit` fault),
  `max_connections` at once (more are closed and counted). One slow or malformed client holds
  only its own connection.
*/

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use chrono::Utc;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use weir_diode_proto::StreamId;
use weir_parsers::windows::{self, WinContext};
use weir_parsers::wsman::cert::{client_cert, ClientCert};
use weir_parsers::wsman::envelope::{self, Envelope, EnvelopeError};
use weir_parsers::wsman::reply::{self, Fault, Offer};
use weir_parsers::wsman::text::{self, Charset};
use weir_parsers::wsman::{self as ws, sldc};
use weir_schemas::{Event, EventClass, Tls, TlsClient, TlsHash, X509Name, X509};

use super::{Record, Taken};
use crate::config::WecSource;
use crate::telemetry::TxStats;

/// TLS handshake and request-header deadline.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Whole-body deadline.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Slack over `max_envelope_bytes` for bodies (HTTP framing, clients rounding).
const BODY_SLACK: usize = 64 * 1024;
/// The `weir.input.type` of events from this source.
const INPUT: &str = "wec";

/// What the endpoint needs besides its settings.
#[derive(Clone)]
pub struct WecContext {
    /// Settings.
    pub cfg: WecSource,
    /// The agent's name.
    pub agent: Arc<str>,
    /// Its diode stream.
    pub stream: StreamId,
    /// Where records go.
    pub queue: mpsc::Sender<Record>,
    /// Counters.
    pub stats: Arc<TxStats>,
}

/// The bound listener and TLS settings.
pub struct Prepared {
    listener: TcpListener,
    local: SocketAddr,
    acceptor: TlsAcceptor,
    issuer_thumbprints: Vec<String>,
}

impl Prepared {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
}

/// The TLS server settings (client certificates required, from `client_ca`) and the SHA-1
/// thumbprints of the client CA certificates, as the Group Policy's `IssuerCA=` names them.
pub fn tls_config(cfg: &WecSource) -> Result<(rustls::ServerConfig, Vec<String>)> {
    let certs =
        CertificateDer::pem_slice_iter(&read_pem(&cfg.server_certificate, "server certificate")?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!("{}: {e}", cfg.server_certificate.display()))?;
    if certs.is_empty() {
        return Err(anyhow!(
            "{}: no PEM certificate in it",
            cfg.server_certificate.display()
        ));
    }
    crate::config::key::check_private(&cfg.server_key)?;
    let key = PrivateKeyDer::from_pem_slice(&read_pem(&cfg.server_key, "server key")?)
        .map_err(|e| anyhow!("{}: {e}", cfg.server_key.display()))?;
    let cas = CertificateDer::pem_slice_iter(&read_pem(&cfg.client_ca, "client CA")?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{}: {e}", cfg.client_ca.display()))?;
    if cas.is_empty() {
        return Err(anyhow!(
            "{}: no PEM certificate in it",
            cfg.client_ca.display()
        ));
    }
    let thumbprints = cas.iter().map(|c| ws::thumbprint(c)).collect();
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots
            .add(ca)
            .map_err(|e| anyhow!("{}: {e}", cfg.client_ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| anyhow!("{}: {e}", cfg.client_ca.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS settings: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| anyhow!("{}: {e}", cfg.server_certificate.display()))?;
    Ok((config, thumbprints))
}

/// Load the TLS material, create the state directory and bind the listener.
pub async fn bind(cfg: &WecSource) -> Result<Prepared> {
    let (config, issuer_thumbprints) =
        tls_config(cfg).with_context(|| format!("source {}", cfg.name))?;
    std::fs::create_dir_all(&cfg.state_dir).with_context(|| {
        format!(
            "source {}: cannot create the state directory {}",
            cfg.name,
            cfg.state_dir.display()
        )
    })?;
    // Fail at start, not at the first batch, if the bookmark file cannot be read at all
    // (permissions); a damaged one is moved aside when the collector starts.
    match std::fs::File::open(bookmark_path(cfg)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot read {}", bookmark_path(cfg).display()));
        }
        _ => {}
    }
    let listener = TcpListener::bind(cfg.address).await.with_context(|| {
        format!(
            "source {}: cannot listen on HTTPS {}",
            cfg.name, cfg.address
        )
    })?;
    let local = listener.local_addr()?;
    Ok(Prepared {
        listener,
        local,
        acceptor: TlsAcceptor::from(Arc::new(config)),
        issuer_thumbprints,
    })
}

/// Where a source's bookmarks are kept.
pub fn bookmark_path(cfg: &WecSource) -> PathBuf {
    cfg.state_dir
        .join(format!("{}.wec-bookmarks.json", cfg.name))
}

/// What the collector keeps per subscription and host: the bookmark of the last batch it
/// acknowledged and that batch's `MessageID` (a batch sent again with the same id, because the
/// client never saw the `Ack`, is acknowledged again without queueing its events twice).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Mark {
    bookmark: Option<String>,
    last_batch: Option<String>,
    /// When the host last had a batch acknowledged (Unix seconds; 0 in files of earlier
    /// versions, treated as "now" when first seen).
    #[serde(default)]
    seen_unix: u64,
}

/// Per subscription identifier, per host: the last batch acknowledged. Bounded: hosts not heard
/// from for `retention` are forgotten, and at most `max_hosts` (subscription, host) pairs are
/// kept, the least recently heard from going first (a host claiming endless `MachineID`s cannot
/// grow the file without limit). A forgotten host that comes back starts as a new one.
struct Bookmarks {
    path: PathBuf,
    map: BTreeMap<String, BTreeMap<String, Mark>>,
    retention: Duration,
    max_hosts: usize,
    /// Pairs forgotten so far.
    pruned: u64,
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Bookmarks {
    /// The saved bookmarks, and a note when the file was damaged (moved aside; hosts then
    /// start as new ones: from their subscription's `read_existing_events` position).
    fn load(
        path: &Path,
        retention: Duration,
        max_hosts: usize,
    ) -> Result<(Bookmarks, Option<String>)> {
        let parse =
            |b: &[u8]| serde_json::from_slice::<BTreeMap<String, BTreeMap<String, Mark>>>(b).ok();
        let (map, note) = match crate::durable::load(path, parse)
            .with_context(|| format!("cannot read {}", path.display()))?
        {
            crate::durable::Loaded::Missing => (BTreeMap::new(), None),
            crate::durable::Loaded::Read(m) => (m, None),
            crate::durable::Loaded::SetAside { moved_to, bytes } => {
                warn!(message = "WEC bookmark file damaged; moved aside, hosts start as new ones.", path = %path.display(), moved_to = %moved_to.display());
                (
                    BTreeMap::new(),
                    Some(format!(
                        "The WEC bookmark file {} was damaged ({bytes} bytes; a power loss or a full disk can leave it so) and was moved to {}. Hosts start as new ones: from the start of their logs where the subscription reads existing events, else from now (events sent in between may be missing; those already delivered may come again).",
                        path.display(),
                        moved_to.display()
                    )),
                )
            }
        };
        Ok((
            Bookmarks {
                path: path.to_owned(),
                map,
                retention,
                max_hosts,
                pruned: 0,
            },
            note,
        ))
    }

    /// Forget hosts past the retention, then the least recently heard from over `max_hosts`;
    /// returns how many.
    fn prune(&mut self, now: u64) -> u64 {
        let keep_after = now.saturating_sub(self.retention.as_secs());
        let mut pruned = 0u64;
        for hosts in self.map.values_mut() {
            hosts.retain(|_, m| {
                if m.seen_unix == 0 {
                    m.seen_unix = now;
                }
                let keep = m.seen_unix >= keep_after;
                pruned += u64::from(!keep);
                keep
            });
        }
        let total: usize = self.map.values().map(BTreeMap::len).sum();
        if total > self.max_hosts {
            let mut ages: Vec<u64> = self
                .map
                .values()
                .flat_map(|h| h.values().map(|m| m.seen_unix))
                .collect();
            ages.sort_unstable();
            let over = total - self.max_hosts;
            let cut = ages.get(over - 1).copied().unwrap_or(0);
            let mut left = over;
            for hosts in self.map.values_mut() {
                hosts.retain(|_, m| {
                    if left > 0 && m.seen_unix <= cut {
                        left -= 1;
                        pruned += 1;
                        false
                    } else {
                        true
                    }
                });
            }
        }
        self.map.retain(|_, h| !h.is_empty());
        pruned
    }

    fn get(&self, subscription: &str, host: &str) -> Option<&Mark> {
        self.map.get(subscription).and_then(|h| h.get(host))
    }

    fn bookmark(&self, subscription: &str, host: &str) -> Option<&str> {
        self.get(subscription, host)
            .and_then(|m| m.bookmark.as_deref())
    }

    /// True when `message_id` is the batch last acknowledged for this host.
    fn is_last_batch(&self, subscription: &str, host: &str, message_id: &str) -> bool {
        self.get(subscription, host)
            .and_then(|m| m.last_batch.as_deref())
            == Some(message_id)
    }

    /// Record an acknowledged batch and persist (a temporary file renamed over the old one).
    fn set(
        &mut self,
        subscription: &str,
        host: &str,
        bookmark: Option<&str>,
        message_id: &str,
    ) -> Result<()> {
        let entry = self
            .map
            .entry(subscription.to_owned())
            .or_default()
            .entry(host.to_owned())
            .or_default();
        if let Some(b) = bookmark {
            entry.bookmark = Some(b.to_owned());
        }
        entry.last_batch = Some(message_id.to_owned());
        let now = unix_seconds();
        entry.seen_unix = now;
        self.pruned += self.prune(now);
        crate::durable::write_synced(&self.path, &serde_json::to_vec_pretty(&self.map)?)
            .with_context(|| format!("cannot replace {}", self.path.display()))
    }
}

/// One subscription as the endpoint offers it.
struct Sub {
    name: String,
    identifier: String,
    version: String,
    address: String,
    query: String,
    read_existing_events: bool,
    max_items: Option<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Liveness {
    Active,
    Silent,
}

struct Host {
    last_contact: Instant,
    state: Liveness,
    peer: SocketAddr,
    client: Arc<ClientInfo>,
}

/// What the TLS session says about a client.
#[derive(Debug, Default)]
struct ClientInfo {
    cert: Option<ClientCert>,
    tls_version: Option<&'static str>,
}

struct Collector {
    ctx: WecContext,
    subs: Vec<Sub>,
    thumbprint: String,
    /// The bookmark file was damaged at start: reported once as a `weir` event.
    damaged: Mutex<Option<String>>,
    bookmarks: Mutex<Bookmarks>,
    /// (host, subscription identifier) → liveness.
    hosts: Mutex<HashMap<(String, String), Host>>,
}

/// A fresh `uuid:` message id (random, version 4).
fn message_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No randomness: still unique enough for a reply within this process.
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = n.to_be_bytes();
    }
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let h = hex::encode_upper(b);
    format!(
        "uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Collector {
    fn new(ctx: WecContext, thumbprints: &[String]) -> Result<Collector> {
        let cfg = &ctx.cfg;
        let port = cfg.public_port.unwrap_or(cfg.address.port());
        // The first CA is the one clients are told to present a certificate from.
        let thumbprint = thumbprints.first().cloned().unwrap_or_default();
        let subs = cfg
            .subscriptions
            .iter()
            .map(|s| {
                let identifier = ws::stable_guid(&["weir-wec", &cfg.name, &s.name]);
                let version = ws::stable_guid(&[
                    &identifier,
                    &s.query,
                    &cfg.heartbeat.as_secs().to_string(),
                    &cfg.max_latency.as_secs().to_string(),
                    &cfg.max_envelope_bytes.to_string(),
                    &cfg.content_format,
                    if cfg.compression { "sldc" } else { "" },
                    if s.read_existing_events {
                        "existing"
                    } else {
                        ""
                    },
                    &s.max_items.map(|n| n.to_string()).unwrap_or_default(),
                    &thumbprint,
                    &format!("{}:{port}", cfg.hostname),
                ]);
                Sub {
                    address: format!(
                        "https://{}:{port}/wsman/subscriptions/{identifier}",
                        cfg.hostname
                    ),
                    name: s.name.clone(),
                    identifier,
                    version,
                    query: s.query.clone(),
                    read_existing_events: s.read_existing_events,
                    max_items: s.max_items,
                }
            })
            .collect();
        let (bookmarks, damaged) =
            Bookmarks::load(&bookmark_path(cfg), cfg.bookmark_retention, cfg.max_hosts)?;
        Ok(Collector {
            damaged: Mutex::new(damaged),
            bookmarks: Mutex::new(bookmarks),
            hosts: Mutex::new(HashMap::new()),
            subs,
            thumbprint,
            ctx,
        })
    }

    fn sub(&self, env: &Envelope, path: &str) -> Option<&Sub> {
        let by_path = path.trim_end_matches('/').rsplit('/').next();
        let id = env.identifier.as_deref().or(by_path)?;
        self.subs
            .iter()
            .find(|s| s.identifier.eq_ignore_ascii_case(id.trim()))
    }

    /// Send one event towards the diode (waits while the queue is full).
    async fn send(&self, mut event: Event, taken: Option<Taken>) -> bool {
        if event.weir.parse_error.is_some() {
            self.ctx.stats.parse_errors.inc();
        }
        event.weir.agent = Some(self.ctx.agent.to_string());
        event.weir.stream = Some(self.ctx.cfg.name.clone());
        let class = event.class();
        self.ctx.stats.events_received.of(class).inc();
        let record = Record {
            stream: self.ctx.stream,
            class,
            payload: weir_integrations::envelope::agent_record(&event).into(),
            taken,
        };
        self.ctx.queue.send(record).await.is_ok()
    }

    /// A `weir` event about a host's subscription.
    fn host_event(
        &self,
        action: &str,
        host: &str,
        sub: &str,
        client: &ClientInfo,
        peer: Option<SocketAddr>,
        message: String,
    ) -> Event {
        let mut e = Event::new(EventClass::Weir, Utc::now());
        e.event.action = Some(action.into());
        e.event.dataset = Some("weir.agent".into());
        // Contact is good news; silence, absence and an ended subscription are not.
        let outcome = if action == "wec-host-active" {
            "success"
        } else {
            "failure"
        };
        e.event.outcome = Some(outcome.into());
        e.host = Some(weir_schemas::Host {
            name: Some(host.to_owned()),
            ..Default::default()
        });
        e.labels.insert("wec_subscription".into(), sub.to_owned());
        e.message = Some(message);
        e.set_input(INPUT, peer);
        stamp_tls(&mut e, client);
        e
    }

    /// Note contact from a host; reports it active when it is new or was silent.
    async fn contact(&self, host: &str, sub: &Sub, peer: SocketAddr, client: &Arc<ClientInfo>) {
        let now = Instant::now();
        let report = {
            let mut hosts = lock(&self.hosts);
            let key = (host.to_owned(), sub.identifier.clone());
            match hosts.get_mut(&key) {
                Some(h) => {
                    let was = h.state;
                    let silent_for = now.duration_since(h.last_contact);
                    h.last_contact = now;
                    h.state = Liveness::Active;
                    h.peer = peer;
                    h.client = client.clone();
                    (was == Liveness::Silent).then(|| {
                        format!(
                            "{host} is sending again on subscription {} after {} s of silence.",
                            sub.name,
                            silent_for.as_secs()
                        )
                    })
                }
                None => {
                    hosts.insert(
                        key,
                        Host {
                            last_contact: now,
                            state: Liveness::Active,
                            peer,
                            client: client.clone(),
                        },
                    );
                    Some(format!(
                        "{host} is forwarding events on subscription {}.",
                        sub.name
                    ))
                }
            }
        };
        if let Some(message) = report {
            let e = self.host_event(
                "wec-host-active",
                host,
                &sub.name,
                client,
                Some(peer),
                message,
            );
            self.send(e, None).await;
        }
    }

    /// Report hosts gone silent, then gone.
    async fn sweep(&self) {
        let cfg = &self.ctx.cfg;
        let silent_after = cfg.heartbeat * 2 + cfg.max_latency;
        let now = Instant::now();
        let mut reports = Vec::new();
        {
            let mut hosts = lock(&self.hosts);
            hosts.retain(|(host, sub_id), h| {
                let quiet = now.duration_since(h.last_contact);
                let sub = self
                    .subs
                    .iter()
                    .find(|s| &s.identifier == sub_id)
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                if quiet >= cfg.host_gone {
                    reports.push((
                        "wec-host-gone",
                        host.clone(),
                        sub,
                        h.client.clone(),
                        h.peer,
                        format!(
                            "{host} has not been heard from for {} s (host_gone_seconds): reported gone.",
                            quiet.as_secs()
                        ),
                    ));
                    return false;
                }
                if quiet >= silent_after && h.state == Liveness::Active {
                    h.state = Liveness::Silent;
                    reports.push((
                        "wec-host-silent",
                        host.clone(),
                        sub,
                        h.client.clone(),
                        h.peer,
                        format!(
                            "{host} has sent neither events nor heartbeats for {} s (heartbeat {} s).",
                            quiet.as_secs(),
                            cfg.heartbeat.as_secs()
                        ),
                    ));
                }
                true
            });
        }
        for (action, host, sub, client, peer, message) in reports {
            warn!(message = %message, source = %cfg.name, action);
            let e = self.host_event(action, &host, &sub, &client, Some(peer), message);
            self.send(e, None).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn stamp_tls(e: &mut Event, client: &ClientInfo) {
    let Some(cert) = &client.cert else {
        return;
    };
    e.tls = Some(Box::new(Tls {
        version: client.tls_version.map(str::to_owned),
        version_protocol: Some("tls".into()),
        client: Some(TlsClient {
            subject: Some(cert.subject.clone()),
            issuer: Some(cert.issuer.clone()),
            hash: Some(TlsHash {
                sha1: Some(cert.sha1.clone()),
            }),
            x509: (!cert.common_names.is_empty()).then(|| X509 {
                subject: Some(X509Name {
                    common_name: cert.common_names.clone(),
                }),
            }),
        }),
    }));
}

/// Serve until cancelled.
pub async fn run(ctx: WecContext, prepared: Prepared, cancel: CancellationToken) {
    let collector = match Collector::new(ctx, &prepared.issuer_thumbprints) {
        Ok(c) => Arc::new(c),
        Err(error) => {
            warn!(message = "WEC endpoint cannot start.", %error);
            return;
        }
    };
    let damaged = lock(&collector.damaged).take();
    if let Some(note) = damaged {
        let mut e = Event::new(EventClass::Weir, Utc::now());
        e.event.action = Some("state-file-damaged".into());
        e.event.dataset = Some("weir.agent".into());
        e.event.outcome = Some("failure".into());
        e.message = Some(note);
        let _ = collector.send(e, None).await;
    }
    let cfg = &collector.ctx.cfg;
    info!(
        message = "Windows Event Collector listening.",
        source = %cfg.name,
        address = %prepared.local,
        subscription_manager = %format!(
            "Server=HTTPS://{}:{}/wsman/SubscriptionManager/WEC,Refresh=60,IssuerCA={}",
            cfg.hostname,
            cfg.public_port.unwrap_or(prepared.local.port()),
            collector.thumbprint
        ),
    );
    // Liveness.
    {
        let c = collector.clone();
        let cancel = cancel.clone();
        let tick = (cfg.heartbeat / 4).clamp(Duration::from_millis(250), Duration::from_secs(60));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = interval.tick() => c.sweep().await,
                }
            }
        });
    }
    let slots = super::admission::Admission::new(
        &collector.ctx.cfg.name,
        cfg.max_connections,
        cfg.max_connections_per_address,
        collector.ctx.stats.clone(),
    );
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = prepared.listener.accept() => match r {
                Ok(x) => x,
                Err(error) => {
                    warn!(message = "TCP accept failed.", source = %collector.ctx.cfg.name, %error);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.admit(peer.ip()) else {
            drop(stream);
            continue;
        };
        let stream = super::admission::IdleTimeout::new(
            stream,
            cfg.idle_timeout,
            collector.ctx.stats.clone(),
        );
        let acceptor = prepared.acceptor.clone();
        let c = collector.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    c.ctx.stats.wec_tls_refused.inc();
                    warn!(message = "TLS handshake refused.", source = %c.ctx.cfg.name, %peer, %error);
                    return;
                }
                Err(_) => {
                    c.ctx.stats.wec_tls_refused.inc();
                    warn!(message = "TLS handshake timed out.", source = %c.ctx.cfg.name, %peer);
                    return;
                }
            };
            let client = {
                let (_, session) = tls.get_ref();
                Arc::new(ClientInfo {
                    cert: session
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(|der| client_cert(der)),
                    tls_version: session.protocol_version().map(|v| match v {
                        rustls::ProtocolVersion::TLSv1_3 => "1.3",
                        rustls::ProtocolVersion::TLSv1_2 => "1.2",
                        _ => "other",
                    }),
                })
            };
            let service = hyper::service::service_fn(move |req| {
                let c = c.clone();
                let client = client.clone();
                async move { Ok::<_, Infallible>(handle(&c, req, peer, &client).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT)
                .serve_connection(TokioIo::new(tls), service);
            tokio::select! {
                r = conn => if let Err(error) = r {
                    debug!(message = "WEC connection ended.", %peer, %error);
                },
                _ = cancel.cancelled() => {}
            }
            drop(permit);
        });
    }
}

fn soap(status: StatusCode, body: &str, charset: Charset) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text::encode(body, charset))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(charset.content_type()),
    );
    r
}

fn plain(status: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// Answer with a SOAP fault (HTTP 500, as WS-Management services do) and count it.
fn fault(
    c: &Collector,
    req: Option<&Envelope>,
    f: Fault,
    reason: &str,
    charset: Charset,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    c.ctx.stats.wec_faults.inc();
    warn!(message = "WEC request refused.", source = %c.ctx.cfg.name, %peer, fault = f.name(), reason);
    soap(
        StatusCode::INTERNAL_SERVER_ERROR,
        &reply::fault(req, &message_id(), f, reason),
        charset,
    )
}

async fn handle(
    c: &Collector,
    req: Request<Incoming>,
    peer: SocketAddr,
    client: &Arc<ClientInfo>,
) -> Response<Full<Bytes>> {
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Charset::from_content_type);
    let reply_charset = declared.unwrap_or(Charset::Utf16Le);
    if req.method() != Method::POST {
        c.ctx.stats.wec_faults.inc();
        return plain(StatusCode::METHOD_NOT_ALLOWED);
    }
    let sldc = match req
        .headers()
        .get(hyper::header::CONTENT_ENCODING)
        .map(|v| v.as_bytes().to_ascii_lowercase())
    {
        None => false,
        Some(v) if v == b"sldc" => true,
        Some(v) if v == b"identity" => false,
        Some(_) => {
            c.ctx.stats.wec_faults.inc();
            return plain(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
    };
    let path = req.uri().path().to_owned();
    let limit = c.ctx.cfg.max_envelope_bytes as usize + BODY_SLACK;
    let body =
        match tokio::time::timeout(BODY_TIMEOUT, Limited::new(req.into_body(), limit).collect())
            .await
        {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
                return fault(
                    c,
                    None,
                    Fault::EncodingLimit,
                    &format!("the envelope is larger than {limit} bytes"),
                    reply_charset,
                    peer,
                );
            }
            Ok(Err(_)) | Err(_) => {
                c.ctx.stats.wec_faults.inc();
                return plain(StatusCode::REQUEST_TIMEOUT);
            }
        };
    let body: std::borrow::Cow<'_, [u8]> = if sldc && !sldc::is_plain_text(&body) {
        match sldc::decompress(&body, limit) {
            Ok(b) => b.into(),
            // Text that does not start as text checks (no byte-order mark): take it as it
            // is when it reads as an envelope.
            Err(_) if text::decode(&body, declared).is_ok_and(|(t, _)| t.contains("Envelope")) => {
                body.as_ref().into()
            }
            Err(error) => {
                return fault(
                    c,
                    None,
                    Fault::EncodingLimit,
                    &format!("the SLDC body does not decompress: {error}"),
                    reply_charset,
                    peer,
                );
            }
        }
    } else {
        body.as_ref().into()
    };
    let (xml, charset) = match text::decode(&body, declared) {
        Ok(x) => x,
        Err(error) => {
            return fault(
                c,
                None,
                Fault::SchemaValidationError,
                &error.to_string(),
                reply_charset,
                peer,
            );
        }
    };
    let env = match envelope::parse(&xml) {
        Ok(env) => env,
        Err(error) => {
            let f = match error {
                EnvelopeError::NoAction | EnvelopeError::NoMessageId => {
                    Fault::InvalidMessageInformationHeader
                }
                _ => Fault::SchemaValidationError,
            };
            return fault(c, None, f, &error.to_string(), charset, peer);
        }
    };
    let host = env
        .machine_id
        .clone()
        .or_else(|| {
            client
                .cert
                .as_ref()
                .and_then(|k| k.common_names.first().cloned())
        })
        .unwrap_or_else(|| peer.ip().to_string())
        .to_ascii_lowercase();
    match env.action.as_str() {
        ws::ACTION_ENUMERATE => {
            c.ctx.stats.wec_enumerations.inc();
            let bookmarks = lock(&c.bookmarks);
            let ids: Vec<String> = c.subs.iter().map(|_| message_id()).collect();
            let offers: Vec<Offer<'_>> = c
                .subs
                .iter()
                .zip(&ids)
                .map(|(s, mid)| Offer {
                    version: &s.version,
                    name: &s.name,
                    identifier: &s.identifier,
                    address: &s.address,
                    query: &s.query,
                    heartbeat_seconds: c.ctx.cfg.heartbeat.as_secs(),
                    max_time_seconds: c.ctx.cfg.max_latency.as_secs(),
                    max_envelope_bytes: c.ctx.cfg.max_envelope_bytes,
                    max_items: s.max_items,
                    content_format: &c.ctx.cfg.content_format,
                    read_existing_events: s.read_existing_events,
                    compression: c.ctx.cfg.compression,
                    utf8: false,
                    issuer_thumbprint: &c.thumbprint,
                    bookmark: bookmarks.bookmark(&s.identifier, &host),
                    message_id: mid,
                })
                .collect();
            let xml = reply::enumerate_response(&env, &message_id(), &offers);
            drop(bookmarks);
            debug!(message = "Subscriptions enumerated.", source = %c.ctx.cfg.name, %host, %peer);
            soap(StatusCode::OK, &xml, charset)
        }
        ws::ACTION_END => plain(StatusCode::NO_CONTENT),
        ws::ACTION_HEARTBEAT | ws::ACTION_EVENTS | ws::ACTION_SUBSCRIPTION_END => {
            let Some(sub) = c.sub(&env, &path) else {
                return fault(
                    c,
                    Some(&env),
                    Fault::DestinationUnreachable,
                    "no such subscription on this collector (enumerate again)",
                    charset,
                    peer,
                );
            };
            match env.action.as_str() {
                ws::ACTION_HEARTBEAT => {
                    c.ctx.stats.wec_heartbeats.inc();
                    c.contact(&host, sub, peer, client).await;
                }
                ws::ACTION_SUBSCRIPTION_END => {
                    c.ctx.stats.wec_subscription_ends.inc();
                    lock(&c.hosts).remove(&(host.clone(), sub.identifier.clone()));
                    let message = format!(
                        "{host} ended subscription {}: {}{}",
                        sub.name,
                        env.end_status
                            .as_deref()
                            .and_then(|s| s.rsplit('/').next())
                            .unwrap_or("no status"),
                        env.end_reason
                            .as_deref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    );
                    warn!(message = %message, source = %c.ctx.cfg.name);
                    let e = c.host_event(
                        "wec-subscription-ended",
                        &host,
                        &sub.name,
                        client,
                        Some(peer),
                        message,
                    );
                    c.send(e, None).await;
                }
                _ => {
                    if let Err(resp) = deliver(c, &env, sub, &host, peer, client, charset).await {
                        return resp;
                    }
                }
            }
            soap(StatusCode::OK, &reply::ack(&env, &message_id()), charset)
        }
        other => fault(
            c,
            Some(&env),
            Fault::ActionNotSupported,
            &format!("this collector does not take {other}"),
            charset,
            peer,
        ),
    }
}

/// Queue a batch's events, wait until the diode sender holds them all, save the host's
/// bookmark. `Err`: the fault to answer instead of `Ack` (the client sends the batch again).
async fn deliver(
    c: &Collector,
    env: &Envelope,
    sub: &Sub,
    host: &str,
    peer: SocketAddr,
    client: &Arc<ClientInfo>,
    charset: Charset,
) -> Result<(), Response<Full<Bytes>>> {
    c.contact(host, sub, peer, client).await;
    if lock(&c.bookmarks).is_last_batch(&sub.identifier, host, &env.message_id) {
        // The client sends again a batch whose Ack it did not see: its events are in.
        c.ctx.stats.wec_batches_repeated.inc();
        debug!(message = "WEC batch received again; acknowledged without queueing.", source = %c.ctx.cfg.name, %host, message_id = %env.message_id);
        return Ok(());
    }
    let wctx = WinContext {
        received_at: Utc::now(),
        peer: Some(peer),
        input: INPUT,
        keep_original: c.ctx.cfg.keep_original,
        timezone: chrono_tz::UTC,
    };
    let mark = Arc::new(AtomicU64::new(0));
    let n = env.events.len() as u64;
    for (i, xml) in env.events.iter().enumerate() {
        let mut event = windows::normalise_xml(xml, &wctx);
        if event.host.as_ref().and_then(|h| h.name.as_ref()).is_none() {
            event.host.get_or_insert_with(Default::default).name = Some(host.to_owned());
        }
        event
            .labels
            .insert("wec_subscription".into(), sub.name.clone());
        stamp_tls(&mut event, client);
        let taken = Taken {
            mark: mark.clone(),
            position: i as u64 + 1,
        };
        if !c.send(event, Some(taken)).await {
            return Err(fault(
                c,
                Some(env),
                Fault::InternalError,
                "the collector is shutting down",
                charset,
                peer,
            ));
        }
    }
    // Acknowledge only what the diode sender (or the spool) holds.
    let mut wait = Duration::from_micros(200);
    let deadline = Instant::now() + BODY_TIMEOUT;
    while mark.load(Ordering::Acquire) < n {
        if Instant::now() > deadline || c.ctx.queue.is_closed() {
            return Err(fault(
                c,
                Some(env),
                Fault::InternalError,
                "the diode sender did not take the events in time",
                charset,
                peer,
            ));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(20));
    }
    let saved = {
        let mut b = lock(&c.bookmarks);
        let before = b.pruned;
        let r = b.set(
            &sub.identifier,
            host,
            env.bookmark.as_deref(),
            &env.message_id,
        );
        let pruned = b.pruned - before;
        if pruned > 0 {
            c.ctx.stats.wec_bookmarks_pruned.add(pruned);
            info!(message = "WEC bookmarks of hosts not heard from for long (or over max_hosts) forgotten.", source = %c.ctx.cfg.name, hosts = pruned);
        }
        r
    };
    if let Err(error) = saved {
        warn!(message = "Cannot save a WEC bookmark.", source = %c.ctx.cfg.name, %error);
        return Err(fault(
            c,
            Some(env),
            Fault::InternalError,
            "the collector cannot save the bookmark",
            charset,
            peer,
        ));
    }
    c.ctx.stats.wec_batches.inc();
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod bookmark_tests {
    use super::*;

    /// Hosts past the retention go, then the least recently heard from over the cap; a file
    /// of an earlier version (no times) is kept and stamped.
    #[test]
    fn bookmark_stores_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wef.wec-bookmarks.json");
        std::fs::write(
            &path,
            r#"{"sub":{"old-host":{"bookmark":"<b/>","last_batch":"uuid:1"}}}"#,
        )
        .unwrap();
        let (mut b, note) = Bookmarks::load(&path, Duration::from_secs(3600), 3).unwrap();
        assert!(note.is_none());
        b.set("sub", "h1", Some("<b1/>"), "uuid:2").unwrap();
        assert_eq!(b.bookmark("sub", "old-host"), Some("<b/>"), "stamped, kept");
        // Age h1 and old-host beyond the retention.
        let now = unix_seconds();
        for m in b.map.get_mut("sub").unwrap().values_mut() {
            m.seen_unix = now - 7200;
        }
        b.set("sub", "h2", None, "uuid:3").unwrap();
        assert_eq!(b.get("sub", "h1"), None);
        assert_eq!(b.get("sub", "old-host"), None);
        assert_eq!(b.pruned, 2);
        // Over the cap of 3: the least recently heard from goes first.
        for (i, h) in ["h3", "h4", "h5"].iter().enumerate() {
            b.set("sub", h, None, &format!("uuid:{}", 10 + i)).unwrap();
            b.map.get_mut("sub").unwrap().get_mut(*h).unwrap().seen_unix = now + i as u64;
        }
        b.set("sub", "h6", None, "uuid:20").unwrap();
        let left: Vec<&String> = b.map["sub"].keys().collect();
        assert_eq!(left.len(), 3, "{left:?}");
        assert!(b.get("sub", "h6").is_some());
        // What is on disk is what is kept.
        let (again, _) = Bookmarks::load(&path, Duration::from_secs(3600), 3).unwrap();
        assert_eq!(again.map, b.map);
    }
}
