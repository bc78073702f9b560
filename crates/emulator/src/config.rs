//! Settings: the integrations the emulator accepts (ikey, secret key, grants) and every
//! behavioural knob, each defaulting to what the evidence about Duo says (the `evidence`
//! profile). Behaviours the evidence leaves open are settings here, so a test can pin either
//! reading; the `adverse` profile takes each open reading against duoprov. `Settings` reads from
//! a JSON file (`--settings FILE`, [`Settings::from_json`]); every field is optional there.

use serde::{Deserialize, Serialize};

/// The secret key of an integration. Never printed: `Debug` shows `[REDACTED]` and it has no
/// `Display` or `Serialize`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretKey(String);

impl SecretKey {
    /// Wraps a secret key.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The key itself, for verifying signatures only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Permissions of an Admin API application ("Grant read resource", …).
/// In a JSON integrations file, a flag left out of `grants` is false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// "Grant read resource": every GET on users and groups.
    #[serde(default)]
    pub read_resource: bool,
    /// "Grant write resource": every create, modify, delete, membership and bulk call.
    #[serde(default)]
    pub write_resource: bool,
    /// "Grant administrators": the `/admin/v1/admins` routes.
    #[serde(default)]
    pub administrators: bool,
}

impl Default for Grants {
    fn default() -> Self {
        Self::all()
    }
}

impl Grants {
    /// Every grant the emulator knows.
    pub const fn all() -> Self {
        Self {
            read_resource: true,
            write_resource: true,
            administrators: true,
        }
    }

    /// No grant at all.
    pub const fn none() -> Self {
        Self {
            read_resource: false,
            write_resource: false,
            administrators: false,
        }
    }

    /// Parses a comma-separated list: `read`, `write`, `admins` (or `all`, `none`).
    pub fn parse_list(s: &str) -> Result<Self, String> {
        let mut g = Self::none();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "read" | "read_resource" => g.read_resource = true,
                "write" | "write_resource" => g.write_resource = true,
                "admins" | "administrators" => g.administrators = true,
                "all" => g = Self::all(),
                "none" => g = Self::none(),
                other => {
                    return Err(format!(
                        "unknown grant {other:?} (expected read, write, admins, all, none)"
                    ));
                }
            }
        }
        Ok(g)
    }
}

/// One Admin API application the emulator accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integration {
    /// Integration key (sent in `Authorization`).
    pub ikey: String,
    /// Secret key (HMAC key).
    pub skey: SecretKey,
    /// Its grants (all three when `grants` is omitted).
    #[serde(default = "Grants::all")]
    pub grants: Grants,
}

impl Integration {
    /// An integration with every grant.
    pub fn new(ikey: impl Into<String>, skey: impl Into<String>) -> Self {
        Self {
            ikey: ikey.into(),
            skey: SecretKey::new(skey),
            grants: Grants::all(),
        }
    }

    /// Replaces the grants.
    pub fn with_grants(mut self, grants: Grants) -> Self {
        self.grants = grants;
        self
    }
}

/// Default and maximum `limit` of one list endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageLimit {
    /// Used when the request carries no `limit`.
    pub default: usize,
    /// Larger requests are clamped silently to this.
    pub max: usize,
}

/// Page sizes per list endpoint (Duo's documented figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PageLimits {
    /// `GET /admin/v1/users`: 100 / 300.
    pub users: PageLimit,
    /// `GET /admin/v1/users/{id}/groups`: 100 / 500.
    pub user_groups: PageLimit,
    /// `GET /admin/v1/groups`: 100 / 500.
    pub groups: PageLimit,
    /// `GET /admin/v2/groups/{id}/users`: 100 / 500.
    pub group_users: PageLimit,
    /// `GET /admin/v1/admins`: 100 / 500.
    pub admins: PageLimit,
}

impl Default for PageLimits {
    fn default() -> Self {
        Self {
            users: PageLimit {
                default: 100,
                max: 300,
            },
            user_groups: PageLimit {
                default: 100,
                max: 500,
            },
            groups: PageLimit {
                default: 100,
                max: 500,
            },
            group_users: PageLimit {
                default: 100,
                max: 500,
            },
            admins: PageLimit {
                default: 100,
                max: 500,
            },
        }
    }
}

