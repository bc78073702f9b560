//! Files duoprov writes that hold personal data (saved plans name users and their e-mail
//! addresses) or secrets are private to their owner: created `0600` whatever the umask, and an
//! existing file is narrowed to `0600` before it is rewritten. `doctor` uses
//! [`readable_by_others`] to warn about files (the SQLite registry among them) that are not.

use std::io::Write as _;
use std::path::Path;

/// Writes `bytes` to `path`, readable and writable by the owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        open.mode(0o600);
        // An existing file keeps its mode through open(): narrow it first.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    let mut file = open.open(path)?;
    file.write_all(bytes)?;
    file.flush()
}

/// The permission bits of `path` when group or others may read it; `None` when it is private
/// or does not exist.
pub fn readable_by_others(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o044 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600_new_or_rewritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("plan.json");
        write_private(&fresh, b"{}").unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(readable_by_others(&fresh), None);
        let old = dir.path().join("old.json");
        std::fs::write(&old, b"x").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(readable_by_others(&old), Some(0o644));
        write_private(&old, b"{\"a\":1}").unwrap();
        assert_eq!(std::fs::metadata(&old).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&old).unwrap(), b"{\"a\":1}");
        assert_eq!(readable_by_others(&dir.path().join("missing")), None);
    }
}
