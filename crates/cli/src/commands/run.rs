//! `duoprov run`: builds the daemon (`duoprov-daemon`) from the configuration — the registry, and
//! for each provisioner its Duo client (reporting its calls to the status page, with the
//! recorded probe applied), sync settings and schedule, each source with a `schedule`, and what
//! the console shows of it (its settings as `duoprov config` shows them; the console token) — and
//! serves it until stopped.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use duoprov_daemon::Daemon;
use duoprov_duo::DuoClient;
use duoprov_registry::Store;

use super::Context;
use super::duo::duo_config;
use super::probe::use_recorded;
use super::sync::settings_of;
use crate::exit;

/// What `duoprov run` was asked.
pub struct RunArgs {
    pub provisioners: Vec<String>,
    pub listen: Option<std::net::SocketAddr>,
    pub shutdown_grace: Duration,
}

pub async fn run(ctx: &Context, args: RunArgs) -> Result<u8> {
    let names: Vec<String> = if args.provisioners.is_empty() {
        ctx.settings.provisioners.values().filter(|p| p.schedule.enabled).map(|p| p.name.clone()).collect()
    } else {
        for n in &args.provisioners {
            if !ctx.settings.provisioners.contains_key(n) {
                bail!("no provisioner [provisioner.{n}] in the configuration");
            }
        }
        args.provisioners.clone()
    };
    if names.is_empty() {
        bail!("no provisioner to run: the configuration has no [provisioner.NAME] with schedule.enabled = true");
    }
    let store: Arc<dyn Store> = Arc::from(ctx.store().await?);
    let max_poll = names.iter().map(|n| ctx.settings.provisioners[n].schedule.poll_interval).max().unwrap_or(Duration::from_secs(2));
    let registry = duoprov_registry::url::redact(&ctx.settings.registry_url);
    let mut daemon = Daemon::new(store.clone(), &registry, ctx.settings.daemon.lock_retry, max_poll).await?;
    daemon.keep(ctx.settings.daemon.keep);
    for name in &names {
        let p = &ctx.settings.provisioners[name];
        let conn = ctx.settings.duo.get(&p.duo).with_context(|| format!("provisioner.{name}.duo: no [duo.{}]", p.duo))?;
        let mut cfg = duo_config(conn, p.log_http, p.log_http_bodies, p.log_http_format)?;
        cfg.observer = Some(daemon.call_observer());
        let duo = DuoClient::new(cfg).map_err(|e| anyhow::anyhow!("duo.{}: {e}", conn.name))?;
        use_recorded(&*store, &duo).await;
        daemon.add(name, duo, settings_of(p), p.schedule.clone());
        daemon.describe(name, super::config_show::provisioner_text(&ctx.settings, name));
    }
    for (name, config) in &ctx.settings.sources {
        if let Some(schedule) = &config.schedule {
            let job = super::source::DaemonSource { name: name.clone(), config: config.clone(), store: store.clone() };
            daemon.add_source(name, Arc::new(job), schedule.clone());
        }
    }
    let access = match ctx.settings.daemon.read_metrics_token()? {
        Some(token) => duoprov_daemon::Access::token(token),
        None => duoprov_daemon::Access::default(),
    };
    let console = duoprov_daemon::ConsoleAccess {
        token: ctx.settings.daemon.read_console_token()?.map(Arc::new),
        secure_cookie: ctx.settings.daemon.console_secure_cookie,
    };
    daemon.serve(args.listen.unwrap_or(ctx.settings.daemon.listen), access, console, args.shutdown_grace).await?;
    Ok(exit::OK)
}
