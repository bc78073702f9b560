//! The SQLite registry holds personal data (names, e-mail addresses, phone numbers in the Duo
//! users table): its files are private to their owner whatever the process umask.

#[cfg(unix)]
#[tokio::test]
async fn a_new_sqlite_registry_and_its_wal_and_shm_files_are_private_under_a_permissive_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.db");
    // A umask that lets everyone read new files (the umask is per process: this test binary's
    // other tests create only temporary files of their own).
    // SAFETY: umask(2) has no failure mode and touches no memory.
    let old = unsafe { libc_umask(0o022) };
    let store = duoprov_registry::open(&format!("sqlite://{}", db.display()), &Default::default()).await.unwrap();
    store.upsert_subject(&duoprov_model::SubjectKey::local("u1"), &Default::default()).await.unwrap();
    unsafe { libc_umask(old) };
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        let mode = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", path.display());
    }
}

#[cfg(unix)]
unsafe extern "C" {
    #[link_name = "umask"]
    fn libc_umask(mask: u32) -> u32;
}
