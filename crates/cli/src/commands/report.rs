//! `duoprov report P users`: the provisioner's loaded Duo users (the `duo_user` table, filled by
//! `duoprov load-users` or a full sync with `load_duo_users = true`), filtered by
//! `--not-in-registry`, `--not-enrolled`, `--status S`, `--stale-login DAYS` and by authentication
//! method (`--has M`, `--lacks M`, `--only M[,M…]`), as a table, JSON (`--json`, every column) or
//! CSV (`--csv`, every column: Grouper's sixteen by Grouper's names, then the method counts). The filters and
//! the CSV are `duoprov_sync::duo_user_report`'s, shared with the daemon's console.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use duoprov_sync::duo_user_report::{self, ReportFilter};

use super::Context;
use crate::args::{ReportArgs, ReportKind};
use crate::{exit, output};

/// `YYYY-MM-DD HH:MM` UTC, or the raw number when it is out of range.
fn when(secs: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| secs.to_string())
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
    let filter = ReportFilter {
        not_in_registry: args.not_in_registry,
        not_enrolled: args.not_enrolled,
        status: args.status.clone(),
        stale_login_days: args.stale_login,
        has_methods: duo_user_report::parse_methods("--has", &args.has).map_err(anyhow::Error::msg)?,
        lacks_methods: duo_user_report::parse_methods("--lacks", &args.lacks).map_err(anyhow::Error::msg)?,
        only_methods: duo_user_report::parse_methods("--only", &args.only).map_err(anyhow::Error::msg)?,
    };
    let rows = duo_user_report::rows(&*store, &*store, provisioner, mapping.as_deref(), &filter, now_secs()).await?;
    if ctx.json {
        let mut text = serde_json::to_string_pretty(&rows)?;
        text.push('\n');
        emit(&text)?;
    } else if args.csv {
        let bytes = duo_user_report::csv(&rows).map_err(anyhow::Error::msg)?;
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
                    duo_user_report::methods_cell(r),
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
    fn times_are_utc_minutes_or_the_raw_number() {
        assert_eq!(when(0), "1970-01-01 00:00");
        assert_eq!(when(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(when(i64::MAX), i64::MAX.to_string());
    }
}
