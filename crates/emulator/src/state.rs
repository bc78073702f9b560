//! The in-memory Duo tenant: users, groups, memberships and administrators, with Duo's
//! validation and uniqueness rules. Built for scale (100k users, 10k groups, 1M memberships):
//! objects live in hash maps by id, insertion-ordered id vectors give O(1) offset paging, a name
//! index maps every username and alias to its user, and memberships are stored on both sides as
//! inline 20-byte ids. Every operation validates fully before it mutates, so a rejected call
//! leaves the tenant unchanged. The same types (de)serialise the state file.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::config::{DuplicateGroupNameError, GroupLimitError, Settings, StatusCase, UsernameComparison, UsernameStorage};
use crate::error::ApiError;
use crate::id::{self, DuoId, IdGen};

/// Alias slots a user has (`alias1` … `alias8`).
pub const ALIAS_SLOTS: u8 = 8;

/// A user's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserStatus {
    /// Must complete 2FA.
    #[serde(rename = "active")]
    Active,
    /// Skips 2FA.
    #[serde(rename = "bypass")]
    Bypass,
    /// Cannot log in.
    #[serde(rename = "disabled")]
    Disabled,
    /// Set by the system only.
    #[serde(rename = "locked out")]
    LockedOut,
    /// In the Trash.
    #[serde(rename = "pending deletion")]
    PendingDeletion,
}

impl UserStatus {
    /// Duo's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Bypass => "bypass",
            Self::Disabled => "disabled",
            Self::LockedOut => "locked out",
            Self::PendingDeletion => "pending deletion",
        }
    }

    /// The statuses an API caller may set: `active`, `bypass`, `disabled` (any case).
    pub fn parse_settable(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "active" => Some(Self::Active),
            "bypass" => Some(Self::Bypass),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
}

/// A group's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupStatus {
    /// Members must complete 2FA.
    Active,
    /// Members skip 2FA.
    Bypass,
    /// Members cannot log in.
    Disabled,
}

impl GroupStatus {
    /// Lower-case spelling.
    pub fn lower(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Bypass => "bypass",
            Self::Disabled => "disabled",
        }
    }

    /// Title-case spelling.
    pub fn title(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Bypass => "Bypass",
            Self::Disabled => "Disabled",
        }
    }

    /// Parses `active`, `bypass`, `disabled` in any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "active" => Some(Self::Active),
            "bypass" => Some(Self::Bypass),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
}

mod alias_map {
    //! (De)serialises alias slots as `{"alias1": "…", …}`.
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeMap};

    pub fn serialize<S: Serializer>(m: &BTreeMap<u8, String>, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(m.len()))?;
        for (slot, v) in m {
            map.serialize_entry(&format!("alias{slot}"), v)?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<u8, String>, D::Error> {
        let raw = BTreeMap::<String, String>::deserialize(d)?;
        let mut out = BTreeMap::new();
        for (k, v) in raw {
            let slot = super::alias_slot(&k)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown alias key {k:?}")))?;
            out.insert(slot, v);
        }
        Ok(out)
    }
}

/// `alias1` … `alias8` → 1 … 8.
pub fn alias_slot(key: &str) -> Option<u8> {
    let n: u8 = key.strip_prefix("alias")?.parse().ok()?;
    (1..=ALIAS_SLOTS).contains(&n).then_some(n)
}

/// A Duo user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// `DU…` id.
    pub user_id: DuoId,
    /// Username.
    pub username: String,
    /// Alias slots 1..=8 that are set.
    #[serde(default, with = "alias_map")]
    pub aliases: BTreeMap<u8, String>,
    /// Full name.
    #[serde(default)]
    pub realname: String,
    /// Given name.
    #[serde(default)]
    pub firstname: String,
    /// Surname.
    #[serde(default)]
    pub lastname: String,
    /// Email.
    #[serde(default)]
    pub email: String,
    /// Notes.
    #[serde(default)]
    pub notes: String,
    /// Status.
    pub status: UserStatus,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds of the last login.
    #[serde(default)]
    pub last_login: Option<i64>,
    /// Unix seconds of the last directory sync.
    #[serde(default)]
    pub last_directory_sync: Option<i64>,
    /// Has an authentication method.
    #[serde(default)]
    pub is_enrolled: bool,
    /// `enable_auto_prompt`.
    #[serde(default)]
    pub enable_auto_prompt: bool,
    /// Groups, in the order they were added.
    #[serde(default)]
    pub groups: Vec<DuoId>,
    /// When the user went to the Trash (status `pending deletion`).
    #[serde(default)]
    pub trashed_at: Option<i64>,
    /// The user's authentication devices, as Duo lists them (`phones`, `tokens`, `u2ftokens`,
    /// `webauthncredentials`). Enrolment is the user's own act in Duo, never an Admin API
    /// client's: tests seed them through the state (`PUT /_emulator/state`), and the user object
    /// shows them as given.
    #[serde(default, skip_serializing_if = "Devices::is_empty")]
    pub devices: Devices,
}

