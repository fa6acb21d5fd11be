//! Just enough DER to name a client certificate: its subject and issuer as RFC 4514 strings
//! (`CN=hmi-01.plant.local,O=Plant`), the subject's common names, and its SHA-1 thumbprint.
//! The TLS library has already verified the certificate; this only reads it.

use super::thumbprint;

/// What events record about the certificate that authenticated a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCert {
    /// Subject distinguished name (RFC 4514).
    pub subject: String,
    /// Issuer distinguished name (RFC 4514).
    pub issuer: String,
    /// The subject's common names.
    pub common_names: Vec<String>,
    /// SHA-1 of the DER certificate, upper-case hex.
    pub sha1: String,
}

/// One DER element: tag and content.
fn tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        (
            bytes.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b)),
            rest,
        )
    };
    if rest.len() < len {
        return None;
    }
    let (content, after) = rest.split_at(len);
    Some((tag, content, after))
}

fn oid_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x09] => "STREET",
        [0x55, 0x04, 0x0A] => "O",
        [0x55, 0x04, 0x0B] => "OU",
        [0x55, 0x04, 0x05] => "serialNumber",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x01] => "UID",
        [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01] => "emailAddress",
        _ => return None,
    })
}

fn oid_dotted(oid: &[u8]) -> String {
    let mut parts: Vec<u64> = Vec::new();
    let mut v = 0u64;
    for (i, b) in oid.iter().enumerate() {
        v = (v << 7) | u64::from(b & 0x7F);
        if b & 0x80 == 0 {
            if i == parts.len() && parts.is_empty() {
                // The first sub-identifier packs the first two arcs.
                let first = (v / 40).min(2);
                parts.push(first);
                parts.push(v - first * 40);
            } else {
                parts.push(v);
            }
            v = 0;
        }
    }
    parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// An attribute value as text (string types), or `#hex` of the whole element (RFC 4514).
fn value_text(tag: u8, content: &[u8], whole: &[u8]) -> String {
    match tag {
        // UTF8String, PrintableString, IA5String, TeletexString, VisibleString
        0x0C | 0x13 | 0x16 | 0x14 | 0x1A => escape_value(&String::from_utf8_lossy(content)),
        // BMPString
        0x1E => {
            let units = content.chunks_exact(2).map(|c| {
                u16::from_be_bytes([
                    c.first().copied().unwrap_or(0),
                    c.get(1).copied().unwrap_or(0),
                ])
            });
            escape_value(
                &char::decode_utf16(units)
                    .map(|c| c.unwrap_or('\u{FFFD}'))
                    .collect::<String>(),
            )
        }
        _ => {
            let mut s = String::from("#");
            for b in whole {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
    }
}

fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A `Name` as an RFC 4514 string (last RDN first) and its common names.
fn name(content: &[u8]) -> Option<(String, Vec<String>)> {
    let mut rdns: Vec<String> = Vec::new();
    let mut cns = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (tag, set, after) = tlv(rest)?;
        rest = after;
        if tag != 0x31 {
            return None;
        }
        let mut atvs = Vec::new();
        let mut inner = set;
        while !inner.is_empty() {
            let (tag, seq, after) = tlv(inner)?;
            inner = after;
            if tag != 0x30 {
                return None;
            }
            let (otag, oid, value_and_rest) = tlv(seq)?;
            if otag != 0x06 {
                return None;
            }
            let (vtag, vcontent, _) = tlv(value_and_rest)?;
            let text = value_text(vtag, vcontent, value_and_rest);
            let key = oid_name(oid)
                .map(str::to_owned)
                .unwrap_or_else(|| oid_dotted(oid));
            if key == "CN" {
                cns.push(String::from_utf8_lossy(vcontent).into_owned());
            }
            atvs.push(format!("{key}={text}"));
        }
        rdns.push(atvs.join("+"));
    }
    rdns.reverse();
    Some((rdns.join(","), cns))
}

/// Read a DER certificate's names (`None`: not a certificate this reader understands).
pub fn client_cert(der: &[u8]) -> Option<ClientCert> {
    let (tag, cert, _) = tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, tbs, _) = tlv(cert)?;
    if tag != 0x30 {
        return None;
    }
    let mut rest = tbs;
    // [0] EXPLICIT version, optional.
    if rest.first() == Some(&0xA0) {
        rest = tlv(rest)?.2;
    }
    let (_serial_tag, _, after) = tlv(rest)?; // serialNumber
    let (_alg_tag, _, after) = tlv(after)?; // signature AlgorithmIdentifier
    let (itag, issuer, after) = tlv(after)?;
    let (_vtag, _, after) = tlv(after)?; // validity
    let (stag, subject, _) = tlv(after)?;
    if itag != 0x30 || stag != 0x30 {
        return None;
    }
    let (issuer, _) = name(issuer)?;
    let (subject, common_names) = name(subject)?;
    Some(ClientCert {
        subject,
        issuer,
        common_names,
        sha1: thumbprint(der),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_oids() {
        assert_eq!(escape_value("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_value(" #x "), "\\ #x\\ ");
        assert_eq!(oid_dotted(&[0x55, 0x04, 0x03]), "2.5.4.3");
        assert_eq!(
            oid_dotted(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D]),
            "1.2.840.113549"
        );
        assert_eq!(client_cert(b"\x30\x03\x02\x01"), None);
        assert_eq!(client_cert(&[]), None);
    }
}
