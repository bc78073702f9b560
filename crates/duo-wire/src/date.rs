//! The request `Date` string: formatting in the style of Python's `email.utils.formatdate()`
//! (`Tue, 21 Aug 2012 17:29:18 -0000`, always UTC), which Duo's official Python client sends, and
//! lenient parsing of every style clients are known to send (`-0000`, `+0000`, `GMT`, local
//! offsets like `+0200`, optional weekday) for the server's clock-skew check.
//!
//! ```
//! use duoprov_duo_wire::date::{format_date, parse_date};
//! use time::macros::datetime;
//! let t = datetime!(2012-08-21 17:29:18 UTC);
//! assert_eq!(format_date(t), "Tue, 21 Aug 2012 17:29:18 -0000");
//! assert_eq!(parse_date("Tue, 21 Aug 2012 19:29:18 +0200")?, t);
//! assert_eq!(parse_date("Tue, 21 Aug 2012 17:29:18 GMT")?, t);
//! # Ok::<(), duoprov_duo_wire::date::DateError>(())
//! ```

use time::format_description::well_known::Rfc2822;
use time::{Month, OffsetDateTime, UtcOffset, Weekday};

/// A `Date` string that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unparsable request date {value:?}")]
pub struct DateError {
    /// The string as received (dates are not secret).
    pub value: String,
}

fn weekday_abbr(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "Mon",
        Weekday::Tuesday => "Tue",
        Weekday::Wednesday => "Wed",
        Weekday::Thursday => "Thu",
        Weekday::Friday => "Fri",
        Weekday::Saturday => "Sat",
        Weekday::Sunday => "Sun",
    }
}

fn month_abbr(m: Month) -> &'static str {
    match m {
        Month::January => "Jan",
        Month::February => "Feb",
        Month::March => "Mar",
        Month::April => "Apr",
        Month::May => "May",
        Month::June => "Jun",
        Month::July => "Jul",
        Month::August => "Aug",
        Month::September => "Sep",
        Month::October => "Oct",
        Month::November => "Nov",
        Month::December => "Dec",
    }
}

/// Formats `t` (converted to UTC) as `Tue, 21 Aug 2012 17:29:18 -0000`.
pub fn format_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} -0000",
        weekday_abbr(t.weekday()),
        t.day(),
        month_abbr(t.month()),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The current time formatted with [`format_date`].
pub fn now() -> String {
    format_date(OffsetDateTime::now_utc())
}

/// Parses a request date leniently: RFC 2822 with a numeric offset (`-0000` and `+0000` both
/// mean UTC) or the zone names `GMT`/`UT`/`UTC`/`Z`; the weekday is optional; a date without any
/// zone is taken as UTC.
pub fn parse_date(s: &str) -> Result<OffsetDateTime, DateError> {
    let err = || DateError { value: s.to_owned() };
    let trimmed = s.trim();
    if let Ok(t) = OffsetDateTime::parse(trimmed, &Rfc2822) {
        return Ok(t);
    }
    // Replace a trailing zone name (or no zone) with +0000 and try again.
    let without_zone = ["GMT", "UTC", "UT", "Z"]
        .iter()
        .find_map(|z| trimmed.strip_suffix(z).map(str::trim_end))
        .unwrap_or(trimmed);
    let candidate = if without_zone
        .rsplit(' ')
        .next()
        .is_some_and(|last| (last.starts_with('+') || last.starts_with('-')) && last.len() == 5)
    {
        without_zone.to_owned()
    } else {
        format!("{without_zone} +0000")
    };
    if let Ok(t) = OffsetDateTime::parse(&candidate, &Rfc2822) {
        return Ok(t);
    }
    // RFC 2822 makes the weekday optional, but be tolerant of a mismatched weekday prefix too.
    if let Some((_, rest)) = candidate.split_once(", ")
        && let Ok(t) = OffsetDateTime::parse(rest, &Rfc2822)
    {
        return Ok(t);
    }
    Err(err())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_like_python_formatdate() {
        assert_eq!(format_date(datetime!(2024-05-24 12:00:00 UTC)), "Fri, 24 May 2024 12:00:00 -0000");
        assert_eq!(format_date(datetime!(2024-01-02 03:04:05 +02:00)), "Tue, 02 Jan 2024 01:04:05 -0000");
    }

    #[test]
    fn parses_every_known_style() {
        let t = datetime!(2012-12-07 17:18:00 UTC);
        for s in [
            "Fri, 07 Dec 2012 17:18:00 -0000",
            "Fri, 07 Dec 2012 17:18:00 +0000",
            "Fri, 07 Dec 2012 17:18:00 GMT",
            "Fri, 07 Dec 2012 18:18:00 +0100",
            "07 Dec 2012 17:18:00 +0000",
            "Fri, 07 Dec 2012 17:18:00",
            "Fri, 7 Dec 2012 17:18:00 UTC",
        ] {
            assert_eq!(parse_date(s), Ok(t), "{s}");
        }
        assert!(parse_date("yesterday").is_err());
        assert!(parse_date("").is_err());
    }

    #[test]
    fn roundtrip() {
        let t = datetime!(2031-02-28 23:59:59 UTC);
        assert_eq!(parse_date(&format_date(t)), Ok(t));
    }
}
