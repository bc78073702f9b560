//! A snapshot file as a source (`duoprov import --mirror SOURCE FILE…`): the import formats (JSON,
//! CSV) read as the whole truth for one source. Its subjects must be of the source's subject
//! source, its groups under the source's folder (a group's name is its key, so a renamed group in
//! a file is a new group), its memberships of groups it lists; folders are created as needed and
//! markers stay the operator's, so a file holding either is refused.

use duoprov_model::{GroupName, MirrorScope, Subject, SubjectKey};
use duoprov_registry::ImportData;

use crate::mirror::{SnapshotGroup, SnapshotMember, SourceSnapshot};

/// The snapshot the parsed files describe for `scope`, or every problem, each with its file and
/// line.
pub fn snapshot_of(scope: &MirrorScope, data: &ImportData) -> Result<SourceSnapshot, Vec<String>> {
    let mut errors = Vec::new();
    for row in &data.folders {
        errors.push(format!("{}: folder {}: a mirror file holds no folders (they are created as needed); import them without --mirror", row.origin, row.record.path));
    }
    for row in &data.markers {
        errors.push(format!("{}: marker of provisioner {}: markers are the operator's, never a source's; import them without --mirror", row.origin, row.record.provisioner));
    }
    let mut snapshot = SourceSnapshot::default();
    for row in &data.subjects {
        let r = &row.record;
        let source = r.source.clone().unwrap_or_else(|| SubjectKey::DEFAULT_SOURCE.to_string());
        if source != scope.subject_source {
            errors.push(format!("{}: subject {source}:{}: source {} mirrors subject source {} only", row.origin, r.id, scope.source, scope.subject_source));
            continue;
        }
        snapshot.subjects.push(Subject {
            source,
            id: r.id.clone(),
            name: r.name.clone(),
            login_id: r.login_id.clone(),
            email: r.email.clone(),
            first_name: r.first_name.clone(),
            last_name: r.last_name.clone(),
            description: r.description.clone(),
        });
    }
    for row in &data.groups {
        let r = &row.record;
        match GroupName::parse(&r.name) {
            Ok(name) if name.is_under(&scope.folder) => snapshot.groups.push(SnapshotGroup {
                key: name.to_string(),
                name,
                display_name: r.display_name.clone(),
                description: r.description.clone(),
                members: Vec::new(),
            }),
            Ok(name) => errors.push(format!("{}: group {name}: source {} mirrors folder {} only", row.origin, scope.source, scope.folder)),
            Err(e) => errors.push(format!("{}: group {}: {e}", row.origin, r.name)),
        }
    }
    for row in &data.memberships {
        let r = &row.record;
        let Some(group) = snapshot.groups.iter_mut().find(|g| g.name.as_str() == r.group) else {
            errors.push(format!("{}: membership of group {}: the file does not list that group; a mirror file lists every group it fills", row.origin, r.group));
            continue;
        };
        match (&r.subject, &r.member_group) {
            (Some(subject), None) => {
                let source = r.source.clone().unwrap_or_else(|| SubjectKey::DEFAULT_SOURCE.to_string());
                if source != scope.subject_source {
                    errors.push(format!("{}: membership of subject {source}:{subject} in group {}: source {} mirrors subject source {} only", row.origin, r.group, scope.source, scope.subject_source));
                } else {
                    group.members.push(SnapshotMember::Subject(subject.clone()));
                }
            }
            (None, Some(member)) => group.members.push(SnapshotMember::Group(member.clone())),
            _ => errors.push(format!("{}: membership of group {}: give exactly one of subject and member_group", row.origin, r.group)),
        }
    }
    if errors.is_empty() {
        Ok(snapshot)
    } else {
        Err(errors)
    }
}
