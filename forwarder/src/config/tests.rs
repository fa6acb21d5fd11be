use std::path::{Path, PathBuf};

use super::*;

fn sample(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../samples/config")
        .join(name);
    std::fs::read_to_string(path).expect("sample config")
}

/// A temp dir holding a key file; sample configs are pointed at it.
fn with_key() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = DiodeKey::generate(3).expect("key");
    key.write(&dir.path().join("diode.key")).expect("write key");
    (dir, "diode.key".into())
}

/// A secret file as an operator should leave it: mode 0600.
fn write_secret(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("secret");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// Secrets that other users may read or change are refused with the fix; credentials over
/// plain http:// need `allow_insecure_http`; a Kafka SASL password comes from its own file and
/// never shows in `Debug`.
#[test]
fn secrets_must_be_private_and_never_cross_plain_http_unasked() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _) = with_key();
    let key = dir.path().join("diode.key");
    for mode in [0o644, 0o602, 0o660] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let e = format!("{:#}", DiodeKey::load(&key).expect_err("refused"));
        assert!(
            e.contains("chmod 0600") && e.contains(&format!("{mode:04o}")),
            "{e}"
        );
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    assert!(
        DiodeKey::load(&key).is_ok(),
        "root:weir 0640 as the package installs it"
    );
    write_secret(&dir.path().join("hec.token"), "abc\n");
    let plain = HEC_RX.replace("https://splunk.example:8088", "http://splunk.example:8088");
    let e = error_of(&plain, dir.path());
    assert!(
        e.contains("allow_insecure_http") && e.contains("in clear"),
        "{e}"
    );
    let allowed = plain.replace(
        "token_file = \"hec.token\"",
        "token_file = \"hec.token\"\nallow_insecure_http = true",
    );
    assert!(load_text(&allowed, dir.path()).is_ok());
    // Kafka: the password from its file, apart from the options, and not in Debug.
    write_secret(&dir.path().join("kafka.pw"), "hunter2\n");
    let kafka = r#"
[diode]
key_file = "diode.key"
[rx]
listen = "127.0.0.1:7000"
state_dir = "state"
[[sinks]]
type = "kafka"
name = "k"
brokers = "127.0.0.1:9092"
topic = "weir.{class}"
sasl_password_file = "kafka.pw"
[sinks.options]
"sasl.username" = "weir"
"security.protocol" = "SASL_SSL"
"#;
    let Config::Rx(c) = load_text(kafka, dir.path()).expect("valid") else {
        panic!("rx config");
    };
    let printed = format!("{c:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("sasl.password"), "{printed}");
}

fn load_text(text: &str, base: &Path) -> Result<Config> {
    parse(text, base)
}

fn error_of(text: &str, base: &Path) -> String {
    format!("{:#}", load_text(text, base).expect_err("must be rejected"))
}

fn local(text: &str) -> String {
    text.replace("/etc/weir/diode.key", "diode.key")
        .replace("/var/lib/weir/events.ndjson", "events.ndjson")
}