/// Rate limits per integration and call class, in calls per minute (Duo staff's 2019 figures).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Whether limits apply at all.
    pub enabled: bool,
    /// Reading one object (`GET /users/{id}`, `GET /v2/groups/{id}`…): 300/min.
    pub read_one_per_min: u32,
    /// Reading one page of a list: 200/min.
    pub read_page_per_min: u32,
    /// Creating, modifying, deleting, (dis)associating, bulk: 300/min.
    pub write_per_min: u32,
    /// `/admin/v1/bulk` and `bulk_create` in a class of their own at this rate (default none:
    /// they count as writes). A secondary source puts them at 50/min (unverified).
    pub bulk_per_min: Option<u32>,
    /// Id-list lookups (`user_id_list`, `username_list`, `group_id_list`) in a class of their
    /// own at this rate (default none: they count as page reads). Duo staff's "get all objects
    /// (no paging)" class is 40/min; whether these lookups fall in it is unverified.
    pub id_list_per_min: Option<u32>,
    /// Multiplies every rate (e.g. `60` turns 300/min into 300/s; `0.1` makes 429s easy to hit).
    pub scale: f64,
    /// Calls each class accepts at once after being idle (the depth of its bucket), whatever the
    /// scale: default 5. Duo documents no burst; 5 is a conservative reading (one second of the
    /// 300/min classes, a fortieth of any class's minute), so a client that sends more than that
    /// at once is answered 429. 1 allows no burst at all.
    pub burst: u32,
    /// The burst as a fraction of the scaled per-minute figure instead (`1.0` = a full minute's
    /// worth at once; default none: `burst` applies). When set it replaces `burst`.
    pub burst_fraction: Option<f64>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            read_one_per_min: 300,
            read_page_per_min: 200,
            write_per_min: 300,
            bulk_per_min: None,
            id_list_per_min: None,
            scale: 1.0,
            burst: 5,
            burst_fraction: None,
        }
    }
}

/// How a group's `status` is spelled in responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusCase {
    /// `active`, `bypass`, `disabled`.
    Lower,
    /// `Active`, `Bypass`, `Disabled`.
    Title,
}

/// How `/admin/v1/bulk` answers a remove spelt `POST /admin/v1/users/{id}/groups/{group_id}`
/// (the spelling only Duo's Ruby client comment gives; the single call is `DELETE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkRemovePost {
    /// Removes the membership, as `DELETE` would (the Ruby client's reading).
    Ok,
    /// A per-operation 404 (Duo knows no such route), while `DELETE` works.
    PerOp404,
}

/// The shape of `/admin/v1/bulk`'s answer (unverified: only a mock in the Ruby client's tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkReplyShape {
    /// `response` lists one envelope per operation: `{"stat":"OK","response":…}` or Duo's FAIL object.
    Envelopes,
    /// `response` lists each operation's bare result: the `response` value on success, the FAIL
    /// object without `stat` on failure.
    Bare,
    /// The bulk endpoint answers 404/40401, as for an unknown route.
    Unavailable,
}

/// What Duo answers when a membership add would give a user more groups than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupLimitError {
    /// 500/50001 "Unknown internal server error", as Duo's rate-limits page documents.
    Internal500,
    /// 400/40002 naming `group_id` (the emulator's earlier guess).
    Invalid400,
}

/// What Duo answers when a group is created or renamed to a name another group has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateGroupNameError {
    /// 400/40003 "Duplicate resource", as Grouper's legacy connector read real Duo's answer.
    DuplicateResource,
    /// 400/40002 "Invalid request parameters" naming `name` (the emulator's earlier guess).
    InvalidName,
}

/// How usernames are stored on create and modify (see docs/emulator.md "Usernames").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsernameStorage {
    /// Lowercased (Unicode), as Duo's replies in the evidence show.
    Lowercase,
    /// As sent.
    Verbatim,
}

/// How usernames and aliases are compared: in lookups (`username`, `username_list`) and in
/// uniqueness checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsernameComparison {
    /// Through Unicode lowercase: `JDoe` finds `jdoe`, and one excludes the other.
    CaseInsensitive,
    /// Byte for byte: `JDoe` and `jdoe` are two users, and a lookup finds only its spelling.
    Exact,
}

