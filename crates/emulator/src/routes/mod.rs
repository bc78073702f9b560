//! The Duo Admin API surface: which method and path is which endpoint, its stable name (used by
//! fault rules, rate-limit classes and the call counters), the grant it needs, and dispatch to
//! the handler modules (`users`, `groups`, `admins`, `bulk`). Paths are matched on decoded
//! segments, so percent-encoded ids and a trailing `?` are fine; an unknown path is 404/40401 and
//! a known path with another method is 405/40501.

pub mod admins;
pub mod bulk;
pub mod groups;
pub mod users;

use serde::Serialize;

use crate::app::Ctx;
use crate::error::ApiError;
use crate::paging::Metadata;
use crate::params::Params;

/// The grant an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Grant read resource.
    ReadResource,
    /// Grant write resource.
    WriteResource,
    /// Grant administrators.
    Administrators,
}

/// Rate-limit class of an endpoint (Duo's published figures differ per class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateClass {
    /// Reading one object.
    ReadOne,
    /// Reading one page of a list.
    ReadPage,
    /// Any write.
    Write,
    /// `/admin/v1/bulk` and `bulk_create` (writes, unless `rate_limits.bulk_per_min` is set).
    Bulk,
    /// A list call with `user_id_list`, `username_list` or `group_id_list` (page reads, unless
    /// `rate_limits.id_list_per_min` is set). Chosen per call by [`rate_class`].
    IdList,
}

/// The rate class of one call: its endpoint's, except that a user or group list given an id
/// list is an id-list lookup.
pub fn rate_class(endpoint: Endpoint, params: &Params) -> RateClass {
    let listed = match endpoint {
        Endpoint::UsersList => params.has("user_id_list") || params.has("username_list"),
        Endpoint::GroupsList => params.has("group_id_list"),
        _ => false,
    };
    if listed {
        RateClass::IdList
    } else {
        endpoint.class()
    }
}

macro_rules! endpoints {
    ($( $variant:ident => $name:literal, $perm:ident, $class:ident; )*) => {
        /// Every endpoint the emulator serves.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Endpoint {
            $(
                #[doc = $name]
                $variant,
            )*
        }

        impl Endpoint {
            /// All endpoints.
            pub const ALL: &'static [Endpoint] = &[$(Endpoint::$variant),*];

            /// Stable name (`users.list`, `groups.create`, …).
            pub fn name(self) -> &'static str {
                match self { $(Endpoint::$variant => $name,)* }
            }

            /// The grant it needs.
            pub fn permission(self) -> Permission {
                match self { $(Endpoint::$variant => Permission::$perm,)* }
            }

            /// Its rate-limit class.
            pub fn class(self) -> RateClass {
                match self { $(Endpoint::$variant => RateClass::$class,)* }
            }
        }
    };
}

endpoints! {
    UsersList => "users.list", ReadResource, ReadPage;
    UsersGet => "users.get", ReadResource, ReadOne;
    UsersCreate => "users.create", WriteResource, Write;
    UsersModify => "users.modify", WriteResource, Write;
    UsersDelete => "users.delete", WriteResource, Write;
    UserGroupsList => "users.groups.list", ReadResource, ReadPage;
    UserGroupsAdd => "users.groups.add", WriteResource, Write;
    UserGroupsRemove => "users.groups.remove", WriteResource, Write;
    UsersBulkCreate => "users.bulk_create", WriteResource, Bulk;
    UsersSendToTrash => "users.bulk_send_to_trash", WriteResource, Write;
    UsersRestore => "users.bulk_restore", WriteResource, Write;
    GroupsList => "groups.list", ReadResource, ReadPage;
    GroupsGetV1 => "groups.get_v1", ReadResource, ReadOne;
    GroupsGetV2 => "groups.get", ReadResource, ReadOne;
    GroupUsers => "groups.users", ReadResource, ReadPage;
    GroupsCreate => "groups.create", WriteResource, Write;
    GroupsModify => "groups.modify", WriteResource, Write;
    GroupsDelete => "groups.delete", WriteResource, Write;
    Bulk => "bulk", WriteResource, Bulk;
    AdminsList => "admins.list", Administrators, ReadPage;
    AdminsGet => "admins.get", Administrators, ReadOne;
    AdminsCreate => "admins.create", Administrators, Write;
    AdminsModify => "admins.modify", Administrators, Write;
    AdminsDelete => "admins.delete", Administrators, Write;
}

impl Endpoint {
    /// Whether a successful call changes the tenant.
    pub fn mutates(self) -> bool {
        matches!(self.class(), RateClass::Write | RateClass::Bulk)
    }
}

/// A resolved request: the endpoint and the ids from its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Path ids in order (user id, then group id; or group id; or admin id).
    pub ids: Vec<String>,
}

