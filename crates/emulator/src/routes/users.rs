//! User endpoints: list (paging; `username` matching aliases too, `email`, `user_id_list`,
//! `username_list`), get, create, modify, permanent delete, the user's groups (list, add,
//! remove), `bulk_create`, and the Trash (`bulk_send_to_trash`, `bulk_restore`).

use std::borrow::Cow;
use std::collections::HashSet;

use crate::app::Ctx;
use crate::error::ApiError;
use crate::id::DuoId;
use crate::paging::{Metadata, Page};
use crate::params::Params;
use crate::routes::ok_body;
use crate::state::{UserFields, UserStatus, alias_slot};
use crate::views::{GroupList, user_body, user_list_body};

/// Parses a user id from a path; malformed ids are 404/40401.
pub fn path_user_id(s: &str) -> Result<DuoId, ApiError> {
    DuoId::parse_with_prefix(s, "DU").ok_or_else(ApiError::not_found)
}

fn alias_changes(p: &Params) -> Result<Vec<(u8, Option<String>)>, ApiError> {
    let mut out = Vec::new();
    for n in 1..=4u8 {
        let key = format!("alias{n}");
        if p.has(&key) {
            let v = p.opt_str(&key)?.filter(|v| !v.is_empty());
            out.push((n, v));
        }
    }
    if let Some(pairs) = p.opt_pairs("aliases")? {
        if !out.is_empty() {
            return Err(ApiError::invalid("aliases"));
        }
        for (k, v) in pairs {
            let slot = alias_slot(&k).ok_or_else(|| ApiError::invalid("aliases"))?;
            out.push((slot, (!v.is_empty()).then_some(v)));
        }
    }
    Ok(out)
}

/// Reads user fields from parameters (create, modify, bulk).
pub fn user_fields(p: &Params, creating: bool) -> Result<UserFields, ApiError> {
    if let Some(k) = p.keys().find(|k| k.starts_with("custom_attributes.")) {
        // No custom attribute exists in the emulated account, and Duo requires it to.
        return Err(ApiError::invalid(k.to_owned()));
    }
    let username = if creating {
        Some(p.req_str("username")?)
    } else {
        match p.opt_str("username")? {
            Some(u) if u.trim().is_empty() => return Err(ApiError::invalid("username")),
            other => other,
        }
    };
    let status = match p.opt_str("status")? {
        None => None,
        Some(s) => Some(UserStatus::parse_settable(&s).ok_or_else(|| ApiError::invalid("status"))?),
    };
    Ok(UserFields {
        username,
        realname: p.opt_str("realname")?,
        firstname: p.opt_str("firstname")?,
        lastname: p.opt_str("lastname")?,
        email: p.opt_str("email")?,
        notes: p.opt_str("notes")?,
        status,
        enable_auto_prompt: p.opt_bool("enable_auto_prompt")?,
        aliases: alias_changes(p)?,
    })
}

