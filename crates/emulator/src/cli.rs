//! `duoprov emulator …`: the command-line arguments ([`EmulatorArgs`], a `clap::Args` the
//! `duoprov` binary flattens into its `emulator` subcommand) and [`run`], which binds, prints
//! `listening on http://IP:PORT` as its first line of standard output, and serves until SIGINT or
//! SIGTERM, saving the state file on the way out. The secret key comes from `--skey`,
//! `--skey-env VAR` or `--skey-file FILE` and is never printed.

use std::io::Write;
use std::path::PathBuf;

use tokio::net::TcpListener;

use crate::Emulator;
use crate::config::{Grants, Integration, Profile, Settings};
use crate::error::Error;

/// Arguments of `duoprov emulator`.
#[derive(Debug, Clone, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub listen: String,
    /// Integration key clients sign with.
    #[arg(long, value_name = "IKEY")]
    pub ikey: String,
    /// Secret key (prefer --skey-env or --skey-file: command lines are visible to other users).
    #[arg(long, value_name = "SKEY")]
    pub skey: Option<String>,
    /// Read the secret key from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub skey_env: Option<String>,
    /// Read the secret key from this file (surrounding whitespace ignored).
    #[arg(long, value_name = "FILE")]
    pub skey_file: Option<PathBuf>,
    /// Grants of the --ikey integration: comma-separated `read`, `write`, `admins` (default all).
    #[arg(long, value_name = "LIST", default_value = "all")]
    pub grants: String,
    /// More integrations: a JSON file `[{"ikey":…,"skey":…,"grants":{"read_resource":true,…}}]`.
    #[arg(long, value_name = "FILE")]
    pub integrations: Option<PathBuf>,
    /// Load the tenant from this JSON file if it exists; save it there atomically on change.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Fault rules, e.g. `seed=1; 429 every=5 on=users.list; latency=200ms p=0.1`.
    #[arg(long, value_name = "SPEC")]
    pub faults: Option<String>,
    /// Settings file (JSON; any subset of the documented settings).
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    /// Settings profile: `evidence` (default: what the evidence about Duo says) or `adverse`
    /// (every open reading taken against duoprov). A settings file's keys override it.
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<Profile>,
    /// Allowed clock skew of request dates, in seconds (default 300).
    #[arg(long, value_name = "SECS")]
    pub clock_skew: Option<u64>,
    /// Multiply every rate limit by this factor (e.g. 10 for fast tests).
    #[arg(long, value_name = "FACTOR")]
    pub rate_scale: Option<f64>,
    /// Calls each rate class accepts at once after being idle (default 5; 1 = no burst).
    #[arg(long, value_name = "N")]
    pub rate_burst: Option<u32>,
    /// Turn rate limiting off.
    #[arg(long)]
    pub no_rate_limits: bool,
    /// Seed for generated ids (deterministic runs).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Host name clients sign with, when it is neither the Host header nor its host part.
    #[arg(long, value_name = "HOST")]
    pub canonical_host: Option<String>,
}

fn secret(args: &EmulatorArgs) -> Result<String, Error> {
    let sources = usize::from(args.skey.is_some())
        + usize::from(args.skey_env.is_some())
        + usize::from(args.skey_file.is_some());
    if sources != 1 {
        return Err(Error::Secret(
            "give exactly one of --skey, --skey-env, --skey-file".into(),
        ));
    }
    let key = if let Some(k) = &args.skey {
        k.clone()
    } else if let Some(var) = &args.skey_env {
        std::env::var(var).map_err(|_| {
            Error::Secret(format!(
                "environment variable {var} is not set or not UTF-8"
            ))
        })?
    } else if let Some(path) = &args.skey_file {
        std::fs::read_to_string(path)
            .map_err(|e| Error::Secret(format!("cannot read {}: {}", path.display(), e.kind())))?
            .trim()
            .to_owned()
    } else {
        String::new()
    };
    if key.is_empty() {
        return Err(Error::Secret("the secret key is empty".into()));
    }
    Ok(key)
}

/// Builds the emulator the arguments describe (without binding).
pub fn build(args: &EmulatorArgs) -> Result<Emulator, Error> {
    let skey = secret(args)?;
    let mut settings = match &args.settings {
        Some(p) => {
            let text = std::fs::read(p).map_err(|source| Error::StateIo {
                path: p.display().to_string(),
                source,
            })?;
            Settings::from_json(&text, args.profile)
                .map_err(|e| Error::Setting(format!("{}: {e}", p.display())))?
        }
        None => Settings::profile(args.profile.unwrap_or_default()),
    };
    if let Some(s) = args.clock_skew {
        settings.clock_skew_secs = s;
    }
    if let Some(f) = args.rate_scale {
        settings.rate_limits.scale = f;
    }
    if let Some(n) = args.rate_burst {
        settings.rate_limits.burst = n;
        settings.rate_limits.burst_fraction = None;
    }
    if args.no_rate_limits {
        settings.rate_limits.enabled = false;
    }
    if args.seed.is_some() {
        settings.id_seed = args.seed;
    }
    if args.canonical_host.is_some() {
        settings.canonical_host.clone_from(&args.canonical_host);
    }
    let grants = Grants::parse_list(&args.grants).map_err(Error::Setting)?;
    let mut b = Emulator::builder()
        .settings(settings)
        .integration(Integration::new(&args.ikey, skey).with_grants(grants));
    if let Some(p) = &args.integrations {
        let text = std::fs::read(p).map_err(|source| Error::StateIo {
            path: p.display().to_string(),
            source,
        })?;
        let more: Vec<Integration> = serde_json::from_slice(&text)
            .map_err(|e| Error::Setting(format!("{}: {}", p.display(), strip_values(&e))))?;
        for i in more {
            b = b.integration(i);
        }
    }
    if let Some(spec) = &args.faults {
        b = b.faults(spec.clone());
    }
    if let Some(p) = &args.state {
        b = b.state_file(p.clone());
    }
    b.build()
}

/// serde_json errors never quote input values, only positions; kept as a function so that stays
/// true if the message format changes.
fn strip_values(e: &serde_json::Error) -> String {
    format!(
        "invalid integrations file at line {} column {}",
        e.line(),
        e.column()
    )
}

/// A future resolving on SIGINT or SIGTERM, with both caught from the moment this returns (made
/// before `listening on` is printed, so a signal sent right after still stops the emulator
/// gracefully, saving its state file).
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let signals = signal(SignalKind::terminate()).ok().zip(signal(SignalKind::interrupt()).ok());
        async move {
            match signals {
                Some((mut term, mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `duoprov emulator`: binds `--listen`, prints `listening on http://IP:PORT` as the first
/// line of standard output, serves until SIGINT/SIGTERM.
pub async fn run(args: EmulatorArgs) -> Result<(), Error> {
    let emulator = build(&args)?;
    let shutdown = shutdown_signal();
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|cause| Error::Bind {
            addr: args.listen.clone(),
            cause,
        })?;
    let addr = listener.local_addr().map_err(|cause| Error::Bind {
        addr: args.listen.clone(),
        cause,
    })?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{addr}");
        let _ = out.flush();
    }
    emulator.serve(listener, shutdown).await
}