/// Resolves a method and a raw (percent-encoded) path.
pub fn resolve(method: &str, raw_path: &str) -> Result<Route, ApiError> {
    let path = raw_path.split('?').next().unwrap_or("");
    let segs: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method.to_ascii_uppercase();
    let m = m.as_str();
    let one = |e: Endpoint, ids: &[&str]| Route {
        endpoint: e,
        ids: ids.iter().map(|s| (*s).to_owned()).collect(),
    };
    let pick = |options: &[(&str, Endpoint)], ids: &[&str]| -> Result<Route, ApiError> {
        options
            .iter()
            .find(|(om, _)| *om == m)
            .map(|(_, e)| one(*e, ids))
            .ok_or_else(ApiError::method_not_allowed)
    };
    use Endpoint::*;
    match segs.as_slice() {
        ["admin", "v1", "users"] => pick(&[("GET", UsersList), ("POST", UsersCreate)], &[]),
        ["admin", "v1", "users", "bulk_create"] => pick(&[("POST", UsersBulkCreate)], &[]),
        ["admin", "v1", "users", "bulk_send_to_trash"] => pick(&[("POST", UsersSendToTrash)], &[]),
        ["admin", "v1", "users", "bulk_restore"] => pick(&[("POST", UsersRestore)], &[]),
        ["admin", "v1", "users", id] if !id.is_empty() => pick(
            &[
                ("GET", UsersGet),
                ("POST", UsersModify),
                ("DELETE", UsersDelete),
            ],
            &[id],
        ),
        ["admin", "v1", "users", id, "groups"] if !id.is_empty() => {
            pick(&[("GET", UserGroupsList), ("POST", UserGroupsAdd)], &[id])
        }
        ["admin", "v1", "users", id, "groups", gid] if !id.is_empty() && !gid.is_empty() => {
            pick(&[("DELETE", UserGroupsRemove)], &[id, gid])
        }
        ["admin", "v1", "groups"] => pick(&[("GET", GroupsList), ("POST", GroupsCreate)], &[]),
        ["admin", "v1", "groups", id] if !id.is_empty() => pick(
            &[
                ("GET", GroupsGetV1),
                ("POST", GroupsModify),
                ("DELETE", GroupsDelete),
            ],
            &[id],
        ),
        ["admin", "v2", "groups", id] if !id.is_empty() => pick(&[("GET", GroupsGetV2)], &[id]),
        ["admin", "v2", "groups", id, "users"] if !id.is_empty() => {
            pick(&[("GET", GroupUsers)], &[id])
        }
        ["admin", "v1", "bulk"] => pick(&[("POST", Bulk)], &[]),
        ["admin", "v1", "admins"] => pick(&[("GET", AdminsList), ("POST", AdminsCreate)], &[]),
        ["admin", "v1", "admins", id] if !id.is_empty() => pick(
            &[
                ("GET", AdminsGet),
                ("POST", AdminsModify),
                ("DELETE", AdminsDelete),
            ],
            &[id],
        ),
        _ => Err(ApiError::not_found()),
    }
}

/// `{"stat":"OK","response":…}` (+ `metadata`) as bytes.
pub fn ok_body<T: Serialize>(response: T, metadata: Option<Metadata>) -> Result<Vec<u8>, ApiError> {
    #[derive(Serialize)]
    struct Ok<T> {
        stat: &'static str,
        response: T,
        #[serde(skip_serializing_if = "Option::is_none")]
        metadata: Option<Metadata>,
    }
    let mut out = Vec::with_capacity(4096);
    serde_json::to_writer(
        &mut out,
        &Ok {
            stat: "OK",
            response,
            metadata,
        },
    )
    .map_err(|_| ApiError::internal())?;
    Ok(out)
}

/// Runs the handler of `route`.
pub fn handle(ctx: &Ctx<'_>, route: &Route, params: &Params) -> Result<Vec<u8>, ApiError> {
    use Endpoint::*;
    // Path ids are always present for the endpoints that use them (see `resolve`); an absent one
    // reads as "" and so as an unknown id.
    let id0 = route.ids.first().map_or("", String::as_str);
    let id1 = route.ids.get(1).map_or("", String::as_str);
    match route.endpoint {
        UsersList => users::list(ctx, params),
        UsersGet => users::get(ctx, id0),
        UsersCreate => users::create(ctx, params),
        UsersModify => users::modify(ctx, id0, params),
        UsersDelete => users::delete(ctx, id0),
        UserGroupsList => users::groups_list(ctx, id0, params),
        UserGroupsAdd => users::groups_add(ctx, id0, params),
        UserGroupsRemove => users::groups_remove(ctx, id0, id1),
        UsersBulkCreate => users::bulk_create(ctx, params),
        UsersSendToTrash => users::send_to_trash(ctx, params),
        UsersRestore => users::restore(ctx, params),
        GroupsList => groups::list(ctx, params),
        GroupsGetV1 => groups::get_v1(ctx, id0),
        GroupsGetV2 => groups::get_v2(ctx, id0),
        GroupUsers => groups::users(ctx, id0, params),
        GroupsCreate => groups::create(ctx, params),
        GroupsModify => groups::modify(ctx, id0, params),
        GroupsDelete => groups::delete(ctx, id0),
        Bulk => bulk::run(ctx, params),
        AdminsList => admins::list(ctx, params),
        AdminsGet => admins::get(ctx, id0),
        AdminsCreate => admins::create(ctx, params),
        AdminsModify => admins::modify(ctx, id0, params),
        AdminsDelete => admins::delete(ctx, id0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_duo_paths() {
        assert_eq!(
            resolve("GET", "/admin/v1/users?").map(|r| r.endpoint),
            Ok(Endpoint::UsersList)
        );
        assert_eq!(
            resolve("delete", "/admin/v1/users/DU1/groups/DG%32").map(|r| r.ids),
            Ok(vec!["DU1".to_owned(), "DG2".to_owned()])
        );
        assert_eq!(
            resolve("GET", "/admin/v2/groups/DG1/users").map(|r| r.endpoint),
            Ok(Endpoint::GroupUsers)
        );
        assert_eq!(
            resolve("PUT", "/admin/v1/users").map_err(|e| e.code),
            Err(40501)
        );
        assert_eq!(
            resolve("GET", "/admin/v1/nope").map_err(|e| e.code),
            Err(40401)
        );
        assert_eq!(
            resolve("GET", "/admin/v1/users/").map_err(|e| e.code),
            Err(40401)
        );
        assert_eq!(
            resolve("POST", "/admin/v1/users/bulk_create").map(|r| r.endpoint),
            Ok(Endpoint::UsersBulkCreate)
        );
    }
}
