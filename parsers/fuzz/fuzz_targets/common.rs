//! Shared by the per-protocol targets: the input cut into segments at fuzzer-chosen points,
//! alternating direction, with a gap every seventh segment.

/// `(timestamp, to_server, gap, segment)` for each segment of `data` after its first byte,
/// which sets the segment size.
pub fn segments(data: &[u8]) -> impl Iterator<Item = (i64, bool, bool, &[u8])> {
    let step = usize::from(data.first().copied().unwrap_or(0) % 61) + 1;
    data.get(1..)
        .unwrap_or(&[])
        .chunks(step)
        .enumerate()
        .map(|(n, c)| (n as i64 * 1_000_000, n % 3 != 0, n % 7 == 6, c))
}

/// A PDU counter that counts nothing.
pub fn ignore(_protocol: &'static str, _code: u32) {}
