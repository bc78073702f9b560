//! `duoprov support-bundle`: one zip file for a support case — versions, the configuration as
//! understood, `status` and `doctor` of each provisioner, the daemon's metrics, and the log files
//! the operator names — with every secret, signature, password, token, e-mail address and phone
//! number redacted ([`Redactor`]). `status` and `doctor` run as child processes of this binary
//! with the same configuration, so the bundle holds exactly what an operator would have seen.
//! The zip is written readable by its owner only.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use regex::{Captures, Regex};
use secrecy::ExposeSecret as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::Context;
use crate::exit;

/// The most of one log file a bundle keeps: its end.
const LOG_TAIL_BYTES: u64 = 8 * 1024 * 1024;
/// How long `status` or `doctor` may take before the bundle notes a timeout instead.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

/// What `duoprov support-bundle` was asked.
pub struct BundleArgs {
    /// Where to write the zip; default `duoprov-support-<UTC time>.zip` here.
    pub output: Option<PathBuf>,
    /// Log files to include (their last 8 MiB, redacted).
    pub logs: Vec<PathBuf>,
    /// Provisioners to report on; default all.
    pub provisioners: Vec<String>,
    /// The configuration file and registry override this run used, handed to the children.
    pub config: PathBuf,
    pub registry: Option<String>,
}

/// Masks what must not leave the site: the configured secrets wherever they appear, HTTP
/// credentials (`Authorization: Basic|Bearer …`), passwords in URLs, e-mail addresses (the domain
/// stays, as in the traffic log) and phone numbers in international form (all but the last two
/// digits), plain or URL-encoded.
pub struct Redactor {
    secrets: Vec<String>,
    authorization: Regex,
    url_password: Regex,
    email: Regex,
    email_encoded: Regex,
    phone: Regex,
    phone_encoded: Regex,
}

