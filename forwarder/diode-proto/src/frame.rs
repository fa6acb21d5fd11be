/*!
The datagram: a fixed 32-byte header, an encrypted payload, a 16-byte tag.

```text
 0               1               2               3
 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
+---------------+---------------+---------------+---------------+
|      'W'      |      'D'      |  version (1)  |     type      |  0
+---------------+---------------+---------------+---------------+
|            key id             |    cipher     | reserved (0)  |  4
+---------------+---------------+---------------+---------------+
|                    session epoch (u64)                        |  8
|                                                               |
+---------------+---------------+---------------+---------------+
|                    block sequence (u64)                       | 16
|                                                               |
+---------------+---------------+---------------+---------------+
|          symbol index         |         source count          | 24
+---------------+---------------+---------------+---------------+
|          repair count         |        payload length         | 28
+---------------+---------------+---------------+---------------+
|             payload (payload length bytes, ciphertext)        | 32
|                              ...                              |
+---------------+---------------+---------------+---------------+
|                 Poly1305 tag (16 bytes)                       |
+---------------+---------------+---------------+---------------+
```

All integers are big-endian (network order). The whole header is the AEAD's associated data, so
not one header bit can change without the datagram failing authentication. A datagram is exactly
`32 + payload length + 16` bytes; anything else is rejected before any cryptography is done.

Types: 1 = source symbol (a slice of a block), 2 = repair symbol (forward error correction),
3 = heartbeat. For heartbeats the block sequence field is the heartbeat counter. Cipher: 0 =
ChaCha20-Poly1305, 1 = AES-256-GCM.
*/

use crate::crypto::Cipher;
use crate::reader::Reader;

/// `WD`: every Weir diode datagram starts with these two bytes.
pub const MAGIC: [u8; 2] = *b"WD";
/// The wire protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 32;
/// AEAD tag length in bytes.
pub const TAG_LEN: usize = 16;
/// Header plus tag: what every datagram carries besides its payload.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// What a datagram carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DatagramType {
    /// A slice of a block's bytes.
    Source = 1,
    /// A forward-error-correction symbol computed over the block's source symbols.
    Repair = 2,
    /// Liveness and accounting: last block and per-stream sequences sent, counters, settings.
    Heartbeat = 3,
}

impl DatagramType {
    fn from_u8(v: u8) -> Option<DatagramType> {
        match v {
            1 => Some(DatagramType::Source),
            2 => Some(DatagramType::Repair),
            3 => Some(DatagramType::Heartbeat),
            _ => None,
        }
    }
}

/// A decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Datagram type.
    pub kind: DatagramType,
    /// Which pre-shared key sealed the datagram.
    pub key_id: u16,
    /// Which AEAD sealed it.
    pub cipher: Cipher,
    /// Random per sender start; identifies the session.
    pub session: u64,
    /// Block sequence (heartbeat counter for heartbeats). Never wraps within a session.
    pub block: u64,
    /// Index of this symbol within the block (source symbols first, then repair symbols).
    pub symbol: u16,
    /// How many source symbols the block has.
    pub source_count: u16,
    /// How many repair symbols the block has.
    pub repair_count: u16,
    /// Payload bytes between header and tag.
    pub payload_len: u16,
}

/// Why a datagram's framing is rejected (before authentication).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Shorter than a header and a tag.
    #[error("datagram too short")]
    TooShort,
    /// Does not start with `WD`.
    #[error("bad magic")]
    BadMagic,
    /// A protocol version this receiver does not speak.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// An unknown datagram type.
    #[error("unknown datagram type {0}")]
    UnknownType(u8),
    /// An unknown cipher id.
    #[error("unknown cipher {0}")]
    UnknownCipher(u8),
    /// The reserved byte is not zero.
    #[error("reserved byte set")]
    ReservedFlags,
    /// The payload length field disagrees with the datagram's size.
    #[error("payload length {declared} does not match datagram ({actual} bytes of payload)")]
    LengthMismatch {
        /// From the header.
        declared: usize,
        /// From the datagram.
        actual: usize,
    },
    /// Counts that cannot describe a block.
    #[error("inconsistent symbol counts")]
    BadCounts,
}