#[test]
fn sample_configs_are_valid() {
    let (dir, _) = with_key();
    match load_text(&local(&sample("tx.toml")), dir.path()).expect("tx sample") {
        Config::Tx(c) => {
            assert_eq!(c.agent_name, "plant-a-zone-3");
            assert_eq!(c.sources.len(), 3);
            assert_eq!(c.sources[0].timezone.name(), "Europe/Berlin");
            assert_eq!(c.sources[2].format, super::Format::WindowsJson);
            assert_eq!(c.evtx_sources.len(), 1);
            assert_eq!(c.evtx_sources[0].name, "hmi-evtx");
            assert_eq!(
                c.evtx_sources[0].state_dir,
                std::path::Path::new("/var/lib/weir/state")
            );
            assert_eq!(c.evtx_sources[0].poll_interval, Duration::from_secs(1));
            assert_eq!(c.capture_sources.len(), 1);
            let span = &c.capture_sources[0];
            assert!(
                matches!(&span.from, CaptureFrom::Live { interface, snaplen: 65535, .. } if interface == "eth1")
            );
            assert_eq!(span.sensor.flow.tcp_idle, 300_000_000_000);
            assert_eq!(span.sensor.read_summary, 60_000_000_000);
            assert_eq!(c.diode.key.id, 3);
            assert_eq!(c.wec_sources.len(), 1);
            let wec = &c.wec_sources[0];
            assert_eq!(wec.hostname, "wec.zone3.plant.local");
            assert_eq!(wec.heartbeat, Duration::from_secs(900));
            assert_eq!(wec.subscriptions.len(), 2);
            assert_eq!(
                wec.subscriptions[0].query,
                "<QueryList><Query Id=\"0\"><Select Path=\"Security\">*</Select><Select Path=\"System\">*</Select><Select Path=\"Microsoft-Windows-PowerShell/Operational\">*</Select></Query></QueryList>"
            );
            assert!(wec.subscriptions[1].read_existing_events);
        }
        Config::Rx(_) => panic!("tx sample read as rx"),
    }
    match load_text(&local(&sample("rx.toml")), dir.path()).expect("rx sample") {
        Config::Rx(c) => {
            assert_eq!(c.sinks.len(), 2);
            assert_eq!(c.sinks[1].classes(), &vec![EventClass::Weir]);
        }
        Config::Tx(_) => panic!("rx sample read as tx"),
    }
}

#[test]
fn both_sides_of_the_samples_agree_on_the_fingerprint() {
    let (dir, _) = with_key();
    let (Ok(Config::Tx(t)), Ok(Config::Rx(r))) = (
        load_text(&local(&sample("tx.toml")), dir.path()),
        load_text(&local(&sample("rx.toml")), dir.path()),
    ) else {
        panic!("samples load");
    };
    assert_eq!(t.diode.fingerprint(), r.diode.fingerprint());
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    let (dir, _) = with_key();
    let text = local(&sample("tx.toml")).replace("linger_milliseconds", "linger_ms");
    let e = error_of(&text, dir.path());
    assert!(e.contains("unknown field `linger_ms`"), "{e}");
    let text =
        local(&sample("rx.toml")).replace("max_files = 10", "max_files = 10\ncompress = true");
    let e = error_of(&text, dir.path());
    assert!(e.contains("unknown field `compress`"), "{e}");
}

#[test]
fn a_missing_key_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = error_of(&local(&sample("rx.toml")), dir.path());
    assert!(
        e.contains("diode.key_file") && e.contains("cannot read key file"),
        "{e}"
    );
    let missing: PathBuf = dir.path().join("diode.key");
    assert!(e.contains(&missing.display().to_string()), "{e}");
}

#[test]
fn bad_addresses_are_named() {
    let (dir, _) = with_key();
    let text = local(&sample("tx.toml")).replace("192.0.2.20:7000", "diode-host:7000");
    let e = error_of(&text, dir.path());
    assert!(
        e.contains("tx.destination") && e.contains("diode-host:7000"),
        "{e}"
    );
    let text = local(&sample("tx.toml")).replace("0.0.0.0:514", "0.0.0.0:99999");
    let e = error_of(&text, dir.path());
    assert!(e.contains("sources[0] (plc-syslog).address"), "{e}");
}

#[test]
fn other_mistakes_are_named() {
    let (dir, _) = with_key();
    let cases = [
        ("tx.toml", "Europe/Berlin", "Mars/Olympus", "timezone"),
        (
            "tx.toml",
            "compression = \"zstd\"",
            "compression = \"lz5\"",
            "diode.compression",
        ),
        (
            "tx.toml",
            "oversize = \"truncate\"",
            "oversize = \"ignore\"",
            "oversize",
        ),
        (
            "rx.toml",
            "classes = [\"weir\"]",
            "classes = [\"wier\"]",
            "unknown event class \"wier\"",
        ),
        ("rx.toml", "[rx]", "[tx]", "unknown field `sinks`"),
    ];
    for (file, from, to, needle) in cases {
        let text = local(&sample(file)).replace(from, to);
        let e = error_of(&text, dir.path());
        assert!(e.contains(needle), "{from} -> {to}: {e}");
    }
}

