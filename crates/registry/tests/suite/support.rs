//! Opens a fresh registry per test and backend; the `registry_test!` macro turns one async test
//! body into a SQLite test and a PostgreSQL test (and, for `registry_test!(sync …)`, a test of the
//! in-memory sync-state store too).

use std::sync::atomic::{AtomicU32, Ordering};

use duoprov_model::{GroupMember, GroupName, SubjectKey, SubjectPatch};
use duoprov_registry::{NodeAttrs, OpenOptions, Store};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Reports that the running test (or a part of it) did not run, as a `SKIPPED: <test> — <reason>`
/// line on standard error. Written to the stream itself, not through `eprintln!`, so the test
/// harness does not capture it: it shows in `cargo test` output although the test passes.
pub fn skipped(reason: &str) {
    use std::io::Write as _;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {test} — {reason}");
}

pub async fn sqlite() -> Box<dyn Store> {
    duoprov_registry::open("sqlite::memory:", &OpenOptions::default()).await.expect("open in-memory SQLite")
}

/// A store in a schema of its own, or `None` (skip) when no PostgreSQL is configured.
pub async fn postgres(test: &str) -> Option<Box<dyn Store>> {
    let url = match std::env::var("DUOPROV_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            if std::env::var("DUOPROV_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
                panic!("DUOPROV_TEST_POSTGRES_URL is not set but DUOPROV_REQUIRE_EXTERNAL=1");
            }
            skipped(&format!("the PostgreSQL half of {test}: DUOPROV_TEST_POSTGRES_URL is not set"));
            return None;
        }
    };
    // PostgreSQL truncates identifiers to 63 bytes: a long test name must not cut off the
    // process id and counter that keep each run's schema its own.
    let short: String = test.chars().take(40).collect();
    let schema = format!("t_{}_{}_{}", short, std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
    let options = OpenOptions { schema: Some(schema), ..Default::default() };
    match duoprov_registry::open(&url, &options).await {
        Ok(store) => Some(store),
        // Never print the URL: it carries the test role's password.
        Err(e) => panic!("cannot open the PostgreSQL test registry: {e}"),
    }
}

#[macro_export]
macro_rules! registry_test {
    // A test of the sync-state role alone: it also runs on the in-memory `MemorySyncStore`, so
    // all three implementations pass the same contract.
    (sync $name:ident, |$store:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn body($store: Box<dyn duoprov_registry::SyncStore>) $body

            #[tokio::test]
            async fn sqlite() {
                body($crate::support::sqlite().await).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(store) = $crate::support::postgres(stringify!($name)).await {
                    body(store).await;
                }
            }

            #[tokio::test]
            async fn memory() {
                body(Box::new(duoprov_registry::MemorySyncStore::new())).await;
            }
        }
    };
    ($name:ident, |$store:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn body($store: Box<dyn duoprov_registry::Store>) $body

            #[tokio::test]
            async fn sqlite() {
                body($crate::support::sqlite().await).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(store) = $crate::support::postgres(stringify!($name)).await {
                    body(store).await;
                }
            }
        }
    };
}

pub fn person(name: &str) -> SubjectPatch {
    SubjectPatch { name: Some(Some(name.to_owned())), ..Default::default() }
}

pub fn g(name: &str) -> GroupName {
    GroupName::parse(name).expect("valid group name")
}

pub fn subject(id: &str) -> GroupMember {
    GroupMember::Subject(SubjectKey::local(id))
}

pub fn nested(name: &str) -> GroupMember {
    GroupMember::Group { name: g(name) }
}

pub async fn add_group(store: &dyn Store, name: &str) {
    store.add_group(&g(name), &NodeAttrs::default(), true).await.expect("add group");
}

pub async fn add_subject(store: &dyn Store, id: &str) {
    store.upsert_subject(&SubjectKey::local(id), &person(id)).await.expect("add subject");
}

pub async fn effective_ids(store: &dyn Store, group: &str) -> Vec<String> {
    store.effective_members(&g(group)).await.expect("effective members").into_iter().map(|m| m.subject.id).collect()
}
