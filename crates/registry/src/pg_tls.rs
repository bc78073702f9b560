//! TLS to a PostgreSQL registry (and to a SQL source's database, with the same rules). The registry decides who is in which Duo group, and Duo groups
//! carry MFA policy, so its traffic is protected by default: the URL takes libpq's parameters
//! (`sslmode` = disable | prefer | require | verify-ca | verify-full, `sslrootcert`, `sslcert`,
//! `sslkey`, or the `PGSSLMODE`… variables), and when neither says, a host that is not this
//! machine gets `verify-full` (encrypted, the certificate chain checked against the trusted CAs
//! — the system's, or `sslrootcert` — and the host name checked), while a loopback host or a
//! Unix socket keeps libpq's `prefer`. Connection failures are explained in people's words with
//! the mode and the setting that fixes them, never with the URL (which may hold a password).

use std::net::IpAddr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// Where the mode in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeSource {
    /// `sslmode=` in the registry URL.
    Url,
    /// The `PGSSLMODE` environment variable.
    Environment,
    /// duoprov's default for a host on this machine (loopback or a Unix socket): `prefer`.
    LocalDefault,
    /// duoprov's default for any other host: `verify-full`.
    RemoteDefault,
}

/// The TLS mode a registry connection uses, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsChoice {
    /// libpq's name of the mode (`verify-full`, …).
    pub mode: &'static str,
    pub source: ModeSource,
    /// The host connected to.
    pub host: String,
}

impl TlsChoice {
    /// One line for `duoprov doctor` and logs.
    pub fn describe(&self) -> String {
        let why = match self.source {
            ModeSource::Url => "set by sslmode in registry.url",
            ModeSource::Environment => "set by PGSSLMODE",
            ModeSource::LocalDefault => "duoprov's default for a host on this machine",
            ModeSource::RemoteDefault => "duoprov's default for a remote host",
        };
        let meaning = match self.mode {
            "disable" => "no encryption",
            "allow" | "prefer" => "encrypted only if the server offers it, certificate not checked",
            "require" => "encrypted, certificate not checked",
            "verify-ca" => "encrypted, certificate chain checked, host name not checked",
            _ => "encrypted, certificate chain and host name checked",
        };
        format!("sslmode={} to {} ({meaning}; {why})", self.mode, self.host)
    }
}

fn mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// Whether `host` is this machine: a loopback name or address, or a Unix socket directory.
pub fn is_local_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.is_empty() || host.starts_with('/') || bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether the URL's query names `sslmode` (or its alias `ssl-mode`).
fn url_sets_mode(url: &str) -> bool {
    url.split_once('?').is_some_and(|(_, q)| {
        q.split('&').any(|kv| {
            let key = kv.split_once('=').map_or(kv, |(k, _)| k);
            key.eq_ignore_ascii_case("sslmode") || key.eq_ignore_ascii_case("ssl-mode")
        })
    })
}

/// Applies duoprov's default where neither the URL nor the environment chose a mode, and says
/// which mode is in force. Any PostgreSQL connection duoprov makes (the registry, a SQL source)
/// goes through here.
pub fn choose(url: &str, options: PgConnectOptions) -> (PgConnectOptions, TlsChoice) {
    let host = options.get_host().to_owned();
    let (options, source) = if url_sets_mode(url) {
        (options, ModeSource::Url)
    } else if std::env::var_os("PGSSLMODE").is_some_and(|v| !v.is_empty()) {
        (options, ModeSource::Environment)
    } else if is_local_host(&host) {
        (options.ssl_mode(PgSslMode::Prefer), ModeSource::LocalDefault)
    } else {
        (options.ssl_mode(PgSslMode::VerifyFull), ModeSource::RemoteDefault)
    };
    let mode = mode_name(options.get_ssl_mode());
    (options, TlsChoice { mode, source, host })
}

/// The TLS mode a registry URL would use (for `duoprov doctor`), without connecting.
pub fn tls_choice(url: &str) -> Option<TlsChoice> {
    use std::str::FromStr;
    // sqlx parses any URL as PostgreSQL options; a SQLite registry has no TLS to describe.
    if !matches!(crate::url::backend_of(url), Ok(crate::Backend::Postgres)) {
        return None;
    }
    let options = PgConnectOptions::from_str(url).ok()?;
    Some(choose(url, options).1)
}

/// Explains a failed connection: what went wrong with TLS, and the fix. `None` when the error
/// is not about TLS.
pub(crate) fn explain(error: &sqlx::Error, choice: &TlsChoice) -> Option<String> {
    explain_for(error, choice, "registry.url")
}