/// A user's authentication devices, each kept as the JSON object Duo would list.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    #[serde(default)]
    pub phones: Vec<serde_json::Value>,
    #[serde(default)]
    pub tokens: Vec<serde_json::Value>,
    #[serde(default)]
    pub u2ftokens: Vec<serde_json::Value>,
    #[serde(default)]
    pub webauthncredentials: Vec<serde_json::Value>,
}

impl Devices {
    /// No device of any kind.
    pub fn is_empty(&self) -> bool {
        self.phones.is_empty() && self.tokens.is_empty() && self.u2ftokens.is_empty() && self.webauthncredentials.is_empty()
    }
}

/// A Duo group.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// `DG…` id.
    pub group_id: DuoId,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub desc: String,
    /// Status.
    pub status: GroupStatus,
    /// Legacy factor flag (always false unless `legacy_group_flags_stored`).
    #[serde(default = "yes")]
    pub push_enabled: bool,
    /// Legacy factor flag.
    #[serde(default = "yes")]
    pub sms_enabled: bool,
    /// Legacy factor flag.
    #[serde(default = "yes")]
    pub voice_enabled: bool,
    /// Legacy factor flag.
    #[serde(default = "yes")]
    pub mobile_otp_enabled: bool,
    /// Members in the order they were added (rebuilt from the users on load).
    #[serde(skip)]
    pub members: Vec<DuoId>,
    /// The group's JSON, cached for embedding in user objects.
    #[serde(skip)]
    rendered: Rendered,
}

/// A group's JSON in both status spellings.
#[derive(Debug, Clone, Default)]
struct Rendered {
    lower: String,
    title: String,
}

impl Group {
    /// The group's JSON object with `status` spelled as `case` (kept current by the tenant).
    pub fn rendered(&self, case: StatusCase) -> &str {
        match case {
            StatusCase::Lower => &self.rendered.lower,
            StatusCase::Title => &self.rendered.title,
        }
    }

    /// Sets the legacy factor flags to false, as Duo reports them today.
    fn clear_legacy_flags(&mut self) {
        self.push_enabled = false;
        self.sms_enabled = false;
        self.voice_enabled = false;
        self.mobile_otp_enabled = false;
    }

    fn render(&mut self) {
        self.rendered = Rendered {
            lower: crate::views::group_json(self, StatusCase::Lower),
            title: crate::views::group_json(self, StatusCase::Title),
        };
    }
}

fn yes() -> bool {
    true
}

/// A Duo administrator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// `DE…` id.
    pub admin_id: DuoId,
    /// Name.
    pub name: String,
    /// Email (unique).
    pub email: String,
    /// Phone.
    #[serde(default)]
    pub phone: String,
    /// Role (`Owner`, `Administrator`, `Help Desk`, …).
    pub role: String,
    /// `Active` or `Disabled`.
    pub status: String,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds of the last login.
    #[serde(default)]
    pub last_login: Option<i64>,
    /// Must change password at next login.
    #[serde(default)]
    pub password_change_required: bool,
    /// Created with `send_email=1`: Duo would have e-mailed the activation link (the emulator
    /// only records it; not part of Duo's administrator object).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub activation_emailed: bool,
}

/// Roles an administrator may have.
pub const ADMIN_ROLES: &[&str] = &[
    "Owner",
    "Administrator",
    "Application Manager",
    "User Manager",
    "Security Analyst",
    "Help Desk",
    "Billing",
    "Phishing Manager",
    "Read-only",
];

/// Field values for creating or modifying a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserFields {
    /// New username.
    pub username: Option<String>,
    /// New full name.
    pub realname: Option<String>,
    /// New given name.
    pub firstname: Option<String>,
    /// New surname.
    pub lastname: Option<String>,
    /// New email.
    pub email: Option<String>,
    /// New notes.
    pub notes: Option<String>,
    /// New status.
    pub status: Option<UserStatus>,
    /// New `enable_auto_prompt`.
    pub enable_auto_prompt: Option<bool>,
    /// Alias slot changes: `Some(v)` sets, `None` clears.
    pub aliases: Vec<(u8, Option<String>)>,
}

/// Field values for creating or modifying a group; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct GroupFields {
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub desc: Option<String>,
    /// Status.
    pub status: Option<GroupStatus>,
    /// Legacy flags.
    pub push_enabled: Option<bool>,
    /// Legacy flags.
    pub sms_enabled: Option<bool>,
    /// Legacy flags.
    pub voice_enabled: Option<bool>,
    /// Legacy flags.
    pub mobile_otp_enabled: Option<bool>,
}

/// Field values for creating or modifying an administrator.
#[derive(Debug, Clone, Default)]
pub struct AdminFields {
    /// Name.
    pub name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Role.
    pub role: Option<String>,
    /// `Active` / `Disabled`.
    pub status: Option<String>,
    /// Must change password.
    pub password_change_required: Option<bool>,
    /// Create only: e-mail the activation link (`send_email`, default 0).
    pub send_email: Option<bool>,
}

