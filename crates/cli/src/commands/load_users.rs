//! `duoprov load-users P`: reads every Duo user of the provisioner's account (pages of 300, Duo's
//! maximum) and makes the provisioner's rows of the `duo_user` table (Grouper's
//! `grouper_prov_duo_user`) mirror them in one transaction, printing what was inserted, updated,
//! deleted and left unchanged. Odd users are loaded as faithfully as the table allows and named
//! in warnings; if anything fails, the table keeps its previous rows.

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
        })?;
    } else {
        println!(
            "{}: {} Duo users in duo_user: {} inserted, {} updated, {} deleted, {} unchanged",
            provisioner.name, outcome.users, c.inserted, c.updated, c.deleted, c.unchanged
        );
        if !outcome.problems.is_empty() {
            println!("{} odd values noted (see the warnings above)", outcome.problems.len());
        }
    }
    Ok(exit::OK)
}
