//! Wall-clock timestamps for crash records, without a date crate.
//!
//! faultline-record has the same formatter (`faultline_record::time`) for the other crates; the
//! SDK keeps its own copy because it links nothing but libc (no serde, which the record crate
//! needs). Both are tested against the same instants.

use std::time::{SystemTime, UNIX_EPOCH};

const MS_PER_DAY: i64 = 86_400_000;
/// `0000-01-01T00:00:00.000Z`, the earliest instant RFC 3339 can write (four-digit years).
const MIN_UNIX_MS: i64 = -62_167_219_200_000;
/// `9999-12-31T23:59:59.999Z`, the latest.
const MAX_UNIX_MS: i64 = 253_402_300_799_999;

/// Milliseconds since the Unix epoch, negative before it.
pub(crate) fn now_unix_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// Formats Unix milliseconds as RFC 3339 in UTC with milliseconds: `2026-11-28T10:00:00.123Z`.
///
/// Instants outside years 0000..=9999 are clamped to the nearest one RFC 3339 can write: a
/// crash record with an odd clock is still a crash record.
pub(crate) fn format_rfc3339(unix_ms: i64) -> String {
    let unix_ms = unix_ms.clamp(MIN_UNIX_MS, MAX_UNIX_MS);
    let days = unix_ms.div_euclid(MS_PER_DAY);
    let ms_of_day = unix_ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second, milli) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
///
/// Howard Hinnant's `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>):
/// shift the epoch to 0000-03-01 so the leap day ends each 400-year era, then split days into
/// eras, years of the era and days of the (March-based) year.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1; // [1, 31]
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(unix_ms: i64, expected: &str) {
        assert_eq!(format_rfc3339(unix_ms), expected, "formatting {unix_ms}");
    }

    // Expected values from Python's `datetime(1970, 1, 1, tzinfo=timezone.utc)
    // + timedelta(milliseconds=ms)`.
    #[test]
    fn formats_known_instants() {
        check(0, "1970-01-01T00:00:00.000Z");
        check(-1, "1969-12-31T23:59:59.999Z");
        check(951_782_400_000, "2000-02-29T00:00:00.000Z");
        check(1_709_210_096_789, "2024-02-29T12:34:56.789Z");
        check(1_700_000_000_000, "2023-11-14T22:13:20.000Z");
        check(1_735_689_599_999, "2024-12-31T23:59:59.999Z");
        check(1_735_689_600_000, "2025-01-01T00:00:00.000Z");
        // 2100 is not a leap year.
        check(4_107_542_400_000, "2100-03-01T00:00:00.000Z");
        check(-62_135_596_800_000, "0001-01-01T00:00:00.000Z");
        check(MAX_UNIX_MS, "9999-12-31T23:59:59.999Z");
        check(MIN_UNIX_MS, "0000-01-01T00:00:00.000Z");
    }

    #[test]
    fn clamps_instants_rfc_3339_cannot_write() {
        check(i64::MAX, "9999-12-31T23:59:59.999Z");
        check(i64::MIN, "0000-01-01T00:00:00.000Z");
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        // Walk 1600-01-01 to 2400-12-31 and check the dates count up one day at a time, which
        // covers every leap-year rule.
        let mut previous = civil_from_days(-135_140);
        assert_eq!(previous, (1600, 1, 1));
        for days in -135_139..=157_419 {
            let (year, month, day) = civil_from_days(days);
            let next_day = (previous.0, previous.1, previous.2 + 1);
            let next_month = (previous.0, previous.1 + 1, 1);
            let next_year = (previous.0 + 1, 1, 1);
            assert!(
                [next_day, next_month, next_year].contains(&(year, month, day)),
                "{previous:?} then {:?}",
                (year, month, day)
            );
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            let month_len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            assert!(day <= month_len[usize::try_from(month - 1).unwrap_or(0)]);
            previous = (year, month, day);
        }
        assert_eq!(previous, (2400, 12, 31));
    }

    #[test]
    fn now_is_after_this_code_was_written() {
        assert!(format_rfc3339(now_unix_ms()).as_str() > "2025-01-01");
    }
}
