//! What the sync engine reads: a provisioner's selected groups with their effective members, in
//! one snapshot.

use super::*;

/// The selection area's functions (a namespace over the database type).
pub(super) struct Selection<DB>(PhantomData<DB>);

sql_impl! {
impl Selection<DB> {
    pub(super) async fn provisioner_selection(store: &SqlStore<DB>, provisioner: &str) -> Result<ProvisionerSelection> {
        let mut tx = store.begin_read().await?;
        let selection = Self::selection_in(&mut tx, provisioner).await?;
        tx.rollback().await.map_err(db("ending a read"))?;
        Ok(selection)
    }

    pub(super) async fn provisioner_selection_with_eligible(store: &SqlStore<DB>, provisioner: &str, eligible: &GroupName) -> Result<(ProvisionerSelection, Vec<EffectiveMember>)> {
        let mut tx = store.begin_read().await?;
        let selection = Self::selection_in(&mut tx, provisioner).await?;
        let members = Memberships::effective_in(&mut tx, eligible).await?;
        tx.rollback().await.map_err(db("ending a read"))?;
        Ok((selection, members))
    }

    /// The markers of `provisioner`, parsed.
    pub(super) async fn markers_in(tx: &mut Tx<DB>, provisioner: &str) -> Result<Vec<Marker>> {
        let markers: Vec<(Option<String>, Option<String>, String, bool)> = sqlx::query_as(
            "SELECT f.path, g.name, m.scope, m.provision FROM marker m \
             LEFT JOIN folder f ON f.id = m.folder_id LEFT JOIN grp g ON g.id = m.group_id WHERE m.provisioner = $1",
        )
        .bind(provisioner)
        .fetch_all(&mut **tx)
        .await
        .map_err(db(format!("reading the markers of {provisioner}")))?;
        let mut parsed = Vec::with_capacity(markers.len());
        for (folder, group, scope, provision) in markers {
            let target = match (folder, group) {
                (Some(f), _) => MarkerTarget::Folder(FolderPath::parse(&f)?),
                (None, Some(g)) => MarkerTarget::Group(GroupName::parse(&g)?),
                (None, None) => continue,
            };
            let scope = scope.parse::<MarkerScope>().map_err(|e| RegistryError::Refused(format!("marker of {provisioner}: {e}")))?;
            parsed.push(Marker { provisioner: provisioner.to_owned(), target, scope, provision });
        }
        Ok(parsed)
    }

    pub(super) async fn selection_in(tx: &mut Tx<DB>, provisioner: &str) -> Result<ProvisionerSelection> {
        let parsed = Self::markers_in(tx, provisioner).await?;
        let index = MarkerIndex::new(&parsed);
        let mut selection = ProvisionerSelection { provisioner: provisioner.to_owned(), ..Default::default() };
        if index.is_empty() {
            return Ok(selection);
        }

        let groups: Vec<GroupTuple> = sqlx::query_as(concat!("SELECT ", group_cols!(), " FROM grp g ORDER BY g.name"))
            .fetch_all(&mut **tx)
            .await
            .map_err(db("reading groups"))?;
        let selected: Vec<&GroupTuple> = groups.iter().filter(|g| index.selects(&g.2)).collect();
        if selected.is_empty() {
            return Ok(selection);
        }

        // Nesting edges are few next to subject memberships: walk them in memory.
        let edges: Vec<(i64, i64)> = sqlx::query_as("SELECT group_id, member_group_id FROM member_group")
            .fetch_all(&mut **tx)
            .await
            .map_err(db("reading group nesting"))?;
        let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
        for (g, m) in &edges {
            children.entry(*g).or_default().push(*m);
        }
        let reach = |root: i64| -> Vec<i64> {
            let mut seen = HashSet::from([root]);
            let mut stack = vec![root];
            while let Some(g) = stack.pop() {
                for c in children.get(&g).into_iter().flatten() {
                    if seen.insert(*c) {
                        stack.push(*c);
                    }
                }
            }
            seen.into_iter().collect()
        };
        let reached: Vec<Vec<i64>> = selected.iter().map(|g| reach(g.0)).collect();
        let mut all_groups: Vec<i64> = reached.iter().flatten().copied().collect();
        all_groups.sort_unstable();
        all_groups.dedup();

        let direct_sql = format!(
            "SELECT group_id, {} FROM member_subject WHERE group_id IN ({}) GROUP BY group_id",
            DB::CONCAT_SUBJECT_IDS, DB::JSON_IDS
        );
        let ids_json = serde_json::to_string(&all_groups).unwrap_or_else(|_| "[]".into());
        let direct: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(direct_sql))
            .bind(&ids_json)
            .fetch_all(&mut **tx)
            .await
            .map_err(db("reading group members"))?;
        let direct: HashMap<i64, Vec<i64>> = direct.into_iter().map(|(g, list)| (g, parse_ids(&list))).collect();

        let mut member_rows: Vec<Vec<i64>> = Vec::with_capacity(selected.len());
        let mut all_subjects: Vec<i64> = Vec::new();
        for groups in &reached {
            let mut members: Vec<i64> = groups.iter().filter_map(|g| direct.get(g)).flatten().copied().collect();
            members.sort_unstable();
            members.dedup();
            all_subjects.extend_from_slice(&members);
            member_rows.push(members);
        }
        all_subjects.sort_unstable();
        all_subjects.dedup();

        let subjects_sql = format!(
            concat!("SELECT ", subject_cols!(), " FROM subject s WHERE s.id IN ({}) ORDER BY s.source, s.subject_id"),
            DB::JSON_IDS
        );
        let subject_rows: Vec<SubjectTuple> = sqlx::query_as(sqlx::AssertSqlSafe(subjects_sql))
            .bind(serde_json::to_string(&all_subjects).unwrap_or_else(|_| "[]".into()))
            .fetch_all(&mut **tx)
            .await
            .map_err(db("reading the members' subjects"))?;
        let mut position: HashMap<i64, u32> = HashMap::with_capacity(subject_rows.len());
        for (i, row) in subject_rows.iter().enumerate() {
            position.insert(row.0, i as u32);
        }
        selection.subjects = subject_rows.into_iter().map(subject_of).collect();
        for (g, members) in selected.into_iter().zip(member_rows) {
            let mut members: Vec<u32> = members.iter().filter_map(|id| position.get(id).copied()).collect();
            members.sort_unstable();
            selection.groups.push(ProvisionableGroup { group: group_of(g)?, members });
        }
        Ok(selection)
    }
}
}
