//! Blocks: a batch of records, compressed, as it is split across source symbols.
//!
//! ```text
//! block   = content-length (u32) | codec (u8) | raw-length (u32) | body | zero padding
//!           content-length counts codec + raw-length + body (5 + body bytes)
//! codec   = 0 (none: body is the records area) | 1 (zstd: body decompresses to it)
//! records = *( stream (u16) | sequence (u64) | length (u32) | data )
//! ```
//!
//! The padding fills the block to `source count × symbol size`; the receiver ignores it. The
//! records area is bounded by `raw-length`, itself bounded by the receiver's configured maximum,
//! so a block can never decompress to more than the receiver is willing to hold.

use crate::reader::Reader;

/// Bytes of framing per record in the records area.
pub const RECORD_OVERHEAD: usize = 2 + 8 + 4;
/// Bytes in front of the body.
pub const BLOCK_PREFIX: usize = 4 + 1 + 4;

/// The zstd decompression context a receiver keeps (reused for every block).
pub type Decompressor = zstd::bulk::Decompressor<'static>;

/// How a block's body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Stored as is.
    None,
    /// Zstandard at the given level.
    Zstd(i32),
}

/// Why a block's contents cannot be decoded (after it authenticated: a sender bug or a
/// settings mismatch, never line noise).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// The framing runs past the block.
    #[error("block truncated")]
    Truncated,
    /// An unknown codec byte.
    #[error("unknown codec {0}")]
    UnknownCodec(u8),
    /// The declared raw length exceeds the configured maximum.
    #[error("block of {0} bytes exceeds the maximum")]
    TooLarge(usize),
    /// The body does not decompress to the declared length.
    #[error("decompression failed: {0}")]
    Decompress(String),
    /// A record runs past the records area.
    #[error("record truncated")]
    RecordTruncated,
}

/// Records being collected into a block on the sender.
///
/// The records area is written after room for the block prefix, so an uncompressed block is
/// sealed in place; a compressed one is written straight into a recycled buffer. Either way the
/// record bytes are copied once, from the caller into the block.
#[derive(Debug)]
pub struct BlockBuilder {
    /// Prefix room, then the records area.
    raw: Vec<u8>,
    records: usize,
}

impl Default for BlockBuilder {
    fn default() -> BlockBuilder {
        BlockBuilder {
            raw: vec![0; BLOCK_PREFIX],
            records: 0,
        }
    }
}

impl BlockBuilder {
    /// Append one record.
    pub fn push(&mut self, stream: u16, sequence: u64, data: &[u8]) {
        self.raw.extend_from_slice(&stream.to_be_bytes());
        self.raw.extend_from_slice(&sequence.to_be_bytes());
        // Callers bound record sizes far below 4 GiB (see `SenderConfig::max_record_bytes`).
        self.raw
            .extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
        self.raw.extend_from_slice(data);
        self.records += 1;
    }

    /// Size of the records area so far.
    pub fn raw_len(&self) -> usize {
        self.raw.len() - BLOCK_PREFIX
    }

    /// Records collected so far.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Seal into block bytes (without padding) and start over. Compression that does not pay is
    /// skipped. `spare` is an empty buffer to reuse (its capacity is kept); the returned block
    /// has at least `reserve` bytes of spare capacity beyond its length (for padding and repair
    /// symbols).
    pub fn seal(
        &mut self,
        codec: Codec,
        zstd: &mut Option<zstd::bulk::Compressor<'static>>,
        spare: Option<Vec<u8>>,
        reserve: usize,
    ) -> Vec<u8> {
        let raw_len = self.raw_len();
        let mut out = spare.unwrap_or_default();
        out.clear();
        let mut compressed = None;
        if let (Codec::Zstd(_), Some(c)) = (codec, zstd.as_mut()) {
            out.resize(BLOCK_PREFIX + zstd::zstd_safe::compress_bound(raw_len), 0);
            if let (Some(dst), Some(src)) =
                (out.get_mut(BLOCK_PREFIX..), self.raw.get(BLOCK_PREFIX..))
            {
                compressed = c.compress_to_buffer(src, dst).ok().filter(|&n| n < raw_len);
            }
        }
        let (codec_byte, body_len) = match compressed {
            Some(n) => {
                out.truncate(BLOCK_PREFIX + n);
                (1u8, n)
            }
            None => {
                // Seal the records area in place; the spare buffer becomes the next builder.
                std::mem::swap(&mut out, &mut self.raw);
                (0u8, raw_len)
            }
        };
        let content_len = u32::try_from(5 + body_len).unwrap_or(u32::MAX);
        let raw_len = u32::try_from(raw_len).unwrap_or(u32::MAX);
        if let Some(prefix) = out.get_mut(..BLOCK_PREFIX) {
            prefix[..4].copy_from_slice(&content_len.to_be_bytes());
            prefix[4] = codec_byte;
            prefix[5..].copy_from_slice(&raw_len.to_be_bytes());
        }
        out.reserve(reserve);
        self.raw.clear();
        self.raw.resize(BLOCK_PREFIX, 0);
        self.records = 0;
        out
    }
}

/// One record inside a decoded block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef {
    /// Stream id.
    pub stream: u16,
    /// Sequence within the stream.
    pub sequence: u64,
    start: u32,
    len: u32,
}

