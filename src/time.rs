//! Times written as text: RFC 3339 in answers and audit lines, and SigV4's basic format
//! in signatures.
//!
//! Written digit by digit: every request formats several, and `format!` with widths was
//! a visible part of a presigned PUT's CPU.

#![forbid(unsafe_code)]

use chrono::{DateTime, Datelike, Timelike, Utc};

/// RFC 3339 in UTC with whole seconds: `2026-01-15T12:34:56Z`.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    date_time(time, "-", ":")
}

/// SigV4's date: `20260115`.
pub fn basic_date(time: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(8);
    push_date(&mut out, time, "");
    out
}

/// SigV4's time (`X-Amz-Date`): `20260115T123456Z`.
pub fn basic_date_time(time: DateTime<Utc>) -> String {
    date_time(time, "", "")
}

/// `<date>T<time>Z`, with the separators given between the date's and the time's fields.
fn date_time(time: DateTime<Utc>, date_separator: &str, time_separator: &str) -> String {
    let mut out = String::with_capacity(20);
    push_date(&mut out, time, date_separator);
    out.push('T');
    push_time(&mut out, time, time_separator);
    out.push('Z');
    out
}

fn push_date(out: &mut String, time: DateTime<Utc>, separator: &str) {
    // Years outside 0 to 9999 do not occur: the clock is the Worker's.
    push_padded(out, u32::try_from(time.year()).unwrap_or(0).min(9999), 4);
    out.push_str(separator);
    push_padded(out, time.month(), 2);
    out.push_str(separator);
    push_padded(out, time.day(), 2);
}

fn push_time(out: &mut String, time: DateTime<Utc>, separator: &str) {
    push_padded(out, time.hour(), 2);
    out.push_str(separator);
    push_padded(out, time.minute(), 2);
    out.push_str(separator);
    push_padded(out, time.second(), 2);
}

/// The last `width` decimal digits of `value`, zero-padded.
fn push_padded(out: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10u32.pow(place) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_with_whole_seconds_in_both_formats() {
        for (seconds, expected, basic) in [
            (0, "1970-01-01T00:00:00Z", "19700101T000000Z"),
            (1_768_480_496, "2026-01-15T12:34:56Z", "20260115T123456Z"),
            (1_798_761_599, "2026-12-31T23:59:59Z", "20261231T235959Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z", "99991231T235959Z"),
        ] {
            let time = DateTime::from_timestamp(seconds, 999_000_000).unwrap();
            assert_eq!(rfc3339(time), expected);
            assert_eq!(basic_date_time(time), basic);
            assert_eq!(basic_date(time), basic[..8]);
        }
    }
}
