//! The Duo users table on both backends: a replace mirrors exactly the rows given (insert, update,
//! delete, per provisioner), odd values round-trip unchanged, report filters, the documented
//! view and Grouper's `grouper_prov_duo_user`, authentication-method counts and their filters,
//! and a load that fails midway (a trigger refusing one row after several batches were
//! written) leaves the previous rows and load record as they were.

use crate::registry_test;
use crate::support::{add_subject, person};
use duoprov_model::{SubjectKey, SubjectPatch};
use duoprov_registry::{AuthMethod, AuthMethodCounts, DuoUserFilter, DuoUserRow, ReplaceCounts, Store};

fn row(config: &str, id: &str, name: &str) -> DuoUserRow {
    DuoUserRow {
        config_id: config.into(),
        user_id: id.into(),
        aliases: None,
        phones: None,
        is_push_enabled: Some("F".into()),
        email: Some(format!("{name}@example.edu")),
        first_name: None,
        last_name: None,
        is_enrolled: Some("T".into()),
        last_directory_sync: None,
        notes: None,
        real_name: Some(format!("Real {name}")),
        status: Some("active".into()),
        user_name: name.into(),
        created_at: Some(1_600_000_000),
        last_login_time: Some(1_700_000_000),
        auth_methods: AuthMethodCounts::default(),
    }
}

fn counts(inserted: u64, updated: u64, deleted: u64, unchanged: u64) -> ReplaceCounts {
    ReplaceCounts { inserted, updated, deleted, unchanged }
}

async fn all(store: &dyn Store, config: &str) -> Vec<DuoUserRow> {
    store.duo_users(config, &DuoUserFilter::default()).await.expect("read duo users")
}

fn sorted(mut rows: Vec<DuoUserRow>) -> Vec<DuoUserRow> {
    rows.sort_by(|a, b| (&a.user_name, &a.user_id).cmp(&(&b.user_name, &b.user_id)));
    rows
}

registry_test!(replace_mirrors_the_given_rows_per_provisioner, |store| {
    assert_eq!(store.duo_user_load("duoTest").await.unwrap(), None);
    let first = vec![row("duoTest", "DU1", "alice"), row("duoTest", "DU2", "bob"), row("duoTest", "DU3", "carol")];
    assert_eq!(store.replace_duo_users("duoTest", &first).await.unwrap(), counts(3, 0, 0, 0));
    assert_eq!(all(&*store, "duoTest").await, sorted(first.clone()));
    let load = store.duo_user_load("duoTest").await.unwrap().expect("a load record");
    assert_eq!(load.users, 3);
    assert!(load.loaded_at > 1_700_000_000, "epoch seconds: {}", load.loaded_at);

    // Another provisioner's rows, with a user id in common, live beside them untouched.
    let other = vec![row("other", "DU1", "alice-elsewhere")];
    assert_eq!(store.replace_duo_users("other", &other).await.unwrap(), counts(1, 0, 0, 0));

    // Same rows again: nothing written.
    assert_eq!(store.replace_duo_users("duoTest", &first).await.unwrap(), counts(0, 0, 0, 3));

    // bob changes every field, carol is gone, dave is new, alice stays.
    let mut bob = row("duoTest", "DU2", "robert");
    bob.aliases = Some("bob,rob&#x2c;bert".into());
    bob.phones = Some("+15555550100,+15555550101".into());
    bob.is_push_enabled = Some("T".into());
    bob.email = None;
    bob.first_name = Some("Robert".into());
    bob.last_name = Some("Smith".into());
    bob.is_enrolled = Some("F".into());
    bob.last_directory_sync = Some(1_650_000_000);
    bob.notes = Some("moved".into());
    bob.real_name = None;
    bob.status = Some("disabled".into());
    bob.created_at = Some(1_600_000_001);
    bob.last_login_time = None;
    let second = vec![row("duoTest", "DU1", "alice"), bob, row("duoTest", "DU4", "dave")];
    assert_eq!(store.replace_duo_users("duoTest", &second).await.unwrap(), counts(1, 1, 1, 1));
    assert_eq!(all(&*store, "duoTest").await, sorted(second.clone()));
    assert_eq!(all(&*store, "other").await, other);

    // An empty Duo empties the provisioner's rows, and only those.
    assert_eq!(store.replace_duo_users("duoTest", &[]).await.unwrap(), counts(0, 0, 3, 0));
    assert!(all(&*store, "duoTest").await.is_empty());
    assert_eq!(store.duo_user_load("duoTest").await.unwrap().map(|l| l.users), Some(0));
    assert_eq!(all(&*store, "other").await, other);
});

