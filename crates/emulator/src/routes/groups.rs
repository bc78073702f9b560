//! Group endpoints: v1 list (paging, `group_id_list`), v1 detail (with members) and v2 detail,
//! v2 members (paging), create, modify, delete (memberships go with the group).

use std::collections::HashSet;

use crate::app::Ctx;
use crate::error::ApiError;
use crate::id::DuoId;
use crate::paging::{Metadata, Page};
use crate::params::Params;
use crate::routes::ok_body;
use crate::state::{GroupFields, GroupStatus};
use crate::views::{GroupList, GroupV1View, GroupView, MemberList};

fn path_group_id(s: &str) -> Result<DuoId, ApiError> {
    DuoId::parse_with_prefix(s, "DG").ok_or_else(ApiError::not_found)
}

fn group_fields(p: &Params, creating: bool) -> Result<GroupFields, ApiError> {
    let name = if creating {
        Some(p.req_str("name")?)
    } else {
        match p.opt_str("name")? {
            Some(n) if n.trim().is_empty() => return Err(ApiError::invalid("name")),
            other => other,
        }
    };
    let status = match p.opt_str("status")? {
        None => None,
        Some(s) => Some(GroupStatus::parse(&s).ok_or_else(|| ApiError::invalid("status"))?),
    };
    Ok(GroupFields {
        name,
        desc: p.opt_str("desc")?,
        status,
        push_enabled: p.opt_bool("push_enabled")?,
        sms_enabled: p.opt_bool("sms_enabled")?,
        voice_enabled: p.opt_bool("voice_enabled")?,
        mobile_otp_enabled: p.opt_bool("mobile_otp_enabled")?,
    })
}

/// `GET /admin/v1/groups`.
pub fn list(ctx: &Ctx<'_>, p: &Params) -> Result<Vec<u8>, ApiError> {
    let s = ctx.settings();
    let w = ctx.shared.read();
    let t = &w.tenant;
    if let Some(values) = p.opt_str_list("group_id_list")? {
        if values.len() > s.max_list_values {
            return Err(ApiError::invalid("group_id_list"));
        }
        let mut seen = HashSet::new();
        let ids: Vec<DuoId> = values
            .iter()
            .filter_map(|v| DuoId::parse(v))
            .filter(|id| t.group(id).is_some() && seen.insert(*id))
            .collect();
        return ok_body(
            GroupList {
                tenant: t,
                ids: &ids,
                case: s.group_status_case,
            },
            Some(Metadata::whole(ids.len()).with_nulls(s.list_metadata_nulls)),
        );
    }
    let page = Page::from_params(
        p,
        s.page_limits.groups,
        ctx.settings().reject_limit_over_max,
    )?;
    let all = t.group_order();
    let (range, meta) = page.slice(all.len());
    let meta = meta.with_nulls(ctx.settings().list_metadata_nulls);
    ok_body(
        GroupList {
            tenant: t,
            ids: &all[range],
            case: s.group_status_case,
        },
        Some(meta),
    )
}

/// `GET /admin/v1/groups/{group_id}` (deprecated by Duo; includes the members).
pub fn get_v1(ctx: &Ctx<'_>, id: &str) -> Result<Vec<u8>, ApiError> {
    let id = path_group_id(id)?;
    let w = ctx.shared.read();
    let g = w.tenant.group(&id).ok_or_else(ApiError::not_found)?;
    ok_body(
        GroupV1View {
            tenant: &w.tenant,
            group: g,
            case: ctx.settings().group_status_case,
        },
        None,
    )
}

/// `GET /admin/v2/groups/{group_id}`.
pub fn get_v2(ctx: &Ctx<'_>, id: &str) -> Result<Vec<u8>, ApiError> {
    let id = path_group_id(id)?;
    let w = ctx.shared.read();
    let g = w.tenant.group(&id).ok_or_else(ApiError::not_found)?;
    ok_body(
        GroupView {
            group: g,
            case: ctx.settings().group_status_case,
        },
        None,
    )
}

/// `GET /admin/v2/groups/{group_id}/users`.
pub fn users(ctx: &Ctx<'_>, id: &str, p: &Params) -> Result<Vec<u8>, ApiError> {
    let id = path_group_id(id)?;
    let s = ctx.settings();
    let page = Page::from_params(
        p,
        s.page_limits.group_users,
        ctx.settings().reject_limit_over_max,
    )?;
    let w = ctx.shared.read();
    let g = w.tenant.group(&id).ok_or_else(ApiError::not_found)?;
    let (range, meta) = page.slice(g.members.len());
    let meta = meta.with_nulls(ctx.settings().list_metadata_nulls);
    ok_body(
        MemberList {
            tenant: &w.tenant,
            ids: &g.members[range],
            include_username: s.group_users_include_username,
        },
        Some(meta),
    )
}

/// `POST /admin/v1/groups`.
pub fn create(ctx: &Ctx<'_>, p: &Params) -> Result<Vec<u8>, ApiError> {
    let fields = group_fields(p, true)?;
    let s = ctx.settings();
    let mut w = ctx.shared.write();
    let world = &mut *w;
    let id = world
        .tenant
        .create_group(fields, s, &mut world.ids)?;
    let g = world.tenant.group(&id).ok_or_else(ApiError::internal)?;
    ctx.created(&g.name);
    ok_body(
        GroupView {
            group: g,
            case: s.group_status_case,
        },
        None,
    )
}

/// `POST /admin/v1/groups/{group_id}`.
pub fn modify(ctx: &Ctx<'_>, id: &str, p: &Params) -> Result<Vec<u8>, ApiError> {
    let id = path_group_id(id)?;
    let fields = group_fields(p, false)?;
    let s = ctx.settings();
    let mut w = ctx.shared.write();
    w.tenant.modify_group(&id, fields, s)?;
    let g = w.tenant.group(&id).ok_or_else(ApiError::not_found)?;
    ok_body(
        GroupView {
            group: g,
            case: s.group_status_case,
        },
        None,
    )
}

/// `DELETE /admin/v1/groups/{group_id}`: 200 even when the group does not exist.
pub fn delete(ctx: &Ctx<'_>, id: &str) -> Result<Vec<u8>, ApiError> {
    let id = path_group_id(id)?;
    ctx.shared.write().tenant.delete_group(&id);
    ok_body("", None)
}
