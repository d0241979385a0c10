//! Log lines on stderr: `2026-11-21T14:05:09.123Z WARN  w1: message`.
//! One `write` per line, so lines from different workers never interleave.
//! The level is process-wide and set once at startup.

use std::cell::Cell;
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

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
    use std::time::Duration;

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
    fn levels_nest() {
        assert!(Level::Error < Level::Debug);
        set_level(Level::Warn);
        assert!(enabled(Level::Error) && enabled(Level::Warn));
        assert!(!enabled(Level::Info));
        set_level(Level::Info);
    }
}