registry_test!(odd_values_round_trip_unchanged, |store| {
    let mut odd = row("duoTest", "DU\u{e9}\u{1F600}", "Zo\u{eb} O'Brien \"q\"");
    odd.aliases = Some("a&#x2c;b,a+b".into());
    odd.notes = Some("line1\nline2\t;'--".repeat(1000));
    odd.first_name = Some(String::new());
    odd.created_at = Some(i64::MIN);
    odd.last_login_time = Some(i64::MAX);
    odd.last_directory_sync = Some(-1);
    odd.status = Some("pending deletion".into());
    let mut blank = row("duoTest", "DU2", "");
    blank.is_push_enabled = None;
    blank.is_enrolled = None;
    blank.created_at = None;
    blank.email = None;
    blank.real_name = None;
    blank.status = None;
    let rows = vec![odd, blank];
    assert_eq!(store.replace_duo_users("duoTest", &rows).await.unwrap(), counts(2, 0, 0, 0));
    assert_eq!(all(&*store, "duoTest").await, sorted(rows.clone()));
    assert_eq!(store.replace_duo_users("duoTest", &rows).await.unwrap(), counts(0, 0, 0, 2));
});

registry_test!(bad_rows_are_refused_and_nothing_is_written, |store| {
    let before = vec![row("duoTest", "DU1", "alice")];
    store.replace_duo_users("duoTest", &before).await.unwrap();
    let loaded = store.duo_user_load("duoTest").await.unwrap();
    let cases: Vec<(Vec<DuoUserRow>, &str)> = vec![
        (vec![row("duoTest", "DU2", "x"), row("duoTest", "DU2", "y")], "DU2"),
        (vec![row("duoTest", "DU3", "x"), row("elsewhere", "DU4", "y")], "DU4"),
        (vec![row("duoTest", "DU5", "nul\u{0}")], "DU5"),
        (vec![row("duoTest", "", "nobody")], "nobody"),
    ];
    for (rows, named) in cases {
        let e = store.replace_duo_users("duoTest", &rows).await.unwrap_err().to_string();
        assert!(e.contains(named) && e.contains("nothing written"), "{e}");
        assert_eq!(all(&*store, "duoTest").await, before);
        assert_eq!(store.duo_user_load("duoTest").await.unwrap(), loaded);
    }
});

async fn report(store: &dyn Store, filter: DuoUserFilter) -> Vec<String> {
    store.duo_users("duoTest", &filter).await.expect("report").into_iter().map(|r| r.user_id).collect()
}

