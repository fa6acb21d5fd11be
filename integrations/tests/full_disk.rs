//! The disk buffer on a real full disk: a 2 MiB tmpfs mounted for the test (root needed; the
//! suite runs as root for its network namespaces). Appends fail visibly and are counted exactly
//! (a refused record is never also kept); what is buffered is still read and acknowledged
//! while the disk is full; once space returns, appends resume by themselves, and after a
//! restart every stored record comes back exactly once, in order.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::Path;
use std::process::Command;

use weir_integrations::buffer::{Appended, Config, DiskQueue, Overflow};

struct Mount(tempfile::TempDir);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

fn tmpfs(size: &str) -> Option<Mount> {
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(Mount(dir))
}

fn rec(i: usize) -> Vec<u8> {
    format!("{{\"n\":{i:07},\"pad\":\"{}\"}}", "x".repeat(300)).into_bytes()
}

fn read_all(q: &mut DiskQueue) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let batch = q.read(256, 1 << 20).unwrap();
        if batch.is_empty() {
            return out;
        }
        let end = batch.last().unwrap().end;
        out.extend(batch.into_iter().map(|r| r.data));
        q.ack(end).unwrap();
    }
}

#[test]
fn a_full_disk_refuses_exactly_keeps_delivering_and_recovers_by_itself() {
    let Some(mount) = tmpfs("2m") else {
        assert!(
            !is_root(),
            "mounting a tmpfs failed although running as root"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let dir = mount.0.path().join("buffer");
    std::fs::create_dir_all(&dir).unwrap();
    // Leave about 600 KiB free.
    let filler = mount.0.path().join("filler");
    std::fs::write(&filler, vec![0u8; 1400 << 10]).unwrap();
    let cfg = Config {
        max_bytes: 64 << 20,
        segment_bytes: 256 << 10,
        overflow: Overflow::DropNewest,
    };
    let mut q = DiskQueue::open(&dir, cfg.clone()).unwrap();
    let (mut stored, mut refused) = (Vec::new(), 0usize);
    let mut delivered = Vec::new();
    for i in 0..6000 {
        match q.append(&rec(i), 1) {
            Ok(Appended::Stored) => stored.push(i),
            Ok(other) => panic!("{other:?}"),
            Err(_) => refused += 1,
        }
        if i % 100 == 99 {
            let _ = q.flush();
        }
    }
    assert!(refused > 3000, "the disk filled: {refused} refused");
    assert!(stored.len() > 1000, "{} stored", stored.len());
    let _ = q.flush();
    // Delivery goes on while the disk is full.
    assert!(std::fs::write(mount.0.path().join("probe"), vec![0u8; 64 << 10]).is_err());
    delivered.extend(read_all(&mut q));
    // Every stored record delivered once, in order; nothing refused among them.
    let want: Vec<Vec<u8>> = stored.iter().map(|&i| rec(i)).collect();
    assert_eq!(delivered.len(), want.len());
    assert!(delivered == want, "delivered exactly what was stored");
    assert_eq!(stored.len() + refused, 6000);
    // Space returns: appends resume by themselves.
    std::fs::remove_file(&filler).unwrap();
    for i in 6000..6500 {
        assert_eq!(q.append(&rec(i), 1).unwrap(), Appended::Stored, "{i}");
    }
    q.flush().unwrap();
    drop(q);
    // After a restart: what was not yet acknowledged comes back, exactly once, undamaged.
    let mut q = DiskQueue::open(&dir, cfg).unwrap();
    let s = q.summary().unwrap();
    assert_eq!(s.damage.corrupt_records, 0, "{s:?}");
    assert_eq!(s.damage.torn_tail_bytes, 0, "{s:?}");
    let after = read_all(&mut q);
    let want: Vec<Vec<u8>> = (6000..6500).map(rec).collect();
    assert!(after == want, "{} records after restart", after.len());
    drop(q);
    drop(mount);
}

fn is_root() -> bool {
    Path::new("/proc/self/status").exists()
        && std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

/// One segment as large as the disk: once everything written is delivered and acknowledged,
/// its space comes back by itself (the segment is recycled), so what waits in memory and what
/// comes next is written again.
#[test]
fn delivered_events_give_their_space_back_when_the_disk_is_full() {
    let Some(mount) = tmpfs("1m") else {
        assert!(
            !is_root(),
            "mounting a tmpfs failed although running as root"
        );
        return;
    };
    let dir = mount.0.path().join("buffer");
    let cfg = Config {
        max_bytes: 64 << 20,
        segment_bytes: 64 << 20,
        overflow: Overflow::DropNewest,
    };
    let mut q = DiskQueue::open(&dir, cfg).unwrap();
    let (mut stored, mut refused) = (Vec::new(), 0usize);
    for i in 0..6000 {
        match q.append(&rec(i), 1) {
            Ok(Appended::Stored) => stored.push(i),
            Ok(other) => panic!("{other:?}"),
            Err(_) => refused += 1,
        }
    }
    assert!(refused > 0);
    let _ = q.flush();
    // Deliver everything: what was on disk, then (after the segment is recycled) what waited.
    let mut delivered = Vec::new();
    for _ in 0..10 {
        delivered.extend(read_all(&mut q));
    }
    let want: Vec<Vec<u8>> = stored.iter().map(|&i| rec(i)).collect();
    assert_eq!(delivered.len(), want.len(), "refused {refused}");
    assert!(delivered == want);
    // And new events are taken again.
    for i in 6000..6100 {
        assert_eq!(q.append(&rec(i), 1).unwrap(), Appended::Stored, "{i}");
    }
    q.flush().unwrap();
    assert_eq!(read_all(&mut q).len(), 100);
}