#[test]
fn key_rotation_accepts_a_second_key_with_its_own_id() {
    let (dir, _) = with_key(); // id 3
    DiodeKey::generate(4)
        .expect("key")
        .write(&dir.path().join("next.key"))
        .expect("write");
    DiodeKey::generate(3)
        .expect("key")
        .write(&dir.path().join("clash.key"))
        .expect("write");
    let text = local(&sample("rx.toml"));
    let ok = text.replace(
        "additional_key_files = []",
        "additional_key_files = [\"next.key\"]",
    );
    let Ok(Config::Rx(c)) = load_text(&ok, dir.path()) else {
        panic!("rotation config loads")
    };
    assert_eq!(
        c.additional_keys.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![4]
    );
    let clash = text.replace(
        "additional_key_files = []",
        "additional_key_files = [\"clash.key\"]",
    );
    let e = error_of(&clash, dir.path());
    assert!(e.contains("key id 3 is already in use"), "{e}");
}

#[test]
fn key_files_round_trip_and_bad_keys_are_rejected() {
    let k = DiodeKey::generate(9).expect("key");
    let back = DiodeKey::parse(&k.to_file_text()).expect("parses");
    assert_eq!((back.id, back.secret), (k.id, k.secret));
    assert!(
        !format!("{k:?}").contains(&hex::encode(k.secret)),
        "Debug must not print the key"
    );
    assert!(DiodeKey::parse("key_id = 1\nkey = \"abcd\"").is_err());
    assert!(DiodeKey::parse("key_id = 1\nkey = \"zz\"").is_err());
}

const HEC_RX: &str = r#"
[diode]
key_file = "diode.key"
[rx]
listen = "127.0.0.1:7000"
state_dir = "state"
[[sinks]]
type = "splunk_hec"
name = "splunk"
endpoint = "https://splunk.example:8088"
token_file = "hec.token"
index = "ot"
[sinks.class_metadata.windows]
sourcetype = "XmlWinEventLog"
[sinks.batch]
max_events = 500
[sinks.buffer]
max_bytes = 10485760
overflow = "drop_newest"
"#;

#[test]
fn a_splunk_hec_sink_is_read_with_its_buffer_batching_and_per_class_metadata() {
    let (dir, _) = with_key();
    write_secret(&dir.path().join("hec.token"), "  abc-123\n");
    let Config::Rx(c) = load_text(HEC_RX, dir.path()).expect("valid") else {
        panic!("rx config");
    };
    let SinkConfig::Siem(s) = &c.sinks[0] else {
        panic!("a SIEM sink");
    };
    assert_eq!(s.name, "splunk");
    assert_eq!(s.driver.max_events, 500);
    assert_eq!(s.buffer_path, dir.path().join("state/buffers/splunk"));
    assert_eq!(s.buffer.max_bytes, 10 << 20);
    assert_eq!(
        s.buffer.overflow,
        weir_integrations::buffer::Overflow::DropNewest
    );
    assert_eq!(
        s.driver.dead_letter.as_deref(),
        Some(dir.path().join("state/dead-letter/splunk.ndjson").as_path())
    );
    let SiemKind::SplunkHec(h) = &s.kind else {
        panic!("a HEC sink");
    };
    assert_eq!(h.token.expose(), "abc-123");
    let windows = &h
        .metadata
        .iter()
        .find(|(c, _)| c == "windows")
        .expect("windows")
        .1;
    assert_eq!(windows.sourcetype, "XmlWinEventLog");
    assert_eq!(windows.index, "ot", "class metadata inherits the defaults");
    let default = &h
        .metadata
        .iter()
        .find(|(c, _)| c == "*")
        .expect("default")
        .1;
    assert_eq!(default.sourcetype, "weir:{class}");
}

