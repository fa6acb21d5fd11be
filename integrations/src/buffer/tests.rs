#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;

fn cfg(max_bytes: u64, segment_bytes: u64, overflow: Overflow) -> Config {
    Config {
        max_bytes,
        segment_bytes,
        overflow,
    }
}

fn rec(i: usize) -> Vec<u8> {
    format!("record {i:06} {}", "x".repeat(i % 300)).into_bytes()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == SUFFIX))
        .collect();
    v.sort();
    v
}

fn read_all(q: &mut DiskQueue) -> Vec<Record> {
    let mut out = Vec::new();
    loop {
        let batch = q.read(100, 1 << 20).unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

#[test]
fn records_come_back_byte_for_byte_across_segments_and_acked_segments_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), cfg(1 << 30, 4096, Overflow::DropNewest)).unwrap();
    for i in 0..1000 {
        assert_eq!(
            q.append(&rec(i), 1_000 + i as u64).unwrap(),
            Appended::Stored
        );
    }
    q.flush().unwrap();
    assert!(segment_files(dir.path()).len() > 20, "small segments roll");
    assert_eq!(q.records(), 1000);
    let got = read_all(&mut q);
    assert_eq!(got.len(), 1000);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.data, rec(i));
        assert_eq!(r.written_unix_ms, 1_000 + i as u64);
    }
    assert!(q.is_drained());
    assert_eq!(q.summary().unwrap().oldest_unix_ms, Some(1_000));
    q.ack(got[499].end).unwrap();
    assert_eq!(q.records(), 500);
    assert_eq!(q.summary().unwrap().oldest_unix_ms, Some(1_500));
    q.ack(got[999].end).unwrap();
    assert_eq!(q.records(), 0);
    assert_eq!(
        segment_files(dir.path()).len(),
        1,
        "only the segment being written is left"
    );
    assert_eq!(q.summary().unwrap().damage, Damage::default());
}

#[test]
fn after_a_crash_reading_resumes_at_the_last_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(1 << 30, 2048, Overflow::DropNewest);
    let mut q = DiskQueue::open(dir.path(), c.clone()).unwrap();
    for i in 0..100 {
        q.append(&rec(i), i as u64).unwrap();
    }
    let first = q.read(60, 1 << 20).unwrap();
    assert_eq!(first.len(), 60);
    q.ack(first[39].end).unwrap();
    drop(q); // a crash: read-but-unacknowledged records 40..59 are not consumed

    let mut q = DiskQueue::open(dir.path(), c).unwrap();
    assert_eq!(q.records(), 60);
    let again = read_all(&mut q);
    let want: Vec<Vec<u8>> = (40..100).map(rec).collect();
    assert_eq!(
        again.iter().map(|r| r.data.clone()).collect::<Vec<_>>(),
        want
    );
    // New appends follow, in order.
    q.append(b"after restart", 7).unwrap();
    let tail = q.read(10, 1 << 20).unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].data, b"after restart");
}

#[test]
fn a_torn_tail_is_cut_and_a_damaged_record_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(1 << 30, 1 << 20, Overflow::DropNewest);
    let mut q = DiskQueue::open(dir.path(), c.clone()).unwrap();
    for i in 0..50 {
        q.append(&rec(i), i as u64).unwrap();
    }
    q.flush().unwrap();
    drop(q);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    let mut bytes = fs::read(&files[0]).unwrap();
    // Damage record 10's data, and tear the last record (a crash mid-append).
    let offset_of = |k: usize| -> usize { (0..k).map(|i| RECORD_HEADER + rec(i).len()).sum() };
    bytes[offset_of(10) + RECORD_HEADER + 3] ^= 0xFF;
    let torn = 9;
    bytes.truncate(bytes.len() - torn);
    fs::write(&files[0], &bytes).unwrap();

    let mut q = DiskQueue::open(dir.path(), c).unwrap();
    let s = q.summary().unwrap();
    assert_eq!(s.damage.corrupt_records, 1);
    assert_eq!(
        s.damage.corrupt_bytes,
        (RECORD_HEADER + rec(10).len()) as u64
    );
    assert_eq!(
        s.damage.torn_tail_bytes,
        (RECORD_HEADER + rec(49).len() - torn) as u64
    );
    let got: Vec<Vec<u8>> = read_all(&mut q).into_iter().map(|r| r.data).collect();
    let want: Vec<Vec<u8>> = (0..49).filter(|&i| i != 10).map(rec).collect();
    assert_eq!(got, want, "everything else, in order");
    q.append(b"next", 1).unwrap();
    assert_eq!(q.read(10, 1 << 20).unwrap()[0].data, b"next");
}

