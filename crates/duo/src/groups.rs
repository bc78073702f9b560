//! Group operations: list (paged), get (v2), members (v2, paged) and their count, create (with read-back by name
//! when the outcome is unknown), modify, delete (404 is success).

use duoprov_duo_wire::types::{Group, GroupMember, IdKind, check_id};

use crate::client::{CallSpec, DuoClient, Params};
use crate::error::{DuoError, ErrorClass, ErrorKind, Result};
use crate::pace::CallClass;
use crate::paging::{GROUP_USERS_PAGE, GROUPS_PAGE};
use crate::retry::Safety;
use crate::paging::ItemRules;
use crate::users::{CreateRounds, arg_id, check_group, group_key, outcome_unknown, parse_one};

/// Fields of a group to set; `None` is not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupFields {
    /// Name (required on create).
    pub name: Option<String>,
    /// Description.
    pub desc: Option<String>,
    /// `active`, `bypass` or `disabled`.
    pub status: Option<String>,
}

impl GroupFields {
    /// Fields for a group called `name`.
    pub fn named(name: impl Into<String>) -> Self {
        GroupFields { name: Some(name.into()), ..Default::default() }
    }

    /// Sets `desc`.
    pub fn desc(mut self, d: impl Into<String>) -> Self {
        self.desc = Some(d.into());
        self
    }

    /// The parameters these fields send.
    pub fn to_params(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        for (k, v) in [("name", &self.name), ("desc", &self.desc), ("status", &self.status)] {
            if let Some(v) = v {
                p.push((k.to_owned(), v.clone()));
            }
        }
        p
    }
}

fn check_member(m: &GroupMember) -> std::result::Result<(), (String, String)> {
    check_id(IdKind::User, &m.user_id).map_err(|e| ("user_id".to_owned(), e.to_string()))
}

impl DuoClient {
    /// All groups (`GET /admin/v1/groups`, 100 per page).
    pub async fn list_groups(&self) -> Result<Vec<Group>> {
        self.list_all("/admin/v1/groups", &[], GROUPS_PAGE, &ItemRules { required: &[], check: &check_group, key: group_key }).await
    }

    /// The groups with these ids (`GET /admin/v1/groups?group_id_list=[…]`, JSON-encoded, at most
    /// 100 per request; longer lists are chunked). Unknown ids are absent from the result.
    pub async fn get_groups_by_ids(&self, group_ids: &[String]) -> Result<Vec<Group>> {
        for id in group_ids {
            arg_id("GET /admin/v1/groups", IdKind::Group, id)?;
        }
        let mut out = Vec::with_capacity(group_ids.len());
        for chunk in group_ids.chunks(100) {
            let list = serde_json::Value::Array(chunk.iter().map(|s| serde_json::Value::String(s.clone())).collect()).to_string();
            let spec = CallSpec::new("GET", "/admin/v1/groups", Params::pairs([("group_id_list", list)]), CallClass::ListLookup, Safety::Repeatable);
            let label = spec.label();
            let reply = self.call(&spec).await?;
            let first = out.len();
            out.extend(crate::paging::parse_items::<Group>(&label, reply.response, first, &[], &check_group)?);
        }
        Ok(out)
    }

