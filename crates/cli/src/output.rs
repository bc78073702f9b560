//! Output for people and for machines: aligned text tables on standard output, or JSON with
//! `--json`.

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
