//! Arbitrary bytes as a disk-buffer segment and ack file (a damaged disk, a torn write):
//! opening, reading, acknowledging and inspecting never panic; whatever is read back is a
//! record that was checksummed; appends after recovery read back exactly. Inputs starting with
//! `R` damage one record of a well-formed segment: every other record must survive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_integrations::buffer::{Config, DiskQueue, Overflow};

/// Input starting with `R`: a segment of whole records, one of which the fuzzer damages
/// (anywhere in its header or data, length field included). Every other record must come back,
/// in order: damage costs only the record it hits.
fn one_damaged_record(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let (Some(&n), Some(&k), Some(rest)) = (data.first(), data.get(1), data.get(2..)) else {
        return;
    };
    let n = 2 + usize::from(n % 30);
    let k = usize::from(k) % n;
    let (damage, payload) = rest.split_at(rest.len().min(8));
    // Payloads of lowercase letters: no record magic ("WREC") can hide in them.
    let records: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let len = 1 + (i * 37 + payload.len()) % 200;
            (0..len)
                .map(|j| b'a' + payload.get((i + j) % payload.len().max(1)).copied().unwrap_or(0) % 26)
                .collect()
        })
        .collect();
    let cfg = Config { max_bytes: 1 << 24, segment_bytes: 1 << 22, overflow: Overflow::DropNewest };
    {
        let Ok(mut q) = DiskQueue::open(dir.path(), cfg.clone()) else { return };
        for r in &records {
            let _ = q.append(r, 7);
        }
        if q.flush().is_err() {
            return;
        }
    }
    let path = dir.path().join("00000000000000000001.wseg");
    let Ok(mut bytes) = std::fs::read(&path) else { return };
    let header = weir_integrations::buffer::RECORD_HEADER;
    let start: usize = records[..k].iter().map(|r| header + r.len()).sum();
    let span = header + records[k].len();
    let before = bytes.clone();
    for pair in damage.chunks_exact(2) {
        let at = start + usize::from(pair[0]) % span;
        bytes[at] ^= pair[1];
    }
    // (Flips may cancel out: then nothing is damaged.)
    if bytes == before || std::fs::write(&path, &bytes).is_err() {
        return;
    }
    let Ok(mut q) = DiskQueue::open(dir.path(), cfg) else { return };
    let mut got = Vec::new();
    while let Ok(batch) = q.read(64, 1 << 20) {
        if batch.is_empty() {
            break;
        }
        got.extend(batch.into_iter().map(|r| r.data));
    }
    let want: Vec<Vec<u8>> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != k)
        .map(|(_, r)| r.clone())
        .collect();
    assert_eq!(got, want, "n {n}, damaged record {k}");
}

fuzz_target!(|data: &[u8]| {
    if let Some((b'R', rest)) = data.split_first() {
        one_damaged_record(rest);
        return;
    }
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