/// [`explain`] for a connection configured by `setting` (`source.grouper.url`), which the fixes
/// name.
pub fn explain_for(error: &sqlx::Error, choice: &TlsChoice, setting: &str) -> Option<String> {
    // The chain of sources says what rustls or the server said; the URL is never part of it.
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    let lower = text.to_ascii_lowercase();
    let host = &choice.host;
    let mode = choice.mode;
    let fix_ca = format!("set sslrootcert=/path/to/ca.pem in {setting} to the CA that signed the server's certificate (or install that CA in the system's trust store)");
    Some(if lower.contains("unknownissuer") || lower.contains("unknown issuer") || lower.contains("badsignature") || lower.contains("self-signed") || lower.contains("selfsigned") {
        format!("the PostgreSQL server at {host} presented a certificate that no trusted CA signed (sslmode={mode}); {fix_ca}")
    } else if lower.contains("notvalidforname") || lower.contains("not valid for name") || lower.contains("certificate is not valid for") {
        format!(
            "the PostgreSQL server's certificate is not valid for the host name {host} (sslmode={mode}); connect with the name the certificate was issued for, or use sslmode=verify-ca to check the CA only"
        )
    } else if lower.contains("expired") || lower.contains("notvalidyet") {
        format!("the PostgreSQL server at {host} presented an expired (or not yet valid) certificate (sslmode={mode}); renew the server's certificate")
    } else if lower.contains("pg_hba.conf") && (lower.contains("no encryption") || lower.contains("ssl off")) {
        format!("the PostgreSQL server at {host} requires an encrypted connection but sslmode={mode} does not encrypt; remove sslmode=disable from {setting} (or use sslmode=verify-full)")
    } else if lower.contains("server does not support tls") || lower.contains("server does not support ssl") || lower.contains("tls not supported") {
        format!("the PostgreSQL server at {host} does not offer TLS but sslmode={mode} requires it; turn on ssl in the server's postgresql.conf, or (only on a trusted network) set sslmode=prefer")
    } else if lower.contains("sslrootcert") || lower.contains("root cert") || lower.contains("pem") || lower.contains("certificate") || lower.contains("tls") || lower.contains("ssl") {
        format!("TLS to the PostgreSQL server at {host} failed (sslmode={mode}): {}", first_line(&text))
    } else {
        return None;
    })
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn choice(url: &str) -> TlsChoice {
        choose(url, PgConnectOptions::from_str(url).unwrap()).1
    }

    #[test]
    fn a_remote_host_defaults_to_verify_full_and_a_local_one_to_prefer() {
        // PGSSLMODE would override both; the test environment does not set it.
        if std::env::var_os("PGSSLMODE").is_some() {
            return;
        }
        assert_eq!(choice("postgres://u@db.example.edu/r").mode, "verify-full");
        assert_eq!(choice("postgres://u@db.example.edu/r").source, ModeSource::RemoteDefault);
        assert_eq!(choice("postgres://u@10.1.2.3:5432/r").mode, "verify-full");
        for local in ["postgres://u@localhost/r", "postgres://u@127.0.0.1/r", "postgres://u@[::1]/r"] {
            let c = choice(local);
            assert_eq!((c.mode, c.source), ("prefer", ModeSource::LocalDefault), "{local}");
        }
        let c = choice("postgres://u@db.example.edu/r?sslmode=require");
        assert_eq!((c.mode, c.source), ("require", ModeSource::Url));
        let c = choice("postgres://u@127.0.0.1/r?sslmode=verify-full&sslrootcert=/x/ca.pem");
        assert_eq!((c.mode, c.source), ("verify-full", ModeSource::Url));
    }

    #[test]
    fn the_description_names_mode_meaning_and_origin() {
        let c = TlsChoice { mode: "verify-full", source: ModeSource::RemoteDefault, host: "db.example.edu".into() };
        assert_eq!(c.describe(), "sslmode=verify-full to db.example.edu (encrypted, certificate chain and host name checked; duoprov's default for a remote host)");
    }

    #[test]
    fn a_sqlite_registry_has_no_tls_choice() {
        assert_eq!(tls_choice("sqlite://registry.db"), None);
        assert_eq!(tls_choice("sqlite::memory:"), None);
        assert!(tls_choice("postgres://duoprov@db.example.edu/duoprov").is_some());
    }

    #[test]
    fn local_hosts() {
        for h in ["localhost", "127.0.0.1", "127.8.9.1", "::1", "[::1]", "/var/run/postgresql", ""] {
            assert!(is_local_host(h), "{h}");
        }
        for h in ["db.example.edu", "10.0.0.1", "127.example.edu", "localhost.example.edu"] {
            assert!(!is_local_host(h), "{h}");
        }
    }
}
