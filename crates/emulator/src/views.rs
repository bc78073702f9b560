//! Duo's JSON shapes for users, groups, group members and administrators, serialised straight
//! from the tenant (borrowing, no intermediate `Value`) so a 300-user page with embedded groups
//! costs one pass. Keys come out in alphabetical order, as Duo's responses have them.

use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

use crate::config::StatusCase;
use crate::id::DuoId;
use crate::state::{Admin, Group, Tenant, User};

const EMPTY: [u8; 0] = [];

/// A group object.
pub struct GroupView<'a> {
    /// The group.
    pub group: &'a Group,
    /// How `status` is spelled.
    pub case: StatusCase,
}

impl Serialize for GroupView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let g = self.group;
        let mut st = s.serialize_struct("Group", 8)?;
        st.serialize_field("desc", &g.desc)?;
        st.serialize_field("group_id", &g.group_id)?;
        st.serialize_field("mobile_otp_enabled", &g.mobile_otp_enabled)?;
        st.serialize_field("name", &g.name)?;
        st.serialize_field("push_enabled", &g.push_enabled)?;
        st.serialize_field("sms_enabled", &g.sms_enabled)?;
        let status = match self.case {
            StatusCase::Lower => g.status.lower(),
            StatusCase::Title => g.status.title(),
        };
        st.serialize_field("status", status)?;
        st.serialize_field("voice_enabled", &g.voice_enabled)?;
        st.end()
    }
}

/// The v1 group detail: a group object plus its members as `{user_id, username}`.
pub struct GroupV1View<'a> {
    /// The tenant (for member usernames).
    pub tenant: &'a Tenant,
    /// The group.
    pub group: &'a Group,
    /// How `status` is spelled.
    pub case: StatusCase,
}

impl Serialize for GroupV1View<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let g = self.group;
        let mut st = s.serialize_struct("Group", 9)?;
        st.serialize_field("desc", &g.desc)?;
        st.serialize_field("group_id", &g.group_id)?;
        st.serialize_field("mobile_otp_enabled", &g.mobile_otp_enabled)?;
        st.serialize_field("name", &g.name)?;
        st.serialize_field("push_enabled", &g.push_enabled)?;
        st.serialize_field("sms_enabled", &g.sms_enabled)?;
        let status = match self.case {
            StatusCase::Lower => g.status.lower(),
            StatusCase::Title => g.status.title(),
        };
        st.serialize_field("status", status)?;
        st.serialize_field(
            "users",
            &MemberList {
                tenant: self.tenant,
                ids: &g.members,
                include_username: true,
            },
        )?;
        st.serialize_field("voice_enabled", &g.voice_enabled)?;
        st.end()
    }
}

/// A list of `{user_id, username}` members.
pub struct MemberList<'a> {
    /// The tenant.
    pub tenant: &'a Tenant,
    /// Member ids.
    pub ids: &'a [DuoId],
    /// Whether items carry `username`.
    pub include_username: bool,
}

impl Serialize for MemberList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.ids.len()))?;
        for id in self.ids {
            let Some(u) = self.tenant.user(id) else {
                continue;
            };
            seq.serialize_element(&Member {
                user: u,
                include_username: self.include_username,
            })?;
        }
        seq.end()
    }
}

struct Member<'a> {
    user: &'a User,
    include_username: bool,
}

impl Serialize for Member<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Member", 2)?;
        st.serialize_field("user_id", &self.user.user_id)?;
        if self.include_username {
            st.serialize_field("username", &self.user.username)?;
        }
        st.end()
    }
}

/// A list of group objects by id.
pub struct GroupList<'a> {
    /// The tenant.
    pub tenant: &'a Tenant,
    /// Group ids.
    pub ids: &'a [DuoId],
    /// How `status` is spelled.
    pub case: StatusCase,
}

impl Serialize for GroupList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.ids.len()))?;
        for id in self.ids {
            if let Some(g) = self.tenant.group(id) {
                seq.serialize_element(&GroupView {
                    group: g,
                    case: self.case,
                })?;
            }
        }
        seq.end()
    }
}

/// A user object with its groups embedded.
pub struct UserView<'a> {
    /// The tenant (for the embedded groups).
    pub tenant: &'a Tenant,
    /// The user.
    pub user: &'a User,
    /// How embedded group `status` is spelled.
    pub case: StatusCase,
}

