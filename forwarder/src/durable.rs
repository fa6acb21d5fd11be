//! Files that must survive a crash or a power loss whole.

use std::path::{Path, PathBuf};

/// Write `bytes` to `path` so that a crash or power loss leaves either the old or the new
/// contents: a temporary file beside it (`NAME.tmp`), synced, renamed over, the directory
/// synced. Used for every state file Weir replaces whole (receiver state, agent boot,
/// bookmarks, baselines).
pub fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// What [`load`] found.
#[derive(Debug)]
pub enum Loaded<T> {
    /// No file: start from the beginning.
    Missing,
    /// The file, read.
    Read(T),
    /// The file did not read (empty, torn or damaged: what a power loss or a full disk can
    /// leave); it was moved aside so that nothing is lost for a later look.
    SetAside {
        /// Where it went (`NAME.damaged`).
        moved_to: PathBuf,
        /// Its size.
        bytes: usize,
    },
}

/// Read the state file at `path` with `parse`. A file `parse` refuses is moved aside (never a
/// reason to stop a source); only a file that cannot be read at all (permissions) is an error.
pub fn load<T>(path: &Path, parse: impl FnOnce(&[u8]) -> Option<T>) -> std::io::Result<Loaded<T>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(e) => return Err(e),
    };
    if let Some(v) = parse(&bytes) {
        return Ok(Loaded::Read(v));
    }
    let mut aside = path.as_os_str().to_owned();
    aside.push(".damaged");
    let moved_to = PathBuf::from(aside);
    std::fs::rename(path, &moved_to)?;
    Ok(Loaded::SetAside {
        moved_to,
        bytes: bytes.len(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    /// Missing, read, and damaged (empty) files.
    #[test]
    fn damaged_state_files_are_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let parse = |b: &[u8]| serde_json::from_slice::<u32>(b).ok();
        assert!(matches!(
            super::load(&path, parse),
            Ok(super::Loaded::Missing)
        ));
        std::fs::write(&path, b"7").unwrap();
        assert!(matches!(
            super::load(&path, parse),
            Ok(super::Loaded::Read(7))
        ));
        std::fs::write(&path, b"").unwrap();
        match super::load(&path, parse).unwrap() {
            super::Loaded::SetAside { moved_to, bytes } => {
                assert_eq!(bytes, 0);
                assert!(moved_to.exists() && !path.exists());
            }
            other => panic!("{other:?}"),
        }
    }

    /// Replaces whole, leaves no temporary file, creates the directory.
    #[test]
    fn writes_whole_files_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/state.json");
        super::write_synced(&path, b"one").unwrap();
        super::write_synced(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }
}
