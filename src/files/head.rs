//! A file's response head: its Content-Type by extension, and the status
//! line and fields of a 200, 206 or 304 for it.

use super::date::imf_fixdate;
use super::{Answer, ETag, Found};
use crate::buffer::{Buf, Full};
use std::ffi::OsStr;
use std::path::Path;

/// Content-Type by extension (case-insensitive): html/htm "text/html;
/// charset=utf-8", css, js/mjs "text/javascript; charset=utf-8", json, map,
/// txt "text/plain; charset=utf-8", svg, png, jpg/jpeg, gif, webp, avif,
/// ico, wasm "application/wasm", woff, woff2, ttf, otf, xml, pdf, mp4, webm,
/// mp3, ogg, csv, md; anything else "application/octet-stream".
pub fn content_type(path: &Path) -> &'static str {
    const TYPES: [(&str, &str); 29] = [
        ("html", "text/html; charset=utf-8"),
        ("htm", "text/html; charset=utf-8"),
        ("css", "text/css; charset=utf-8"),
        ("js", "text/javascript; charset=utf-8"),
        ("mjs", "text/javascript; charset=utf-8"),
        ("json", "application/json"),
        ("map", "application/json"),
        ("txt", "text/plain; charset=utf-8"),
        ("svg", "image/svg+xml"),
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("gif", "image/gif"),
        ("webp", "image/webp"),
        ("avif", "image/avif"),
        ("ico", "image/x-icon"),
        ("wasm", "application/wasm"),
        ("woff", "font/woff"),
        ("woff2", "font/woff2"),
        ("ttf", "font/ttf"),
        ("otf", "font/otf"),
        ("xml", "application/xml"),
        ("pdf", "application/pdf"),
        ("mp4", "video/mp4"),
        ("webm", "video/webm"),
        ("mp3", "audio/mpeg"),
        ("ogg", "audio/ogg"),
        ("csv", "text/csv; charset=utf-8"),
        ("md", "text/markdown; charset=utf-8"),
    ];
    let Some(ext) = path.extension().and_then(OsStr::to_str) else {
        return "application/octet-stream";
    };
    TYPES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(ext))
        .map_or("application/octet-stream", |&(_, ty)| ty)
}

/// Writes the status line and fields of `answer` for `found` (no blank
/// line: the caller appends its own fields and the final CRLF). A failed
/// write leaves `out` unchanged.
///
/// 200 and 206 carry Content-Type, Content-Length (of the bytes sent: the
/// part, for 206), Content-Range (206: `bytes FIRST-LAST/SIZE`),
/// Last-Modified, ETag and `Accept-Ranges: bytes`. A 304 carries only
/// Last-Modified and ETag: RFC 9110 §15.4.5 has it send the validators a
/// 200 would and advises against other representation metadata; a
/// Content-Length is allowed (§8.6) but says nothing a cache needs, and
/// nginx leaves it, Content-Type and Accept-Ranges out too. Last-Modified
/// and ETag need the modification time (Last-Modified a year 0000–9999).
pub fn write_head(out: &mut Buf, found: &Found, answer: &Answer) -> Result<(), Full> {
    let mark = out.len();
    let written = put_head(out, found, answer);
    if written.is_err() {
        out.truncate(mark);
    }
    written
}

