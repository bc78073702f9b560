//! Output for people and for machines: aligned text tables on standard output, or JSON with
//! `--json`; times for people as UTC with how long ago (or how soon) they are; and
//! [`TrafficLines`], which prints compact traffic-log entries as bare lines.

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
    for l in table_lines(headers, rows) {
        line(&l);
    }
}

/// The lines of a table: the header, then one line per row, columns padded to their widest
/// cell (the last column unpadded).
pub fn table_lines(headers: &[&str], rows: &[Vec<String>]) -> Vec<String> {
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
        out.trim_end().to_owned()
    };
    std::iter::once(row(headers.to_vec())).chain(rows.iter().map(|r| row(r.iter().map(String::as_str).collect()))).collect()
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

/// A time for people: `2026-11-30 04:12:05 UTC, 3 min ago` (or `in 2 min`), relative to `now_ms` (`duoprov_sync::now_ms` for now).
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

const STATUS_OK: anstyle::Style = anstyle::Style::new().fg_color(Some(anstyle::Color::Ansi(anstyle::AnsiColor::Green)));
const STATUS_FAILED: anstyle::Style = anstyle::Style::new().bold().fg_color(Some(anstyle::Color::Ansi(anstyle::AnsiColor::Red)));
const DETAIL: anstyle::Style = anstyle::Style::new().dimmed();

/// Compact traffic-log entries (`log_http_format = "compact"`) as bare lines for people: two
/// spaces and the entry's line (`POST /admin/v1/users  200  12 ms`) with its status green, or red
/// for a failed attempt; then each further field (the masked query and bodies, present only when
/// bodies are shown) on an indented line of its own. No time, level, target or span: the line
/// says what happened. Colour codes are written as is; give it a writer that drops them where
/// they are not wanted (`anstream::stdout`).
pub struct TrafficLines;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for TrafficLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let style = if *event.metadata().level() <= tracing::Level::WARN { STATUS_FAILED } else { STATUS_OK };
        match fields.message.splitn(3, "  ").collect::<Vec<_>>().as_slice() {
            [call, status, rest] => writeln!(writer, "  {call}  {style}{status}{style:#}  {rest}")?,
            _ => writeln!(writer, "  {}", fields.message)?,
        }
        for (name, value) in &fields.others {
            let label = name.strip_suffix("_body").unwrap_or(name);
            writeln!(writer, "      {DETAIL}{label}:{DETAIL:#} {value}")?;
        }
        Ok(())
    }
}

/// An event's message and its other fields, in order.
#[derive(Default)]
struct EventFields {
    message: String,
    others: Vec<(&'static str, String)>,
}

impl tracing::field::Visit for EventFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.others.push((field.name(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.others.push((field.name(), format!("{value:?}")));
        }
    }
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
