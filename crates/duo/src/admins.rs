//! Administrator operations (`/admin/v1/admins`, "Grant administrators"): list (paged, 100 per
//! page, page-read class), create (with read-back by e-mail when the outcome is unknown), update
//! role and status, delete (404 is success). Writes are in the write class. Every reply is read
//! strictly: an administrator without `admin_id`, `email`, `name`, `role` or `status` (or with
//! an id that is not a Duo id) is a malformed reply, never a default.

use duoprov_duo_wire::types::{Admin, IdKind, check_id};

use crate::client::{CallSpec, DuoClient, Params};
use crate::error::{DuoError, ErrorClass, ErrorKind, Result};
use crate::pace::CallClass;
use crate::paging::ItemRules;
use crate::retry::Safety;
use crate::users::{CreateRounds, arg_id, outcome_unknown, parse_one};

/// Page size of `GET /admin/v1/admins` (Grouper's role provisioner uses 100 too).
pub const ADMINS_PAGE: u32 = 100;

/// An administrator to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAdmin {
    /// Name (required by Duo).
    pub name: String,
    /// E-mail address (required by Duo; unique).
    pub email: String,
    /// Duo's role string; Duo's default when unset is `Owner`, so duoprov always sends one.
    pub role: String,
    /// `send_email=1`: Duo e-mails the activation link to the new administrator.
    pub send_email: bool,
}

impl NewAdmin {
    fn to_params(&self) -> Vec<(String, String)> {
        let mut p = vec![("name".to_owned(), self.name.clone()), ("email".to_owned(), self.email.clone()), ("role".to_owned(), self.role.clone())];
        if self.send_email {
            p.push(("send_email".to_owned(), "1".to_owned()));
        }
        p
    }
}

/// Fields of an administrator to change; `None` is not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminUpdate {
    /// A new role.
    pub role: Option<String>,
    /// `Active` or `Disabled` (Duo refuses `Disabled` for an `Owner`).
    pub status: Option<String>,
}

fn check_admin(a: &Admin) -> std::result::Result<(), (String, String)> {
    check_id(IdKind::Admin, &a.admin_id).map_err(|e| ("admin_id".to_owned(), e.to_string()))?;
    if !a.email.contains('@') {
        return Err(("email".to_owned(), format!("{:?} is not an e-mail address", a.email)));
    }
    Ok(())
}

fn admin_key(a: &Admin) -> &str {
    a.admin_id.as_str()
}

impl DuoClient {
    /// All administrators (`GET /admin/v1/admins`, 100 per page).
    pub async fn list_admins(&self) -> Result<Vec<Admin>> {
        self.list_all("/admin/v1/admins", &[], ADMINS_PAGE, &ItemRules { required: &[], check: &check_admin, key: admin_key }).await
    }

    /// Creates an administrator (`POST /admin/v1/admins`). If the outcome is unknown, the
    /// administrators are read back: Duo's e-mail addresses are unique (case-insensitively), so
    /// the one with this address is the result, and none means the create did not happen and is
    /// sent again (at most `max_server_retries` more times). A repeat refused as invalid after an
    /// unknown outcome reads back again (the first create landed late).
    pub async fn create_admin(&self, admin: &NewAdmin) -> Result<Admin> {
        let spec = CallSpec::new("POST", "/admin/v1/admins", Params::Pairs(admin.to_params()), CallClass::Write, Safety::NotRepeatable);
        let call = format!("create administrator {}", admin.email);
        let mut rounds = CreateRounds::new(self);
        let mut repeated = false;
        loop {
            let e = match self.call(&spec).await {
                Ok(r) => return parse_one(&spec.label(), r.response, &[], &check_admin),
                Err(e) => e,
            };
            let duplicate_after_retry = repeated && e.class() == ErrorClass::InvalidParameter;
            if !outcome_unknown(&e) && !duplicate_after_retry {
                return Err(e);
            }
            tracing::warn!(call = %call, error = %e, "create outcome unknown; reading administrators back");
            rounds.pause().await;
            let admins = self.list_admins().await.map_err(|re| DuoError::new(&call, ErrorKind::Unresolved { detail: format!("after `{e}`, reading back failed: {re}") }))?;
            let key = admin.email.to_lowercase();
            let mut same: Vec<Admin> = admins.into_iter().filter(|a| a.email.to_lowercase() == key).collect();
            match same.len() {
                1 => return same.pop().ok_or_else(|| DuoError::new(&call, ErrorKind::Unresolved { detail: String::new() })),
                0 if duplicate_after_retry => return Err(e),
                0 if rounds.another() => repeated = true,
                0 => return Err(DuoError::new(call, ErrorKind::Unresolved { detail: format!("after `{e}`, the administrator is not there") })),
                n => return Err(DuoError::new(call, ErrorKind::Unresolved { detail: format!("after `{e}`, {n} administrators have this address") })),
            }
        }
    }

    /// Changes an administrator's role and/or status (`POST /admin/v1/admins/{id}`); returns it
    /// as Duo answered.
    pub async fn update_admin(&self, admin_id: &str, update: &AdminUpdate) -> Result<Admin> {
        let path = format!("/admin/v1/admins/{admin_id}");
        let call = format!("POST {path}");
        arg_id(&call, IdKind::Admin, admin_id)?;
        let mut params = Vec::new();
        if let Some(r) = &update.role {
            params.push(("role".to_owned(), r.clone()));
        }
        if let Some(s) = &update.status {
            params.push(("status".to_owned(), s.clone()));
        }
        if params.is_empty() {
            return Err(DuoError::new(call, ErrorKind::Config { detail: "nothing to change".into() }));
        }
        let spec = CallSpec::new("POST", path, Params::Pairs(params), CallClass::Write, Safety::Repeatable);
        let r = self.call(&spec).await?;
        parse_one(&call, r.response, &[], &check_admin)
    }

    /// Deletes an administrator (`DELETE /admin/v1/admins/{id}`). 404 is success. Duo answers
    /// an empty string.
    pub async fn delete_admin(&self, admin_id: &str) -> Result<()> {
        let path = format!("/admin/v1/admins/{admin_id}");
        let call = format!("DELETE {path}");
        arg_id(&call, IdKind::Admin, admin_id)?;
        let spec = CallSpec::new("DELETE", path, Params::none(), CallClass::Write, Safety::Repeatable);
        match self.call(&spec).await {
            Ok(r) if r.response.as_str() == Some("") || r.response.is_null() => Ok(()),
            Ok(r) => Err(DuoError::malformed(&call, "response", format!("expected an empty string, got {}", short(&r.response)))),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn short(v: &serde_json::Value) -> String {
    let mut s = v.to_string();
    if s.len() > 80 {
        let mut cut = 80;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}
