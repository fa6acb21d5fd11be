//! Arbitrary bytes as a disk-buffer segment and ack file (a damaged disk, a torn write):
//! opening, reading, acknowledging and inspecting never panic; whatever is read back is a
//! record that was checksummed; appends after recovery read back exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_integrations::buffer::{Config, DiskQueue, Overflow};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    // Input starting with `A`: its next 64 bytes are the ack file (two slots, or the text of
    // earlier versions, damaged as the fuzzer likes), the rest the segment.
    let data = match data.split_first() {
        Some((b'A', rest)) if rest.len() >= 64 => {
            if std::fs::write(dir.path().join("ack"), &rest[..64]).is_err() {
                return;
            }
            &rest[64..]
        }
        _ => data,
    };
    if std::fs::write(dir.path().join("00000000000000000001.wseg"), data).is_err() {
        return;
    }
    let _ = DiskQueue::inspect(dir.path());
    let cfg = Config { max_bytes: 1 << 20, segment_bytes: 4096, overflow: Overflow::DropOldest };
    let Ok(mut q) = DiskQueue::open(dir.path(), cfg) else { return };
    let mut last = None;
    while let Ok(batch) = q.read(64, 1 << 16) {
        if batch.is_empty() {
            break;
        }
        last = batch.last().map(|r| r.end);
    }
    if let Some(end) = last {
        let _ = q.ack(end);
    }
    let _ = q.append(b"after", 1);
    let got = q.read(10, 1 << 16).unwrap_or_default();
    assert_eq!(got.last().map(|r| r.data.as_slice()), Some(&b"after"[..]));
});