/// What the state file holds (and what `GET /_emulator/state` returns).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantDump {
    /// Format version (1).
    #[serde(default = "one")]
    pub version: u32,
    /// Users in list order, each with its group ids.
    #[serde(default)]
    pub users: Vec<User>,
    /// Groups in list order.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// Administrators in list order.
    #[serde(default)]
    pub admins: Vec<Admin>,
}

fn one() -> u32 {
    1
}

/// The tenant.
#[derive(Debug, Default)]
pub struct Tenant {
    users: HashMap<DuoId, User>,
    user_order: Vec<DuoId>,
    names: HashMap<String, DuoId>,
    trashed: HashSet<DuoId>,
    groups: HashMap<DuoId, Group>,
    group_order: Vec<DuoId>,
    group_names: HashMap<String, usize>,
    admins: HashMap<DuoId, Admin>,
    admin_order: Vec<DuoId>,
    case_insensitive: bool,
    lowercase: bool,
}

/// The answer to a group name another group has.
fn duplicate_name(settings: &Settings) -> ApiError {
    match settings.duplicate_group_name_error {
        DuplicateGroupNameError::DuplicateResource => ApiError::duplicate_resource(),
        DuplicateGroupNameError::InvalidName => ApiError::invalid("name"),
    }
}

fn remove_from(order: &mut Vec<DuoId>, id: &DuoId) {
    if let Some(pos) = order.iter().position(|x| x == id) {
        order.remove(pos);
    }
}

impl Tenant {
    /// An empty tenant using the name rules of `settings`.
    pub fn new(settings: &Settings) -> Self {
        Self {
            case_insensitive: settings.username_comparison() == UsernameComparison::CaseInsensitive,
            lowercase: settings.username_storage() == UsernameStorage::Lowercase,
            ..Self::default()
        }
    }

    fn key(&self, name: &str) -> String {
        if self.case_insensitive {
            name.to_lowercase()
        } else {
            name.to_owned()
        }
    }

    /// A username as stored: lowercased under [`UsernameStorage::Lowercase`], else verbatim.
    fn stored_username(&self, name: String) -> String {
        if self.lowercase {
            name.to_lowercase()
        } else {
            name
        }
    }

    /// Builds a tenant from a dump, checking ids, uniqueness and references.
    pub fn from_dump(dump: TenantDump, settings: &Settings) -> Result<Self, String> {
        if dump.version != 1 {
            return Err(format!("unsupported state version {}", dump.version));
        }
        let mut t = Self::new(settings);
        for mut g in dump.groups {
            if !g.group_id.as_str().starts_with("DG") {
                return Err(format!("group id {} does not start with DG", g.group_id));
            }
            g.members.clear();
            if !settings.legacy_group_flags_stored {
                g.clear_legacy_flags();
            }
            g.render();
            if t.groups.contains_key(&g.group_id) {
                return Err(format!("duplicate group id {}", g.group_id));
            }
            *t.group_names.entry(g.name.clone()).or_default() += 1;
            t.group_order.push(g.group_id);
            t.groups.insert(g.group_id, g);
        }
        for u in dump.users {
            if !u.user_id.as_str().starts_with("DU") {
                return Err(format!("user id {} does not start with DU", u.user_id));
            }
            if t.users.contains_key(&u.user_id) {
                return Err(format!("duplicate user id {}", u.user_id));
            }
            let mut seen = HashSet::new();
            for name in std::iter::once(&u.username).chain(u.aliases.values()) {
                let k = t.key(name);
                if !seen.insert(k.clone()) || t.names.contains_key(&k) {
                    return Err(format!("username or alias {name:?} is not unique"));
                }
            }
            for gid in &u.groups {
                let g = t
                    .groups
                    .get_mut(gid)
                    .ok_or_else(|| format!("user {} names unknown group {gid}", u.user_id))?;
                if g.members.contains(&u.user_id) {
                    return Err(format!("user {} lists group {gid} twice", u.user_id));
                }
                g.members.push(u.user_id);
            }
            for name in std::iter::once(&u.username).chain(u.aliases.values()) {
                let k = t.key(name);
                t.names.insert(k, u.user_id);
            }
            if u.trashed_at.is_some() {
                t.trashed.insert(u.user_id);
            }
            t.user_order.push(u.user_id);
            t.users.insert(u.user_id, u);
        }
        for a in dump.admins {
            if t.admins.contains_key(&a.admin_id) {
                return Err(format!("duplicate admin id {}", a.admin_id));
            }
            t.admin_order.push(a.admin_id);
            t.admins.insert(a.admin_id, a);
        }
        Ok(t)
    }

    /// The whole tenant as a dump (users and groups in list order).
    pub fn dump(&self) -> TenantDump {
        TenantDump {
            version: 1,
            users: self
                .user_order
                .iter()
                .filter_map(|id| self.users.get(id))
                .cloned()
                .collect(),
            groups: self
                .group_order
                .iter()
                .filter_map(|id| self.groups.get(id))
                .cloned()
                .collect(),
            admins: self
                .admin_order
                .iter()
                .filter_map(|id| self.admins.get(id))
                .cloned()
                .collect(),
        }
    }

