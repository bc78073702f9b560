//! The `sync_user_disabled` table over SQL: which Duo users each provisioner disabled.

use async_trait::async_trait;
use duoprov_model::{EpochMillis, SubjectKey};

use super::SqlStore;
use crate::disabled_users::DisabledUserStore;
use crate::error::{RegistryError, Result};

sql_impl! {
#[async_trait]
impl DisabledUserStore for SqlStore<DB> {
    async fn disabled_users(&self, provisioner: &str) -> Result<Vec<SubjectKey>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as::<DB, _>("SELECT source, subject_id FROM sync_user_disabled WHERE provisioner = $1 ORDER BY source, subject_id")
                .bind(provisioner)
                .fetch_all(self.pool())
                .await
                .map_err(RegistryError::db(format!("reading the users provisioner {provisioner} disabled")))?;
        Ok(rows.into_iter().map(|(source, id)| SubjectKey::new(source, id)).collect())
    }

    async fn record_disabled_users(&self, provisioner: &str, users: &[(SubjectKey, String)]) -> Result<()> {
        if users.is_empty() {
            return Ok(());
        }
        let at = EpochMillis::now().0;
        let mut tx = self.begin_state_write("starting a sync-state write").await?;
        for (subject, user_id) in users {
            sqlx::query::<DB>(
                "INSERT INTO sync_user_disabled (provisioner, source, subject_id, duo_user_id, disabled_at_ms) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (provisioner, source, subject_id) DO UPDATE SET duo_user_id = excluded.duo_user_id, disabled_at_ms = excluded.disabled_at_ms",
            )
            .bind(provisioner)
            .bind(&subject.source)
            .bind(&subject.id)
            .bind(user_id)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(RegistryError::db(format!("recording that provisioner {provisioner} disabled the Duo user of subject {subject}")))?;
        }
        tx.commit().await.map_err(RegistryError::db("committing sync state"))
    }

    async fn clear_disabled_users(&self, provisioner: &str, subjects: &[SubjectKey]) -> Result<()> {
        if subjects.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_state_write("starting a sync-state write").await?;
        for subject in subjects {
            sqlx::query::<DB>("DELETE FROM sync_user_disabled WHERE provisioner = $1 AND source = $2 AND subject_id = $3")
                .bind(provisioner)
                .bind(&subject.source)
                .bind(&subject.id)
                .execute(&mut *tx)
                .await
                .map_err(RegistryError::db(format!("forgetting that provisioner {provisioner} disabled the Duo user of subject {subject}")))?;
        }
        tx.commit().await.map_err(RegistryError::db("committing sync state"))
    }
}
}
