//! The daemon's [`Work`] against a real registry and Duo account: the `daemon:P` lead lock, the
//! `provisioner:P` run lock each run holds (and which fences its apply phases), full, incremental
//! and users-table runs, one object's run retried from the console, and what each run leaves on
//! the status page, the console and in the log (a full sync applies the removal digest approved
//! from the console, taken from the registry, once; each run records what triggered it). The
//! console's requests are read from the registry and consumed there by the run that carries them
//! out. (The run itself keeps a refused plan in the registry as the provisioner's last, and
//! clears it when a plan gets past the safety rules: see `duoprov_sync::run`.)

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use duoprov_duo::DuoClient;
use duoprov_registry::{ChangeWaker, RequestKind, RequestedObject, RunnerLock, Store};
use duoprov_sync::{FenceHandle, Incremental, NoProgress, ObjectTarget, Prepared, SyncError, SyncOptions, SyncSettings};
use tracing::Instrument as _;

use crate::clock::Clock;
use crate::http::Shared;
use crate::runner::{FullRequest, Ran, Requests, RetryRequest, Work};
use crate::{mark_interrupted, run_lock};

/// One provisioner's runs on the registry `store` and the Duo account behind `duo`.
pub struct StoreWork {
    pub name: String,
    pub store: Arc<dyn Store>,
    pub duo: DuoClient,
    pub settings: SyncSettings,
    pub shared: Arc<Shared>,
    pub clock: Arc<dyn Clock>,
}

impl Work for StoreWork {
    type Lease = RunnerLock;

    async fn try_lead(&self) -> Result<Option<RunnerLock>> {
        Ok(self.store.try_lock_runner(&format!("daemon:{}", self.name)).await?)
    }

    async fn alive(&self, lease: &mut RunnerLock) -> bool {
        lease.alive().await
    }

    async fn last_full_ms(&self) -> Result<Option<i64>> {
        Ok(self.store.checkpoint(&self.name).await?.and_then(|cp| cp.last_full_ms.map(|t| t.0)))
    }

    async fn close_abandoned(&self) {
        // A run a killed process left `running` is closed now that this daemon leads.
        if let Ok(Some(_run)) = run_lock(&*self.store, &self.name, Duration::from_secs(30)).await {
            mark_interrupted(&*self.store, &self.name, "cut short; found running when a daemon took the lead").await;
        }
    }

