//! The Duo users table (`duo_user`, Grouper's `grouper_prov_duo_user`): the row type, the pure
//! mapping from Duo user objects to rows with Grouper's encodings, the [`DuoUserStore`] trait the
//! SQL backends implement (`sql/duo_users.rs`), and [`load`], the one call a full sync or
//! `duoprov load-users` makes with the users it read.
//!
//! Encodings (as Grouper stores them; see `docs/duo-users.md`):
//! - `aliases`: every alias (the `aliases` object and the legacy `alias1..4`, each once), a comma
//!   inside an alias written `&#x2c;`, sorted, joined with `,`;
//! - `phones`: the non-blank phone `number`s, escaped the same way, sorted, joined with `,`;
//! - `is_push_enabled`: `T` when any phone has `"activated": true`, else `F`;
//! - `is_enrolled`: `T`/`F`; times: epoch seconds as Duo gives them;
//! - blank text (Duo's `""` or `null`, no aliases, no numbered phones) is stored as NULL, except
//!   `user_name`, which is kept as given (the column is NOT NULL).

use std::collections::HashMap;

use async_trait::async_trait;
use duoprov_duo_wire::types::User;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{RegistryError, Result};

/// How a comma inside an alias or a phone number is written (Grouper's escape).
pub const COMMA_ESCAPE: &str = "&#x2c;";

/// One row of `duo_user`, column for column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoUserRow {
    /// The provisioner's name (Grouper's provisioner config id).
    pub config_id: String,
    /// Duo's `user_id`.
    pub user_id: String,
    /// Sorted, comma-joined aliases (`&#x2c;` for a comma inside one); NULL when none.
    pub aliases: Option<String>,
    /// Sorted, comma-joined phone numbers; NULL when no phone has a number.
    pub phones: Option<String>,
    /// `T` when any phone is activated for Duo Push, else `F`.
    pub is_push_enabled: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `T` or `F`.
    pub is_enrolled: Option<String>,
    /// Epoch seconds.
    pub last_directory_sync: Option<i64>,
    pub notes: Option<String>,
    pub real_name: Option<String>,
    /// `active`, `bypass`, `disabled`, `locked out`, `pending deletion` (as Duo spells it).
    pub status: Option<String>,
    /// Duo's `username`.
    pub user_name: String,
    /// Epoch seconds (NULL only when Duo omitted `created`).
    pub created_at: Option<i64>,
    /// Epoch seconds of the last login; NULL when the user never logged in.
    pub last_login_time: Option<i64>,
}

impl DuoUserRow {
    /// The text columns with their names, for checks that apply to every one of them.
    pub fn text_columns(&self) -> [(&'static str, Option<&str>); 13] {
        [
            ("config_id", Some(self.config_id.as_str())),
            ("user_id", Some(self.user_id.as_str())),
            ("aliases", self.aliases.as_deref()),
            ("phones", self.phones.as_deref()),
            ("is_push_enabled", self.is_push_enabled.as_deref()),
            ("email", self.email.as_deref()),
            ("first_name", self.first_name.as_deref()),
            ("last_name", self.last_name.as_deref()),
            ("is_enrolled", self.is_enrolled.as_deref()),
            ("notes", self.notes.as_deref()),
            ("real_name", self.real_name.as_deref()),
            ("status", self.status.as_deref()),
            ("user_name", Some(self.user_name.as_str())),
        ]
    }
}

/// Something odd about one Duo user, found while mapping; the user is still loaded unless
/// `skipped` says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserProblem {
    /// The Duo `user_id` (empty when Duo gave none).
    pub user_id: String,
    /// The Duo `username`.
    pub username: String,
    /// What is odd, naming the field.
    pub message: String,
    /// True when the user has no row because of it.
    pub skipped: bool,
}

/// The rows of one load, and what was odd about the input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DuoUserRows {
    /// One row per distinct `user_id`, in the order Duo listed the users.
    pub rows: Vec<DuoUserRow>,
    pub problems: Vec<UserProblem>,
}

/// What [`DuoUserStore::replace_duo_users`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplaceCounts {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub unchanged: u64,
}

/// When a provisioner's rows were last replaced, and how many there were then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoUserLoad {
    /// Epoch seconds.
    pub loaded_at: i64,
    pub users: i64,
}

