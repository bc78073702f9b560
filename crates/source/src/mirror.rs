//! The pure part of a source: the snapshot a source hands over (its subjects, the groups under its
//! folder, their direct members), the diff that turns what the registry holds in the source's
//! scope into exactly that snapshot, and the safety rules that refuse a diff removing too much.
//! No I/O: readers (LDAP, files) build a [`SourceSnapshot`]; the store applies the
//! [`MirrorChanges`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use duoprov_model::{
    counted, GroupMember, GroupName, MirrorChanges, MirrorGroup, MirrorGroupUpdate, MirrorScope, OwnedState, Subject, SubjectKey,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A direct member as a source names it: a subject by its id within the subject source, or a
/// group by its key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "lowercase")]
pub enum SnapshotMember {
    Subject(String),
    Group(String),
}

/// A group as the source has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotGroup {
    /// Stable across renames (an LDAP entry's `entryUUID`, a file's group name).
    pub key: String,
    /// The registry name, under the source's folder.
    pub name: GroupName,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub members: Vec<SnapshotMember>,
}

/// Everything one source holds, read in one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSnapshot {
    /// Each with `source` equal to the scope's subject source.
    pub subjects: Vec<Subject>,
    pub groups: Vec<SnapshotGroup>,
    /// What the reader found wrong but could leave out without harm (a member that names no
    /// entry): reported with the run, not fatal for the rest.
    pub problems: Vec<String>,
}

impl SourceSnapshot {
    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty() && self.groups.is_empty()
    }
}

/// A diff and what it leaves out of the snapshot (members naming nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceDiff {
    pub changes: MirrorChanges,
    pub problems: Vec<String>,
}

