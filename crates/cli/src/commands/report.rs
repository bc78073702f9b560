//! `duoprov report P users`: the provisioner's loaded Duo users (the `duo_user` table, filled by
//! `duoprov load-users` or a full sync with `load_duo_users = true`), filtered by
//! `--not-in-registry`, `--not-enrolled`, `--status S`, `--stale-login DAYS` and by authentication
//! method (`--has M`, `--lacks M`, `--only M[,M…]`), as a table, JSON (`--json`, every column) or
//! CSV (`--csv`, every column: Grouper's sixteen by Grouper's names, then the method counts).

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use duoprov_plan::Mapping;
use duoprov_registry::{AuthMethod, DuoUserFilter, DuoUserRow, RegistryReader};

use super::Context;
use crate::args::{ReportArgs, ReportKind};
use crate::{exit, output};

/// The columns of `duo_user`: Grouper's sixteen in Grouper's order, then the
/// authentication-method counts (the CSV header).
const COLUMNS: [&str; 27] = [
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

/// A cell a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return) gets a leading `'`, so text from Duo — a display name, notes — stays text
/// when the report is opened in Excel or LibreOffice (OWASP "CSV injection").
fn spreadsheet_safe(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{cell}") } else { cell }
}

fn csv_record(r: &DuoUserRow) -> Vec<String> {
    csv_cells(r).into_iter().map(spreadsheet_safe).collect()
}

fn csv_cells(r: &DuoUserRow) -> Vec<String> {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let n = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let grouper = [
        r.config_id.clone(),
        r.user_id.clone(),
        s(&r.aliases),
        s(&r.phones),
        s(&r.is_push_enabled),
        s(&r.email),
        s(&r.first_name),
        s(&r.last_name),
        s(&r.is_enrolled),
        n(r.last_directory_sync),
        s(&r.notes),
        s(&r.real_name),
        s(&r.status),
        r.user_name.clone(),
        n(r.created_at),
        n(r.last_login_time),
    ];
    grouper.into_iter().chain(r.auth_methods.columns().map(|(_, v)| n(v))).collect()
}

/// The methods a user has, for the table: `push 2, sms 1`; `none`; `?` where Duo did not say.
fn methods_cell(r: &DuoUserRow) -> String {
    let mut have = Vec::new();
    let mut unknown = false;
    for method in AuthMethod::ALL {
        match r.auth_methods.count(method) {
            Some(0) => {}
            Some(n) => have.push(format!("{} {n}", method.name())),
            None => unknown = true,
        }
    }
    match (have.is_empty(), unknown) {
        (true, false) => "none".into(),
        (true, true) => "?".into(),
        (false, false) => have.join(", "),
        (false, true) => format!("{}, ?", have.join(", ")),
    }
}

/// The methods named on the command line (`sms`, `push,mobile-otp`, …).
fn methods(flag: &str, names: &[String]) -> Result<Vec<AuthMethod>> {
    let mut out = Vec::new();
    for name in names.iter().flat_map(|n| n.split(',')).map(str::trim).filter(|n| !n.is_empty()) {
        let Some(method) = AuthMethod::from_name(&name.to_ascii_lowercase()) else {
            let known: Vec<&str> = AuthMethod::ALL.iter().map(|m| m.name()).collect();
            bail!("{flag} {name:?}: not an authentication method; use one of {}", known.join(", "));
        };
        if !out.contains(&method) {
            out.push(method);
        }
    }
    Ok(out)
}

/// `YYYY-MM-DD HH:MM` UTC, or the raw number when it is out of range.
fn when(secs: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// The Duo usernames (lowercased) the provisioner's `username` template gives the registry's
/// subjects; a subject the template fails on maps to no one.
async fn registry_usernames(store: &dyn RegistryReader, mapping: &Mapping) -> Result<HashSet<String>> {
    let mut names = HashSet::new();
    for subject in store.subjects(None).await? {
        match mapping.user_fields(&subject) {
            Ok(fields) if !fields.username.is_empty() => {
                names.insert(fields.username.to_lowercase());
            }
            Ok(_) => {}
            Err((key, message)) => tracing::debug!(subject = %subject.key(), %key, %message, "No Duo username for this subject."),
        }
    }
    Ok(names)
}

/// Writes to standard output. A reader that stops early (`| head`) ends the output quietly
/// instead of failing (a report is often thousands of lines).
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// The table `output::table` prints, as text: a header and columns padded to their widest cell.
fn table_text(headers: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "(none)\n".into();
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            text.push_str(&format!("{cell:<width$}  "));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub async fn run(ctx: &Context, args: ReportArgs) -> Result<u8> {
    match args.what {
        ReportKind::Users => users(ctx, &args).await,
    }
}

async fn users(ctx: &Context, args: &ReportArgs) -> Result<u8> {
    if ctx.json && args.csv {
        bail!("choose --json or --csv, not both");
    }
    let provisioner = args.provisioner.as_str();
    let store = ctx.store().await?;
    let Some(load) = store.duo_user_load(provisioner).await? else {
        bail!("no Duo users have been loaded for provisioner {provisioner}: run `duoprov load-users {provisioner}` first");
    };
    // With the provisioner configured, "maps to" follows its username template; otherwise the
    // default template's login_id, compared in SQL.
    let mapping = ctx.settings.provisioners.get(provisioner).map(|p| p.mapping.clone());
    let filter = DuoUserFilter {
        not_in_registry: args.not_in_registry && mapping.is_none(),
        not_enrolled: args.not_enrolled,
        status: args.status.clone(),
        stale_before: args.stale_login.map(|days| now_secs().saturating_sub(i64::from(days) * 86_400)),
        has_methods: methods("--has", &args.has)?,
        lacks_methods: methods("--lacks", &args.lacks)?,
        only_methods: methods("--only", &args.only)?,
    };
    let mut rows = store.duo_users(provisioner, &filter).await?;
    if let (true, Some(mapping)) = (args.not_in_registry, &mapping) {
        let names = registry_usernames(&*store, mapping).await?;
        rows.retain(|r| !names.contains(&r.user_name.to_lowercase()));
    }
    if ctx.json {
        let mut text = serde_json::to_string_pretty(&rows)?;
        text.push('\n');
        emit(&text)?;
    } else if args.csv {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(COLUMNS)?;
        for r in &rows {
            w.write_record(csv_record(r))?;
        }
        let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("writing CSV: {}", e.error()))?;
        emit(&String::from_utf8_lossy(&bytes))?;
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.user_id.clone(),
                    r.user_name.clone(),
                    output::opt(&r.real_name),
                    output::opt(&r.email),
                    output::opt(&r.status),
                    output::opt(&r.is_enrolled),
                    r.last_login_time.map(when).unwrap_or_else(|| "never".into()),
                    r.created_at.map(when).unwrap_or_default(),
                    methods_cell(r),
                ]
            })
            .collect();
        let headers = ["USER_ID", "USERNAME", "NAME", "EMAIL", "STATUS", "ENROLLED", "LAST LOGIN (UTC)", "CREATED (UTC)", "METHODS"];
        let mut text = table_text(&headers, &table);
        text.push_str(&format!("{} of {} Duo users (loaded {} UTC)\n", rows.len(), load.users, when(load.loaded_at)));
        emit(&text)?;
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_text_pads_columns_to_the_widest_cell() {
        let rows = vec![vec!["DU1".to_owned(), "alice".to_owned()], vec!["DU22".to_owned(), "b".to_owned()]];
        assert_eq!(table_text(&["ID", "USERNAME"], &rows), "ID    USERNAME\nDU1   alice\nDU22  b\n");
        assert_eq!(table_text(&["ID"], &[]), "(none)\n");
    }

    #[test]
    fn csv_cells_a_spreadsheet_would_run_as_formulas_stay_text() {
        let row = DuoUserRow {
            config_id: "duoTest".into(),
            user_id: "DU1".into(),
            aliases: None,
            phones: Some("+15551230000".into()),
            is_push_enabled: Some("T".into()),
            email: Some("@SUM(1+1)".into()),
            first_name: Some("-2+3".into()),
            last_name: Some("\tx".into()),
            is_enrolled: Some("T".into()),
            last_directory_sync: None,
            notes: Some("=HYPERLINK(\"http://evil.example\",\"click\")".into()),
            real_name: Some("Ann = Bee".into()),
            status: Some("active".into()),
            user_name: "ann".into(),
            created_at: Some(1_700_000_000),
            last_login_time: None,
            auth_methods: duoprov_registry::AuthMethodCounts { sms_phone_count: Some(1), ..Default::default() },
        };
        let cells = csv_record(&row);
        assert_eq!(cells[3], "'+15551230000");
        assert_eq!(cells[5], "'@SUM(1+1)");
        assert_eq!(cells[6], "'-2+3");
        assert_eq!(cells[7], "'\tx");
        assert_eq!(cells[10], "'=HYPERLINK(\"http://evil.example\",\"click\")");
        assert_eq!(cells[11], "Ann = Bee", "only a leading character makes a formula");
        assert_eq!(cells[13], "ann");
        assert_eq!(cells[14], "1700000000");
        assert_eq!(cells.len(), COLUMNS.len());
        assert_eq!((cells[16].as_str(), cells[19].as_str()), ("", "1"), "counts follow Grouper's columns; unknown is blank");
        assert_eq!(methods_cell(&row), "sms 1, ?");
    }

    #[test]
    fn method_names_are_checked_and_may_be_comma_separated() {
        let got = methods("--only", &["sms,voice".into(), "SMS".into()]).unwrap();
        assert_eq!(got, vec![AuthMethod::Sms, AuthMethod::Voice]);
        let e = methods("--has", &["fax".into()]).unwrap_err().to_string();
        assert!(e.contains("--has \"fax\"") && e.contains("webauthn"), "{e}");
    }

    #[test]
    fn times_are_utc_minutes_or_the_raw_number() {
        assert_eq!(when(0), "1970-01-01 00:00");
        assert_eq!(when(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(when(i64::MAX), i64::MAX.to_string());
    }
}
