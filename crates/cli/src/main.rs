//! The `duoprov` binary: parses the command line, sets up logging, loads the configuration, runs
//! one command and turns its outcome into an exit code (0 success, 1 usage, configuration or
//! input error, 2 partial failure, 3 refused by a safety check).

mod args;
mod commands;
mod config;
mod daemon;
mod files;
#[cfg(test)]
mod config_props;
mod output;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use args::{Cli, LogFormat};

/// Exit codes of DESIGN §4.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const PARTIAL: u8 = 2;
    pub const REFUSED: u8 = 3;
}

/// Logs on standard error at the verbosity asked for. With `traffic_lines` (the demo, text
/// logs), traffic-log entries go to standard output instead, as the bare lines of
/// [`output::TrafficLines`], between the command's own output.
fn init_logging(format: LogFormat, verbose: u8, traffic_lines: bool) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // The HTTP traffic log is shown whenever a provisioner turns it on (log_http).
    let default = format!("{default},{}=info", duoprov_duo::traffic::TRAFFIC_TARGET);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
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
    let traffic_lines = matches!(cli.command, args::Command::Demo) && !cli.json;
    init_logging(cli.log_format, cli.verbose, traffic_lines);
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
