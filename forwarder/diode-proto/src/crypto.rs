//! Datagram authentication and encryption.
//!
//! * The pre-shared key (32 bytes, from `weir keygen`) is never used directly. Each session
//!   derives its own key: `HKDF-SHA256(ikm = psk, salt = session epoch (8 bytes, big-endian),
//!   info = "weir diode v1 session key" | cipher id)`.
//! * Every datagram is sealed with an AEAD under the session key: AES-256-GCM (the default;
//!   fastest where the CPU has AES instructions) or ChaCha20-Poly1305 (fastest without them).
//!   The cipher id travels in every header, so a receiver accepts either without
//!   configuration and the two sides cannot disagree silently.
//! * The nonce is built from fields unique per datagram within a session:
//!   `type (1) | block sequence (8) | symbol index (2) | 0x00`. Block sequences never wrap and
//!   the sender never sends the same (type, block, symbol) twice, so a nonce never repeats under
//!   one key; a restarted sender draws a new random epoch and so a new key.
//! * The 32-byte header is the associated data; the tag is checked before anything else is
//!   done with the datagram.
//!
//! The AEADs are `ring`'s (BoringSSL's assembly): in this crate's benchmark they are several
//! times faster than the pure-Rust implementations, and the AEAD is most of the protocol's cost.

use hkdf::Hkdf;
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM, CHACHA20_POLY1305};
use sha2::Sha256;

use crate::frame::{DatagramType, Header, HEADER_LEN, TAG_LEN};

/// Length of a pre-shared key.
pub const KEY_LEN: usize = 32;

const INFO: &[u8] = b"weir diode v1 session key";

/// The AEAD sealing a datagram (header byte 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Cipher {
    /// ChaCha20-Poly1305 (RFC 8439).
    ChaCha20Poly1305 = 0,
    /// AES-256-GCM.
    #[default]
    Aes256Gcm = 1,
}

impl Cipher {
    /// From the header byte.
    pub fn from_u8(v: u8) -> Option<Cipher> {
        match v {
            0 => Some(Cipher::ChaCha20Poly1305),
            1 => Some(Cipher::Aes256Gcm),
            _ => None,
        }
    }

    /// The name used in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::ChaCha20Poly1305 => "chacha20-poly1305",
            Cipher::Aes256Gcm => "aes-256-gcm",
        }
    }
}

/// The authentication tag did not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthFailed;

/// A session's AEAD key.
pub struct SessionKey {
    key: LessSafeKey,
    cipher: Cipher,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionKey({:?}, ..)", self.cipher)
    }
}

impl SessionKey {
    /// Derive the key for `session` and `cipher` from the pre-shared key.
    pub fn derive(psk: &[u8; KEY_LEN], session: u64, cipher: Cipher) -> SessionKey {
        let hk = Hkdf::<Sha256>::new(Some(&session.to_be_bytes()), psk);
        let mut okm = [0u8; KEY_LEN];
        // 32 bytes is far below HKDF-SHA256's 255 * 32 byte limit: expand cannot fail.
        if hk
            .expand_multi_info(&[INFO, &[cipher as u8]], &mut okm)
            .is_err()
        {
            debug_assert!(false, "HKDF expand of 32 bytes failed");
        }
        let algorithm = match cipher {
            Cipher::ChaCha20Poly1305 => &CHACHA20_POLY1305,
            Cipher::Aes256Gcm => &AES_256_GCM,
        };
        // Both algorithms take 32-byte keys: construction cannot fail.
        let unbound = UnboundKey::new(algorithm, &okm).unwrap_or_else(|_| {
            debug_assert!(false, "32-byte AEAD key refused");
            #[allow(clippy::unwrap_used)]
            UnboundKey::new(&CHACHA20_POLY1305, &[0u8; 32]).unwrap()
        });
        SessionKey {
            key: LessSafeKey::new(unbound),
            cipher,
        }
    }

    /// The cipher this key is for.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    fn nonce(kind: DatagramType, block: u64, symbol: u16) -> Nonce {
        let mut n = [0u8; 12];
        n[0] = kind as u8;
        n[1..9].copy_from_slice(&block.to_be_bytes());
        n[9..11].copy_from_slice(&symbol.to_be_bytes());
        Nonce::assume_unique_for_key(n)
    }

    /// Seal `payload` in place; returns the tag to append.
    pub fn seal(&self, header: &[u8; HEADER_LEN], h: &Header, payload: &mut [u8]) -> [u8; TAG_LEN] {
        let nonce = Self::nonce(h.kind, h.block, h.symbol);
        match self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(header), payload)
        {
            Ok(tag) => {
                let mut out = [0u8; TAG_LEN];
                out.copy_from_slice(tag.as_ref());
                out
            }
            Err(_) => {
                // Only fails for payloads beyond the AEAD's limit (gigabytes); ours are below
                // 64 KiB.
                debug_assert!(false, "AEAD refused a payload");
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
        let tag = Tag::try_from(tag).map_err(|_| AuthFailed)?;
        let nonce = Self::nonce(h.kind, h.block, h.symbol);
        self.key
            .open_in_place_separate_tag(nonce, Aad::from(header), tag, payload, 0..)
            .map(|_| ())
            .map_err(|_| AuthFailed)
    }
}