/// The changes that make what the registry holds in `scope` equal to `snapshot`.
///
/// Groups are matched by key first, then by name (a group made before the source recorded its
/// key, or an entry deleted and re-created under the same name); a matched group whose name
/// changed is renamed, keeping its uuid. A snapshot that contradicts itself (two subjects with
/// one id, two groups with one key or name, an object outside the scope) is an error listing
/// every problem; a member naming no subject or group of the snapshot is left out and reported.
pub fn diff(scope: &MirrorScope, owned: &OwnedState, snapshot: &SourceSnapshot) -> Result<SourceDiff, Vec<String>> {
    let mut errors = Vec::new();
    let mut problems = snapshot.problems.clone();

    // Subjects.
    let mut wanted_subjects: BTreeMap<&str, &Subject> = BTreeMap::new();
    for s in &snapshot.subjects {
        if s.source != scope.subject_source {
            errors.push(format!("subject {}:{} is not of subject source {}", s.source, s.id, scope.subject_source));
        } else if wanted_subjects.insert(s.id.as_str(), s).is_some() {
            errors.push(format!("subject {} appears twice in the source", s.key()));
        }
    }
    // Groups.
    let mut by_key: BTreeMap<&str, &SnapshotGroup> = BTreeMap::new();
    let mut names: BTreeSet<&GroupName> = BTreeSet::new();
    for g in &snapshot.groups {
        if !g.name.is_under(&scope.folder) {
            errors.push(format!("group {} is not under the source's folder {}", g.name, scope.folder));
        }
        if by_key.insert(g.key.as_str(), g).is_some() {
            errors.push(format!("group key {} appears twice in the source", g.key));
        }
        if !names.insert(&g.name) {
            errors.push(format!("group {} appears twice in the source", g.name));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut changes = MirrorChanges::default();
    let owned_subjects: HashMap<&str, &Subject> = owned.subjects.iter().map(|s| (s.id.as_str(), s)).collect();
    for (id, s) in &wanted_subjects {
        match owned_subjects.get(id) {
            None => changes.subjects_added.push((*s).clone()),
            Some(current) if *current != *s => changes.subjects_updated.push((*s).clone()),
            Some(_) => {}
        }
    }
    for s in &owned.subjects {
        if !wanted_subjects.contains_key(s.id.as_str()) {
            changes.subjects_removed.push(s.key());
        }
    }

    // Match groups: by key, then by name among the owned groups left.
    let mut matched: BTreeMap<&str, usize> = BTreeMap::new(); // snapshot key -> owned index
    let mut taken = vec![false; owned.groups.len()];
    for (i, og) in owned.groups.iter().enumerate() {
        if let Some(k) = og.key.as_deref()
            && by_key.contains_key(k) && !matched.contains_key(k) {
                matched.insert(k, i);
                taken[i] = true;
            }
    }
    let owned_by_name: HashMap<&GroupName, usize> = owned.groups.iter().enumerate().map(|(i, og)| (&og.group.name, i)).collect();
    for g in &snapshot.groups {
        if matched.contains_key(g.key.as_str()) {
            continue;
        }
        if let Some(&i) = owned_by_name.get(&g.name)
            && !taken[i] {
                matched.insert(g.key.as_str(), i);
                taken[i] = true;
            }
    }
    for (i, og) in owned.groups.iter().enumerate() {
        if !taken[i] {
            changes.groups_removed.push(og.group.name.clone());
        }
    }
    for g in &snapshot.groups {
        match matched.get(g.key.as_str()) {
            Some(&i) => {
                let og = &owned.groups[i];
                if og.group.name != g.name
                    || og.group.display_name != g.display_name
                    || og.group.description != g.description
                    || og.key.as_deref() != Some(g.key.as_str())
                {
                    let to = MirrorGroup { key: g.key.clone(), name: g.name.clone(), display_name: g.display_name.clone(), description: g.description.clone() };
                    changes.groups_updated.push(MirrorGroupUpdate { from: og.group.name.clone(), to });
                }
            }
            None => changes.groups_added.push(MirrorGroup {
                key: g.key.clone(),
                name: g.name.clone(),
                display_name: g.display_name.clone(),
                description: g.description.clone(),
            }),
        }
    }

    // Memberships, compared on identities (an owned group, or a new group by key) so renames and
    // a removed group sharing a name with a renamed one cannot mix; removals are named as the
    // registry has them now, additions by the names after the renames.
    #[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
    enum Id<'a> {
        Owned(usize),
        New(&'a str),
    }
    #[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
    enum M<'a> {
        Subject(SubjectKey),
        Group(Id<'a>),
    }
    let owned_index: HashMap<&GroupName, usize> = owned_by_name;
    let owned_to_snapshot: HashMap<usize, &SnapshotGroup> = matched.iter().map(|(k, i)| (*i, by_key[k])).collect();
    let snapshot_id = |key: &str| -> Option<Id> {
        let g = by_key.get(key)?;
        Some(match matched.get(g.key.as_str()) {
            Some(&i) => Id::Owned(i),
            None => Id::New(g.key.as_str()),
        })
    };
    let current_name = |id: &Id| -> GroupName {
        match id {
            Id::Owned(i) => owned.groups[*i].group.name.clone(),
            Id::New(k) => by_key[k].name.clone(),
        }
    };
    let final_name = |id: &Id| -> GroupName {
        match id {
            Id::Owned(i) => match owned_to_snapshot.get(i) {
                Some(g) => g.name.clone(),
                None => owned.groups[*i].group.name.clone(),
            },
            Id::New(k) => by_key[k].name.clone(),
        }
    };
    let mut current: BTreeMap<Id, BTreeSet<M>> = BTreeMap::new();
    for (i, og) in owned.groups.iter().enumerate() {
        let set = og
            .members
            .iter()
            .map(|m| match m {
                GroupMember::Subject(k) => M::Subject(k.clone()),
                // Members of an owned group are in the folder (a group outside it is treated as
                // one this source does not hold, and so removed).
                GroupMember::Group { name } => match owned_index.get(name) {
                    Some(&j) => M::Group(Id::Owned(j)),
                    None => M::Group(Id::New("")),
                },
            })
            .collect();
        current.insert(Id::Owned(i), set);
    }
    let mut wanted: BTreeMap<Id, BTreeSet<M>> = BTreeMap::new();
    for g in &snapshot.groups {
        let mut set = BTreeSet::new();
        for m in &g.members {
            match m {
                SnapshotMember::Subject(id) if wanted_subjects.contains_key(id.as_str()) => {
                    set.insert(M::Subject(SubjectKey::new(&scope.subject_source, id)));
                }
                SnapshotMember::Subject(id) => problems.push(format!("group {} has a member {id} that the source does not hold; left out", g.name)),
                SnapshotMember::Group(key) if *key == g.key => problems.push(format!("group {} is listed as a member of itself; left out", g.name)),
                SnapshotMember::Group(key) => match snapshot_id(key) {
                    Some(id) => {
                        set.insert(M::Group(id));
                    }
                    None => problems.push(format!("group {} has a member group {key} that the source does not hold; left out", g.name)),
                },
            }
        }
        wanted.insert(snapshot_id(&g.key).expect("every snapshot group has an identity"), set);
    }
    let empty = BTreeSet::new();
    for (gid, members) in &current {
        let keep = wanted.get(gid).unwrap_or(&empty);
        let group = current_name(gid);
        for m in members.difference(keep) {
            let member = match m {
                M::Subject(k) => GroupMember::Subject(k.clone()),
                M::Group(Id::New("")) => continue,
                M::Group(id) => GroupMember::Group { name: current_name(id) },
            };
            changes.members_removed.push((group.clone(), member));
        }
    }
    // Members of an owned group outside the folder, by their own names.
    for og in &owned.groups {
        for m in &og.members {
            if let GroupMember::Group { name } = m
                && !owned_index.contains_key(name) {
                    changes.members_removed.push((og.group.name.clone(), m.clone()));
                }
        }
    }
    for (gid, members) in &wanted {
        let have = current.get(gid).unwrap_or(&empty);
        let group = final_name(gid);
        for m in members.difference(have) {
            let member = match m {
                M::Subject(k) => GroupMember::Subject(k.clone()),
                M::Group(id) => GroupMember::Group { name: final_name(id) },
            };
            changes.members_added.push((group.clone(), member));
        }
    }
    changes.members_removed.sort();
    changes.members_added.sort();
    Ok(SourceDiff { changes, problems })
}

/// When a source's run is refused for removing too much.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Most removals (subjects, groups and memberships together) in one run.
    pub max_removals: usize,
    /// Most removals in one run as a percentage of the objects the source owns (subjects, groups
    /// and memberships), once it owns at least `percent_rule_min_objects`.
    pub max_removal_percent: u32,
    pub percent_rule_min_objects: usize,
    /// Most membership removals from one group, as a percentage of its current members, for
    /// groups of at least `percent_rule_min_members`.
    pub max_group_removal_percent: u32,
    pub percent_rule_min_members: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { max_removals: 500, max_removal_percent: 20, percent_rule_min_objects: 50, max_group_removal_percent: 30, percent_rule_min_members: 10 }
    }
}

