//! RFC 6587 framing for syslog over TCP, as a `tokio_util` codec: pure, so it is tested by
//! feeding byte slices, with no socket.
//!
//! The method is chosen per connection from its first byte: a digit means octet counting
//! (`MSG-LEN SP SYSLOG-MSG`), anything else non-transparent framing (messages end at LF, a CR
//! before it is removed). Bounded both ways: a frame longer than `max` never makes the buffer
//! grow past `max`; its first `max` bytes are handed on as [`Frame::Oversize`] and the rest is
//! skipped (exactly, when the length is known; up to the next LF otherwise), so the connection
//! resynchronises on the next frame. A broken octet count is reported as [`Frame::Malformed`]
//! with the bytes up to the next LF, and the connection carries on.

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

/// Longest MSG-LEN accepted, in digits.
const MAX_LEN_DIGITS: usize = 9;

/// One unit read off a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete message.
    Message(BytesMut),
    /// A message longer than the limit: its first `max` bytes and its length (when known).
    Oversize {
        /// The first `max` bytes.
        head: BytesMut,
        /// The declared length (octet counting) or `None` (newline framing).
        len: Option<usize>,
    },
    /// Bytes that do not frame.
    Malformed {
        /// The bytes.
        bytes: BytesMut,
        /// Why (`invalid_octet_count`, `truncated_frame`).
        reason: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Unknown,
    OctetCounting,
    NonTransparent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    None,
    Bytes(usize),
    ToNewline,
}

/// The RFC 6587 decoder.
#[derive(Debug)]
pub struct SyslogFraming {
    max: usize,
    method: Method,
    skip: Skip,
    /// Bytes already searched for LF in newline mode.
    scanned: usize,
}

impl SyslogFraming {
    /// A decoder for frames of at most `max` bytes.
    pub fn new(max: usize) -> SyslogFraming {
        SyslogFraming {
            max: max.max(1),
            method: Method::Unknown,
            skip: Skip::None,
            scanned: 0,
        }
    }

    fn skip(&mut self, src: &mut BytesMut) -> bool {
        match self.skip {
            Skip::None => true,
            Skip::Bytes(n) => {
                let k = n.min(src.len());
                src.advance(k);
                self.skip = if k == n {
                    Skip::None
                } else {
                    Skip::Bytes(n - k)
                };
                self.skip == Skip::None
            }
            Skip::ToNewline => match memchr::memchr(b'\n', src) {
                Some(i) => {
                    src.advance(i + 1);
                    self.skip = Skip::None;
                    true
                }
                None => {
                    src.clear();
                    false
                }
            },
        }
    }

    fn line(&mut self, src: &mut BytesMut) -> Option<Frame> {
        loop {
            let from = self.scanned.min(src.len());
            match memchr::memchr(b'\n', src.get(from..).unwrap_or_default()) {
                Some(i) => {
                    let mut line = src.split_to(from + i + 1);
                    self.scanned = 0;
                    line.truncate(line.len() - 1);
                    if line.last() == Some(&b'\r') {
                        line.truncate(line.len() - 1);
                    }
                    if line.is_empty() {
                        continue;
                    }
                    if line.len() > self.max {
                        let len = line.len();
                        line.truncate(self.max);
                        return Some(Frame::Oversize {
                            head: line,
                            len: Some(len),
                        });
                    }
                    return Some(Frame::Message(line));
                }
                None if src.len() > self.max => {
                    let head = src.split_to(self.max);
                    src.clear();
                    self.scanned = 0;
                    self.skip = Skip::ToNewline;
                    return Some(Frame::Oversize { head, len: None });
                }
                None => {
                    self.scanned = src.len();
                    return None;
                }
            }
        }
    }

    fn counted(&mut self, src: &mut BytesMut) -> Option<Frame> {
        let digits = src
            .iter()
            .take(MAX_LEN_DIGITS + 1)
            .take_while(|b| b.is_ascii_digit())
            .count();
        let header_ok = digits > 0
            && digits <= MAX_LEN_DIGITS
            && src.first() != Some(&b'0')
            && src.get(digits) == Some(&b' ');
        if !header_ok {
            if digits == src.len() && digits <= MAX_LEN_DIGITS && src.first() != Some(&b'0') {
                return None; // the count is still arriving
            }
            // Not an octet count: report the bytes up to the next LF and resynchronise there.
            return match self.line(src)? {
                Frame::Message(bytes) => Some(Frame::Malformed {
                    bytes,
                    reason: "invalid_octet_count",
                }),
                other => Some(other),
            };
        }
        let len: usize = std::str::from_utf8(src.get(..digits)?).ok()?.parse().ok()?;
        let start = digits + 1;
        if len > self.max {
            if src.len() < start + self.max {
                return None;
            }
            src.advance(start);
            let head = src.split_to(self.max);
            self.skip = Skip::Bytes(len - self.max);
            return Some(Frame::Oversize {
                head,
                len: Some(len),
            });
        }
        if src.len() < start + len {
            src.reserve(start + len - src.len());
            return None;
        }
        src.advance(start);
        let mut msg = src.split_to(len);
        // Some senders add a newline after counted frames; it is not part of the message.
        while msg.last() == Some(&b'\n') || msg.last() == Some(&b'\r') {
            msg.truncate(msg.len() - 1);
        }
        Some(Frame::Message(msg))
    }
}

