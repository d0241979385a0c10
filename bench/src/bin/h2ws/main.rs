//! `h2ws`: WebSockets over HTTP/2 (RFC 8441 extended CONNECT) as load, and
//! the same WebSockets over HTTP/1.1 for comparison, through a TLS proxy.
//!
//! | file | owns |
//! |---|---|
//! | `main.rs` | the command line, the modes, the report |
//! | `h2.rs` | one blocking HTTP/2 client connection carrying WebSocket streams |
//! | `h1.rs` | blocking HTTP/1.1 WebSockets over TLS, one per connection |
//! | `tls.rs` | the rustls client configuration (CA, ALPN) and the URL |
//!
//! Every lane (one HTTP/2 connection, or a group of HTTP/1.1 WebSockets)
//! runs on a thread of its own with blocking I/O: a lane writes one
//! message on each of its WebSockets, then reads every echo back, so the
//! messages of a lane travel together as a client with many WebSockets
//! would send them.

mod h1;
mod h2;
mod tls;

use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use crate::tls::Endpoint;

/// WebSockets over HTTP/2 (RFC 8441) or HTTP/1.1 through a TLS proxy.
///
/// Prints one JSON object on stdout and a summary line on stderr. Exit
/// status: 0 when every WebSocket opened and every echo came back intact,
/// 1 otherwise, 2 on bad flags.
#[derive(Debug, Parser)]
#[command(name = "h2ws", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open --conns x --streams WebSockets, say `held N` on stderr, hold
    /// them idle for --hold seconds, then send --messages small messages on
    /// each (one outstanding per WebSocket) and close them all.
    Run(RunArgs),
    /// Each connection loops for --duration seconds: open --streams
    /// WebSocket streams at once, one echo on each, close them; reports
    /// WebSocket handshakes per second (HTTP/2 only: an HTTP/1.1 WebSocket
    /// is a TLS connection of its own, which `wsbench handshakes` measures).
    Handshakes(HandshakesArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// The WebSocket: https://HOST:PORT/PATH (HOST is the TLS server name
    /// and the :authority or Host).
    #[arg(long, value_name = "https://HOST:PORT/PATH")]
    url: String,
    /// Trust the CA certificate(s) in this PEM file (and no other).
    #[arg(long, value_name = "FILE")]
    ca: std::path::PathBuf,
    /// Connections, one thread each: HTTP/2 connections, or with --http1
    /// groups of --streams HTTP/1.1 WebSockets.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    conns: u32,
    /// WebSockets per connection (per group with --http1).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    streams: u32,
    /// Seconds any one read may wait before the run fails.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    timeout: u64,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// One HTTP/1.1 WebSocket per TLS connection instead of HTTP/2 streams.
    #[arg(long)]
    http1: bool,
    /// Seconds to hold the WebSockets idle after `held N`.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    hold: f64,
    /// Messages per WebSocket after the hold, each echoed before the next.
    #[arg(long, value_name = "N", default_value_t = 100)]
    messages: u32,
    /// Payload bytes per message (at least 8: a sequence number).
    #[arg(long, value_name = "BYTES", default_value_t = 32, value_parser = clap::value_parser!(u32).range(8..=16384))]
    size: u32,
}

#[derive(Debug, Args)]
struct HandshakesArgs {
    #[command(flatten)]
    common: Common,
    /// Seconds to run.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    duration: f64,
}

/// A lane's WebSockets, whichever the protocol.
enum Lane {
    /// Boxed: a connection carries its HPACK tables and buffers.
    H2(Box<h2::Connection>),
    H1(h1::Group),
}

impl Lane {
    fn echo_round(&mut self, payloads: &[Vec<u8>]) -> Result<(), String> {
        match self {
            Lane::H2(conn) => conn.echo_round(payloads),
            Lane::H1(group) => group.echo_round(payloads),
        }
    }

    fn close(&mut self) -> Result<(), String> {
        match self {
            Lane::H2(conn) => conn.close_all(),
            Lane::H1(group) => group.close_all(),
        }
    }
}

/// What one lane did.
#[derive(Default)]
struct Tally {
    opened: u64,
    messages: u64,
    error: Option<String>,
}

