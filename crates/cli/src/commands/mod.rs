//! Dispatch from a parsed command line to the command that carries it out, with what commands
//! share: the loaded settings, the output mode and the registry connection.

mod audit;
mod config_show;
mod duo;
#[cfg(feature = "emulator")]
mod emulator;
mod explain;
mod import;
mod init;
mod load_users;
mod probe;
mod registry;
mod sync;
#[cfg(feature = "emulator")]
mod demo;
mod report;
mod run;
mod support_bundle;
mod source;

use anyhow::Result;
use duoprov_registry::{OpenOptions, Store};


use crate::args::{Cli, Command};
use crate::config::{self, Settings};

/// What every command gets.
pub struct Context {
    pub settings: Settings,
    pub json: bool,
}

impl Context {
    /// Opens the registry the settings name. A SQLite registry file must exist already: a
    /// mistyped path would otherwise become a new, empty registry (only `duoprov init` creates one).
    pub async fn store(&self) -> Result<Box<dyn Store>> {
        if duoprov_registry::url::backend_of(&self.settings.registry_url)? == duoprov_registry::Backend::Sqlite
            && let Some(file) = duoprov_registry::sqlite::database_file(&self.settings.registry_url)?
            && !file.exists()
        {
            anyhow::bail!(
                "the SQLite registry {} does not exist; check registry.url (or --registry), or create it with `duoprov init`",
                file.display()
            );
        }
        self.open_store().await
    }

    /// Opens the registry the settings name, creating a SQLite file that does not exist yet
    /// (`demo`, which makes its own).
    pub async fn open_store(&self) -> Result<Box<dyn Store>> {
        let password = match &self.settings.registry_password {
            Some(source) => Some(source.read_private(&source.key("registry", "password"))?),
            None => None,
        };
        let options = OpenOptions { password, schema: None };
        let store = duoprov_registry::open(&self.settings.registry_url, &options).await.map_err(|e| {
            anyhow::anyhow!("cannot open the registry {}: {e}", duoprov_registry::url::redact(&self.settings.registry_url))
        })?;
        Ok(store)
    }
}

/// Runs one command; the result is the process exit code.
pub async fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Init(args) => init::run(&cli.config, args).await,
        #[cfg(feature = "emulator")]
        Command::Emulator(args) => emulator::run(args).await,
        #[cfg(feature = "emulator")]
        Command::Demo => demo::run(cli.json, cli.verbose).await,
        command => {
            let settings = match config::load(&cli.config, cli.registry.as_deref()) {
                Ok(s) => s,
                // `doctor --json` answers in JSON even when there is no configuration to check.
                Err(e) => match &command {
                    Command::Doctor { provisioner, .. } if cli.json => {
                        crate::output::json(&serde_json::json!({
                            "provisioner": provisioner,
                            "ok": false,
                            "checks": [{"check": "configuration", "ok": false, "detail": format!("{e:#}")}],
                        }))?;
                        return Ok(crate::exit::ERROR);
                    }
                    _ => return Err(e),
                },
            };
            let ctx = Context { settings, json: cli.json };
            match command {
                Command::Subject(c) => registry::subject(&ctx, c).await,
                Command::Folder(c) => registry::folder(&ctx, c).await,
                Command::Group(c) => registry::group(&ctx, c).await,
                Command::Member(c) => registry::member(&ctx, c).await,
                Command::Provision(c) => registry::provision(&ctx, c).await,
                Command::Import(args) => import::run(&ctx, args).await,
                Command::Source(c) => source::run(&ctx, c).await,
                Command::Audit(c) => audit::run(&ctx, c).await,
                Command::Config => config_show::run(&ctx),
                Command::SupportBundle(a) => {
                    let args = support_bundle::BundleArgs { output: a.output, logs: a.logs, provisioners: a.provisioners, config: cli.config.clone(), registry: cli.registry.clone() };
                    support_bundle::run(&ctx, args).await
                }
                Command::LoadUsers(args) => load_users::run(&ctx, args).await,
                Command::Report(args) => report::run(&ctx, args).await,
                Command::Plan(a) => sync::plan(&ctx, &a.provisioner, a.out).await,
                Command::Sync(a) => {
                    let args = sync::SyncArgs {
                        provisioner: a.provisioner,
                        incremental: a.incremental,
                        dry_run: a.dry_run,
                        plan: a.plan,
                        approve: a.approve,
                        allow_deletes: a.allow_deletes,
                        object: match (a.group, a.subject) {
                            (Some(name), _) => Some(duoprov_sync::ObjectTarget::Group { name }),
                            (None, Some(reference)) => Some(duoprov_sync::ObjectTarget::Subject { reference }),
                            (None, None) => None,
                        },
                        log_json: cli.log_format == crate::args::LogFormat::Json,
                    };
                    sync::sync(&ctx, args).await
                }
                Command::Explain(a) => explain::run(&ctx, a).await,
                Command::Status { provisioner } => sync::status(&ctx, provisioner.as_deref()).await,
                Command::Doctor { provisioner, check_write, probe } => sync::doctor(&ctx, &provisioner, check_write, probe).await,
                Command::Run(a) => {
                    if let Some(addr) = a.listen {
                        ctx.settings.daemon.check_listen("--listen", addr)?;
                    }
                    let args = run::RunArgs {
                        provisioners: a.provisioners,
                        listen: a.listen,
                        shutdown_grace: std::time::Duration::from_secs(a.shutdown_grace),
                    };
                    run::run(&ctx, args).await
                }
                Command::Init(_) => unreachable!("handled above"),
                #[cfg(feature = "emulator")]
                Command::Emulator(_) | Command::Demo => unreachable!("handled above"),
            }
        }
    }
}
