//! The `duoprov` binary: parses the command line, sets up logging, loads the configuration, runs
//! one command and turns its outcome into an exit code (0 success, 1 usage, configuration or
//! input error, 2 partial failure, 3 refused by a safety check).

mod args;
mod commands;
mod config;
mod source_config;
mod files;
#[cfg(test)]
mod config_props;
mod output;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use args::{Cli, LogFormat};

/// Exit codes (documented in docs/cli.md).
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const PARTIAL: u8 = 2;
    pub const REFUSED: u8 = 3;
}

/// The log filter when RUST_LOG is not set. duoprov's own crates (every target starting with
/// `duoprov`) follow -v; the libraries underneath (database, HTTP, TLS) stay at warnings until
/// -vvvv, so -vv shows duoprov's debug lines without their internals. The daemon (`run`) logs
/// its own lifecycle and one line per run at the default level.
fn default_filter(verbose: u8, quiet: bool, daemon: bool) -> String {
    let (libraries, own) = match (quiet, verbose) {
        (true, _) => ("error", "error"),
        (false, 0) => ("warn", "warn"),
        (false, 1) => ("warn", "info"),
        (false, 2) => ("warn", "debug"),
        (false, 3) => ("warn", "trace"),
        (false, _) => ("trace", "trace"),
    };
    let mut filter = format!("{libraries},duoprov={own}");
    if daemon && !quiet && verbose == 0 {
        filter.push_str(",duoprov_daemon=info");
    }
    // The HTTP traffic log is shown whenever a provisioner turns it on (log_http).
    filter.push_str(&format!(",{}=info", duoprov_duo::traffic::TRAFFIC_TARGET));
    filter
}

/// Logs on standard error with `filter` (unless RUST_LOG is set). With `traffic_lines` (the
/// demo, text logs), traffic-log entries go to standard output instead, as the bare lines of
/// [`output::TrafficLines`], between the command's own output.
fn init_logging(format: LogFormat, filter: String, traffic_lines: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    if traffic_lines && format == LogFormat::Text {
        use tracing_subscriber::filter::{LevelFilter, Targets};
        use tracing_subscriber::prelude::*;
        let target = duoprov_duo::traffic::TRAFFIC_TARGET;
        let filter = match format!("{target}=off").parse() {
            Ok(directive) => filter.add_directive(directive),
            Err(_) => filter,
        };
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter);
        let traffic = tracing_subscriber::fmt::layer()
            .event_format(output::TrafficLines)
            .with_writer(anstream::stdout)
            .with_filter(Targets::new().with_target(target, LevelFilter::INFO));
        tracing_subscriber::registry().with(logs).with(traffic).init();
        return;
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::ERROR } else { exit::OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let daemon = matches!(cli.command, args::Command::Run(_));
    #[cfg(feature = "emulator")]
    let traffic_lines = matches!(cli.command, args::Command::Demo) && !cli.json;
    #[cfg(not(feature = "emulator"))]
    let traffic_lines = false;
    init_logging(cli.log_format, default_filter(cli.verbose, cli.quiet, daemon), traffic_lines);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::default_filter;

    #[test]
    fn debug_verbosity_shows_duoprov_lines_and_keeps_library_internals_at_warnings() {
        assert!(default_filter(2, false, false).starts_with("warn,duoprov=debug"));
        assert!(default_filter(4, false, false).starts_with("trace,duoprov=trace"));
        assert!(default_filter(0, true, false).starts_with("error,duoprov=error"));
        assert!(default_filter(0, false, true).contains("duoprov_daemon=info"), "the daemon's run lines at the default level");
        assert!(!default_filter(0, false, false).contains("duoprov_daemon"));
    }
}