/// `GET /admin/v1/users`.
pub fn list(ctx: &Ctx<'_>, p: &Params) -> Result<Vec<u8>, ApiError> {
    let s = ctx.settings();
    let username = p.opt_str("username")?;
    let email = p.opt_str("email")?;
    let id_list = p.opt_str_list("user_id_list")?;
    let name_list = p.opt_str_list("username_list")?;
    if id_list.is_some() && name_list.is_some() {
        return Err(ApiError::invalid("username_list"));
    }
    if (id_list.is_some() || name_list.is_some()) && (username.is_some() || email.is_some()) {
        return Err(ApiError::invalid(if id_list.is_some() {
            "user_id_list"
        } else {
            "username_list"
        }));
    }
    let case = s.embedded_group_status_case;
    let w = ctx.shared.read();
    let t = &w.tenant;
    let visible =
        |id: &DuoId| s.list_trashed_users || t.user(id).is_some_and(|u| u.trashed_at.is_none());

    // Lists: limit and offset are ignored, one unpaged answer.
    let listed = match (id_list, name_list) {
        (Some(ids), _) => Some(("user_id_list", ids, true)),
        (None, Some(names)) => Some(("username_list", names, false)),
        (None, None) => None,
    };
    if let Some((key, values, by_id)) = listed {
        if values.len() > s.max_list_values {
            return Err(ApiError::invalid(key));
        }
        let mut seen = HashSet::new();
        let mut ids = Vec::new();
        for v in &values {
            let found = if by_id {
                DuoId::parse(v).filter(|id| t.user(id).is_some())
            } else {
                t.user_by_name(v).map(|u| u.user_id)
            };
            if let Some(id) = found
                && visible(&id)
                && seen.insert(id)
            {
                ids.push(id);
            }
        }
        let meta = Metadata::whole(ids.len()).with_nulls(s.list_metadata_nulls);
        return Ok(user_list_body(t, &ids, case, Some(meta)));
    }

    let page = Page::from_params(p, s.page_limits.users, ctx.settings().reject_limit_over_max)?;
    let ids: Cow<'_, [DuoId]> = if let Some(name) = username {
        let mut v: Vec<DuoId> = t
            .user_by_name(&name)
            .map(|u| u.user_id)
            .into_iter()
            .collect();
        if let Some(e) = &email {
            v.retain(|id| t.user(id).is_some_and(|u| u.email.eq_ignore_ascii_case(e)));
        }
        v.retain(&visible);
        Cow::Owned(v)
    } else if let Some(e) = email {
        let mut v = t.users_by_email(&e);
        v.retain(&visible);
        Cow::Owned(v)
    } else if s.list_trashed_users || !t.has_trash() {
        Cow::Borrowed(t.user_order())
    } else {
        Cow::Owned(
            t.user_order()
                .iter()
                .filter(|id| visible(id))
                .copied()
                .collect(),
        )
    };
    let (range, meta) = page.slice(ids.len());
    let meta = meta.with_nulls(ctx.settings().list_metadata_nulls);
    Ok(user_list_body(t, &ids[range], case, Some(meta)))
}

/// `GET /admin/v1/users/{user_id}`.
pub fn get(ctx: &Ctx<'_>, id: &str) -> Result<Vec<u8>, ApiError> {
    let id = path_user_id(id)?;
    let w = ctx.shared.read();
    let u = w.tenant.user(&id).ok_or_else(ApiError::not_found)?;
    Ok(user_body(
        &w.tenant,
        u,
        ctx.settings().embedded_group_status_case,
    ))
}

/// `POST /admin/v1/users`.
pub fn create(ctx: &Ctx<'_>, p: &Params) -> Result<Vec<u8>, ApiError> {
    let fields = user_fields(p, true)?;
    let mut w = ctx.shared.write();
    let world = &mut *w;
    let id = world.tenant.create_user(fields, ctx.now, &mut world.ids)?;
    let u = world.tenant.user(&id).ok_or_else(ApiError::internal)?;
    ctx.created(&u.username);
    Ok(user_body(
        &world.tenant,
        u,
        ctx.settings().embedded_group_status_case,
    ))
}

/// `POST /admin/v1/users/{user_id}`.
pub fn modify(ctx: &Ctx<'_>, id: &str, p: &Params) -> Result<Vec<u8>, ApiError> {
    let id = path_user_id(id)?;
    let fields = user_fields(p, false)?;
    let mut w = ctx.shared.write();
    w.tenant.modify_user(&id, fields)?;
    let u = w.tenant.user(&id).ok_or_else(ApiError::not_found)?;
    Ok(user_body(
        &w.tenant,
        u,
        ctx.settings().embedded_group_status_case,
    ))
}

/// `DELETE /admin/v1/users/{user_id}`: 200 even when the user does not exist.
pub fn delete(ctx: &Ctx<'_>, id: &str) -> Result<Vec<u8>, ApiError> {
    let id = path_user_id(id)?;
    ctx.shared.write().tenant.delete_user(&id);
    ok_body("", None)
}

/// `GET /admin/v1/users/{user_id}/groups`.
pub fn groups_list(ctx: &Ctx<'_>, id: &str, p: &Params) -> Result<Vec<u8>, ApiError> {
    let id = path_user_id(id)?;
    let s = ctx.settings();
    let page = Page::from_params(
        p,
        s.page_limits.user_groups,
        ctx.settings().reject_limit_over_max,
    )?;
    let w = ctx.shared.read();
    let u = w.tenant.user(&id).ok_or_else(ApiError::not_found)?;
    let (range, meta) = page.slice(u.groups.len());
    let meta = meta.with_nulls(ctx.settings().list_metadata_nulls);
    ok_body(
        GroupList {
            tenant: &w.tenant,
            ids: &u.groups[range],
            case: s.group_status_case,
        },
        Some(meta),
    )
}

