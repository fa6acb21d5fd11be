/*!
Batched UDP IO for the diode: `sendmmsg(2)`, `recvmmsg(2)` and the `SO_*BUFFORCE` socket
options.

This is the only module in Weir that contains `unsafe` code (the workspace denies it
everywhere else). Every `unsafe` block is a single libc call whose pointer arguments are built
in the same function from live, correctly sized Rust buffers, and whose return value is checked
before anything it wrote is read. Nothing here parses input: the bytes received are handed out
as plain slices for the sans-IO receiver to verify.

One syscall moves up to [`MAX_BATCH`] datagrams; at MTU 1500 and 1 Gb/s that is the difference
between ~80,000 syscalls a second and ~1,300.
*/
#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use socket2::SockAddr;
use weir_diode_proto::frame::{HEADER_LEN, TAG_LEN};
use weir_diode_proto::{SealedSymbol, Sender, Transmit};

/// Most datagrams moved by one syscall.
pub const MAX_BATCH: usize = 64;

/// `UDP_SEGMENT` and `UDP_GRO` from `linux/udp.h` (not in every libc target).
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;
/// Segments one GSO send may carry (`UDP_MAX_SEGMENTS`, 64 before Linux 6.9).
const MAX_GSO_SEGMENTS: usize = 64;
/// Bytes one GSO send may carry: an IP packet's 64 KiB less IPv6 and UDP headers, rounded down.
const MAX_GSO_BYTES: usize = 65_000;
/// A receive slot when GRO may coalesce datagrams into one buffer.
pub const GRO_SLOT_LEN: usize = 65_536;

/// Control message space for one `u16`/`c_int` option: `CMSG_SPACE(4)` on every Linux ABI.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Cmsg([u8; 32]);

/// Datagrams waiting to be sent, in one contiguous buffer of equal slots.
///
/// A datagram is either written whole into its slot ([`commit`](Self::commit)) or, for a
/// block's symbol, given as parts ([`commit_parts`](Self::commit_parts)): header and tag in the
/// slot, the sealed symbol lent by the sender. The kernel then gathers header, symbol and tag
/// from three places (`iovec`s), so the symbol is never copied in user space.
///
/// Runs of equal-sized datagrams (the symbols of one block) go out as one UDP GSO send
/// (`UDP_SEGMENT`): the kernel walks its stack once per run instead of once per datagram and
/// cuts the run into datagrams at the device, which puts exactly the same datagrams on the wire.
/// Where the kernel or device refuses GSO, the batch falls back to one message per datagram.
#[derive(Debug)]
pub struct SendBatch {
    buf: Vec<u8>,
    slot_len: usize,
    capacity: usize,
    lens: Vec<usize>,
    /// The lent symbol of each datagram given as parts (held until it is sent).
    bodies: Vec<Option<SealedSymbol>>,
    /// Datagrams at the front already handed to the kernel.
    sent: usize,
    destination: SockAddr,
    gso: bool,
}

impl SendBatch {
    /// Room for `capacity` (at most [`MAX_BATCH`]) datagrams of up to `slot_len` bytes, all
    /// for `destination`; `gso` allows segmentation offload.
    pub fn new(slot_len: usize, capacity: usize, destination: SocketAddr, gso: bool) -> SendBatch {
        let capacity = capacity.clamp(1, MAX_BATCH);
        SendBatch {
            buf: vec![0; slot_len * capacity],
            slot_len,
            capacity,
            lens: Vec::with_capacity(capacity),
            bodies: Vec::with_capacity(capacity),
            sent: 0,
            destination: destination.into(),
            gso,
        }
    }

    /// True while segmentation offload is in use (it turns itself off if the kernel refuses).
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// The next free slot, if any; fill it and [`commit`](Self::commit) its length.
    pub fn free_slot(&mut self) -> Option<&mut [u8]> {
        if self.lens.len() >= self.capacity {
            return None;
        }
        let start = self.lens.len() * self.slot_len;
        self.buf.get_mut(start..start + self.slot_len)
    }

    /// The slot returned by [`free_slot`](Self::free_slot) now holds a datagram of `len` bytes.
    pub fn commit(&mut self, len: usize) {
        debug_assert!(len <= self.slot_len && self.lens.len() < self.capacity);
        self.lens.push(len.min(self.slot_len));
        self.bodies.push(None);
    }