/// A named bundle of settings: `evidence` (the defaults: what the evidence about Duo says) or
/// `adverse` (every reading the evidence leaves open, taken against duoprov).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// The defaults.
    #[default]
    Evidence,
    /// Bulk remove `POST` answered per-op 404, bulk replies bare, bulk and `bulk_create` at
    /// 50/min in their own class, id-list lookups at 40/min in their own class, non-unique group
    /// names, no burst (`rate_limits.burst = 1`), and usernames kept verbatim and compared exactly.
    Adverse,
}

impl std::str::FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "evidence" => Ok(Self::Evidence),
            "adverse" => Ok(Self::Adverse),
            other => Err(format!(
                "unknown profile {other:?} (expected evidence or adverse)"
            )),
        }
    }
}

/// Every behavioural knob. Defaults follow the evidence about Duo (docs/emulator.md gives the
/// source of each); where Duo's behaviour is unverified, the most plausible reading is the
/// default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Accepted difference between a request's `Date`/`X-Duo-Date` and the emulator's clock, in
    /// seconds (default 300). Official clients resend the same `Date` for ~70 s while backing off.
    pub clock_skew_secs: u64,
    /// A host name signatures may use besides the `Host` header (with or without its port).
    pub canonical_host: Option<String>,
    /// Largest request body accepted, in bytes (default 1 MiB); larger gets 413/41301.
    pub max_body_bytes: usize,
    /// Seconds to wait for a request body before answering 400/40002 (default 30).
    pub body_timeout_secs: u64,
    /// Seconds a connection may wait for the client's next bytes (mid-request or idle between
    /// keep-alive requests) before the emulator closes it (default 60).
    pub idle_timeout_secs: u64,
    /// The profile these settings started from (`evidence` by default). In a settings file it
    /// is applied first, and the file's other keys override it.
    pub profile: Profile,
    /// Shorthand: compare usernames and aliases case-insensitively even when usernames are kept
    /// verbatim (default false). `username_comparison` wins when set.
    pub usernames_case_insensitive: bool,
    /// Shorthand for both username readings: `true` (the default, as real Duo most likely does)
    /// stores usernames lowercased and compares usernames and aliases case-insensitively;
    /// `false` keeps usernames verbatim and compares them exactly (case-insensitively with
    /// `usernames_case_insensitive`). `username_storage` and `username_comparison` win when set.
    pub lowercase_usernames: bool,
    /// How usernames are stored (default: from `lowercase_usernames`); see
    /// [`Settings::username_storage`]. Aliases are stored as sent under either.
    pub username_storage: Option<UsernameStorage>,
    /// How usernames and aliases are compared in lookups and uniqueness (default: from
    /// `lowercase_usernames` and `usernames_case_insensitive`); see
    /// [`Settings::username_comparison`].
    pub username_comparison: Option<UsernameComparison>,
    /// Reject a group whose name another group already has (default true).
    pub unique_group_names: bool,
    /// The answer to a duplicate group name (default `duplicate_resource`: 400/40003).
    pub duplicate_group_name_error: DuplicateGroupNameError,
    /// Keep the legacy group flags (`push_enabled`, `sms_enabled`, `voice_enabled`,
    /// `mobile_otp_enabled`) as sent, defaulting to true (default false: they always read
    /// false and input is ignored, as Duo answers today).
    pub legacy_group_flags_stored: bool,
    /// Lists carry `next_offset` / `prev_offset` as `null` when they do not apply (default
    /// false: absent, as a real Duo capture shows).
    pub list_metadata_nulls: bool,
    /// Adding a membership that exists answers 200 (default false: 400/40004 "Operation failed" /
    /// "User is already a member of the specified group", as real Duo).
    pub duplicate_membership_ok: bool,
    /// Groups one user may belong to (default 100).
    pub max_groups_per_user: usize,
    /// The answer to one group more than `max_groups_per_user` (default `internal500`:
    /// 500/50001 "Unknown internal server error").
    pub group_limit_error: GroupLimitError,
    /// `GET /users` lists users in the Trash (`pending deletion`) (default true).
    pub list_trashed_users: bool,
    /// Days a trashed user stays restorable before it is removed for good (default 7).
    pub trash_retention_days: u32,
    /// Spelling of `status` in group objects from the group endpoints (default title, as a real
    /// Duo capture shows).
    pub group_status_case: StatusCase,
    /// Spelling of `status` in groups embedded in user objects (default title, as Duo's example).
    pub embedded_group_status_case: StatusCase,
    /// Items of `GET /admin/v2/groups/{id}/users` carry `username` too (default true).
    pub group_users_include_username: bool,
    /// A `limit` above the endpoint's maximum is refused with 400/40002 instead of clamped
    /// silently (default false: clamp).
    pub reject_limit_over_max: bool,
    /// Code for a missing required parameter: 40002 (default) or 40001.
    pub missing_param_code: u32,
    /// Most values in `user_id_list` / `username_list` / `group_id_list` (default 100).
    pub max_list_values: usize,
    /// Most operations in one `/admin/v1/bulk` call (default 50).
    pub bulk_max_operations: usize,
    /// How bulk answers a remove spelt `POST …/groups/{group_id}` (default `ok`).
    pub bulk_remove_post: BulkRemovePost,
    /// The shape of bulk's answer (default `envelopes`).
    pub bulk_reply_shape: BulkReplyShape,
    /// Most users in one `bulk_create` call (default 100).
    pub bulk_create_max_users: usize,
    /// Page sizes.
    pub page_limits: PageLimits,
    /// Rate limits.
    pub rate_limits: RateLimits,
    /// Seed for generated ids (random when absent).
    pub id_seed: Option<u64>,
    /// Use this Unix time for `created` and other timestamps instead of the clock (snapshots).
    pub fixed_time: Option<i64>,
    /// Calls kept in the introspection log (default 100 000; oldest dropped first).
    pub call_log_capacity: usize,
    /// Serve the `/_emulator/*` introspection routes (loopback peers only; default true).
    pub introspection: bool,
    /// Seconds between saves of a dirty state file (default 1).
    pub save_interval_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            clock_skew_secs: 300,
            canonical_host: None,
            max_body_bytes: 1024 * 1024,
            body_timeout_secs: 30,
            idle_timeout_secs: 60,
            profile: Profile::Evidence,
            usernames_case_insensitive: false,
            lowercase_usernames: true,
            username_storage: None,
            username_comparison: None,
            unique_group_names: true,
            duplicate_group_name_error: DuplicateGroupNameError::DuplicateResource,
            legacy_group_flags_stored: false,
            list_metadata_nulls: false,
            duplicate_membership_ok: false,
            max_groups_per_user: 100,
            group_limit_error: GroupLimitError::Internal500,
            list_trashed_users: true,
            trash_retention_days: 7,
            group_status_case: StatusCase::Title,
            embedded_group_status_case: StatusCase::Title,
            group_users_include_username: true,
            reject_limit_over_max: false,
            missing_param_code: 40002,
            max_list_values: 100,
            bulk_max_operations: 50,
            bulk_remove_post: BulkRemovePost::Ok,
            bulk_reply_shape: BulkReplyShape::Envelopes,
            bulk_create_max_users: 100,
            page_limits: PageLimits::default(),
            rate_limits: RateLimits::default(),
            id_seed: None,
            fixed_time: None,
            call_log_capacity: 100_000,
            introspection: true,
            save_interval_secs: 1,
        }
    }
}

