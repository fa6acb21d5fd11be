//! Arbitrary bytes as a reassembled block: decoding (zstd included) is bounded and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_diode_proto::block;

fuzz_target!(|data: &[u8]| {
    let Ok(mut z) = zstd_decompressor() else { return };
    if let Ok(decoded) = block::decode(data, 1 << 20, &mut z) {
        for (_, bytes) in decoded.records() {
            assert!(bytes.len() <= 1 << 20);
        }
    }
});

fn zstd_decompressor() -> std::io::Result<weir_diode_proto::block::Decompressor> {
    weir_diode_proto::block::Decompressor::new()
}
