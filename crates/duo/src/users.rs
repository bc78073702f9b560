//! User operations: list (paged), get, get by username (which also matches aliases), create
//! (with read-back when the outcome is unknown), modify, delete (404 is success), bulk create,
//! the user's groups (list, add — "already a member" is success —, remove — 404 is success),
//! and Trash (send, restore).

use std::collections::BTreeMap;

use duoprov_duo_wire::types::{Group, IdKind, User, check_id};
use serde_json::Value;

use crate::client::{CallSpec, DuoClient, Params};
use crate::error::{DuoError, ErrorKind, Result};
use crate::pace::CallClass;
use crate::paging::{ItemCheck, ItemRules, USER_GROUPS_PAGE, USERS_PAGE, check_required, parse_items};
use crate::retry::{Backoff, Safety};

/// Most users per `bulk_create`, `bulk_send_to_trash` or `bulk_restore` call (lists are sent in
/// chunks of this size).
pub const MAX_USERS_PER_BULK_CALL: usize = 100;

/// Fields of a user to set. `None` leaves a field alone (and is not sent); `Some("")` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFields {
    /// New username (modify only; rename).
    pub username: Option<String>,
    /// Full name.
    pub realname: Option<String>,
    /// First name.
    pub firstname: Option<String>,
    /// Last name.
    pub lastname: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Notes.
    pub notes: Option<String>,
    /// `active`, `bypass` or `disabled`.
    pub status: Option<String>,
    /// Aliases by slot 1–8 (`""` clears a slot). Slots 1–4 are sent as `alias1`…`alias4`; if any
    /// slot 5–8 is set, all are sent in the `aliases` parameter instead, as `alias1=a&alias5=b`
    /// (Duo's Ruby client's format), where `&`, `=`, `%` and `+` in a value are refused.
    pub aliases: Option<BTreeMap<u8, String>>,
}

impl UserFields {
    /// The parameters these fields send.
    pub fn to_params(&self) -> std::result::Result<Vec<(String, String)>, String> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                p.push((k.to_owned(), v.clone()));
            }
        };
        put("username", &self.username);
        put("realname", &self.realname);
        put("firstname", &self.firstname);
        put("lastname", &self.lastname);
        put("email", &self.email);
        put("notes", &self.notes);
        put("status", &self.status);
        if let Some(aliases) = &self.aliases {
            if let Some(bad) = aliases.keys().find(|s| !(1..=8).contains(*s)) {
                return Err(format!("alias slot {bad} is not 1 to 8"));
            }
            if aliases.keys().any(|s| *s > 4) {
                // As Duo's Ruby client builds it: `alias1=a&alias5=b`, values not encoded. Values
                // that would change how that string parses are refused rather than guessed at.
                let mut parts = Vec::with_capacity(aliases.len());
                for (slot, alias) in aliases {
                    if alias.contains(['&', '=', '%', '+']) {
                        return Err(format!("alias{slot} {alias:?}: '&', '=', '%' and '+' cannot be sent in the aliases parameter (slots 5 to 8)"));
                    }
                    parts.push(format!("alias{slot}={alias}"));
                }
                p.push(("aliases".to_owned(), parts.join("&")));
            } else {
                for (slot, alias) in aliases {
                    p.push((format!("alias{slot}"), alias.clone()));
                }
            }
        }
        Ok(p)
    }
}

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// Username (required).
    pub username: String,
    /// Other fields (`fields.username` is ignored).
    pub fields: UserFields,
}

impl NewUser {
    /// A user with only a username.
    pub fn new(username: impl Into<String>) -> Self {
        NewUser { username: username.into(), fields: UserFields::default() }
    }
    /// Sets `realname`.
    pub fn realname(mut self, v: impl Into<String>) -> Self {
        self.fields.realname = Some(v.into());
        self
    }
    /// Sets `firstname`.
    pub fn firstname(mut self, v: impl Into<String>) -> Self {
        self.fields.firstname = Some(v.into());
        self
    }
    /// Sets `lastname`.
    pub fn lastname(mut self, v: impl Into<String>) -> Self {
        self.fields.lastname = Some(v.into());
        self
    }
    /// Sets `email`.
    pub fn email(mut self, v: impl Into<String>) -> Self {
        self.fields.email = Some(v.into());
        self
    }
    /// Sets `status`.
    pub fn status(mut self, v: impl Into<String>) -> Self {
        self.fields.status = Some(v.into());
        self
    }
    /// Sets `notes`.
    pub fn notes(mut self, v: impl Into<String>) -> Self {
        self.fields.notes = Some(v.into());
        self
    }