impl Settings {
    /// The settings of a profile.
    pub fn profile(profile: Profile) -> Self {
        let mut s = Self {
            profile,
            ..Self::default()
        };
        if profile == Profile::Adverse {
            s.bulk_remove_post = BulkRemovePost::PerOp404;
            s.bulk_reply_shape = BulkReplyShape::Bare;
            s.unique_group_names = false;
            s.rate_limits.bulk_per_min = Some(50);
            s.rate_limits.id_list_per_min = Some(40);
            // No burst at all: every call must wait its turn.
            s.rate_limits.burst = 1;
            // Usernames kept verbatim, and then the harsher of the two comparisons: exact, under
            // which a lookup finds only its own spelling and `JDoe` and `jdoe` can both exist.
            // Set through the shorthand, so a settings file's `lowercase_usernames` still
            // overrides it.
            s.lowercase_usernames = false;
            s.usernames_case_insensitive = false;
        }
        s
    }

    /// How usernames are stored: `username_storage`, else lowercased under
    /// `lowercase_usernames`, else verbatim.
    pub fn username_storage(&self) -> UsernameStorage {
        self.username_storage.unwrap_or(if self.lowercase_usernames { UsernameStorage::Lowercase } else { UsernameStorage::Verbatim })
    }

    /// How usernames and aliases are compared: `username_comparison`, else case-insensitively
    /// under `lowercase_usernames` or `usernames_case_insensitive`, else exactly.
    pub fn username_comparison(&self) -> UsernameComparison {
        self.username_comparison.unwrap_or(if self.lowercase_usernames || self.usernames_case_insensitive {
            UsernameComparison::CaseInsensitive
        } else {
            UsernameComparison::Exact
        })
    }

