//! The access log: one line per finished exchange, as text (logfmt) or
//! JSON lines, to stdout or a file.
//!
//! A pair carries its [`Exchange`] record only while the log is on (a
//! boxed record, so a pair costs nothing more with it off). Each worker
//! formats lines into its own buffer and writes the buffer once per turn
//! of its event loop (or when it passes [`FLUSH_BYTES`]) with one
//! `write(2)` on a shared `O_APPEND` descriptor, so lines from different
//! workers never interleave and a busy worker makes one syscall for many
//! lines.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::log::Timestamp;
use crate::token::Side;

/// A worker writes its lines once they pass this many bytes, else at the
/// end of its event-loop turn.
pub const FLUSH_BYTES: usize = 64 * 1024;

/// Where lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Off,
    Stdout,
    File(PathBuf),
}

impl std::str::FromStr for Destination {
    type Err = String;

    fn from_str(s: &str) -> Result<Destination, String> {
        Ok(match s {
            "off" | "" => Destination::Off,
            "stdout" | "-" => Destination::Stdout,
            path => Destination::File(PathBuf::from(path)),
        })
    }
}

/// How a line is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `key=value` pairs (logfmt).
    Text,
    /// One JSON object per line.
    Json,
}

/// Who ended an exchange and why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ending {
    /// Not recorded: the proxy closed it.
    #[default]
    Unknown,
    /// A side ended its half of a tunnel first (EOF or `close_notify`).
    Closed(Side),
    /// A side reset the connection or its socket failed.
    Reset(Side),
    IdleTimeout,
    /// The upstream stopped in the middle of a plain response.
    Stalled,
    /// A plain response was relayed whole.
    Complete,
    /// The proxy answered by itself (an error, a redirect, a file).
    Answered,
    /// The process was stopping: drained with a Close frame.
    Shutdown,
    /// A reload removed the tunnel's route or upstream server.
    Removed,
    /// A side sent nothing within a Ping's interval and timeout.
    Unresponsive(Side),
    /// The tunnel lived its route's `max_lifetime`.
    Lifetime,
    /// The client sent a message past the route's `max_message_bytes`.
    TooBig,
    /// The client stayed over the route's rate limit too long.
    RateLimited,
}

impl Ending {
    fn who(self) -> &'static str {
        match self {
            Ending::Closed(Side::Client) | Ending::Reset(Side::Client) => "client",
            Ending::Closed(Side::Upstream) | Ending::Reset(Side::Upstream) | Ending::Stalled => {
                "upstream"
            }
            _ => "proxy",
        }
    }

    fn why(self) -> &'static str {
        match self {
            Ending::Unknown => "closed",
            Ending::Closed(_) => "closed",
            Ending::Reset(_) => "reset",
            Ending::IdleTimeout => "idle timeout",
            Ending::Stalled => "response stalled",
            Ending::Complete => "response complete",
            Ending::Answered => "answered",
            Ending::Shutdown => "shutdown",
            Ending::Removed => "removed by reload",
            Ending::Unresponsive(_) => "unresponsive",
            Ending::Lifetime => "lifetime",
            Ending::TooBig => "message too big",
            Ending::RateLimited => "rate limited",
        }
    }
}

/// What a pair records for its line.
#[derive(Clone, Debug, Default)]
pub struct Exchange {
    /// The status the client got; 0 until answered.
    pub status: u16,
    /// Accept to the answer's head, in microseconds.
    pub handshake_us: u32,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub ending: Ending,
}

impl Exchange {
    /// Records `ending` unless an earlier one explains the close already.
    pub fn end(&mut self, ending: Ending) {
        if self.ending == Ending::Unknown {
            self.ending = ending;
        }
    }
}

/// The fields of one line besides the [`Exchange`].
#[derive(Debug)]
pub struct Line<'a> {
    pub client: SocketAddr,
    /// The route's location, if one matched.
    pub route: Option<&'a str>,
    /// The upstream server's name as configured, if one was used.
    pub upstream: Option<&'a str>,
    /// How long the tunnel lived, if there was one.
    pub tunnel: Option<Duration>,
}

/// A worker's end of the log.
#[derive(Debug)]
pub struct Sink {
    out: Option<Arc<File>>,
    format: Format,
    buf: String,
}

/// Opens the log's destination once; every worker writes to it.
pub fn open(target: &Destination) -> io::Result<Option<Arc<File>>> {
    let file = match target {
        Destination::Off => return Ok(None),
        Destination::Stdout => {
            // A descriptor of our own for stdout: one write per batch, no
            // lock shared with the rest of the process.
            let fd = std::os::fd::AsFd::as_fd(&io::stdout()).try_clone_to_owned()?;
            File::from(fd)
        }
        Destination::File(path) => OpenOptions::new().create(true).append(true).open(path)?,
    };
    Ok(Some(Arc::new(file)))
}

