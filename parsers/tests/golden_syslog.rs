//! Golden tests: every line of `samples/syslog/*.log` against `samples/syslog/expected/*.ndjson`,
//! and every resulting event against the official ECS definitions.
//!
//! Regenerate the expected files after a deliberate change with `WEIR_BLESS=1 cargo test -p
//! weir-parsers --test golden_syslog`, then review the diff line by line.

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use weir_parsers::syslog::{normalise, ParseContext};
use weir_schemas::ecs::EcsSchema;

/// Each sample file with the time zone its devices are configured for.
const FILES: &[(&str, &str)] = &[
    ("linux", "UTC"),
    ("rfc", "UTC"),
    ("cisco_ios", "UTC"),
    ("cisco_asa", "UTC"),
    ("fortigate", "UTC"),
    ("paloalto", "UTC"),
    ("industrial", "Europe/Berlin"),
    ("snare", "UTC"),
    ("malformed", "UTC"),
];

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/syslog")
}

fn context(tz: &str) -> ParseContext {
    ParseContext {
        received_at: Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 5)
            .single()
            .expect("valid"),
        timezone: tz.parse().expect("known zone"),
        peer: Some("192.0.2.10:514".parse().expect("addr")),
        input: "syslog_udp",
        keep_original: true,
    }
}

#[test]
fn every_sample_line_matches_its_golden_event() {
    let bless = std::env::var_os("WEIR_BLESS").is_some();
    let schema = EcsSchema::load_bundled().expect("ECS definitions load");
    let (mut parsed, mut raw) = (0, 0);
    for (name, tz) in FILES {
        let input = std::fs::read(samples().join(format!("{name}.log"))).expect("sample");
        let ctx = context(tz);
        let mut actual = String::new();
        for line in input.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let event = normalise(line, &ctx);
            let json = String::from_utf8(event.to_json()).expect("utf-8");
            let value: serde_json::Value = serde_json::from_str(&json).expect("json");
            let violations = schema.check(&value);
            assert!(
                violations.is_empty(),
                "{name}: {json}\nECS violations: {violations:?}"
            );
            if event.weir.parse_error.is_some() {
                raw += 1;
            } else {
                parsed += 1;
            }
            actual.push_str(&json);
            actual.push('\n');
        }
        let expected_path = samples().join(format!("expected/{name}.ndjson"));
        if bless {
            std::fs::write(&expected_path, &actual).expect("write golden");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).expect("golden file");
        for (n, (a, e)) in actual.lines().zip(expected.lines()).enumerate() {
            assert_eq!(a, e, "{name}.log line {}", n + 1);
        }
        assert_eq!(
            actual.lines().count(),
            expected.lines().count(),
            "{name}: line count"
        );
    }
    assert!(parsed >= 40, "at least 40 realistic lines parse ({parsed})");
    assert_eq!(raw, 3, "exactly the malformed samples become raw events");
}