    /// The create parameters.
    pub fn to_params(&self) -> std::result::Result<Vec<(String, String)>, String> {
        let fields = UserFields { username: Some(self.username.clone()), ..self.fields.clone() };
        fields.to_params()
    }
}

/// The id-shape check for users in responses.
pub(crate) fn check_user(u: &User) -> std::result::Result<(), (String, String)> {
    check_id(IdKind::User, &u.user_id).map_err(|e| ("user_id".to_owned(), e.to_string()))?;
    if u.username.is_empty() {
        return Err(("username".into(), "empty".into()));
    }
    for (i, g) in u.groups.iter().enumerate() {
        check_group(g).map_err(|(f, d)| (format!("groups[{i}].{f}"), d))?;
    }
    Ok(())
}

/// Fields a user read must carry when the sync builds its membership diff from it: the listing,
/// the lookups by id, username or list of either. Create, modify and bulk-create replies are not
/// required to carry them.
pub(crate) const USER_READ_REQUIRED: &[&str] = &["groups"];

fn user_key(u: &User) -> &str {
    &u.user_id
}

pub(crate) fn group_key(g: &Group) -> &str {
    &g.group_id
}

/// How user listings are read: `groups` required, checked, keyed by `user_id`.
const USER_LIST: ItemRules<'static, User> = ItemRules { required: USER_READ_REQUIRED, check: &check_user, key: user_key };

/// The id-shape check for groups in responses.
pub(crate) fn check_group(g: &Group) -> std::result::Result<(), (String, String)> {
    check_id(IdKind::Group, &g.group_id).map_err(|e| ("group_id".to_owned(), e.to_string()))
}

/// Parses a single-object response.
pub(crate) fn parse_one<T: serde::de::DeserializeOwned>(
    label: &str,
    response: Value,
    required: &[&str],
    check: &ItemCheck<T>,
) -> Result<T> {
    let t = T::deserialize(&response).map_err(|e| DuoError::malformed(label, "response", e))?;
    check(&t).map_err(|(f, d)| DuoError::malformed(label, format!("response.{f}"), d))?;
    check_required(&response, required).map_err(|(f, d)| DuoError::malformed(label, format!("response.{f}"), d))?;
    Ok(t)
}

/// Validates an id argument before it goes into a path.
pub(crate) fn arg_id(call: &str, kind: IdKind, id: &str) -> Result<()> {
    check_id(kind, id).map_err(|e| DuoError::new(call, ErrorKind::Config { detail: e.to_string() }))
}

/// Whether an error leaves the outcome of a write unknown (it may have been executed).
pub(crate) fn outcome_unknown(e: &DuoError) -> bool {
    matches!(e.kind, ErrorKind::Transport { maybe_sent: true, .. } | ErrorKind::Deadline { .. } | ErrorKind::Server { .. })
}

/// How a create with an unknown outcome is settled: before each read-back it waits on the
/// server-retry schedule, and it sends the create at most `1 + max_server_retries` times in all.
pub(crate) struct CreateRounds {
    backoff: Backoff,
    left: u32,
}

impl CreateRounds {
    pub(crate) fn new(client: &DuoClient) -> Self {
        let retry = &client.config().retry;
        CreateRounds { backoff: Backoff::new(retry), left: retry.max_server_retries }
    }

    /// Waits before reading back (a late create has time to land, a struggling Duo to recover).
    pub(crate) async fn pause(&mut self) {
        if let Some(w) = self.backoff.next_wait()
            && !w.is_zero()
        {
            tokio::time::sleep(w).await;
        }
    }

    /// Takes one more send, if any is left.
    pub(crate) fn another(&mut self) -> bool {
        let more = self.left > 0;
        self.left = self.left.saturating_sub(1);
        more
    }
}

fn json_string_array(ids: &[String]) -> String {
    Value::Array(ids.iter().map(|s| Value::String(s.clone())).collect()).to_string()
}

impl DuoClient {
    /// All users (`GET /admin/v1/users`, 300 per page).
    pub async fn list_users(&self) -> Result<Vec<User>> {
        self.list_all("/admin/v1/users", &[], USERS_PAGE, &USER_LIST).await
    }

