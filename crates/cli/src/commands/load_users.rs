//! `duoprov load-users P`: reads every Duo user of the provisioner's account (pages of 300, Duo's
//! maximum) and makes the provisioner's rows of the `duo_user` table (Grouper's
//! `grouper_prov_duo_user`) mirror them in one transaction, printing what was inserted, updated,
//! deleted and left unchanged. Odd users are loaded as faithfully as the table allows and named
//! in warnings; if anything fails, the table keeps its previous rows. Then the provisioner's
//! sync-back group, if configured, is brought in line with the table (`duoprov_sync::sync_back`);
//! removals over its thresholds are refused (exit code 3, the group untouched) unless `--approve
//! DIGEST` names exactly the removal list the refusal showed.

use std::time::Instant;

use anyhow::{Result, anyhow};
use duoprov_sync::duo_users::{self, UserProblem};
use serde::Serialize;

use super::{Context, duo};
use crate::args::LoadUsersArgs;
use crate::{exit, output};

#[derive(Serialize)]
struct Summary<'a> {
    provisioner: &'a str,
    users: u64,
    inserted: u64,
    updated: u64,
    deleted: u64,
    unchanged: u64,
    problems: &'a [UserProblem],
    duo_read_ms: u128,
    db_write_ms: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    sync_back: Option<duoprov_sync::sync_back::SyncBackOutcome>,
}

pub async fn run(ctx: &Context, args: LoadUsersArgs) -> Result<u8> {
    let (provisioner, client) = duo::client_for(ctx, &args.provisioner).await?;
    // Open the registry first: no point reading Duo if the results cannot be kept.
    let store = ctx.store().await?;
    let started = Instant::now();
    let users = client
        .list_users()
        .await
        .map_err(|e| anyhow!("reading the Duo users of provisioner {}: {e}; the duo_user table is unchanged", provisioner.name))?;
    let duo_read_ms = started.elapsed().as_millis();
    let started = Instant::now();
    let outcome = duo_users::load(&*store, &provisioner.name, &users)
        .await
        .map_err(|e| anyhow!("loading the Duo users of provisioner {}: {e}", provisioner.name))?;
    let db_write_ms = started.elapsed().as_millis();
    let settings = super::sync::settings_of(&provisioner);
    let run = duoprov_sync::sync_back::SyncBackRun { approve: args.approve.clone(), ..duoprov_sync::sync_back::SyncBackRun::after_load(&outcome.problems) };
    let sync_back = match duoprov_sync::sync_back::sync_back(&*store, &settings, &duoprov_registry::AuditActor::cli(), &run).await {
        Ok(sb) => sb,
        // Over the thresholds: the table is loaded, the group untouched; exit code 3 like the
        // provisioner's refusals.
        Err(duoprov_sync::SyncError::SyncBackRefused(refusal)) => {
            if ctx.json {
                output::json(&serde_json::json!({"provisioner": provisioner.name, "users": outcome.users, "sync_back_refused": refusal}))?;
            }
            eprintln!("the Duo users table of provisioner {} is loaded ({} users), but {}", provisioner.name, outcome.users, refusal.message());
            return Ok(exit::REFUSED);
        }
        Err(duoprov_sync::SyncError::SyncBack(m)) => {
            return Err(anyhow!("the Duo users table of provisioner {} is loaded, but its sync-back group was not updated: {m}", provisioner.name));
        }
        Err(other) => return Err(anyhow::Error::new(other).context(format!("updating the sync-back group of provisioner {}", provisioner.name))),
    };
    let c = outcome.counts;
    if ctx.json {
        output::json(&Summary {
            provisioner: &provisioner.name,
            users: outcome.users,
            inserted: c.inserted,
            updated: c.updated,
            deleted: c.deleted,
            unchanged: c.unchanged,
            problems: &outcome.problems,
            duo_read_ms,
            db_write_ms,
            sync_back: sync_back.clone(),
        })?;
    } else {
        println!(
            "{}: {} Duo users in duo_user: {} inserted, {} updated, {} deleted, {} unchanged",
            provisioner.name, outcome.users, c.inserted, c.updated, c.deleted, c.unchanged
        );
        if !outcome.problems.is_empty() {
            println!("{} odd values noted (see the warnings above)", outcome.problems.len());
        }
        if let Some(sb) = &sync_back {
            println!(
                "sync-back group {}{} ({}): {} members, {} added, {} removed, {} Duo users matched to no subject",
                sb.group,
                if sb.created_group { " (created)" } else { "" },
                sb.rule,
                sb.members,
                sb.added,
                sb.removed,
                sb.unmatched
            );
        }
    }
    Ok(exit::OK)
}
