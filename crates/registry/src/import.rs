//! Bulk import: reading JSON and CSV files into rows that remember where they came from, and the
//! pure validation that turns those rows plus the registry's current state into a write plan —
//! or into the complete list of bad rows, each with its file, line, object and field.
//!
//! JSON files hold an object with any of the arrays `subjects`, `folders`, `groups`,
//! `memberships`, `markers`. A CSV file holds one kind of record, recognised by its header:
//! `id` → subjects, `path` → folders, `provisioner` → markers, `group` → memberships,
//! `name` → groups. An import row is a whole record: a field it leaves out is stored empty.

use std::collections::{HashMap, HashSet};

use duoprov_model::name::{check_text, MAX_NAME_LEN};
use duoprov_model::{
    FolderPath, GroupName, MarkerScope, SubjectKey, ValidationError, ValidationErrors,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Where a row came from, for error messages: `memberships.csv line 7`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}", self.file, self.line)
    }
}

#[derive(Debug, Clone)]
pub struct Row<T> {
    pub origin: Origin,
    pub record: T,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SubjectRecord {
    pub source: Option<String>,
    pub id: String,
    pub name: Option<String>,
    pub login_id: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FolderRecord {
    pub path: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GroupRecord {
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
}

/// A membership: `group` holds either the subject (`subject`, optional `source`) or the group
/// `member_group`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MembershipRecord {
    pub group: String,
    pub subject: Option<String>,
    pub source: Option<String>,
    pub member_group: Option<String>,
}

/// A marker on a folder (`folder`, with `scope`) or a group (`group`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MarkerRecord {
    pub provisioner: String,
    pub folder: Option<String>,
    pub group: Option<String>,
    pub scope: Option<String>,
    pub provision: Option<bool>,
}

/// Everything one import brings, possibly read from several files.
#[derive(Debug, Clone, Default)]
pub struct ImportData {
    pub subjects: Vec<Row<SubjectRecord>>,
    pub folders: Vec<Row<FolderRecord>>,
    pub groups: Vec<Row<GroupRecord>>,
    pub memberships: Vec<Row<MembershipRecord>>,
    pub markers: Vec<Row<MarkerRecord>>,
}

/// What an import changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub subjects_created: usize,
    pub subjects_updated: usize,
    pub subjects_unchanged: usize,
    pub folders_created: usize,
    pub groups_created: usize,
    pub groups_updated: usize,
    pub memberships_added: usize,
    pub memberships_present: usize,
    pub markers_set: usize,
}

/// Line numbers of byte offsets, by binary search over the positions of the newlines.
struct Lines(Vec<usize>);

impl Lines {
    fn of(text: &str) -> Self {
        Lines(text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i).collect())
    }
    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|nl| *nl < offset) + 1
    }
}

