//! The desired Duo state: the provisioner's selected groups and their effective members,
//! translated through the field templates. Objects whose values cannot be sent (empty, too long,
//! two objects wanting one name) get an error and are *held*: nothing about them is created,
//! changed or removed until they are fixed.

use std::collections::{HashMap, HashSet};

use duoprov_model::{ProvisionerSelection, SubjectKey};

use crate::error::{ErrorCode, ErrorObject, ObjectError};
use crate::mapping::{GroupFields, Mapping, UserFields};

/// Longest username duoprov sends (Duo does not publish one; this keeps clear of it).
pub const MAX_USERNAME_LEN: usize = 100;
/// Longest group name duoprov sends.
pub const MAX_GROUP_NAME_LEN: usize = 100;
/// Longest free-text field (real name, e-mail, description) duoprov sends.
pub const MAX_TEXT_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredUser {
    pub key: SubjectKey,
    pub fields: UserFields,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredGroup {
    pub uuid: String,
    /// The registry's full name, for people reading the plan.
    pub registry_name: String,
    pub fields: GroupFields,
    /// Indexes into [`DesiredState::users`], sorted.
    pub members: Vec<u32>,
    /// Members that are held (their memberships are left as they are in Duo).
    pub held_members: Vec<SubjectKey>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    /// Sorted by uuid.
    pub groups: Vec<DesiredGroup>,
    /// Sorted by subject key.
    pub users: Vec<DesiredUser>,
    pub errors: Vec<ObjectError>,
    /// Groups that are selected but in error.
    pub held_groups: HashSet<String>,
    /// Subjects that are selected but in error.
    pub held_users: HashSet<SubjectKey>,
    /// Fields left unmanaged (`false` templates), by configuration key: never compared.
    pub unmanaged: std::collections::BTreeSet<String>,
    /// Uuids of linked groups whose registry group no longer exists (filled by the caller for
    /// `delete_groups = "registry_deleted"`, which deletes only these).
    pub deleted_groups: HashSet<String>,
    /// Why each selected group is selected (its deciding marker and the provisioner's selection
    /// rules), by uuid, for the plan's reasons; filled by the caller.
    pub selected_by: std::collections::HashMap<String, String>,
    /// Groups the provisioner's markers include but its selection rules (`select_regex`,
    /// `only_policy_groups`) leave out, by uuid, with the rule; filled by the caller.
    pub rule_excluded: std::collections::HashMap<String, String>,
    /// Every subject whose fields render and can be sent — the users, and the subjects held for
    /// a username clash — with its username's lowercase form ([`duoprov_model::username_key`]),
    /// sorted by key: what clash detection compares, as recorded for scoped incremental runs.
    pub rendered: Vec<(SubjectKey, String)>,
    /// Every selected group by uuid with the Duo group name it renders to, `None` when its name
    /// does not render or cannot be sent (held, clashing with no other), sorted by uuid: what
    /// group-name clash detection compares, as recorded for scoped incremental runs.
    pub rendered_groups: Vec<(String, Option<String>)>,
}

fn check(value: &str, max: usize) -> Result<(), (ErrorCode, String)> {
    if value.chars().count() > max {
        return Err((ErrorCode::Len, format!("is {} characters, more than {max}", value.chars().count())));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err((ErrorCode::Inv, format!("contains the control character U+{:04X}", c as u32)));
    }
    Ok(())
}

fn check_user(f: &UserFields) -> Result<(), (ErrorCode, String)> {
    if f.username.is_empty() {
        return Err((ErrorCode::Req, "username: the template gives an empty value".into()));
    }
    check(&f.username, MAX_USERNAME_LEN).map_err(|(c, m)| (c, format!("username: {m}")))?;
    for (name, v) in [("realname", &f.realname), ("email", &f.email), ("firstname", &f.firstname), ("lastname", &f.lastname)] {
        check(v, MAX_TEXT_LEN).map_err(|(c, m)| (c, format!("{name}: {m}")))?;
    }
    Ok(())
}

fn check_group(f: &GroupFields) -> Result<(), (ErrorCode, String)> {
    if f.name.is_empty() {
        return Err((ErrorCode::Req, "name: the template gives an empty value".into()));
    }
    check(&f.name, MAX_GROUP_NAME_LEN).map_err(|(c, m)| (c, format!("name: {m}")))?;
    check(&f.desc, MAX_TEXT_LEN).map_err(|(c, m)| (c, format!("desc: {m}")))
}

impl DesiredState {
    /// Translates a selection. With `eligible`, only those subjects become Duo users.
    pub fn build(selection: &ProvisionerSelection, mapping: &Mapping, eligible: Option<&HashSet<SubjectKey>>) -> DesiredState {
        Self::build_with(selection, mapping, eligible, &|_| 0)
    }

    /// [`DesiredState::build`] over part of a selection: `others(key)` is how many subjects
    /// outside `selection.subjects` render to the username of lowercase form `key`, so a subject
    /// of the part is held for a clash exactly as the whole selection would hold it.
    pub fn build_with(
        selection: &ProvisionerSelection,
        mapping: &Mapping,
        eligible: Option<&HashSet<SubjectKey>>,
        others: &dyn Fn(&str) -> usize,
    ) -> DesiredState {
        Self::build_part(selection, mapping, eligible, others, &|_| 0)
    }

    /// [`DesiredState::build_with`] over part of a selection's groups too: `other_groups(name)`
    /// is how many selected groups outside `selection.groups` render to the Duo group name
    /// `name`, so a group of the part is held for a name clash exactly as the whole selection
    /// would hold it.
    pub fn build_part(
        selection: &ProvisionerSelection,
        mapping: &Mapping,
        eligible: Option<&HashSet<SubjectKey>>,
        others: &dyn Fn(&str) -> usize,
        other_groups: &dyn Fn(&str) -> usize,
    ) -> DesiredState {
        let mut state = DesiredState {
            unmanaged: crate::mapping::UNMANAGEABLE.iter().filter(|k| !mapping.manages(k)).map(|k| (*k).to_owned()).collect(),
            ..Default::default()
        };
        // Users (selection.subjects is sorted by key).
        let mut index_of: Vec<Option<u32>> = vec![None; selection.subjects.len()];
        let mut candidates: Vec<(usize, UserFields)> = Vec::with_capacity(selection.subjects.len());
        let mut is_member = vec![false; selection.subjects.len()];
        for pg in &selection.groups {
            for m in &pg.members {
                if let Some(flag) = is_member.get_mut(*m as usize) {
                    *flag = true;
                }
            }
        }
        for (i, s) in selection.subjects.iter().enumerate() {
            if !is_member[i] {
                continue;
            }
            let key = s.key();
            if eligible.is_some_and(|e| !e.contains(&key)) {
                continue;
            }
            let object = ErrorObject::User { source: s.source.clone(), id: s.id.clone() };
            let fields = match mapping.user_fields(s) {
                Ok(f) => f,
                Err((tkey, message)) => {
                    state.errors.push(ObjectError { object, code: ErrorCode::Inv, message: format!("template {tkey}: {message}") });
                    state.held_users.insert(key);
                    continue;
                }
            };
            if let Err((code, message)) = check_user(&fields) {
                state.errors.push(ObjectError { object, code, message });
                state.held_users.insert(key);
                continue;
            }
            candidates.push((i, fields));
        }
        let mut by_username: HashMap<String, Vec<usize>> = HashMap::with_capacity(candidates.len());
        for (pos, (_, f)) in candidates.iter().enumerate() {
            by_username.entry(duoprov_model::username_key(&f.username)).or_default().push(pos);
        }
        state.rendered.reserve(candidates.len());
        for (i, fields) in candidates {
            let s = &selection.subjects[i];
            let key = duoprov_model::username_key(&fields.username);
            let same = by_username[&key].len() + others(&key);
            state.rendered.push((s.key(), key));
            if same > 1 {
                state.errors.push(ObjectError {
                    object: ErrorObject::User { source: s.source.clone(), id: s.id.clone() },
                    code: ErrorCode::Mat,
                    message: format!("{same} subjects map to the Duo username {:?}", fields.username),
                });
                state.held_users.insert(s.key());
                continue;
            }
            index_of[i] = Some(state.users.len() as u32);
            state.users.push(DesiredUser { key: s.key(), fields });
        }

        // Groups.
        let mut groups = Vec::with_capacity(selection.groups.len());
        for pg in &selection.groups {
            let g = &pg.group;
            let object = ErrorObject::Group { uuid: g.uuid.clone(), name: g.name.to_string() };
            let fields = match mapping.group_fields(g) {
                Ok(f) => f,
                Err((tkey, message)) => {
                    state.errors.push(ObjectError { object, code: ErrorCode::Inv, message: format!("template {tkey}: {message}") });
                    state.held_groups.insert(g.uuid.clone());
                    state.rendered_groups.push((g.uuid.clone(), None));
                    continue;
                }
            };
            if let Err((code, message)) = check_group(&fields) {
                state.errors.push(ObjectError { object, code, message });
                state.held_groups.insert(g.uuid.clone());
                state.rendered_groups.push((g.uuid.clone(), None));
                continue;
            }
            state.rendered_groups.push((g.uuid.clone(), Some(fields.name.clone())));
            let mut members: Vec<u32> = Vec::with_capacity(pg.members.len());
            let mut held_members = Vec::new();
            for m in &pg.members {
                match index_of.get(*m as usize).copied().flatten() {
                    Some(u) => members.push(u),
                    None => {
                        if let Some(s) = selection.subjects.get(*m as usize) {
                            let key = s.key();
                            if state.held_users.contains(&key) {
                                held_members.push(key);
                            }
                        }
                    }
                }
            }
            members.sort_unstable();
            groups.push(DesiredGroup { uuid: g.uuid.clone(), registry_name: g.name.to_string(), fields, members, held_members });
        }
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        for g in &groups {
            *by_name.entry(g.fields.name.as_str()).or_default() += 1;
        }
        let clashing: HashSet<String> =
            groups.iter().filter(|g| by_name[g.fields.name.as_str()] + other_groups(&g.fields.name) > 1).map(|g| g.uuid.clone()).collect();
        for g in groups {
            if clashing.contains(&g.uuid) {
                state.errors.push(ObjectError {
                    object: ErrorObject::Group { uuid: g.uuid.clone(), name: g.registry_name.clone() },
                    code: ErrorCode::Mat,
                    message: format!("several registry groups map to the Duo group name {:?}", g.fields.name),
                });
                state.held_groups.insert(g.uuid);
            } else {
                state.groups.push(g);
            }
        }
        state.groups.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        state.rendered_groups.sort();
        state.errors.sort_by(|a, b| a.object.cmp(&b.object));
        state
    }
}
