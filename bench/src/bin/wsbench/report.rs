//! Results of a load run: latency histograms (microseconds), per-kind
//! connection error counts, and the two output forms, a one-line summary
//! for people and a JSON object for scripts.

use std::fmt::{self, Write as _};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::load::conn::ConnError;
use crate::tls::TlsTally;

/// Highest latency the histograms hold, in microseconds (1 hour); larger
/// values are clamped to it.
const LATENCY_MAX_US: u64 = 3_600_000_000;

/// Significant decimal digits kept by the histograms (0.1% resolution).
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Latency {
        let histogram = Histogram::new_with_bounds(1, LATENCY_MAX_US, LATENCY_SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        Latency { histogram }
    }
}

impl Latency {
    /// Records one sample; sub-microsecond samples count as 1 µs.
    pub fn record(&mut self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(micros.max(1));
    }

    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The largest sample in milliseconds (0 without samples).
    pub fn max_ms(&self) -> f64 {
        self.histogram.max() as f64 / 1000.0
    }

    fn quantile(&self, q: f64) -> u64 {
        if self.histogram.is_empty() {
            0
        } else {
            self.histogram.value_at_quantile(q)
        }
    }

    /// `{"count":..,"p50_us":..,"p99_us":..,"p999_us":..,"max_us":..,"mean_us":..}`
    pub fn json(&self) -> String {
        Json::new()
            .uint("count", self.count())
            .uint("p50_us", self.quantile(0.5))
            .uint("p99_us", self.quantile(0.99))
            .uint("p999_us", self.quantile(0.999))
            .uint("max_us", self.histogram.max())
            .float("mean_us", self.histogram.mean())
            .finish()
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {} us, p99 {} us, p99.9 {} us, max {} us",
            self.quantile(0.5),
            self.quantile(0.99),
            self.quantile(0.999),
            self.histogram.max()
        )
    }
}

/// Connection errors by kind, and the first one in words.
#[derive(Debug, Clone, Default)]
pub struct Errors {
    pub connect: u64,
    pub handshake: u64,
    pub tls: u64,
    pub io: u64,
    pub protocol: u64,
    pub closed: u64,
    pub timeout: u64,
    pub first: Option<String>,
}

impl Errors {
    pub fn record(&mut self, err: &ConnError) {
        let counter = match err {
            ConnError::Connect(_) => &mut self.connect,
            ConnError::Handshake(_) => &mut self.handshake,
            ConnError::Tls(_) => &mut self.tls,
            ConnError::Io(_) => &mut self.io,
            ConnError::Protocol(_) => &mut self.protocol,
            ConnError::Closed(_) => &mut self.closed,
            ConnError::Timeout(_) => &mut self.timeout,
        };
        *counter += 1;
        if self.first.is_none() {
            self.first = Some(err.to_string());
        }
    }

    pub fn merge(&mut self, other: &Errors) {
        self.connect += other.connect;
        self.handshake += other.handshake;
        self.tls += other.tls;
        self.io += other.io;
        self.protocol += other.protocol;
        self.closed += other.closed;
        self.timeout += other.timeout;
        if self.first.is_none() {
            self.first.clone_from(&other.first);
        }
    }

    pub fn total(&self) -> u64 {
        self.connect
            + self.handshake
            + self.tls
            + self.io
            + self.protocol
            + self.closed
            + self.timeout
    }

    pub fn json(&self) -> String {
        Json::new()
            .uint("total", self.total())
            .uint("connect", self.connect)
            .uint("handshake", self.handshake)
            .uint("tls", self.tls)
            .uint("io", self.io)
            .uint("protocol", self.protocol)
            .uint("closed", self.closed)
            .uint("timeout", self.timeout)
            .opt_str("first", self.first.as_deref())
            .finish()
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "errors {}", self.total())?;
        if let Some(first) = &self.first {
            write!(f, " (first: {first})")?;
        }
        Ok(())
    }
}

/// What every load mode checks besides latency: echoes that differ from what
/// was sent (counted, the first one kept in words), connection errors, and
/// for wss:// what the TLS handshakes negotiated.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    pub mismatches: u64,
    pub first_mismatch: Option<String>,
    pub errors: Errors,
    pub tls: TlsTally,
}

impl Checks {
    pub fn mismatch(&mut self, mismatch: &impl fmt::Display) {
        self.mismatches += 1;
        if self.first_mismatch.is_none() {
            self.first_mismatch = Some(mismatch.to_string());
        }
    }

    pub fn merge(&mut self, other: &Checks) {
        self.mismatches += other.mismatches;
        if self.first_mismatch.is_none() {
            self.first_mismatch.clone_from(&other.first_mismatch);
        }
        self.errors.merge(&other.errors);
        self.tls.merge(&other.tls);
    }

