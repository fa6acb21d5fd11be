//! SLDC (Streaming Lossless Data Compression, ECMA-321) decompression: the only
//! `Content-Encoding` Windows Event Forwarding uses when a subscription offers
//! `Compression=SLDC`.
//!
//! The stream is read most-significant bit first. A control symbol is nine one-bits and a
//! four-bit code; between them come data symbols in one of two schemes:
//!
//! * Scheme 1 (compressed): `0` + 8-bit literal, or `1` + match count + 10-bit displacement
//!   into a 1,024-byte history buffer. Match counts: `0x` 2-3, `10xx` 4-7, `110xxx` 8-15,
//!   `1110xxxx` 16-31, `1111xxxxxxxx` 32-271 (the values whose first four bits are `1111`
//!   are the control symbols).
//! * Scheme 2 (raw bytes): 8-bit literals; `0xFF` is followed by a `0` bit so that it cannot
//!   be mistaken for a control symbol.
//!
//! Every byte produced, by either scheme, enters the history buffer. `Flush` and
//! `End of Record` are followed by zero bits up to the next 32-bit boundary; the record ends at
//! `End of Record` (or `End Marker`). Output is bounded by the caller's limit, so a
//! compression bomb costs at most that many bytes.

/// History buffer size fixed by ECMA-321.
const HISTORY: usize = 1024;

/// Why a body does not decompress.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SldcError {
    /// The data ended inside a symbol or before `End of Record`.
    #[error("SLDC data ended before the end of the record")]
    Truncated,
    /// Data symbols before any scheme was selected.
    #[error("SLDC data symbol before a scheme was selected")]
    NoScheme,
    /// A reserved control code.
    #[error("reserved SLDC control code {0}")]
    ReservedControl(u8),
    /// Output would exceed the caller's limit.
    #[error("SLDC output exceeds {0} bytes")]
    TooLarge(usize),
}

struct Bits<'a> {
    data: &'a [u8],
    /// Position in bits.
    at: usize,
}

impl Bits<'_> {
    fn remaining(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.at)
    }

    /// The next `n` (≤ 16) bits without consuming them; `None` past the end.
    fn peek(&self, n: usize) -> Option<u16> {
        if n > 16 || self.remaining() < n {
            return None;
        }
        let byte = self.at / 8;
        let b = |i: usize| u32::from(self.data.get(byte + i).copied().unwrap_or(0));
        let window = (b(0) << 16) | (b(1) << 8) | b(2);
        let shift = 24 - (self.at % 8) - n;
        u16::try_from((window >> shift) & ((1u32 << n) - 1)).ok()
    }

    fn take(&mut self, n: usize) -> Result<u16, SldcError> {
        let v = self.peek(n).ok_or(SldcError::Truncated)?;
        self.at += n;
        Ok(v)
    }

    fn align32(&mut self) {
        self.at = self.at.div_ceil(32) * 32;
    }
}

struct Output {
    out: Vec<u8>,
    history: [u8; HISTORY],
    pos: usize,
    limit: usize,
}

impl Output {
    fn push(&mut self, b: u8) -> Result<(), SldcError> {
        if self.out.len() >= self.limit {
            return Err(SldcError::TooLarge(self.limit));
        }
        self.out.push(b);
        if let Some(slot) = self.history.get_mut(self.pos) {
            *slot = b;
        }
        self.pos = (self.pos + 1) % HISTORY;
        Ok(())
    }

