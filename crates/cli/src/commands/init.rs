//! `duoprov init`: writes a starter configuration and creates the registry it names. With
//! `--with-emulator` it also writes a `[duo.emulator]` connection and a `duoTest` provisioner, a
//! generated secret key in a private file next to the configuration, and prints the exact
//! `duoprov emulator` command that serves that connection, for those without a Duo account.

use std::io::Read as _;
use std::path::Path;

use anyhow::{Context as _, Result, bail};

use crate::config::{self, EMULATOR_IKEY};
use crate::exit;

/// The emulator's secret key file, next to the configuration.
const EMULATOR_SKEY_FILE: &str = "duo-emulator.skey";
/// The emulator's tenant, saved on every change so a restarted emulator keeps what was synced.
const EMULATOR_STATE_FILE: &str = "duo-emulator.json";

pub async fn run(config_path: &Path, args: crate::args::InitArgs) -> Result<u8> {
    duoprov_registry::url::backend_of(&args.registry_url)?;
    if duoprov_registry::url::has_password(&args.registry_url) {
        bail!("--registry-url: holds a password; give the URL without it and set registry.password_env or password_file in the configuration");
    }
    if args.with_emulator && !cfg!(feature = "emulator") {
        bail!("--with-emulator: this duoprov was built without the Duo emulator (cargo feature `emulator`); build it with default features, or run `duoprov init` and configure a real Duo account");
    }
    if config_path.exists() && !args.force {
        // Re-running init is safe: the configuration is kept, and the registry it names is
        // created if it is missing (a registry that exists is opened, never changed).
        let registry = match config::load(config_path, None) {
            Ok(s) => match duoprov_registry::open(&s.registry_url, &Default::default()).await {
                Ok(store) => format!("Its registry ({}, {}) is ready", duoprov_registry::url::redact(&s.registry_url), store.backend()),
                Err(e) => format!("Its registry ({}) cannot be opened: {e:#}", duoprov_registry::url::redact(&s.registry_url)),
            },
            Err(e) => format!("It does not load as a configuration ({e:#})"),
        };
        bail!(
            "{} exists and was left as it is. {registry}. \
             To replace the configuration with a new starter, run `duoprov init --force` (this overwrites the file; the registry's contents are kept)",
            config_path.display()
        );
    }
    let folder = config_path.parent().unwrap_or(Path::new(""));
    let text = if args.with_emulator {
        let skey_path = folder.join(EMULATOR_SKEY_FILE);
        crate::files::write_private(&skey_path, generated_secret_key()?.as_bytes())
            .with_context(|| format!("cannot write {}", skey_path.display()))?;
        config::starter_with_emulator(&args.registry_url, EMULATOR_SKEY_FILE)
    } else {
        config::starter(&args.registry_url)
    };
    std::fs::write(config_path, text).with_context(|| format!("cannot write {}", config_path.display()))?;
    let settings = config::load(config_path, None)?;
    let store = duoprov_registry::open(&settings.registry_url, &Default::default()).await?;
    println!("wrote {}", config_path.display());
    println!("registry ready: {} ({})", duoprov_registry::url::redact(&settings.registry_url), store.backend());
    if args.with_emulator {
        let skey_path = folder.join(EMULATOR_SKEY_FILE);
        let state_path = folder.join(EMULATOR_STATE_FILE);
        println!("wrote {} (the emulator's secret key, readable only by you)", skey_path.display());
        println!("configured [duo.emulator] ({}) and [provisioner.duoTest]", config::EMULATOR_URL);
        println!("start the emulator from this folder and leave it running (append ` &` to run it in the background of this shell):");
        println!(
            "  duoprov emulator --ikey {EMULATOR_IKEY} --skey-file {} --state {}",
            skey_path.display(),
            state_path.display()
        );
    }
    Ok(exit::OK)
}

/// 40 lowercase hexadecimal characters (160 random bits), the length of a Duo secret key.
fn generated_secret_key() -> Result<String> {
    let mut bytes = [0u8; 20];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read random bytes from /dev/urandom for the emulator's secret key")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
