//! The sync-state store over SQL. Batched upserts keep a large apply's bookkeeping to a few
//! statements.

use async_trait::async_trait;
use duoprov_model::{EpochMillis, GroupLink, Links, SubjectKey, UserLink};
use sqlx::QueryBuilder;

use super::SqlStore;
use crate::error::{RegistryError, Result};
use crate::sync_state::{
    Checkpoint, GroupState, MembershipState, ObjectErrorRecord, RetryRecord, RetryTarget, RunKind, RunRecord, RunStatus, RunnerLock, Settlement, StateError, SyncStore,
    UserState,
};

const BATCH: usize = 500;

/// A `sync_run` row: id, provisioner, kind, dry_run, started_at_ms, finished_at_ms, status,
/// counts, timings, message.
pub(super) type RunTuple = (i64, String, String, bool, i64, Option<i64>, String, String, String, Option<String>);

/// The run a `sync_run` row records; a kind or status this version does not know is refused.
pub(super) fn run_of((id, provisioner, kind, dry_run, started_at_ms, finished_at_ms, status, counts, timings, message): RunTuple) -> Result<RunRecord> {
    let unknown = |field: &str, value: &str| {
        RegistryError::Refused(format!(
            "run {id} of {provisioner} in the run log: {field} {value:?} is not one this version of duoprov knows; upgrade duoprov"
        ))
    };
    Ok(RunRecord {
        kind: RunKind::parse(&kind).ok_or_else(|| unknown("kind", &kind))?,
        status: RunStatus::parse(&status).ok_or_else(|| unknown("status", &status))?,
        id,
        provisioner,
        dry_run,
        started_at_ms: EpochMillis(started_at_ms),
        finished_at_ms: finished_at_ms.map(EpochMillis),
        counts: serde_json::from_str(&counts).unwrap_or(serde_json::Value::Null),
        timings: serde_json::from_str(&timings).unwrap_or(serde_json::Value::Null),
        message,
    })
}

