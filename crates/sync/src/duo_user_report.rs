//! The Duo users report, shared by `duoprov report P users` and the console's `/duo-users` page:
//! its filters (`--not-in-registry`, `--not-enrolled`, `--status S`, `--stale-login DAYS`, and by
//! authentication method `--has M`, `--lacks M`, `--only M[,M…]`), the rows they select, and the
//! CSV download (every column: Grouper's sixteen by Grouper's names, then the method counts;
//! cells a spreadsheet would run as formulas kept as text).
//!
//! "Not in the registry" follows the provisioner's `username` template when it is known: the
//! rows are read and filtered here. Otherwise the default template's `login_id` is compared in
//! SQL, and the console can page in SQL too ([`ReportFilter::pages_in_sql`]).

use std::collections::HashSet;

use duoprov_plan::Mapping;
use duoprov_registry::{AuthMethod, DuoUserFilter, DuoUserRow, DuoUserStore, RegistryReader, Result};

/// The columns of `duo_user`: Grouper's sixteen in Grouper's order, then the
/// authentication-method counts (the CSV header).
pub const COLUMNS: [&str; 27] = duoprov_registry::duo_users::DUO_USER_COLUMNS;

/// What the report is asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportFilter {
    /// Only Duo users no registry subject maps to.
    pub not_in_registry: bool,
    /// Only Duo users not enrolled.
    pub not_enrolled: bool,
    /// Only Duo users with this status (ignoring case).
    pub status: Option<String>,
    /// Only Duo users who have not logged in (or, never having logged in, were not created) for
    /// this many days.
    pub stale_login_days: Option<u32>,
    /// Only Duo users with at least one of each of these methods.
    pub has_methods: Vec<AuthMethod>,
    /// Only Duo users known to have none of each of these methods.
    pub lacks_methods: Vec<AuthMethod>,
    /// Only Duo users with one of these methods and no other, every count known.
    pub only_methods: Vec<AuthMethod>,
}

impl ReportFilter {
    /// The filter in SQL at `now_secs`; "not in the registry" goes to SQL only when no username
    /// template is known (`mapping` is `None`).
    pub fn sql(&self, mapping: Option<&Mapping>, now_secs: i64) -> DuoUserFilter {
        DuoUserFilter {
            not_in_registry: self.not_in_registry && mapping.is_none(),
            not_enrolled: self.not_enrolled,
            status: self.status.clone().filter(|s| !s.trim().is_empty()),
            stale_before: self.stale_login_days.map(|days| now_secs.saturating_sub(i64::from(days) * 86_400)),
            has_methods: self.has_methods.clone(),
            lacks_methods: self.lacks_methods.clone(),
            only_methods: self.only_methods.clone(),
            not_rendered_by: None,
        }
    }

    /// Whether every condition is in SQL with `mapping`, so a page can be cut in SQL.
    pub fn pages_in_sql(&self, mapping: Option<&Mapping>) -> bool {
        !(self.not_in_registry && mapping.is_some())
    }
}

/// The Duo usernames (lowercased) the `username` template gives the registry's subjects; a subject
/// the template fails on maps to no one.
pub async fn registry_usernames(store: &dyn RegistryReader, mapping: &Mapping) -> Result<HashSet<String>> {
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

/// Every row of `provisioner`'s Duo users the filter selects at `now_secs`, sorted by username;
/// "not in the registry" by `mapping`'s usernames when given.
pub async fn rows<S: RegistryReader + DuoUserStore + ?Sized>(
    store: &S,
    reader: &dyn RegistryReader,
    provisioner: &str,
    mapping: Option<&Mapping>,
    filter: &ReportFilter,
    now_secs: i64,
) -> Result<Vec<DuoUserRow>> {
    let mut rows = store.duo_users(provisioner, &filter.sql(mapping, now_secs)).await?;
    if let (true, Some(mapping)) = (filter.not_in_registry, mapping) {
        let names = registry_usernames(reader, mapping).await?;
        rows.retain(|r| !names.contains(&r.user_name.to_lowercase()));
    }
    Ok(rows)
}

/// A cell a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return) gets a leading `'`, so text from Duo — a display name, notes — stays text
/// when the report is opened in Excel or LibreOffice (OWASP "CSV injection").
pub fn spreadsheet_safe(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{cell}") } else { cell }
}

/// The methods named `names` (each may be a comma-separated list, any case), for `flag`'s
/// error message.
pub fn parse_methods(flag: &str, names: &[String]) -> std::result::Result<Vec<AuthMethod>, String> {
    let mut out = Vec::new();
    for name in names.iter().flat_map(|n| n.split(',')).map(str::trim).filter(|n| !n.is_empty()) {
        let Some(method) = AuthMethod::from_name(&name.to_ascii_lowercase()) else {
            let known: Vec<&str> = AuthMethod::ALL.iter().map(|m| m.name()).collect();
            return Err(format!("{flag} {name:?}: not an authentication method; use one of {}", known.join(", ")));
        };
        if !out.contains(&method) {
            out.push(method);
        }
    }
    Ok(out)
}

/// The methods a user has, in words: `push 2, sms 1`; `none`; `?` where Duo did not say.
pub fn methods_cell(r: &DuoUserRow) -> String {
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

/// A row's CSV cells, in [`COLUMNS`] order, spreadsheet-safe.
pub fn csv_record(r: &DuoUserRow) -> Vec<String> {
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
    grouper.into_iter().chain(r.auth_methods.columns().map(|(_, v)| n(v))).map(spreadsheet_safe).collect()
}

/// The CSV download: a header of [`COLUMNS`], then one record per row.
pub fn csv(rows: &[DuoUserRow]) -> std::result::Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS).map_err(|e| format!("writing CSV: {e}"))?;
    for r in rows {
        w.write_record(csv_record(r)).map_err(|e| format!("writing CSV: {e}"))?;
    }
    w.into_inner().map_err(|e| format!("writing CSV: {}", e.error()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let text = String::from_utf8(csv(&[row]).unwrap()).unwrap();
        assert!(text.starts_with("config_id,user_id,aliases,"), "{text}");
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn method_names_are_checked_and_may_be_comma_separated() {
        let got = parse_methods("--only", &["sms,voice".into(), "SMS".into()]).unwrap();
        assert_eq!(got, vec![AuthMethod::Sms, AuthMethod::Voice]);
        let e = parse_methods("--has", &["fax".into()]).unwrap_err();
        assert!(e.contains("--has \"fax\"") && e.contains("webauthn"), "{e}");
    }

    #[test]
    fn not_in_registry_is_filtered_in_sql_only_without_a_username_template() {
        let f = ReportFilter { not_in_registry: true, stale_login_days: Some(2), ..Default::default() };
        let mapping = Mapping::compile(&duoprov_plan::MappingConfig::default(), "provisioner.p").unwrap();
        assert!(f.sql(None, 1_000_000).not_in_registry);
        assert!(!f.sql(Some(&mapping), 1_000_000).not_in_registry);
        assert!(!f.pages_in_sql(Some(&mapping)));
        assert!(f.pages_in_sql(None));
        assert_eq!(f.sql(None, 1_000_000).stale_before, Some(1_000_000 - 2 * 86_400));
    }
}