#[test]
fn splunk_hec_mistakes_are_named() {
    let (dir, _) = with_key();
    assert!(error_of(HEC_RX, dir.path()).contains("sinks.splunk.token_file"));
    write_secret(&dir.path().join("hec.token"), "abc\n");
    let e = error_of(
        &HEC_RX.replace("https://splunk.example:8088", "splunk:8088"),
        dir.path(),
    );
    assert!(e.contains("sinks.splunk.endpoint"), "{e}");
    let e = error_of(
        &HEC_RX.replace("class_metadata.windows", "class_metadata.windoze"),
        dir.path(),
    );
    assert!(e.contains("unknown event class \"windoze\""), "{e}");
    let e = error_of(&HEC_RX.replace("drop_newest", "block"), dir.path());
    assert!(e.contains("sinks.splunk.buffer.overflow"), "{e}");
    let e = error_of(
        &HEC_RX.replace("index = \"ot\"", "idx = \"ot\""),
        dir.path(),
    );
    assert!(e.contains("unknown field `idx`"), "{e}");
}

#[test]
fn the_siem_sample_config_is_valid() {
    let (dir, _) = with_key();
    for f in ["hec.token", "es.apikey"] {
        write_secret(&dir.path().join(f), "secret\n");
    }
    std::fs::write(dir.path().join("soc-ca.pem"), "not read at load time\n").expect("ca");
    let text = local(&sample("rx-siem.toml"))
        .replace("/etc/weir/", "")
        .replace("/var/lib/weir", "state")
        .replace("/var/log/weir/health.ndjson", "health.ndjson");
    let Config::Rx(c) = load_text(&text, dir.path()).expect("valid") else {
        panic!("rx config");
    };
    assert_eq!(c.sinks.len(), 3);
    let SinkConfig::Siem(es) = &c.sinks[1] else {
        panic!("elasticsearch");
    };
    let SiemKind::Elasticsearch(e) = &es.kind else {
        panic!("elasticsearch kind");
    };
    assert_eq!(
        e.target,
        weir_integrations::elasticsearch::Target::DataStream {
            namespace: "plant_a".into()
        }
    );
    assert_eq!(
        e.auth,
        weir_integrations::elasticsearch::Auth::ApiKey("secret".into())
    );
    assert_eq!(
        c.metrics_listen,
        Some("127.0.0.1:9599".parse().expect("addr"))
    );
}

#[test]
fn capture_sources_are_checked() {
    let (dir, _) = with_key();
    let base = |src: &str| {
        format!(
            "[agent]\nname = \"a\"\n[diode]\nkey_file = \"diode.key\"\n[tx]\ndestination = \"127.0.0.1:9000\"\n[[sources]]\n{src}"
        )
    };
    assert!(error_of(&base("type = \"span\"\n"), dir.path()).contains("interface: missing"));
    assert!(error_of(
        &base("type = \"span\"\ninterface = \"eth1\"\npath = \"x\"\n"),
        dir.path()
    )
    .contains("`path` belongs to capture_file"));
    assert!(error_of(&base("type = \"capture_file\"\n"), dir.path()).contains("path: missing"));
    assert!(error_of(
        &base("type = \"span\"\ninterface = \"eth1\"\nsnaplen = 10\n"),
        dir.path()
    )
    .contains("snaplen"));
    assert!(error_of(
        &base("type = \"span\"\ninterface = \"eth1\"\nudp_idle_seconds = 0\n"),
        dir.path()
    )
    .contains("udp_idle_seconds"));
    assert!(error_of(
        &base("type = \"span\"\ninterface = \"eth1\"\ncolour = 1\n"),
        dir.path()
    )
    .contains("unknown field"));
    match load_text(
        &base("type = \"capture_file\"\npath = \"caps\"\nread_summary_seconds = 0\n"),
        dir.path(),
    )
    .expect("valid")
    {
        Config::Tx(c) => {
            assert!(
                matches!(&c.capture_sources[0].from, CaptureFrom::Files(p) if p == &dir.path().join("caps"))
            );
            assert_eq!(c.capture_sources[0].sensor.read_summary, 0);
        }
        Config::Rx(_) => panic!("tx read as rx"),
    }
}

