//! Runs the emulator exactly as `duoprov emulator` does, for use before (or without) the
//! `duoprov` binary: `cargo run -p duoprov-emulator --example emulator -- --listen 127.0.0.1:0
//! --ikey DIXXXXXXXXXXXXXXXXXX --skey-env DUO_SKEY`. Prints `listening on http://IP:PORT` first
//! and serves until SIGINT/SIGTERM; exits 1 with the error on stderr if it cannot start.

use clap::Parser;
use duoprov_emulator::cli::{EmulatorArgs, run};

/// A Duo Admin API emulator.
#[derive(Parser)]
#[command(name = "emulator")]
struct Args {
    #[command(flatten)]
    emulator: EmulatorArgs,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args.emulator).await {
        eprintln!("emulator: {e}");
        std::process::exit(1);
    }
}
