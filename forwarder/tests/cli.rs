//! The command line: `weir validate` and `weir keygen`, as an operator runs them.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::*;

fn validate(dir: &std::path::Path, text: &str) -> (i32, String, String) {
    let path = dir.join("check.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(WEIR)
        .args(["validate", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn good_tx() -> String {
    format!("[agent]\nname = \"a\"\n{DIODE}\n[tx]\ndestination = \"127.0.0.1:7000\"\n\n[[sources]]\ntype = \"syslog_udp\"\naddress = \"127.0.0.1:5514\"\n")
}

#[test]
fn validate_accepts_a_good_config_and_names_each_problem() {
    let dir = workdir();
    let (code, out, _) = validate(dir.path(), &good_tx());
    assert_eq!(code, 0);
    assert!(out.starts_with("OK: agent config"), "{out}");

    let (code, _, err) = validate(dir.path(), &good_tx().replace("[tx]", "[tx]\nretries = 3"));
    assert_eq!(code, 2);
    assert!(err.contains("unknown field `retries`"), "{err}");

    let (code, _, err) = validate(
        dir.path(),
        &good_tx().replace("\"diode.key\"", "\"missing.key\""),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read key file") && err.contains("missing.key"),
        "{err}"
    );

    let (code, _, err) = validate(
        dir.path(),
        &good_tx().replace("127.0.0.1:7000", "127.0.0.1"),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("tx.destination") && err.contains("not an IP:port address"),
        "{err}"
    );
}

#[test]
fn keygen_writes_a_private_key_file_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.key");
    let ok = Command::new(WEIR)
        .args(["keygen", "--key-id", "7", "-o"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(ok.status.success());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("key_id = 7"));
    let again = Command::new(WEIR)
        .args(["keygen", "-o"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "the key is untouched"
    );
}