    /// The slot returned by [`free_slot`](Self::free_slot) holds a datagram's header (its first
    /// `HEADER_LEN` bytes) and tag (the `TAG_LEN` after them); the datagram is header,
    /// `symbol`, tag.
    pub fn commit_parts(&mut self, symbol: SealedSymbol) {
        debug_assert!(self.lens.len() < self.capacity && self.slot_len >= HEADER_LEN + TAG_LEN);
        self.lens.push(symbol.datagram_len());
        self.bodies.push(Some(symbol));
    }

    /// Fill the free slots with the sender's next datagrams (symbols lent, not copied).
    pub fn fill_from(&mut self, sender: &mut Sender) {
        while let Some(slot) = self.free_slot() {
            match sender.poll_transmit_parts(slot) {
                Some(Transmit::Whole(n)) => self.commit(n),
                Some(Transmit::Parts(symbol)) => self.commit_parts(symbol),
                None => break,
            }
        }
    }

    /// Datagrams not yet sent.
    pub fn pending(&self) -> usize {
        self.lens.len() - self.sent
    }

    /// Payload bytes not yet sent.
    pub fn pending_bytes(&self) -> usize {
        self.lens.iter().skip(self.sent).sum()
    }

    /// Forget everything (after an error that is counted by the caller).
    pub fn clear(&mut self) {
        self.lens.clear();
        self.bodies.clear();
        self.sent = 0;
    }

    /// Hand as many pending datagrams as the kernel takes to `sendmmsg`; returns how many it
    /// took. `WouldBlock` means none; the batch empties itself once all are sent.
    pub fn send(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        match self.send_once(fd) {
            // EIO: the device cannot checksum GSO segments; EINVAL/ENOPROTOOPT: the kernel
            // predates UDP_SEGMENT. Nothing was sent; go on without GSO.
            Err(e)
                if self.gso
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT)
                    ) =>
            {
                self.gso = false;
                tracing::warn!(message = "UDP segmentation offload refused; sending datagram by datagram.", error = %e);
                self.send_once(fd)
            }
            r => r,
        }
    }

    fn send_once(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        if self.pending() == 0 {
            return Ok(0);
        }
        // Up to three per datagram: header, lent symbol, tag.
        let mut iovecs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; 3 * MAX_BATCH];
        // SAFETY: `mmsghdr` is a plain C struct for which all-zero bytes is a valid value.
        let mut headers: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        let mut controls = [Cmsg([0; 32]); MAX_BATCH];
        // Datagrams carried by each message.
        let mut carried = [0usize; MAX_BATCH];
        let base = self.buf.as_mut_ptr();
        let mut next = self.sent;
        let mut used_iovecs = 0;
        let mut messages = 0;
        while next < self.lens.len() && messages < MAX_BATCH {
            let segment = self.lens[next];
            let first_iovec = used_iovecs;
            let mut total = 0;
            // Datagrams in this message.
            let mut count = 0;
            while let Some(&len) = self.lens.get(next) {
                if count > 0
                    && (!self.gso
                        || len > segment
                        || count >= MAX_GSO_SEGMENTS
                        || total + len > MAX_GSO_BYTES)
                {
                    break;
                }
                // In bounds: slot `next` < capacity, and `buf` holds `capacity` slots.
                let slot = base.wrapping_add(next * self.slot_len);
                let (parts, wanted): ([(*mut u8, usize); 3], usize) = match self.bodies.get(next) {
                    Some(Some(symbol)) => {
                        let body = symbol.bytes();
                        (
                            [
                                (slot, HEADER_LEN),
                                (body.as_ptr().cast_mut(), body.len()),
                                (slot.wrapping_add(HEADER_LEN), TAG_LEN),
                            ],
                            3,
                        )
                    }
                    _ => ([(slot, len), (slot, 0), (slot, 0)], 1),
                };
                let Some(room) = iovecs.get_mut(used_iovecs..used_iovecs + wanted) else {
                    break;
                };
                for (iov, (ptr, n)) in room.iter_mut().zip(parts) {
                    iov.iov_base = ptr.cast();
                    iov.iov_len = n;
                }
                used_iovecs += wanted;
                count += 1;
                next += 1;
                total += len;
                if len < segment {
                    break; // only the last segment of a GSO send may be shorter
                }
            }
            let iovec_count = used_iovecs - first_iovec;
            let hdr = &mut headers[messages].msg_hdr;
            hdr.msg_name = self.destination.as_ptr() as *mut libc::c_void;
            hdr.msg_namelen = self.destination.len();
            hdr.msg_iov = iovecs[first_iovec..].as_mut_ptr();
            hdr.msg_iovlen = iovec_count as _;
            if count > 1 {
                let control = &mut controls[messages];
                hdr.msg_control = control.0.as_mut_ptr().cast();
                // SAFETY: CMSG_* only compute sizes and offsets within `control`, which is
                // 32 bytes, 8-aligned, and large enough for one cmsghdr and a u16.
                unsafe {
                    hdr.msg_controllen = libc::CMSG_SPACE(2) as _;
                    let cmsg = libc::CMSG_FIRSTHDR(hdr);
                    (*cmsg).cmsg_level = libc::SOL_UDP;
                    (*cmsg).cmsg_type = UDP_SEGMENT;
                    (*cmsg).cmsg_len = libc::CMSG_LEN(2) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment as u16);
                }
            }
            carried[messages] = count;
            messages += 1;
        }
        // SAFETY: `headers[..messages]` point at `iovecs`, `controls` and `destination`, which
        // outlive the call; each iovec covers bytes inside `buf` (at most `slot_len` from a
        // slot's start) or a lent symbol's bytes, which `bodies` keeps alive until the datagram
        // is sent. The kernel only reads the buffers and writes `msg_len`.
        let n = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                headers.as_mut_ptr(),
                messages as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let done: usize = carried.iter().take(n as usize).sum();
        self.sent += done;
        if self.sent >= self.lens.len() {
            self.clear();
        }
        Ok(done)
    }
}

