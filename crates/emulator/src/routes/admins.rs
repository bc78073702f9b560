//! Administrator endpoints (`/admin/v1/admins`: list, get, create, modify, delete), guarded by
//! "Grant administrators", served for duoprov's admin-role sync. Create takes Duo's `send_email`
//! (0 or 1; any other value is refused as invalid) and records it on the administrator.

use crate::app::Ctx;
use crate::error::ApiError;
use crate::id::DuoId;
use crate::paging::Page;
use crate::params::Params;
use crate::routes::ok_body;
use crate::state::AdminFields;
use crate::views::{AdminList, AdminView};

fn path_admin_id(s: &str) -> Result<DuoId, ApiError> {
    DuoId::parse_with_prefix(s, "DE").ok_or_else(ApiError::not_found)
}

fn admin_fields(p: &Params, creating: bool) -> Result<AdminFields, ApiError> {
    let (name, email) = if creating {
        (Some(p.req_str("name")?), Some(p.req_str("email")?))
    } else {
        (p.opt_str("name")?, p.opt_str("email")?)
    };
    Ok(AdminFields {
        name,
        email,
        phone: p.opt_str("phone")?,
        role: p.opt_str("role")?,
        status: p.opt_str("status")?,
        password_change_required: p.opt_bool("password_change_required")?,
        // Duo documents `send_email` (0 or 1, default 0) for create only.
        send_email: if creating { p.opt_bool("send_email")? } else { None },
    })
}

/// `GET /admin/v1/admins`.
pub fn list(ctx: &Ctx<'_>, p: &Params) -> Result<Vec<u8>, ApiError> {
    let page = Page::from_params(
        p,
        ctx.settings().page_limits.admins,
        ctx.settings().reject_limit_over_max,
    )?;
    let w = ctx.shared.read();
    let all = w.tenant.admin_order();
    let (range, meta) = page.slice(all.len());
    let meta = meta.with_nulls(ctx.settings().list_metadata_nulls);
    ok_body(
        AdminList {
            tenant: &w.tenant,
            ids: &all[range],
        },
        Some(meta),
    )
}

/// `GET /admin/v1/admins/{admin_id}`.
pub fn get(ctx: &Ctx<'_>, id: &str) -> Result<Vec<u8>, ApiError> {
    let id = path_admin_id(id)?;
    let w = ctx.shared.read();
    let a = w.tenant.admin(&id).ok_or_else(ApiError::not_found)?;
    ok_body(AdminView(a), None)
}

/// `POST /admin/v1/admins`.
pub fn create(ctx: &Ctx<'_>, p: &Params) -> Result<Vec<u8>, ApiError> {
    let f = admin_fields(p, true)?;
    let mut w = ctx.shared.write();
    let world = &mut *w;
    let id = world.tenant.create_admin(f, ctx.now, &mut world.ids)?;
    let a = world.tenant.admin(&id).ok_or_else(ApiError::internal)?;
    ok_body(AdminView(a), None)
}

/// `POST /admin/v1/admins/{admin_id}`.
pub fn modify(ctx: &Ctx<'_>, id: &str, p: &Params) -> Result<Vec<u8>, ApiError> {
    let id = path_admin_id(id)?;
    let f = admin_fields(p, false)?;
    let mut w = ctx.shared.write();
    w.tenant.modify_admin(&id, f)?;
    let a = w.tenant.admin(&id).ok_or_else(ApiError::not_found)?;
    ok_body(AdminView(a), None)
}

/// `DELETE /admin/v1/admins/{admin_id}`: 200 even when absent.
pub fn delete(ctx: &Ctx<'_>, id: &str) -> Result<Vec<u8>, ApiError> {
    let id = path_admin_id(id)?;
    ctx.shared.write().tenant.delete_admin(&id);
    ok_body("", None)
}