/// Which rows a report wants; every condition set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DuoUserFilter {
    /// Only users no registry subject maps to (no subject's `login_id` equals the Duo username,
    /// ignoring case).
    pub not_in_registry: bool,
    /// Only users with `is_enrolled` other than `T`.
    pub not_enrolled: bool,
    /// Only users with this status (ignoring case).
    pub status: Option<String>,
    /// Only users whose last login (or, for those who never logged in, creation) is before this
    /// epoch second; a user with neither time counts as stale.
    pub stale_before: Option<i64>,
}

/// The Duo users table of one registry database.
#[async_trait]
pub trait DuoUserStore: Send + Sync {
    /// Makes the rows of `config_id` exactly `rows` in one transaction — inserting new users,
    /// updating changed ones, deleting those gone — and records the load time. Rows must all
    /// carry `config_id`, have distinct `user_id`s and no NUL characters; otherwise nothing is
    /// written. On any failure the previous rows stay as they were.
    async fn replace_duo_users(&self, config_id: &str, rows: &[DuoUserRow]) -> Result<ReplaceCounts>;

    /// The rows of `config_id` that pass `filter`, by `user_name` then `user_id`.
    async fn duo_users(&self, config_id: &str, filter: &DuoUserFilter) -> Result<Vec<DuoUserRow>>;

    /// When `config_id`'s rows were last replaced; `None` when never.
    async fn duo_user_load(&self, config_id: &str) -> Result<Option<DuoUserLoad>>;
}

/// Problems [`load`] logs one by one; the rest are counted in one line (all are in the outcome).
pub const LOGGED_PROBLEMS: usize = 50;

/// What [`load`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoadOutcome {
    /// Rows now in the table for the provisioner.
    pub users: u64,
    pub counts: ReplaceCounts,
    /// Odd input, by user (also logged as warnings).
    pub problems: Vec<UserProblem>,
}

/// Maps `users` (as read from `GET /admin/v1/users`) to rows and makes `config_id`'s part of the
/// table mirror them. This is what a full sync calls at its end when `load_duo_users = true`,
/// with the users it already read.
pub async fn load<S: DuoUserStore + ?Sized>(store: &S, config_id: &str, users: &[User]) -> Result<LoadOutcome> {
    let mapped = rows_from_users(config_id, users);
    for p in mapped.problems.iter().take(LOGGED_PROBLEMS) {
        tracing::warn!(user_id = %p.user_id, username = %p.username, skipped = p.skipped, "Duo user: {}", p.message);
    }
    if mapped.problems.len() > LOGGED_PROBLEMS {
        tracing::warn!(more = mapped.problems.len() - LOGGED_PROBLEMS, "More odd Duo users than logged; all are in the load outcome.");
    }
    let counts = store.replace_duo_users(config_id, &mapped.rows).await?;
    Ok(LoadOutcome { users: mapped.rows.len() as u64, counts, problems: mapped.problems })
}

/// Writes a comma inside a value as [`COMMA_ESCAPE`].
pub fn escape_commas(value: &str) -> String {
    value.replace(',', COMMA_ESCAPE)
}

/// Escapes, sorts (by bytes, i.e. by code point) and joins; `None` for an empty list.
fn join_sorted<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut escaped: Vec<String> = values.into_iter().map(escape_commas).collect();
    if escaped.is_empty() {
        return None;
    }
    escaped.sort();
    Some(escaped.join(","))
}

/// `T` or `F`.
pub fn flag(value: bool) -> String {
    if value { "T".into() } else { "F".into() }
}

fn blank_as_null(value: &str) -> Option<String> {
    if value.is_empty() { None } else { Some(value.to_owned()) }
}

