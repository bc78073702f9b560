//! The SQLite backend (the default): a file or in-memory database in WAL mode with foreign keys
//! on, one writer at a time (`BEGIN IMMEDIATE`), and the one SQL store of `sql/` over it; the
//! runner lock is a lock file next to the database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::{RegistryError, Result};
use crate::migrate;
use crate::sql::{SqlBackend, SqlStore};

/// The registry store over SQLite.
pub type SqliteStore = SqlStore<sqlx::Sqlite>;

impl SqlBackend for sqlx::Sqlite {
    const BACKEND: crate::Backend = crate::Backend::Sqlite;
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const WRITE_LOCK: Option<&'static str> = None;
    const AUDIT_LOCK: Option<&'static str> = None;
    const BEGIN_READ: &'static str = "BEGIN DEFERRED";
    const JSON_IDS: &'static str = "SELECT value FROM json_each($1)";
    // (`WHERE true`: SQLite needs it between an INSERT's SELECT and its `ON CONFLICT`.)
    const JSON_ID_PAIRS: &'static str = "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each($1) WHERE true";
    const JSON_TEXT_ROWS8: &'static str = "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]'), \
                      json_extract(value, '$[4]'), json_extract(value, '$[5]'), json_extract(value, '$[6]'), json_extract(value, '$[7]') FROM json_each($1) WHERE true";
    // SQLite's foreign-key checks are plain index probes: nothing to gain.
    const BULK_MEMBERSHIP_LOAD: Option<crate::sql::BulkLoad> = None;
    const CONCAT_SUBJECT_IDS: &'static str = "group_concat(subject_id)";
    const NOTIFY_CHANGE: Option<&'static str> = None;
    const BYTE_ORDER: &'static str = "";
    const UNRENDERED_INDEX: &'static str = " INDEXED BY duo_user_unrendered";

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    async fn try_lock_runner(store: &SqliteStore, key: &str) -> Result<Option<crate::RunnerLock>> {
        try_lock_runner(store, key).await
    }

    /// SQLite has no notifications: the daemon polls.
    async fn change_waker(_: &SqliteStore) -> Result<Option<crate::sync_state::ChangeWaker>> {
        Ok(None)
    }
}

/// The database file a SQLite URL names, or `None` for an in-memory registry: what a caller
/// checks before `connect`, which would create a missing file.
pub fn database_file(url: &str) -> Result<Option<std::path::PathBuf>> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(None);
    }
    let parsed = SqliteConnectOptions::from_str(url).map_err(|e| RegistryError::Url(format!("not a SQLite URL: {e}")))?;
    Ok(Some(parsed.get_filename().to_path_buf()))
}

/// Opens (creating if needed) the SQLite registry at `url` and brings its schema up to date.
/// `sqlite::memory:` gives a private in-memory registry.
pub async fn connect(url: &str) -> Result<SqliteStore> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let parsed = SqliteConnectOptions::from_str(url).map_err(|e| RegistryError::Url(format!("not a SQLite URL: {e}")))?;
    if !in_memory {
        create_private(parsed.get_filename())?;
    }
    let mut options = parsed
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30))
        .synchronous(SqliteSynchronous::Normal)
        // Reading a large registry takes seconds by design; that is not worth a warning.
        .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(30));
    if !in_memory {
        options = options.journal_mode(SqliteJournalMode::Wal);
    }
    let pool_options = if in_memory {
        // An in-memory database lives as long as its one connection.
        SqlitePoolOptions::new().max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None)
    } else {
        SqlitePoolOptions::new().max_connections(4)
    };
    let pool = pool_options
        .connect_with(options)
        .await
        .map_err(RegistryError::db("opening the SQLite registry"))?;
    migrate::sqlite().run(&pool).await?;
    Ok(SqliteStore::from_pool(pool))
}

/// Creates the database file readable and writable by its owner only (it holds names, e-mail
/// addresses and phone numbers), whatever the umask; SQLite gives its `-wal` and `-shm` files the
/// database file's mode. An existing file is left as it is (`duoprov doctor` warns when it is
/// readable by others).
fn create_private(path: &std::path::Path) -> Result<()> {
    if path.as_os_str().is_empty() || path.exists() {
        return Ok(());
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    match open.open(path) {
        Ok(_) => {}
        // Another process created it first: theirs stands.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(RegistryError::Url(format!("cannot create the SQLite registry {}: {e}", path.display()))),
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // OpenOptions::mode is filtered by the umask only to remove bits; 0600 survives any umask,
        // but set it explicitly in case the filesystem chose otherwise.
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

/// A lock file next to the database, held with the operating system's advisory file lock: a
/// process that dies releases it. An in-memory registry is private to its process and needs none.
///
/// Fencing: the lock is held only while the file at the lock path is still the one locked. If
/// the lock file was removed (or replaced), another process can create and lock a new one, so
/// `alive` then reads as lost.
struct FileLock {
    file: std::fs::File,
    path: std::path::PathBuf,
}

#[async_trait::async_trait]
impl crate::sync_state::LockHolder for FileLock {
    async fn alive(&mut self) -> bool {
        same_file(&self.file, &self.path)
    }
}

#[cfg(unix)]
fn same_file(file: &std::fs::File, path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(held), Ok(there)) => held.dev() == there.dev() && held.ino() == there.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::File, path: &std::path::Path) -> bool {
    path.exists()
}

/// `<database>.<key>.lock`, with the key reduced to letters, digits, `-` and `_`.
pub(crate) fn lock_path(database: &std::path::Path, key: &str) -> std::path::PathBuf {
    let safe: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    let mut name = database.as_os_str().to_owned();
    name.push(format!(".{safe}.lock"));
    std::path::PathBuf::from(name)
}

async fn try_lock_runner(store: &SqliteStore, key: &str) -> Result<Option<crate::RunnerLock>> {
    let options = store.pool().connect_options();
    let database = options.get_filename();
    let name = database.to_string_lossy();
    // sqlx names an in-memory database `:memory:` or `file:sqlx-in-memory-N`.
    if name.is_empty() || name == ":memory:" || name.contains("mode=memory") || name.starts_with("file:sqlx-in-memory") {
        return Ok(Some(crate::RunnerLock::new(Box::new(crate::sync_state::NoLock))));
    }
    // One lock file per database whatever path names it (relative, through a symbolic link).
    let database = std::fs::canonicalize(database).unwrap_or_else(|_| database.to_path_buf());
    let path = lock_path(&database, key);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| RegistryError::Refused(format!("opening the lock file {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(crate::RunnerLock::new(Box::new(FileLock { file, path })))),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(RegistryError::Refused(format!("locking {}: {e}", path.display()))),
    }
}