    // ----- users -------------------------------------------------------------------------

    /// Number of users.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Number of groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Number of memberships.
    pub fn membership_count(&self) -> usize {
        self.users.values().map(|u| u.groups.len()).sum()
    }

    /// User ids in list order.
    pub fn user_order(&self) -> &[DuoId] {
        &self.user_order
    }

    /// A user by id.
    pub fn user(&self, id: &DuoId) -> Option<&User> {
        self.users.get(id)
    }

    /// The user whose username or alias is `name`.
    /// Sets a user's `is_enrolled`, as the user's own enrolment (or an administrator's reset)
    /// does: no Admin API call sets it. False when there is no such user.
    pub fn set_user_enrolled(&mut self, id: &DuoId, enrolled: bool) -> bool {
        match self.users.get_mut(id) {
            Some(u) => {
                u.is_enrolled = enrolled;
                true
            }
            None => false,
        }
    }

    pub fn user_by_name(&self, name: &str) -> Option<&User> {
        self.names
            .get(&self.key(name))
            .and_then(|id| self.users.get(id))
    }

    /// Users whose email equals `email` (case-insensitively), in list order.
    pub fn users_by_email(&self, email: &str) -> Vec<DuoId> {
        self.user_order
            .iter()
            .filter(|id| {
                self.users
                    .get(id)
                    .is_some_and(|u| u.email.eq_ignore_ascii_case(email))
            })
            .copied()
            .collect()
    }

    fn check_names(
        &self,
        owner: Option<DuoId>,
        username: &str,
        aliases: &BTreeMap<u8, String>,
    ) -> Result<(), ApiError> {
        let mut seen = HashSet::new();
        if username.trim().is_empty() {
            return Err(ApiError::invalid("username"));
        }
        let uk = self.key(username);
        seen.insert(uk.clone());
        if let Some(other) = self.names.get(&uk)
            && Some(*other) != owner
        {
            return Err(ApiError::invalid("username"));
        }
        for (slot, alias) in aliases {
            let k = self.key(alias);
            if !seen.insert(k.clone()) {
                return Err(ApiError::invalid(format!("alias{slot}")));
            }
            if let Some(other) = self.names.get(&k)
                && Some(*other) != owner
            {
                return Err(ApiError::invalid(format!("alias{slot}")));
            }
        }
        Ok(())
    }

    fn apply_aliases(aliases: &mut BTreeMap<u8, String>, changes: &[(u8, Option<String>)]) {
        for (slot, value) in changes {
            match value {
                Some(v) if !v.is_empty() => {
                    aliases.insert(*slot, v.clone());
                }
                _ => {
                    aliases.remove(slot);
                }
            }
        }
    }

    /// Creates a user; `fields.username` must be set.
    pub fn create_user(
        &mut self,
        fields: UserFields,
        now: i64,
        ids: &mut IdGen,
    ) -> Result<DuoId, ApiError> {
        let username = self.stored_username(
            fields
                .username
                .clone()
                .ok_or_else(|| ApiError::invalid("username"))?,
        );
        let mut aliases = BTreeMap::new();
        Self::apply_aliases(&mut aliases, &fields.aliases);
        self.check_names(None, &username, &aliases)?;
        let user_id = self.fresh_id(ids, id::USER);
        let user = User {
            user_id,
            username,
            aliases,
            realname: fields.realname.unwrap_or_default(),
            firstname: fields.firstname.unwrap_or_default(),
            lastname: fields.lastname.unwrap_or_default(),
            email: fields.email.unwrap_or_default(),
            notes: fields.notes.unwrap_or_default(),
            status: fields.status.unwrap_or(UserStatus::Active),
            created: now,
            last_login: None,
            last_directory_sync: None,
            is_enrolled: false,
            enable_auto_prompt: fields.enable_auto_prompt.unwrap_or(true),
            groups: Vec::new(),
            trashed_at: None,
            devices: Devices::default(),
        };
        self.index_names(&user);
        self.user_order.push(user_id);
        self.users.insert(user_id, user);
        Ok(user_id)
    }

    /// Checks that every user in `batch` could be created together (usernames and aliases unique
    /// against the tenant and each other); used by `bulk_create` before creating any.
    pub fn check_user_batch(&self, batch: &[UserFields]) -> Result<(), ApiError> {
        let mut seen = HashSet::new();
        for (i, f) in batch.iter().enumerate() {
            let username = f
                .username
                .as_deref()
                .ok_or_else(|| ApiError::invalid(format!("users[{i}].username")))?;
            let mut aliases = BTreeMap::new();
            Self::apply_aliases(&mut aliases, &f.aliases);
            self.check_names(None, username, &aliases).map_err(|e| {
                ApiError::invalid(format!("users[{i}].{}", e.detail.unwrap_or_default()))
            })?;
            for name in std::iter::once(username).chain(aliases.values().map(String::as_str)) {
                if !seen.insert(self.key(name)) {
                    return Err(ApiError::invalid(format!("users[{i}].username")));
                }
            }
        }
        Ok(())
    }