/// Buffers for up to [`MAX_BATCH`] received messages.
///
/// With [`enable_gro`] on the socket, one message may hold several datagrams coalesced by the
/// kernel (all of one size but the last); [`RecvBatch::datagrams`] cuts them apart again, so
/// callers always see the datagrams as sent.
#[derive(Debug)]
pub struct RecvBatch {
    buf: Vec<u8>,
    slot_len: usize,
    capacity: usize,
    /// (length, truncated, GRO segment size) of each message of the last recv.
    got: Vec<(usize, bool, usize)>,
}

impl RecvBatch {
    /// Room for `capacity` (at most [`MAX_BATCH`]) messages of up to `slot_len` bytes (use
    /// [`GRO_SLOT_LEN`] with GRO); a longer message is cut and flagged as truncated.
    pub fn new(slot_len: usize, capacity: usize) -> RecvBatch {
        let capacity = capacity.clamp(1, MAX_BATCH);
        RecvBatch {
            buf: vec![0; slot_len * capacity],
            slot_len,
            capacity,
            got: Vec::with_capacity(capacity),
        }
    }

    /// Read as many messages as are waiting (up to the capacity) with one `recvmmsg`;
    /// returns how many. `WouldBlock` when none are waiting.
    pub fn recv(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        self.got.clear();
        let mut iovecs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_BATCH];
        // SAFETY: `mmsghdr` is a plain C struct for which all-zero bytes is a valid value.
        let mut headers: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
        let mut controls = [Cmsg([0; 32]); MAX_BATCH];
        let base = self.buf.as_mut_ptr();
        for (i, ((iov, hdr), control)) in iovecs
            .iter_mut()
            .zip(headers.iter_mut())
            .zip(controls.iter_mut())
            .take(self.capacity)
            .enumerate()
        {
            // In bounds: i < capacity, and `buf` holds `capacity` slots.
            iov.iov_base = base.wrapping_add(i * self.slot_len).cast();
            iov.iov_len = self.slot_len;
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_control = control.0.as_mut_ptr().cast();
            hdr.msg_hdr.msg_controllen = control.0.len() as _;
        }
        // SAFETY: `headers[..capacity]` point at `iovecs` and `controls`, which outlive the
        // call; each iovec covers one `slot_len` slot of `buf`, each control buffer is 32
        // bytes. No names are requested. MSG_DONTWAIT returns at once.
        let n = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                headers.as_mut_ptr(),
                self.capacity as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for hdr in headers.iter().take(n) {
            let truncated = hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let len = (hdr.msg_len as usize).min(self.slot_len);
            let mut segment = len;
            // SAFETY: the kernel filled `msg_control` up to `msg_controllen` within the 32-byte
            // buffer; CMSG_FIRSTHDR/NXTHDR stay inside it and return null at its end.
            unsafe {
                let mut cmsg = libc::CMSG_FIRSTHDR(&hdr.msg_hdr);
                while !cmsg.is_null() {
                    if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == UDP_GRO {
                        let size =
                            std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                        if size > 0 {
                            segment = size as usize;
                        }
                    }
                    cmsg = libc::CMSG_NXTHDR(&hdr.msg_hdr, cmsg);
                }
            }
            self.got.push((len, truncated, segment.max(1)));
        }
        Ok(n)
    }

    /// The datagrams of the last [`recv`](Self::recv), GRO runs cut apart: bytes and whether
    /// the kernel cut the message they came in.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], bool)> + '_ {
        self.got
            .iter()
            .enumerate()
            .flat_map(move |(i, &(len, truncated, segment))| {
                let start = i * self.slot_len;
                let d = self.buf.get(start..start + len).unwrap_or_default();
                // A zero-length datagram is one datagram too (counted, then rejected).
                let empty = d.is_empty().then_some((d, truncated));
                d.chunks(segment.max(1))
                    .map(move |d| (d, truncated))
                    .chain(empty)
            })
    }
}

