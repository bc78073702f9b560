//! Wire types: users, groups, group members and administrators as the Duo Admin API returns them (serde), plus
//! the id-shape check the client applies before putting an id into a URL path.
//!
//! Parsing is tolerant where Duo is known to vary (`null` or `""` for unset strings, missing
//! optional arrays, status in any case) and strict where the provisioner depends on a value
//! (`user_id`, `username`, `group_id`, `name` must be present and strings). Unknown fields are
//! ignored, so new Duo fields never break a sync.
//!
//! ```
//! use duoprov_duo_wire::types::User;
//! let u: User = serde_json::from_str(r#"{"user_id":"DU3RP9I2WOC59VZX672N","username":"jdoe",
//!     "realname":null,"aliases":{"alias1":"john"},"groups":[{"group_id":"DGXXXXXXXXXXXXXXXXXX","name":"g"}]}"#)?;
//! assert_eq!((u.realname.as_str(), u.aliases.get("alias1").map(String::as_str)), ("", Some("john")));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `aliases` as an object of alias slot → alias; `null` entries are dropped.
fn aliases_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let m = Option::<BTreeMap<String, Option<String>>>::deserialize(d)?.unwrap_or_default();
    Ok(m.into_iter().filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v))).collect())
}

/// A Duo user object (`/admin/v1/users`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// `DU…` id.
    pub user_id: String,
    /// The username.
    pub username: String,
    /// Full name (`""` when unset).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub realname: String,
    /// First name.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub firstname: String,
    /// Last name.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub lastname: String,
    /// E-mail address.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub email: String,
    /// Notes.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub notes: String,
    /// `active`, `bypass`, `disabled`, `locked out`, `pending deletion` (compare case-insensitively).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub status: String,
    /// Aliases by slot (`alias1` … `alias8`), empty ones dropped.
    #[serde(default, deserialize_with = "aliases_map")]
    pub aliases: BTreeMap<String, String>,
    /// Legacy alias fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias1: Option<String>,
    /// Legacy alias field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias2: Option<String>,
    /// Legacy alias field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias3: Option<String>,
    /// Legacy alias field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias4: Option<String>,
    /// Creation time, Unix seconds.
    #[serde(default)]
    pub created: Option<i64>,
    /// Last login, Unix seconds.
    #[serde(default)]
    pub last_login: Option<i64>,
    /// Last directory sync, Unix seconds.
    #[serde(default)]
    pub last_directory_sync: Option<i64>,
    /// Has at least one authentication method.
    #[serde(default, deserialize_with = "null_as_default")]
    pub is_enrolled: bool,
    /// Why the user is locked out, if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockout_reason: Option<String>,
    /// Directory id of directory-synced users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The user's groups (full group objects). Missing or `null` parses as empty here, because
    /// create and modify replies need not carry them; the client requires the field on the reads
    /// the membership diff is built from (listing, by id, by username), where an absent `groups`
    /// is a malformed-response error naming `response[i].groups`, never "no groups".
    #[serde(default, deserialize_with = "null_as_default")]
    pub groups: Vec<Group>,
    /// Phones, kept as JSON (duoprov only reports them).
    #[serde(default, deserialize_with = "null_as_default")]
    pub phones: Vec<Value>,
    /// OTP tokens (hardware, HOTP, TOTP, YubiKey), kept as JSON (duoprov only counts them);
    /// `None` when the answer had no `tokens`, so "unknown" is never read as "none".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<Value>>,
    /// U2F tokens, kept as JSON; `None` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u2ftokens: Option<Vec<Value>>,
    /// WebAuthn credentials, kept as JSON; `None` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webauthncredentials: Option<Vec<Value>>,
}

impl User {
    /// Every alias, from `aliases` and the legacy `alias1..4` fields, without duplicates.
    pub fn all_aliases(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let legacy = [&self.alias1, &self.alias2, &self.alias3, &self.alias4];
        for a in self.aliases.values().map(String::as_str).chain(legacy.into_iter().filter_map(|a| a.as_deref())) {
            if !a.is_empty() && !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }
}

/// A Duo group object (`/admin/v1/groups`, `/admin/v2/groups/{id}`, embedded in users).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// `DG…` id.
    pub group_id: String,
    /// Group name.
    pub name: String,
    /// Description (`""` when unset).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub desc: String,
    /// `active`, `bypass`, `disabled` (any case).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub status: String,
    /// Legacy flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_enabled: Option<bool>,
    /// Legacy flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_enabled: Option<bool>,
    /// Legacy flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_enabled: Option<bool>,
    /// Legacy flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_otp_enabled: Option<bool>,
}

