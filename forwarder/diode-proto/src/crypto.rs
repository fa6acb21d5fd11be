//! Datagram authentication and encryption.
//!
//! * The pre-shared key (32 bytes, from `weir keygen`) is never used directly. Each session
//!   derives its own key: `HKDF-SHA256(ikm = psk, salt = session epoch (8 bytes, big-endian),
//!   info = "weir diode v1 session key")`.
//! * Every datagram is sealed with ChaCha20-Poly1305 under the session key. The nonce is built
//!   from fields that are unique per datagram within a session:
//!   `type (1) | block sequence (8) | symbol index (2) | 0x00`. Block sequences never wrap and
//!   the sender never sends the same (type, block, symbol) twice, so a nonce never repeats under
//!   one key; a restarted sender draws a new random epoch and so a new key.
//! * The 32-byte header is the associated data; the tag is checked before anything else is
//!   done with the datagram.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::frame::{DatagramType, Header, HEADER_LEN, TAG_LEN};

/// Length of a pre-shared key.
pub const KEY_LEN: usize = 32;

const INFO: &[u8] = b"weir diode v1 session key";

/// The authentication tag did not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthFailed;

/// A session's AEAD.
#[derive(Clone)]
pub struct SessionKey {
    aead: ChaCha20Poly1305,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// Derive the key for `session` from the pre-shared key.
    pub fn derive(psk: &[u8; KEY_LEN], session: u64) -> SessionKey {
        let hk = Hkdf::<Sha256>::new(Some(&session.to_be_bytes()), psk);
        let mut okm = [0u8; KEY_LEN];
        // 32 bytes is far below HKDF-SHA256's 255 * 32 byte limit: expand cannot fail.
        if hk.expand(INFO, &mut okm).is_err() {
            debug_assert!(false, "HKDF expand of 32 bytes failed");
        }
        SessionKey {
            aead: ChaCha20Poly1305::new(&okm.into()),
        }
    }

    fn nonce(kind: DatagramType, block: u64, symbol: u16) -> Nonce {
        let mut n = [0u8; 12];
        n[0] = kind as u8;
        n[1..9].copy_from_slice(&block.to_be_bytes());
        n[9..11].copy_from_slice(&symbol.to_be_bytes());
        n.into()
    }

    /// Seal `payload` in place; returns the tag to append.
    pub fn seal(&self, header: &[u8; HEADER_LEN], h: &Header, payload: &mut [u8]) -> [u8; TAG_LEN] {
        let nonce = Self::nonce(h.kind, h.block, h.symbol);
        match self.aead.encrypt_in_place_detached(&nonce, header, payload) {
            Ok(tag) => tag.into(),
            Err(_) => {
                // Only fails for payloads beyond 256 GiB; ours are below 64 KiB.
                debug_assert!(false, "ChaCha20-Poly1305 refused a payload");
                [0u8; TAG_LEN]
            }
        }
    }

    /// Verify and decrypt `payload` in place.
    pub fn open(
        &self,
        header: &[u8],
        h: &Header,
        payload: &mut [u8],
        tag: &[u8],
    ) -> Result<(), AuthFailed> {
        if tag.len() != TAG_LEN {
            return Err(AuthFailed);
        }
        let nonce = Self::nonce(h.kind, h.block, h.symbol);
        self.aead
            .decrypt_in_place_detached(&nonce, header, payload, Tag::from_slice(tag))
            .map_err(|_| AuthFailed)
    }
}