fn put_head(out: &mut Buf, found: &Found, answer: &Answer) -> Result<(), Full> {
    out.put(match answer {
        Answer::Whole => b"HTTP/1.1 200 OK\r\n",
        Answer::Part(_) => b"HTTP/1.1 206 Partial Content\r\n",
        Answer::NotModified => b"HTTP/1.1 304 Not Modified\r\n",
    })?;
    if *answer != Answer::NotModified {
        let bytes = answer.bytes(found.len);
        out.put(b"Content-Type: ")?;
        out.put(found.content_type.as_bytes())?;
        out.put(b"\r\nContent-Length: ")?;
        out.put_decimal(bytes.end - bytes.start)?;
        out.put(b"\r\n")?;
        if let Answer::Part(part) = answer {
            debug_assert!(part.start < part.end && part.end <= found.len);
            out.put(b"Content-Range: bytes ")?;
            out.put_decimal(part.start)?;
            out.put(b"-")?;
            out.put_decimal(part.end - 1)?;
            out.put(b"/")?;
            out.put_decimal(found.len)?;
            out.put(b"\r\n")?;
        }
    }
    if let Some(modified) = found.modified {
        if let Some(date) = imf_fixdate(modified) {
            out.put(b"Last-Modified: ")?;
            out.put(&date)?;
            out.put(b"\r\n")?;
        }
        out.put(b"ETag: ")?;
        out.put(ETag::new(modified, found.len).as_bytes())?;
        out.put(b"\r\n")?;
    }
    if *answer != Answer::NotModified {
        out.put(b"Accept-Ranges: bytes\r\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::tests::TempDir;
    use std::fs::File;

    #[test]
    fn content_types() {
        let table = [
            ("index.html", "text/html; charset=utf-8"),
            ("INDEX.HTM", "text/html; charset=utf-8"),
            ("a/b.c/app.Js", "text/javascript; charset=utf-8"),
            ("mod.mjs", "text/javascript; charset=utf-8"),
            ("s.css", "text/css; charset=utf-8"),
            ("d.json", "application/json"),
            ("app.js.map", "application/json"),
            ("r.txt", "text/plain; charset=utf-8"),
            ("i.svg", "image/svg+xml"),
            ("i.PNG", "image/png"),
            ("i.jpg", "image/jpeg"),
            ("i.jpeg", "image/jpeg"),
            ("i.gif", "image/gif"),
            ("i.webp", "image/webp"),
            ("i.avif", "image/avif"),
            ("favicon.ico", "image/x-icon"),
            ("m.wasm", "application/wasm"),
            ("f.woff", "font/woff"),
            ("f.woff2", "font/woff2"),
            ("f.ttf", "font/ttf"),
            ("f.otf", "font/otf"),
            ("x.xml", "application/xml"),
            ("d.pdf", "application/pdf"),
            ("v.mp4", "video/mp4"),
            ("v.webm", "video/webm"),
            ("a.mp3", "audio/mpeg"),
            ("a.ogg", "audio/ogg"),
            ("t.csv", "text/csv; charset=utf-8"),
            ("README.md", "text/markdown; charset=utf-8"),
            ("Makefile", "application/octet-stream"),
            (".html", "application/octet-stream"),
            ("archive.tar.gz", "application/octet-stream"),
            ("x.exe", "application/octet-stream"),
        ];
        for (name, want) in table {
            assert_eq!(content_type(Path::new(name)), want, "{name}");
        }
    }

    #[test]
    fn head_fields() {
        let dir = TempDir::new("head");
        let path = dir.write("x.css", b"body{}");
        let found = |modified| Found {
            file: File::open(&path).unwrap(),
            len: 6,
            content_type: content_type(&path),
            modified,
        };
        let dated = found(Some(784_111_777));
        let undated = found(None);
        let table: &[(&Found, Answer, &str)] = &[
            (
                &dated,
                Answer::Whole,
                "HTTP/1.1 200 OK\r\nContent-Type: text/css; charset=utf-8\r\n\
                 Content-Length: 6\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
                 ETag: \"2ebc98a1-6\"\r\nAccept-Ranges: bytes\r\n",
            ),
            (
                &dated,
                Answer::Part(1..4),
                "HTTP/1.1 206 Partial Content\r\nContent-Type: text/css; charset=utf-8\r\n\
                 Content-Length: 3\r\nContent-Range: bytes 1-3/6\r\n\
                 Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
                 ETag: \"2ebc98a1-6\"\r\nAccept-Ranges: bytes\r\n",
            ),
            (
                &dated,
                Answer::NotModified,
                "HTTP/1.1 304 Not Modified\r\n\
                 Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nETag: \"2ebc98a1-6\"\r\n",
            ),
            (
                &undated,
                Answer::Whole,
                "HTTP/1.1 200 OK\r\nContent-Type: text/css; charset=utf-8\r\n\
                 Content-Length: 6\r\nAccept-Ranges: bytes\r\n",
            ),
            (
                &undated,
                Answer::NotModified,
                "HTTP/1.1 304 Not Modified\r\n",
            ),
        ];
        let mut out = Buf::with_capacity(512);
        for (found, answer, want) in table {
            out.clear();
            write_head(&mut out, found, answer).unwrap();
            assert_eq!(
                std::str::from_utf8(out.data()).unwrap(),
                *want,
                "{answer:?}"
            );
        }
        // A year the date cannot be written in keeps the tag.
        out.clear();
        write_head(&mut out, &found(Some(i64::MAX)), &Answer::NotModified).unwrap();
        assert_eq!(
            out.data(),
            b"HTTP/1.1 304 Not Modified\r\nETag: \"7fffffffffffffff-6\"\r\n"
        );
        let mut small = Buf::with_capacity(80);
        small.put(b"kept").unwrap();
        assert_eq!(write_head(&mut small, &dated, &Answer::Whole), Err(Full));
        assert_eq!(small.data(), b"kept", "a failed write_head changes nothing");
    }
}