/// One member of `/admin/v2/groups/{id}/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// `DU…` id.
    pub user_id: String,
    /// Username, when the server includes it (unverified for real Duo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// A Duo administrator (`/admin/v1/admins`). Strict where the admin-role sync depends on a
/// value: `admin_id`, `email`, `name`, `role` and `status` must be present and strings (an
/// administrator without them is an unknown shape, never a default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admin {
    /// `DE…` id.
    pub admin_id: String,
    /// E-mail address (unique among administrators, compared case-insensitively).
    pub email: String,
    /// Name.
    pub name: String,
    /// Role, as Duo spells it (`Owner`, `Help Desk`, …).
    pub role: String,
    /// `Active`, `Disabled`, `Pending Activation`, `Expired`, ….
    pub status: String,
}

/// Which kind of object an id names (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// `user_id`.
    User,
    /// `group_id`.
    Group,
    /// `admin_id`.
    Admin,
}

impl IdKind {
    /// The JSON field name.
    pub fn field(self) -> &'static str {
        match self {
            IdKind::User => "user_id",
            IdKind::Group => "group_id",
            IdKind::Admin => "admin_id",
        }
    }
}

/// An id that cannot be a Duo object id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {value:?} is not a Duo id (1 to 64 characters A-Z, 0-9)")]
pub struct IdShapeError {
    /// `user_id` or `group_id`.
    pub field: &'static str,
    /// The rejected value (ids are not secret).
    pub value: String,
}

/// Checks that `id` has the shape of a Duo object id: 1 to 64 characters, uppercase ASCII
/// letters and digits (Duo's ids are 20 such characters with a `DU`/`DG` prefix; the check is
/// deliberately looser on length and prefix, and strict on the characters, so an id can never
/// change the meaning of the URL path it is put into).
pub fn check_id(kind: IdKind, id: &str) -> Result<(), IdShapeError> {
    let ok = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if ok { Ok(()) } else { Err(IdShapeError { field: kind.field(), value: id.to_owned() }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_tolerates_nulls_and_missing() {
        let u: Result<User, _> = serde_json::from_str(
            r#"{"user_id":"DU1","username":"a","firstname":null,"email":"","aliases":{"alias1":"x","alias2":null},
               "alias1":"x","alias3":"y","groups":null,"is_enrolled":null,"unknown_field":[1,2]}"#,
        );
        let u = u.map_err(|e| e.to_string());
        assert!(u.is_ok(), "{u:?}");
        let u = u.unwrap_or_else(|_| unreachable!());
        assert_eq!(u.firstname, "");
        assert_eq!(u.aliases.len(), 1);
        assert_eq!(u.all_aliases(), vec!["x", "y"]);
        assert!(u.groups.is_empty());
    }

    #[test]
    fn user_requires_identity_fields() {
        let e = serde_json::from_str::<User>(r#"{"user_id":"DU1"}"#).map(|_| ()).map_err(|e| e.to_string());
        assert!(e.as_ref().is_err_and(|m| m.contains("username")), "{e:?}");
        let e = serde_json::from_str::<User>(r#"{"user_id":5,"username":"a"}"#).map(|_| ()).map_err(|e| e.to_string());
        assert!(e.is_err());
        let e = serde_json::from_str::<Group>(r#"{"group_id":"DG1"}"#).map(|_| ()).map_err(|e| e.to_string());
        assert!(e.as_ref().is_err_and(|m| m.contains("name")), "{e:?}");
    }

    #[test]
    fn id_shapes() {
        assert!(check_id(IdKind::User, "DU3RP9I2WOC59VZX672N").is_ok());
        for bad in ["", "du3rp", "DU/../x", "DU 1", "DU%2F", &"A".repeat(65)] {
            assert_eq!(check_id(IdKind::Group, bad).map_err(|e| e.field), Err("group_id"), "{bad}");
        }
    }
}
