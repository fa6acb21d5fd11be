//! The RFC 6587 decoder on arbitrary bytes, fed in arbitrary chunk sizes: never a panic, never
//! a frame longer than the limit, never a buffer that grows past limit plus one read.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use weir::sources::framing::{Frame, SyslogFraming};

const MAX: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, data)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let mut codec = SyslogFraming::new(MAX);
    let mut buf = BytesMut::new();
    let check = |f: &Frame| match f {
        Frame::Message(m) => assert!(m.len() <= MAX),
        Frame::Oversize { head, .. } => assert_eq!(head.len(), MAX),
        Frame::Malformed { bytes, .. } => assert!(bytes.len() <= MAX + 16),
    };
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Ok(Some(f)) = codec.decode(&mut buf) {
            check(&f);
        }
        assert!(buf.len() <= MAX + 16 + chunk, "buffer bounded: {}", buf.len());
    }
    while let Ok(Some(f)) = codec.decode_eof(&mut buf) {
        check(&f);
    }
});
