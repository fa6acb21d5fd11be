//! Files that must survive a crash or a power loss whole.

use std::path::Path;

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
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