registry_test!(report_filters, |store| {
    // Registry subjects: login ids match Duo usernames ignoring case.
    for (id, login) in [("s1", "Alice"), ("s2", "BOB")] {
        let patch = SubjectPatch { login_id: Some(Some(login.into())), ..person(id) };
        store.upsert_subject(&SubjectKey::local(id), &patch).await.unwrap();
    }
    add_subject(&*store, "no-login").await;
    let mut alice = row("duoTest", "DU1", "alice");
    alice.last_login_time = Some(1_000);
    let mut bob = row("duoTest", "DU2", "bob");
    bob.is_enrolled = Some("F".into());
    bob.status = Some("Bypass".into());
    bob.last_login_time = Some(5_000);
    let mut carol = row("duoTest", "DU3", "carol");
    carol.is_enrolled = Some("F".into());
    carol.status = Some("locked out".into());
    carol.last_login_time = None;
    carol.created_at = Some(500);
    let mut dave = row("duoTest", "DU4", "dave");
    dave.last_login_time = None;
    dave.created_at = Some(9_000);
    let mut erin = row("duoTest", "DU5", "erin");
    erin.last_login_time = None;
    erin.created_at = None;
    erin.is_enrolled = None;
    store.replace_duo_users("duoTest", &[alice, bob, carol, dave, erin]).await.unwrap();
    let store: &dyn Store = &*store;

    assert_eq!(report(store, DuoUserFilter { not_in_registry: true, ..Default::default() }).await, ["DU3", "DU4", "DU5"]);
    assert_eq!(report(store, DuoUserFilter { not_enrolled: true, ..Default::default() }).await, ["DU2", "DU3", "DU5"]);
    assert_eq!(report(store, DuoUserFilter { status: Some("BYPASS".into()), ..Default::default() }).await, ["DU2"]);
    assert_eq!(report(store, DuoUserFilter { status: Some("locked out".into()), ..Default::default() }).await, ["DU3"]);
    // Stale: last login before the cutoff, else created before it, else no time at all.
    assert_eq!(report(store, DuoUserFilter { stale_before: Some(2_000), ..Default::default() }).await, ["DU1", "DU3", "DU5"]);
    assert_eq!(report(store, DuoUserFilter { stale_before: Some(6_000), ..Default::default() }).await, ["DU1", "DU2", "DU3", "DU5"]);
    // Conditions combine.
    let both = DuoUserFilter { not_in_registry: true, not_enrolled: true, stale_before: Some(2_000), ..Default::default() };
    assert_eq!(report(store, both).await, ["DU3", "DU5"]);
    assert!(store.duo_users("nobody", &DuoUserFilter::default()).await.unwrap().is_empty());
});

/// A row with authentication-method counts: `(push, sms, voice, webauthn)`, every other count 0.
fn with_methods(id: &str, name: &str, push: i64, sms: i64, voice: i64, webauthn: i64) -> DuoUserRow {
    let zero = Some(0);
    DuoUserRow {
        auth_methods: AuthMethodCounts {
            push_phone_count: Some(push),
            mobile_otp_phone_count: Some(push),
            push_phone_last_seen: (push > 0).then_some(1_790_000_000),
            sms_phone_count: Some(sms),
            voice_phone_count: Some(voice),
            duo_hardware_token_count: zero,
            hotp_token_count: zero,
            totp_token_count: zero,
            yubikey_otp_token_count: zero,
            webauthn_count: Some(webauthn),
            u2f_count: zero,
        },
        ..row("duoTest", id, name)
    }
}