fn db(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> RegistryError {
    RegistryError::db(context)
}

fn error_parts(e: &Option<StateError>, at: EpochMillis) -> (Option<String>, Option<String>, Option<i64>) {
    match e {
        Some(e) => (Some(e.code.clone()), Some(e.message.clone()), Some(at.0)),
        None => (None, None, None),
    }
}

const KEEP_TIMES: &str = "first_provisioned = COALESCE({t}.first_provisioned, excluded.first_provisioned), \
     last_provisioned = COALESCE(excluded.last_provisioned, {t}.last_provisioned), \
     error_code = excluded.error_code, error_message = excluded.error_message, error_at = excluded.error_at";

/// The id and intent rules of [`GroupState`]: an intent clears the id (never keeps a stale one
/// under a re-create); an id clears the intent; a state with neither keeps the id and clears the
/// intent.
const INTENT_RULES: &str = "{id} = CASE WHEN excluded.pending_name IS NOT NULL THEN NULL ELSE COALESCE(excluded.{id}, {t}.{id}) END, \
     pending_name = CASE WHEN excluded.{id} IS NOT NULL THEN NULL ELSE excluded.pending_name END, \
     pending_at = CASE WHEN excluded.{id} IS NOT NULL OR excluded.pending_name IS NULL THEN NULL ELSE excluded.pending_at END, ";

/// A `sync_group` row: group_uuid, duo_group_id, created_by_us, in_target, pending_name, pending_at.
pub(super) type GroupLinkTuple = (String, Option<String>, bool, bool, Option<String>, Option<i64>);

/// Every group link of the provisioner bound as `$1`, in group order.
pub(super) const GROUP_LINKS: &str =
    "SELECT group_uuid, duo_group_id, created_by_us, in_target, pending_name, pending_at FROM sync_group WHERE provisioner = $1 ORDER BY group_uuid";

pub(super) fn group_link((group_uuid, duo_group_id, created_by_us, in_target, pending_name, pending_at): GroupLinkTuple) -> GroupLink {
    GroupLink { pending_name, pending_at: pending_at.map(EpochMillis), group_uuid, duo_group_id, created_by_us, in_target }
}

/// A `sync_user` row: source, subject_id, duo_user_id, created_by_us, in_target, pending_name, pending_at.
pub(super) type UserLinkTuple = (String, String, Option<String>, bool, bool, Option<String>, Option<i64>);

pub(super) fn user_link((source, id, duo_user_id, created_by_us, in_target, pending_name, pending_at): UserLinkTuple) -> UserLink {
    UserLink { pending_name, pending_at: pending_at.map(EpochMillis), subject: SubjectKey::new(source, id), duo_user_id, created_by_us, in_target }
}

sql_impl! {
#[async_trait]
impl SyncStore for SqlStore<DB> {
    async fn links(&self, provisioner: &str) -> Result<Links> {
        let groups: Vec<GroupLinkTuple> = sqlx::query_as(GROUP_LINKS)
        .bind(provisioner)
        .fetch_all(self.pool())
        .await
        .map_err(db(format!("reading the group links of {provisioner}")))?;
        let users: Vec<UserLinkTuple> = sqlx::query_as(
            "SELECT source, subject_id, duo_user_id, created_by_us, in_target, pending_name, pending_at FROM sync_user WHERE provisioner = $1 ORDER BY source, subject_id",
        )
        .bind(provisioner)
        .fetch_all(self.pool())
        .await
        .map_err(db(format!("reading the user links of {provisioner}")))?;
        let disabled_by_us = crate::disabled_users::DisabledUserStore::disabled_users(self, provisioner).await?.into_iter().collect();
        Ok(Links {
            disabled_by_us,
            groups: groups.into_iter().map(group_link).collect(),
            users: users.into_iter().map(user_link).collect(),
            foreign: Default::default(),
        })
    }

    async fn record(&self, provisioner: &str, groups: &[GroupState], users: &[UserState], memberships: &[MembershipState]) -> Result<()> {
        let at = EpochMillis::now();
        let mut tx = self.begin_state_write("starting a sync-state write").await?;
        for chunk in groups.chunks(BATCH) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO sync_group (provisioner, group_uuid, duo_group_id, in_target, created_by_us, first_provisioned, last_provisioned, error_code, error_message, error_at, pending_name, pending_at) ",
            );
            qb.push_values(chunk, |mut b, g| {
                let (code, message, error_at) = error_parts(&g.error, at);
                b.push_bind(provisioner)
                    .push_bind(g.group_uuid.clone())
                    .push_bind(g.duo_group_id.clone())
                    .push_bind(g.in_target)
                    .push_bind(g.created_by_us)
                    .push_bind(g.provisioned_at.map(|t| t.0))
                    .push_bind(g.provisioned_at.map(|t| t.0))
                    .push_bind(code)
                    .push_bind(message)
                    .push_bind(error_at)
                    .push_bind(g.pending_name.clone())
                    .push_bind(g.pending_at.map(|t| t.0));
            });
            qb.push(" ON CONFLICT (provisioner, group_uuid) DO UPDATE SET in_target = excluded.in_target, created_by_us = excluded.created_by_us, ");
            qb.push(INTENT_RULES.replace("{t}", "sync_group").replace("{id}", "duo_group_id"));
            qb.push(KEEP_TIMES.replace("{t}", "sync_group"));
            qb.build().execute(&mut *tx).await.map_err(db("recording group state"))?;
        }
        for chunk in users.chunks(BATCH) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO sync_user (provisioner, source, subject_id, duo_user_id, in_target, created_by_us, first_provisioned, last_provisioned, error_code, error_message, error_at, pending_name, pending_at) ",
            );
            qb.push_values(chunk, |mut b, u| {
                let (code, message, error_at) = error_parts(&u.error, at);
                b.push_bind(provisioner)
                    .push_bind(u.subject.source.clone())
                    .push_bind(u.subject.id.clone())
                    .push_bind(u.duo_user_id.clone())
                    .push_bind(u.in_target)
                    .push_bind(u.created_by_us)
                    .push_bind(u.provisioned_at.map(|t| t.0))
                    .push_bind(u.provisioned_at.map(|t| t.0))
                    .push_bind(code)
                    .push_bind(message)
                    .push_bind(error_at)
                    .push_bind(u.pending_name.clone())
                    .push_bind(u.pending_at.map(|t| t.0));
            });
            qb.push(" ON CONFLICT (provisioner, source, subject_id) DO UPDATE SET in_target = excluded.in_target, created_by_us = excluded.created_by_us, ");
            qb.push(INTENT_RULES.replace("{t}", "sync_user").replace("{id}", "duo_user_id"));
            qb.push(KEEP_TIMES.replace("{t}", "sync_user"));
            qb.build().execute(&mut *tx).await.map_err(db("recording user state"))?;
        }
        for chunk in memberships.chunks(BATCH) {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO sync_membership (provisioner, group_uuid, source, subject_id, in_target, first_provisioned, last_provisioned, error_code, error_message, error_at) ",
            );
            qb.push_values(chunk, |mut b, m| {
                let (code, message, error_at) = error_parts(&m.error, at);
                b.push_bind(provisioner)
                    .push_bind(m.group_uuid.clone())
                    .push_bind(m.subject.source.clone())
                    .push_bind(m.subject.id.clone())
                    .push_bind(m.in_target)
                    .push_bind(m.provisioned_at.map(|t| t.0))
                    .push_bind(m.provisioned_at.map(|t| t.0))
                    .push_bind(code)
                    .push_bind(message)
                    .push_bind(error_at);
            });
            qb.push(" ON CONFLICT (provisioner, group_uuid, source, subject_id) DO UPDATE SET in_target = excluded.in_target, ");
            qb.push(KEEP_TIMES.replace("{t}", "sync_membership"));
            qb.build().execute(&mut *tx).await.map_err(db("recording membership state"))?;
        }
        tx.commit().await.map_err(db("committing sync state"))
    }

    async fn forget_groups(&self, provisioner: &str, uuids: &[String]) -> Result<()> {
        let mut tx = self.begin_state_write("starting a sync-state write").await?;
        for uuid in uuids {
            for sql in ["DELETE FROM sync_group WHERE provisioner = $1 AND group_uuid = $2", "DELETE FROM sync_membership WHERE provisioner = $1 AND group_uuid = $2"] {
                sqlx::query(sql).bind(provisioner).bind(uuid).execute(&mut *tx).await.map_err(db(format!("forgetting group {uuid}")))?;
            }
        }
        tx.commit().await.map_err(db("committing sync state"))
    }

    async fn forget_users(&self, provisioner: &str, subjects: &[SubjectKey]) -> Result<()> {
        let mut tx = self.begin_state_write("starting a sync-state write").await?;
        for s in subjects {
            for sql in [
                "DELETE FROM sync_user WHERE provisioner = $1 AND source = $2 AND subject_id = $3",
                "DELETE FROM sync_membership WHERE provisioner = $1 AND source = $2 AND subject_id = $3",
            ] {
                sqlx::query(sql).bind(provisioner).bind(&s.source).bind(&s.id).execute(&mut *tx).await.map_err(db(format!("forgetting subject {s}")))?;
            }
        }
        tx.commit().await.map_err(db("committing sync state"))
    }

    async fn begin_run(&self, provisioner: &str, kind: RunKind, dry_run: bool) -> Result<i64> {
        let ms = EpochMillis::now().0;
        // One runner per provisioner: a run still marked running was cut short.
        sqlx::query("UPDATE sync_run SET status = $2 WHERE provisioner = $1 AND status = $3")
            .bind(provisioner)
            .bind(RunStatus::Interrupted.as_str())
            .bind(RunStatus::Running.as_str())
            .execute(self.pool())
            .await
            .map_err(db(format!("closing interrupted runs of {provisioner}")))?;
        sqlx::query_scalar(
            "INSERT INTO sync_run (provisioner, kind, dry_run, started_at_ms, status, counts, timings) VALUES ($1, $2, $3, $4, $5, '{}', '{}') RETURNING id",
        )
        .bind(provisioner)
        .bind(kind.as_str())
        .bind(dry_run)
        .bind(ms)
        .bind(RunStatus::Running.as_str())
        .fetch_one(self.pool())
        .await
        .map_err(db(format!("starting a run of {provisioner}")))
    }

    async fn finish_run(&self, run_id: i64, status: RunStatus, counts: &serde_json::Value, timings: &serde_json::Value, message: Option<&str>) -> Result<()> {
        let ms = EpochMillis::now().0;
        sqlx::query("UPDATE sync_run SET finished_at_ms = $1, status = $2, counts = $3, timings = $4, message = $5 WHERE id = $6")
            .bind(ms)
            .bind(status.as_str())
            .bind(counts.to_string())
            .bind(timings.to_string())
            .bind(message)
            .bind(run_id)
            .execute(self.pool())
            .await
            .map_err(db(format!("finishing run {run_id}")))?;
        Ok(())
    }

    async fn runs(&self, provisioner: Option<&str>, limit: u32) -> Result<Vec<RunRecord>> {
        let rows: Vec<RunTuple> = sqlx::query_as(
            "SELECT id, provisioner, kind, dry_run, started_at_ms, finished_at_ms, status, counts, timings, message FROM sync_run \
             WHERE $1 IS NULL OR provisioner = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(provisioner)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(db("reading the run log"))?;
        rows.into_iter().map(run_of).collect()
    }

    async fn object_errors(&self, provisioner: &str, limit: u32) -> Result<Vec<ObjectErrorRecord>> {
        // The newest `limit` of each kind first, each read backwards along its partial error
        // index (`sync_*_errors`, by provisioner and error_at), then the newest `limit` of those:
        // a page reads a few hundred index entries, not every link in error (ten thousand
        // memberships at one in a hundred of a million).
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT * FROM (SELECT 'group', group_uuid, error_code, COALESCE(error_message, ''), COALESCE(error_at, 0) FROM sync_group \
             WHERE provisioner = $1 AND error_code IS NOT NULL ORDER BY error_at DESC LIMIT $2) g \
             UNION ALL SELECT * FROM (SELECT 'user', source || ':' || subject_id, error_code, COALESCE(error_message, ''), COALESCE(error_at, 0) FROM sync_user \
             WHERE provisioner = $1 AND error_code IS NOT NULL ORDER BY error_at DESC LIMIT $2) u \
             UNION ALL SELECT * FROM (SELECT 'membership', group_uuid || ' ' || source || ':' || subject_id, error_code, COALESCE(error_message, ''), COALESCE(error_at, 0) \
             FROM sync_membership WHERE provisioner = $1 AND error_code IS NOT NULL ORDER BY error_at DESC LIMIT $2) m \
             ORDER BY 5 DESC LIMIT $2",
        )
        .bind(provisioner)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(db(format!("reading the errors of {provisioner}")))?;
        Ok(rows.into_iter().map(|(kind, object, code, message, at)| ObjectErrorRecord { kind, object, code, message, at_ms: EpochMillis(at) }).collect())
    }

    async fn checkpoint(&self, provisioner: &str) -> Result<Option<Checkpoint>> {
        let row: Option<(i64, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT last_seq, updated_at_ms, last_full_ms, last_incremental_ms FROM sync_checkpoint WHERE provisioner = $1",
        )
        .bind(provisioner)
        .fetch_optional(self.pool())
        .await
        .map_err(db(format!("reading the checkpoint of {provisioner}")))?;
        Ok(row.map(|(last_seq, updated_at_ms, last_full_ms, last_incremental_ms)| Checkpoint {
            last_seq,
            updated_at_ms: EpochMillis(updated_at_ms),
            last_full_ms: last_full_ms.map(EpochMillis),
            last_incremental_ms: last_incremental_ms.map(EpochMillis),
        }))
    }

    async fn settle(&self, provisioner: &str, s: &Settlement<'_>) -> Result<()> {
        let mut tx = self.begin_state_write("starting a sync-state write").await?;
        if let Some(seq) = s.checkpoint {
            let (full, incremental) = if s.kind == RunKind::Full { (Some(s.now_ms.0), None) } else { (None, Some(s.now_ms.0)) };
            sqlx::query(
                "INSERT INTO sync_checkpoint (provisioner, last_seq, updated_at_ms, last_full_ms, last_incremental_ms) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (provisioner) DO UPDATE SET \
                 last_seq = CASE WHEN excluded.last_seq > sync_checkpoint.last_seq THEN excluded.last_seq ELSE sync_checkpoint.last_seq END, \
                 updated_at_ms = excluded.updated_at_ms, \
                 last_full_ms = COALESCE(excluded.last_full_ms, sync_checkpoint.last_full_ms), \
                 last_incremental_ms = COALESCE(excluded.last_incremental_ms, sync_checkpoint.last_incremental_ms)",
            )
            .bind(provisioner)
            .bind(seq)
            .bind(s.now_ms.0)
            .bind(full)
            .bind(incremental)
            .execute(&mut *tx)
            .await
            .map_err(db(format!("moving the checkpoint of {provisioner}")))?;
        }
        // Consecutive failures so far, for the objects failing again.
        let mut previous: std::collections::HashMap<RetryTarget, i64> = std::collections::HashMap::new();
        if !s.failed.is_empty() {
            // `attempts` is INTEGER: 32 bits on PostgreSQL.
            let rows: Vec<(String, String, String, i32, bool)> =
                sqlx::query_as("SELECT group_uuid, source, subject_id, attempts, whole_group FROM sync_retry WHERE provisioner = $1")
                    .bind(provisioner)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db(format!("reading the retry list of {provisioner}")))?;
            previous = rows.into_iter().map(|(g, so, id, n, whole)| (RetryTarget::from_columns(g, so, id, whole), i64::from(n))).collect();
        }
        if s.clear_all {
            sqlx::query("DELETE FROM sync_retry WHERE provisioner = $1")
                .bind(provisioner)
                .execute(&mut *tx)
                .await
                .map_err(db(format!("clearing the retry list of {provisioner}")))?;
        } else {
            for t in s.attempted {
                let (g, so, id) = t.columns();
                sqlx::query("DELETE FROM sync_retry WHERE provisioner = $1 AND group_uuid = $2 AND source = $3 AND subject_id = $4")
                    .bind(provisioner)
                    .bind(g)
                    .bind(so)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(format!("clearing a retry of {provisioner}")))?;
            }
        }
        for chunk in s.failed.chunks(BATCH) {
            let mut qb = QueryBuilder::<DB>::new("INSERT INTO sync_retry (provisioner, group_uuid, source, subject_id, attempts, next_at_ms, last_error, whole_group) ");
            qb.push_values(chunk, |mut b, (t, message)| {
                let (g, so, id) = t.columns();
                // A group row and its whole-group form are one row: count their failures together.
                let same_row = |k: &RetryTarget| k.columns() == (g, so, id);
                let attempts = previous.get(t).copied().or_else(|| previous.iter().find(|(k, _)| same_row(k)).map(|(_, n)| *n)).unwrap_or(0) + 1;
                let wait = s.backoff.delay_ms(u32::try_from(attempts).unwrap_or(u32::MAX));
                b.push_bind(provisioner)
                    .push_bind(g.to_owned())
                    .push_bind(so.to_owned())
                    .push_bind(id.to_owned())
                    .push_bind(i32::try_from(attempts).unwrap_or(i32::MAX))
                    .push_bind(s.now_ms.plus_ms(wait).0)
                    .push_bind(message.clone())
                    .push_bind(t.whole_group());
            });
            // Once a group's row asks for its whole membership, it keeps asking until attempted.
            qb.push(
                " ON CONFLICT (provisioner, group_uuid, source, subject_id) DO UPDATE SET attempts = excluded.attempts, next_at_ms = excluded.next_at_ms, last_error = excluded.last_error, \
                 whole_group = (excluded.whole_group OR sync_retry.whole_group)",
            );
            qb.build().execute(&mut *tx).await.map_err(db(format!("recording retries of {provisioner}")))?;
        }
        tx.commit().await.map_err(db("committing sync state"))
    }

    async fn retries(&self, provisioner: &str, due_at_ms: Option<EpochMillis>) -> Result<Vec<RetryRecord>> {
        let rows: Vec<(String, String, String, i32, i64, String, bool)> = sqlx::query_as(
            "SELECT group_uuid, source, subject_id, attempts, next_at_ms, last_error, whole_group FROM sync_retry \
             WHERE provisioner = $1 AND ($2 IS NULL OR next_at_ms <= $2) ORDER BY next_at_ms, group_uuid, source, subject_id",
        )
        .bind(provisioner)
        .bind(due_at_ms.map(|t| t.0))
        .fetch_all(self.pool())
        .await
        .map_err(db(format!("reading the retry list of {provisioner}")))?;
        Ok(rows
            .into_iter()
            .map(|(g, so, id, attempts, next_at_ms, last_error, whole)| RetryRecord {
                target: RetryTarget::from_columns(g, so, id, whole),
                attempts: u32::try_from(attempts).unwrap_or(0),
                next_at_ms: EpochMillis(next_at_ms),
                last_error,
            })
            .collect())
    }

    async fn try_lock_runner(&self, key: &str) -> Result<Option<RunnerLock>> {
        DB::try_lock_runner(self, key).await
    }

    async fn change_waker(&self) -> Result<Option<crate::sync_state::ChangeWaker>> {
        DB::change_waker(self).await
    }
}
}