/// A refused run: why, every removal it would make (sorted, by name), and the digest that
/// approves exactly that list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub reasons: Vec<String>,
    pub removals: Vec<String>,
    pub digest: String,
}

impl Refusal {
    /// The message shown to people; `approve` is the command that approves this exact list,
    /// without its digest (`duoprov source sync ldap`).
    pub fn message(&self, source: &str, approve: &str) -> String {
        let mut out = format!("refused to mirror source {source}; nothing was changed:\n");
        for r in &self.reasons {
            out.push_str(&format!("  - {r}\n"));
        }
        out.push_str(&format!("it would remove {} (removal digest {}):\n", counted(self.removals.len(), "object", "objects"), self.digest));
        for r in &self.removals {
            out.push_str(&format!("    {r}\n"));
        }
        out.push_str(&format!(
            "to apply exactly {}, run `{approve} --approve {}` (refused again if the list changes); or fix the source, or raise the thresholds in [source.{source}.thresholds]",
            if self.removals.len() == 1 { "this removal".to_string() } else { format!("these {} removals", self.removals.len()) },
            self.digest
        ));
        out
    }
}

/// Every removal of the changes, one line each, sorted: subjects, groups, then memberships.
pub fn removals(changes: &MirrorChanges) -> Vec<String> {
    let mut subjects: Vec<String> = changes.subjects_removed.iter().map(|k| format!("remove subject {k}")).collect();
    let mut groups: Vec<String> = changes.groups_removed.iter().map(|g| format!("remove group {g}")).collect();
    let mut members: Vec<String> = changes.members_removed.iter().map(|(g, m)| format!("remove {m} from group {g}")).collect();
    subjects.sort();
    groups.sort();
    members.sort();
    subjects.into_iter().chain(groups).chain(members).collect()
}

