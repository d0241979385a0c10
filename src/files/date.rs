//! HTTP-dates (RFC 9110 §5.6.7): a file's modification time written as an
//! IMF-fixdate, and the dates of `If-Modified-Since` and `If-Range` read in
//! any of the three formats a recipient must accept.

use std::time::{SystemTime, UNIX_EPOCH};

/// `day-name`, Sunday first (1970-01-01 was a Thursday: index 4).
const DAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];

/// `day-name-l` of the obsolete RFC 850 format, in the same order.
const LONG_DAYS: [&[u8]; 7] = [
    b"Sunday",
    b"Monday",
    b"Tuesday",
    b"Wednesday",
    b"Thursday",
    b"Friday",
    b"Saturday",
];

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Whole seconds since the Unix epoch, rounded towards the past (0.5 s
/// before the epoch is -1, 23:59:59 of the day before); `None` past what
/// an i64 holds.
pub(super) fn unix_secs(time: SystemTime) -> Option<i64> {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok(),
        Err(before) => {
            let d = before.duration();
            let whole = i64::try_from(d.as_secs()).ok()?;
            Some(-whole - i64::from(d.subsec_nanos() > 0))
        }
    }
}

/// Seconds since the Unix epoch as an IMF-fixdate (RFC 9110 §5.6.7), e.g.
/// "Sun, 06 Nov 1994 08:49:37 GMT"; `None` outside years 0000–9999, which
/// it cannot write.
pub(super) fn imf_fixdate(secs: i64) -> Option<[u8; 29]> {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    // 1970-01-01 was a Thursday.
    let weekday = (days + 4).rem_euclid(7) as usize;
    let two = |n: i64| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
    let mut out = [0u8; 29];
    out[0..3].copy_from_slice(DAYS[weekday]);
    out[3..5].copy_from_slice(b", ");
    out[5..7].copy_from_slice(&two(day));
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    out[11] = b' ';
    out[12..14].copy_from_slice(&two(year / 100));
    out[14..16].copy_from_slice(&two(year % 100));
    out[16] = b' ';
    out[17..19].copy_from_slice(&two(of_day / 3600));
    out[19] = b':';
    out[20..22].copy_from_slice(&two(of_day / 60 % 60));
    out[22] = b':';
    out[23..25].copy_from_slice(&two(of_day % 60));
    out[25..29].copy_from_slice(b" GMT");
    Some(out)
}

/// (year, month 1–12, day 1–31) of a day count since 1970-01-01, in the
/// proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of (year, month 1–12, day 1–31), the inverse of
/// [`civil_from_days`] (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = (month + 9) % 12; // [0, 11], March = 0
    let doy = (153 * mp + 2) / 5 + day - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// An HTTP-date in any of the three formats RFC 9110 §5.6.7 has a
/// recipient accept, as seconds since the Unix epoch: IMF-fixdate ("Sun,
/// 06 Nov 1994 08:49:37 GMT"), the obsolete RFC 850 form ("Sunday,
/// 06-Nov-94 08:49:37 GMT") and asctime's ("Sun Nov  6 08:49:37 1994").
/// Case-sensitive, as the grammar is; the day name must be one but is
/// not checked against the date (nginx skips it altogether). `None` for
/// anything else, or a date that does not exist (30 Feb, 24:00:00).
pub(super) fn parse(value: &[u8]) -> Option<i64> {
    let value = value.trim_ascii();
    imf_date(value)
        .or_else(|| rfc850_date(value))
        .or_else(|| asctime_date(value))
}

/// `day-name "," SP day SP month SP year SP time-of-day SP "GMT"`.
fn imf_date(value: &[u8]) -> Option<i64> {
    let mut c = Cursor(value);
    c.one_of(&DAYS)?;
    c.tag(b", ")?;
    let day = c.digits(2)?;
    c.tag(b" ")?;
    let month = c.month()?;
    c.tag(b" ")?;
    let year = c.digits(4)?;
    c.tag(b" ")?;
    let time = c.time_of_day()?;
    c.tag(b" GMT")?;
    c.end()?;
    seconds(year, month, day, time)
}

