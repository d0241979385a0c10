//! Log lines on stderr: `2026-11-21T14:05:09.123Z WARN  w1: message`.
//! One `write` per line, so lines from different workers never interleave.
//! The level is process-wide and set once at startup. Counts and durations
//! in lines are written for people: [`count`] ("1 listener", "2
//! listeners") and [`Rounded`] ("250ms", "1.5s", "20s", "1h30m").

use std::cell::Cell;
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How much to log; each level includes the ones above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Level {
    /// Failures of the proxy itself.
    Error = 0,
    /// Upstream failures (5xx answers, refused connects).
    Warn = 1,
    /// Startup, shutdown and client errors (4xx answers).
    Info = 2,
    /// Every connection's open and close.
    Debug = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

thread_local! {
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Names the calling thread as worker `id` in its log lines.
pub fn set_worker(id: usize) {
    WORKER.with(|w| w.set(Some(id)));
}

/// Writes one line; use the macros, which skip formatting when disabled.
pub fn write(level: Level, args: fmt::Arguments<'_>) {
    let label = match level {
        Level::Error => "ERROR",
        Level::Warn => "WARN ",
        Level::Info => "INFO ",
        Level::Debug => "DEBUG",
    };
    let line = match WORKER.with(Cell::get) {
        Some(id) => format!("{} {label} w{id}: {args}\n", Timestamp::now()),
        None => format!("{} {label} main: {args}\n", Timestamp::now()),
    };
    // Logging must never take the proxy down: a closed stderr loses lines.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `n` and `noun`, made plural unless `n` is 1: "1 listener", "3 routes".
pub fn count(n: usize, noun: &'static str) -> Count {
    Count { n, noun }
}

/// See [`count`].
#[derive(Debug)]
pub struct Count {
    n: usize,
    noun: &'static str,
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.n == 1 { "" } else { "s" };
        write!(f, "{} {}{s}", self.n, self.noun)
    }
}

/// A duration for people: three significant digits under a minute
/// ("400µs", "250ms", "1.5s", "20s" for 19.9996 s), whole hours, minutes
/// and seconds from a minute up ("1m30s", "1h").
#[derive(Debug)]
pub struct Rounded(pub Duration);

impl fmt::Display for Rounded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs_f64();
        if secs == 0.0 {
            return f.write_str("0s");
        }
        // Each unit's figure, unless rounding carried it into the next.
        if secs < 1e-3 {
            let micros = significant(secs * 1e6);
            if micros != "1000" {
                return write!(f, "{micros}µs");
            }
        }
        if secs < 1.0 {
            let millis = significant(secs * 1e3);
            if millis != "1000" {
                return write!(f, "{millis}ms");
            }
        }
        if secs < 60.0 {
            let seconds = significant(secs);
            if seconds != "60" {
                return write!(f, "{seconds}s");
            }
        }
        let total = self.0.as_secs() + u64::from(self.0.subsec_millis() >= 500);
        let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
        for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

/// `x` (positive) to three significant digits, trailing zeros dropped:
/// 19.9996 → "20", 1.5 → "1.5", 250.4 → "250".
fn significant(x: f64) -> String {
    let decimals = (2 - x.log10().floor() as i32).max(0) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// UTC wall-clock time, RFC 3339 with milliseconds.
#[derive(Debug)]
pub struct Timestamp(std::time::Duration);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let (year, month, day) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60,
            self.0.subsec_millis()
        )
    }
}

/// Days since 1970-01-01 to (year, month, day), from Howard Hinnant's
/// `civil_from_days` (public domain).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Error) {
            $crate::log::write($crate::log::Level::Error, format_args!($($arg)*))
        }
    };
}

#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Warn) {
            $crate::log::write($crate::log::Level::Warn, format_args!($($arg)*))
        }
    };
}

#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Info) {
            $crate::log::write($crate::log::Level::Info, format_args!($($arg)*))
        }
    };
}

#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Debug) {
            $crate::log::write($crate::log::Level::Debug, format_args!($($arg)*))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_rfc3339() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_500, "2000-02-29T00:00:00.500Z"),
            (1_795_273_509_123, "2026-11-21T15:05:09.123Z"),
        ];
        for (millis, want) in cases {
            assert_eq!(Timestamp(Duration::from_millis(millis)).to_string(), want);
        }
    }

    #[test]
    fn counts_are_plural_unless_one() {
        assert_eq!(count(0, "site").to_string(), "0 sites");
        assert_eq!(count(1, "listener").to_string(), "1 listener");
        assert_eq!(count(2, "upstream group").to_string(), "2 upstream groups");
    }

    #[test]
    fn durations_are_rounded_for_people() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(400_400), "400µs"),
            (Duration::from_nanos(999_999), "1ms"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(12_345), "12.3ms"),
            (Duration::from_micros(999_900), "1s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_secs(5), "5s"),
            (Duration::from_nanos(19_999_625_167), "20s"),
            (Duration::from_millis(59_990), "1m"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3_600), "1h"),
            (Duration::from_secs(86_400), "24h"),
            (Duration::from_millis(5_400_400), "1h30m"),
            (Duration::from_secs(3_605), "1h5s"),
        ];
        for (d, want) in cases {
            assert_eq!(Rounded(d).to_string(), want, "{d:?}");
        }
    }

    #[test]
    fn levels_nest() {
        assert!(Level::Error < Level::Debug);
        set_level(Level::Warn);
        assert!(enabled(Level::Error) && enabled(Level::Warn));
        assert!(!enabled(Level::Info));
        set_level(Level::Info);
    }
}