registry_test!(authentication_method_counts_round_trip_and_filter_reports, |store| {
    let push_user = with_methods("DU1", "ann", 1, 1, 1, 0);
    let sms_only = with_methods("DU2", "bob", 0, 1, 0, 0);
    let voice_only = with_methods("DU3", "cy", 0, 0, 2, 0);
    let key_only = with_methods("DU4", "di", 0, 0, 0, 1);
    let nothing = with_methods("DU5", "ed", 0, 0, 0, 0);
    // Duo did not say: every count unknown, so no "lacks"/"only" filter may claim the user.
    let unknown = row("duoTest", "DU6", "fay");
    let rows = vec![push_user, sms_only, voice_only, key_only, nothing, unknown];
    assert_eq!(store.replace_duo_users("duoTest", &rows).await.unwrap(), counts(6, 0, 0, 0));
    assert_eq!(all(&*store, "duoTest").await, sorted(rows.clone()), "every count, NULLs included, round-trips");
    let mut changed = rows.clone();
    changed[1].auth_methods.push_phone_count = Some(1);
    assert_eq!(store.replace_duo_users("duoTest", &changed).await.unwrap(), counts(0, 1, 0, 5), "a count change is an update");
    store.replace_duo_users("duoTest", &rows).await.unwrap();

    let store: &dyn Store = &*store;
    let filter = |has: &[AuthMethod], lacks: &[AuthMethod], only: &[AuthMethod]| DuoUserFilter {
        has_methods: has.to_vec(),
        lacks_methods: lacks.to_vec(),
        only_methods: only.to_vec(),
        ..Default::default()
    };
    use AuthMethod::*;
    assert_eq!(report(store, filter(&[Sms], &[], &[])).await, ["DU1", "DU2"]);
    assert_eq!(report(store, filter(&[Sms], &[Push], &[])).await, ["DU2"]);
    assert_eq!(report(store, filter(&[], &[Push], &[])).await, ["DU2", "DU3", "DU4", "DU5"], "unknown is not 'lacks'");
    assert_eq!(report(store, filter(&[], &[], &[Sms, Voice])).await, ["DU2", "DU3"], "who SMS and calls alone let in");
    assert_eq!(report(store, filter(&[], &[], &[Webauthn])).await, ["DU4"]);
    assert_eq!(report(store, filter(&[Push, Webauthn], &[], &[])).await, Vec::<String>::new());
});

/// The concrete stores, for the tests that need raw SQL (the view, an injected failure).
pub(crate) mod raw {
    use std::sync::atomic::{AtomicU32, Ordering};

    use duoprov_registry::postgres::PostgresStore;
    use duoprov_registry::sqlite::SqliteStore;
    use duoprov_registry::Store;

    static COUNTER: AtomicU32 = AtomicU32::new(0);

    pub enum Raw {
        /// The store, and its folder (kept until the test ends).
        Sqlite(SqliteStore, #[allow(dead_code)] tempfile::TempDir),
        Postgres(PostgresStore),
    }

    impl Raw {
        pub async fn sqlite() -> Raw {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("registry.db").display());
            Raw::Sqlite(duoprov_registry::sqlite::connect(&url).await.expect("open SQLite"), dir)
        }

