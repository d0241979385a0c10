//! The proxy's own HTTP answers: every refusal is a status line, a short
//! plain-text body that says what was wrong, and whether the connection
//! stays open; never a silent close.

use crate::buffer::{Buf, Full};
use crate::handshake::edits::ResponseEdits;
use crate::handshake::fields::Persistence;

/// The statuses the proxy answers with itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    RangeNotSatisfiable,
    UpgradeRequired,
    TooManyRequests,
    HeaderTooLarge,
    BadGateway,
    ServiceUnavailable,
    GatewayTimeout,
}

impl Status {
    /// The statuses a route may answer every request with (nginx's
    /// `return 404`), by code.
    pub const ROUTE_ANSWERS: [Status; 7] = [
        Status::BadRequest,
        Status::Forbidden,
        Status::NotFound,
        Status::MethodNotAllowed,
        Status::TooManyRequests,
        Status::ServiceUnavailable,
        Status::BadGateway,
    ];

    /// The route answer with `code`, if it is one.
    pub fn route_answer(code: u16) -> Option<Status> {
        Status::ROUTE_ANSWERS.into_iter().find(|s| s.code() == code)
    }

    pub fn code(self) -> u16 {
        match self {
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::RangeNotSatisfiable => 416,
            Status::UpgradeRequired => 426,
            Status::TooManyRequests => 429,
            Status::HeaderTooLarge => 431,
            Status::ServiceUnavailable => 503,
            Status::BadGateway => 502,
            Status::GatewayTimeout => 504,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Status::BadRequest => "Bad Request",
            Status::Forbidden => "Forbidden",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::RangeNotSatisfiable => "Range Not Satisfiable",
            Status::UpgradeRequired => "Upgrade Required",
            Status::TooManyRequests => "Too Many Requests",
            Status::HeaderTooLarge => "Request Header Fields Too Large",
            Status::ServiceUnavailable => "Service Unavailable",
            Status::BadGateway => "Bad Gateway",
            Status::GatewayTimeout => "Gateway Timeout",
        }
    }

    /// Headers this status needs beyond the common ones.
    fn extra_headers(self) -> &'static str {
        match self {
            Status::MethodNotAllowed => "Allow: GET, HEAD\r\n",
            // RFC 6455 §4.4: a server that does not speak the requested
            // version answers with the versions it does speak.
            Status::UpgradeRequired => "Sec-WebSocket-Version: 13\r\n",
            // Spread reconnects out rather than invite an immediate retry.
            Status::TooManyRequests | Status::ServiceUnavailable => "Retry-After: 5\r\n",
            _ => "",
        }
    }
}

/// A refusal: the status to answer and why, for the body and the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reject {
    pub status: Status,
    pub why: &'static str,
}

impl Reject {
    pub const fn new(status: Status, why: &'static str) -> Reject {
        Reject { status, why }
    }
}

/// Writes the full answer for `reject` into `out`, with the fields `edits`
/// add to every answer (`always`, such as HSTS), and what `persistence`
/// says of the connection.
pub fn write(
    out: &mut Buf,
    reject: Reject,
    edits: &ResponseEdits,
    persistence: Persistence,
) -> Result<(), Full> {
    write_head(out, reject, b"", edits, persistence)?;
    write_body(out, reject)
}

