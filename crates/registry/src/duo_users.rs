//! The Duo users table (`duo_user`, Grouper's `grouper_prov_duo_user`): the row type, and the
//! [`DuoUserStore`] trait the SQL backends implement (`sql/duo_users.rs`). Mapping Duo's user
//! objects to rows, with Grouper's encodings, is the sync crate's (`duoprov_sync::duo_users`):
//! the registry stores rows and knows nothing of Duo's wire format.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};

/// The columns of `duo_user`: Grouper's sixteen in Grouper's order, then the
/// authentication-method counts (the SQL, the report's CSV header).
pub const DUO_USER_COLUMNS: [&str; 27] = [
    "config_id",
    "user_id",
    "aliases",
    "phones",
    "is_push_enabled",
    "email",
    "first_name",
    "last_name",
    "is_enrolled",
    "last_directory_sync",
    "notes",
    "real_name",
    "status",
    "user_name",
    "created_at",
    "last_login_time",
    "push_phone_count",
    "mobile_otp_phone_count",
    "push_phone_last_seen",
    "sms_phone_count",
    "voice_phone_count",
    "duo_hardware_token_count",
    "hotp_token_count",
    "totp_token_count",
    "yubikey_otp_token_count",
    "webauthn_count",
    "u2f_count",
];

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
    /// How many of each authentication method the user has (Grouper's GRP-7384 counts).
    #[serde(flatten)]
    pub auth_methods: AuthMethodCounts,
}

/// A Duo user's authentication methods, counted (Grouper's GRP-7384 "sync back auth methods").
/// A count is NULL when Duo's answer did not say (the list was absent or had an odd shape), so
/// a report never takes "unknown" for "none".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthMethodCounts {
    /// Activated phones that can take Duo Push.
    pub push_phone_count: Option<i64>,
    /// Activated phones that can make Duo Mobile passcodes.
    pub mobile_otp_phone_count: Option<i64>,
    /// Epoch seconds a push phone was last seen (the latest of them).
    pub push_phone_last_seen: Option<i64>,
    /// Phones that can receive SMS passcodes.
    pub sms_phone_count: Option<i64>,
    /// Phones that can take a phone call.
    pub voice_phone_count: Option<i64>,
    /// Duo hardware tokens (`d1`).
    pub duo_hardware_token_count: Option<i64>,
    /// HOTP tokens (`h6`, `h8`).
    pub hotp_token_count: Option<i64>,
    /// TOTP tokens (`t6`, `t8`).
    pub totp_token_count: Option<i64>,
    /// YubiKey OTP tokens (`yk`).
    pub yubikey_otp_token_count: Option<i64>,
    /// WebAuthn credentials (security keys, platform authenticators).
    pub webauthn_count: Option<i64>,
    /// U2F tokens.
    pub u2f_count: Option<i64>,
}

/// One kind of authentication method, as `report` filters name it; each counts in one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthMethod {
    Push,
    MobileOtp,
    Sms,
    Voice,
    HardwareToken,
    Hotp,
    Totp,
    Yubikey,
    Webauthn,
    U2f,
}

impl AuthMethod {
    /// Every method, in the table's column order.
    pub const ALL: [AuthMethod; 10] = [
        AuthMethod::Push,
        AuthMethod::MobileOtp,
        AuthMethod::Sms,
        AuthMethod::Voice,
        AuthMethod::HardwareToken,
        AuthMethod::Hotp,
        AuthMethod::Totp,
        AuthMethod::Yubikey,
        AuthMethod::Webauthn,
        AuthMethod::U2f,
    ];