/// `day-name-l "," SP day "-" month "-" 2DIGIT SP time-of-day SP "GMT"`.
fn rfc850_date(value: &[u8]) -> Option<i64> {
    let mut c = Cursor(value);
    c.one_of(&LONG_DAYS)?;
    c.tag(b", ")?;
    let day = c.digits(2)?;
    c.tag(b"-")?;
    let month = c.month()?;
    c.tag(b"-")?;
    let yy = c.digits(2)?;
    c.tag(b" ")?;
    let time = c.time_of_day()?;
    c.tag(b" GMT")?;
    c.end()?;
    // RFC 9110 wants a year that looks over 50 years ahead read as the
    // past one with the same last digits; nginx's fixed pivot (00–69 are
    // 20xx) agrees with that until 2019 + 50 and needs no clock.
    let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
    seconds(year, month, day, time)
}

/// `day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP time-of-day SP year`.
fn asctime_date(value: &[u8]) -> Option<i64> {
    let mut c = Cursor(value);
    c.one_of(&DAYS)?;
    c.tag(b" ")?;
    let month = c.month()?;
    c.tag(b" ")?;
    let day = if c.tag(b" ").is_some() {
        c.digits(1)?
    } else {
        c.digits(2)?
    };
    c.tag(b" ")?;
    let time = c.time_of_day()?;
    c.tag(b" ")?;
    let year = c.digits(4)?;
    c.end()?;
    seconds(year, month, day, time)
}

/// Seconds since the epoch of a calendar date and a second of its day;
/// `None` for a day the month does not have.
fn seconds(year: i64, month: i64, day: i64, of_day: i64) -> Option<i64> {
    if !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // 31 Apr comes back as 1 May.
    if civil_from_days(days) != (year, month, day) {
        return None;
    }
    Some(days * 86_400 + of_day)
}

