//! Conditional requests and ranges for a file (RFC 9110 §13 and §14): what
//! `If-None-Match`, `If-Modified-Since`, `Range` and `If-Range` make of its
//! answer — the whole file, one part of it, 304, or 416 — and the entity
//! tag they compare against.
//!
//! Where the RFC leaves room, nginx's choices: a malformed `bytes` range is
//! refused with 416; several ranges are not sent as multipart/byteranges
//! (nginx does), but the whole file with 200, as RFC 9110 §14.2 allows.

use std::ops::Range;

use super::{date, Found};

/// A file's entity tag, strong, in nginx's form: `"<mtime>-<size>"`, both
/// in lower-case hex (the mtime in whole seconds since the epoch; one
/// before it as its 64-bit two's complement).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ETag {
    bytes: [u8; ETag::MAX],
    len: u8,
}

impl ETag {
    /// Two quotes, two 16-digit hex numbers and the dash.
    const MAX: usize = 2 + 16 + 1 + 16;

    pub fn new(modified: i64, len: u64) -> ETag {
        use std::io::Write;
        let mut bytes = [0; ETag::MAX];
        let mut rest = &mut bytes[..];
        // Signed hex is the two's complement: -1 is "ffffffffffffffff".
        write!(rest, "\"{modified:x}-{len:x}\"").expect("MAX holds two 64-bit hex numbers");
        let len = (ETag::MAX - rest.len()) as u8;
        ETag { bytes, len }
    }

    /// The tag as sent, quotes included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// What a file's answer is, when it is not 416.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200: the whole file.
    Whole,
    /// 206: these bytes of it (never empty, within the file).
    Part(Range<u64>),
    /// 304: the client's copy is current; no body.
    NotModified,
}

impl Answer {
    pub fn status(&self) -> u16 {
        match self {
            Answer::Whole => 200,
            Answer::Part(_) => 206,
            Answer::NotModified => 304,
        }
    }

    /// The bytes of a file `len` long that follow the head (to a GET).
    pub fn bytes(&self, len: u64) -> Range<u64> {
        match self {
            Answer::Whole => 0..len,
            Answer::Part(part) => part.clone(),
            Answer::NotModified => 0..0,
        }
    }
}

/// 416 Range Not Satisfiable: the `Range` asks for nothing the file has
/// (or is malformed); the answer says `Content-Range: bytes */<size>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsatisfiable;

