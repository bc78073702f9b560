//! Output for people and for machines: aligned text tables on standard output, or JSON with
//! `--json`; times for people as UTC with how long ago (or how soon) they are.

use std::io::Write;

use serde::Serialize;

/// Writes one line to standard output. A closed pipe (`duoprov … | head`) ends the program
/// quietly instead of panicking.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}")
        && e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
}

/// Prints rows as a table with a header, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    if rows.is_empty() {
        line("(none)");
        return;
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let row = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        line(out.trim_end());
    };
    row(headers.to_vec());
    for r in rows {
        row(r.iter().map(String::as_str).collect());
    }
}

/// Prints `label: value` lines, skipping empty values.
pub fn record(fields: &[(&str, Option<String>)]) {
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in fields {
        if let Some(v) = v {
            line(&format!("{k:<width$}  {v}"));
        }
    }
}

/// Prints a value as pretty JSON.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    line(&serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A time for people: `2026-11-30 04:12:05 UTC, 3 min ago` (or `in 2 min`), relative to `now_ms`.
pub fn when(at_ms: i64, now_ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    let absolute = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "an unknown time".to_owned());
    let delta = (now_ms - at_ms) / 1000;
    let span = |s: i64| match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} days", s / 86_400),
    };
    let relative = match delta {
        d if d.abs() < 1 => "now".to_owned(),
        d if d > 0 => format!("{} ago", span(d)),
        d => format!("in {}", span(-d)),
    };
    format!("{absolute}, {relative}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_with_how_long_ago_or_how_soon() {
        let at = 1_796_012_325_000; // 2026-11-30 04:18:45 UTC
        assert_eq!(when(at, at + 185_000), "2026-11-30 04:18:45 UTC, 3 min ago");
        assert_eq!(when(at, at - 120_000), "2026-11-30 04:18:45 UTC, in 2 min");
        assert_eq!(when(at, at + 2 * 86_400_000), "2026-11-30 04:18:45 UTC, 2 days ago");
        assert_eq!(when(at, at + 400), "2026-11-30 04:18:45 UTC, now");
    }
}
