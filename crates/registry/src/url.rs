//! Registry URLs: which backend a URL names, and a redacted form safe to print (a password in a
//! PostgreSQL URL never reaches a log, an error or the terminal).

use crate::error::{RegistryError, Result};
use crate::store::Backend;

/// The backend a URL names.
pub fn backend_of(url: &str) -> Result<Backend> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(RegistryError::Url(format!(
            "{:?}: expected sqlite://FILE, sqlite::memory: or postgres://…",
            redact(url)
        )))
    }
}

/// True when the URL carries a password, in any form: `postgres://user:secret@host/db`, or a
/// `password=` query parameter (libpq's spelling, any case).
pub fn has_password(url: &str) -> bool {
    let in_userinfo = userinfo(url).is_some_and(|(_, info)| info.contains(':'));
    let in_query = url.split_once('?').is_some_and(|(_, q)| {
        q.split(['&', '#']).any(|kv| kv.split_once('=').map_or(kv, |(k, _)| k).trim().eq_ignore_ascii_case("password"))
    });
    in_userinfo || in_query
}

fn userinfo(url: &str) -> Option<(usize, &str)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let at = authority.rfind('@')?;
    Some((start, &authority[..at]))
}

/// The URL with any password replaced by `*****`, and any `password=` query value too.
pub fn redact(url: &str) -> String {
    let mut out = match userinfo(url) {
        Some((start, info)) => match info.find(':') {
            Some(colon) => format!("{}{}:*****{}", &url[..start], &info[..colon], &url[start + info.len()..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    };
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let redacted: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=*****"),
                _ => kv.to_owned(),
            })
            .collect();
        out = format!("{head}{}", redacted.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:s3cr3t@h:5432/db"), "postgres://u:*****@h:5432/db");
        assert_eq!(redact("postgres://u@h/db?password=s3cr3t&x=1"), "postgres://u@h/db?password=*****&x=1");
        assert_eq!(redact("sqlite://duoprov.db"), "sqlite://duoprov.db");
        assert!(has_password("postgres://u:p@h/db"));
        assert!(!has_password("postgres://u@h/db"));
        assert!(has_password("postgres://u@h/db?password=s3cr3t"));
        assert!(has_password("postgres://u@h/db?sslmode=require&PASSWORD=s3cr3t"));
        assert!(!has_password("postgres://u@h/db?sslmode=verify-full&sslrootcert=/etc/ca.pem"));
        assert!(!redact("postgres://u:p%40ss@h/db").contains("p%40ss"));
    }

    #[test]
    fn unknown_schemes_are_refused_without_the_password() {
        let e = backend_of("mysql://u:hunter2@h/db").unwrap_err().to_string();
        assert!(e.contains("expected sqlite"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
}