/// A decoded block: its records area and an index of the records in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodedBlock {
    data: Vec<u8>,
    records: Vec<RecordRef>,
}

impl DecodedBlock {
    /// The records, in the order the sender wrote them.
    pub fn records(&self) -> impl Iterator<Item = (RecordRef, &[u8])> + '_ {
        self.records.iter().map(move |r| {
            let start = r.start as usize;
            // Offsets were checked against `data` when the block was decoded.
            let bytes = self
                .data
                .get(start..start + r.len as usize)
                .unwrap_or_default();
            (*r, bytes)
        })
    }

    /// How many records the block holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Memory the decoded block holds, in bytes (for queue accounting).
    pub fn byte_len(&self) -> usize {
        self.data.len() + self.records.len() * std::mem::size_of::<RecordRef>()
    }

    /// True when the block holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Keep only the records `keep` accepts (the receiver drops duplicates this way).
    pub fn retain(&mut self, keep: impl FnMut(&RecordRef) -> bool) {
        self.records.retain(keep);
    }
}

/// Decode a reassembled block (padding included).
pub fn decode(
    block: &[u8],
    max_raw_bytes: usize,
    zstd: &mut Decompressor,
) -> Result<DecodedBlock, BlockError> {
    decode_owned(block.to_vec(), max_raw_bytes, zstd)
}

/// Decode a reassembled block (padding included), taking its buffer: an uncompressed block's
/// records are indexed where they lie, without a copy.
pub fn decode_owned(
    block: Vec<u8>,
    max_raw_bytes: usize,
    zstd: &mut Decompressor,
) -> Result<DecodedBlock, BlockError> {
    let mut r = Reader::new(&block);
    let content_len = r.u32().map_err(|_| BlockError::Truncated)? as usize;
    let mut content = Reader::new(r.take(content_len).map_err(|_| BlockError::Truncated)?);
    let codec = content.u8().map_err(|_| BlockError::Truncated)?;
    let raw_len = content.u32().map_err(|_| BlockError::Truncated)? as usize;
    if raw_len > max_raw_bytes {
        return Err(BlockError::TooLarge(raw_len));
    }
    let body = content.rest();
    let (data, base) = match codec {
        0 => {
            if body.len() != raw_len {
                return Err(BlockError::Truncated);
            }
            let mut data = block;
            data.truncate(BLOCK_PREFIX + raw_len);
            (data, BLOCK_PREFIX)
        }
        1 => {
            let data = zstd
                .decompress(body, raw_len)
                .map_err(|e| BlockError::Decompress(e.to_string()))?;
            if data.len() != raw_len {
                return Err(BlockError::Decompress(format!(
                    "{} bytes instead of {raw_len}",
                    data.len()
                )));
            }
            (data, 0)
        }
        other => return Err(BlockError::UnknownCodec(other)),
    };
    let mut records = Vec::new();
    let area = data.get(base..).ok_or(BlockError::Truncated)?;
    let mut r = Reader::new(area);
    while !r.is_empty() {
        let stream = r.u16().map_err(|_| BlockError::RecordTruncated)?;
        let sequence = r.u64().map_err(|_| BlockError::RecordTruncated)?;
        let len = r.u32().map_err(|_| BlockError::RecordTruncated)?;
        let start = data.len() - r.rest().len();
        r.take(len as usize)
            .map_err(|_| BlockError::RecordTruncated)?;
        records.push(RecordRef {
            stream,
            sequence,
            start: u32::try_from(start).map_err(|_| BlockError::TooLarge(start))?,
            len,
        });
    }
    Ok(DecodedBlock { data, records })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(codec: Codec) {
        let mut b = BlockBuilder::default();
        for i in 0..100u64 {
            b.push(
                (i % 3) as u16,
                i,
                format!("record number {i} {}", "x".repeat(50)).as_bytes(),
            );
        }
        let mut z = match codec {
            Codec::Zstd(level) => zstd::bulk::Compressor::new(level).ok(),
            Codec::None => None,
        };
        let mut block = b.seal(codec, &mut z, None, 0);
        block.extend_from_slice(&[0u8; 100]); // padding is ignored
        let mut d = zstd::bulk::Decompressor::new().expect("zstd");
        let decoded = decode(&block, 1 << 20, &mut d).expect("decodes");
        assert_eq!(decoded.len(), 100);
        for (i, (r, data)) in decoded.records().enumerate() {
            assert_eq!(r.sequence, i as u64);
            assert_eq!(r.stream, (i % 3) as u16);
            assert_eq!(
                data,
                format!("record number {i} {}", "x".repeat(50)).as_bytes()
            );
        }
    }

    #[test]
    fn blocks_round_trip_with_and_without_compression() {
        round_trip(Codec::None);
        round_trip(Codec::Zstd(1));
    }

    #[test]
    fn oversized_and_truncated_blocks_are_rejected() {
        let mut b = BlockBuilder::default();
        b.push(0, 0, &[7u8; 1000]);
        let block = b.seal(Codec::None, &mut None, None, 0);
        let mut d = zstd::bulk::Decompressor::new().expect("zstd");
        assert_eq!(decode(&block, 100, &mut d), Err(BlockError::TooLarge(1014)));
        assert_eq!(
            decode(&block[..500], 1 << 20, &mut d),
            Err(BlockError::Truncated)
        );
    }
}