        pub async fn postgres(test: &str) -> Option<Raw> {
            let url = match std::env::var("DUOPROV_TEST_POSTGRES_URL") {
                Ok(u) if !u.is_empty() => u,
                _ => {
                    if std::env::var("DUOPROV_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
                        panic!("DUOPROV_TEST_POSTGRES_URL is not set but DUOPROV_REQUIRE_EXTERNAL=1");
                    }
                    crate::support::skipped(&format!("the PostgreSQL half of {test}: DUOPROV_TEST_POSTGRES_URL is not set"));
                    return None;
                }
            };
            let schema = format!("t_{}_{}_{}", test, std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
            match duoprov_registry::postgres::connect(&url, None, Some(&schema)).await {
                Ok(store) => Some(Raw::Postgres(store)),
                // Never print the URL: it carries the test role's password.
                Err(e) => panic!("cannot open the PostgreSQL test registry: {e}"),
            }
        }

        pub fn store(&self) -> &dyn Store {
            match self {
                Raw::Sqlite(s, _) => s as &dyn Store,
                Raw::Postgres(s) => s as &dyn Store,
            }
        }

        pub fn is_postgres(&self) -> bool {
            matches!(self, Raw::Postgres(_))
        }

        pub async fn execute(&self, sql: &'static str) {
            match self {
                Raw::Sqlite(s, _) => sqlx::raw_sql(sql).execute(s.pool()).await.map(|_| ()),
                Raw::Postgres(s) => sqlx::raw_sql(sql).execute(s.pool()).await.map(|_| ()),
            }
            .expect("raw SQL");
        }

        /// Runs one statement, returning how many rows it gave.
        pub async fn rows_of(&self, sql: String) -> usize {
            let result = match self {
                Raw::Sqlite(s, _) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())).fetch_all(s.pool()).await.map(|r| r.len()),
                Raw::Postgres(s) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())).fetch_all(s.pool()).await.map(|r| r.len()),
            };
            result.unwrap_or_else(|e| panic!("{e}\n{sql}"))
        }

        /// The column names of the first row `sql` gives.
        pub async fn column_names(&self, sql: &'static str) -> Vec<String> {
            use sqlx::{Column, Row};
            let names = match self {
                Raw::Sqlite(s, _) => sqlx::raw_sql(sql)
                    .fetch_all(s.pool())
                    .await
                    .map(|rows| rows[0].columns().iter().map(|c| c.name().to_owned()).collect()),
                Raw::Postgres(s) => sqlx::raw_sql(sql)
                    .fetch_all(s.pool())
                    .await
                    .map(|rows| rows[0].columns().iter().map(|c| c.name().to_owned()).collect()),
            };
            names.unwrap_or_else(|e| panic!("{e}\n{sql}"))
        }

        /// `(user_id, user_name, subject_id)` from the documented view.
        pub async fn view(&self, config: &str) -> Vec<(String, String, Option<String>)> {
            let sql = "SELECT user_id, user_name, subject_id FROM duo_user_report WHERE config_id = $1 ORDER BY user_id";
            match self {
                Raw::Sqlite(s, _) => sqlx::query_as(sql).bind(config).fetch_all(s.pool()).await,
                Raw::Postgres(s) => sqlx::query_as(sql).bind(config).fetch_all(s.pool()).await,
            }
            .expect("read the view")
        }
    }

    #[macro_export]
    macro_rules! raw_test {
        ($name:ident, |$raw:ident| $body:block) => {
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                async fn body($raw: raw::Raw) $body

                #[tokio::test]
                async fn sqlite() {
                    body(raw::Raw::sqlite().await).await;
                }

                #[tokio::test]
                async fn postgres() {
                    if let Some(r) = raw::Raw::postgres(stringify!($name)).await {
                        body(r).await;
                    }
                }
            }
        };
    }
}

