//! Duo's user objects as rows of the registry's Duo users table (`duo_user`, Grouper's
//! `grouper_prov_duo_user`): the pure mapping with Grouper's encodings, and [`load`], the one call
//! a full sync, the daemon or `duoprov load-users` makes with the users it read. The registry
//! stores the rows ([`DuoUserStore`]) and knows nothing of Duo's wire format.
//!
//! Encodings (as Grouper stores them; see `docs/duo-users.md`):
//! - `aliases`: every alias (the `aliases` object and the legacy `alias1..4`, each once), a comma
//!   inside an alias written `&#x2c;`, sorted, joined with `,`;
//! - `phones`: the non-blank phone `number`s, escaped the same way, sorted, joined with `,`;
//! - `is_push_enabled`: `T` when any phone has `"activated": true`, else `F`;
//! - `is_enrolled`: `T`/`F`; times: epoch seconds as Duo gives them;
//! - authentication methods (Grouper's GRP-7384 counts, [`auth_method_counts`]): activated
//!   phones with the `push` / `mobile_otp` capability and the latest `last_seen` of the push
//!   ones, phones with `sms` / `phone` (voice), tokens by type (`d1`; `h6`/`h8`; `t6`/`t8`; `yk`),
//!   WebAuthn credentials and U2F tokens. A list Duo did not send, or one of a shape not
//!   understood (noted as a problem), leaves its counts NULL: unknown, never "none";
//! - blank text (Duo's `""` or `null`, no aliases, no numbered phones) is stored as NULL, except
//!   `user_name`, which is kept as given (the column is NOT NULL).

use std::collections::HashMap;

use duoprov_duo::User;
use duoprov_registry::duo_users::{AuthMethodCounts, DuoUserRow, DuoUserStore, ReplaceCounts};
use duoprov_registry::Result;
use serde::Serialize;
use serde_json::Value;

/// How a comma inside an alias or a phone number is written (Grouper's escape).
pub const COMMA_ESCAPE: &str = "&#x2c;";

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

/// `last_seen` of a phone, as Duo writes it (`2019-11-18T15:51:13`, UTC; an RFC 3339 time with
/// an offset is read too), in epoch seconds.
fn parse_last_seen(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let plain = text.split_once('.').map_or(text, |(whole, _)| whole);
    time::PrimitiveDateTime::parse(plain, &format).ok().map(|t| t.assume_utc().unix_timestamp())
}

/// The phone counts of `phones`, or why they cannot be counted (naming the field).
fn phone_counts(phones: &[Value], counts: &mut AuthMethodCounts) -> std::result::Result<(), String> {
    let (mut push, mut otp, mut sms, mut voice) = (0, 0, 0, 0);
    let mut last_seen: Option<i64> = None;
    for (i, phone) in phones.iter().enumerate() {
        let activated = match phone.get("activated") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(format!("phones[{i}].activated is {other}, not true or false")),
        };
        let capabilities: Vec<&str> = match phone.get("capabilities") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|c| c.as_str().ok_or_else(|| format!("phones[{i}].capabilities holds {c}, not a capability name")))
                .collect::<std::result::Result<_, _>>()?,
            Some(other) => return Err(format!("phones[{i}].capabilities is {other}, not a list")),
        };
        let can = |c: &str| capabilities.contains(&c);
        if activated && can("push") {
            push += 1;
            match phone.get("last_seen") {
                None | Some(Value::Null) => {}
                Some(Value::String(t)) if t.is_empty() => {}
                Some(Value::String(t)) => {
                    let seen = parse_last_seen(t).ok_or_else(|| format!("phones[{i}].last_seen {t:?} is not a time"))?;
                    last_seen = last_seen.max(Some(seen));
                }
                Some(other) => return Err(format!("phones[{i}].last_seen is {other}, not a time")),
            }
        }
        if activated && can("mobile_otp") {
            otp += 1;
        }
        if can("sms") {
            sms += 1;
        }
        if can("phone") {
            voice += 1;
        }
    }
    counts.push_phone_count = Some(push);
    counts.mobile_otp_phone_count = Some(otp);
    counts.push_phone_last_seen = last_seen;
    counts.sms_phone_count = Some(sms);
    counts.voice_phone_count = Some(voice);
    Ok(())
}

/// The token counts of `tokens` by type, or why they cannot be counted.
fn token_counts(tokens: &[Value], counts: &mut AuthMethodCounts) -> std::result::Result<(), String> {
    let (mut hardware, mut hotp, mut totp, mut yubikey) = (0, 0, 0, 0);
    for (i, token) in tokens.iter().enumerate() {
        match token.get("type").and_then(Value::as_str) {
            Some("d1") => hardware += 1,
            Some("h6" | "h8") => hotp += 1,
            Some("t6" | "t8") => totp += 1,
            Some("yk") => yubikey += 1,
            Some(other) => return Err(format!("tokens[{i}].type {other:?} is not a token type duoprov knows (d1, h6, h8, t6, t8, yk)")),
            None => return Err(format!("tokens[{i}].type is missing or not text")),
        }
    }
    counts.duo_hardware_token_count = Some(hardware);
    counts.hotp_token_count = Some(hotp);
    counts.totp_token_count = Some(totp);
    counts.yubikey_otp_token_count = Some(yubikey);
    Ok(())
}

