//! `duoprov emulator`: serves the Duo Admin API emulator until SIGINT or SIGTERM.

use anyhow::Result;

use crate::exit;

pub async fn run(args: duoprov_emulator::cli::EmulatorArgs) -> Result<u8> {
    duoprov_emulator::cli::run(args).await?;
    Ok(exit::OK)
}