crate::raw_test!(a_load_failing_midway_leaves_the_previous_rows, |raw| {
    let store = raw.store();
    // 2 500 rows: three batches of inserts.
    let before: Vec<DuoUserRow> = (0..2500).map(|i| row("duoTest", &format!("DU{i:05}"), &format!("user{i:05}"))).collect();
    assert_eq!(store.replace_duo_users("duoTest", &before).await.unwrap(), counts(2500, 0, 0, 0));
    let loaded = store.duo_user_load("duoTest").await.unwrap();

    // The next load deletes 500, changes 1 000, adds 1 500 — and the very last new row is refused by
    // the database, after the deletes and two batches of writes have gone through.
    if raw.is_postgres() {
        raw.execute(
            "CREATE FUNCTION refuse_dufail() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.user_id = 'DUFAIL' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse_dufail BEFORE INSERT ON duo_user FOR EACH ROW EXECUTE FUNCTION refuse_dufail();",
        )
        .await;
    } else {
        raw.execute(
            "CREATE TRIGGER refuse_dufail BEFORE INSERT ON duo_user WHEN NEW.user_id = 'DUFAIL' \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .await;
    }
    let mut next: Vec<DuoUserRow> = before[500..].to_vec();
    for r in next.iter_mut().take(1000) {
        r.status = Some("disabled".into());
        r.last_login_time = Some(1_800_000_000);
    }
    next.extend((2500..3999).map(|i| row("duoTest", &format!("DU{i:05}"), &format!("user{i:05}"))));
    next.push(row("duoTest", "DUFAIL", "zz-fails"));
    let e = store.replace_duo_users("duoTest", &next).await.unwrap_err().to_string();
    assert!(e.contains("injected failure") && e.contains("DUFAIL"), "{e}");
    assert_eq!(all(store, "duoTest").await, before, "the previous rows are intact");
    assert_eq!(store.duo_user_load("duoTest").await.unwrap(), loaded);

    // Without the fault the same load goes through, exactly.
    if raw.is_postgres() {
        raw.execute("DROP TRIGGER refuse_dufail ON duo_user").await;
    } else {
        raw.execute("DROP TRIGGER refuse_dufail").await;
    }
    assert_eq!(store.replace_duo_users("duoTest", &next).await.unwrap(), counts(1500, 1000, 500, 1000));
    assert_eq!(all(store, "duoTest").await, sorted(next));
});

crate::raw_test!(the_report_view_joins_registry_subjects_ignoring_case, |raw| {
    let store = raw.store();
    let patch = SubjectPatch { login_id: Some(Some("ALICE".into())), ..person("Alice") };
    store.upsert_subject(&SubjectKey::local("a1"), &patch).await.unwrap();
    store
        .replace_duo_users("duoTest", &[row("duoTest", "DU1", "alice"), row("duoTest", "DU2", "bob")])
        .await
        .unwrap();
    assert_eq!(
        raw.view("duoTest").await,
        [("DU1".to_owned(), "alice".to_owned(), Some("a1".to_owned())), ("DU2".to_owned(), "bob".to_owned(), None)]
    );
});

/// The SQL statements of the ```sql blocks of a Markdown page.
fn sql_blocks(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in markdown.lines() {
        match (&mut block, line.trim()) {
            (None, "```sql") => block = Some(String::new()),
            (Some(b), "```") => {
                out.extend(b.split(';').map(str::trim).filter(|s| s.lines().any(|l| !l.trim().is_empty() && !l.trim().starts_with("--"))).map(str::to_owned));
                block = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

crate::raw_test!(the_documented_queries_run_on_both_backends, |raw| {
    let store = raw.store();
    let patch = SubjectPatch { login_id: Some(Some("alice".into())), ..person("Alice") };
    store.upsert_subject(&SubjectKey::local("a1"), &patch).await.unwrap();
    let mut bob = row("duoTest", "DU2", "bob");
    bob.is_enrolled = Some("F".into());
    bob.last_login_time = Some(1_000);
    store.replace_duo_users("duoTest", &[row("duoTest", "DU1", "alice"), bob]).await.unwrap();
    let statements = sql_blocks(include_str!("../../../../docs/duo-users.md"));
    assert_eq!(statements.len(), 4, "{statements:#?}");
    // The view, every user; not in the registry: bob; not enrolled and stale: bob; the sync-state join.
    let mut counts = Vec::new();
    for sql in statements {
        counts.push(raw.rows_of(sql).await);
    }
    assert_eq!(counts, [2, 1, 1, 2]);
});

crate::raw_test!(grouper_prov_duo_user_has_grouper_columns_in_grouper_order, |raw| {
    let store = raw.store();
    store.replace_duo_users("duoTest", &[with_methods("DU1", "ann", 1, 1, 1, 0)]).await.unwrap();
    let columns = raw.column_names("SELECT * FROM grouper_prov_duo_user").await;
    assert_eq!(
        columns,
        [
            "config_id", "user_id", "aliases", "phones", "is_push_enabled", "email", "first_name", "last_name", "is_enrolled",
            "last_directory_sync", "notes", "real_name", "status", "user_name", "created_at", "last_login_time",
        ],
        "Grouper's sixteen columns (DDL V41), in Grouper's order, and nothing else"
    );
    // SQL written for Grouper runs unchanged.
    let sql = "SELECT user_name FROM grouper_prov_duo_user WHERE config_id = 'duoTest' AND is_enrolled = 'T' \
               AND created_at = 1600000000";
    assert_eq!(raw.rows_of(sql.to_owned()).await, 1);
    let report = raw.column_names("SELECT * FROM duo_user_report").await;
    assert!(report.contains(&"sms_phone_count".to_owned()) && report.contains(&"subject_id".to_owned()), "{report:?}");
});
