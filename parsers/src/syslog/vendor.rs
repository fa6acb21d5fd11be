//! Device payloads recognised on top of the syslog header.
//!
//! | device                | recognised by                          | fills                                   |
//! |-----------------------|----------------------------------------|-----------------------------------------|
//! | Cisco ASA / FTD       | `%ASA-6-302013:` / `%FTD-...`          | `observer.vendor/product/type`, `event.code` (message id), `observer.hostname` |
//! | Cisco IOS / IOS-XE    | `%FACILITY-SEVERITY-MNEMONIC:`         | `observer.vendor/product`, `event.code` (mnemonic), `observer.hostname` |
//! | Fortinet FortiGate    | `date=YYYY-MM-DD time=HH:MM:SS ...`    | `@timestamp` (read in the source's zone, or its `tz=` field), `observer.*` from `devname` |
//! | Palo Alto PAN-OS      | CSV with `,TRAFFIC,` / `,THREAT,` / ...| `observer.vendor/product/type`, `event.code` (log type) |
//!
//! Everything here is best effort: a payload that is not recognised leaves the event as parsed.

use std::borrow::Cow;

use chrono::{FixedOffset, NaiveDateTime, TimeZone, Utc};
use weir_schemas::{Event, Observer};

use super::ParseContext;

/// Fill vendor fields for the payload formats this module knows.
pub fn enrich(event: &mut Event, ctx: &ParseContext) {
    let Some(message) = event.message.as_deref() else {
        return;
    };
    if let Some(mnemonic) = message.strip_prefix('%') {
        cisco(
            event,
            mnemonic.split(':').next().unwrap_or_default().to_owned(),
        );
    } else if message.starts_with("date=") {
        fortigate(event, ctx);
    } else if let Some(kind) = paloalto_type(message) {
        let kind = kind.to_owned();
        let host = event
            .log
            .as_ref()
            .and_then(|l| l.syslog.as_ref()?.hostname.clone());
        event.event.code = Some(kind);
        event.observer = Some(Observer {
            hostname: host,
            vendor: Some(Cow::Borrowed("Palo Alto Networks")),
            product: Some(Cow::Borrowed("PAN-OS")),
            kind: Some(Cow::Borrowed("firewall")),
            ..Observer::default()
        });
    }
}

fn cisco(event: &mut Event, mnemonic: String) {
    // FACILITY-SEVERITY-MNEMONIC; ASA and FTD use a numeric message id as mnemonic.
    let mut parts = mnemonic.splitn(3, '-');
    let (Some(facility), Some(severity), Some(code)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    if severity.len() != 1 || !severity.bytes().all(|b| b.is_ascii_digit()) {
        return;
    }
    let (product, kind) = match facility {
        "ASA" => ("ASA", Some("firewall")),
        "FTD" => ("Firepower Threat Defense", Some("firewall")),
        _ => ("IOS", None),
    };
    let host = event
        .log
        .as_ref()
        .and_then(|l| l.syslog.as_ref()?.hostname.clone());
    event.event.code = Some(code.to_owned());
    event.observer = Some(Observer {
        hostname: host,
        vendor: Some(Cow::Borrowed("Cisco")),
        product: Some(Cow::Borrowed(product)),
        kind: kind.map(Cow::Borrowed),
        ..Observer::default()
    });
}

/// The value of `key=` in a FortiGate key=value line (quoted or bare).
fn kv<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = line;
    loop {
        let at = rest.find(key)?;
        let before_ok = at == 0 || rest.get(..at)?.ends_with(' ');
        let after = rest.get(at + key.len()..)?;
        if before_ok {
            if let Some(value) = after.strip_prefix('=') {
                return Some(match value.strip_prefix('"') {
                    Some(quoted) => quoted.split('"').next().unwrap_or_default(),
                    None => value.split(' ').next().unwrap_or_default(),
                });
            }
        }
        rest = after;
    }
}

fn fortigate(event: &mut Event, ctx: &ParseContext) {
    let Some(message) = event.message.as_deref() else {
        return;
    };
    let (Some(date), Some(time)) = (kv(message, "date"), kv(message, "time")) else {
        return;
    };
    let devname = kv(message, "devname").map(str::to_owned);
    let logid = kv(message, "logid").map(str::to_owned);
    let offset = kv(message, "tz").and_then(parse_offset);
    if let Ok(naive) = NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M:%S")
    {
        let at = match offset {
            Some(offset) => offset
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc)),
            None => {
                event.event.timezone = Some(ctx.timezone.name().to_owned());
                ctx.timezone
                    .from_local_datetime(&naive)
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
            }
        };
        if let Some(at) = at {
            event.timestamp = at;
        }
    }
    event.event.code = logid;
    event.observer = Some(Observer {
        hostname: devname.clone(),
        name: devname,
        vendor: Some(Cow::Borrowed("Fortinet")),
        product: Some(Cow::Borrowed("FortiGate")),
        kind: Some(Cow::Borrowed("firewall")),
        ..Observer::default()
    });
}

/// `+0100`, `-0500`.
fn parse_offset(text: &str) -> Option<FixedOffset> {
    let (sign, digits) = match text.split_at_checked(1)? {
        ("+", d) => (1, d),
        ("-", d) => (-1, d),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits.get(..2)?.parse().ok()?;
    let minutes: i32 = digits.get(2..)?.parse().ok()?;
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// PAN-OS CSV: `FUTURE_USE,receive time,serial,TYPE,subtype,...`.
fn paloalto_type(message: &str) -> Option<&str> {
    let mut fields = message.splitn(5, ',');
    let (_, _, serial, kind) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let known = [
        "TRAFFIC",
        "THREAT",
        "SYSTEM",
        "CONFIG",
        "HIPMATCH",
        "GLOBALPROTECT",
        "USERID",
        "AUTH",
        "DECRYPTION",
        "TUNNEL",
    ];
    (serial.bytes().all(|b| b.is_ascii_digit()) && known.contains(&kind)).then_some(kind)
}