    fn index_names(&mut self, user: &User) {
        let id = user.user_id;
        let keys: Vec<String> = std::iter::once(&user.username)
            .chain(user.aliases.values())
            .map(|n| self.key(n))
            .collect();
        for k in keys {
            self.names.insert(k, id);
        }
    }

    fn unindex_names(&mut self, user: &User) {
        let keys: Vec<String> = std::iter::once(&user.username)
            .chain(user.aliases.values())
            .map(|n| self.key(n))
            .collect();
        for k in keys {
            if self.names.get(&k) == Some(&user.user_id) {
                self.names.remove(&k);
            }
        }
    }

    fn fresh_id(&self, ids: &mut IdGen, prefix: [u8; 2]) -> DuoId {
        loop {
            let id = ids.next(prefix);
            if !self.users.contains_key(&id)
                && !self.groups.contains_key(&id)
                && !self.admins.contains_key(&id)
            {
                return id;
            }
        }
    }

    /// Modifies a user. Unknown id → 404/40401.
    pub fn modify_user(&mut self, id: &DuoId, fields: UserFields) -> Result<(), ApiError> {
        let current = self.users.get(id).ok_or_else(ApiError::not_found)?;
        let username = match fields.username.clone() {
            Some(u) => self.stored_username(u),
            None => current.username.clone(),
        };
        let mut aliases = current.aliases.clone();
        Self::apply_aliases(&mut aliases, &fields.aliases);
        self.check_names(Some(*id), &username, &aliases)?;
        let old = current.clone();
        self.unindex_names(&old);
        let Some(user) = self.users.get_mut(id) else {
            return Err(ApiError::not_found());
        };
        user.username = username;
        user.aliases = aliases;
        if let Some(v) = fields.realname {
            user.realname = v;
        }
        if let Some(v) = fields.firstname {
            user.firstname = v;
        }
        if let Some(v) = fields.lastname {
            user.lastname = v;
        }
        if let Some(v) = fields.email {
            user.email = v;
        }
        if let Some(v) = fields.notes {
            user.notes = v;
        }
        // Duo accepts a status for a trashed user with 200 and leaves it in the Trash
        // (community.duo.com 5758): its status stays `pending deletion`.
        if let Some(v) = fields.status
            && user.trashed_at.is_none()
        {
            user.status = v;
        }
        if let Some(v) = fields.enable_auto_prompt {
            user.enable_auto_prompt = v;
        }
        let snapshot = user.clone();
        self.index_names(&snapshot);
        Ok(())
    }

    /// Deletes a user permanently with its memberships; `false` when it did not exist.
    pub fn delete_user(&mut self, id: &DuoId) -> bool {
        let Some(user) = self.users.remove(id) else {
            return false;
        };
        self.unindex_names(&user);
        for gid in &user.groups {
            if let Some(g) = self.groups.get_mut(gid) {
                remove_from(&mut g.members, id);
            }
        }
        self.trashed.remove(id);
        remove_from(&mut self.user_order, id);
        true
    }

    /// Moves users to the Trash (`pending deletion`). All ids must exist, else 400/40002 and
    /// nothing changes.
    pub fn trash_users(&mut self, ids: &[DuoId], now: i64) -> Result<(), ApiError> {
        if let Some(bad) = ids.iter().find(|id| !self.users.contains_key(id)) {
            return Err(ApiError::invalid(format!("user_id_list ({bad})")));
        }
        for id in ids {
            if let Some(u) = self.users.get_mut(id)
                && u.trashed_at.is_none()
            {
                u.trashed_at = Some(now);
                u.status = UserStatus::PendingDeletion;
                self.trashed.insert(*id);
            }
        }
        Ok(())
    }

    /// Restores users from the Trash to `active`. All ids must exist, else 400/40002.
    pub fn restore_users(&mut self, ids: &[DuoId]) -> Result<(), ApiError> {
        if let Some(bad) = ids.iter().find(|id| !self.users.contains_key(id)) {
            return Err(ApiError::invalid(format!("user_id_list ({bad})")));
        }
        for id in ids {
            if let Some(u) = self.users.get_mut(id)
                && u.trashed_at.take().is_some()
            {
                u.status = UserStatus::Active;
                self.trashed.remove(id);
            }
        }
        Ok(())
    }

    /// Whether any user is in the Trash.
    pub fn has_trash(&self) -> bool {
        !self.trashed.is_empty()
    }

    /// Permanently removes trashed users older than `retention_secs`; returns how many.
    pub fn purge_trash(&mut self, now: i64, retention_secs: i64) -> usize {
        if self.trashed.is_empty() {
            return 0;
        }
        let expired: Vec<DuoId> = self
            .trashed
            .iter()
            .filter(|id| {
                self.users
                    .get(id)
                    .and_then(|u| u.trashed_at)
                    .is_some_and(|t| now.saturating_sub(t) >= retention_secs)
            })
            .copied()
            .collect();
        for id in &expired {
            self.delete_user(id);
        }
        expired.len()
    }