/// `POST /admin/v1/users/{user_id}/groups`.
pub fn groups_add(ctx: &Ctx<'_>, id: &str, p: &Params) -> Result<Vec<u8>, ApiError> {
    let id = path_user_id(id)?;
    let gid = p.req_str("group_id")?;
    let gid = DuoId::parse_with_prefix(&gid, "DG").ok_or_else(|| ApiError::invalid("group_id"))?;
    let s = ctx.settings();
    ctx.shared.write().tenant.add_membership(
        &id,
        &gid,
        s.max_groups_per_user,
        s.group_limit_error,
        s.duplicate_membership_ok,
    )?;
    ok_body("", None)
}

/// `DELETE /admin/v1/users/{user_id}/groups/{group_id}`: 200 when the membership is absent.
pub fn groups_remove(ctx: &Ctx<'_>, id: &str, gid: &str) -> Result<Vec<u8>, ApiError> {
    let id = path_user_id(id)?;
    let gid = DuoId::parse_with_prefix(gid, "DG").ok_or_else(ApiError::not_found)?;
    ctx.shared.write().tenant.remove_membership(&id, &gid)?;
    ok_body("", None)
}

/// `POST /admin/v1/users/bulk_create`: all or nothing.
pub fn bulk_create(ctx: &Ctx<'_>, p: &Params) -> Result<Vec<u8>, ApiError> {
    let s = ctx.settings();
    let items = p.opt_list("users")?.ok_or_else(|| p.missing("users"))?;
    if items.is_empty() || items.len() > s.bulk_create_max_users {
        return Err(ApiError::invalid("users"));
    }
    let mut batch = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let serde_json::Value::Object(obj) = item else {
            return Err(ApiError::invalid(format!("users[{i}]")));
        };
        let fields =
            user_fields(&Params::from_object(obj, s.missing_param_code), true).map_err(|e| {
                ApiError::invalid(format!("users[{i}].{}", e.detail.unwrap_or_default()))
            })?;
        batch.push(fields);
    }
    let mut w = ctx.shared.write();
    let world = &mut *w;
    world.tenant.check_user_batch(&batch)?;
    let mut ids = Vec::with_capacity(batch.len());
    for f in batch {
        let id = world.tenant.create_user(f, ctx.now, &mut world.ids)?;
        if let Some(u) = world.tenant.user(&id) {
            ctx.created(&u.username);
        }
        ids.push(id);
    }
    Ok(user_list_body(
        &world.tenant,
        &ids,
        s.embedded_group_status_case,
        None,
    ))
}

fn id_list(ctx: &Ctx<'_>, p: &Params) -> Result<Vec<DuoId>, ApiError> {
    let list = p
        .opt_str_list("user_id_list")?
        .ok_or_else(|| p.missing("user_id_list"))?;
    if list.is_empty() || list.len() > ctx.settings().max_list_values {
        return Err(ApiError::invalid("user_id_list"));
    }
    list.iter()
        .map(|s| {
            DuoId::parse_with_prefix(s, "DU")
                .ok_or_else(|| ApiError::invalid(format!("user_id_list ({s})")))
        })
        .collect()
}

/// `POST /admin/v1/users/bulk_send_to_trash`.
pub fn send_to_trash(ctx: &Ctx<'_>, p: &Params) -> Result<Vec<u8>, ApiError> {
    let ids = id_list(ctx, p)?;
    ctx.shared.write().tenant.trash_users(&ids, ctx.now)?;
    ok_body("", None)
}

/// `POST /admin/v1/users/bulk_restore`.
pub fn restore(ctx: &Ctx<'_>, p: &Params) -> Result<Vec<u8>, ApiError> {
    let ids = id_list(ctx, p)?;
    ctx.shared.write().tenant.restore_users(&ids)?;
    ok_body("", None)
}