/// Reads a date's parts off the front of a value.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn tag(&mut self, tag: &[u8]) -> Option<()> {
        self.0 = self.0.strip_prefix(tag)?;
        Some(())
    }

    /// Which of `names` comes next.
    fn one_of<N: AsRef<[u8]>>(&mut self, names: &[N]) -> Option<usize> {
        let at = names.iter().position(|n| self.0.starts_with(n.as_ref()))?;
        self.0 = &self.0[names[at].as_ref().len()..];
        Some(at)
    }

    /// 1–12.
    fn month(&mut self) -> Option<i64> {
        self.one_of(&MONTHS).map(|i| i as i64 + 1)
    }

    /// Exactly `n` decimal digits.
    fn digits(&mut self, n: usize) -> Option<i64> {
        let (digits, rest) = self.0.split_at_checked(n)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.0 = rest;
        Some(digits.iter().fold(0, |n, &d| n * 10 + i64::from(d - b'0')))
    }

    /// `hour ":" minute ":" second`, as the second of the day; a leap
    /// second (":60") is refused, as nginx does.
    fn time_of_day(&mut self) -> Option<i64> {
        let hour = self.digits(2)?;
        self.tag(b":")?;
        let minute = self.digits(2)?;
        self.tag(b":")?;
        let second = self.digits(2)?;
        (hour < 24 && minute < 60 && second < 60).then_some(hour * 3600 + minute * 60 + second)
    }

    fn end(&self) -> Option<()> {
        self.0.is_empty().then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn imf_fixdates() {
        let table: [(i64, &str); 8] = [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_709_210_096, "Thu, 29 Feb 2024 12:34:56 GMT"),
            (-1, "Wed, 31 Dec 1969 23:59:59 GMT"),
            (-2_208_988_800, "Mon, 01 Jan 1900 00:00:00 GMT"),
            (253_402_300_799, "Fri, 31 Dec 9999 23:59:59 GMT"),
            (-62_167_219_200, "Sat, 01 Jan 0000 00:00:00 GMT"),
        ];
        for (secs, want) in table {
            let got = imf_fixdate(secs).unwrap();
            assert_eq!(std::str::from_utf8(&got).unwrap(), want, "{secs}");
        }
        assert_eq!(imf_fixdate(253_402_300_800), None, "year 10000");
        assert_eq!(imf_fixdate(-62_167_219_201), None, "year -1");
        let before = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(unix_secs(before), Some(-1));
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(2)), Some(-2));
        let after = UNIX_EPOCH + Duration::new(784_111_777, 999_999_999);
        assert_eq!(unix_secs(after), Some(784_111_777));
    }

    #[test]
    fn http_dates_parsed() {
        const EXAMPLE: Option<i64> = Some(784_111_777);
        let table: &[(&str, Option<i64>)] = &[
            // RFC 9110 §5.6.7's three examples of one instant.
            ("Sun, 06 Nov 1994 08:49:37 GMT", EXAMPLE),
            ("Sunday, 06-Nov-94 08:49:37 GMT", EXAMPLE),
            ("Sun Nov  6 08:49:37 1994", EXAMPLE),
            ("Sun Nov 06 08:49:37 1994", EXAMPLE),
            (" Sun, 06 Nov 1994 08:49:37 GMT ", EXAMPLE),
            // The day name is one, but not checked against the date.
            ("Mon, 06 Nov 1994 08:49:37 GMT", EXAMPLE),
            ("Thu, 01 Jan 1970 00:00:00 GMT", Some(0)),
            ("Wed, 31 Dec 1969 23:59:59 GMT", Some(-1)),
            ("Tue, 29 Feb 2000 00:00:00 GMT", Some(951_782_400)),
            ("Thu, 29 Feb 2024 12:34:56 GMT", Some(1_709_210_096)),
            ("Fri, 31 Dec 9999 23:59:59 GMT", Some(253_402_300_799)),
            ("Sat, 01 Jan 0000 00:00:00 GMT", Some(-62_167_219_200)),
            // Two-digit years: 00–69 are 20xx, 70–99 19xx (nginx's pivot).
            ("Thursday, 01-Jan-70 00:00:00 GMT", Some(0)),
            ("Thursday, 29-Feb-24 12:34:56 GMT", Some(1_709_210_096)),
            ("Wednesday, 31-Dec-69 00:00:00 GMT", Some(3_155_673_600)),
            // Days and times that do not exist.
            ("Thu, 29 Feb 2001 00:00:00 GMT", None),
            ("Thu, 31 Apr 2001 00:00:00 GMT", None),
            ("Thu, 00 Jan 2001 00:00:00 GMT", None),
            ("Thu, 32 Jan 2001 00:00:00 GMT", None),
            ("Thu, 01 Jan 2001 24:00:00 GMT", None),
            ("Thu, 01 Jan 2001 23:60:00 GMT", None),
            ("Thu, 01 Jan 2001 23:59:60 GMT", None),
            // Not the grammar.
            ("", None),
            ("0", None),
            ("784111777", None),
            ("sun, 06 nov 1994 08:49:37 gmt", None),
            ("Sun, 06 Nov 1994 08:49:37 UTC", None),
            ("Sun, 06 Nov 1994 08:49:37 GMT+1", None),
            ("Sun, 6 Nov 1994 08:49:37 GMT", None),
            ("Sun 06 Nov 1994 08:49:37 GMT", None),
            ("Sun, 06 Nov 94 08:49:37 GMT", None),
            ("Sun, 06 November 1994 08:49:37 GMT", None),
            ("Sun, 06 Nov 1994 8:49:37 GMT", None),
            ("Sun, 06 Nov 1994 08:49 GMT", None),
            ("Sun, 06 Nov 1994 08:49:37", None),
            ("Sun, +6 Nov 1994 08:49:37 GMT", None),
            ("Sun, 06-Nov-94 08:49:37 GMT", None),
            ("Sunday, 06 Nov 1994 08:49:37 GMT", None),
            ("Sun Nov 6 08:49:37 1994", None),
            ("Sun Nov  6 08:49:37 1994 GMT", None),
            ("\"Sun, 06 Nov 1994 08:49:37 GMT\"", None),
        ];
        for &(text, want) in table {
            assert_eq!(parse(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn written_dates_read_back() {
        for secs in (-62_167_219_200..253_402_300_800).step_by(86_400 * 365 + 3_607) {
            let text = imf_fixdate(secs).unwrap();
            assert_eq!(
                parse(&text),
                Some(secs),
                "{}",
                String::from_utf8_lossy(&text)
            );
        }
    }
}