impl Sink {
    pub fn new(out: Option<Arc<File>>, format: Format) -> Sink {
        Sink {
            out,
            format,
            buf: String::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.out.is_some()
    }

    /// Adds one line.
    pub fn record(&mut self, line: &Line<'_>, x: &Exchange) {
        if self.out.is_none() {
            return;
        }
        let time = Timestamp::now();
        let handshake_ms = f64::from(x.handshake_us) / 1000.0;
        let tunnel_s = line.tunnel.map(|d| d.as_secs_f64());
        let b = &mut self.buf;
        let _ = match self.format {
            Format::Text => {
                let _ = write!(
                    b,
                    "{time} client={} route={} upstream={} status={} handshake_ms={handshake_ms:.3}",
                    line.client,
                    quoted(line.route.unwrap_or("-")),
                    line.upstream.unwrap_or("-"),
                    x.status,
                );
                if let Some(t) = tunnel_s {
                    let _ = write!(b, " tunnel_s={t:.1}");
                }
                writeln!(
                    b,
                    " bytes_up={} bytes_down={} closed_by={} reason={}",
                    x.bytes_up,
                    x.bytes_down,
                    x.ending.who(),
                    quoted(x.ending.why())
                )
            }
            Format::Json => {
                let _ = write!(
                    b,
                    "{{\"time\":\"{time}\",\"client\":\"{}\",\"route\":{},\"upstream\":{},\
                     \"status\":{},\"handshake_ms\":{handshake_ms:.3},\"tunnel_s\":",
                    line.client,
                    json(line.route),
                    json(line.upstream),
                    x.status,
                );
                let _ = match tunnel_s {
                    Some(t) => write!(b, "{t:.1}"),
                    None => write!(b, "null"),
                };
                writeln!(
                    b,
                    ",\"bytes_up\":{},\"bytes_down\":{},\"closed_by\":\"{}\",\"reason\":\"{}\"}}",
                    x.bytes_up,
                    x.bytes_down,
                    x.ending.who(),
                    x.ending.why()
                )
            }
        };
        if self.buf.len() >= FLUSH_BYTES {
            self.flush();
        }
    }

    /// Writes the lines gathered so far. A full disk loses them rather
    /// than stalling the worker.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if let Some(out) = &self.out {
            let _ = (&**out).write_all(self.buf.as_bytes());
        }
        self.buf.clear();
    }
}

/// A logfmt value: bare when it is one plain word, quoted otherwise.
fn quoted(value: &str) -> String {
    if !value.is_empty()
        && value
            .bytes()
            .all(|c| c.is_ascii_graphic() && c != b'"' && c != b'=')
    {
        value.to_string()
    } else {
        format!("{value:?}")
    }
}

/// A JSON string or null.
fn json(value: Option<&str>) -> String {
    let Some(value) = value else {
        return "null".into();
    };
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(route: Option<&'a str>) -> Line<'a> {
        Line {
            client: "203.0.113.7:5000".parse().unwrap(),
            route,
            upstream: Some("10.0.0.5:9000"),
            tunnel: Some(Duration::from_millis(35_250)),
        }
    }

    fn exchange() -> Exchange {
        Exchange {
            status: 101,
            handshake_us: 1250,
            bytes_up: 10,
            bytes_down: 20,
            ending: Ending::Closed(Side::Client),
        }
    }

    #[test]
    fn text_and_json_lines_carry_every_field() {
        let mut off = Sink::new(None, Format::Text);
        off.record(&line(Some("/ws")), &exchange());
        assert!(!off.enabled() && off.buf.is_empty(), "off formats nothing");
        // Lines wait in the buffer until a flush: read them there.
        let mut text = Sink::new(Some(Arc::new(tempfile())), Format::Text);
        text.record(&line(Some("/ws")), &exchange());
        let t = text.buf.clone();
        assert!(t.ends_with('\n') && t.matches('\n').count() == 1, "{t}");
        for want in [
            " client=203.0.113.7:5000 route=/ws upstream=10.0.0.5:9000 status=101",
            " handshake_ms=1.250 tunnel_s=35.2 bytes_up=10 bytes_down=20",
            " closed_by=client reason=closed",
        ] {
            assert!(t.contains(want), "{want:?} in {t}");
        }
        let mut js = Sink::new(Some(Arc::new(tempfile())), Format::Json);
        js.record(&line(Some("~ ^/a\"b")), &exchange());
        let j = js.buf.clone();
        for want in [
            "\"client\":\"203.0.113.7:5000\"",
            "\"route\":\"~ ^/a\\\"b\"",
            "\"upstream\":\"10.0.0.5:9000\"",
            "\"status\":101",
            "\"tunnel_s\":35.2",
            "\"bytes_up\":10,\"bytes_down\":20",
            "\"closed_by\":\"client\",\"reason\":\"closed\"}",
        ] {
            assert!(j.contains(want), "{want:?} in {j}");
        }
    }

    #[test]
    fn the_first_ending_stands() {
        let mut x = Exchange::default();
        x.end(Ending::Closed(Side::Upstream));
        x.end(Ending::IdleTimeout);
        assert_eq!(x.ending, Ending::Closed(Side::Upstream));
        assert_eq!((x.ending.who(), x.ending.why()), ("upstream", "closed"));
    }

    fn tempfile() -> File {
        let path = std::env::temp_dir().join(format!("wsproxy-access-{}", std::process::id()));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        file
    }
}
