//! Body text encodings. Windows sends WS-Management envelopes in UTF-16 (little-endian, with a
//! byte-order mark, `Content-Type: application/soap+xml;charset=UTF-16`) unless a subscription
//! asks for UTF-8; other clients send UTF-8. Replies go back in the request's encoding.

/// How a body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// UTF-8 (with or without a byte-order mark).
    Utf8,
    /// UTF-16 little-endian.
    Utf16Le,
    /// UTF-16 big-endian.
    Utf16Be,
}

impl Charset {
    /// The `charset` parameter of a `Content-Type` header (`None`: not given or unknown).
    pub fn from_content_type(content_type: &str) -> Option<Charset> {
        content_type.split(';').skip(1).find_map(|param| {
            let (k, v) = param.split_once('=')?;
            if !k.trim().eq_ignore_ascii_case("charset") {
                return None;
            }
            match v.trim().trim_matches('"').to_ascii_lowercase().as_str() {
                "utf-8" | "utf8" => Some(Charset::Utf8),
                "utf-16" | "utf-16le" => Some(Charset::Utf16Le),
                "utf-16be" => Some(Charset::Utf16Be),
                _ => None,
            }
        })
    }

    /// The `Content-Type` a reply in this encoding carries.
    pub fn content_type(self) -> &'static str {
        match self {
            Charset::Utf8 => "application/soap+xml;charset=UTF-8",
            Charset::Utf16Le | Charset::Utf16Be => "application/soap+xml;charset=UTF-16",
        }
    }
}

/// Why a body is not text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// Invalid UTF-8.
    #[error("the body is not valid UTF-8")]
    Utf8,
    /// Odd length or unpaired surrogates.
    #[error("the body is not valid UTF-16")]
    Utf16,
}

/// Decode a body: a byte-order mark wins, then the header's charset, then UTF-8.
pub fn decode(body: &[u8], declared: Option<Charset>) -> Result<(String, Charset), TextError> {
    let (charset, rest) = if let Some(rest) = body.strip_prefix(&[0xFF, 0xFE]) {
        (Charset::Utf16Le, rest)
    } else if let Some(rest) = body.strip_prefix(&[0xFE, 0xFF]) {
        (Charset::Utf16Be, rest)
    } else if let Some(rest) = body.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        (Charset::Utf8, rest)
    } else {
        (declared.unwrap_or(Charset::Utf8), body)
    };
    let text = match charset {
        Charset::Utf8 => std::str::from_utf8(rest)
            .map_err(|_| TextError::Utf8)?
            .to_owned(),
        Charset::Utf16Le | Charset::Utf16Be => utf16(rest, charset == Charset::Utf16Be)?,
    };
    Ok((text, charset))
}

/// UTF-16 to a `String`. Envelopes are almost all ASCII: runs of four ASCII code units are
/// copied eight bytes at a time; everything else goes through the surrogate rules.
fn utf16(bytes: &[u8], big_endian: bool) -> Result<String, TextError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(TextError::Utf16);
    }
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len() / 2 + 16);
    let unit = |c: &[u8]| match c {
        [a, b] if big_endian => u16::from_be_bytes([*a, *b]),
        [a, b] => u16::from_le_bytes([*a, *b]),
        _ => 0,
    };
    // Mask of the bits that must be zero for four little-endian (or big-endian) ASCII units.
    let ascii_mask: u64 = if big_endian {
        0xFF80_FF80_FF80_FF80u64.swap_bytes()
    } else {
        0xFF80_FF80_FF80_FF80
    };
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let v = u64::from_le_bytes(w);
            if v & ascii_mask == 0 {
                let (a, b, c, d) = if big_endian {
                    (w[1], w[3], w[5], w[7])
                } else {
                    (w[0], w[2], w[4], w[6])
                };
                out.extend_from_slice(&[a, b, c, d]);
                i += 8;
                continue;
            }
        }
        let u = unit(bytes.get(i..i + 2).ok_or(TextError::Utf16)?);
        i += 2;
        let c = if (0xD800..0xDC00).contains(&u) {
            let low = unit(bytes.get(i..i + 2).ok_or(TextError::Utf16)?);
            if !(0xDC00..0xE000).contains(&low) {
                return Err(TextError::Utf16);
            }
            i += 2;
            0x10000 + ((u32::from(u) - 0xD800) << 10) + (u32::from(low) - 0xDC00)
        } else if (0xDC00..0xE000).contains(&u) {
            return Err(TextError::Utf16);
        } else {
            u32::from(u)
        };
        let ch = char::from_u32(c).ok_or(TextError::Utf16)?;
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    String::from_utf8(out).map_err(|_| TextError::Utf16)
}

/// Encode a reply (UTF-16 with a byte-order mark, as Windows writes it).
pub fn encode(text: &str, charset: Charset) -> Vec<u8> {
    match charset {
        Charset::Utf8 => text.as_bytes().to_vec(),
        Charset::Utf16Le => {
            let mut out = Vec::with_capacity(2 + text.len() * 2);
            out.extend_from_slice(&[0xFF, 0xFE]);
            for u in text.encode_utf16() {
                out.extend_from_slice(&u.to_le_bytes());
            }
            out
        }
        Charset::Utf16Be => {
            let mut out = Vec::with_capacity(2 + text.len() * 2);
            out.extend_from_slice(&[0xFE, 0xFF]);
            for u in text.encode_utf16() {
                out.extend_from_slice(&u.to_be_bytes());
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detection() {
        let s = "<a>Ünïcode € 𝄞</a>";
        for cs in [Charset::Utf8, Charset::Utf16Le, Charset::Utf16Be] {
            let bytes = encode(s, cs);
            assert_eq!(decode(&bytes, None), Ok((s.to_owned(), cs)), "{cs:?}");
        }
        // No byte-order mark: the header decides.
        let le: Vec<u8> = "ab".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        assert_eq!(
            decode(&le, Some(Charset::Utf16Le)),
            Ok(("ab".to_owned(), Charset::Utf16Le))
        );
        assert_eq!(decode(&[0xFF, 0xFE, 0x41], None), Err(TextError::Utf16));
        assert_eq!(
            decode(&[0xFF, 0xFE, 0x00, 0xD8], None),
            Err(TextError::Utf16)
        );
        assert_eq!(decode(&[0xC3], None), Err(TextError::Utf8));
        // Long mixed text: the eight-byte fast path and the slow path agree with std.
        let long = "<s:Envelope>ASCII run ".repeat(7) + "é€𝄞 tail" + &"x".repeat(13);
        for cs in [Charset::Utf16Le, Charset::Utf16Be] {
            assert_eq!(decode(&encode(&long, cs), None), Ok((long.clone(), cs)));
        }
        // A lone low surrogate, a high surrogate followed by ASCII.
        assert_eq!(
            decode(&[0xFF, 0xFE, 0x00, 0xDC], None),
            Err(TextError::Utf16)
        );
        assert_eq!(
            decode(&[0xFF, 0xFE, 0x00, 0xD8, 0x41, 0x00], None),
            Err(TextError::Utf16)
        );
        assert_eq!(
            Charset::from_content_type("application/soap+xml;charset=UTF-16"),
            Some(Charset::Utf16Le)
        );
        assert_eq!(
            Charset::from_content_type("application/soap+xml; charset=\"utf-8\""),
            Some(Charset::Utf8)
        );
        assert_eq!(Charset::from_content_type("application/soap+xml"), None);
    }
}