#[test]
fn wec_settings_are_checked() {
    let (dir, _) = with_key();
    let base = local(&sample("tx.toml"));
    let cases = [
        (
            "channels = [\"Security\", \"System\", \"Microsoft-Windows-PowerShell/Operational\"]",
            "channels = [\"Security\"]\nquery = \"<QueryList/>\"",
            "give either channels or query",
        ),
        (
            "channels = [\"Security\", \"System\", \"Microsoft-Windows-PowerShell/Operational\"]",
            "channels = []",
            "at least one channel",
        ),
        (
            "<QueryList><Query Id='0'>",
            "<QueryList><Query Id='0'><Sel>",
            "sysmon-process-network).query: not well-formed",
        ),
        (
            "host_gone_seconds = 86400",
            "host_gone_seconds = 1000",
            "must be above the silence threshold",
        ),
        (
            "hostname = \"wec.zone3.plant.local\"",
            "hostname = \"https://wec\"",
            "is not a DNS name",
        ),
        (
            "max_latency_seconds = 30",
            "max_latency_seconds = 30\ncontent_format = \"Xml\"",
            "content_format",
        ),
        (
            "name = \"sysmon-process-network\"",
            "name = \"ot-security\"",
            "the name \"ot-security\" is used twice",
        ),
    ];
    for (from, to, want) in cases {
        assert_eq!(base.matches(from).count(), 1, "{from}");
        let e = error_of(&base.replace(from, to), dir.path());
        assert!(e.contains(want), "{to}: {e}");
    }
}

/// The configuration reference (docs/configuration.md) names every key the parser accepts and
/// every source and sink type: a key added to the code without documentation fails here.
#[test]
fn every_config_key_is_documented() {
    let raw = include_str!("raw.rs");
    let doc = include_str!("../../../docs/configuration.md");
    let mut missing = Vec::new();
    let mut keys = 0;
    for line in raw.lines() {
        let t = line.trim();
        let Some(rest) = t.strip_prefix("pub ") else {
            continue;
        };
        let Some((name, _)) = rest.split_once(':') else {
            continue;
        };
        if name.contains(' ') || name.contains('(') {
            continue; // `pub struct`, `pub enum`, `pub fn`
        }
        keys += 1;
        let documented = doc.contains(&format!("`{name}`"))
            || doc.contains(&format!("`{name} ="))
            || doc.contains(&format!(".{name}]"))
            || doc.contains(&format!(".{name}."))
            || doc.contains(&format!("[{name}]"));
        if !documented {
            missing.push(name.to_owned());
        }
    }
    assert!(keys > 150, "only {keys} keys found in raw.rs");
    // Tagged variants: `type = "..."` of sources and sinks.
    let mut in_tagged = false;
    for line in raw.lines() {
        let t = line.trim();
        if t.starts_with("#[serde(tag = \"type\"") {
            in_tagged = true;
            continue;
        }
        if in_tagged && t == "}" {
            in_tagged = false;
        }
        if in_tagged {
            if let Some((variant, _)) = t.split_once('(') {
                if variant.chars().all(|c| c.is_ascii_alphanumeric()) && !variant.is_empty() {
                    let mut snake = String::new();
                    for (i, c) in variant.chars().enumerate() {
                        if c.is_ascii_uppercase() && i > 0 {
                            snake.push('_');
                        }
                        snake.push(c.to_ascii_lowercase());
                    }
                    if !doc.contains(&format!("type = \"{snake}\"")) {
                        missing.push(format!("type = \"{snake}\""));
                    }
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "undocumented in docs/configuration.md: {missing:?}"
    );
}

/// The pacer's depth: 4 ms unless set, and outside 1-100 ms refused by name.
#[test]
fn the_link_burst_defaults_to_4_ms_and_is_bounded() {
    let (dir, _) = with_key();
    let tx = local(&sample("tx.toml"));
    let Ok(Config::Tx(c)) = load_text(&tx, dir.path()) else {
        panic!("tx sample");
    };
    assert_eq!(c.link_burst, Duration::from_millis(4));
    let set = |v: &str| {
        tx.replace(
            "# link_burst_milliseconds = 4",
            &format!("link_burst_milliseconds = {v}"),
        )
    };
    let Ok(Config::Tx(c)) = load_text(&set("10"), dir.path()) else {
        panic!("burst 10");
    };
    assert_eq!(c.link_burst, Duration::from_millis(10));
    for bad in ["0", "101"] {
        let e = error_of(&set(bad), dir.path());
        assert!(
            e.contains("tx.link_burst_milliseconds") && e.contains("between 1 and 100"),
            "{e}"
        );
    }
}