/// The number of one phone object: a non-blank string (a JSON number is taken as its digits);
/// `None` for a phone without one (tablets, hardware-only entries, odd shapes).
fn phone_number(phone: &Value) -> Option<String> {
    match phone.get("number")? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn phone_activated(phone: &Value) -> bool {
    matches!(phone.get("activated"), Some(Value::Bool(true)))
}

/// PostgreSQL cannot store NUL in text; replace it (and say so) rather than lose the user.
fn strip_nul(field: &str, value: &mut Option<String>, notes: &mut Vec<String>) {
    if let Some(v) = value.as_mut().filter(|v| v.contains('\0')) {
        *v = v.replace('\0', "\u{FFFD}");
        notes.push(format!("{field} contains a NUL character, stored as U+FFFD"));
    }
}

/// The row of one Duo user, and notes on anything that had to be adjusted to store it.
pub fn row_from_user(config_id: &str, user: &User) -> (DuoUserRow, Vec<String>) {
    let numbers: Vec<String> = user.phones.iter().filter_map(phone_number).collect();
    let mut row = DuoUserRow {
        config_id: config_id.to_owned(),
        user_id: user.user_id.clone(),
        aliases: join_sorted(user.all_aliases()),
        phones: join_sorted(numbers.iter().map(String::as_str)),
        is_push_enabled: Some(flag(user.phones.iter().any(phone_activated))),
        email: blank_as_null(&user.email),
        first_name: blank_as_null(&user.firstname),
        last_name: blank_as_null(&user.lastname),
        is_enrolled: Some(flag(user.is_enrolled)),
        last_directory_sync: user.last_directory_sync,
        notes: blank_as_null(&user.notes),
        real_name: blank_as_null(&user.realname),
        status: blank_as_null(&user.status),
        user_name: user.username.clone(),
        created_at: user.created,
        last_login_time: user.last_login,
    };
    let mut notes = Vec::new();
    for (field, value) in [
        ("aliases", &mut row.aliases),
        ("phones", &mut row.phones),
        ("email", &mut row.email),
        ("firstname", &mut row.first_name),
        ("lastname", &mut row.last_name),
        ("notes", &mut row.notes),
        ("realname", &mut row.real_name),
        ("status", &mut row.status),
    ] {
        strip_nul(field, value, &mut notes);
    }
    let mut user_name = Some(std::mem::take(&mut row.user_name));
    strip_nul("username", &mut user_name, &mut notes);
    row.user_name = user_name.unwrap_or_default();
    if user.created.is_none() {
        notes.push("created is missing; created_at stored as NULL".into());
    }
    if user.username.is_empty() {
        notes.push("username is empty".into());
    }
    (row, notes)
}

/// Maps every user to its row. A user without a `user_id`, or with a NUL in it, is skipped and
/// reported; a `user_id` listed twice (possible when Duo changes while being paged) keeps the
/// last copy and is reported. Never fails.
pub fn rows_from_users(config_id: &str, users: &[User]) -> DuoUserRows {
    let mut out = DuoUserRows { rows: Vec::with_capacity(users.len()), problems: Vec::new() };
    let mut index: HashMap<String, usize> = HashMap::with_capacity(users.len());
    for user in users {
        let problem = |message: String, skipped: bool| UserProblem {
            user_id: user.user_id.clone(),
            username: user.username.clone(),
            message,
            skipped,
        };
        if user.user_id.trim().is_empty() || user.user_id.contains('\0') {
            out.problems.push(problem("user_id is empty or unusable; user not loaded".into(), true));
            continue;
        }
        let (row, notes) = row_from_user(config_id, user);
        out.problems.extend(notes.into_iter().map(|n| problem(n, false)));
        match index.get(&row.user_id) {
            Some(&i) => {
                let identical = out.rows[i] == row;
                out.problems.push(problem(
                    format!(
                        "user_id listed more than once ({}); the last copy is kept",
                        if identical { "identical copies" } else { "copies differ" }
                    ),
                    false,
                ));
                out.rows[i] = row;
            }
            None => {
                index.insert(row.user_id.clone(), out.rows.len());
                out.rows.push(row);
            }
        }
    }
    out
}

/// Checks rows before they are written: one `config_id`, distinct user ids, no NUL characters.
pub(crate) fn check_rows(config_id: &str, rows: &[DuoUserRow]) -> Result<()> {
    if config_id.trim().is_empty() || config_id.contains('\0') {
        return Err(RegistryError::Refused("Duo users table: the config_id (provisioner name) is empty or unusable".into()));
    }
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    for row in rows {
        if row.config_id != config_id {
            return Err(RegistryError::Refused(format!(
                "Duo user {}: config_id is {:?}, not {config_id:?}; nothing written",
                row.user_id, row.config_id
            )));
        }
        if row.user_id.is_empty() {
            return Err(RegistryError::Refused(format!("Duo user {:?}: user_id is empty; nothing written", row.user_name)));
        }
        if !seen.insert(row.user_id.as_str()) {
            return Err(RegistryError::Refused(format!("Duo user {}: listed more than once; nothing written", row.user_id)));
        }
        for (column, value) in [("is_push_enabled", &row.is_push_enabled), ("is_enrolled", &row.is_enrolled)] {
            if value.as_deref().is_some_and(|v| v != "T" && v != "F") {
                return Err(RegistryError::Refused(format!(
                    "Duo user {}: {column} must be T or F; nothing written",
                    row.user_id
                )));
            }
        }
        for (column, value) in row.text_columns() {
            if value.is_some_and(|v| v.contains('\0')) {
                return Err(RegistryError::Refused(format!(
                    "Duo user {}: {column} contains a NUL character; nothing written",
                    row.user_id.replace('\0', "\u{FFFD}")
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(v: Value) -> User {
        serde_json::from_value(v).expect("a user object")
    }

    #[test]
    fn grouper_test_user_maps_as_grouper_stores_it() {
        // testFullProvisionLoadEntitiesIntoDuoUsersTable: aliases 'test,abc', one activated phone.
        let u = user(json!({
            "user_id": "DU0123456789ABCDEFGH", "username": "test.subject.0",
            "aliases": {"alias1": "test", "alias2": "abc"},
            "alias1": "test", "alias2": "abc", "alias3": null, "alias4": null,
            "realname": "my name", "firstname": "my", "lastname": "name", "email": "test.subject.0@example.edu",
            "notes": "a note", "status": "active", "is_enrolled": true,
            "created": 1_600_000_000, "last_login": 1_700_000_000, "last_directory_sync": 1_650_000_000,
            "phones": [{"phone_id": "DP1", "number": "123-456-7890", "activated": true}],
        }));
        let (row, notes) = row_from_user("myDuoProvisioner", &u);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            row,
            DuoUserRow {
                config_id: "myDuoProvisioner".into(),
                user_id: "DU0123456789ABCDEFGH".into(),
                aliases: Some("abc,test".into()),
                phones: Some("123-456-7890".into()),
                is_push_enabled: Some("T".into()),
                email: Some("test.subject.0@example.edu".into()),
                first_name: Some("my".into()),
                last_name: Some("name".into()),
                is_enrolled: Some("T".into()),
                last_directory_sync: Some(1_650_000_000),
                notes: Some("a note".into()),
                real_name: Some("my name".into()),
                status: Some("active".into()),
                user_name: "test.subject.0".into(),
                created_at: Some(1_600_000_000),
                last_login_time: Some(1_700_000_000),
            }
        );
    }

    #[test]
    fn commas_inside_aliases_are_escaped_and_the_escaped_values_sorted() {
        let u = user(json!({
            "user_id": "DU1", "username": "u",
            "aliases": {"alias1": "smith,john", "alias2": "a+b", "alias3": "a,b", "alias4": "smith,john"},
        }));
        let (row, _) = row_from_user("p", &u);
        // Sorted after escaping ('&' 0x26 before '+' 0x2B), so the column is sorted as stored.
        assert_eq!(row.aliases.as_deref(), Some("a&#x2c;b,a+b,smith&#x2c;john"));
        // Legacy fields alone are read too, each alias once.
        let u = user(json!({"user_id": "DU1", "username": "u", "alias1": "b", "alias2": "a", "alias3": "b"}));
        assert_eq!(row_from_user("p", &u).0.aliases.as_deref(), Some("a,b"));
    }

    #[test]
    fn phones_sorted_blank_numbers_skipped_push_from_any_activated_phone() {
        let u = user(json!({
            "user_id": "DU1", "username": "u",
            "phones": [
                {"number": "+15555550102", "activated": false},
                {"number": "", "activated": true},
                {"number": null},
                {"activated": false},
                "not an object",
                {"number": "+1 555,0100", "activated": "true"},
                {"number": 15555550101u64},
            ],
        }));
        let (row, _) = row_from_user("p", &u);
        assert_eq!(row.phones.as_deref(), Some("+1 555&#x2c;0100,+15555550102,15555550101"));
        // The tablet without a number is activated for push; "true" as a string is not a boolean.
        assert_eq!(row.is_push_enabled.as_deref(), Some("T"));
        let u = user(json!({"user_id": "DU1", "username": "u", "phones": [{"number": "1", "activated": "true"}]}));
        assert_eq!(row_from_user("p", &u).0.is_push_enabled.as_deref(), Some("F"));
    }

    #[test]
    fn nulls_and_blanks_become_null_booleans_are_t_or_f() {
        let u = user(json!({
            "user_id": "DU1", "username": "bare", "realname": null, "firstname": null, "lastname": "",
            "email": "", "notes": null, "status": "locked out", "is_enrolled": null, "aliases": {},
            "phones": [], "created": 5, "last_login": null, "last_directory_sync": null,
        }));
        let (row, notes) = row_from_user("p", &u);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            (row.aliases, row.phones, row.email, row.first_name, row.last_name, row.real_name, row.notes),
            (None, None, None, None, None, None, None)
        );
        assert_eq!((row.is_push_enabled.as_deref(), row.is_enrolled.as_deref()), (Some("F"), Some("F")));
        assert_eq!((row.created_at, row.last_login_time, row.last_directory_sync), (Some(5), None, None));
        assert_eq!(row.status.as_deref(), Some("locked out"));
    }

    #[test]
    fn odd_users_are_reported_by_id_never_lost_silently() {
        let users = vec![
            user(json!({"user_id": "DU1", "username": "one", "realname": "First copy"})),
            user(json!({"user_id": "", "username": "ghost"})),
            user(json!({"user_id": "DU2", "username": "nul\u{0}name", "notes": "a\u{0}b", "created": 1})),
            user(json!({"user_id": "DU1", "username": "one", "realname": "Second copy", "created": 2})),
        ];
        let out = rows_from_users("p", &users);
        let ids: Vec<&str> = out.rows.iter().map(|r| r.user_id.as_str()).collect();
        assert_eq!(ids, ["DU1", "DU2"]);
        assert_eq!(out.rows[0].real_name.as_deref(), Some("Second copy"));
        assert_eq!(out.rows[1].user_name, "nul\u{FFFD}name");
        assert_eq!(out.rows[1].notes.as_deref(), Some("a\u{FFFD}b"));
        let summary: Vec<(String, bool, String)> =
            out.problems.iter().map(|p| (p.user_id.clone(), p.skipped, p.message.clone())).collect();
        assert!(summary.iter().any(|(id, skipped, m)| id.is_empty() && *skipped && m.contains("user_id")), "{summary:?}");
        assert!(summary.iter().any(|(id, _, m)| id == "DU2" && m.contains("notes contains a NUL")), "{summary:?}");
        assert!(summary.iter().any(|(id, _, m)| id == "DU2" && m.contains("username contains a NUL")), "{summary:?}");
        assert!(summary.iter().any(|(id, _, m)| id == "DU1" && m.contains("created is missing")), "{summary:?}");
        assert!(summary.iter().any(|(id, _, m)| id == "DU1" && m.contains("copies differ")), "{summary:?}");
        assert!(check_rows("p", &out.rows).is_ok());
    }

    #[test]
    fn rows_are_checked_before_writing() {
        let (row, _) = row_from_user("p", &user(json!({"user_id": "DU1", "username": "u"})));
        assert!(check_rows("p", std::slice::from_ref(&row)).is_ok());
        let e = check_rows("p", &[row.clone(), row.clone()]).unwrap_err().to_string();
        assert!(e.contains("DU1") && e.contains("more than once"), "{e}");
        let e = check_rows("q", std::slice::from_ref(&row)).unwrap_err().to_string();
        assert!(e.contains("DU1") && e.contains("config_id"), "{e}");
        let mut bad = row.clone();
        bad.email = Some("x\u{0}".into());
        let e = check_rows("p", &[bad]).unwrap_err().to_string();
        assert!(e.contains("DU1") && e.contains("email"), "{e}");
        let mut bad = row.clone();
        bad.is_enrolled = Some("true".into());
        let e = check_rows("p", &[bad]).unwrap_err().to_string();
        assert!(e.contains("DU1") && e.contains("is_enrolled must be T or F"), "{e}");
        assert!(check_rows("", &[]).is_err());
    }
}