/// The answer to a GET or HEAD of `found` with these request fields,
/// evaluated in RFC 9110 §13.2.2's order: `If-None-Match` (weak
/// comparison; `*` matches any file), or when it is absent
/// `If-Modified-Since` (304 if the file is not newer; a date that does
/// not parse, or a repeated field, is ignored); then `Range`, honoured
/// only if `If-Range` (strong comparison, or the exact Last-Modified date)
/// holds. A HEAD gets the head a GET would (RFC 9110 §9.3.2), 206 and
/// 416 included, as nginx does.
pub fn answer(found: &Found, headers: &[httparse::Header<'_>]) -> Result<Answer, Unsatisfiable> {
    evaluate(found.len, found.modified, headers)
}

fn evaluate(
    len: u64,
    modified: Option<i64>,
    headers: &[httparse::Header<'_>],
) -> Result<Answer, Unsatisfiable> {
    let etag = modified.map(|m| ETag::new(m, len));
    let mut none_match = values(headers, "if-none-match").peekable();
    if none_match.peek().is_some() {
        if none_match.any(|list| lists(list, etag.as_ref())) {
            return Ok(Answer::NotModified);
        }
    } else if let Some(since) = single(headers, "if-modified-since").and_then(date::parse) {
        if modified.is_some_and(|m| m <= since) {
            return Ok(Answer::NotModified);
        }
    }
    let mut ranges = values(headers, "range");
    let (Some(range), None) = (ranges.next(), ranges.next()) else {
        // None, or a repeated field, which is no valid request for a range.
        return Ok(Answer::Whole);
    };
    // An empty file has no byte to range over: served whole (§14.2 lets a
    // server ignore Range), rather than 416 for all but a suffix range.
    if len == 0 {
        return Ok(Answer::Whole);
    }
    let mut if_range = values(headers, "if-range");
    match (if_range.next(), if_range.next()) {
        (None, _) => {}
        (Some(value), None) if holds(value, etag.as_ref(), modified) => {}
        _ => return Ok(Answer::Whole),
    }
    match ranged(range, len) {
        Ranged::Ignored | Ranged::Several => Ok(Answer::Whole),
        Ranged::One(part) => Ok(Answer::Part(part)),
        Ranged::Unsatisfiable => Err(Unsatisfiable),
    }
}

/// Every value of the field `name`, in order.
fn values<'a, 'h>(
    headers: &'h [httparse::Header<'a>],
    name: &'static str,
) -> impl Iterator<Item = &'a [u8]> + 'h {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// The value of a field that appears once.
fn single<'a>(headers: &[httparse::Header<'a>], name: &'static str) -> Option<&'a [u8]> {
    let mut found = values(headers, name);
    match (found.next(), found.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

/// Whether an `If-None-Match` value is `*` or lists `etag` (RFC 9110
/// §13.1.2), comparing weakly: `W/` is ignored on either side. A list
/// that breaks the grammar matches nothing (the file is sent in full).
fn lists(value: &[u8], etag: Option<&ETag>) -> bool {
    let mut rest = value.trim_ascii();
    if rest == b"*" {
        return true;
    }
    let Some(etag) = etag else {
        return false;
    };
    let mut hit = false;
    loop {
        rest = rest.trim_ascii_start();
        match rest.first() {
            None => return hit,
            Some(b',') => rest = &rest[1..],
            Some(_) => {
                let Some((opaque, after)) = entity_tag(rest) else {
                    return false;
                };
                hit |= opaque == etag.as_bytes();
                rest = after.trim_ascii_start();
                if !rest.is_empty() && rest[0] != b',' {
                    return false;
                }
            }
        }
    }
}

/// The opaque tag (quotes included) of the `[W/] DQUOTE *etagc DQUOTE`
/// at the front of `text`, and what follows it.
fn entity_tag(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let text = text.strip_prefix(b"W/").unwrap_or(text);
    let inner = text.strip_prefix(b"\"")?;
    let close = inner.iter().position(|&b| b == b'"')?;
    // etagc = %x21 / %x23-7E / obs-text: no control, space or DEL.
    if !inner[..close].iter().all(|&b| b > b' ' && b != 0x7f) {
        return None;
    }
    Some(text.split_at(close + 2))
}

/// Whether `If-Range` holds (RFC 9110 §13.1.5): an entity tag that
/// matches `etag` strongly (a weak one never does), or an HTTP-date equal
/// to the Last-Modified sent. Anything else does not: the file is sent
/// whole.
fn holds(value: &[u8], etag: Option<&ETag>, modified: Option<i64>) -> bool {
    let value = value.trim_ascii();
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return match (entity_tag(value), etag) {
            (Some((opaque, rest)), Some(etag)) => {
                !value.starts_with(b"W/") && rest.is_empty() && opaque == etag.as_bytes()
            }
            _ => false,
        };
    }
    date::parse(value).is_some_and(|date| Some(date) == modified)
}

/// What a `Range` value asks of a file.
#[derive(Debug, PartialEq, Eq)]
enum Ranged {
    /// Not a `bytes` range (another unit, or no `=`): serve the whole.
    Ignored,
    /// One satisfiable range: these bytes.
    One(Range<u64>),
    /// More than one satisfiable range: served whole, not as multipart.
    Several,
    /// No range the file satisfies, or one that breaks the grammar.
    Unsatisfiable,
}

/// Reads `bytes=<range-set>` (RFC 9110 §14.1.1, unit case-insensitive,
/// list elements separated by commas with optional whitespace): `a-b`
/// (b past the end means to the end), `a-` and `-n` (the last n bytes, all
/// of a shorter file). A range starting past the end, or `-0`, is
/// unsatisfiable and dropped from the set; `b < a`, or anything but those
/// forms, makes the whole field unsatisfiable, as in nginx. Positions too
/// large for 64 bits saturate, which keeps their meaning.
fn ranged(value: &[u8], len: u64) -> Ranged {
    debug_assert!(len > 0, "an empty file is served whole");
    let Some((unit, set)) = split_once(value.trim_ascii(), b'=') else {
        return Ranged::Ignored;
    };
    if !unit.eq_ignore_ascii_case(b"bytes") {
        return Ranged::Ignored;
    }
    let mut one = None;
    let mut count = 0usize;
    let mut any = false;
    for spec in set.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        if spec.is_empty() {
            continue;
        }
        any = true;
        let Some((first, last)) = split_once(spec, b'-') else {
            return Ranged::Unsatisfiable;
        };
        let part = match (number(first), number(last)) {
            (None, Some(suffix)) if first.is_empty() => {
                (suffix > 0).then(|| len.saturating_sub(suffix)..len)
            }
            (Some(first), None) if last.is_empty() => (first < len).then_some(first..len),
            (Some(first), Some(last)) if first <= last => {
                (first < len).then(|| first..last.saturating_add(1).min(len))
            }
            _ => return Ranged::Unsatisfiable,
        };
        if let Some(part) = part {
            count += 1;
            one = Some(part);
        }
    }
    match (count, one) {
        _ if !any => Ranged::Unsatisfiable,
        (1, Some(part)) => Ranged::One(part),
        (0, _) => Ranged::Unsatisfiable,
        _ => Ranged::Several,
    }
}

/// What comes before and after the first `byte`.
fn split_once(text: &[u8], byte: u8) -> Option<(&[u8], &[u8])> {
    let at = text.iter().position(|&b| b == byte)?;
    Some((&text[..at], &text[at + 1..]))
}

/// One or more decimal digits, saturating at `u64::MAX`.
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1994-11-06 08:49:37 UTC, RFC 9110's example date.
    const MTIME: i64 = 784_111_777;
    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const LEN: u64 = 1000;
    /// The tag of a file of LEN bytes modified at MTIME.
    const TAG: &str = "\"2ebc98a1-3e8\"";

    #[test]
    fn etags_in_nginx_form() {
        assert_eq!(ETag::new(MTIME, LEN).as_bytes(), TAG.as_bytes());
        assert_eq!(ETag::new(0, 0).as_bytes(), b"\"0-0\"");
        assert_eq!(
            ETag::new(-1, u64::MAX).as_bytes(),
            b"\"ffffffffffffffff-ffffffffffffffff\""
        );
        assert_eq!(
            ETag::new(i64::MAX, 1 << 20).as_bytes(),
            b"\"7fffffffffffffff-100000\""
        );
    }

    #[test]
    fn if_none_match_lists() {
        let etag = ETag::new(MTIME, LEN);
        let table: &[(&str, bool)] = &[
            ("*", true),
            (" * ", true),
            (TAG, true),
            ("W/\"2ebc98a1-3e8\"", true),
            ("\"a\", \"2ebc98a1-3e8\"", true),
            ("\"a\",W/\"2ebc98a1-3e8\" , \"b\"", true),
            (",\"2ebc98a1-3e8\",", true),
            ("\"2ebc98a1-3e8\", \"x,y\"", true),
            ("\"2ebc98a1-3e9\"", false),
            ("\"2EBC1BA1-3E8\"", false),
            ("2ebc98a1-3e8", false),
            ("\"a\", *", false),
            ("w/\"2ebc98a1-3e8\"", false),
            ("\"2ebc98a1-3e8", false),
            ("\"2ebc98a1-3e8\" \"b\"", false),
            ("\"2ebc98a1-3e8\", garbage", false),
            ("\"a b\", \"2ebc98a1-3e8\"", false),
            ("", false),
        ];
        for &(value, want) in table {
            assert_eq!(lists(value.as_bytes(), Some(&etag)), want, "{value:?}");
        }
        assert!(lists(b"*", None), "* matches a file without a tag");
        assert!(!lists(TAG.as_bytes(), None));
    }

    #[test]
    fn if_range_holds() {
        let etag = ETag::new(MTIME, LEN);
        let table: &[(&str, bool)] = &[
            (TAG, true),
            (DATE, true),
            ("Sunday, 06-Nov-94 08:49:37 GMT", true),
            ("W/\"2ebc98a1-3e8\"", false),
            ("\"2ebc98a1-3e9\"", false),
            ("\"2ebc98a1-3e8\", \"x\"", false),
            ("Sun, 06 Nov 1994 08:49:38 GMT", false),
            ("Sun, 06 Nov 1994 08:49:36 GMT", false),
            ("*", false),
            ("yesterday", false),
            ("", false),
        ];
        for &(value, want) in table {
            assert_eq!(
                holds(value.as_bytes(), Some(&etag), Some(MTIME)),
                want,
                "{value:?}"
            );
        }
        assert!(!holds(DATE.as_bytes(), None, None));
        assert!(!holds(TAG.as_bytes(), None, None));
    }

    #[test]
    fn ranges_parsed() {
        use Ranged::*;
        let table: &[(&str, Ranged)] = &[
            ("bytes=0-4", One(0..5)),
            ("bytes=0-0", One(0..1)),
            ("bytes=995-999", One(995..1000)),
            ("bytes=995-5000", One(995..1000)),
            ("bytes=995-", One(995..1000)),
            ("bytes=999-", One(999..1000)),
            ("bytes=0-", One(0..1000)),
            ("bytes=-3", One(997..1000)),
            ("bytes=-1000", One(0..1000)),
            ("bytes=-5000", One(0..1000)),
            ("bytes=0-99999999999999999999999", One(0..1000)),
            ("bytes=-99999999999999999999999", One(0..1000)),
            ("Bytes=0-4", One(0..5)),
            ("BYTES=0-4", One(0..5)),
            (" bytes=0-4 ", One(0..5)),
            ("bytes= 0-4", One(0..5)),
            ("bytes=0-4 ,", One(0..5)),
            ("bytes=, 0-4", One(0..5)),
            // Unsatisfiable ranges are dropped; one left is served.
            ("bytes=1000-2000, 0-4", One(0..5)),
            ("bytes=-0, 10-19", One(10..20)),
            // Several: the whole file.
            ("bytes=0-1,5-6", Several),
            ("bytes=0-4, -3", Several),
            ("bytes=0-499,0-499", Several),
            // Nothing the file has.
            ("bytes=1000-", Unsatisfiable),
            ("bytes=1000-1000", Unsatisfiable),
            ("bytes=100000-", Unsatisfiable),
            ("bytes=99999999999999999999999-", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=1000-2000,3000-", Unsatisfiable),
            // Malformed bytes ranges: 416, as nginx answers.
            ("bytes=500-100", Unsatisfiable),
            ("bytes=0-4,500-100", Unsatisfiable),
            ("bytes=", Unsatisfiable),
            ("bytes=,", Unsatisfiable),
            ("bytes=-", Unsatisfiable),
            ("bytes=abc", Unsatisfiable),
            ("bytes=0-4-", Unsatisfiable),
            ("bytes=0 - 4", Unsatisfiable),
            ("bytes=+0-4", Unsatisfiable),
            ("bytes=0x10-", Unsatisfiable),
            ("bytes=1-2;3", Unsatisfiable),
            // Not a bytes range: ignored.
            ("items=0-4", Ignored),
            ("bytes 0-4", Ignored),
            ("bytes0-4", Ignored),
            ("=0-4", Ignored),
            ("", Ignored),
        ];
        for (value, want) in table {
            assert_eq!(&ranged(value.as_bytes(), LEN), want, "{value:?}");
        }
        assert_eq!(ranged(b"bytes=-3", 2), Ranged::One(0..2));
        assert_eq!(ranged(b"bytes=0-", 1), Ranged::One(0..1));
        assert_eq!(ranged(b"bytes=1-", 1), Ranged::Unsatisfiable);
    }

    #[test]
    fn answers() {
        use Answer::*;
        const LATER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";
        const EARLIER: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
        const OTHER: &str = "\"0-0\"";
        type Fields = &'static [(&'static str, &'static str)];
        let table: &[(Fields, Result<Answer, Unsatisfiable>)] = &[
            (&[], Ok(Whole)),
            (&[("Host", "x")], Ok(Whole)),
            // If-None-Match, weakly compared, over one line or several.
            (&[("If-None-Match", TAG)], Ok(NotModified)),
            (&[("if-none-match", "W/\"2ebc98a1-3e8\"")], Ok(NotModified)),
            (&[("If-None-Match", "*")], Ok(NotModified)),
            (&[("If-None-Match", OTHER)], Ok(Whole)),
            (
                &[("If-None-Match", OTHER), ("If-None-Match", TAG)],
                Ok(NotModified),
            ),
            // If-Modified-Since: 304 unless the file is newer.
            (&[("If-Modified-Since", DATE)], Ok(NotModified)),
            (&[("If-Modified-Since", LATER)], Ok(NotModified)),
            (&[("If-Modified-Since", EARLIER)], Ok(Whole)),
            (
                &[("If-Modified-Since", "Sun Nov  6 08:49:37 1994")],
                Ok(NotModified),
            ),
            (&[("If-Modified-Since", "yesterday")], Ok(Whole)),
            (
                &[("If-Modified-Since", DATE), ("If-Modified-Since", DATE)],
                Ok(Whole),
            ),
            // If-None-Match, when present, decides alone.
            (
                &[("If-None-Match", OTHER), ("If-Modified-Since", LATER)],
                Ok(Whole),
            ),
            (
                &[("If-Modified-Since", EARLIER), ("If-None-Match", TAG)],
                Ok(NotModified),
            ),
            // Preconditions before the range.
            (
                &[("If-None-Match", TAG), ("Range", "bytes=5000-")],
                Ok(NotModified),
            ),
            (
                &[("If-Modified-Since", EARLIER), ("Range", "bytes=0-4")],
                Ok(Part(0..5)),
            ),
            // Ranges.
            (&[("Range", "bytes=0-4")], Ok(Part(0..5))),
            (&[("Range", "bytes=-3")], Ok(Part(997..1000))),
            (&[("Range", "bytes=100-")], Ok(Part(100..1000))),
            (&[("Range", "bytes=1000-")], Err(Unsatisfiable)),
            (&[("Range", "bytes=500-100")], Err(Unsatisfiable)),
            (&[("Range", "bytes=0-1,5-6")], Ok(Whole)),
            (&[("Range", "pages=1")], Ok(Whole)),
            (&[("Range", "bytes=0-4"), ("Range", "bytes=5-9")], Ok(Whole)),
            // If-Range gates the range.
            (&[("Range", "bytes=0-4"), ("If-Range", TAG)], Ok(Part(0..5))),
            (
                &[("Range", "bytes=0-4"), ("If-Range", DATE)],
                Ok(Part(0..5)),
            ),
            (&[("Range", "bytes=0-4"), ("If-Range", OTHER)], Ok(Whole)),
            (&[("Range", "bytes=0-4"), ("If-Range", LATER)], Ok(Whole)),
            (
                &[("Range", "bytes=0-4"), ("If-Range", "W/\"2ebc98a1-3e8\"")],
                Ok(Whole),
            ),
            (
                &[("Range", "bytes=0-4"), ("If-Range", TAG), ("If-Range", TAG)],
                Ok(Whole),
            ),
            (&[("Range", "bytes=1000-"), ("If-Range", OTHER)], Ok(Whole)),
            (&[("If-Range", TAG)], Ok(Whole)),
        ];
        for (fields, want) in table {
            let headers: Vec<_> = fields
                .iter()
                .map(|&(name, value)| httparse::Header {
                    name,
                    value: value.as_bytes(),
                })
                .collect();
            assert_eq!(&evaluate(LEN, Some(MTIME), &headers), want, "{fields:?}");
        }
        // Without a modification time there is no tag and no date to
        // compare, but `*` still matches the file that exists.
        let header = |name, value: &'static str| httparse::Header {
            name,
            value: value.as_bytes(),
        };
        assert_eq!(
            evaluate(LEN, None, &[header("If-None-Match", TAG)]),
            Ok(Whole)
        );
        assert_eq!(
            evaluate(LEN, None, &[header("If-None-Match", "*")]),
            Ok(NotModified)
        );
        assert_eq!(
            evaluate(LEN, None, &[header("If-Modified-Since", DATE)]),
            Ok(Whole)
        );
        // An empty file is served whole, whatever the range.
        for range in ["bytes=0-", "bytes=-5", "bytes=5-"] {
            assert_eq!(
                evaluate(0, Some(MTIME), &[header("Range", range)]),
                Ok(Whole)
            );
        }
        assert_eq!(Part(5..10).status(), 206);
        assert_eq!(Part(5..10).bytes(LEN), 5..10);
        assert_eq!(Whole.bytes(LEN), 0..LEN);
        assert_eq!(NotModified.bytes(LEN), 0..0);
    }
}
