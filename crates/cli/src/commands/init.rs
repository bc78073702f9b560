//! `duoprov init`: writes a starter configuration and creates the registry it names.

use std::path::Path;

use anyhow::{Context as _, Result, bail};

use crate::config;
use crate::exit;

pub async fn run(config_path: &Path, args: crate::args::InitArgs) -> Result<u8> {
    duoprov_registry::url::backend_of(&args.registry_url)?;
    if duoprov_registry::url::has_password(&args.registry_url) {
        bail!("--registry-url: holds a password; give the URL without it and set registry.password_env or password_file in the configuration");
    }
    if config_path.exists() && !args.force {
        bail!("{} exists; pass --force to overwrite it", config_path.display());
    }
    std::fs::write(config_path, config::starter(&args.registry_url))
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let settings = config::load(config_path, None)?;
    let store = duoprov_registry::open(&settings.registry_url, &Default::default()).await?;
    println!("wrote {}", config_path.display());
    println!("registry ready: {} ({:?})", duoprov_registry::url::redact(&settings.registry_url), store.backend());
    Ok(exit::OK)
}
