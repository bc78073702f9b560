//! TLS to a real PostgreSQL server that accepts only encrypted connections (CI starts a second
//! cluster with `ssl = on`, a CA and a server certificate for `localhost` that `.ci/run`
//! generates, and `hostssl`-only access rules). The URL of its test database (with the role's
//! password, never printed) and the CA files come from `DUOPROV_TEST_POSTGRES_TLS_URL`,
//! `DUOPROV_TEST_POSTGRES_TLS_CA` and `DUOPROV_TEST_POSTGRES_TLS_OTHER_CA`.

use duoprov_registry::OpenOptions;

struct Tls {
    /// `postgres://role:password@localhost:PORT/db`, without TLS parameters.
    url: String,
    ca: String,
    other_ca: String,
}

fn tls_server() -> Option<Tls> {
    match (
        std::env::var("DUOPROV_TEST_POSTGRES_TLS_URL"),
        std::env::var("DUOPROV_TEST_POSTGRES_TLS_CA"),
        std::env::var("DUOPROV_TEST_POSTGRES_TLS_OTHER_CA"),
    ) {
        (Ok(url), Ok(ca), Ok(other_ca)) if !url.is_empty() => Some(Tls { url, ca, other_ca }),
        _ => {
            if std::env::var("DUOPROV_REQUIRE_EXTERNAL").as_deref() == Ok("1") {
                panic!("the TLS PostgreSQL server is not configured (DUOPROV_TEST_POSTGRES_TLS_*) but DUOPROV_REQUIRE_EXTERNAL=1");
            }
            crate::support::skipped("needs the TLS-only PostgreSQL server: DUOPROV_TEST_POSTGRES_TLS_URL is not set");
            None
        }
    }
}

fn with(url: &str, host: &str, query: &str) -> String {
    format!("{}?{query}", url.replacen("@localhost:", &format!("@{host}:"), 1))
}

async fn open_err(url: &str) -> String {
    match duoprov_registry::open(url, &OpenOptions::default()).await {
        Ok(_) => panic!("the connection was expected to fail"),
        Err(e) => e.to_string(),
    }
}

fn no_secret(message: &str, tls: &Tls) {
    let password = tls.url.split_once("://").and_then(|(_, r)| r.split_once('@')).and_then(|(info, _)| info.split_once(':')).map(|(_, p)| p).unwrap_or("");
    assert!(password.is_empty() || !message.contains(password), "the error shows the database password");
}

#[tokio::test]
async fn verify_full_with_the_right_ca_connects_and_reads() {
    let Some(tls) = tls_server() else { return };
    let url = with(&tls.url, "localhost", &format!("sslmode=verify-full&sslrootcert={}", tls.ca));
    let store = duoprov_registry::open(&url, &OpenOptions { schema: Some(format!("tls_ok_{}", std::process::id())), ..Default::default() }).await.expect("verify-full with the right CA");
    assert!(store.provisioner_selection("duoTest").await.unwrap().groups.is_empty());
}

#[tokio::test]
async fn verify_full_with_a_wrong_ca_is_refused_and_names_sslrootcert() {
    let Some(tls) = tls_server() else { return };
    let message = open_err(&with(&tls.url, "localhost", &format!("sslmode=verify-full&sslrootcert={}", tls.other_ca))).await;
    assert!(message.contains("no trusted CA signed") && message.contains("sslrootcert"), "{message}");
    no_secret(&message, &tls);
    // Without sslrootcert the system's CAs apply, and none of them signed the CI server's.
    let message = open_err(&with(&tls.url, "localhost", "sslmode=verify-full")).await;
    assert!(message.contains("no trusted CA signed"), "{message}");
}

#[tokio::test]
async fn verify_full_with_a_wrong_host_name_is_refused_and_says_so() {
    let Some(tls) = tls_server() else { return };
    // The certificate names `localhost`; 127.0.0.1 is the same server under another name.
    let message = open_err(&with(&tls.url, "127.0.0.1", &format!("sslmode=verify-full&sslrootcert={}", tls.ca))).await;
    assert!(message.contains("not valid for the host name 127.0.0.1"), "{message}");
    no_secret(&message, &tls);
    // verify-ca checks the chain only, so the same connection is accepted.
    duoprov_registry::open(&with(&tls.url, "127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={}", tls.ca)), &OpenOptions { schema: Some(format!("tls_ca_{}", std::process::id())), ..Default::default() })
        .await
        .expect("verify-ca with the right CA");
}

#[tokio::test]
async fn disable_against_a_server_that_requires_tls_fails_clearly() {
    let Some(tls) = tls_server() else { return };
    let message = open_err(&with(&tls.url, "localhost", "sslmode=disable")).await;
    assert!(message.contains("requires an encrypted connection") && message.contains("sslmode=disable"), "{message}");
    no_secret(&message, &tls);
}