impl Decoder for SyslogFraming {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        loop {
            if !self.skip(src) {
                return Ok(None);
            }
            // Stray line ends between counted frames.
            if self.method == Method::OctetCounting {
                let n = src
                    .iter()
                    .take_while(|b| matches!(b, b'\n' | b'\r'))
                    .count();
                src.advance(n);
            }
            let Some(&first) = src.first() else {
                return Ok(None);
            };
            if self.method == Method::Unknown {
                self.method = if first.is_ascii_digit() {
                    Method::OctetCounting
                } else {
                    Method::NonTransparent
                };
            }
            let frame = match self.method {
                Method::OctetCounting => self.counted(src),
                _ => self.line(src),
            };
            match frame {
                Some(f) => return Ok(Some(f)),
                None if self.skip != Skip::None && !src.is_empty() => continue,
                None => return Ok(None),
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if src.is_empty() || self.skip != Skip::None {
            src.clear();
            return Ok(None);
        }
        let rest = src.split();
        self.scanned = 0;
        Ok(Some(match self.method {
            // A last line without LF is a complete message in newline framing.
            Method::NonTransparent | Method::Unknown => Frame::Message(rest),
            Method::OctetCounting => Frame::Malformed {
                bytes: rest,
                reason: "truncated_frame",
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut codec = SyslogFraming::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            while let Some(f) = codec.decode(&mut buf).expect("no io error") {
                out.push(f);
            }
        }
        while let Some(f) = codec.decode_eof(&mut buf).expect("no io error") {
            out.push(f);
        }
        out
    }

    fn msg(s: &str) -> Frame {
        Frame::Message(BytesMut::from(s))
    }

    #[test]
    fn octet_counting_across_arbitrary_splits() {
        let stream = b"11 <13>hello A12 <13>world BB\n5 <13>x";
        for split in 0..stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(
                frames(100, &[a, b]),
                vec![msg("<13>hello A"), msg("<13>world BB"), msg("<13>x")],
                "split at {split}"
            );
        }
    }

    #[test]
    fn newline_framing_strips_cr_and_skips_empty_lines() {
        assert_eq!(
            frames(100, &[b"<13>a\r\n\n<13>b\n<13>", b"c"]),
            vec![msg("<13>a"), msg("<13>b"), msg("<13>c")]
        );
    }

    #[test]
    fn oversize_counted_frame_is_cut_and_skipped_exactly() {
        let mut big = b"20 ".to_vec();
        big.extend_from_slice(b"<13>0123456789abcdef");
        big.extend_from_slice(b"4 next");
        let f = frames(8, &[&big]);
        assert_eq!(
            f,
            vec![
                Frame::Oversize {
                    head: BytesMut::from("<13>0123"),
                    len: Some(20)
                },
                msg("next")
            ]
        );
    }

    #[test]
    fn oversize_line_never_buffers_more_than_max_and_resyncs() {
        let long = vec![b'x'; 10_000];
        let f = frames(100, &[b"<13>", &long, &long, b"\n<13>after\n"]);
        assert_eq!(f.len(), 2);
        assert!(matches!(&f[0], Frame::Oversize { head, len: None } if head.len() == 100));
        assert_eq!(f[1], msg("<13>after"));
    }

    #[test]
    fn invalid_octet_count_is_reported_and_the_stream_carries_on() {
        assert_eq!(
            frames(100, &[b"12x <13>junk\n5 <13>"]),
            vec![
                Frame::Malformed {
                    bytes: BytesMut::from("12x <13>junk"),
                    reason: "invalid_octet_count"
                },
                Frame::Malformed {
                    bytes: BytesMut::from("5 <13>"),
                    reason: "truncated_frame"
                },
            ]
        );
    }

    #[test]
    fn connection_closed_mid_frame_yields_a_truncated_frame() {
        assert_eq!(
            frames(100, &[b"30 <13>only part of it"]),
            vec![Frame::Malformed {
                bytes: BytesMut::from("30 <13>only part of it"),
                reason: "truncated_frame"
            }]
        );
    }

    #[test]
    fn a_huge_declared_length_is_bounded() {
        // 999999999 bytes declared: the decoder keeps `max` bytes and skips the rest as it
        // arrives instead of allocating for the declared size.
        let f = frames(16, &[b"999999999 <13>abcdefghijklmnopqrstuvwxyz"]);
        assert_eq!(
            f,
            vec![Frame::Oversize {
                head: BytesMut::from("<13>abcdefghijkl"),
                len: Some(999_999_999)
            }]
        );
    }
}
