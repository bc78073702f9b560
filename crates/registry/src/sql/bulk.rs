//! Import: a whole validated import written in one transaction, in batches; subjects and
//! memberships go as one JSON array parameter per batch, unpacked by the database
//! ([`SqlBackend::JSON_TEXT_ROWS8`], [`SqlBackend::JSON_ID_PAIRS`]). A large load of memberships
//! sets the table's index and foreign keys aside and restores them in one pass each
//! ([`SqlBackend::BULK_MEMBERSHIP_LOAD`]), inside the same transaction.

use super::*;

/// Subjects per statement (memberships: five times as many); a few MB of JSON each.
const JSON_BATCH: usize = 20_000;

/// The fewest new subject memberships loaded with the membership table's index and foreign keys
/// set aside ([`BulkLoad`]); smaller imports check row by row and never alter the table.
pub(crate) const BULK_LOAD_MIN_ROWS: usize = 50_000;

/// The bulk area's functions (a namespace over the database type).
pub(super) struct Bulk<DB>(PhantomData<DB>);

sql_impl! {
impl Bulk<DB> {
    pub(super) async fn import(store: &SqlStore<DB>, data: &ImportData) -> Result<ImportSummary> {
        let mut tx = store.begin_write().await?;
        let summary = Self::import_in(&mut tx, data).await?;
        SqlStore::commit(tx).await?;
        Ok(summary)
    }

    pub(super) async fn import_in(tx: &mut Tx<DB>, data: &ImportData) -> Result<ImportSummary> {
        // The registry as it stands, under the write lock.
        let subjects: Vec<SubjectTuple> = sqlx::query_as(concat!("SELECT ", subject_cols!(), " FROM subject s"))
            .fetch_all(&mut **tx)
            .await
            .map_err(db("reading subjects for the import"))?;
        let mut existing_subjects: HashMap<SubjectKey, Subject> = HashMap::with_capacity(subjects.len());
        for row in subjects {
            let s = subject_of(row);
            existing_subjects.insert(s.key(), s);
        }
        let folders: Vec<(i64, String)> = sqlx::query_as("SELECT id, path FROM folder")
            .fetch_all(&mut **tx)
            .await
            .map_err(db("reading folders for the import"))?;
        let mut folder_ids: HashMap<String, i64> = folders.into_iter().map(|(id, p)| (p, id)).collect();
        let groups: Vec<GroupTuple> = sqlx::query_as(concat!("SELECT ", group_cols!(), " FROM grp g"))
            .fetch_all(&mut **tx)
            .await
            .map_err(db("reading groups for the import"))?;
        let edges: Vec<(String, String)> = sqlx::query_as(
            "SELECT g.name, m.name FROM member_group mg JOIN grp g ON g.id = mg.group_id JOIN grp m ON m.id = mg.member_group_id",
        )
        .fetch_all(&mut **tx)
        .await
        .map_err(db("reading group nesting for the import"))?;
        let existing = Existing {
            subjects: existing_subjects.keys().cloned().collect(),
            folders: folder_ids.keys().cloned().collect(),
            groups: groups.iter().map(|g| g.2.clone()).collect(),
            group_edges: edges,
        };
        let plan = import::validate(data, &existing).map_err(RegistryError::Invalid)?;
        let mut summary = ImportSummary::default();
        let mut touched_subjects = Vec::new();

        // Subjects: write only what changes.
        let mut to_write = Vec::new();
        for row in &plan.subjects {
            let incoming = Subject {
                source: row.key.source.clone(),
                id: row.key.id.clone(),
                name: row.name.clone(),
                login_id: row.login_id.clone(),
                email: row.email.clone(),
                first_name: row.first_name.clone(),
                last_name: row.last_name.clone(),
                description: row.description.clone(),
            };
            match existing_subjects.get(&row.key) {
                Some(current) if *current == incoming => summary.subjects_unchanged += 1,
                Some(_) => {
                    summary.subjects_updated += 1;
                    touched_subjects.push(row.key.clone());
                    to_write.push(incoming);
                }
                None => {
                    summary.subjects_created += 1;
                    touched_subjects.push(row.key.clone());
                    to_write.push(incoming);
                }
            }
        }
        // One JSON parameter per batch: PostgreSQL spends far less on one array than on eight
        // parameters per row (the import's cost at 100 000 subjects was the binding).
        for chunk in to_write.chunks(JSON_BATCH) {
            let json: Vec<serde_json::Value> = chunk
                .iter()
                .map(|s| json!([s.source, s.id, s.name, s.login_id, s.email, s.first_name, s.last_name, s.description]))
                .collect();
            let sql = format!(
                "INSERT INTO subject (source, subject_id, name, login_id, email, first_name, last_name, description) {} \
                 ON CONFLICT (source, subject_id) DO UPDATE SET name = excluded.name, login_id = excluded.login_id, \
                 email = excluded.email, first_name = excluded.first_name, last_name = excluded.last_name, description = excluded.description",
                DB::JSON_TEXT_ROWS8
            );
            sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
                .bind(serde_json::Value::Array(json).to_string())
                .execute(&mut **tx)
                .await
                .map_err(db("writing imported subjects"))?;
        }

        // Folders, parents first.
        let mut folders_created = Vec::new();
        for (path, display_name, description, explicit) in &plan.folders {
            match folder_ids.get(path.as_str()) {
                Some(id) if *explicit => {
                    sqlx::query("UPDATE folder SET display_name = $1, description = $2 WHERE id = $3")
                        .bind(display_name)
                        .bind(description)
                        .bind(*id)
                        .execute(&mut **tx)
                        .await
                        .map_err(db(format!("updating imported folder {path}")))?;
                }
                Some(_) => {}
                None => {
                    let parent_id = path.parent().and_then(|p| folder_ids.get(p.as_str()).copied());
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO folder (path, parent_id, display_name, description) VALUES ($1, $2, $3, $4) RETURNING id",
                    )
                    .bind(path.as_str())
                    .bind(parent_id)
                    .bind(display_name)
                    .bind(description)
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(db(format!("adding imported folder {path}")))?;
                    folder_ids.insert(path.as_str().to_owned(), id);
                    folders_created.push(path.as_str().to_owned());
                }
            }
        }
        summary.folders_created = folders_created.len();

        // Groups.
        let mut group_by_name: HashMap<String, (i64, String)> = groups.iter().map(|g| (g.2.clone(), (g.0, g.1.clone()))).collect();
        let current_attrs: HashMap<&str, (&Option<String>, &Option<String>)> = groups.iter().map(|g| (g.2.as_str(), (&g.4, &g.5))).collect();
        let mut touched_groups: Vec<String> = Vec::new();
        let mut new_groups = Vec::new();
        for (name, display_name, description) in &plan.groups {
            match current_attrs.get(name.as_str()) {
                Some((dn, desc)) if *dn == display_name && *desc == description => {}
                Some(_) => {
                    let (id, uuid) = &group_by_name[name.as_str()];
                    sqlx::query("UPDATE grp SET display_name = $1, description = $2 WHERE id = $3")
                        .bind(display_name)
                        .bind(description)
                        .bind(*id)
                        .execute(&mut **tx)
                        .await
                        .map_err(db(format!("updating imported group {name}")))?;
                    summary.groups_updated += 1;
                    touched_groups.push(uuid.clone());
                }
                None => new_groups.push((name, display_name, description, uuid::Uuid::new_v4().to_string())),
            }
        }
        for chunk in new_groups.chunks(BATCH) {
            let mut qb = sqlx::QueryBuilder::<DB>::new("INSERT INTO grp (uuid, name, folder_id, display_name, description) ");
            qb.push_values(chunk, |mut b, (name, dn, desc, uuid)| {
                b.push_bind(uuid)
                    .push_bind(name.as_str())
                    .push_bind(name.parent().and_then(|p| folder_ids.get(p.as_str()).copied()))
                    .push_bind(*dn)
                    .push_bind(*desc);
            });
            qb.push(" RETURNING id, uuid, name");
            let rows: Vec<(i64, String, String)> = qb.build_query_as().fetch_all(&mut **tx).await.map_err(db("writing imported groups"))?;
            for (id, uuid, name) in rows {
                touched_groups.push(uuid.clone());
                group_by_name.insert(name, (id, uuid));
            }
        }
        summary.groups_created = new_groups.len();

        // Memberships.
        let mut subject_ids: HashMap<(String, String), i64> = HashMap::new();
        if plan.memberships.iter().any(|m| matches!(m.1, MemberRow::Subject(_))) {
            let rows: Vec<(i64, String, String)> = sqlx::query_as("SELECT id, source, subject_id FROM subject")
                .fetch_all(&mut **tx)
                .await
                .map_err(db("reading subject ids for the import"))?;
            subject_ids = rows.into_iter().map(|(id, s, i)| ((s, i), id)).collect();
        }
        let mut subject_pairs = Vec::new();
        let mut group_pairs = Vec::new();
        let mut membership_groups: HashSet<i64> = HashSet::new();
        for (group, member) in &plan.memberships {
            let gid = group_by_name[group.as_str()].0;
            membership_groups.insert(gid);
            match member {
                MemberRow::Subject(k) => {
                    let sid = subject_ids.get(&(k.source.clone(), k.id.clone())).copied().ok_or_else(|| not_found(format!("subject {k}")))?;
                    subject_pairs.push((gid, sid));
                }
                MemberRow::Group(m) => group_pairs.push((gid, group_by_name[m.as_str()].0)),
            }
        }
        // In key order, so the primary key's index grows at its end rather than everywhere.
        subject_pairs.sort_unstable();
        let bulk_load = Self::begin_bulk_membership_load(tx, subject_pairs.len()).await?;
        for (table, pairs) in [("member_subject (group_id, subject_id)", &subject_pairs), ("member_group (group_id, member_group_id)", &group_pairs)] {
            for chunk in pairs.chunks(JSON_BATCH * 5) {
                let json = serde_json::to_string(chunk).unwrap_or_else(|_| "[]".into());
                let sql = format!("INSERT INTO {table} {} ON CONFLICT DO NOTHING", DB::JSON_ID_PAIRS);
                let r = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)).bind(json).execute(&mut **tx).await.map_err(db("writing imported memberships"))?;
                summary.memberships_added += DB::rows_affected(&r) as usize;
            }
        }
        if let Some(load) = bulk_load {
            for statement in load.after {
                sqlx::query::<DB>(*statement).execute(&mut **tx).await.map_err(db("restoring the membership table's index and foreign keys after the import"))?;
            }
        }
        summary.memberships_present = plan.memberships.len() - summary.memberships_added;

        // Groups whose effective membership changed: those named, and every group above them.
        if !membership_groups.is_empty() {
            let all_edges: Vec<(i64, i64)> = sqlx::query_as("SELECT group_id, member_group_id FROM member_group")
                .fetch_all(&mut **tx)
                .await
                .map_err(db("reading group nesting"))?;
            let mut parents: HashMap<i64, Vec<i64>> = HashMap::new();
            for (g, m) in all_edges {
                parents.entry(m).or_default().push(g);
            }
            let mut seen: HashSet<i64> = membership_groups.clone();
            let mut stack: Vec<i64> = membership_groups.into_iter().collect();
            while let Some(g) = stack.pop() {
                for p in parents.get(&g).into_iter().flatten() {
                    if seen.insert(*p) {
                        stack.push(*p);
                    }
                }
            }
            let uuid_of: HashMap<i64, &String> = group_by_name.values().map(|(id, uuid)| (*id, uuid)).collect();
            touched_groups.extend(seen.into_iter().filter_map(|id| uuid_of.get(&id).map(|u| (*u).clone())));
        }

        // Markers.
        let mut provisioners = Vec::new();
        for m in &plan.markers {
            let marker = Marker { provisioner: m.provisioner.clone(), target: m.target.clone(), scope: m.scope, provision: m.provision };
            if Markers::assign_marker_in(tx, &marker).await? != Upsert::Unchanged {
                summary.markers_set += 1;
            }
            provisioners.push(m.provisioner.clone());
        }
        provisioners.sort();
        provisioners.dedup();

        let changed = summary.subjects_created + summary.subjects_updated + summary.folders_created + summary.groups_created
            + summary.groups_updated + summary.memberships_added + summary.markers_set;
        if changed > 0 {
            Changes::log_change(tx, ChangeKind::Import, touched_groups, touched_subjects, provisioners, serde_json::to_value(&summary).unwrap_or_default()).await?;
        }
        Ok(summary)
    }

    /// Sets `member_subject` up for a load of `adding` rows when the database gains by it (see
    /// [`BulkLoad`]): the load is large and at least half the table's size afterwards, so
    /// rebuilding the index and re-validating the foreign keys costs less than checking row by
    /// row. Altering the table needs its ownership; a registry user without it imports row by
    /// row as before (the attempt is undone to a savepoint). Returns the statements that restore
    /// the table, to run after the load.
    async fn begin_bulk_membership_load(tx: &mut Tx<DB>, adding: usize) -> Result<Option<BulkLoad>> {
        let Some(load) = DB::BULK_MEMBERSHIP_LOAD else { return Ok(None) };
        if adding < BULK_LOAD_MIN_ROWS {
            return Ok(None);
        }
        let present: i64 = sqlx::query_scalar("SELECT count(*) FROM member_subject").fetch_one(&mut **tx).await.map_err(db("counting memberships for the import"))?;
        if (adding as i64) * 2 < present {
            return Ok(None);
        }
        sqlx::query::<DB>("SAVEPOINT bulk_membership_load").execute(&mut **tx).await.map_err(db("starting the membership load"))?;
        for statement in load.before {
            if let Err(e) = sqlx::query::<DB>(*statement).execute(&mut **tx).await {
                tracing::debug!(error = %e, "The registry user cannot alter the membership table; importing memberships row by row.");
                sqlx::query::<DB>("ROLLBACK TO SAVEPOINT bulk_membership_load").execute(&mut **tx).await.map_err(db("undoing the membership load's set-up"))?;
                return Ok(None);
            }
        }
        Ok(Some(load))
    }
}
}