    /// One group (`GET /admin/v2/groups/{id}`), or `None` on 404.
    pub async fn get_group(&self, group_id: &str) -> Result<Option<Group>> {
        let path = format!("/admin/v2/groups/{group_id}");
        arg_id(&format!("GET {path}"), IdKind::Group, group_id)?;
        let spec = CallSpec::new("GET", path, Params::none(), CallClass::SingleRead, Safety::Repeatable);
        match self.call(&spec).await {
            Ok(r) => parse_one(&spec.label(), r.response, &[], &check_group).map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A group's members (`GET /admin/v2/groups/{id}/users`, 500 per page).
    pub async fn list_group_members(&self, group_id: &str) -> Result<Vec<GroupMember>> {
        let path = format!("/admin/v2/groups/{group_id}/users");
        arg_id(&format!("GET {path}"), IdKind::Group, group_id)?;
        self.list_all(&path, &[], GROUP_USERS_PAGE, &ItemRules { required: &[], check: &check_member, key: |m: &GroupMember| m.user_id.as_str() }).await
    }

    /// How many members a group has in Duo: `metadata.total_objects` of a one-item page of
    /// `GET /admin/v2/groups/{id}/users`; when Duo does not send it, the members are read and
    /// counted (never assumed).
    pub async fn count_group_members(&self, group_id: &str) -> Result<u64> {
        let path = format!("/admin/v2/groups/{group_id}/users");
        arg_id(&format!("GET {path}"), IdKind::Group, group_id)?;
        let params = Params::pairs([("limit", "1".to_owned()), ("offset", "0".to_owned())]);
        let spec = CallSpec::new("GET", path.clone(), params, CallClass::PageRead, Safety::Repeatable);
        let label = spec.label();
        let reply = self.call(&spec).await?;
        let items = crate::paging::parse_items::<GroupMember>(&label, reply.response, 0, &[], &check_member)?;
        match reply.metadata.and_then(|m| m.total_objects) {
            Some(total) if total < items.len() as u64 => {
                Err(DuoError::malformed(&label, "metadata.total_objects", format!("{total}, but the page holds {} member(s)", items.len())))
            }
            Some(total) => Ok(total),
            None => Ok(self.list_group_members(group_id).await?.len() as u64),
        }
    }

    /// Creates a group (`POST /admin/v1/groups`). If the outcome is unknown (timeout, broken
    /// connection, 5xx), the create is not repeated blindly: the groups are read back, and exactly
    /// one group with this exact name is the result; none means the create did not happen, and it
    /// is sent again, at most `max_server_retries` more times; more than one is
    /// [`ErrorKind::Unresolved`] (group names need not be unique, so nothing is guessed and the
    /// next sync reports the name as ambiguous). A repeat refused as a duplicate name means the
    /// earlier create landed late: the groups are read back again.
    pub async fn create_group(&self, fields: &GroupFields) -> Result<Group> {
        let Some(name) = fields.name.clone() else {
            return Err(DuoError::new("create group", ErrorKind::Config { detail: "a group needs a name".into() }));
        };
        let spec = CallSpec::new("POST", "/admin/v1/groups", Params::Pairs(fields.to_params()), CallClass::Write, Safety::NotRepeatable);
        let call = format!("create group {name:?}");
        let mut rounds = CreateRounds::new(self);
        let mut repeated = false;
        loop {
            let e = match self.call(&spec).await {
                Ok(r) => return parse_one(&spec.label(), r.response, &[], &check_group),
                Err(e) => e,
            };
            let duplicate_after_retry = repeated && e.class() == ErrorClass::InvalidParameter;
            if !outcome_unknown(&e) && !duplicate_after_retry {
                return Err(e);
            }
            tracing::warn!(call = %call, error = %e, "create outcome unknown; reading groups back");
            rounds.pause().await;
            let groups = self.list_groups().await.map_err(|re| {
                DuoError::new(&call, ErrorKind::Unresolved { detail: format!("after `{e}`, reading back failed: {re}") })
            })?;
            let mut same: Vec<Group> = groups.into_iter().filter(|g| g.name == name).collect();
            match same.len() {
                1 => return same.pop().ok_or_else(|| DuoError::new(&call, ErrorKind::Unresolved { detail: String::new() })),
                // The repeat was refused and the group is not there: a real parameter error.
                0 if duplicate_after_retry => return Err(e),
                0 if rounds.another() => repeated = true,
                0 => return Err(DuoError::new(call, ErrorKind::Unresolved { detail: format!("after `{e}`, the group is not there") })),
                n => return Err(DuoError::new(call, ErrorKind::Unresolved { detail: format!("after `{e}`, {n} groups have this name") })),
            }
        }
    }

    /// Modifies a group (`POST /admin/v1/groups/{id}`); returns the updated group.
    pub async fn modify_group(&self, group_id: &str, fields: &GroupFields) -> Result<Group> {
        let path = format!("/admin/v1/groups/{group_id}");
        let call = format!("POST {path}");
        arg_id(&call, IdKind::Group, group_id)?;
        let spec = CallSpec::new("POST", path, Params::Pairs(fields.to_params()), CallClass::Write, Safety::Repeatable);
        let r = self.call(&spec).await?;
        parse_one(&call, r.response, &[], &check_group)
    }

    /// Deletes a group (`DELETE /admin/v1/groups/{id}`). 404 is success.
    pub async fn delete_group(&self, group_id: &str) -> Result<()> {
        let path = format!("/admin/v1/groups/{group_id}");
        arg_id(&format!("DELETE {path}"), IdKind::Group, group_id)?;
        let spec = CallSpec::new("DELETE", path, Params::none(), CallClass::Write, Safety::Repeatable);
        match self.call(&spec).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}