impl ImportData {
    /// Appends the rows of one JSON document. Errors (syntax, unknown fields, wrong types) are
    /// collected per row.
    pub fn add_json(&mut self, file: &str, text: &str) -> Result<(), ValidationErrors> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Document<'a> {
            #[serde(borrow, default)]
            subjects: Vec<&'a RawValue>,
            #[serde(borrow, default)]
            folders: Vec<&'a RawValue>,
            #[serde(borrow, default)]
            groups: Vec<&'a RawValue>,
            #[serde(borrow, default)]
            memberships: Vec<&'a RawValue>,
            #[serde(borrow, default)]
            markers: Vec<&'a RawValue>,
        }
        let first = text.trim_start().chars().next();
        if first.is_some_and(|c| c != '{') {
            let what = match first {
                Some('[') => "an array",
                Some('"') => "a string",
                _ => "not an object",
            };
            return Err(ValidationError::new(
                format!("{file} line 1"),
                "document",
                format!(
                    "the top level is {what}; expected an object of lists: \
                     {{\"subjects\": [...], \"folders\": [...], \"groups\": [...], \"memberships\": [...], \"markers\": [...]}} (any of them may be left out)"
                ),
            )
            .into());
        }
        let doc: Document = serde_json::from_str(text).map_err(|e| {
            ValidationError::new(format!("{file} line {}", e.line()), "document", e.to_string())
        })?;
        let mut errors = ValidationErrors::default();
        let lines = Lines::of(text);
        fn rows<T: for<'de> Deserialize<'de>>(
            file: &str,
            text: &str,
            lines: &Lines,
            kind: &str,
            raws: Vec<&RawValue>,
            out: &mut Vec<Row<T>>,
            errors: &mut ValidationErrors,
        ) {
            for raw in raws {
                let offset = raw.get().as_ptr() as usize - text.as_ptr() as usize;
                let origin = Origin { file: file.to_owned(), line: lines.line(offset) };
                match serde_json::from_str::<T>(raw.get()) {
                    Ok(record) => out.push(Row { origin, record }),
                    Err(e) => errors.push(ValidationError::new(
                        format!("{origin}: {kind}"),
                        "record",
                        strip_serde_position(&e.to_string()),
                    )),
                }
            }
        }
        rows(file, text, &lines, "subject", doc.subjects, &mut self.subjects, &mut errors);
        rows(file, text, &lines, "folder", doc.folders, &mut self.folders, &mut errors);
        rows(file, text, &lines, "group", doc.groups, &mut self.groups, &mut errors);
        rows(file, text, &lines, "membership", doc.memberships, &mut self.memberships, &mut errors);
        rows(file, text, &lines, "marker", doc.markers, &mut self.markers, &mut errors);
        errors.into_result()
    }

    /// Appends the rows of one CSV document; its header says which kind of record it holds.
    pub fn add_csv(&mut self, file: &str, text: &str) -> Result<(), ValidationErrors> {
        let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
        let header_error = |msg: String| ValidationError::new(format!("{file} line 1"), "header", msg);
        let headers = reader.headers().map_err(|e| header_error(e.to_string()))?.clone();
        let columns: Vec<String> = headers.iter().map(|h| h.trim().to_owned()).collect();
        let has = |c: &str| columns.iter().any(|h| h == c);
        // Each kind by its key column, in the order the key decides (a marker names a group, a
        // membership a group, a subject has a name).
        const KINDS: [(&str, &str, &[&str]); 5] = [
            ("marker", "provisioner", &["provisioner", "folder", "group", "scope", "provision"]),
            ("folder", "path", &["path", "display_name", "description"]),
            ("membership", "group", &["group", "subject", "source", "member_group"]),
            ("subject", "id", &["source", "id", "name", "login_id", "email", "first_name", "last_name", "description"]),
            ("group", "name", &["name", "display_name", "description"]),
        ];
        let Some(&(kind, _, allowed)) = KINDS.iter().find(|(_, key, _)| has(key)) else {
            return Err(header_error(
                "cannot tell the kind of records: the header needs one of the columns id, path, name, group or provisioner".into(),
            )
            .into());
        };
        let mut errors = ValidationErrors::default();
        let foreign: Vec<&String> = columns.iter().filter(|c| !allowed.contains(&c.as_str())).collect();
        if !foreign.is_empty() {
            // Columns of another kind whose key column is missing: say which key is missing
            // rather than reading the rows as the wrong kind.
            if let Some((other, key, _)) = KINDS
                .iter()
                .find(|(other, _, cols)| *other != kind && foreign.iter().all(|c| cols.contains(&c.as_str())))
            {
                let listed: Vec<&str> = foreign.iter().map(|c| c.as_str()).collect();
                return Err(header_error(format!(
                    "the columns {} belong to {other} records, whose key column {key:?} is missing; add it (or remove those columns to import {kind} records)",
                    listed.join(", ")
                ))
                .into());
            }
        }
        let mut seen = HashSet::new();
        for c in &columns {
            if !allowed.contains(&c.as_str()) {
                errors.push(header_error(format!(
                    "unknown column {c:?} for {kind} records (allowed: {})",
                    allowed.join(", ")
                )));
            }
            if !seen.insert(c.clone()) {
                errors.push(header_error(format!("column {c:?} appears twice")));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        for result in reader.records() {
            let record = match result {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                    errors.push(ValidationError::new(format!("{file} line {line}"), "record", e.to_string()));
                    continue;
                }
            };
            let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
            let origin = Origin { file: file.to_owned(), line };
            let get = |c: &str| -> Option<String> {
                columns.iter().position(|h| h == c).and_then(|i| record.get(i)).filter(|v| !v.is_empty()).map(str::to_owned)
            };
            match kind {
                "subject" => self.subjects.push(Row {
                    origin,
                    record: SubjectRecord {
                        source: get("source"),
                        id: get("id").unwrap_or_default(),
                        name: get("name"),
                        login_id: get("login_id"),
                        email: get("email"),
                        first_name: get("first_name"),
                        last_name: get("last_name"),
                        description: get("description"),
                    },
                }),
                "folder" => self.folders.push(Row {
                    origin,
                    record: FolderRecord {
                        path: get("path").unwrap_or_default(),
                        display_name: get("display_name"),
                        description: get("description"),
                    },
                }),
                "group" => self.groups.push(Row {
                    origin,
                    record: GroupRecord {
                        name: get("name").unwrap_or_default(),
                        display_name: get("display_name"),
                        description: get("description"),
                    },
                }),
                "membership" => self.memberships.push(Row {
                    origin,
                    record: MembershipRecord {
                        group: get("group").unwrap_or_default(),
                        subject: get("subject"),
                        source: get("source"),
                        member_group: get("member_group"),
                    },
                }),
                _ => {
                    let provision = match get("provision").as_deref() {
                        None => None,
                        Some("true") | Some("TRUE") | Some("T") | Some("1") => Some(true),
                        Some("false") | Some("FALSE") | Some("F") | Some("0") => Some(false),
                        Some(other) => {
                            errors.push(ValidationError::new(
                                format!("{origin}: marker"),
                                "provision",
                                format!("must be true or false, not {other:?}"),
                            ));
                            continue;
                        }
                    };
                    self.markers.push(Row {
                        origin,
                        record: MarkerRecord {
                            provisioner: get("provisioner").unwrap_or_default(),
                            folder: get("folder"),
                            group: get("group"),
                            scope: get("scope"),
                            provision,
                        },
                    })
                }
            }
        }
        errors.into_result()
    }

    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty()
            && self.folders.is_empty()
            && self.groups.is_empty()
            && self.memberships.is_empty()
            && self.markers.is_empty()
    }
}