    // ----- memberships -----------------------------------------------------------------

    /// Adds `user` to `group`. Unknown user → 404/40401, unknown group → 400/40002 `group_id`,
    /// full user → `limit_error` (Duo's 500/50001 by default), existing membership → 400/40004
    /// (Duo's "already a member") or OK per setting.
    pub fn add_membership(
        &mut self,
        user: &DuoId,
        group: &DuoId,
        max_groups: usize,
        limit_error: GroupLimitError,
        duplicate_ok: bool,
    ) -> Result<(), ApiError> {
        let u = self.users.get(user).ok_or_else(ApiError::not_found)?;
        if !self.groups.contains_key(group) {
            return Err(ApiError::invalid("group_id"));
        }
        if u.groups.contains(group) {
            return if duplicate_ok {
                Ok(())
            } else {
                Err(ApiError::already_a_member())
            };
        }
        if u.groups.len() >= max_groups {
            return Err(match limit_error {
                GroupLimitError::Internal500 => ApiError::object_limit(),
                GroupLimitError::Invalid400 => ApiError::invalid(format!(
                    "group_id (user already in {max_groups} groups)"
                )),
            });
        }
        if let Some(u) = self.users.get_mut(user) {
            u.groups.push(*group);
        }
        if let Some(g) = self.groups.get_mut(group) {
            g.members.push(*user);
        }
        Ok(())
    }

    /// Removes `user` from `group`. Unknown user → 404/40401; absent membership is fine.
    pub fn remove_membership(&mut self, user: &DuoId, group: &DuoId) -> Result<(), ApiError> {
        let u = self.users.get_mut(user).ok_or_else(ApiError::not_found)?;
        remove_from(&mut u.groups, group);
        if let Some(g) = self.groups.get_mut(group) {
            remove_from(&mut g.members, user);
        }
        Ok(())
    }

    // ----- groups ------------------------------------------------------------------------

    /// Group ids in list order.
    pub fn group_order(&self) -> &[DuoId] {
        &self.group_order
    }

    /// A group by id.
    pub fn group(&self, id: &DuoId) -> Option<&Group> {
        self.groups.get(id)
    }

    /// Creates a group; `fields.name` must be set. Name uniqueness, its error and the legacy
    /// flags follow `settings`.
    pub fn create_group(
        &mut self,
        fields: GroupFields,
        settings: &Settings,
        ids: &mut IdGen,
    ) -> Result<DuoId, ApiError> {
        let name = fields.name.ok_or_else(|| ApiError::invalid("name"))?;
        if name.trim().is_empty() {
            return Err(ApiError::invalid("name"));
        }
        if settings.unique_group_names && self.group_names.get(&name).is_some_and(|n| *n > 0) {
            return Err(duplicate_name(settings));
        }
        let flag = |v: Option<bool>| {
            settings.legacy_group_flags_stored && v.unwrap_or(true)
        };
        let group_id = self.fresh_id(ids, id::GROUP);
        let group = Group {
            group_id,
            name: name.clone(),
            desc: fields.desc.unwrap_or_default(),
            status: fields.status.unwrap_or(GroupStatus::Active),
            push_enabled: flag(fields.push_enabled),
            sms_enabled: flag(fields.sms_enabled),
            voice_enabled: flag(fields.voice_enabled),
            mobile_otp_enabled: flag(fields.mobile_otp_enabled),
            members: Vec::new(),
            rendered: Rendered::default(),
        };
        let mut group = group;
        group.render();
        *self.group_names.entry(name).or_default() += 1;
        self.group_order.push(group_id);
        self.groups.insert(group_id, group);
        Ok(group_id)
    }

