#![allow(clippy::indexing_slicing)]

use chrono::TimeZone;

use super::*;

fn ctx() -> ParseContext {
    ParseContext {
        received_at: Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 5)
            .single()
            .expect("valid"),
        timezone: Tz::UTC,
        peer: Some("192.0.2.10:40514".parse().expect("addr")),
        input: "syslog_udp",
        keep_original: true,
    }
}

fn json(e: &Event) -> serde_json::Value {
    serde_json::from_slice(&e.to_json()).expect("json")
}

#[test]
fn rfc5424_fields_land_in_ecs_names() {
    let line = "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 [exampleSDID@32473 iut=\"3\"] hello";
    let v = json(&parse(line.as_bytes(), &ctx()).expect("parses"));
    assert_eq!(v["@timestamp"], "2003-10-11T22:14:15.003Z");
    assert_eq!(v["log"]["syslog"]["priority"], 165);
    assert_eq!(v["log"]["syslog"]["facility"]["code"], 20);
    assert_eq!(v["log"]["syslog"]["facility"]["name"], "local4");
    assert_eq!(v["log"]["syslog"]["severity"]["code"], 5);
    assert_eq!(v["log"]["syslog"]["severity"]["name"], "notice");
    assert_eq!(v["log"]["syslog"]["version"], "1");
    assert_eq!(v["log"]["syslog"]["appname"], "evntslog");
    assert_eq!(v["log"]["syslog"]["procid"], "1234");
    assert_eq!(v["log"]["syslog"]["msgid"], "ID47");
    assert_eq!(
        v["log"]["syslog"]["structured_data"]["exampleSDID@32473"]["iut"],
        "3"
    );
    assert_eq!(v["host"]["hostname"], "mymachine.example.com");
    assert_eq!(v["process"]["name"], "evntslog");
    assert_eq!(v["process"]["pid"], 1234);
    assert_eq!(v["message"], "hello");
    assert_eq!(v["event"]["original"], line);
    assert_eq!(v["weir"]["input"]["peer_ip"], "192.0.2.10");
    assert_eq!(v["weir"]["input"]["peer_port"], 40514);
    assert!(v["weir"].get("parse_error").is_none());
}