struct Aliases<'a>(&'a User);

impl Serialize for Aliases<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.aliases.len()))?;
        for (slot, v) in &self.0.aliases {
            m.serialize_entry(
                ALIAS_KEYS
                    .get(usize::from(*slot))
                    .copied()
                    .unwrap_or("alias"),
                v,
            )?;
        }
        m.end()
    }
}

const ALIAS_KEYS: [&str; 9] = [
    "alias0", "alias1", "alias2", "alias3", "alias4", "alias5", "alias6", "alias7", "alias8",
];

impl Serialize for UserView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let u = self.user;
        let mut st = s.serialize_struct("User", 26)?;
        st.serialize_field("alias1", &u.aliases.get(&1))?;
        st.serialize_field("alias2", &u.aliases.get(&2))?;
        st.serialize_field("alias3", &u.aliases.get(&3))?;
        st.serialize_field("alias4", &u.aliases.get(&4))?;
        st.serialize_field("aliases", &Aliases(u))?;
        st.serialize_field("created", &u.created)?;
        st.serialize_field("email", &u.email)?;
        st.serialize_field("enable_auto_prompt", &u.enable_auto_prompt)?;
        st.serialize_field("firstname", &u.firstname)?;
        st.serialize_field(
            "groups",
            &GroupList {
                tenant: self.tenant,
                ids: &u.groups,
                case: self.case,
            },
        )?;
        st.serialize_field("is_enrolled", &u.is_enrolled)?;
        st.serialize_field("last_directory_sync", &u.last_directory_sync)?;
        st.serialize_field("last_login", &u.last_login)?;
        st.serialize_field("lastname", &u.lastname)?;
        st.serialize_field("lockout_reason", &Option::<&str>::None)?;
        st.serialize_field("notes", &u.notes)?;
        st.serialize_field("phones", &EMPTY)?;
        st.serialize_field("realname", &u.realname)?;
        st.serialize_field("status", u.status.as_str())?;
        st.serialize_field("tokens", &EMPTY)?;
        st.serialize_field("u2ftokens", &EMPTY)?;
        st.serialize_field("user_id", &u.user_id)?;
        st.serialize_field("username", &u.username)?;
        st.serialize_field("webauthncredentials", &EMPTY)?;
        st.end()
    }
}

/// A list of user objects by id.
pub struct UserList<'a> {
    /// The tenant.
    pub tenant: &'a Tenant,
    /// User ids.
    pub ids: &'a [DuoId],
    /// How embedded group `status` is spelled.
    pub case: StatusCase,
}

impl Serialize for UserList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.ids.len()))?;
        for id in self.ids {
            if let Some(u) = self.tenant.user(id) {
                seq.serialize_element(&UserView {
                    tenant: self.tenant,
                    user: u,
                    case: self.case,
                })?;
            }
        }
        seq.end()
    }
}

/// An administrator object.
pub struct AdminView<'a>(pub &'a Admin);

impl Serialize for AdminView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = self.0;
        let mut st = s.serialize_struct("Admin", 11)?;
        st.serialize_field("admin_id", &a.admin_id)?;
        st.serialize_field("admin_units", &EMPTY)?;
        st.serialize_field("created", &a.created)?;
        st.serialize_field("email", &a.email)?;
        st.serialize_field("last_login", &a.last_login)?;
        st.serialize_field("name", &a.name)?;
        st.serialize_field("password_change_required", &a.password_change_required)?;
        st.serialize_field("phone", &a.phone)?;
        st.serialize_field("restricted_by_admin_units", &false)?;
        st.serialize_field("role", &a.role)?;
        st.serialize_field("status", &a.status)?;
        st.end()
    }
}

/// A list of administrators by id.
pub struct AdminList<'a> {
    /// The tenant.
    pub tenant: &'a Tenant,
    /// Admin ids.
    pub ids: &'a [DuoId],
}

impl Serialize for AdminList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.ids.len()))?;
        for id in self.ids {
            if let Some(a) = self.tenant.admin(id) {
                seq.serialize_element(&AdminView(a))?;
            }
        }
        seq.end()
    }
}
