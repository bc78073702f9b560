//! The optional state file: loaded at start when it exists, saved atomically (write a temporary
//! file in the same directory, flush it to disk, rename it over the target) when the tenant has
//! changed, at most once per save interval, on `POST /_emulator/save`, and at shutdown.
//!
//! The file holds users' e-mail addresses, names and notes: it is written readable by its owner
//! only (mode 0600 on Unix, set on the open file so the umask plays no part), and since it is
//! renamed over the target, a target that was readable by others is replaced by a private file.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::state::TenantDump;

/// Reads the dump at `path`; `Ok(None)` when the file does not exist.
pub fn load(path: &Path) -> Result<Option<TenantDump>, Error> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::StateIo {
                path: path.display().to_string(),
                source,
            });
        }
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| Error::StateFormat {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

/// Creates (or truncates) `path` for writing, readable and writable by its owner only whatever
/// the umask: created 0600, then narrowed to 0600 on the open file (a file left over from an
/// earlier run may have been wider).
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let f = options.open(path)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(f)
    }
    #[cfg(not(unix))]
    {
        options.open(path)
    }
}

/// Writes `bytes` to `path` atomically, as a private file (see [`create_private`]).
pub fn save_bytes(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::StateIo {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".to_owned());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = create_private(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Serialises a dump for the file (pretty JSON, trailing newline).
pub fn to_bytes(dump: &TenantDump) -> Result<Vec<u8>, Error> {
    let mut v = serde_json::to_vec_pretty(dump).map_err(|e| Error::StateFormat {
        path: "<memory>".into(),
        message: e.to_string(),
    })?;
    v.push(b'\n');
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_none_and_round_trip_works() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("s.json");
        assert!(load(&p).expect("load").is_none());
        save_bytes(&p, &to_bytes(&TenantDump::default()).expect("bytes")).expect("save");
        let back = load(&p).expect("load").expect("present");
        assert!(back.users.is_empty());
        std::fs::write(&p, b"{not json").expect("write");
        assert!(matches!(load(&p), Err(Error::StateFormat { .. })));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(Result::ok)
            .collect();
        assert_eq!(leftovers.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_saved_state_file_is_private_even_over_a_file_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("s.json");
        std::fs::write(&p, b"{}").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        save_bytes(&p, &to_bytes(&TenantDump::default()).expect("bytes")).expect("save");
        let mode = std::fs::metadata(&p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