/// A Duo user's authentication methods, counted; a note for each list whose counts are left
/// unknown because its shape was not understood.
pub fn auth_method_counts(user: &User) -> (AuthMethodCounts, Vec<String>) {
    let mut counts = AuthMethodCounts::default();
    let mut notes = Vec::new();
    if let Err(why) = phone_counts(&user.phones, &mut counts) {
        counts.push_phone_count = None;
        counts.mobile_otp_phone_count = None;
        counts.push_phone_last_seen = None;
        counts.sms_phone_count = None;
        counts.voice_phone_count = None;
        notes.push(format!("{why}; the phone counts are stored as NULL (unknown)"));
    }
    if let Some(tokens) = &user.tokens
        && let Err(why) = token_counts(tokens, &mut counts)
    {
        counts.duo_hardware_token_count = None;
        counts.hotp_token_count = None;
        counts.totp_token_count = None;
        counts.yubikey_otp_token_count = None;
        notes.push(format!("{why}; the token counts are stored as NULL (unknown)"));
    }
    counts.webauthn_count = user.webauthncredentials.as_ref().map(|list| list.len() as i64);
    counts.u2f_count = user.u2ftokens.as_ref().map(|list| list.len() as i64);
    (counts, notes)
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
    let (auth_methods, mut notes) = auth_method_counts(user);
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
        auth_methods,
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use duoprov_registry::duo_users::check_rows;
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
                // The phone lists no capabilities, and Duo's answer no tokens or keys.
                auth_methods: AuthMethodCounts {
                    push_phone_count: Some(0),
                    mobile_otp_phone_count: Some(0),
                    sms_phone_count: Some(0),
                    voice_phone_count: Some(0),
                    ..AuthMethodCounts::default()
                },
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
    fn authentication_methods_are_counted_as_grouper_counts_them() {
        let u = user(json!({
            "user_id": "DU1", "username": "ann", "created": 1,
            "phones": [
                {"number": "+15550100", "activated": true, "capabilities": ["auto", "push", "sms", "phone", "mobile_otp"],
                 "last_seen": "2026-11-01T10:00:00"},
                {"number": "+15550101", "activated": true, "capabilities": ["push", "mobile_otp"], "last_seen": "2026-11-20T08:30:00"},
                {"number": "+15550102", "activated": false, "capabilities": ["push", "sms", "mobile_otp"], "last_seen": ""},
                {"number": "+15550103", "activated": false, "capabilities": ["phone"]},
            ],
            "tokens": [{"serial": "1", "type": "d1"}, {"serial": "2", "type": "h6"}, {"serial": "3", "type": "h8"},
                       {"serial": "4", "type": "t6"}, {"serial": "5", "type": "yk"}],
            "webauthncredentials": [{"credential_name": "key", "label": "Security Key"}],
            "u2ftokens": [],
        }));
        let (row, notes) = row_from_user("p", &u);
        assert!(notes.is_empty(), "{notes:?}");
        let c = &row.auth_methods;
        assert_eq!((c.push_phone_count, c.mobile_otp_phone_count), (Some(2), Some(2)), "only activated phones push or make passcodes");
        assert_eq!((c.sms_phone_count, c.voice_phone_count), (Some(2), Some(2)), "SMS and calls need no activation");
        assert_eq!(c.push_phone_last_seen, Some(1_795_163_400), "the latest last_seen of the push phones (2026-11-20 08:30 UTC)");
        assert_eq!(
            (c.duo_hardware_token_count, c.hotp_token_count, c.totp_token_count, c.yubikey_otp_token_count),
            (Some(1), Some(2), Some(1), Some(1))
        );
        assert_eq!((c.webauthn_count, c.u2f_count), (Some(1), Some(0)));
    }

    #[test]
    fn a_method_list_duo_did_not_send_or_sent_oddly_is_unknown_not_none() {
        let u = user(json!({"user_id": "DU1", "username": "ann", "created": 1, "phones": []}));
        let (row, notes) = row_from_user("p", &u);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(row.auth_methods.sms_phone_count, Some(0), "an empty phone list counts zero");
        assert_eq!((row.auth_methods.totp_token_count, row.auth_methods.webauthn_count, row.auth_methods.u2f_count), (None, None, None));

        let u = user(json!({"user_id": "DU2", "username": "bob",
            "phones": [{"number": "1", "activated": "yes", "capabilities": ["sms"]}],
            "tokens": [{"serial": "9", "type": "zz"}]}));
        let (row, notes) = row_from_user("p", &u);
        assert_eq!((row.auth_methods.sms_phone_count, row.auth_methods.push_phone_count), (None, None));
        assert_eq!(row.auth_methods.hotp_token_count, None);
        assert!(notes.iter().any(|n| n.contains("phones[0].activated") && n.contains("NULL")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("tokens[0].type \"zz\"")), "{notes:?}");

        let u = user(json!({"user_id": "DU3", "username": "cy",
            "phones": [{"activated": true, "capabilities": ["push"], "last_seen": "yesterday"}]}));
        let (row, notes) = row_from_user("p", &u);
        assert_eq!(row.auth_methods.push_phone_count, None);
        assert!(notes.iter().any(|n| n.contains("phones[0].last_seen \"yesterday\"")), "{notes:?}");
    }
}