    /// Modifies a group. Unknown id → 404/40401. Name uniqueness, its error and the legacy
    /// flags follow `settings`.
    pub fn modify_group(
        &mut self,
        id: &DuoId,
        mut fields: GroupFields,
        settings: &Settings,
    ) -> Result<(), ApiError> {
        let current = self.groups.get(id).ok_or_else(ApiError::not_found)?;
        if let Some(name) = &fields.name {
            if name.trim().is_empty() {
                return Err(ApiError::invalid("name"));
            }
            if settings.unique_group_names
                && *name != current.name
                && self.group_names.get(name).is_some_and(|n| *n > 0)
            {
                return Err(duplicate_name(settings));
            }
        }
        if !settings.legacy_group_flags_stored {
            fields.push_enabled = None;
            fields.sms_enabled = None;
            fields.voice_enabled = None;
            fields.mobile_otp_enabled = None;
        }
        let old_name = current.name.clone();
        if let Some(name) = &fields.name
            && *name != old_name
        {
            if let Some(n) = self.group_names.get_mut(&old_name) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.group_names.remove(&old_name);
                }
            }
            *self.group_names.entry(name.clone()).or_default() += 1;
        }
        let Some(g) = self.groups.get_mut(id) else {
            return Err(ApiError::not_found());
        };
        if let Some(v) = fields.name {
            g.name = v;
        }
        if let Some(v) = fields.desc {
            g.desc = v;
        }
        if let Some(v) = fields.status {
            g.status = v;
        }
        if let Some(v) = fields.push_enabled {
            g.push_enabled = v;
        }
        if let Some(v) = fields.sms_enabled {
            g.sms_enabled = v;
        }
        if let Some(v) = fields.voice_enabled {
            g.voice_enabled = v;
        }
        if let Some(v) = fields.mobile_otp_enabled {
            g.mobile_otp_enabled = v;
        }
        g.render();
        Ok(())
    }

    /// Deletes a group and its memberships; `false` when it did not exist.
    pub fn delete_group(&mut self, id: &DuoId) -> bool {
        let Some(group) = self.groups.remove(id) else {
            return false;
        };
        for uid in &group.members {
            if let Some(u) = self.users.get_mut(uid) {
                remove_from(&mut u.groups, id);
            }
        }
        if let Some(n) = self.group_names.get_mut(&group.name) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.group_names.remove(&group.name);
            }
        }
        remove_from(&mut self.group_order, id);
        true
    }

    // ----- administrators ----------------------------------------------------------------

    /// Administrator ids in list order.
    pub fn admin_order(&self) -> &[DuoId] {
        &self.admin_order
    }

    /// An administrator by id.
    pub fn admin(&self, id: &DuoId) -> Option<&Admin> {
        self.admins.get(id)
    }

    fn check_admin_fields(&self, owner: Option<DuoId>, f: &AdminFields) -> Result<(), ApiError> {
        if let Some(email) = &f.email
            && (!email.contains('@')
                || self
                    .admins
                    .values()
                    .any(|a| Some(a.admin_id) != owner && a.email.eq_ignore_ascii_case(email)))
        {
            return Err(ApiError::invalid("email"));
        }
        if let Some(role) = &f.role
            && !ADMIN_ROLES.contains(&role.as_str())
        {
            return Err(ApiError::invalid("role"));
        }
        if let Some(status) = &f.status
            && status != "Active"
            && status != "Disabled"
        {
            return Err(ApiError::invalid("status"));
        }
        if let Some(name) = &f.name
            && name.trim().is_empty()
        {
            return Err(ApiError::invalid("name"));
        }
        Ok(())
    }

    /// Creates an administrator (`name` and `email` required; role defaults to `Owner`).
    pub fn create_admin(
        &mut self,
        f: AdminFields,
        now: i64,
        ids: &mut IdGen,
    ) -> Result<DuoId, ApiError> {
        self.check_admin_fields(None, &f)?;
        let name = f.name.ok_or_else(|| ApiError::invalid("name"))?;
        let email = f.email.ok_or_else(|| ApiError::invalid("email"))?;
        let admin_id = self.fresh_id(ids, id::ADMIN);
        let admin = Admin {
            admin_id,
            name,
            email,
            phone: f.phone.unwrap_or_default(),
            role: f.role.unwrap_or_else(|| "Owner".to_owned()),
            status: f.status.unwrap_or_else(|| "Active".to_owned()),
            created: now,
            last_login: None,
            password_change_required: f.password_change_required.unwrap_or(false),
            activation_emailed: f.send_email.unwrap_or(false),
        };
        self.admin_order.push(admin_id);
        self.admins.insert(admin_id, admin);
        Ok(admin_id)
    }

    /// Modifies an administrator. Unknown id → 404/40401.
    pub fn modify_admin(&mut self, id: &DuoId, f: AdminFields) -> Result<(), ApiError> {
        if !self.admins.contains_key(id) {
            return Err(ApiError::not_found());
        }
        self.check_admin_fields(Some(*id), &f)?;
        let Some(a) = self.admins.get_mut(id) else {
            return Err(ApiError::not_found());
        };
        if f.status.as_deref() == Some("Disabled") && a.role == "Owner" && f.role.is_none() {
            return Err(ApiError::invalid("status"));
        }
        if let Some(v) = f.name {
            a.name = v;
        }
        if let Some(v) = f.email {
            a.email = v;
        }
        if let Some(v) = f.phone {
            a.phone = v;
        }
        if let Some(v) = f.role {
            a.role = v;
        }
        if let Some(v) = f.status {
            a.status = v;
        }
        if let Some(v) = f.password_change_required {
            a.password_change_required = v;
        }
        Ok(())
    }

    /// Deletes an administrator; `false` when it did not exist.
    pub fn delete_admin(&mut self, id: &DuoId) -> bool {
        if self.admins.remove(id).is_none() {
            return false;
        }
        remove_from(&mut self.admin_order, id);
        true
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        let (ci, lower) = (self.case_insensitive, self.lowercase);
        *self = Self::default();
        self.case_insensitive = ci;
        self.lowercase = lower;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(username: &str) -> UserFields {
        UserFields {
            username: Some(username.into()),
            ..UserFields::default()
        }
    }

    #[test]
    fn aliases_are_unique_across_users_and_usernames() {
        let s = Settings::default();
        let mut t = Tenant::new(&s);
        let mut ids = IdGen::new(Some(1));
        let a = t
            .create_user(fields("alice"), 1, &mut ids)
            .expect("create alice");
        let mut bob = fields("bob");
        bob.aliases = vec![(1, Some("alice".into()))];
        assert_eq!(
            t.create_user(bob, 1, &mut ids).map_err(|e| e.detail),
            Err(Some("alias1".into()))
        );
        let patch = UserFields {
            aliases: vec![(2, Some("al".into()))],
            ..UserFields::default()
        };
        t.modify_user(&a, patch).expect("alias");
        assert_eq!(t.user_by_name("al").map(|u| u.user_id), Some(a));
        assert!(t.create_user(fields("al"), 1, &mut ids).is_err());
        let clear = UserFields {
            aliases: vec![(2, None)],
            ..UserFields::default()
        };
        t.modify_user(&a, clear).expect("clear alias");
        assert!(t.user_by_name("al").is_none());
        assert!(t.create_user(fields("al"), 1, &mut ids).is_ok());
    }

    #[test]
    fn deleting_a_group_removes_memberships_and_dump_round_trips() {
        let s = Settings::default();
        let mut t = Tenant::new(&s);
        let mut ids = IdGen::new(Some(2));
        let u = t.create_user(fields("u"), 5, &mut ids).expect("user");
        let g1 = t
            .create_group(
                GroupFields {
                    name: Some("g1".into()),
                    ..Default::default()
                },
                &s,
                &mut ids,
            )
            .expect("g1");
        let g2 = t
            .create_group(
                GroupFields {
                    name: Some("g2".into()),
                    ..Default::default()
                },
                &s,
                &mut ids,
            )
            .expect("g2");
        t.add_membership(&u, &g1, 100, GroupLimitError::Internal500, true)
            .expect("m1");
        t.add_membership(&u, &g2, 100, GroupLimitError::Internal500, true)
            .expect("m2");
        let restored = Tenant::from_dump(t.dump(), &s).expect("round trip");
        assert_eq!(
            restored.group(&g2).map(|g| g.members.clone()),
            Some(vec![u])
        );
        assert!(t.delete_group(&g1));
        assert_eq!(t.user(&u).map(|u| u.groups.clone()), Some(vec![g2]));
        assert_eq!(t.membership_count(), 1);
    }

    #[test]
    fn membership_limit_and_duplicates() {
        let s = Settings::default();
        let mut t = Tenant::new(&s);
        let mut ids = IdGen::new(Some(3));
        let u = t.create_user(fields("u"), 5, &mut ids).expect("user");
        let g1 = t
            .create_group(
                GroupFields {
                    name: Some("a".into()),
                    ..Default::default()
                },
                &s,
                &mut ids,
            )
            .expect("a");
        let g2 = t
            .create_group(
                GroupFields {
                    name: Some("b".into()),
                    ..Default::default()
                },
                &s,
                &mut ids,
            )
            .expect("b");
        let duo = GroupLimitError::Internal500;
        t.add_membership(&u, &g1, 1, duo, true).expect("first");
        assert!(t.add_membership(&u, &g1, 1, duo, true).is_ok());
        assert_eq!(
            t.add_membership(&u, &g1, 1, duo, false)
                .map_err(|e| e.code),
            Err(40004)
        );
        assert_eq!(
            t.add_membership(&u, &g2, 1, duo, true)
                .map_err(|e| (e.status, e.code, e.message)),
            Err((500, 50001, "Unknown internal server error".to_owned()))
        );
        assert_eq!(
            t.add_membership(&u, &g2, 1, GroupLimitError::Invalid400, true)
                .map_err(|e| e.code),
            Err(40002)
        );
        assert_eq!(t.user(&u).map(|u| u.groups.clone()), Some(vec![g1]));
    }

    #[test]
    fn a_trashed_user_takes_status_and_realname_and_stays_in_the_trash() {
        let s = Settings::default();
        let mut t = Tenant::new(&s);
        let mut ids = IdGen::new(Some(4));
        let u = t.create_user(fields("u"), 5, &mut ids).expect("user");
        t.trash_users(&[u], 6).expect("trash");
        t.modify_user(
            &u,
            UserFields {
                status: Some(UserStatus::Disabled),
                realname: Some("Gone Soon".into()),
                ..UserFields::default()
            },
        )
        .expect("a trashed user accepts status and realname");
        let user = t.user(&u).expect("still there");
        assert_eq!(user.status, UserStatus::PendingDeletion);
        assert_eq!(user.trashed_at, Some(6));
        assert_eq!(user.realname, "Gone Soon");
        assert!(t.has_trash());
    }
}