/// Ask the kernel to coalesce runs of datagrams from one sender into one receive (`UDP_GRO`,
/// Linux 5.0). Receive slots must then be [`GRO_SLOT_LEN`] bytes.
pub fn enable_gro(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_int(fd, libc::SOL_UDP, UDP_GRO, 1)
}

fn set_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    option: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and the length passed is its size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Which buffer a forced size applies to.
#[derive(Debug, Clone, Copy)]
pub enum Buffer {
    /// `SO_RCVBUFFORCE`.
    Receive,
    /// `SO_SNDBUFFORCE`.
    Send,
}

/// Set a socket buffer beyond `net.core.[rw]mem_max` with `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE`.
/// Needs `CAP_NET_ADMIN`; fails with `EPERM` otherwise (the caller then keeps the capped size
/// and warns).
pub fn force_buffer(fd: BorrowedFd<'_>, which: Buffer, bytes: usize) -> io::Result<()> {
    let option = match which {
        Buffer::Receive => libc::SO_RCVBUFFORCE,
        Buffer::Send => libc::SO_SNDBUFFORCE,
    };
    let value = bytes.min(libc::c_int::MAX as usize) as libc::c_int;
    set_int(fd, libc::SOL_SOCKET, option, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    /// Datagram `i` of the test pattern: runs of equal sizes (like a block's symbols), a
    /// shorter one closing a run, a longer one starting the next, and a tiny "heartbeat".
    fn pattern() -> Vec<Vec<u8>> {
        let sizes = [
            1400, 1400, 1400, 900, 1452, 1452, 60, 1452, 1452, 1452, 1452, 1200,
        ];
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (0..n).map(|j| (i * 31 + j) as u8).collect())
            .collect()
    }

    fn round_trip(gso: bool, gro: bool) -> io::Result<()> {
        let rx = UdpSocket::bind("127.0.0.1:0")?;
        let tx = UdpSocket::bind("127.0.0.1:0")?;
        if gro {
            enable_gro(rx.as_fd())?;
        }
        let sent = pattern();
        let mut out = SendBatch::new(1500, sent.len(), rx.local_addr()?, gso);
        for d in &sent {
            let slot = out.free_slot().ok_or(io::ErrorKind::Other)?;
            slot[..d.len()].copy_from_slice(d);
            out.commit(d.len());
        }
        assert!(out.free_slot().is_none(), "a full batch has no free slot");
        assert_eq!(
            out.pending_bytes(),
            sent.iter().map(Vec::len).sum::<usize>()
        );
        while out.pending() > 0 {
            out.send(tx.as_fd())?;
        }
        assert_eq!(out.gso(), gso, "loopback takes GSO");

        let mut batch = RecvBatch::new(if gro { GRO_SLOT_LEN } else { 1500 }, 16);
        let mut got = Vec::new();
        rx.set_nonblocking(false)?;
        while got.len() < sent.len() {
            let mut peek = [0u8; 1];
            rx.peek(&mut peek)?; // wait for at least one
            batch.recv(rx.as_fd())?;
            got.extend(batch.datagrams().map(|(d, t)| {
                assert!(!t);
                d.to_vec()
            }));
        }
        assert_eq!(got, sent, "the same datagrams, in order, byte for byte");
        assert!(matches!(batch.recv(rx.as_fd()), Err(e) if e.kind() == io::ErrorKind::WouldBlock));
        Ok(())
    }

    #[test]
    fn datagrams_arrive_as_sent_with_and_without_segmentation_offload() -> io::Result<()> {
        round_trip(false, false)?;
        round_trip(true, false)?;
        round_trip(true, true)?;
        round_trip(false, true)
    }

    /// Datagrams given as parts (header and tag in the slot, the symbol lent from the sender's
    /// block buffer) arrive exactly as the copying path writes them, with and without
    /// segmentation offload, mixed with whole datagrams (heartbeats).
    #[test]
    fn lent_symbols_arrive_as_the_copied_datagrams_would() -> io::Result<()> {
        use std::time::{Duration, Instant};
        use weir_diode_proto::sender::IpVersion;
        use weir_diode_proto::{Cipher, Codec, SenderConfig};
        for gso in [false, true] {
            let rx = UdpSocket::bind("127.0.0.1:0")?;
            let tx = UdpSocket::bind("127.0.0.1:0")?;
            let now = Instant::now();
            let cfg = SenderConfig {
                key_id: 1,
                key: [9; 32],
                cipher: Cipher::Aes256Gcm,
                session: 77,
                mtu_bytes: 1500,
                ip_version: IpVersion::V4,
                codec: Codec::None,
                max_block_bytes: 16_384,
                max_record_bytes: 8_192,
                linger: Duration::from_millis(10),
                heartbeat_interval: Duration::from_secs(60),
                fingerprint: 0,
                max_queued_blocks: 8,
                repair_percent: 10,
                expected_loss_percent: 1.0,
                interleave_blocks: 1,
                identity: None,
            };
            let (mut copying, mut lending) = (
                Sender::new(cfg.clone(), now).map_err(io::Error::other)?,
                Sender::new(cfg, now).map_err(io::Error::other)?,
            );
            for s in [&mut copying, &mut lending] {
                let id = s.add_stream("s");
                for i in 0..12u32 {
                    let record: Vec<u8> = (0..1000 + i * 300).map(|j| (i + j) as u8).collect();
                    s.push(now, id, &record).map_err(io::Error::other)?;
                }
                s.flush();
            }
            let mut want = Vec::new();
            let mut buf = vec![0u8; copying.max_datagram_len()];
            while let Some(n) = copying.poll_transmit(&mut buf) {
                want.push(buf[..n].to_vec());
            }
            let mut out =
                SendBatch::new(lending.max_datagram_len(), MAX_BATCH, rx.local_addr()?, gso);
            let mut got = Vec::new();
            let mut batch = RecvBatch::new(1500, MAX_BATCH);
            rx.set_nonblocking(false)?;
            loop {
                out.fill_from(&mut lending);
                if out.pending() == 0 {
                    break;
                }
                let batch_len = out.pending();
                while out.pending() > 0 {
                    out.send(tx.as_fd())?;
                }
                let before = got.len();
                while got.len() < before + batch_len {
                    let mut peek = [0u8; 1];
                    rx.peek(&mut peek)?;
                    batch.recv(rx.as_fd())?;
                    got.extend(batch.datagrams().map(|(d, _)| d.to_vec()));
                }
            }
            assert!(want.len() > 12, "{} datagrams", want.len());
            assert_eq!(got, want, "gso {gso}: the same datagrams, byte for byte");
        }
        Ok(())
    }

    #[test]
    fn a_datagram_longer_than_the_slot_is_flagged_truncated() -> io::Result<()> {
        let rx = UdpSocket::bind("127.0.0.1:0")?;
        let tx = UdpSocket::bind("127.0.0.1:0")?;
        tx.send_to(&[7u8; 1200], rx.local_addr()?)?;
        tx.send_to(&[8u8; 800], rx.local_addr()?)?;
        let mut batch = RecvBatch::new(1000, 4);
        let mut got = Vec::new();
        rx.set_nonblocking(false)?;
        while got.len() < 2 {
            let mut peek = [0u8; 1];
            rx.peek(&mut peek)?;
            batch.recv(rx.as_fd())?;
            got.extend(batch.datagrams().map(|(d, t)| (d.len(), d[0], t)));
        }
        assert_eq!(got, vec![(1000, 7, true), (800, 8, false)]);
        Ok(())
    }
}
