//! Pre-shared diode keys: `weir keygen` writes them, both sides read them.
//!
//! ```toml
//! # Weir diode pre-shared key. Anyone holding it can forge datagrams: keep it 0600.
//! key_id = 1
//! key = "<64 hex digits>"
//! ```

use std::fmt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use weir_diode_proto::KEY_LEN;

/// A key and its id. `Debug` never prints the key.
#[derive(Clone)]
pub struct DiodeKey {
    /// Key id carried in every datagram header.
    pub id: u16,
    /// The secret.
    pub secret: [u8; KEY_LEN],
}

impl fmt::Debug for DiodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DiodeKey {{ id: {}, secret: <redacted> }}", self.id)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    key_id: u16,
    key: String,
}

impl DiodeKey {
    /// A fresh random key.
    pub fn generate(id: u16) -> Result<DiodeKey> {
        let mut secret = [0u8; KEY_LEN];
        getrandom::fill(&mut secret).map_err(|e| anyhow!("no randomness from the OS: {e}"))?;
        Ok(DiodeKey { id, secret })
    }

    /// The key file text.
    pub fn to_file_text(&self) -> String {
        format!(
            "# Weir diode pre-shared key. Anyone holding it can forge datagrams: keep it 0600.\nkey_id = {}\nkey = \"{}\"\n",
            self.id,
            hex::encode(self.secret)
        )
    }

    /// Write a key file readable by its owner only.
    pub fn write(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create key file {}", path.display()))?;
        f.write_all(self.to_file_text().as_bytes())?;
        Ok(())
    }

    /// Read a key file (refused when other users may read or change it).
    pub fn load(path: &Path) -> Result<DiodeKey> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read key file {}", path.display()))?;
        check_private(path)?;
        Self::parse(&text).with_context(|| format!("invalid key file {}", path.display()))
    }

    /// Parse key file text.
    pub fn parse(text: &str) -> Result<DiodeKey> {
        let f: KeyFile = toml::from_str(text).map_err(|e| anyhow!("{}", e.message().trim()))?;
        let bytes = hex::decode(f.key.trim()).map_err(|_| anyhow!("key is not hex"))?;
        let Ok(secret) = <[u8; KEY_LEN]>::try_from(bytes.as_slice()) else {
            bail!(
                "key must be {KEY_LEN} bytes ({} hex digits), found {}",
                KEY_LEN * 2,
                bytes.len()
            );
        };
        Ok(DiodeKey {
            id: f.key_id,
            secret,
        })
    }
}

/// Refuse a secret file that users other than its owner and group may read, or that its group
/// may change, as ssh refuses such keys: with the fix in the error. Group read is allowed (the
/// package's `root:weir` mode `0640`).
pub fn check_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o027 != 0 {
            bail!(
                "{} holds a secret but its mode {mode:04o} lets other users read or change it; fix: chmod 0600 {} (or chown root:weir and chmod 0640 when the service reads it through its group)",
                path.display(),
                path.display()
            );
        }
    }
    Ok(())
}

/// A secret from a file (first line, trimmed; the file must be private, see [`check_private`]).
pub fn read_secret(path: &Path) -> Result<weir_integrations::Secret> {
    check_private(path)?;
    weir_integrations::hec::read_token(path)
        .map(weir_integrations::Secret::from)
        .map_err(|e| anyhow!("{e}"))
}