#[test]
fn structured_data_is_fully_unescaped() {
    assert_eq!(unescape_param(r#"a\"b\\c\]d\ne"#), "a\"b\\c]d\\ne");
    assert_eq!(unescape_param(r"trailing\"), "trailing\\");
    let line =
        r#"<14>1 2026-01-01T00:00:02Z h app - - [x@1 q="say \"hi\"" p="C:\\dir" b="a\]b"] m"#;
    let v = json(&parse(line.as_bytes(), &ctx()).expect("parses"));
    let sd = &v["log"]["syslog"]["structured_data"]["x@1"];
    assert_eq!(sd["q"], "say \"hi\"");
    assert_eq!(sd["p"], "C:\\dir");
    assert_eq!(sd["b"], "a]b");
}

#[test]
fn rfc3164_year_is_inferred_across_new_year() {
    // Arrives 2026-01-01T00:00:05Z; stamped 31 December: last year.
    let v = json(&parse(b"<38>Dec 31 23:59:58 h sshd[1]: x", &ctx()).expect("parses"));
    assert_eq!(v["@timestamp"], "2025-12-31T23:59:58Z");
    assert_eq!(v["event"]["timezone"], "UTC");
    let v = json(&parse(b"<38>Jan  1 00:00:01 h sshd[1]: x", &ctx()).expect("parses"));
    assert_eq!(v["@timestamp"], "2026-01-01T00:00:01Z");
}

#[test]
fn rfc3164_is_read_in_the_sources_time_zone() {
    let mut c = ctx();
    c.timezone = "Europe/Berlin".parse().expect("zone");
    // 01:00:02 in Berlin (CET, UTC+1) on 1 January is 00:00:02 UTC.
    let v = json(&parse(b"<134>Jan  1 01:00:02 sw1 ROS: link down", &c).expect("parses"));
    assert_eq!(v["@timestamp"], "2026-01-01T00:00:02Z");
    assert_eq!(v["event"]["timezone"], "Europe/Berlin");
    // Summer time: 1 July 12:00 in Berlin is CEST, UTC+2.
    let v = json(&parse(b"<134>Jul  1 12:00:00 sw1 ROS: link up", &c).expect("parses"));
    assert_eq!(v["@timestamp"], "2025-07-01T10:00:00Z");
}

#[test]
fn not_syslog_becomes_a_tagged_raw_event() {
    for (input, code) in [
        (&b"plain text"[..], "no_syslog_header"),
        (b"<999>Jan  1 00:00:01 h a: x", "invalid_pri"),
        (b"<abc>x", "invalid_pri"),
        (b"   \r\n", "empty"),
        (b"\x00\x01\x02\xff\xfe binary", "no_syslog_header"),
    ] {
        assert_eq!(
            parse(input, &ctx()).map(|_| ()).map_err(|e| e.code()),
            Err(code)
        );
        let v = json(&normalise(input, &ctx()));
        assert_eq!(v["weir"]["parse_error"], code, "{input:?}");
        assert_eq!(v["event"]["kind"], "pipeline_error");
        assert_eq!(v["tags"][0], "weir_parse_failure");
        assert_eq!(v["@timestamp"], "2026-01-01T00:00:05Z");
    }
}

#[test]
fn invalid_utf8_is_replaced_and_tagged() {
    let v = json(&normalise(b"<13>Jan  1 00:00:01 h app: caf\xe9", &ctx()));
    assert_eq!(v["message"], "caf\u{fffd}");
    assert_eq!(v["tags"], serde_json::json!(["weir_invalid_utf8"]));
    assert!(v["weir"].get("parse_error").is_none());
}

#[test]
fn original_can_be_left_out() {
    let mut c = ctx();
    c.keep_original = false;
    let v = json(&normalise(b"<13>Jan  1 00:00:01 h app: x", &c));
    assert!(v["event"].get("original").is_none());
}

#[test]
fn trailing_newline_and_nul_are_not_part_of_the_message() {
    let v = json(&normalise(b"<13>Jan  1 00:00:01 h app: x\r\n\0", &ctx()));
    assert_eq!(v["message"], "x");
    assert_eq!(v["event"]["original"], "<13>Jan  1 00:00:01 h app: x");
}

/// Found by the `syslog` fuzz target: a five-digit year made an `@timestamp` that RFC 3339
/// (and so the event's own JSON reader) cannot hold.
#[test]
fn a_year_beyond_9999_falls_back_to_the_arrival_time() {
    let ctx = ParseContext::new(
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 1, 0, 0, 5).unwrap(),
        "syslog_udp",
    );
    let e = normalise(b"<166>Jan 03 22026 00:20:01winde:20.1.\0\nSA\n", &ctx);
    assert_eq!(e.timestamp, ctx.received_at);
    assert!(e.tags.iter().any(|t| t == "weir_timestamp_out_of_range"));
    let json = e.to_json();
    assert_eq!(Event::from_json(&json).expect("reads back").to_json(), json);
}

/// Found by the `syslog` fuzz target: a Snare record whose time has the year `-013`.
#[test]
fn a_snare_time_with_a_negative_year_is_not_a_time() {
    let ctx = ParseContext::new(
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 1, 0, 0, 5).unwrap(),
        "syslog_udp",
    );
    let line = "<13>Jan  1 00:00:01 DC01.plant.example MSWinEventLog\t1\tSecurity\t12345\tThu Jan 01 00:00:01 -013\t4625\tMicrosoft-Windows-Security-Auditing\tN/A\tN/A\tFailure Audit\tDC01.plant.example\tLogon\t\tAn account failed to log on.\t1";
    let e = normalise(line.as_bytes(), &ctx);
    let json = e.to_json();
    assert_eq!(Event::from_json(&json).expect("reads back").to_json(), json);
}