impl Redactor {
    /// A redactor for `secrets` (values shorter than four characters are ignored: they would
    /// mask ordinary text without protecting anything).
    pub fn new(secrets: Vec<String>) -> Redactor {
        let mut secrets: Vec<String> = secrets.into_iter().map(|s| s.trim().to_owned()).filter(|s| s.chars().count() >= 4).collect();
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        let re = |p: &str| Regex::new(p).expect("a valid pattern");
        Redactor {
            secrets,
            authorization: re(r#"(?i)(authorization["']?\s*[:=]\s*["']?(?:basic|bearer)\s+)[A-Za-z0-9+/=._~\-]+"#),
            url_password: re(r#"://([^:/@\s"']+):([^@/\s"']+)@"#),
            email: re(r"[A-Za-z0-9._%+\-]+@([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)"),
            email_encoded: re(r"[A-Za-z0-9._+\-]+%40([A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)"),
            phone: re(r"\+\d[\d \-().]{5,}\d"),
            phone_encoded: re(r"%2[Bb]\d{6,}"),
        }
    }

    /// `text` with everything [`Redactor`] names masked.
    pub fn redact(&self, text: &str) -> String {
        let mut t = text.to_owned();
        for s in &self.secrets {
            if t.contains(s.as_str()) {
                t = t.replace(s.as_str(), "[secret redacted]");
            }
        }
        let t = self.authorization.replace_all(&t, "${1}[redacted]");
        let t = self.url_password.replace_all(&t, "://${1}:***@");
        let t = self.email.replace_all(&t, "***@${1}");
        let t = self.email_encoded.replace_all(&t, "***%40${1}");
        let mask = |c: &Captures| mask_digits(&c[0]);
        let t = self.phone.replace_all(&t, mask);
        self.phone_encoded.replace_all(&t, |c: &Captures| format!("%2B{}", mask_digits(&c[0][3..]))).into_owned()
    }
}

/// Every digit of a phone number but the last two replaced by `*`; fewer than seven digits is
/// not a phone number and is kept.
fn mask_digits(s: &str) -> String {
    if s.chars().filter(char::is_ascii_digit).count() < 7 {
        return s.to_owned();
    }
    duoprov_duo::traffic::mask_phone(s)
}

/// Every secret the configuration can reach, read as the commands would (unreadable ones are
/// skipped: they cannot leak what they do not hold).
fn configured_secrets(ctx: &Context) -> Vec<String> {
    let settings = &ctx.settings;
    let mut found = Vec::new();
    for conn in settings.duo.values() {
        if let Ok(s) = conn.secret_key.read("secret key") {
            found.push(s.expose_secret().to_owned());
        }
        if let Some(Ok(s)) = conn.proxy_password.as_ref().map(|p| p.read("proxy password")) {
            found.push(s.expose_secret().to_owned());
        }
    }
    if let Some(Ok(s)) = settings.registry_password.as_ref().map(|p| p.read("registry password")) {
        found.push(s.expose_secret().to_owned());
    }
    if let Some(Ok(s)) = settings.daemon.metrics_token.as_ref().map(|p| p.read("metrics token")) {
        found.push(s.expose_secret().to_owned());
    }
    if let Some(Ok(s)) = settings.daemon.console_token.as_ref().map(|p| p.read("console token")) {
        found.push(s.expose_secret().to_owned());
    }
    found
}

/// Runs this binary with `args` and the same configuration; its exit code and output as text.
async fn child(args: &BundleArgs, command: &[&str]) -> String {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return format!("cannot find duoprov's own executable to run `duoprov {}`: {e}\n", command.join(" ")),
    };
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("--config").arg(&args.config);
    if let Some(r) = &args.registry {
        cmd.arg("--registry").arg(r);
    }
    cmd.args(command).kill_on_drop(true).stdin(std::process::Stdio::null());
    let line = format!("$ duoprov {}\n", command.join(" "));
    match tokio::time::timeout(CHILD_TIMEOUT, cmd.output()).await {
        Ok(Ok(out)) => format!(
            "{line}exit code: {}\n\n--- standard output\n{}\n--- standard error\n{}",
            out.status.code().map_or("none (killed)".to_owned(), |c| c.to_string()),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Ok(Err(e)) => format!("{line}could not run: {e}\n"),
        Err(_) => format!("{line}did not finish within {} s; stopped\n", CHILD_TIMEOUT.as_secs()),
    }
}

/// The running daemon's `/metrics`, or why there is none.
async fn metrics(ctx: &Context) -> String {
    let addr = ctx.settings.daemon.listen;
    let token = match ctx.settings.daemon.read_metrics_token() {
        Ok(t) => t,
        Err(e) => return format!("the metrics token could not be read: {e:#}\n"),
    };
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let auth = token.as_ref().map(|t| format!("Authorization: Bearer {}\r\n", t.expose_secret())).unwrap_or_default();
        stream.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n").as_bytes()).await?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await?;
        std::io::Result::Ok(text)
    };
    match tokio::time::timeout(Duration::from_secs(5), fetch).await {
        Ok(Ok(text)) => match text.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") => body.to_owned(),
            Some((head, _)) => format!("the daemon at {addr} answered /metrics with {}\n", head.lines().next().unwrap_or_default()),
            None => format!("the daemon at {addr} sent no HTTP answer\n"),
        },
        Ok(Err(e)) => format!("no daemon answered at {addr} (daemon.listen): {e}\n"),
        Err(_) => format!("the daemon at {addr} did not answer within 5 s\n"),
    }
}

/// Now in UTC as `20261130-071203`, for a file name.
fn file_stamp() -> String {
    let format = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    time::OffsetDateTime::now_utc().format(&format).unwrap_or_else(|_| "now".to_owned())
}