    /// Reads a settings file: its `profile` (or the `profile` argument, which wins when given) is applied
    /// first, then every other key the file holds overrides it (nested objects key by key).
    pub fn from_json(text: &[u8], profile: Option<Profile>) -> Result<Self, String> {
        let mut given: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| e.to_string())?;
        let serde_json::Value::Object(map) = &mut given else {
            return Err("settings must be a JSON object".into());
        };
        let from_file = match map.remove("profile") {
            None => None,
            Some(v) => Some(serde_json::from_value::<Profile>(v).map_err(|e| format!("profile: {e}"))?),
        };
        let base = Self::profile(profile.or(from_file).unwrap_or_default());
        let mut merged = serde_json::to_value(&base).map_err(|e| e.to_string())?;
        merge(&mut merged, given);
        serde_json::from_value(merged).map_err(|e| e.to_string())
    }

    /// Checks values that would make the emulator misbehave.
    pub fn validate(&self) -> Result<(), String> {
        if self.missing_param_code != 40001 && self.missing_param_code != 40002 {
            return Err("missing_param_code must be 40001 or 40002".into());
        }
        let pl = &self.page_limits;
        for (name, l) in [
            ("users", pl.users),
            ("user_groups", pl.user_groups),
            ("groups", pl.groups),
            ("group_users", pl.group_users),
            ("admins", pl.admins),
        ] {
            if l.default == 0 || l.max == 0 || l.default > l.max {
                return Err(format!("page_limits.{name}: need 0 < default <= max"));
            }
        }
        let rl = &self.rate_limits;
        if !(rl.scale.is_finite() && rl.scale > 0.0) {
            return Err("rate_limits.scale must be a positive number".into());
        }
        if rl.burst == 0 {
            return Err("rate_limits.burst must be at least 1".into());
        }
        if rl.burst_fraction.is_some_and(|f| !(f.is_finite() && f > 0.0)) {
            return Err("rate_limits.burst_fraction must be a positive number".into());
        }
        if self.max_body_bytes == 0 {
            return Err("max_body_bytes must be positive".into());
        }
        Ok(())
    }
}

/// Overlays `over` on `base`, object by object.
fn merge(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integration_grants_in_json() {
        let all: Integration = serde_json::from_str(r#"{"ikey":"DIA","skey":"s"}"#).expect("all");
        assert_eq!(all.grants, Grants::all());
        let ro: Integration =
            serde_json::from_str(r#"{"ikey":"DIB","skey":"s","grants":{"read_resource":true}}"#)
                .expect("ro");
        assert_eq!(
            ro.grants,
            Grants {
                read_resource: true,
                ..Grants::none()
            }
        );
        assert!(
            serde_json::from_str::<Integration>(
                r#"{"ikey":"DIC","skey":"s","grants":{"fly":true}}"#
            )
            .is_err()
        );
        assert_eq!(
            Grants::parse_list("read, admins"),
            Ok(Grants {
                read_resource: true,
                administrators: true,
                ..Grants::none()
            })
        );
        assert!(format!("{all:?}").contains("[REDACTED]"));
    }
}
