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
        Charset::Utf16Le | Charset::Utf16Be => {
            if rest.len() % 2 != 0 {
                return Err(TextError::Utf16);
            }
            let units = rest.chunks_exact(2).map(|c| match (charset, c) {
                (Charset::Utf16Be, [a, b]) => u16::from_be_bytes([*a, *b]),
                (_, [a, b]) => u16::from_le_bytes([*a, *b]),
                _ => 0,
            });
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map_err(|_| TextError::Utf16)?
        }
    };
    Ok((text, charset))
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