/// Issue #21: one flipped length field in the middle of a segment (the record then seems to run
/// past the end of the file) cost every intact record after it, cut as a "torn tail". Now only
/// the damaged record is skipped and counted, for a length too large and for one too small.
#[test]
fn a_damaged_length_in_the_middle_costs_only_its_own_record() {
    for flip in [0x40u8, 0x01] {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(1 << 30, 1 << 20, Overflow::DropNewest);
        let mut q = DiskQueue::open(dir.path(), c.clone()).unwrap();
        for i in 0..50 {
            q.append(&rec(i), i as u64).unwrap();
        }
        q.flush().unwrap();
        drop(q);
        let files = segment_files(dir.path());
        let mut bytes = fs::read(&files[0]).unwrap();
        let offset_of = |k: usize| -> usize { (0..k).map(|i| RECORD_HEADER + rec(i).len()).sum() };
        // The length field's second byte (a length 16 KiB too large), or its lowest bit.
        let at = offset_of(20) + 4 + usize::from(flip == 0x40);
        bytes[at] ^= flip;
        fs::write(&files[0], &bytes).unwrap();
        let (summary, _) = DiskQueue::inspect(dir.path()).unwrap();
        assert_eq!(summary.damage.corrupt_records, 1, "inspect reports it");
        let mut q = DiskQueue::open(dir.path(), c).unwrap();
        let s = q.summary().unwrap();
        assert_eq!(s.damage.corrupt_records, 1, "flip {flip:#x}");
        assert_eq!(s.damage.torn_tail_bytes, 0);
        let got: Vec<Vec<u8>> = read_all(&mut q).into_iter().map(|r| r.data).collect();
        let want: Vec<Vec<u8>> = (0..50).filter(|&i| i != 20).map(rec).collect();
        assert_eq!(got.len(), 49, "flip {flip:#x}");
        assert_eq!(got, want, "the 29 records after it survive");
    }
}

#[test]
fn overflow_drops_newest_or_oldest_and_says_how_many() {
    // Room for about 10 records of ~60 bytes in segments of ~3 records.
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), cfg(600, 150, Overflow::DropNewest)).unwrap();
    let r = vec![b'n'; 40]; // 60 bytes with its header
    let stored = (0..20)
        .filter(|_| q.append(&r, 0).unwrap() == Appended::Stored)
        .count();
    assert_eq!(stored, 10);
    assert_eq!(q.records(), 10);
    assert!(q.bytes() <= 600);

    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), cfg(600, 150, Overflow::DropOldest)).unwrap();
    let mut dropped = 0;
    for i in 0..20u8 {
        match q.append(&[i; 40], u64::from(i)).unwrap() {
            Appended::Stored => {}
            Appended::StoredDroppingOldest(n) => dropped += n,
            Appended::Refused => panic!("drop-oldest never refuses a record that fits"),
        }
    }
    let left: Vec<u8> = read_all(&mut q).iter().map(|r| r.data[0]).collect();
    assert_eq!(
        dropped + left.len() as u64,
        20,
        "every record stored or counted as dropped"
    );
    let first_kept = 20 - left.len() as u8;
    assert_eq!(
        left,
        (first_kept..20).collect::<Vec<u8>>(),
        "the newest survive, in order"
    );
    assert!(q.bytes() <= 600);
}

