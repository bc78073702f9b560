//! Duo's JSON shapes for users, groups, group members and administrators, serialised straight
//! from the tenant (borrowing, no intermediate `Value`) so a 300-user page with embedded groups
//! costs one pass. Keys come out in alphabetical order, as Duo's responses have them.

use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

use crate::config::StatusCase;
use crate::id::DuoId;
use crate::paging::Metadata;
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

/// A user object with its groups embedded, written straight to `out`. Hand-written (not serde)
/// so each embedded group is a copy of its cached JSON rather than a fresh serialisation: a
/// 300-user page embeds thousands of groups.
pub fn write_user(out: &mut Vec<u8>, tenant: &Tenant, u: &User, case: StatusCase) {
    fn s(out: &mut Vec<u8>, v: &str) {
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, v);
    }
    fn list(out: &mut Vec<u8>, v: &[serde_json::Value]) {
        // Writing JSON values into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, v);
    }
        fn opt(out: &mut Vec<u8>, v: Option<&String>) {
        match v {
            Some(v) => s(out, v),
            None => out.extend_from_slice(b"null"),
        }
    }
    fn int(out: &mut Vec<u8>, v: Option<i64>) {
        match v {
            Some(v) => out.extend_from_slice(v.to_string().as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
    }
    fn boolean(out: &mut Vec<u8>, v: bool) {
        out.extend_from_slice(if v { b"true" } else { b"false" });
    }
    out.extend_from_slice(b"{\"alias1\":");
    opt(out, u.aliases.get(&1));
    out.extend_from_slice(b",\"alias2\":");
    opt(out, u.aliases.get(&2));
    out.extend_from_slice(b",\"alias3\":");
    opt(out, u.aliases.get(&3));
    out.extend_from_slice(b",\"alias4\":");
    opt(out, u.aliases.get(&4));
    out.extend_from_slice(b",\"aliases\":{");
    for (i, (slot, v)) in u.aliases.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"\"alias");
        out.extend_from_slice(slot.to_string().as_bytes());
        out.extend_from_slice(b"\":");
        s(out, v);
    }
    out.extend_from_slice(b"},\"created\":");
    int(out, Some(u.created));
    out.extend_from_slice(b",\"email\":");
    s(out, &u.email);
    out.extend_from_slice(b",\"enable_auto_prompt\":");
    boolean(out, u.enable_auto_prompt);
    out.extend_from_slice(b",\"firstname\":");
    s(out, &u.firstname);
    out.extend_from_slice(b",\"groups\":[");
    let mut first = true;
    for gid in &u.groups {
        let Some(g) = tenant.group(gid) else { continue };
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(g.rendered(case).as_bytes());
    }
    out.extend_from_slice(b"],\"is_enrolled\":");
    boolean(out, u.is_enrolled);
    out.extend_from_slice(b",\"last_directory_sync\":");
    int(out, u.last_directory_sync);
    out.extend_from_slice(b",\"last_login\":");
    int(out, u.last_login);
    out.extend_from_slice(b",\"lastname\":");
    s(out, &u.lastname);
    out.extend_from_slice(b",\"lockout_reason\":null,\"notes\":");
    s(out, &u.notes);
    out.extend_from_slice(b",\"phones\":");
    list(out, &u.devices.phones);
    out.extend_from_slice(b",\"realname\":");
    s(out, &u.realname);
    out.extend_from_slice(b",\"status\":");
    s(out, u.status.as_str());
    out.extend_from_slice(b",\"tokens\":");
    list(out, &u.devices.tokens);
    out.extend_from_slice(b",\"u2ftokens\":");
    list(out, &u.devices.u2ftokens);
    out.extend_from_slice(b",\"user_id\":\"");
    out.extend_from_slice(u.user_id.as_str().as_bytes());
    out.extend_from_slice(b"\",\"username\":");
    s(out, &u.username);
    out.extend_from_slice(b",\"webauthncredentials\":");
    list(out, &u.devices.webauthncredentials);
    out.push(b'}');
}

/// `{"stat":"OK","response":{user}}`.
pub fn user_body(tenant: &Tenant, u: &User, case: StatusCase) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"stat\":\"OK\",\"response\":");
    write_user(&mut out, tenant, u, case);
    out.push(b'}');
    out
}

/// `{"stat":"OK","response":[users…]}` plus `metadata` when given.
pub fn user_list_body(
    tenant: &Tenant,
    ids: &[DuoId],
    case: StatusCase,
    meta: Option<Metadata>,
) -> Vec<u8> {
    // About 2.4 KiB per user with ten embedded groups; reserve enough to avoid regrowing.
    let mut out = Vec::with_capacity(64 + ids.len() * 3072);
    out.extend_from_slice(b"{\"stat\":\"OK\",\"response\":[");
    let mut first = true;
    for id in ids {
        let Some(u) = tenant.user(id) else { continue };
        if !first {
            out.push(b',');
        }
        first = false;
        write_user(&mut out, tenant, u, case);
    }
    out.push(b']');
    if let Some(m) = meta {
        out.extend_from_slice(b",\"metadata\":");
        // Serialising a plain struct into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &m);
    }
    out.push(b'}');
    out
}

/// A group object as JSON text (cached on the group by the tenant).
pub fn group_json(group: &Group, case: StatusCase) -> String {
    serde_json::to_string(&GroupView { group, case }).unwrap_or_default()
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