    /// No connection error and no mismatch.
    pub fn clean(&self) -> bool {
        self.errors.total() == 0 && self.mismatches == 0
    }

    /// Appends `mismatches`, `first_mismatch`, `errors` and `tls` to `json`.
    pub fn json(&self, json: Json) -> Json {
        json.uint("mismatches", self.mismatches)
            .opt_str("first_mismatch", self.first_mismatch.as_deref())
            .raw("errors", &self.errors.json())
            .raw("tls", &self.tls.json())
    }
}

/// What a load mode hands back to `main`.
#[derive(Debug)]
pub struct Outcome {
    /// One line for people.
    pub summary: String,
    /// One JSON object for scripts.
    pub json: String,
    /// Whether the run was clean (exit status 0).
    pub ok: bool,
}

/// A hand-written JSON object builder; keys are fixed identifiers.
#[derive(Debug)]
pub struct Json {
    text: String,
}

impl Json {
    pub fn new() -> Json {
        Json {
            text: String::from("{"),
        }
    }

    fn key(&mut self, key: &str) {
        if self.text.len() > 1 {
            self.text.push(',');
        }
        push_string(&mut self.text, key);
        self.text.push(':');
    }

    pub fn str(mut self, key: &str, value: &str) -> Json {
        self.key(key);
        push_string(&mut self.text, value);
        self
    }

    pub fn opt_str(mut self, key: &str, value: Option<&str>) -> Json {
        match value {
            Some(value) => self.str(key, value),
            None => {
                self.key(key);
                self.text.push_str("null");
                self
            }
        }
    }

    pub fn uint(mut self, key: &str, value: u64) -> Json {
        self.key(key);
        let _ = write!(self.text, "{value}");
        self
    }

    /// Finite values with 3 decimals; NaN and infinities become `null`.
    pub fn float(mut self, key: &str, value: f64) -> Json {
        self.key(key);
        if value.is_finite() {
            let _ = write!(self.text, "{value:.3}");
        } else {
            self.text.push_str("null");
        }
        self
    }

    pub fn bool(mut self, key: &str, value: bool) -> Json {
        self.key(key);
        self.text.push_str(if value { "true" } else { "false" });
        self
    }

    /// Inserts an already-built JSON value.
    pub fn raw(mut self, key: &str, json: &str) -> Json {
        self.key(key);
        self.text.push_str(json);
        self
    }

    pub fn finish(mut self) -> String {
        self.text.push('}');
        self.text
    }
}

/// A JSON array of strings.
pub fn string_array(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_string(&mut out, item);
    }
    out.push(']');
    out
}

/// Appends `value` as a JSON string literal (RFC 8259 §7).
fn push_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Events per second over `elapsed`.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_object() {
        let json = Json::new()
            .str("mode", "echo \"quoted\"\n")
            .uint("n", 3)
            .float("rate", 1.5)
            .float("nan", f64::NAN)
            .bool("ok", true)
            .opt_str("none", None)
            .raw("nested", &Json::new().uint("a", 1).finish())
            .finish();
        assert_eq!(
            json,
            r#"{"mode":"echo \"quoted\"\n","n":3,"rate":1.500,"nan":null,"ok":true,"none":null,"nested":{"a":1}}"#
        );
        assert_eq!(push_control(), r#""\u0001""#);
    }

    fn push_control() -> String {
        let mut out = String::new();
        push_string(&mut out, "\u{1}");
        out
    }

    #[test]
    fn checks_keep_the_first_mismatch() {
        let mut a = Checks::default();
        a.mismatch(&"first");
        a.mismatch(&"second");
        let mut b = Checks::default();
        b.mismatch(&"other");
        b.errors.record(&ConnError::Closed("EOF"));
        a.merge(&b);
        assert_eq!(a.mismatches, 3);
        assert_eq!(a.first_mismatch.as_deref(), Some("first"));
        assert_eq!(a.errors.total(), 1);
        assert!(!a.clean());
        assert!(Checks::default().clean());
        assert_eq!(
            Checks::default().json(Json::new()).finish(),
            r#"{"mismatches":0,"first_mismatch":null,"errors":{"total":0,"connect":0,"handshake":0,"tls":0,"io":0,"protocol":0,"closed":0,"timeout":0,"first":null},"tls":null}"#
        );
    }

    #[test]
    fn latency_quantiles() {
        let mut a = Latency::default();
        for micros in 1..=1000 {
            a.record(Duration::from_micros(micros));
        }
        let mut b = Latency::default();
        b.record(Duration::from_nanos(10));
        a.merge(&b);
        assert_eq!(a.count(), 1001);
        assert_eq!(a.quantile(0.5), 500);
        assert_eq!(a.histogram.max(), 1000);
        assert!(a.json().starts_with(r#"{"count":1001,"p50_us":500,"#));
        assert_eq!(Latency::default().quantile(0.99), 0);
    }
}
