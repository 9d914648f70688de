//! `--output FILE`: written atomically, so a reader (node_exporter's textfile collector, a
//! monitoring agent) sees the old file or the new one, never half of one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The temporary file beside `path`: hidden, and not ending in `.prom`, so the textfile
/// collector ignores it.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".to_string());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes `bytes` to a temporary file in `path`'s directory (mode 0644), syncs it, renames it
/// over `path`, then syncs the directory. On failure the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let shown = path.display().to_string();
    let tmp = temp_path(path);
    // Opened first and apart: a temporary file this call did not create (EEXIST: another
    // writer's, or a planted link) is never removed below.
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .with_context(|| format!("cannot create a temporary file beside {shown}"))?;
    let result = (|| -> Result<()> {
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot rename into {shown}"))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // The rename is durable once the directory is synced; a failure here loses nothing now.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("zcd-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("zcdoctor.prom");
        std::fs::write(&path, "old").unwrap();
        write_atomic(&path, b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(write_atomic(&dir.join("no-such-dir/x.prom"), b"x").is_err());
        // A temporary name already taken is refused and left alone.
        let taken = temp_path(&path);
        std::fs::write(&taken, "someone else's").unwrap();
        assert!(write_atomic(&path, b"newer\n").is_err());
        assert_eq!(std::fs::read_to_string(&taken).unwrap(), "someone else's");
        std::fs::remove_file(&taken).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
