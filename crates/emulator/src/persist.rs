//! The optional state file: loaded at start when it exists, saved atomically (write a temporary
//! file in the same directory, flush it to disk, rename it over the target) when the tenant has
//! changed, at most once per save interval, on `POST /_emulator/save`, and at shutdown.

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

/// Writes `bytes` to `path` atomically.
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
        let mut f = std::fs::File::create(&tmp)?;
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
}