    fn reset(&mut self) {
        self.history = [0; HISTORY];
        self.pos = 0;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    None,
    One,
    Two,
}

/// True when a body marked SLDC is plain text after all. Windows sends some envelopes (the
/// `End` after a `SubscriptionEnd`) with `Content-Encoding: SLDC` but uncompressed. An SLDC
/// record starts with a control symbol (`0xFF` then `0x88`-`0xB7`); text starts with a
/// byte-order mark or `<` (in UTF-8 or UTF-16). A UTF-16 byte-order mark read as SLDC would be
/// nine one-bits and the End Marker: an empty record, not an error, hence this check first.
pub fn is_plain_text(body: &[u8]) -> bool {
    matches!(
        body,
        [0xFF, 0xFE, ..] | [0xFE, 0xFF, ..] | [0xEF, 0xBB, 0xBF, ..] | [b'<', ..] | [0, b'<', ..]
    )
}

/// Decompress one SLDC record, producing at most `limit` bytes.
pub fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, SldcError> {
    let mut bits = Bits { data, at: 0 };
    let mut out = Output {
        out: Vec::with_capacity(data.len().saturating_mul(3).min(limit)),
        history: [0; HISTORY],
        pos: 0,
        limit,
    };
    let mut scheme = Scheme::None;
    loop {
        if bits.peek(9) == Some(0x1FF) {
            let code = bits.take(13)? & 0xF;
            match code {
                0 => bits.align32(), // Flush
                1 => scheme = Scheme::One,
                2 => scheme = Scheme::Two,
                3 => {}                       // File Mark: nothing to output
                4 | 15 => return Ok(out.out), // End of Record, End Marker
                5 => {
                    out.reset();
                    scheme = Scheme::One;
                }
                6 => {
                    out.reset();
                    scheme = Scheme::Two;
                }
                other => return Err(SldcError::ReservedControl(other as u8)),
            }
            continue;
        }
        if bits.remaining() == 0 {
            return Err(SldcError::Truncated);
        }
        match scheme {
            Scheme::None => return Err(SldcError::NoScheme),
            Scheme::Two => {
                let b = bits.take(8)? as u8;
                if b == 0xFF {
                    // The escape bit (0): a literal 0xFF, not a control symbol.
                    bits.take(1)?;
                }
                out.push(b)?;
            }
            Scheme::One => {
                if bits.take(1)? == 0 {
                    out.push(bits.take(8)? as u8)?;
                    continue;
                }
                let count = if bits.take(1)? == 0 {
                    2 + bits.take(1)?
                } else if bits.take(1)? == 0 {
                    4 + bits.take(2)?
                } else if bits.take(1)? == 0 {
                    8 + bits.take(3)?
                } else if bits.take(1)? == 0 {
                    16 + bits.take(4)?
                } else {
                    // 1111xxxxxxxx with xxxx... ≥ 0xF0 is a control symbol, caught above.
                    32 + bits.take(8)?
                };
                let displacement = usize::from(bits.take(10)?);
                for k in 0..usize::from(count) {
                    let b = out
                        .history
                        .get((displacement + k) % HISTORY)
                        .copied()
                        .unwrap_or(0);
                    out.push(b)?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0))
            .collect()
    }

    /// A Windows client's compression of "test string" (Scheme 2 after a reset, End of
    /// Record, padding to 32 bits), as published in OpenWEC's protocol analysis.
    #[test]
    fn raw_scheme_record() {
        let data = hex("ffb3a32b9ba1039ba3934b733ffd0000");
        assert_eq!(
            decompress(&data, 1 << 20).unwrap_or_default(),
            b"test string"
        );
    }

    /// Scheme 1 with literals and copies, built bit by bit from ECMA-321's tables.
    #[test]
    fn copy_pointers() {
        // Reset 1, literals 'a' 'b' 'c', copy count 6 from displacement 0, End of Record.
        let mut w = BitWriter::default();
        w.put(0x1FF, 9);
        w.put(5, 4);
        for b in b"abc" {
            w.put(0, 1);
            w.put(u32::from(*b), 8);
        }
        w.put(1, 1); // copy pointer
        w.put(0b110, 3); // 8..15
        w.put(0, 3); // count 8
        w.put(0, 10); // displacement 0
        w.put(1, 1); // a second copy: count 2 from displacement 1
        w.put(0b00, 2);
        w.put(1, 10);
        w.put(1, 1); // count 40 (1111 + 8) from displacement 0
        w.put(0b1111, 4);
        w.put(8, 8);
        w.put(0, 10);
        w.put(0x1FF, 9);
        w.put(4, 4);
        let out = decompress(&w.finish(), 1 << 20).unwrap_or_default();
        let mut expected = b"abcabcabcab".to_vec(); // 3 literals + 8 copied (overlapping)
        expected.extend_from_slice(b"bc");
        let prefix = expected.clone();
        for k in 0..40 {
            expected.push(prefix.get(k % prefix.len()).copied().unwrap_or(0));
        }
        assert_eq!(out, expected);
    }

    #[test]
    fn escaped_ff_in_raw_scheme_and_limits() {
        let mut w = BitWriter::default();
        w.put(0x1FF, 9);
        w.put(2, 4);
        w.put(0xFF, 8);
        w.put(0, 1);
        w.put(0x41, 8);
        w.put(0x1FF, 9);
        w.put(4, 4);
        let data = w.finish();
        assert_eq!(decompress(&data, 10).unwrap_or_default(), vec![0xFF, 0x41]);
        assert_eq!(decompress(&data, 1), Err(SldcError::TooLarge(1)));
        assert_eq!(
            decompress(data.get(..2).unwrap_or_default(), 10),
            Err(SldcError::Truncated)
        );
        assert_eq!(decompress(&[0x41, 0x42], 10), Err(SldcError::NoScheme));
        assert_eq!(
            decompress(&[0xFF, 0xC8], 10),
            Err(SldcError::ReservedControl(9))
        );
    }

    #[test]
    fn text_marked_sldc_is_recognised() {
        assert!(is_plain_text(&[0xFF, 0xFE, b'<', 0]));
        assert!(is_plain_text(b"<s:Envelope"));
        assert!(is_plain_text(&[0xEF, 0xBB, 0xBF, b'<']));
        assert!(!is_plain_text(&hex("ffb3a32b9ba1039ba3934b733ffd0000")));
        assert!(!is_plain_text(&[0xFF, 0xAB, 0xFD]));
        assert!(!is_plain_text(&[]));
        // What it guards against: a byte-order mark decodes as an empty record.
        assert_eq!(decompress(&[0xFF, 0xFE, b'<', 0], 100), Ok(Vec::new()));
    }

    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        n: usize,
    }

    impl BitWriter {
        fn put(&mut self, v: u32, bits: usize) {
            for i in (0..bits).rev() {
                if self.n.is_multiple_of(8) {
                    self.bytes.push(0);
                }
                if (v >> i) & 1 == 1 {
                    if let Some(last) = self.bytes.last_mut() {
                        *last |= 0x80 >> (self.n % 8);
                    }
                }
                self.n += 1;
            }
        }
        fn finish(self) -> Vec<u8> {
            let mut b = self.bytes;
            while !b.len().is_multiple_of(4) {
                b.push(0);
            }
            b
        }
    }
}