/// The end of a log file, at most [`LOG_TAIL_BYTES`], starting at a line.
fn log_tail(path: &Path) -> Result<String> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = std::fs::File::open(path).with_context(|| format!("--log {}: cannot open it", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(LOG_TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).with_context(|| format!("--log {}: cannot read it", path.display()))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok(if start > 0 {
        let rest = text.split_once('\n').map(|(_, r)| r).unwrap_or_default();
        format!("[the first {start} bytes of {} left out]\n{rest}", path.display())
    } else {
        text
    })
}

pub async fn run(ctx: &Context, args: BundleArgs) -> Result<u8> {
    let names: Vec<String> = if args.provisioners.is_empty() {
        ctx.settings.provisioners.keys().cloned().collect()
    } else {
        for n in &args.provisioners {
            if !ctx.settings.provisioners.contains_key(n) {
                bail!("no provisioner [provisioner.{n}] in the configuration");
            }
        }
        args.provisioners.clone()
    };
    let output = match &args.output {
        Some(p) => p.clone(),
        None => PathBuf::from(format!("duoprov-support-{}.zip", file_stamp())),
    };
    if output.exists() {
        bail!("{} exists already; remove it or name another file with --output", output.display());
    }
    // Log files are read first: a wrong path fails before anything runs.
    let mut logs = Vec::new();
    for path in &args.logs {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "log".to_owned());
        logs.push((format!("logs/{name}"), log_tail(path)?));
    }

    let redactor = Redactor::new(configured_secrets(ctx));
    let mut files: Vec<(String, String)> = Vec::new();
    files.push((
        "version.txt".into(),
        format!(
            "duoprov {}\nbuilt with the emulator: {}\nplatform: {} {}\nbundle made: {}\nprovisioners: {}\n",
            env!("CARGO_PKG_VERSION"),
            cfg!(feature = "emulator"),
            std::env::consts::OS,
            std::env::consts::ARCH,
            crate::output::when(duoprov_sync::now_ms(), duoprov_sync::now_ms()),
            names.join(", ")
        ),
    ));
    files.push(("configuration.txt".into(), super::config_show::text(&super::config_show::understood(&ctx.settings))));
    for name in &names {
        files.push((format!("status-{name}.txt"), child(&args, &["status", name]).await));
        files.push((format!("doctor-{name}.txt"), child(&args, &["doctor", name]).await));
    }
    files.push(("metrics.txt".into(), metrics(ctx).await));
    files.extend(logs);
    let listing: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    let readme = format!(
        "duoprov support bundle\n\nFiles: README.txt, {}.\n\nRedacted in every file: Duo secret keys, database, proxy and metrics-token secrets wherever they\nappear; HTTP Authorization credentials (Duo signatures); passwords in URLs; e-mail addresses\n(shown as ***@domain); phone numbers in international form (all but the last two digits).\nUser names, group names and Duo ids are kept: support needs them. Look the files over before\nsending them.\n",
        listing.join(", ")
    );
    files.insert(0, ("README.txt".into(), readme));

    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).unix_permissions(0o600);
    for (name, text) in &files {
        zip.start_file(name.as_str(), options).with_context(|| format!("writing {name} into the bundle"))?;
        zip.write_all(redactor.redact(text).as_bytes()).with_context(|| format!("writing {name} into the bundle"))?;
    }
    let bytes = zip.finish().context("finishing the bundle")?.into_inner();
    crate::files::write_private(&output, &bytes).with_context(|| format!("cannot write {}", output.display()))?;
    if ctx.json {
        crate::output::json(&serde_json::json!({ "bundle": output.display().to_string(), "files": listing, "bytes": bytes.len() }))?;
    } else {
        println!(
            "Support bundle written to {} ({} files, {} KiB, readable by you only). Secrets, signatures, passwords, e-mail addresses and phone numbers are redacted; look it over before sending it.",
            output.display(),
            files.len(),
            bytes.len().div_ceil(1024)
        );
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_credentials_emails_and_phone_numbers_are_masked_and_the_rest_kept() {
        let r = Redactor::new(vec!["Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep".into(), "abc".into()]);
        let text = "secret Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep in a line\n\
                    Authorization: Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6YWJjZGVm\n\
                    {\"authorization\": \"Bearer k3Xq9v2LmZ7pW4tR8sY1uB6nD0cF5hJa\"}\n\
                    postgres://duoprov:s3cret-pass@db.example.edu/duoprov\n\
                    email=jane.doe%40example.edu&phone=%2B15555550123\n\
                    {\"email\":\"jane.doe@example.edu\",\"number\":\"+1 (555) 555-0123\"}\n\
                    run 42 at 2026-11-30 07:12:03, user DU123456789 alice in staff, abc kept";
        let out = r.redact(text);
        for gone in ["Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep", "RElXSjhY", "k3Xq9v2L", "s3cret-pass", "jane.doe", "5555550123", "555-0123"] {
            assert!(!out.contains(gone), "{gone} left in:\n{out}");
        }
        for kept in [
            "[secret redacted]",
            "Authorization: Basic [redacted]",
            "postgres://duoprov:***@db.example.edu",
            "***%40example.edu",
            "***@example.edu",
            "%2B*********23",
            "+* (***) ***-**23",
            "run 42 at 2026-11-30 07:12:03, user DU123456789 alice in staff, abc kept",
        ] {
            assert!(out.contains(kept), "{kept} missing in:\n{out}");
        }
    }
}