impl Header {
    /// Encode into the first [`HEADER_LEN`] bytes of `out`.
    pub fn encode(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..2].copy_from_slice(&MAGIC);
        out[2] = VERSION;
        out[3] = self.kind as u8;
        out[4..6].copy_from_slice(&self.key_id.to_be_bytes());
        out[6] = self.cipher as u8;
        out[7] = 0;
        out[8..16].copy_from_slice(&self.session.to_be_bytes());
        out[16..24].copy_from_slice(&self.block.to_be_bytes());
        out[24..26].copy_from_slice(&self.symbol.to_be_bytes());
        out[26..28].copy_from_slice(&self.source_count.to_be_bytes());
        out[28..30].copy_from_slice(&self.repair_count.to_be_bytes());
        out[30..32].copy_from_slice(&self.payload_len.to_be_bytes());
    }

    /// Decode and check a whole datagram's framing. Returns the header; the payload is
    /// `datagram[HEADER_LEN..HEADER_LEN + payload_len]` and the tag follows it.
    pub fn decode(datagram: &[u8]) -> Result<Header, FrameError> {
        if datagram.len() < OVERHEAD {
            return Err(FrameError::TooShort);
        }
        let mut r = Reader::new(datagram);
        let short = |_| FrameError::TooShort;
        if r.take(2).map_err(short)? != MAGIC {
            return Err(FrameError::BadMagic);
        }
        let version = r.u8().map_err(short)?;
        if version != VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let raw_kind = r.u8().map_err(short)?;
        let kind = DatagramType::from_u8(raw_kind).ok_or(FrameError::UnknownType(raw_kind))?;
        let key_id = r.u16().map_err(short)?;
        let raw_cipher = r.u8().map_err(short)?;
        let cipher = Cipher::from_u8(raw_cipher).ok_or(FrameError::UnknownCipher(raw_cipher))?;
        if r.u8().map_err(short)? != 0 {
            return Err(FrameError::ReservedFlags);
        }
        let header = Header {
            kind,
            key_id,
            cipher,
            session: r.u64().map_err(short)?,
            block: r.u64().map_err(short)?,
            symbol: r.u16().map_err(short)?,
            source_count: r.u16().map_err(short)?,
            repair_count: r.u16().map_err(short)?,
            payload_len: r.u16().map_err(short)?,
        };
        let actual = datagram.len() - OVERHEAD;
        if usize::from(header.payload_len) != actual {
            return Err(FrameError::LengthMismatch {
                declared: usize::from(header.payload_len),
                actual,
            });
        }
        let total = u32::from(header.source_count) + u32::from(header.repair_count);
        let counts_ok = match kind {
            DatagramType::Heartbeat => header.source_count == 1 && header.symbol == 0,
            _ => header.source_count > 0 && u32::from(header.symbol) < total,
        };
        if !counts_ok || header.payload_len == 0 {
            return Err(FrameError::BadCounts);
        }
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            kind: DatagramType::Source,
            key_id: 7,
            cipher: Cipher::ChaCha20Poly1305,
            session: 0x0102_0304_0506_0708,
            block: 42,
            symbol: 3,
            source_count: 5,
            repair_count: 0,
            payload_len: 4,
        }
    }

    fn datagram(h: &Header) -> Vec<u8> {
        let mut buf = [0u8; HEADER_LEN];
        h.encode(&mut buf);
        let mut d = buf.to_vec();
        d.extend_from_slice(&[0u8; 4]);
        d.extend_from_slice(&[0u8; TAG_LEN]);
        d
    }

    #[test]
    fn header_round_trips_and_has_the_documented_layout() {
        let h = header();
        let d = datagram(&h);
        assert_eq!(Header::decode(&d), Ok(h));
        assert_eq!(&d[..4], b"WD\x01\x01");
        assert_eq!(&d[4..6], &[0, 7]);
        assert_eq!(&d[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&d[16..24], &42u64.to_be_bytes());
        assert_eq!(&d[24..32], &[0, 3, 0, 5, 0, 0, 0, 4]);
    }

    #[test]
    fn framing_errors_are_named() {
        let good = datagram(&header());
        assert_eq!(Header::decode(&good[..40]), Err(FrameError::TooShort));
        let mut d = good.clone();
        d[0] = b'X';
        assert_eq!(Header::decode(&d), Err(FrameError::BadMagic));
        let mut d = good.clone();
        d[2] = 9;
        assert_eq!(Header::decode(&d), Err(FrameError::UnsupportedVersion(9)));
        let mut d = good.clone();
        d[3] = 0;
        assert_eq!(Header::decode(&d), Err(FrameError::UnknownType(0)));
        let mut d = good.clone();
        d[6] = 9;
        assert_eq!(Header::decode(&d), Err(FrameError::UnknownCipher(9)));
        let mut d = good.clone();
        d[7] = 1;
        assert_eq!(Header::decode(&d), Err(FrameError::ReservedFlags));
        let mut d = good.clone();
        d.push(0);
        assert!(matches!(
            Header::decode(&d),
            Err(FrameError::LengthMismatch { .. })
        ));
        let mut d = good;
        d[25] = 9; // symbol 9 of 5
        assert_eq!(Header::decode(&d), Err(FrameError::BadCounts));
    }
}
