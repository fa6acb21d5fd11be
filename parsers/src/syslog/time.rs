//! Time helpers for RFC 3164 timestamps, which carry neither a year nor a zone.

use chrono::{Datelike, NaiveDate, NaiveDateTime};

/// How far ahead of the arrival time a device clock may run before its timestamp is read as
/// belonging to the past year instead.
pub const MAX_CLOCK_AHEAD_SECONDS: i64 = 7 * 24 * 3600;

/// RFC 3164 timestamps have no year. Take the latest year (of the arrival year and its
/// neighbours) that does not put the timestamp more than [`MAX_CLOCK_AHEAD_SECONDS`] after the
/// arrival time, both read in the source's zone. So `Dec 31 23:59:59` arriving on 1 January is
/// last year's, `Jan 1 00:00:01` arriving at 23:59:58 on 31 December (a fast clock) is next
/// year's, and a backlog from March read in November is this year's.
pub fn infer_year(date: (u32, u32, u32, u32, u32), now_local: NaiveDateTime) -> i32 {
    let (month, day, hour, minute, second) = date;
    let year = now_local.year();
    [year + 1, year, year - 1]
        .into_iter()
        .find(|y| {
            NaiveDate::from_ymd_opt(*y, month, day)
                .and_then(|d| d.and_hms_opt(hour, minute, second))
                .is_some_and(|at| (at - now_local).num_seconds() <= MAX_CLOCK_AHEAD_SECONDS)
        })
        .unwrap_or(year)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|d| d.and_hms_opt(h, mi, s))
            .expect("valid test date")
    }

    #[test]
    fn same_year_in_the_middle_of_the_year() {
        assert_eq!(
            infer_year((6, 15, 10, 0, 0), at(2025, 6, 15, 10, 0, 1)),
            2025
        );
    }

    #[test]
    fn december_message_arriving_in_january_is_last_year() {
        assert_eq!(
            infer_year((12, 31, 23, 59, 59), at(2026, 1, 1, 0, 0, 2)),
            2025
        );
    }

    #[test]
    fn january_message_arriving_in_december_is_next_year() {
        assert_eq!(
            infer_year((1, 1, 0, 0, 1), at(2025, 12, 31, 23, 59, 58)),
            2026
        );
    }

    #[test]
    fn february_29_finds_the_leap_year() {
        assert_eq!(infer_year((2, 29, 12, 0, 0), at(2025, 1, 2, 0, 0, 0)), 2024);
    }

    #[test]
    fn old_backlog_stays_in_the_arrival_year() {
        // Replayed logs from March read in November are from March of the same year.
        assert_eq!(infer_year((3, 1, 8, 0, 0), at(2025, 11, 20, 8, 0, 0)), 2025);
    }
}