fn run(args: RunArgs) -> Result<String, String> {
    let endpoint = Arc::new(Endpoint::new(
        &args.common.url,
        &args.common.ca,
        args.http1,
        Duration::from_secs(args.common.timeout),
    )?);
    let lanes = args.common.conns as usize;
    let streams = args.common.streams as usize;
    // Everyone opens, then the main thread says `held`, then everyone
    // holds and sends; a lane that failed to open still meets both
    // barriers, so that none waits forever.
    let opened = Arc::new(Barrier::new(lanes + 1));
    let go = Arc::new(Barrier::new(lanes + 1));
    let started = Instant::now();
    let mut handles = Vec::new();
    for lane_no in 0..lanes {
        let endpoint = endpoint.clone();
        let (opened, go) = (opened.clone(), go.clone());
        let (messages, size) = (args.messages, args.size as usize);
        handles.push(thread::spawn(move || {
            let mut tally = Tally::default();
            let lane = if endpoint.http1 {
                h1::Group::open(&endpoint, streams).map(Lane::H1)
            } else {
                h2::Connection::open(&endpoint, streams).map(|conn| Lane::H2(Box::new(conn)))
            };
            opened.wait();
            go.wait();
            let mut lane = match lane {
                Ok(lane) => lane,
                Err(err) => {
                    tally.error = Some(err);
                    return tally;
                }
            };
            tally.opened = streams as u64;
            let mut payloads = vec![vec![0u8; size]; streams];
            for seq in 0..u64::from(messages) {
                for (i, payload) in payloads.iter_mut().enumerate() {
                    let tag = (seq << 32) | (lane_no as u64) << 16 | i as u64;
                    payload[..8].copy_from_slice(&tag.to_be_bytes());
                }
                if let Err(err) = lane.echo_round(&payloads) {
                    tally.error = Some(err);
                    return tally;
                }
                tally.messages += streams as u64;
            }
            if let Err(err) = lane.close() {
                tally.error = Some(err);
            }
            tally
        }));
    }
    opened.wait();
    let open_secs = started.elapsed().as_secs_f64();
    eprintln!("held {}", lanes * streams);
    thread::sleep(Duration::from_secs_f64(args.hold));
    let echo_start = Instant::now();
    go.wait();
    let tallies = join_lanes(handles);
    let echo_secs = echo_start.elapsed().as_secs_f64();
    let opened: u64 = tallies.iter().map(|t| t.opened).sum();
    let messages: u64 = tallies.iter().map(|t| t.messages).sum();
    let errors: Vec<&String> = tallies.iter().filter_map(|t| t.error.as_ref()).collect();
    let protocol = if args.http1 { "http/1.1" } else { "h2" };
    eprintln!(
        "h2ws run: {protocol}: {opened}/{} WebSockets on {lanes} lanes opened in {open_secs:.2} s; \
         {messages} messages echoed in {echo_secs:.2} s ({:.0}/s); {} lane errors{}",
        lanes * streams,
        messages as f64 / echo_secs,
        errors.len(),
        errors
            .first()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    let json = format!(
        "{{\"mode\":\"run\",\"protocol\":\"{protocol}\",\"lanes\":{lanes},\"websockets\":{},\
         \"opened\":{opened},\"open_s\":{open_secs:.3},\"messages\":{messages},\"size\":{},\
         \"echo_s\":{echo_secs:.3},\"errors\":{}}}",
        lanes * streams,
        args.size,
        errors.len()
    );
    if errors.is_empty() {
        Ok(json)
    } else {
        println!("{json}");
        Err(format!("{} of {lanes} lanes failed", errors.len()))
    }
}

fn handshakes(args: HandshakesArgs) -> Result<String, String> {
    let endpoint = Arc::new(Endpoint::new(
        &args.common.url,
        &args.common.ca,
        false,
        Duration::from_secs(args.common.timeout),
    )?);
    let lanes = args.common.conns as usize;
    let streams = args.common.streams as usize;
    let duration = Duration::from_secs_f64(args.duration);
    let ready = Arc::new(Barrier::new(lanes + 1));
    let mut handles = Vec::new();
    for _ in 0..lanes {
        let endpoint = endpoint.clone();
        let ready = ready.clone();
        handles.push(thread::spawn(move || {
            let mut tally = Tally::default();
            let conn = h2::Connection::open(&endpoint, 0);
            ready.wait();
            let mut conn = match conn {
                Ok(conn) => conn,
                Err(err) => {
                    tally.error = Some(err);
                    return tally;
                }
            };
            let start = Instant::now();
            let payloads = vec![vec![0u8; 16]; streams];
            while start.elapsed() < duration {
                let round = conn
                    .open_streams(streams)
                    .and_then(|()| conn.echo_round(&payloads))
                    .and_then(|()| conn.close_all());
                if let Err(err) = round {
                    tally.error = Some(err);
                    break;
                }
                tally.opened += streams as u64;
            }
            tally
        }));
    }
    ready.wait();
    let start = Instant::now();
    let tallies = join_lanes(handles);
    let secs = start.elapsed().as_secs_f64();
    let opened: u64 = tallies.iter().map(|t| t.opened).sum();
    let errors: Vec<&String> = tallies.iter().filter_map(|t| t.error.as_ref()).collect();
    eprintln!(
        "h2ws handshakes: {opened} WebSocket streams opened, echoed and closed in {secs:.2} s \
         ({:.0}/s) on {lanes} connections, {streams} at a time each; {} lane errors{}",
        opened as f64 / secs,
        errors.len(),
        errors
            .first()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    let json = format!(
        "{{\"mode\":\"handshakes\",\"protocol\":\"h2\",\"lanes\":{lanes},\"streams\":{streams},\
         \"handshakes\":{opened},\"secs\":{secs:.3},\"errors\":{}}}",
        errors.len()
    );
    if errors.is_empty() {
        Ok(json)
    } else {
        println!("{json}");
        Err(format!("{} of {lanes} lanes failed", errors.len()))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run(args),
        Command::Handshakes(args) => handshakes(args),
    };
    match outcome {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("h2ws: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Each lane's tally, once it is done; a lane that panicked counts as an
/// error.
fn join_lanes(handles: Vec<thread::JoinHandle<Tally>>) -> Vec<Tally> {
    handles
        .into_iter()
        .map(|h| {
            h.join().unwrap_or_else(|_| Tally {
                error: Some("a lane panicked".into()),
                ..Tally::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
