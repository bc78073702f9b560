//! The `duo_admin` table over SQL: the administrators each provisioner manages.

use async_trait::async_trait;
use duoprov_model::{ManagedAdmin, SubjectKey};

use super::SqlStore;
use crate::admins::AdminStore;
use crate::error::{RegistryError, Result};

type Row = (String, String, String, String, String, bool, bool);

sql_impl! {
#[async_trait]
impl AdminStore for SqlStore<DB> {
    async fn managed_admins(&self, provisioner: &str) -> Result<Vec<ManagedAdmin>> {
        let rows: Vec<Row> = sqlx::query_as::<DB, Row>(
            "SELECT admin_id, email, subject_source, subject_id, role, created_by_us, disabled_by_us \
             FROM duo_admin WHERE provisioner = $1 ORDER BY email, admin_id",
        )
        .bind(provisioner)
        .fetch_all(self.pool())
        .await
        .map_err(RegistryError::db(format!("reading the administrators provisioner {provisioner} manages")))?;
        Ok(rows
            .into_iter()
            .map(|(admin_id, email, source, id, role, created_by_us, disabled_by_us)| ManagedAdmin {
                admin_id,
                email,
                subject: SubjectKey::new(&source, &id),
                role,
                created_by_us,
                disabled_by_us,
            })
            .collect())
    }

    async fn record_admins(&self, provisioner: &str, record: &[ManagedAdmin], forget: &[String]) -> Result<()> {
        let what = || format!("recording the administrators provisioner {provisioner} manages");
        let mut tx = self.begin_state_write(what()).await?;
        for admin_id in forget {
            sqlx::query::<DB>("DELETE FROM duo_admin WHERE provisioner = $1 AND admin_id = $2")
                .bind(provisioner)
                .bind(admin_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(RegistryError::db(what()))?;
        }
        let now = duoprov_model::EpochMillis::now().0;
        for a in record {
            sqlx::query::<DB>(
                "INSERT INTO duo_admin (provisioner, admin_id, email, subject_source, subject_id, role, created_by_us, disabled_by_us, first_recorded_ms, updated_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
                 ON CONFLICT (provisioner, admin_id) DO UPDATE SET email = excluded.email, subject_source = excluded.subject_source, \
                 subject_id = excluded.subject_id, role = excluded.role, created_by_us = excluded.created_by_us, \
                 disabled_by_us = excluded.disabled_by_us, updated_ms = excluded.updated_ms",
            )
            .bind(provisioner)
            .bind(a.admin_id.as_str())
            .bind(a.email.as_str())
            .bind(a.subject.source.as_str())
            .bind(a.subject.id.as_str())
            .bind(a.role.as_str())
            .bind(a.created_by_us)
            .bind(a.disabled_by_us)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(RegistryError::db(what()))?;
        }
        tx.commit().await.map_err(RegistryError::db(what()))?;
        Ok(())
    }
}
}