    /// The `duo_user` column that counts this method.
    pub fn column(self) -> &'static str {
        match self {
            AuthMethod::Push => "push_phone_count",
            AuthMethod::MobileOtp => "mobile_otp_phone_count",
            AuthMethod::Sms => "sms_phone_count",
            AuthMethod::Voice => "voice_phone_count",
            AuthMethod::HardwareToken => "duo_hardware_token_count",
            AuthMethod::Hotp => "hotp_token_count",
            AuthMethod::Totp => "totp_token_count",
            AuthMethod::Yubikey => "yubikey_otp_token_count",
            AuthMethod::Webauthn => "webauthn_count",
            AuthMethod::U2f => "u2f_count",
        }
    }

    /// The name `report` takes (`push`, `mobile-otp`, `sms`, `voice`, `hardware-token`, `hotp`,
    /// `totp`, `yubikey`, `webauthn`, `u2f`).
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Push => "push",
            AuthMethod::MobileOtp => "mobile-otp",
            AuthMethod::Sms => "sms",
            AuthMethod::Voice => "voice",
            AuthMethod::HardwareToken => "hardware-token",
            AuthMethod::Hotp => "hotp",
            AuthMethod::Totp => "totp",
            AuthMethod::Yubikey => "yubikey",
            AuthMethod::Webauthn => "webauthn",
            AuthMethod::U2f => "u2f",
        }
    }

    /// The method `name` names, if any.
    pub fn from_name(name: &str) -> Option<AuthMethod> {
        AuthMethod::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl AuthMethodCounts {
    /// The count of one method.
    pub fn count(&self, method: AuthMethod) -> Option<i64> {
        match method {
            AuthMethod::Push => self.push_phone_count,
            AuthMethod::MobileOtp => self.mobile_otp_phone_count,
            AuthMethod::Sms => self.sms_phone_count,
            AuthMethod::Voice => self.voice_phone_count,
            AuthMethod::HardwareToken => self.duo_hardware_token_count,
            AuthMethod::Hotp => self.hotp_token_count,
            AuthMethod::Totp => self.totp_token_count,
            AuthMethod::Yubikey => self.yubikey_otp_token_count,
            AuthMethod::Webauthn => self.webauthn_count,
            AuthMethod::U2f => self.u2f_count,
        }
    }

    /// The counts and the last-seen time in the table's column order.
    pub fn columns(&self) -> [(&'static str, Option<i64>); 11] {
        [
            ("push_phone_count", self.push_phone_count),
            ("mobile_otp_phone_count", self.mobile_otp_phone_count),
            ("push_phone_last_seen", self.push_phone_last_seen),
            ("sms_phone_count", self.sms_phone_count),
            ("voice_phone_count", self.voice_phone_count),
            ("duo_hardware_token_count", self.duo_hardware_token_count),
            ("hotp_token_count", self.hotp_token_count),
            ("totp_token_count", self.totp_token_count),
            ("yubikey_otp_token_count", self.yubikey_otp_token_count),
            ("webauthn_count", self.webauthn_count),
            ("u2f_count", self.u2f_count),
        ]
    }
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
    /// Only users with at least one of each of these methods.
    pub has_methods: Vec<AuthMethod>,
    /// Only users with none of each of these methods (a count known to be 0).
    pub lacks_methods: Vec<AuthMethod>,
    /// Only users who have at least one of these methods and none of any other (every count
    /// known): "who can sign in only by SMS or phone call" before retiring them.
    pub only_methods: Vec<AuthMethod>,
    /// Only this provisioner's Duo users (its `config_id`) whose username key is not among the
    /// usernames recorded for its selected subjects (`rendered_username`, see
    /// [`crate::ScopedReads`]): "not in the registry" by the provisioner's template, in SQL, read
    /// from `duo_user.rendered` (kept by triggers, migration 0024). The caller checks first that
    /// the recorded usernames are current and every row has its key ([`crate::RenderedReport`]).
    pub not_rendered_by: Option<String>,
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

/// Checks rows before they are written: one `config_id`, distinct user ids, no NUL characters.
pub fn check_rows(config_id: &str, rows: &[DuoUserRow]) -> Result<()> {
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
        for (column, value) in row.auth_methods.columns() {
            if value.is_some_and(|v| v < 0) {
                return Err(RegistryError::Refused(format!(
                    "Duo user {}: {column} is negative; nothing written",
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

    fn row(config_id: &str, user_id: &str) -> DuoUserRow {
        DuoUserRow {
            config_id: config_id.into(),
            user_id: user_id.into(),
            aliases: None,
            phones: None,
            is_push_enabled: Some("F".into()),
            email: None,
            first_name: None,
            last_name: None,
            is_enrolled: Some("F".into()),
            last_directory_sync: None,
            notes: None,
            real_name: None,
            status: None,
            user_name: "u".into(),
            created_at: None,
            last_login_time: None,
            auth_methods: AuthMethodCounts::default(),
        }
    }

    #[test]
    fn rows_are_checked_before_writing() {
        let row = row("p", "DU1");
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
        let mut bad = row.clone();
        bad.auth_methods.sms_phone_count = Some(-1);
        let e = check_rows("p", &[bad]).unwrap_err().to_string();
        assert!(e.contains("DU1") && e.contains("sms_phone_count is negative"), "{e}");
        assert!(check_rows("", &[]).is_err());
    }
}