fn strip_serde_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// The registry as it stands, as much as import validation needs.
#[derive(Debug, Default)]
pub struct Existing {
    pub subjects: HashSet<SubjectKey>,
    pub folders: HashSet<String>,
    pub groups: HashSet<String>,
    /// Nesting edges (parent group name, member group name).
    pub group_edges: Vec<(String, String)>,
}

/// A validated subject row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRow {
    pub key: SubjectKey,
    pub name: Option<String>,
    pub login_id: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberRow {
    Subject(SubjectKey),
    Group(GroupName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerRow {
    pub provisioner: String,
    pub target: duoprov_model::MarkerTarget,
    pub scope: MarkerScope,
    pub provision: bool,
}

/// What a valid import writes. Folders include every parent that groups and folders need.
#[derive(Debug, Default)]
pub struct ImportPlan {
    pub subjects: Vec<SubjectRow>,
    /// Sorted so that parents come before children.
    pub folders: Vec<(FolderPath, Option<String>, Option<String>, bool)>,
    pub groups: Vec<(GroupName, Option<String>, Option<String>)>,
    pub memberships: Vec<(GroupName, MemberRow)>,
    pub markers: Vec<MarkerRow>,
}

const TEXT_MAX: usize = 1024;
const DESCRIPTION_MAX: usize = 4096;

fn text_field(errors: &mut ValidationErrors, object: &str, field: &str, value: &Option<String>, max: usize, multiline: bool) {
    if let Some(v) = value
        && let Err(e) = check_text(object, field, v, max, multiline) {
            errors.push(e);
        }
}

/// Checks a subject's identifying fields; shared by the CLI and the importer.
pub fn check_subject_key(object: &str, source: &str, id: &str) -> Result<(), ValidationError> {
    for (field, v) in [("source", source), ("id", id)] {
        if v.is_empty() {
            return Err(ValidationError::new(object, field, "must not be empty"));
        }
        check_text(object, field, v, MAX_NAME_LEN, false)?;
        if v.trim() != v {
            return Err(ValidationError::new(object, field, "starts or ends with white space"));
        }
    }
    Ok(())
}

/// Checks the attribute fields of a subject; shared by the CLI and the importer.
pub fn check_subject_fields<'a>(
    object: &str,
    fields: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> ValidationErrors {
    let mut errors = ValidationErrors::default();
    for (field, value) in fields {
        let (max, multiline) = if field == "description" { (DESCRIPTION_MAX, true) } else { (TEXT_MAX, false) };
        text_field(&mut errors, object, field, &value.map(str::to_owned), max, multiline);
    }
    errors
}

/// Checks a folder's or group's display name and description.
pub fn check_node_fields(object: &str, display_name: &Option<String>, description: &Option<String>) -> ValidationErrors {
    let mut errors = ValidationErrors::default();
    text_field(&mut errors, object, "display_name", display_name, TEXT_MAX, false);
    text_field(&mut errors, object, "description", description, DESCRIPTION_MAX, true);
    errors
}

/// Validates every row against the rules and the current registry, collecting every problem.
pub fn validate(data: &ImportData, existing: &Existing) -> Result<ImportPlan, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let mut plan = ImportPlan::default();
    let at = |o: &Origin, what: String| format!("{o}: {what}");

    // Subjects
    let mut subject_lines: HashMap<SubjectKey, usize> = HashMap::new();
    for row in &data.subjects {
        let r = &row.record;
        let source = r.source.clone().unwrap_or_else(|| SubjectKey::DEFAULT_SOURCE.to_owned());
        let key = SubjectKey::new(source, r.id.clone());
        let object = at(&row.origin, format!("subject {key}"));
        if let Err(e) = check_subject_key(&object, &key.source, &key.id) {
            errors.push(e);
            continue;
        }
        if let Some(first) = subject_lines.get(&key) {
            errors.push(ValidationError::new(object, "id", format!("duplicate of the subject on line {first}")));
            continue;
        }
        subject_lines.insert(key.clone(), row.origin.line);
        let field_errors = check_subject_fields(
            &object,
            [
                ("name", r.name.as_deref()),
                ("login_id", r.login_id.as_deref()),
                ("email", r.email.as_deref()),
                ("first_name", r.first_name.as_deref()),
                ("last_name", r.last_name.as_deref()),
                ("description", r.description.as_deref()),
            ],
        );
        if !field_errors.is_empty() {
            errors.0.extend(field_errors.0);
            continue;
        }
        plan.subjects.push(SubjectRow {
            key,
            name: r.name.clone(),
            login_id: r.login_id.clone(),
            email: r.email.clone(),
            first_name: r.first_name.clone(),
            last_name: r.last_name.clone(),
            description: r.description.clone(),
        });
    }

    // Folders named explicitly
    let mut folder_lines: HashMap<String, usize> = HashMap::new();
    let mut explicit_folders = Vec::new();
    // Where each folder and group of the import comes from, so errors found after the row loops
    // (a needed parent folder that is a group) still name a file and line.
    let mut origins: HashMap<String, &Origin> = HashMap::new();
    for row in &data.folders {
        let r = &row.record;
        let object = at(&row.origin, format!("folder {:?}", r.path));
        let path = match FolderPath::parse(&r.path) {
            Ok(p) => p,
            Err(e) => {
                errors.push(ValidationError::new(object, "path", e.message));
                continue;
            }
        };
        if let Some(first) = folder_lines.get(path.as_str()) {
            errors.push(ValidationError::new(object, "path", format!("duplicate of the folder on line {first}")));
            continue;
        }
        folder_lines.insert(path.as_str().to_owned(), row.origin.line);
        let fe = check_node_fields(&object, &r.display_name, &r.description);
        if !fe.is_empty() {
            errors.0.extend(fe.0);
            continue;
        }
        origins.insert(path.as_str().to_owned(), &row.origin);
        explicit_folders.push((path, r.display_name.clone(), r.description.clone()));
    }

    // Groups
    let mut group_lines: HashMap<String, usize> = HashMap::new();
    for row in &data.groups {
        let r = &row.record;
        let object = at(&row.origin, format!("group {:?}", r.name));
        let name = match GroupName::parse(&r.name) {
            Ok(n) => n,
            Err(e) => {
                errors.push(ValidationError::new(object, "name", e.message));
                continue;
            }
        };
        if let Some(first) = group_lines.get(name.as_str()) {
            errors.push(ValidationError::new(object, "name", format!("duplicate of the group on line {first}")));
            continue;
        }
        if folder_lines.contains_key(name.as_str()) || existing.folders.contains(name.as_str()) {
            errors.push(ValidationError::new(object, "name", "a folder of this name exists"));
            continue;
        }
        group_lines.insert(name.as_str().to_owned(), row.origin.line);
        let fe = check_node_fields(&object, &r.display_name, &r.description);
        if !fe.is_empty() {
            errors.0.extend(fe.0);
            continue;
        }
        origins.insert(name.as_str().to_owned(), &row.origin);
        plan.groups.push((name, r.display_name.clone(), r.description.clone()));
    }
    for (path, _, _) in &explicit_folders {
        if existing.groups.contains(path.as_str()) || group_lines.contains_key(path.as_str()) {
            let origin = origins.get(path.as_str()).map(|o| o.to_string()).unwrap_or_default();
            errors.push(ValidationError::new(format!("{origin}: folder {:?}", path.as_str()), "path", "a group of this name exists"));
        }
    }

    // Every folder the import needs: explicit ones, and the parents of folders and groups.
    let mut needed: HashMap<String, (FolderPath, Option<String>, Option<String>, bool)> = HashMap::new();
    // The first row that needs each implied folder.
    let mut needed_by: HashMap<String, &Origin> = HashMap::new();
    for (path, dn, desc) in &explicit_folders {
        for anc in GroupName::parse(path.as_str()).map(|g| g.ancestors()).unwrap_or_default() {
            if let Some(o) = origins.get(path.as_str()) {
                needed_by.entry(anc.as_str().to_owned()).or_insert(o);
            }
            needed.entry(anc.as_str().to_owned()).or_insert((anc, None, None, false));
        }
        needed.insert(path.as_str().to_owned(), (path.clone(), dn.clone(), desc.clone(), true));
    }
    for (name, _, _) in &plan.groups {
        for anc in name.ancestors() {
            if let Some(o) = origins.get(name.as_str()) {
                needed_by.entry(anc.as_str().to_owned()).or_insert(o);
            }
            needed.entry(anc.as_str().to_owned()).or_insert((anc, None, None, false));
        }
    }
    for (path, (_, _, _, explicit)) in &needed {
        if !explicit && (existing.groups.contains(path) || group_lines.contains_key(path)) {
            let origin = needed_by.get(path).map(|o| o.to_string()).unwrap_or_default();
            errors.push(ValidationError::new(
                format!("{origin}: folder {path:?}"),
                "path",
                "is needed as a folder, but a group of this name exists",
            ));
        }
    }
    let mut folders: Vec<_> = needed
        .into_values()
        .filter(|(p, _, _, explicit)| *explicit || !existing.folders.contains(p.as_str()))
        .collect();
    folders.sort_by(|a, b| a.0.as_str().matches(':').count().cmp(&b.0.as_str().matches(':').count()).then(a.0.cmp(&b.0)));
    plan.folders = folders;

    let group_known = |n: &str| existing.groups.contains(n) || group_lines.contains_key(n);
    let subject_known = |k: &SubjectKey| existing.subjects.contains(k) || subject_lines.contains_key(k);

    // Memberships
    let mut membership_lines: HashMap<(String, String), usize> = HashMap::new();
    let mut new_edges: Vec<(String, String, Origin)> = Vec::new();
    for row in &data.memberships {
        let r = &row.record;
        let object = at(&row.origin, format!("membership in {:?}", r.group));
        let group = match GroupName::parse(&r.group) {
            Ok(g) => g,
            Err(e) => {
                errors.push(ValidationError::new(object, "group", e.message));
                continue;
            }
        };
        if !group_known(group.as_str()) {
            errors.push(ValidationError::new(object, "group", format!("no group {:?} in the registry or the import", group.as_str())));
            continue;
        }
        let member = match (&r.subject, &r.member_group) {
            (Some(_), Some(_)) | (None, None) => {
                errors.push(ValidationError::new(object, "subject", "name exactly one of subject or member_group"));
                continue;
            }
            (Some(id), None) => {
                let key = SubjectKey::new(r.source.clone().unwrap_or_else(|| SubjectKey::DEFAULT_SOURCE.into()), id.clone());
                if !subject_known(&key) {
                    errors.push(ValidationError::new(object, "subject", format!("no subject {key} in the registry or the import")));
                    continue;
                }
                MemberRow::Subject(key)
            }
            (None, Some(g)) => {
                if r.source.is_some() {
                    errors.push(ValidationError::new(object, "source", "applies to subject members only"));
                    continue;
                }
                let member = match GroupName::parse(g) {
                    Ok(m) => m,
                    Err(e) => {
                        errors.push(ValidationError::new(object, "member_group", e.message));
                        continue;
                    }
                };
                if !group_known(member.as_str()) {
                    errors.push(ValidationError::new(object, "member_group", format!("no group {:?} in the registry or the import", member.as_str())));
                    continue;
                }
                if member == group {
                    errors.push(ValidationError::new(object, "member_group", "a group cannot be a member of itself"));
                    continue;
                }
                new_edges.push((group.as_str().to_owned(), member.as_str().to_owned(), row.origin.clone()));
                MemberRow::Group(member)
            }
        };
        let dedup_key = (
            group.as_str().to_owned(),
            match &member {
                MemberRow::Subject(k) => format!("s:{k}"),
                MemberRow::Group(g) => format!("g:{g}"),
            },
        );
        if let Some(first) = membership_lines.get(&dedup_key) {
            errors.push(ValidationError::new(object, "member", format!("duplicate of the membership on line {first}")));
            continue;
        }
        membership_lines.insert(dedup_key, row.origin.line);
        plan.memberships.push((group, member));
    }
    for cycle_edge in find_cycle_edges(&existing.group_edges, &new_edges) {
        let (g, m, origin) = cycle_edge;
        errors.push(ValidationError::new(
            format!("{origin}: membership in {g:?}"),
            "member_group",
            format!("adding group {m:?} would make a cycle ({m:?} already contains {g:?} through nesting)"),
        ));
    }

    // Markers
    for row in &data.markers {
        let r = &row.record;
        let object = at(&row.origin, format!("marker for {:?}", r.provisioner));
        if r.provisioner.trim().is_empty() {
            errors.push(ValidationError::new(object, "provisioner", "must not be empty"));
            continue;
        }
        let scope = match r.scope.as_deref().map(str::parse::<MarkerScope>).transpose() {
            Ok(s) => s.unwrap_or(MarkerScope::Sub),
            Err(e) => {
                errors.push(ValidationError::new(object, "scope", e));
                continue;
            }
        };
        let target = match (&r.folder, &r.group) {
            (Some(f), None) => match FolderPath::parse(f) {
                Ok(p) if existing.folders.contains(p.as_str()) || plan.folders.iter().any(|x| x.0 == p) => {
                    duoprov_model::MarkerTarget::Folder(p)
                }
                Ok(p) => {
                    errors.push(ValidationError::new(object, "folder", format!("no folder {:?} in the registry or the import", p.as_str())));
                    continue;
                }
                Err(e) => {
                    errors.push(ValidationError::new(object, "folder", e.message));
                    continue;
                }
            },
            (None, Some(g)) => match GroupName::parse(g) {
                Ok(n) if group_known(n.as_str()) => duoprov_model::MarkerTarget::Group(n),
                Ok(n) => {
                    errors.push(ValidationError::new(object, "group", format!("no group {:?} in the registry or the import", n.as_str())));
                    continue;
                }
                Err(e) => {
                    errors.push(ValidationError::new(object, "group", e.message));
                    continue;
                }
            },
            _ => {
                errors.push(ValidationError::new(object, "folder", "name exactly one of folder or group"));
                continue;
            }
        };
        plan.markers.push(MarkerRow {
            provisioner: r.provisioner.clone(),
            target,
            scope,
            provision: r.provision.unwrap_or(true),
        });
    }

    errors.into_result().map(|()| plan)
}

/// The new nesting edges that take part in a cycle of the combined graph.
fn find_cycle_edges<'a>(
    existing: &[(String, String)],
    new_edges: &'a [(String, String, Origin)],
) -> Vec<(&'a str, &'a str, &'a Origin)> {
    if new_edges.is_empty() {
        return Vec::new();
    }
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut adjacency: Vec<Vec<usize>> = Vec::new();
    let node = |name, ids: &mut HashMap<_, _>, adjacency: &mut Vec<Vec<usize>>| {
        let next = ids.len();
        let id = *ids.entry(name).or_insert(next);
        if id == adjacency.len() {
            adjacency.push(Vec::new());
        }
        id
    };
    let mut new_ids = Vec::with_capacity(new_edges.len());
    let all = existing.iter().map(|(g, m)| (g.as_str(), m.as_str(), true)).chain(new_edges.iter().map(|(g, m, _)| (g.as_str(), m.as_str(), false)));
    for (g, m, old) in all {
        let a = node(g, &mut ids, &mut adjacency);
        let b = node(m, &mut ids, &mut adjacency);
        adjacency[a].push(b);
        if !old {
            new_ids.push((a, b));
        }
    }
    let scc = strongly_connected(&adjacency);
    new_edges
        .iter()
        .zip(new_ids)
        .filter(|(_, (a, b))| scc[*a] == scc[*b])
        .map(|((g, m, o), _)| (g.as_str(), m.as_str(), o))
        .collect()
}

/// Tarjan's algorithm, iterative: the component number of every node.
pub(crate) fn strongly_connected(adjacency: &[Vec<usize>]) -> Vec<usize> {
    let n = adjacency.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut comp = vec![usize::MAX; n];
    let mut stack = Vec::new();
    let mut next_index = 0;
    let mut next_comp = 0;
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(start, 0)];
        while let Some(&mut (v, ref mut child)) = work.last_mut() {
            if *child == 0 && index[v] == usize::MAX {
                index[v] = next_index;
                low[v] = next_index;
                next_index += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if *child < adjacency[v].len() {
                let w = adjacency[v][*child];
                *child += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp[w] = next_comp;
                        if w == v {
                            break;
                        }
                    }
                    next_comp += 1;
                }
            }
        }
    }
    comp
}
