/*!
The sans-IO core of Weir's one-way diode protocol.

A hardware data diode carries UDP one way and nothing back: no handshake, no acknowledgement, no
retransmission, no way to ask "did you get that?". This crate is the protocol that makes such a
link trustworthy anyway:

* every datagram is authenticated (ChaCha20-Poly1305 under a per-session key derived from a
  pre-shared key) and checked before anything else happens to it ([`crypto`], [`frame`]);
* records travel in numbered, compressed blocks cut into MTU-sized symbols ([`block`]);
* each record carries its stream's sequence number, so the receiver knows *exactly* which
  records a lost block took with it, and heartbeats ([`heartbeat`]) reveal lost tails;
* a random session epoch per sender start makes restarts visible and nonces unique.

There are no sockets, threads or clocks here: [`Sender`] and [`Receiver`] are state machines in
the style of `quinn-proto`. The driver passes `now`, feeds datagrams in with `handle_*`, and takes
work out with `poll_*`. That makes every loss, reordering, duplication and corruption scenario a
plain unit test. The byte layouts are documented in `docs/diode-protocol.md` and in each module.
*/
#![deny(clippy::unwrap_used, clippy::panic)]

pub mod block;
pub mod crypto;
pub mod frame;
pub mod heartbeat;
pub mod reader;
pub mod receiver;
pub mod sender;
pub mod state;

pub use block::{Codec, DecodedBlock, RecordRef};
pub use crypto::{Cipher, KEY_LEN};
pub use heartbeat::{Heartbeat, Identity, StreamPosition};
pub use receiver::{Gap, GapReason, Output, Receiver, ReceiverConfig, ReceiverStats, Reject};
pub use sender::{PushError, SealedSymbol, Sender, SenderConfig, SenderStats, StreamId, Transmit};
pub use state::{ReceiverState, SenderLedger};

/// A fingerprint of the settings both sides must agree on, for heartbeats: the first 8 bytes of
/// SHA-256 over a canonical `key=value` rendering, so both sides compute it identically from
/// their own configuration.
pub fn fingerprint(settings: &[(&str, String)]) -> u64 {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<_> = settings.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    for (k, v) in sorted {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}