    /// [`DuoClient::list_users`], reporting progress after each page.
    ///
    /// ```no_run
    /// # async fn demo(duo: duoprov_duo::DuoClient) -> Result<(), duoprov_duo::DuoError> {
    /// let users = duo
    ///     .list_users_with_progress(&|p| eprintln!("{} of {:?} users ({} pages)", p.items, p.total, p.pages))
    ///     .await?;
    /// # let _ = users; Ok(()) }
    /// ```
    pub async fn list_users_with_progress(&self, on_page: &(dyn Fn(crate::paging::PageProgress) + Sync)) -> Result<Vec<User>> {
        self.list_all_with_progress("/admin/v1/users", &[], USERS_PAGE, &USER_LIST, on_page).await
    }

    /// One user, or `None` if Duo says 404.
    pub async fn get_user(&self, user_id: &str) -> Result<Option<User>> {
        let path = format!("/admin/v1/users/{user_id}");
        arg_id(&format!("GET {path}"), IdKind::User, user_id)?;
        let spec = CallSpec::new("GET", path, Params::none(), CallClass::SingleRead, Safety::Repeatable);
        match self.call(&spec).await {
            Ok(r) => parse_one(&spec.label(), r.response, USER_READ_REQUIRED, &check_user).map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The user whose username **or alias** is `username` (`GET /admin/v1/users?username=`), or
    /// `None`. More than one match is a malformed response.
    pub async fn get_user_by_username(&self, username: &str) -> Result<Option<User>> {
        let spec = CallSpec::new(
            "GET",
            "/admin/v1/users",
            Params::pairs([("username", username)]),
            CallClass::SingleRead,
            Safety::Repeatable,
        );
        let label = spec.label();
        let reply = self.call(&spec).await?;
        let mut users = parse_items::<User>(&label, reply.response, 0, USER_READ_REQUIRED, &check_user)?;
        match users.len() {
            0 => Ok(None),
            1 => Ok(users.pop()),
            n => Err(DuoError::malformed(label, "response", format!("{n} users for one username"))),
        }
    }

    /// The users with these usernames (`GET /admin/v1/users?username_list=[…]`, JSON-encoded,
    /// at most [`MAX_USERS_PER_BULK_CALL`] per request; longer lists are chunked). Usernames Duo
    /// does not know are simply absent from the result. For incremental syncs: one call per 100
    /// users instead of one per user.
    pub async fn get_users_by_usernames(&self, usernames: &[String]) -> Result<Vec<User>> {
        self.users_by_list("username_list", usernames).await
    }

    /// The users with these ids (`GET /admin/v1/users?user_id_list=[…]`, chunked by 100).
    pub async fn get_users_by_ids(&self, user_ids: &[String]) -> Result<Vec<User>> {
        for id in user_ids {
            arg_id("GET /admin/v1/users", IdKind::User, id)?;
        }
        self.users_by_list("user_id_list", user_ids).await
    }

    async fn users_by_list(&self, param: &str, values: &[String]) -> Result<Vec<User>> {
        let mut out = Vec::with_capacity(values.len());
        for chunk in values.chunks(MAX_USERS_PER_BULK_CALL) {
            let spec = CallSpec::new(
                "GET",
                "/admin/v1/users",
                Params::pairs([(param, json_string_array(chunk))]),
                CallClass::ListLookup,
                Safety::Repeatable,
            );
            let label = spec.label();
            let reply = self.call(&spec).await?;
            let first = out.len();
            out.extend(parse_items::<User>(&label, reply.response, first, USER_READ_REQUIRED, &check_user)?);
        }
        Ok(out)
    }

    /// Creates a user (`POST /admin/v1/users`). If the outcome is unknown (timeout, broken
    /// connection, 5xx), the user is read back by username instead of blindly repeating the
    /// create: found → that user; absent → the create is sent again, at most `max_server_retries`
    /// more times (safe: usernames are unique, so a late earlier create makes the repeat fail, and
    /// the user is then read back).
    pub async fn create_user(&self, user: &NewUser) -> Result<User> {
        let call = format!("create user {:?}", user.username);
        let params = user.to_params().map_err(|d| DuoError::new(&call, ErrorKind::Config { detail: d }))?;
        let spec = CallSpec::new("POST", "/admin/v1/users", Params::Pairs(params), CallClass::Write, Safety::NotRepeatable);
        let label = spec.label();
        let mut rounds = CreateRounds::new(self);
        let mut repeated = false;
        loop {
            let e = match self.call(&spec).await {
                Ok(r) => return parse_one(&label, r.response, &[], &check_user),
                Err(e) => e,
            };
            let duplicate_after_retry = repeated && e.class() == crate::error::ErrorClass::InvalidParameter;
            if !outcome_unknown(&e) && !duplicate_after_retry {
                return Err(e);
            }
            tracing::warn!(call = %call, error = %e, "create outcome unknown; reading the user back");
            rounds.pause().await;
            match self.get_user_by_username(&user.username).await {
                Ok(Some(u)) if u.username.to_lowercase() == user.username.to_lowercase() => return Ok(u),
                Ok(Some(u)) => {
                    let detail = format!("after `{e}`, the username matches user {} ({:?}) by alias", u.user_id, u.username);
                    return Err(DuoError::new(call, ErrorKind::Unresolved { detail }));
                }
                // The repeated create was refused and the user is not there: a real parameter error.
                Ok(None) if duplicate_after_retry => return Err(e),
                Ok(None) if rounds.another() => repeated = true,
                Ok(None) => {
                    let detail = format!("after `{e}`, the user is not there");
                    return Err(DuoError::new(call, ErrorKind::Unresolved { detail }));
                }
                Err(re) => {
                    let detail = format!("after `{e}`, reading back failed: {re}");
                    return Err(DuoError::new(call, ErrorKind::Unresolved { detail }));
                }
            }
        }
    }

    /// Modifies a user (`POST /admin/v1/users/{id}`); returns the updated user.
    pub async fn modify_user(&self, user_id: &str, fields: &UserFields) -> Result<User> {
        let path = format!("/admin/v1/users/{user_id}");
        let call = format!("POST {path}");
        arg_id(&call, IdKind::User, user_id)?;
        let params = fields.to_params().map_err(|d| DuoError::new(&call, ErrorKind::Config { detail: d }))?;
        let spec = CallSpec::new("POST", path, Params::Pairs(params), CallClass::Write, Safety::Repeatable);
        let r = self.call(&spec).await?;
        parse_one(&call, r.response, &[], &check_user)
    }

    /// Deletes a user permanently (`DELETE /admin/v1/users/{id}`). 404 is success.
    pub async fn delete_user(&self, user_id: &str) -> Result<()> {
        let path = format!("/admin/v1/users/{user_id}");
        arg_id(&format!("DELETE {path}"), IdKind::User, user_id)?;
        let spec = CallSpec::new("DELETE", path, Params::none(), CallClass::Write, Safety::Repeatable);
        match self.call(&spec).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Creates users in chunks of [`MAX_USERS_PER_BULK_CALL`] (`POST /admin/v1/users/bulk_create`,
    /// `users` = JSON-encoded array). Returns the created users as Duo reports them. A chunk whose
    /// outcome is unknown (timeout, broken connection, 5xx) is not repeated blindly: its users are
    /// read back by username (`username_list`); those found are the result, and only the missing
    /// ones are sent again, at most `max_server_retries` more times (safe: usernames are unique,
    /// so a late earlier create makes the repeat fail, and the users are then read back).
    pub async fn bulk_create_users(&self, users: &[NewUser]) -> Result<Vec<User>> {
        let mut out = Vec::with_capacity(users.len());
        for chunk in users.chunks(MAX_USERS_PER_BULK_CALL) {
            let mut pending: Vec<&NewUser> = chunk.iter().collect();
            let mut rounds = CreateRounds::new(self);
            let mut repeated = false;
            while !pending.is_empty() {
                let mut arr = Vec::with_capacity(pending.len());
                for u in &pending {
                    let params = u
                        .to_params()
                        .map_err(|d| DuoError::new(format!("bulk create user {:?}", u.username), ErrorKind::Config { detail: d }))?;
                    arr.push(Value::Object(params.into_iter().map(|(k, v)| (k, Value::String(v))).collect()));
                }
                let users_json = Value::Array(arr).to_string();
                let spec = CallSpec::new(
                    "POST",
                    "/admin/v1/users/bulk_create",
                    Params::pairs([("users", users_json)]),
                    CallClass::Bulk,
                    Safety::NotRepeatable,
                );
                let label = spec.label();
                let e = match self.call(&spec).await {
                    Ok(r) => {
                        let first = out.len();
                        out.extend(parse_items::<User>(&label, r.response, first, &[], &check_user)?);
                        break;
                    }
                    Err(e) => e,
                };
                let duplicate_after_retry = repeated && e.class() == crate::error::ErrorClass::InvalidParameter;
                if !outcome_unknown(&e) && !duplicate_after_retry {
                    return Err(e);
                }
                let call = format!("bulk create of {} users", pending.len());
                tracing::warn!(call = %call, error = %e, "create outcome unknown; reading the users back");
                rounds.pause().await;
                let names: Vec<String> = pending.iter().map(|u| u.username.clone()).collect();
                let found = self.get_users_by_usernames(&names).await.map_err(|re| {
                    DuoError::new(&call, ErrorKind::Unresolved { detail: format!("after `{e}`, reading back failed: {re}") })
                })?;
                // Only users whose username is one asked for (not a match by alias).
                let wanted: std::collections::HashSet<String> = names.iter().map(|n| n.to_lowercase()).collect();
                let found: Vec<User> = found.into_iter().filter(|u| wanted.contains(&u.username.to_lowercase())).collect();
                let got: std::collections::HashSet<String> = found.iter().map(|u| u.username.to_lowercase()).collect();
                out.extend(found);
                pending.retain(|u| !got.contains(&u.username.to_lowercase()));
                if pending.is_empty() {
                    break;
                }
                // The repeat was refused and some users are still not there: a real parameter error.
                if duplicate_after_retry {
                    return Err(e);
                }
                if !rounds.another() {
                    let detail = format!("after `{e}`, {} of the users are not there", pending.len());
                    return Err(DuoError::new(call, ErrorKind::Unresolved { detail }));
                }
                repeated = true;
            }
        }
        Ok(out)
    }

    /// A user's groups (`GET /admin/v1/users/{id}/groups`, 500 per page).
    pub async fn list_user_groups(&self, user_id: &str) -> Result<Vec<Group>> {
        let path = format!("/admin/v1/users/{user_id}/groups");
        arg_id(&format!("GET {path}"), IdKind::User, user_id)?;
        self.list_all(&path, &[], USER_GROUPS_PAGE, &ItemRules { required: &[], check: &check_group, key: group_key }).await
    }

    /// Adds a user to a group (`POST /admin/v1/users/{id}/groups`). "Already a member" is success.
    pub async fn add_user_to_group(&self, user_id: &str, group_id: &str) -> Result<()> {
        let path = format!("/admin/v1/users/{user_id}/groups");
        let call = format!("POST {path}");
        arg_id(&call, IdKind::User, user_id)?;
        arg_id(&call, IdKind::Group, group_id)?;
        let spec = CallSpec::new("POST", path, Params::pairs([("group_id", group_id)]), CallClass::Write, Safety::Repeatable)
            .final_on(&[GROUP_LIMIT_CODE]);
        match self.call(&spec).await {
            Ok(_) => Ok(()),
            Err(e) if is_already_member(&e) => Ok(()),
            Err(e) => Err(name_group_limit(e)),
        }
    }

    /// Removes a user from a group (`DELETE /admin/v1/users/{id}/groups/{group_id}`). 404 is success.
    pub async fn remove_user_from_group(&self, user_id: &str, group_id: &str) -> Result<()> {
        let path = format!("/admin/v1/users/{user_id}/groups/{group_id}");
        let call = format!("DELETE {path}");
        arg_id(&call, IdKind::User, user_id)?;
        arg_id(&call, IdKind::Group, group_id)?;
        let spec = CallSpec::new("DELETE", path, Params::none(), CallClass::Write, Safety::Repeatable);
        match self.call(&spec).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sends users to Trash (`POST /admin/v1/users/bulk_send_to_trash`), restorable until Duo's
    /// retention period ends.
    pub async fn send_users_to_trash(&self, user_ids: &[String]) -> Result<()> {
        self.user_id_list_call("/admin/v1/users/bulk_send_to_trash", user_ids).await
    }

    /// Restores users from Trash (`POST /admin/v1/users/bulk_restore`).
    pub async fn restore_users(&self, user_ids: &[String]) -> Result<()> {
        self.user_id_list_call("/admin/v1/users/bulk_restore", user_ids).await
    }

    async fn user_id_list_call(&self, path: &str, user_ids: &[String]) -> Result<()> {
        for id in user_ids {
            arg_id(&format!("POST {path}"), IdKind::User, id)?;
        }
        for chunk in user_ids.chunks(MAX_USERS_PER_BULK_CALL) {
            let spec = CallSpec::new(
                "POST",
                path,
                Params::pairs([("user_id_list", json_string_array(chunk))]),
                CallClass::Bulk,
                Safety::Repeatable,
            );
            self.call(&spec).await?;
        }
        Ok(())
    }
}

/// Duo's code for a change that would break one of its object limits (its rate-limits page:
/// "500 Internal Server Error … 50001 Unknown internal server error").
pub(crate) const GROUP_LIMIT_CODE: u32 = 50001;

/// A membership add's 500/50001, explained: Duo answers it when the user would be in more than
/// 100 groups. It is not retried (repeating cannot help); other errors pass through.
pub(crate) fn name_group_limit(e: DuoError) -> DuoError {
    match e.kind {
        ErrorKind::Server { status: 500, code: Some(GROUP_LIMIT_CODE), message } => {
            let said = message.unwrap_or_else(|| "Unknown internal server error".into());
            DuoError::new(
                e.call,
                ErrorKind::Server {
                    status: 500,
                    code: Some(GROUP_LIMIT_CODE),
                    message: Some(format!(
                        "{said}; Duo answers this when the user would be in more than 100 groups (Duo's limit of 100 groups per user): \
                         not retried; remove the user from groups it no longer needs, or keep it in fewer selected groups"
                    )),
                },
            )
        }
        kind => DuoError { kind, ..e },
    }
}

/// Duo's reply to adding an existing membership (Grouper: 400, `message_detail` "User is already
/// a member of the specified group").
pub(crate) fn is_already_member(e: &DuoError) -> bool {
    match &e.kind {
        ErrorKind::InvalidParameter { field, message, .. } => {
            let hit = |s: &str| s.to_ascii_lowercase().contains("already a member");
            field.as_deref().is_some_and(hit) || hit(message)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_of_fields() {
        let f = UserFields {
            realname: Some("Jane".into()),
            email: Some(String::new()),
            aliases: Some([(1u8, "j".to_owned()), (2, "jd".to_owned())].into()),
            ..Default::default()
        };
        assert_eq!(
            f.to_params(),
            Ok(vec![
                ("realname".into(), "Jane".into()),
                ("email".into(), "".into()),
                ("alias1".into(), "j".into()),
                ("alias2".into(), "jd".into())
            ])
        );
        let f = UserFields { aliases: Some([(1u8, "a b".to_owned()), (5, "x@y".to_owned())].into()), ..Default::default() };
        assert_eq!(f.to_params(), Ok(vec![("aliases".into(), "alias1=a b&alias5=x@y".into())]));
        let f = UserFields { aliases: Some([(1u8, "a+b".to_owned()), (5, "x".to_owned())].into()), ..Default::default() };
        assert!(f.to_params().is_err());
        let f = UserFields { aliases: Some([(1u8, "a+b&c".to_owned())].into()), ..Default::default() };
        assert_eq!(f.to_params(), Ok(vec![("alias1".into(), "a+b&c".into())]));
        let f = UserFields { aliases: Some([(9u8, "a".to_owned())].into()), ..Default::default() };
        assert!(f.to_params().is_err());
        let n = NewUser::new("jdoe").realname("Jane Doe").status("active");
        assert_eq!(
            n.to_params(),
            Ok(vec![("username".into(), "jdoe".into()), ("realname".into(), "Jane Doe".into()), ("status".into(), "active".into())])
        );
    }

    #[test]
    fn a_membership_add_s_500_50001_names_duo_s_group_limit_and_other_errors_pass() {
        let e = name_group_limit(DuoError::new(
            "POST /admin/v1/users/DU1/groups",
            ErrorKind::Server { status: 500, code: Some(50001), message: Some("Unknown internal server error".into()) },
        ));
        let text = e.to_string();
        assert!(text.contains("limit of 100 groups per user") && text.contains("not retried"), "{text}");
        assert_eq!(e.class(), crate::error::ErrorClass::Server);
        let other = DuoError::new("x", ErrorKind::Server { status: 503, code: Some(50301), message: None });
        assert_eq!(name_group_limit(other.clone()), other);
    }

    #[test]
    fn already_member_detection() {
        let e = DuoError::new(
            "x",
            ErrorKind::InvalidParameter {
                field: Some("User is already a member of the specified group".into()),
                code: Some(40004),
                message: "Operation failed".into(),
            },
        );
        assert!(is_already_member(&e));
        let e = DuoError::new("x", ErrorKind::InvalidParameter { field: Some("group_id".into()), code: Some(40002), message: "Invalid".into() });
        assert!(!is_already_member(&e));
    }
}
