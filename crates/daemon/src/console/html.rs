//! The console's HTML: one escaper every piece of text goes through ([`esc`]), the page layout
//! (navigation, the stylesheet served by the daemon, no inline script or style, so the strict
//! Content-Security-Policy holds), readable times ("3 min ago" with the UTC timestamp in a
//! title), and links with their path segments and query strings encoded.

use std::fmt::Write as _;

/// `text` safe inside an element or a double-quoted attribute: `& < > " '` as entities.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path segment percent-encoded (everything but unreserved characters).
pub fn seg(text: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(text, KEEP).to_string()
}

/// `path?k=v&…` with the pairs form-encoded (empty values left out).
pub fn href(path: &str, pairs: &[(&str, String)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if !v.is_empty() {
            q.append_pair(k, v);
            any = true;
        }
    }
    if any { format!("{path}?{}", q.finish()) } else { path.to_owned() }
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_else(|| ms.to_string())
}

/// How long from `now_ms` to `ms`, in words: `just now`, `3 min ago`, `in 2 h`, `5 days ago`.
pub fn relative(now_ms: i64, ms: i64) -> String {
    let d = (ms - now_ms) / 1000;
    let a = d.unsigned_abs();
    let words = match a {
        0..=9 => return "just now".into(),
        10..=59 => format!("{a} s"),
        60..=3599 => format!("{} min", a / 60),
        3600..=172_799 => format!("{} h", a / 3600),
        _ => format!("{} days", a / 86_400),
    };
    if d < 0 { format!("{words} ago") } else { format!("in {words}") }
}

/// A `<time>` element: relative words, the UTC timestamp in its title.
pub fn time(now_ms: i64, ms: i64) -> String {
    let iso = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default();
    format!("<time datetime=\"{}\" title=\"{}\">{}</time>", esc(&iso), esc(&utc(ms)), esc(&relative(now_ms, ms)))
}

/// A duration in words: `850 ms`, `12.3 s`, `4 min 05 s`.
pub fn duration_ms(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {:02} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// An HTML table: `headers` and rows of cells already HTML (each cell escaped by its maker).
pub fn table(headers: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\">{}</p>", esc(empty));
    }
    let mut out = String::from("<table><thead><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A whole page: `title` (text), the navigation, and `body` (HTML).
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · duoprov</title><link rel=\"stylesheet\" href=\"/console.css\"></head><body>\
         <header><nav><a class=\"brand\" href=\"/\">duoprov</a> <a href=\"/\">Overview</a> <a href=\"/duo-users\">Duo users</a> <a href=\"/explain\">Explain</a></nav></header>\
         <main><h1>{}</h1>{body}</main><footer>Status endpoints: <a href=\"/healthz\">/healthz</a> <a href=\"/readyz\">/readyz</a> \
         <a href=\"/metrics\">/metrics</a></footer></body></html>\n",
        esc(title),
        esc(title)
    )
}

/// The stylesheet, served at `/console.css`.
pub const CSS: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1b1f24;background:#fafbfc}\
header{background:#1b1f24;padding:.6rem 1rem}header a{color:#fff;margin-right:1rem;text-decoration:none}.brand{font-weight:700}\
main{padding:1rem 1.5rem;max-width:80rem}table{border-collapse:collapse;margin:.5rem 0 1.5rem;width:100%}\
th,td{border-bottom:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.92rem}\
th{background:#eef1f4}code,.digest{font-family:ui-monospace,monospace}.bad{color:#b42318;font-weight:600}.ok{color:#1a7f37}\
.empty{color:#57606a;font-style:italic}form.inline{display:inline}pre{background:#eef1f4;padding:.75rem;overflow:auto;font-size:.85rem}\
.pager a{margin-right:1rem}input,select,button{font-size:.95rem;margin:.2rem .3rem .2rem 0}.note{color:#57606a}footer{padding:1rem 1.5rem;color:#57606a;font-size:.85rem}footer a{margin-right:.6rem}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_text_is_escaped_for_elements_and_attributes() {
        assert_eq!(esc("<script>alert('x')</script> & \"q\""), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
        assert_eq!(esc("plain"), "plain");
        let p = page("<b>", "");
        assert!(p.contains("<h1>&lt;b&gt;</h1>") && !p.contains("<b>"), "{p}");
    }

    #[test]
    fn links_encode_their_segments_and_queries() {
        assert_eq!(seg("duo Test/../x"), "duo%20Test%2F..%2Fx");
        assert_eq!(href("/p", &[("q", "a&b=c".into()), ("page", String::new())]), "/p?q=a%26b%3Dc");
        assert_eq!(href("/p", &[("page", String::new())]), "/p");
    }

    #[test]
    fn times_read_as_words_with_the_utc_timestamp_in_a_title() {
        let now = 1_796_007_540_000;
        assert_eq!(relative(now, now - 3 * 60_000), "3 min ago");
        assert_eq!(relative(now, now + 2 * 3_600_000), "in 2 h");
        assert_eq!(relative(now, now - 5 * 86_400_000), "5 days ago");
        assert_eq!(relative(now, now - 2_000), "just now");
        assert_eq!(time(now, now - 60_000), "<time datetime=\"2026-11-30T02:58:00Z\" title=\"2026-11-30 02:58:00 UTC\">1 min ago</time>");
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(12_340), "12.3 s");
        assert_eq!(duration_ms(245_000), "4 min 05 s");
    }
}