    async fn change_waker(&self) -> Option<ChangeWaker> {
        match self.store.change_waker().await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(provisioner = %self.name, error = %e, "No change notifications; polling only.");
                None
            }
        }
    }

    async fn last_change_seq(&self) -> Result<i64> {
        Ok(self.store.last_change_seq().await?)
    }

    async fn pending(&self, now_ms: i64) -> Result<bool> {
        let Some(cp) = self.store.checkpoint(&self.name).await? else { return Ok(true) };
        let last = self.store.last_change_seq().await?;
        if last <= cp.last_seq && self.store.retries(&self.name, Some(duoprov_model::EpochMillis(now_ms))).await?.is_empty() {
            self.shared.metrics.lag(&self.name, 0, 0.0);
            return Ok(false);
        }
        Ok(true)
    }

    async fn requests(&self) -> Result<Requests> {
        let mut out = Requests::default();
        for r in self.store.console_requests(&self.name).await? {
            match r.kind {
                RequestKind::FullSync => match &mut out.full {
                    Some(f) => f.up_to = r.id,
                    None => out.full = Some(FullRequest { up_to: r.id, who: r.who }),
                },
                RequestKind::Retry(object) => {
                    let target = match object {
                        RequestedObject::Subject(reference) => ObjectTarget::Subject { reference },
                        RequestedObject::Group(name) => ObjectTarget::Group { name },
                    };
                    out.retries.push(RetryRequest { id: r.id, target, who: r.who });
                }
            }
        }
        Ok(out)
    }

    async fn full(&self, trigger: String, request: Option<i64>) -> Result<Ran> {
        let Some(run) = run_lock(&*self.store, &self.name, Duration::ZERO).await? else { return Ok(Ran::Busy) };
        // Taken up under the run lock: a request made from now on waits for the next run.
        if let Some(up_to) = request {
            self.store.claim_full_syncs(&self.name, up_to).await?;
        }
        let prepared = self.prepare_full().await?;
        // A digest approved from the console applies to this one run: taken from the registry.
        let approved = self.store.take_approval(&self.name).await?.map(|a| a.digest);
        let ran = self.execute(prepared, true, None, run, approved, trigger).await?;
        // Done or refused: the requests it answered are consumed (a failure, or a process killed
        // in the run, leaves them for the next attempt).
        if let Some(up_to) = request {
            self.store.finish_full_syncs(&self.name, up_to).await?;
        }
        Ok(ran)
    }

    async fn approval_waiting(&self) -> Result<Option<String>> {
        Ok(self.store.pending_approval(&self.name).await?.map(|a| a.who))
    }

    async fn object(&self, retry: &RetryRequest) -> Result<Ran> {
        let (target, who) = (&retry.target, retry.who.as_str());
        let Some(run) = run_lock(&*self.store, &self.name, Duration::ZERO).await? else { return Ok(Ran::Busy) };
        let trigger = format!("console: retry of {target} by {who}");
        let outcome = match duoprov_sync::prepare_object(&*self.store, &self.duo, &self.settings, target).await {
            Ok(prepared) => match self.execute(prepared, false, None, run, None, trigger).await {
                Ok(Ran::Refused { .. }) => format!(
                    "refused by the safety rules, nothing changed (the daemon's log lists the removals; approve them with `duoprov sync {} --{} … --approve DIGEST`)",
                    self.name,
                    if matches!(target, ObjectTarget::Group { .. }) { "group" } else { "subject" }
                ),
                Ok(_) => match self.store.runs(Some(&self.name), 1).await?.into_iter().next() {
                    Some(r) => format!("run {} {}{}", r.id, r.status.as_str(), r.message.map(|m| format!(": {m}")).unwrap_or_default()),
                    None => "done".to_owned(),
                },
                Err(e) => format!("failed: {e:#}"),
            },
            // What cannot be synced alone (not found, out of scope) is the operator's to fix.
            Err(e @ (SyncError::NotFound(_) | SyncError::Scope(_))) => format!("not run: {e}"),
            Err(e) => format!("failed: {e}"),
        };
        tracing::info!(provisioner = %self.name, %target, %who, "Console retry: {outcome}.");
        // The outcome joins the action log as the request is consumed, in one transaction.
        self.store.finish_retry(&self.name, retry.id, who, &format!("retry of {target}: {outcome}")).await?;
        Ok(Ran::Finished { full: false })
    }

    async fn incremental(&self, now_ms: i64) -> Result<Ran> {
        let Some(run) = run_lock(&*self.store, &self.name, Duration::ZERO).await? else { return Ok(Ran::Busy) };
        match duoprov_sync::prepare_incremental(&*self.store, &self.duo, &self.settings, now_ms).await? {
            Incremental::Idle { .. } => Ok(Ran::Idle),
            Incremental::Planned(p) => {
                let trigger = match &p.scope {
                    Some(scope) if scope.changes == 0 && scope.retries_due > 0 => "due retries".to_owned(),
                    Some(scope) if scope.retries_due > 0 => "change log and due retries".to_owned(),
                    _ => "change log".to_owned(),
                };
                self.execute(*p, false, None, run, None, trigger).await
            }
            Incremental::Escalate { reason } => {
                tracing::info!(provisioner = %self.name, %reason, "Incremental sync escalates to a full sync.");
                let prepared = self.prepare_full().await?;
                self.execute(prepared, true, Some(reason), run, None, "change log (escalated to a full sync)".to_owned()).await
            }
        }
    }

    async fn load_users(&self) -> Result<Ran> {
        let Some(_run) = run_lock(&*self.store, &self.name, Duration::ZERO).await? else { return Ok(Ran::Busy) };
        let users = self.duo.list_users().await.map_err(|e| anyhow::anyhow!("reading the Duo users of {}: {e}", self.name))?;
        let outcome = duoprov_sync::duo_users::load(&*self.store, &self.name, &users).await?;
        tracing::info!(provisioner = %self.name, users = outcome.users, "Duo users table reloaded.");
        let run = duoprov_sync::sync_back::SyncBackRun::after_load(&outcome.problems);
        duoprov_sync::sync_back::sync_back(&*self.store, &self.settings, &duoprov_registry::AuditActor::daemon(), &run)
            .await
            .map_err(|e| anyhow::Error::new(e).context(format!("updating the sync-back group of provisioner {} after loading its Duo users", self.name)))?;
        Ok(Ran::Finished { full: false })
    }

    async fn after_tick(&self, lag_known: bool) {
        self.shared.metrics.pacing(&self.name, &self.duo.pacing_stats());
        if !lag_known {
            self.update_lag().await;
        }
    }
}

