//! The forms `syslog_loose` rejects but real devices send:
//!
//! * Cisco IOS with `service sequence-numbers` and time-sync markers:
//!   `<189>124: *Mar  1 00:01:07.123: %SYS-5-CONFIG_I: ...`, `<187>9: .Jan 15 10:00:00.123 UTC: ...`
//! * millisecond BSD timestamps, with or without a year and a trailing zone name,
//! * a PRI and no timestamp at all (FortiGate: `<189>date=2024-01-05 time=10:00:00 devname=...`).
//!
//! Only UTC/GMT zone names are honoured; any other abbreviation is ambiguous (IST, CST) and the
//! source's configured zone is used instead.

use std::borrow::Cow;

use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use syslog_loose::decompose_pri;

use super::{time::infer_year, ParseContext, ParseError, Parsed};

pub(super) fn parse<'a>(line: &'a str, ctx: &ParseContext) -> Result<Parsed<'a>, ParseError> {
    let (pri, rest) = match line.strip_prefix('<') {
        Some(after) => {
            let (digits, rest) = split_digits(after);
            let value = digits
                .parse::<u8>()
                .ok()
                .filter(|v| *v <= 191 && digits.len() <= 3);
            match (value, rest.strip_prefix('>')) {
                (Some(value), Some(rest)) => match decompose_pri(value) {
                    (Some(f), Some(s)) => (Some((f, s)), rest),
                    _ => return Err(ParseError::InvalidPri(super::pri_text(line))),
                },
                _ => return Err(ParseError::InvalidPri(super::pri_text(line))),
            }
        }
        None => (None, line),
    };
    let mut rest = rest.trim_start();
    // Cisco IOS sequence number: "124: ".
    let (digits, after) = split_digits(rest);
    if !digits.is_empty() {
        if let Some(after) = after.strip_prefix(": ") {
            rest = after;
        }
    }
    let mut hostname = None;
    let (timestamp, zone_assumed, rest) = match stamped(rest, ctx) {
        Some((ts, assumed, after)) => (Some(ts), assumed, after),
        // IOS `logging origin-id hostname`: "cell-sw-07: Jan  1 00:00:02.441: ...".
        None => match rest.split_once(": ") {
            Some((host, after)) if is_hostname(host) => match stamped(after, ctx) {
                Some((ts, assumed, after)) => {
                    hostname = Some(host);
                    (Some(ts), assumed, after)
                }
                None => (None, false, rest),
            },
            _ => (None, false, rest),
        },
    };
    if pri.is_none() && timestamp.is_none() {
        return Err(ParseError::NoHeader);
    }
    let msg = rest.trim_start();
    let msg = msg.strip_prefix(':').map_or(msg, str::trim_start);
    Ok(Parsed {
        rfc5424: false,
        pri,
        timestamp,
        zone_assumed,
        hostname,
        appname: None,
        procid: None::<Cow<'a, str>>,
        msgid: None,
        structured_data: Vec::new(),
        msg,
    })
}

/// A BSD timestamp, after an optional time-sync marker: '*' (clock not synchronised) or '.'
/// (synchronisation lost).
fn stamped<'a>(
    s: &'a str,
    ctx: &ParseContext,
) -> Option<(chrono::DateTime<chrono::FixedOffset>, bool, &'a str)> {
    bsd_timestamp(s.strip_prefix(['*', '.']).unwrap_or(s), ctx)
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

fn number(s: &str, max_len: usize) -> Option<(u32, &str)> {
    let (digits, rest) = split_digits(s);
    if digits.is_empty() || digits.len() > max_len {
        return None;
    }
    Some((digits.parse().ok()?, rest))
}

fn month(s: &str) -> Option<(u32, &str)> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let name = s.get(..3)?;
    let index = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(name))?;
    Some((u32::try_from(index).ok()? + 1, s.get(3..)?))
}

/// `Mmm [d]d [yyyy ]hh:mm:ss[.fff][ UTC]`, followed by `:` or white space.
fn bsd_timestamp<'a>(
    s: &'a str,
    ctx: &ParseContext,
) -> Option<(chrono::DateTime<chrono::FixedOffset>, bool, &'a str)> {
    let (mon, s) = month(s)?;
    let (day, s) = number(s.trim_start_matches(' '), 2)?;
    let s = s.strip_prefix(' ')?;
    let (first, after_first) = number(s, 4)?;
    let (year, hour, s) = if after_first.starts_with(' ') {
        let (hour, s) = number(after_first.trim_start_matches(' '), 2)?;
        (Some(i32::try_from(first).ok()?), hour, s)
    } else {
        (None, first, after_first)
    };
    let (minute, s) = number(s.strip_prefix(':')?, 2)?;
    let (second, mut s) = number(s.strip_prefix(':')?, 2)?;
    let mut nanos = 0u32;
    if let Some(frac) = s.strip_prefix('.') {
        let (digits, after) = split_digits(frac);
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        let scale = 10u32.pow(9 - u32::try_from(digits.len()).ok()?);
        nanos = digits.parse::<u32>().ok()? * scale;
        s = after;
    }
    let mut utc = false;
    for zone in [" UTC", " GMT"] {
        if let Some(after) = s.strip_prefix(zone) {
            utc = true;
            s = after;
        }
    }
    if !(s.is_empty() || s.starts_with([':', ' '])) {
        return None;
    }
    let local_now = ctx.received_at.with_timezone(&ctx.timezone).naive_local();
    let year = year.unwrap_or_else(|| infer_year((mon, day, hour, minute, second), local_now));
    let naive: NaiveDateTime =
        NaiveDate::from_ymd_opt(year, mon, day)?.and_hms_nano_opt(hour, minute, second, nanos)?;
    let ts = if utc {
        chrono::Utc.from_utc_datetime(&naive).fixed_offset()
    } else {
        ctx.timezone
            .from_local_datetime(&naive)
            .earliest()?
            .fixed_offset()
    };
    Some((ts, !utc, s))
}
