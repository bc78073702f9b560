//! Schema migrations, embedded in the binary: one list per backend, applied in order and recorded
//! by sqlx in `_sqlx_migrations`.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::SqlSafeStr;

fn migrator(files: &[(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = files
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(*version, Cow::Borrowed(*description), MigrationType::Simple, sqlx::AssertSqlSafe(*sql).into_sql_str(), false)
        })
        .collect();
    Migrator::with_migrations(migrations)
}

pub(crate) fn sqlite() -> Migrator {
    migrator(&[
        (1, "registry", include_str!("../migrations/sqlite/0001_registry.sql")),
        (2, "duo_user", include_str!("../migrations/sqlite/0002_duo_user.sql")),
        (3, "sync state", include_str!("../migrations/sqlite/0003_sync_state.sql")),
        (4, "incremental sync", include_str!("../migrations/sqlite/0004_incremental.sql")),
        (5, "ownership", include_str!("../migrations/sqlite/0005_ownership.sql")),
        (6, "retry whole group", include_str!("../migrations/sqlite/0006_retry_whole_group.sql")),
        (7, "duo probe", include_str!("../migrations/sqlite/0007_duo_probe.sql")),
        (8, "sources", include_str!("../migrations/sqlite/0008_sources.sql")),
        (9, "millis", include_str!("../migrations/sqlite/0009_millis.sql")),
        (10, "audit", include_str!("../migrations/sqlite/0010_audit.sql")),
        (11, "console", include_str!("../migrations/sqlite/0011_console.sql")),
        (13, "auth methods", include_str!("../migrations/sqlite/0013_auth_methods.sql")),
        (15, "duo admin", include_str!("../migrations/sqlite/0015_duo_admin.sql")),
        (16, "disable and sync-back", include_str!("../migrations/sqlite/0016_disable_and_sync_back.sql")),
        (17, "console actions", include_str!("../migrations/sqlite/0017_console_actions.sql")),
        (18, "rendered usernames", include_str!("../migrations/sqlite/0018_rendered_usernames.sql")),
        (19, "console at scale", include_str!("../migrations/sqlite/0019_console_at_scale.sql")),
        (20, "console requests", include_str!("../migrations/sqlite/0020_console_requests.sql")),
        (21, "source feed", include_str!("../migrations/sqlite/0021_source_feed.sql")),
        (22, "scoped links", include_str!("../migrations/sqlite/0022_scoped_links.sql")),
        (23, "rendered group names", include_str!("../migrations/sqlite/0023_rendered_groups.sql")),
        (24, "duo user rendered", include_str!("../migrations/sqlite/0024_duo_user_rendered.sql")),
    ])
}

pub(crate) fn postgres() -> Migrator {
    migrator(&[
        (1, "registry", include_str!("../migrations/postgres/0001_registry.sql")),
        (2, "duo_user", include_str!("../migrations/postgres/0002_duo_user.sql")),
        (3, "sync state", include_str!("../migrations/postgres/0003_sync_state.sql")),
        (4, "incremental sync", include_str!("../migrations/postgres/0004_incremental.sql")),
        (5, "ownership", include_str!("../migrations/postgres/0005_ownership.sql")),
        (6, "retry whole group", include_str!("../migrations/postgres/0006_retry_whole_group.sql")),
        (7, "duo probe", include_str!("../migrations/postgres/0007_duo_probe.sql")),
        (8, "sources", include_str!("../migrations/postgres/0008_sources.sql")),
        (9, "millis", include_str!("../migrations/postgres/0009_millis.sql")),
        (10, "audit", include_str!("../migrations/postgres/0010_audit.sql")),
        (11, "console", include_str!("../migrations/postgres/0011_console.sql")),
        (13, "auth methods", include_str!("../migrations/postgres/0013_auth_methods.sql")),
        (15, "duo admin", include_str!("../migrations/postgres/0015_duo_admin.sql")),
        (16, "disable and sync-back", include_str!("../migrations/postgres/0016_disable_and_sync_back.sql")),
        (17, "console actions", include_str!("../migrations/postgres/0017_console_actions.sql")),
        (18, "rendered usernames", include_str!("../migrations/postgres/0018_rendered_usernames.sql")),
        (19, "console at scale", include_str!("../migrations/postgres/0019_console_at_scale.sql")),
        (20, "console requests", include_str!("../migrations/postgres/0020_console_requests.sql")),
        (21, "source feed", include_str!("../migrations/postgres/0021_source_feed.sql")),
        (22, "scoped links", include_str!("../migrations/postgres/0022_scoped_links.sql")),
        (23, "rendered group names", include_str!("../migrations/postgres/0023_rendered_groups.sql")),
        (24, "duo user rendered", include_str!("../migrations/postgres/0024_duo_user_rendered.sql")),
    ])
}