/// The first 12 hex digits of SHA-256 over the source's name and its sorted removal lines: two
/// runs share it only if they remove exactly the same objects.
pub fn removal_digest(source: &str, changes: &MirrorChanges) -> String {
    let mut lines = removals(changes);
    lines.sort();
    let mut hasher = Sha256::new();
    hasher.update(b"duoprov source removals v1\n");
    hasher.update(source.as_bytes());
    for l in &lines {
        hasher.update(b"\n");
        hasher.update(l.as_bytes());
    }
    let mut digest = hex::encode(hasher.finalize());
    digest.truncate(12);
    digest
}

/// Checks a diff before it is applied: refuses a source that answers empty while the registry
/// holds objects it owns, and removals beyond the thresholds, unless `approve` names the digest
/// of exactly this removal list. A digest that does not match refuses whatever the thresholds say.
pub fn check(source: &str, owned: &OwnedState, snapshot: &SourceSnapshot, changes: &MirrorChanges, t: &Thresholds, approve: Option<&str>) -> Result<(), Refusal> {
    let digest = removal_digest(source, changes);
    let mut reasons = Vec::new();
    let approved = match approve.map(str::trim) {
        Some(given) if given.eq_ignore_ascii_case(&digest) => true,
        Some(given) => {
            reasons.push(format!("the approval names digest {given}, which does not match this run's removals (digest {digest}): the list changed since it was shown, or the digest is wrong"));
            false
        }
        None => false,
    };
    if snapshot.is_empty() && !owned.is_empty() {
        reasons.push(format!(
            "the source answered empty while the registry holds {} and {} it owns; an empty or unreadable source must not empty the registry",
            counted(owned.subjects.len(), "subject", "subjects"),
            counted(owned.groups.len(), "group", "groups")
        ));
    }
    let removals_n = changes.subjects_removed.len() + changes.groups_removed.len() + changes.members_removed.len();
    if removals_n > t.max_removals {
        reasons.push(format!("{removals_n} removals exceed max_removals = {}", t.max_removals));
    }
    let owned_n = owned.subjects.len() + owned.groups.len() + owned.groups.iter().map(|g| g.members.len()).sum::<usize>();
    if owned_n >= t.percent_rule_min_objects && (removals_n as u64) * 100 > (owned_n as u64) * u64::from(t.max_removal_percent) {
        reasons.push(format!("{removals_n} removals of {owned_n} owned objects exceed max_removal_percent = {}", t.max_removal_percent));
    }
    let mut per_group: BTreeMap<&GroupName, usize> = BTreeMap::new();
    for (g, _) in &changes.members_removed {
        *per_group.entry(g).or_default() += 1;
    }
    // Sizes by final name: a renamed group's members are counted under its new name.
    let mut sizes: HashMap<GroupName, usize> = owned.groups.iter().map(|g| (g.group.name.clone(), g.members.len())).collect();
    for u in &changes.groups_updated {
        if let Some(n) = sizes.remove(&u.from) {
            sizes.insert(u.to.name.clone(), n);
        }
    }
    for (g, n) in per_group {
        let size = sizes.get(g).copied().unwrap_or(0);
        if size >= t.percent_rule_min_members && (n as u64) * 100 > (size as u64) * u64::from(t.max_group_removal_percent) {
            reasons.push(format!("{n} of {size} members of group {g} would be removed, over max_group_removal_percent = {}", t.max_group_removal_percent));
        }
    }
    if reasons.is_empty() || approved {
        return Ok(());
    }
    Err(Refusal { reasons, removals: removals(changes), digest })
}