impl StoreWork {
    /// Now, as a duration since the Unix epoch.
    fn since_epoch(&self) -> Duration {
        Duration::from_millis(self.clock.now_ms().max(0) as u64)
    }

    async fn update_lag(&self) {
        let Ok(Some(cp)) = self.store.checkpoint(&self.name).await else { return };
        let Ok(last) = self.store.last_change_seq().await else { return };
        let oldest = self.store.changes_after(cp.last_seq, 1).await.ok().and_then(|c| c.first().map(|e| e.at_ms));
        let age = oldest.map(|at| (self.clock.now_ms() - at).max(0) as f64 / 1000.0).unwrap_or(0.0);
        self.shared.metrics.lag(&self.name, (last - cp.last_seq).max(0), age);
    }

    async fn prepare_full(&self) -> Result<Prepared> {
        Ok(duoprov_sync::prepare(&*self.store, &self.duo, &self.settings).await?)
    }

    /// Runs a prepared plan under the run lock `run`, which fences every apply phase.
    /// `approved`: the removal digest approved from the console (as `--approve DIGEST`).
    /// `trigger`: what started the run, kept in the run log.
    async fn execute(&self, prepared: Prepared, full: bool, escalated: Option<String>, run: RunnerLock, approved: Option<String>, trigger: String) -> Result<Ran> {
        let kind = prepared.kind.as_str();
        let span = tracing::info_span!("sync_run", provisioner = %self.name, kind);
        let seq_at_start = prepared.change_seq;
        let approval = duoprov_plan::safety::Approval { digest: approved, saved_plan: false };
        let options = SyncOptions { fence: Some(FenceHandle::lock(run)), approval, actor: duoprov_registry::AuditActor::daemon(), trigger: Some(trigger), ..SyncOptions::default() };
        let outcome = duoprov_sync::run(&*self.store, &self.duo, &self.settings, prepared, &options, &NoProgress).instrument(span.clone()).await;
        let _enter = span.enter();
        match outcome {
            Ok(mut report) => {
                report.escalated = escalated;
                let status = report.status().as_str();
                self.shared.metrics.run_finished(&self.name, kind, status, Some(&report), self.since_epoch());
                self.shared.update(&self.name, |s| s.last_run = Some(format!("{kind} {status} (run {})", report.run_id)));
                // One line per run at the default level: kind, counts, calls, duration.
                tracing::info!(run = report.run_id, status, "Run finished: {}", report.summary());
                for f in &report.failures {
                    tracing::warn!(run = report.run_id, object = %f.object, code = %f.code, message = %f.message, "Object failed; retried on its schedule.");
                }
                if report.lacks_write_grant() {
                    tracing::error!(run = report.run_id, refused = report.forbidden(), "Duo refused every write of this run with 403: {}", duoprov_sync::report::WRITE_GRANT_HINT);
                }
                if !report.held_objects.is_empty() {
                    // Once per run, all held objects in one line: they stay held until fixed.
                    let held: Vec<String> = report.held_objects.iter().map(|h| format!("{} [{}]: {}", h.object, h.code, h.message)).collect();
                    tracing::warn!(run = report.run_id, held = held.len(), objects = %held.join("; "), "Objects are held by plan errors and not provisioned until fixed.");
                }
                Ok(Ran::Finished { full })
            }
            Err(SyncError::Refused { provisioner, refusal }) => {
                self.shared.metrics.run_finished(&self.name, kind, "refused", None, self.since_epoch());
                self.shared.update(&self.name, |s| s.last_run = Some(format!("{kind} refused")));
                // One readable line; the list itself (which can be long) at -v.
                tracing::warn!(
                    count = refusal.removals.len(),
                    digest = %refusal.digest,
                    "Run refused by the safety rules, nothing changed: {}. It would make {} (listed at -v, or by `duoprov plan {provisioner}`); approve exactly them with `{}`, or fix the registry.",
                    refusal.reasons.join("; "),
                    duoprov_model::counted(refusal.removals.len(), "removal", "removals"),
                    refusal.approve_command(&provisioner)
                );
                for removal in &refusal.removals {
                    tracing::info!(target: "duoprov::refusal", provisioner = %provisioner, digest = %refusal.digest, "Refused: {removal}");
                }
                // Not retried until the registry changes, or for a while (see the runner).
                let seq = self.store.last_change_seq().await.unwrap_or(seq_at_start);
                Ok(Ran::Refused { full, seq })
            }
            Err(e) => {
                self.shared.metrics.run_finished(&self.name, kind, "error", None, self.since_epoch());
                Err(e.into())
            }
        }
    }
}