/// The head of [`write`]'s answer, with `fields` (whole lines, CRLF
/// included) that depend on the request, such as a 416's `Content-Range`.
/// Its Content-Length counts the body [`write_body`] writes, which an
/// answer to HEAD leaves out (RFC 9110 §9.3.2).
pub fn write_head(
    out: &mut Buf,
    reject: Reject,
    fields: &[u8],
    edits: &ResponseEdits,
    persistence: Persistence,
) -> Result<(), Full> {
    let code = u64::from(reject.status.code());
    out.put(b"HTTP/1.1 ")?;
    out.put_decimal(code)?;
    out.put(b" ")?;
    out.put(reject.status.reason().as_bytes())?;
    out.put(b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ")?;
    out.put_decimal(body_len(reject) as u64)?;
    out.put(b"\r\n")?;
    out.put(persistence.line())?;
    out.put(reject.status.extra_headers().as_bytes())?;
    out.put(fields)?;
    edits.write_added(out, reject.status.code())?;
    out.put(b"\r\n")
}

/// The body of [`write`]'s answer: "400 Bad Request: <why>\n".
pub fn write_body(out: &mut Buf, reject: Reject) -> Result<(), Full> {
    out.put_decimal(u64::from(reject.status.code()))?;
    out.put(b" ")?;
    out.put(reject.status.reason().as_bytes())?;
    out.put(b": ")?;
    out.put(reject.why.as_bytes())?;
    out.put(b"\n")
}

fn body_len(reject: Reject) -> usize {
    3 + 1 + reject.status.reason().len() + 2 + reject.why.len() + 1
}

/// Writes a `308 Permanent Redirect` to `location` (the scheme, host and
/// request target; 308 keeps the method, unlike 301).
pub fn write_redirect(
    out: &mut Buf,
    location: &[&[u8]],
    persistence: Persistence,
) -> Result<(), Full> {
    write_redirect_with(out, 308, location, persistence)
}

/// A redirect answer with `status` (301, 302, 303, 307 or 308).
pub fn write_redirect_with(
    out: &mut Buf,
    status: u16,
    location: &[&[u8]],
    persistence: Persistence,
) -> Result<(), Full> {
    let reason: &[u8] = match status {
        301 => b"301 Moved Permanently",
        302 => b"302 Found",
        303 => b"303 See Other",
        307 => b"307 Temporary Redirect",
        _ => b"308 Permanent Redirect",
    };
    debug_assert!(reason.starts_with(status.to_string().as_bytes()));
    out.put(b"HTTP/1.1 ")?;
    out.put(reason)?;
    out.put(b"\r\nLocation: ")?;
    for part in location {
        out.put(part)?;
    }
    out.put(b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ")?;
    out.put_decimal(reason.len() as u64 + 1)?;
    out.put(b"\r\n")?;
    out.put(persistence.line())?;
    out.put(b"\r\n")?;
    out.put(reason)?;
    out.put(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(reject: Reject) -> String {
        let mut out = Buf::with_capacity(1024);
        write(
            &mut out,
            reject,
            &ResponseEdits::default(),
            Persistence::Close,
        )
        .unwrap();
        String::from_utf8(out.data().to_vec()).unwrap()
    }

    #[test]
    fn answers_are_complete_http_responses() {
        let text = render(Reject::new(Status::BadRequest, "missing Sec-WebSocket-Key"));
        assert_eq!(
            text,
            "HTTP/1.1 400 Bad Request\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 43\r\n\
             Connection: close\r\n\r\n\
             400 Bad Request: missing Sec-WebSocket-Key\n"
        );
        for status in [
            Status::BadRequest,
            Status::Forbidden,
            Status::NotFound,
            Status::MethodNotAllowed,
            Status::RequestTimeout,
            Status::RangeNotSatisfiable,
            Status::UpgradeRequired,
            Status::TooManyRequests,
            Status::HeaderTooLarge,
            Status::BadGateway,
            Status::ServiceUnavailable,
            Status::GatewayTimeout,
        ] {
            let text = render(Reject::new(status, "why"));
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let declared: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(declared, body.len(), "{status:?}");
            assert!(head.starts_with(&format!("HTTP/1.1 {} ", status.code())));
        }
        assert!(render(Reject::new(Status::UpgradeRequired, "x"))
            .contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(render(Reject::new(Status::MethodNotAllowed, "x")).contains("Allow: GET, HEAD\r\n"));
    }

    #[test]
    fn always_fields_and_redirects() {
        let mut edits = ResponseEdits::default();
        edits
            .add("Strict-Transport-Security", "max-age=1", true)
            .unwrap();
        edits.add("X-Only-On-Success", "1", false).unwrap();
        let mut out = Buf::with_capacity(1024);
        write(
            &mut out,
            Reject::new(Status::NotFound, "no route"),
            &edits,
            Persistence::Close,
        )
        .unwrap();
        let text = String::from_utf8(out.data().to_vec()).unwrap();
        assert!(text.contains("\r\nStrict-Transport-Security: max-age=1\r\n"));
        assert!(!text.contains("X-Only-On-Success"));

        let mut out = Buf::with_capacity(1024);
        write_redirect(
            &mut out,
            &[b"https://", b"example.com", b"/a?b=1"],
            Persistence::Close,
        )
        .unwrap();
        let text = String::from_utf8(out.data().to_vec()).unwrap();
        assert!(text.starts_with(
            "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://example.com/a?b=1\r\n"
        ));
        assert!(text.ends_with("\r\n\r\n308 Permanent Redirect\n"));

        for (status, line) in [
            (301, "301 Moved Permanently"),
            (302, "302 Found"),
            (303, "303 See Other"),
            (307, "307 Temporary Redirect"),
        ] {
            let mut out = Buf::with_capacity(1024);
            write_redirect_with(&mut out, status, &[b"/x"], Persistence::Persistent).unwrap();
            let text = String::from_utf8(out.data().to_vec()).unwrap();
            assert!(
                text.starts_with(&format!("HTTP/1.1 {line}\r\nLocation: /x\r\n")),
                "{text}"
            );
            let length = format!("Content-Length: {}\r\n", line.len() + 1);
            assert!(text.contains(&length), "{text}");
            assert!(text.ends_with(&format!("\r\n\r\n{line}\n")), "{text}");
        }
    }

    #[test]
    fn request_fields_and_a_body_apart() {
        let mut edits = ResponseEdits::default();
        edits.add("X-Always", "1", true).unwrap();
        let mut out = Buf::with_capacity(1024);
        let reject = Reject::new(Status::RangeNotSatisfiable, "no such byte");
        let range = b"Content-Range: bytes */1000\r\n";
        write_head(&mut out, reject, range, &edits, Persistence::Persistent).unwrap();
        write_body(&mut out, reject).unwrap();
        assert_eq!(
            std::str::from_utf8(out.data()).unwrap(),
            "HTTP/1.1 416 Range Not Satisfiable\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 40\r\n\
             Content-Range: bytes */1000\r\n\
             X-Always: 1\r\n\r\n\
             416 Range Not Satisfiable: no such byte\n"
        );
    }

    #[test]
    fn does_not_overflow_a_small_buffer() {
        let mut out = Buf::with_capacity(20);
        assert_eq!(
            write(
                &mut out,
                Reject::new(Status::BadGateway, "x"),
                &ResponseEdits::default(),
                Persistence::Close
            ),
            Err(Full)
        );
    }
}
