//! HTTP-dates (RFC 9110 §5.6.7): writing the IMF-fixdate of a file's
//! modification time.

use std::time::{SystemTime, UNIX_EPOCH};

/// `time` as an IMF-fixdate (RFC 9110 §5.6.7), e.g. "Sun, 06 Nov 1994
/// 08:49:37 GMT"; `None` outside years 0000–9999, which it cannot write.
pub(super) fn http_date(time: SystemTime) -> Option<[u8; 29]> {
    let secs = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok()?,
        Err(before) => {
            // Round towards the past: 0.5 s before the epoch is 23:59:59.
            let d = before.duration();
            let whole = i64::try_from(d.as_secs()).ok()?;
            -whole - i64::from(d.subsec_nanos() > 0)
        }
    };
    imf_fixdate(secs)
}

/// Seconds since the Unix epoch as an IMF-fixdate.
fn imf_fixdate(secs: i64) -> Option<[u8; 29]> {
    const DAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
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
        assert_eq!(
            &http_date(before).unwrap(),
            b"Wed, 31 Dec 1969 23:59:59 GMT"
        );
        let after = UNIX_EPOCH + Duration::new(784_111_777, 999_999_999);
        assert_eq!(&http_date(after).unwrap(), b"Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