#[test]
fn rewind_reads_unacknowledged_records_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), cfg(1 << 20, 1 << 16, Overflow::DropNewest)).unwrap();
    for i in 0..10 {
        q.append(&rec(i), 0).unwrap();
    }
    let a = q.read(4, 1 << 20).unwrap();
    q.ack(a[1].end).unwrap();
    let _ = q.read(4, 1 << 20).unwrap();
    q.rewind();
    let b = q.read(100, 1 << 20).unwrap();
    assert_eq!(b.len(), 8);
    assert_eq!(b[0].data, rec(2));
}

/// The driver's batched read hands out the same records, bytes and positions as `read`,
/// across segment boundaries and a record larger than one read.
#[test]
fn a_batched_read_gives_what_record_by_record_reads_give() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut queues: Vec<DiskQueue> = dirs
        .iter()
        .map(|d| DiskQueue::open(d.path(), cfg(64 << 20, 16 * 1024, Overflow::DropNewest)).unwrap())
        .collect();
    let big = vec![b'b'; 200 * 1024];
    for q in &mut queues {
        for i in 0..500 {
            q.append(&rec(i), i as u64).unwrap();
            if i == 250 {
                q.append(&big, 7).unwrap();
            }
        }
    }
    let [a, b] = &mut queues[..] else {
        unreachable!()
    };
    let mut seen = 0;
    loop {
        let one = a.read(64, 256 * 1024).unwrap();
        let batch = b.read_batch(64, 256 * 1024).unwrap();
        assert_eq!(one.len(), batch.len());
        assert_eq!(one.last().map(|r| r.end), batch.end());
        for (k, (r, bytes)) in one.iter().zip(batch.iter()).enumerate() {
            assert_eq!(r.data, bytes);
            assert_eq!(batch.get(k), Some(bytes));
        }
        if batch.is_empty() {
            break;
        }
        seen += batch.len();
    }
    assert_eq!(seen, 501);
}

/// Appends, reads of every size, acknowledgements, rewinds and reopenings in a random order
/// (seeded), against a model: every read gives exactly the records the model says, whether the
/// queue serves them from its in-memory tail or from the file.
#[test]
fn random_appends_reads_acks_rewinds_and_reopens_match_a_model() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let dir = tempfile::tempdir().unwrap();
    // Small segments roll often; the in-memory tail is far smaller than MAX_TAIL.
    let config = cfg(1 << 30, 64 * 1024, Overflow::DropNewest);
    let mut q = DiskQueue::open(dir.path(), config.clone()).unwrap();
    let (mut appended, mut acked, mut read) = (0usize, 0usize, 0usize);
    let mut ends: Vec<Position> = Vec::new(); // end of record i, once read
    let (mut from_memory, mut from_file) = (0u64, 0u64);
    for _ in 0..5000 {
        match next(12) {
            0..=3 => {
                for _ in 0..=next(40) {
                    q.append(&rec(appended), appended as u64).unwrap();
                    appended += 1;
                }
            }
            4..=7 => {
                let before = q.records_from_file;
                let batch = q.read_batch(1 + next(120) as usize, 1 << 20).unwrap();
                for (k, data) in batch.iter().enumerate() {
                    assert_eq!(data, rec(read + k).as_slice(), "record {}", read + k);
                    let end = batch.records[k].end;
                    ends.truncate(read + k);
                    ends.push(end);
                }
                from_file += q.records_from_file - before;
                from_memory += batch.len() as u64 - (q.records_from_file - before);
                read += batch.len();
                assert_eq!(read.min(appended), read);
                assert_eq!(q.unread_records(), (appended - read) as u64);
            }
            8 | 9 if read > acked => {
                let upto = acked + 1 + next((read - acked) as u64) as usize;
                q.ack(ends[upto - 1]).unwrap();
                acked = upto;
                assert_eq!(q.records(), (appended - acked) as u64);
            }
            10 if next(4) == 0 => {
                q.rewind();
                read = acked;
            }
            11 if next(3) == 0 => {
                drop(q);
                q = DiskQueue::open(dir.path(), config.clone()).unwrap();
                read = acked;
                assert_eq!(q.records(), (appended - acked) as u64);
            }
            _ => {}
        }
    }
    let rest = read_all(&mut q);
    assert_eq!(rest.len(), appended - read);
    for (k, r) in rest.iter().enumerate() {
        assert_eq!(r.data, rec(read + k));
    }
    assert!(
        from_memory > 1000,
        "the in-memory tail served {from_memory} records"
    );
    assert!(from_file > 1000, "the file served {from_file}");
}

