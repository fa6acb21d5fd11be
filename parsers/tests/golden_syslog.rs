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
            // Weir's JSON writer is serde_json's output byte for byte.
            assert_eq!(json.as_bytes(), serde_json::to_vec(&event).expect("json"));
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

/// Every field any sample event carries is in the field list the Elasticsearch templates are
/// built from (so nothing Weir emits is left to dynamic mapping), with a JSON value that fits
/// its type.
#[test]
fn every_emitted_field_is_mapped() {
    use serde_json::Value;
    use weir_schemas::fields::lookup;

    fn walk(v: &Value, path: &str, seen: &mut std::collections::BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(x, &p, seen);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, path, seen)),
            leaf => {
                let field = lookup(path).unwrap_or_else(|| {
                    panic!("{path} is emitted but not in weir_schemas::fields::FIELDS")
                });
                let fits = match field.ty {
                    "long" | "unsigned_long" => leaf.is_u64() || leaf.is_i64(),
                    "ip" => leaf
                        .as_str()
                        .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
                    "flattened" | "object" | "keyword" | "match_only_text" | "date" => {
                        leaf.is_string()
                    }
                    other => panic!("{path}: no check for type {other}"),
                };
                assert!(fits, "{path} = {leaf} does not fit {}", field.ty);
                seen.insert(field.name.to_owned());
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, _) in FILES {
        let text = std::fs::read_to_string(samples().join(format!("expected/{name}.ndjson")))
            .expect("golden file");
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).expect("golden JSON");
            walk(&v, "", &mut seen);
        }
    }
    // The samples exercise the list broadly (a field list no sample reaches is unchecked).
    assert!(
        seen.len() >= 40,
        "only {} fields seen: {seen:?}",
        seen.len()
    );
}