/// A reader that keeps up takes the tail's buffer itself: the batch's records lie where they
/// were framed (no copy), the batch's old buffer becomes the tail, and what a full batch leaves
/// is read next, in order, then from the file after a reopen all the same.
#[test]
fn a_reader_that_keeps_up_takes_the_tail_buffer_not_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let config = cfg(1 << 30, 1 << 20, Overflow::DropNewest);
    let mut q = DiskQueue::open(dir.path(), config.clone()).unwrap();
    let mut spare = ReadBatch::default();
    spare.data.reserve(1 << 16);
    let spare_at = spare.data.as_ptr();
    for i in 0..10 {
        q.append(&rec(i), i as u64).unwrap();
    }
    q.flush().unwrap();
    let tail_at = q.pending.as_ptr();
    q.read_batch_into(&mut spare, 100, 1 << 20).unwrap();
    assert_eq!(spare.len(), 10);
    assert_eq!(
        spare.data.as_ptr(),
        tail_at,
        "the batch holds the tail's buffer"
    );
    assert_eq!(
        q.pending.as_ptr(),
        spare_at,
        "the tail holds the batch's old buffer"
    );
    assert!(q.pending.is_empty());
    for (k, data) in spare.iter().enumerate() {
        assert_eq!(data, rec(k).as_slice());
        assert_eq!(spare.records[k].written_unix_ms, k as u64);
    }
    // A batch smaller than the tail: the rest is moved to the new tail and read next.
    for i in 10..30 {
        q.append(&rec(i), i as u64).unwrap();
    }
    let first = spare.end().unwrap();
    q.ack(first).unwrap();
    let mut read = 10;
    let mut from = [0usize; 2];
    for max in [7, 7, 100] {
        let mut batch = std::mem::take(&mut spare);
        let before = q.records_from_file;
        q.read_batch_into(&mut batch, max, 1 << 20).unwrap();
        assert_eq!(q.records_from_file, before, "served from memory");
        for data in batch.iter() {
            assert_eq!(data, rec(read).as_slice());
            read += 1;
        }
        from[usize::from(max == 100)] += batch.len();
        assert_eq!(q.unread_records(), 30 - read as u64);
        spare = batch;
    }
    assert_eq!((read, from), (30, [14, 6]));
    // A reader far behind: a small batch of a large tail is copied out, the tail stays put.
    for i in 30..130 {
        q.append(&rec(i), i as u64).unwrap();
    }
    q.flush().unwrap();
    let tail_at = q.pending.as_ptr();
    let mut batch = std::mem::take(&mut spare);
    q.read_batch_into(&mut batch, 10, 1 << 20).unwrap();
    assert_eq!(q.pending.as_ptr(), tail_at);
    let got: Vec<&[u8]> = batch.iter().collect();
    let want: Vec<Vec<u8>> = (30..40).map(rec).collect();
    assert_eq!(got, want);
    // Nothing acknowledged past the first ten: a reopened queue reads the rest from the file,
    // the same bytes at the same positions.
    drop(q);
    let mut q = DiskQueue::open(dir.path(), config).unwrap();
    let again = read_all(&mut q);
    assert_eq!(again.len(), 120);
    for (k, r) in again.iter().enumerate() {
        assert_eq!(r.data, rec(10 + k));
        assert_eq!(r.written_unix_ms, (10 + k) as u64);
    }
}

/// The ack position survives reopening however many times it was written in place; a slot
/// torn by a crash leaves the previous position (records sent again, none lost); the text ack
/// file of earlier versions is still read, then replaced.
#[test]
fn the_ack_position_is_written_in_place_and_a_torn_slot_leaves_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = cfg(1 << 30, 1 << 20, Overflow::DropNewest);
    let mut q = DiskQueue::open(dir.path(), config.clone()).unwrap();
    for i in 0..200 {
        q.append(&rec(i), 0).unwrap();
    }
    let mut ends = Vec::new();
    for _ in 0..200 {
        let r = q.read(1, 1 << 20).unwrap();
        ends.push(r[0].end);
    }
    for (k, &end) in ends.iter().enumerate().take(150) {
        q.ack(end).unwrap();
        assert_eq!(fs::metadata(dir.path().join("ack")).unwrap().len(), 64);
        if k % 37 == 0 {
            assert_eq!(read_ack(dir.path()).unwrap(), (end, k as u64 + 1));
        }
    }
    drop(q);
    let reopened = |dir: &Path| {
        let mut q = DiskQueue::open(dir, config.clone()).unwrap();
        let first = q.read(1, 1 << 20).unwrap();
        (q.records(), first[0].data.clone())
    };
    assert_eq!(reopened(dir.path()), (50, rec(150)));
    // A crash tore the last write (sequence 150, in slot 0): slot 1 (sequence 149) stands.
    let path = dir.path().join("ack");
    let mut bytes = fs::read(&path).unwrap();
    assert_eq!(parse_ack(&bytes), Some((ends[149], 150)));
    bytes[20] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    assert_eq!(parse_ack(&bytes), Some((ends[148], 149)));
    assert_eq!(reopened(dir.path()), (51, rec(149)));
    // A write torn so that even the slot's magic is gone: the other slot still stands.
    let mut no_magic = fs::read(&path).unwrap();
    no_magic[..4].copy_from_slice(&[0; 4]);
    assert_eq!(parse_ack(&no_magic), Some((ends[148], 149)));
    // Both slots spoilt: no position, so everything still on disk is sent again.
    bytes[32 + 5] ^= 1;
    assert_eq!(parse_ack(&bytes), None);
    // The text form of earlier versions.
    fs::write(&path, format!("{} {}\n", ends[99].segment, ends[99].offset)).unwrap();
    assert_eq!(reopened(dir.path()), (100, rec(100)));
    let mut q = DiskQueue::open(dir.path(), config.clone()).unwrap();
    let _ = q.read(1, 1 << 20).unwrap();
    q.ack(ends[100]).unwrap();
    drop(q);
    assert!(fs::read(&path).unwrap().starts_with(b"WACK"));
    assert_eq!(reopened(dir.path()), (99, rec(101)));
}

/// The in-memory tail past its bound: trimmed (the part read dropped) while the reader keeps
/// close, dropped whole when it falls far behind; either way every record reads back in order,
/// from memory while the tail holds it, then from the file.
#[test]
fn a_tail_past_its_bound_is_trimmed_and_reads_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = DiskQueue::open(dir.path(), cfg(1 << 34, 1 << 34, Overflow::DropNewest)).unwrap();
    let big = |i: usize| {
        let mut r = rec(i);
        r.resize(48 * 1024 + i % 1000, b'0' + (i % 10) as u8);
        r
    };
    let (mut appended, mut read) = (0usize, 0usize);
    let check = |q: &mut DiskQueue, n: usize, read: &mut usize| {
        let batch = q.read_batch(n, 1 << 30).unwrap();
        for data in batch.iter() {
            assert_eq!(data, big(*read).as_slice(), "record {read}");
            *read += 1;
        }
        batch.len()
    };
    // A backlog of 120 records (~6 MB), then as many read as appended each round: each batch
    // takes less than the tail leaves, so it is copied out and the tail grows past its bound,
    // where the part already read is dropped.
    for round in 0..30 {
        for _ in 0..40 {
            q.append(&big(appended), 0).unwrap();
            appended += 1;
        }
        if round >= 3 {
            assert_eq!(check(&mut q, 40, &mut read), 40);
        }
    }
    assert!(appended * 48 * 1024 > MAX_TAIL);
    assert!(q.pending_at > 0, "the tail was trimmed");
    assert_eq!(q.records_from_file, 0);
    // Far behind: the tail is dropped whole and the file serves the rest.
    for _ in 0..800 {
        q.append(&big(appended), 0).unwrap();
        appended += 1;
    }
    while check(&mut q, 64, &mut read) > 0 {}
    assert_eq!(read, appended);
    assert!(q.records_from_file > 0);
}
