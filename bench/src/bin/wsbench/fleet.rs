//! `wsbench keys` and `wsbench steady`: clients of a fleet, several proxies
//! behind an L4 balancer in front of named backends (`echo-server --name`).
//!
//! Both put a key in every request (`?key=K` by default), read which
//! backend answered from the 101's `X-Upstream` field (and which proxy from
//! `X-Node`, when the proxies add one), and count a key seen on two
//! backends as a violation: consistent hashing must keep a key on one
//! backend whichever proxy it entered.
//!
//! - `keys`: every key connects `--rounds` times (all keys once, then all
//!   again), one echo each, then a clean close.
//! - `steady`: `--conns` connections, one key each, each sending a message
//!   every `--interval-ms` and awaiting its echo. A connection the server
//!   closes (Close frame) or drops is opened again at once; the report
//!   counts messages unanswered when that happened (with how long before
//!   the Close each was sent: one sent within a round trip crossed it on
//!   the wire, and the closing handshake leaves it unanswered), every
//!   failed connection attempt by kind (refused, reset, answered with
//!   another status than 101, timed out), and how long connections stayed
//!   away (outages: from the loss to the next successful upgrade).
//!
//! One blocking thread per connection (`steady`) or per worker (`keys`),
//! with the test client of `wsbench::ws`: these modes count and classify,
//! they do not measure peak rates.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use wsbench::ws::{Client, HandshakeError, Opcode};

use crate::cli::{KeysArgs, SteadyArgs};
use crate::error::SetupError;
use crate::report::{Json, Latency, Outcome};
use crate::target::Target;

/// The field `echo-server --name` puts in its 101.
const UPSTREAM_FIELD: &str = "x-upstream";
/// The field the fleet's proxies add to a 101 (a route's `response_headers`).
const NODE_FIELD: &str = "x-node";

/// Pause after a failed connection attempt before the next (a steady
/// client retries until its run is over).
const RETRY_DELAY: Duration = Duration::from_millis(50);

/// Stack of a client thread: the blocking client keeps little on it.
const THREAD_STACK: usize = 128 * 1024;

/// How long a steady connection waits for its echo, and a closing
/// handshake for the server's Close.
const ECHO_TIMEOUT: Duration = Duration::from_secs(10);

/// How often `steady` looks for its `--stop-file`.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Ages of unanswered messages kept for the report.
const MAX_AGES: usize = 1000;

/// The close code a client sends when its run is over (RFC 6455 §7.4.1).
const CLOSE_NORMAL: u16 = 1000;

/// Failed connection attempts, by what went wrong.
#[derive(Debug, Default, Clone)]
struct Failures {
    /// The connection was refused (nothing listened: RST to the SYN).
    refused: u64,
    /// Reset or closed before the 101 arrived.
    reset: u64,
    /// Answered with a status other than 101.
    rejected: u64,
    /// No answer in time.
    timeout: u64,
    /// Anything else, e.g. a 101 without an `X-Upstream` field.
    other: u64,
    first: Option<String>,
}

impl Failures {
    fn record(&mut self, err: &io::Error) {
        use io::ErrorKind::*;
        match err.kind() {
            ConnectionRefused => self.refused += 1,
            ConnectionReset | ConnectionAborted | UnexpectedEof | BrokenPipe => self.reset += 1,
            TimedOut | WouldBlock => self.timeout += 1,
            _ if is_status(err) => self.rejected += 1,
            _ => self.other += 1,
        }
        self.first.get_or_insert_with(|| err.to_string());
    }

    fn merge(&mut self, other: &Failures) {
        self.refused += other.refused;
        self.reset += other.reset;
        self.rejected += other.rejected;
        self.timeout += other.timeout;
        self.other += other.other;
        if self.first.is_none() {
            self.first.clone_from(&other.first);
        }
    }

    fn total(&self) -> u64 {
        self.refused + self.reset + self.rejected + self.timeout + self.other
    }

    fn json(&self) -> String {
        Json::new()
            .uint("refused", self.refused)
            .uint("reset", self.reset)
            .uint("rejected", self.rejected)
            .uint("timeout", self.timeout)
            .uint("other", self.other)
            .opt_str("first", self.first.as_deref())
            .finish()
    }
}

/// Whether `err` is a handshake answered with another status than 101.
fn is_status(err: &io::Error) -> bool {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<HandshakeError>())
        .is_some_and(|inner| matches!(inner, HandshakeError::Status { .. }))
}

/// The value of `field` (lower case) in a response head.
fn field<'a>(head: &'a str, field: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case(field)
            .then(|| value.trim())
    })
}

/// The request path for `key`: the URL's path with `QUERY=key` appended.
fn keyed_path(path: &str, query: &str, key: &str) -> String {
    let join = if path.contains('?') { '&' } else { '?' };
    format!("{path}{join}{query}={key}")
}

/// An upgraded connection and who answered it.
struct Landed {
    client: Client,
    upstream: String,
    node: Option<String>,
}

/// Connects and upgrades; a 101 that names no backend is an error (the
/// backends were started without `--name`).
fn connect(target: &Target, path: &str) -> io::Result<Landed> {
    let client = Client::connect_with(target.addr, path, &[("Host", &target.host)])?;
    let head = client.response_head();
    let upstream = field(head, UPSTREAM_FIELD)
        .map(str::to_owned)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "the 101 has no X-Upstream field (start the backends with echo-server --name)",
            )
        })?;
    let node = field(head, NODE_FIELD).map(str::to_owned);
    Ok(Landed {
        client,
        upstream,
        node,
    })
}

/// Where each key landed, and how often each backend and node answered.
#[derive(Debug, Default)]
struct Landings {
    /// Key → the backends it reached, in order, without repeats.
    keys: HashMap<String, Vec<String>>,
    /// Key → the nodes it entered, without repeats.
    key_nodes: HashMap<String, Vec<String>>,
    upstreams: BTreeMap<String, u64>,
    nodes: BTreeMap<String, u64>,
}

impl Landings {
    fn record(&mut self, key: &str, upstream: &str, node: Option<&str>) {
        let seen = self.keys.entry(key.to_owned()).or_default();
        if !seen.iter().any(|u| u == upstream) {
            seen.push(upstream.to_owned());
        }
        *self.upstreams.entry(upstream.to_owned()).or_default() += 1;
        if let Some(node) = node {
            let nodes = self.key_nodes.entry(key.to_owned()).or_default();
            if !nodes.iter().any(|n| n == node) {
                nodes.push(node.to_owned());
            }
            *self.nodes.entry(node.to_owned()).or_default() += 1;
        }
    }

    fn merge(&mut self, other: Landings) {
        for (key, ups) in other.keys {
            for up in ups {
                let seen = self.keys.entry(key.clone()).or_default();
                if !seen.contains(&up) {
                    seen.push(up);
                }
            }
        }
        for (key, nodes) in other.key_nodes {
            for node in nodes {
                let seen = self.key_nodes.entry(key.clone()).or_default();
                if !seen.contains(&node) {
                    seen.push(node);
                }
            }
        }
        for (up, n) in other.upstreams {
            *self.upstreams.entry(up).or_default() += n;
        }
        for (node, n) in other.nodes {
            *self.nodes.entry(node).or_default() += n;
        }
    }

    /// Keys that reached more than one backend, sorted.
    fn violations(&self) -> Vec<String> {
        let mut moved: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, ups)| ups.len() > 1)
            .map(|(key, ups)| format!("{key}: {}", ups.join(",")))
            .collect();
        moved.sort();
        moved
    }

    /// Keys that entered through more than one node.
    fn multi_node_keys(&self) -> u64 {
        self.key_nodes.values().filter(|n| n.len() > 1).count() as u64
    }

    fn json(&self, json: Json) -> Json {
        let moved = self.violations();
        json.uint("keys_seen", self.keys.len() as u64)
            .uint("violations", moved.len() as u64)
            .opt_str("first_violation", moved.first().map(String::as_str))
            .uint("keys_on_several_nodes", self.multi_node_keys())
            .raw("by_upstream", &counts_json(&self.upstreams))
            .raw("by_node", &counts_json(&self.nodes))
    }
}

fn uint_array(values: &[u64]) -> String {
    let items: Vec<String> = values.iter().map(u64::to_string).collect();
    format!("[{}]", items.join(","))
}

fn counts_json(counts: &BTreeMap<String, u64>) -> String {
    let mut out = String::from("{");
    for (i, (name, n)) in counts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Names are printable ASCII (echo-server checks its --name).
        let _ = write!(out, "\"{}\":{n}", name.replace(['"', '\\'], "_"));
    }
    out.push('}');
    out
}

/// What one `keys` worker saw.
#[derive(Debug, Default)]
struct KeysTally {
    landings: Landings,
    failures: Failures,
    connections: u64,
    mismatches: u64,
}

pub fn keys(args: &KeysArgs) -> Result<Outcome, SetupError> {
    if args.url.tls {
        return Err(SetupError::Usage("keys speaks ws:// only".into()));
    }
    let started = Instant::now();
    let mut total = KeysTally::default();
    for round in 0..args.rounds {
        let next = AtomicUsize::new(0);
        let tallies = thread::scope(|scope| {
            let handles: Vec<_> = (0..args.threads)
                .map(|_| {
                    thread::Builder::new()
                        .stack_size(THREAD_STACK)
                        .spawn_scoped(scope, || keys_worker(args, round, &next))
                })
                .collect::<io::Result<Vec<_>>>()
                .map_err(|err| SetupError::io("spawn a client thread", err))?;
            Ok::<_, SetupError>(
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a keys worker does not panic"))
                    .collect::<Vec<_>>(),
            )
        })?;
        for tally in tallies {
            total.landings.merge(tally.landings);
            total.failures.merge(&tally.failures);
            total.connections += tally.connections;
            total.mismatches += tally.mismatches;
        }
    }
    let elapsed = started.elapsed();
    let violations = total.landings.violations().len() as u64;
    let failed = total.failures.total();
    let ok = violations == 0 && failed == 0 && total.mismatches == 0;
    let summary = format!(
        "keys: {} keys x {} rounds: {} connections, {violations} keys on more than one upstream, \
         {} keys entered several nodes, {failed} failed attempts, {} bad echoes, {:.1} s",
        args.keys,
        args.rounds,
        total.connections,
        total.landings.multi_node_keys(),
        total.mismatches,
        elapsed.as_secs_f64()
    );
    let json = total
        .landings
        .json(
            Json::new()
                .str("mode", "keys")
                .str("url", &args.url.url)
                .uint("keys", u64::from(args.keys))
                .uint("rounds", u64::from(args.rounds))
                .uint("connections", total.connections)
                .uint("mismatches", total.mismatches),
        )
        .raw("failures", &total.failures.json())
        .float("elapsed_s", elapsed.as_secs_f64())
        .bool("ok", ok)
        .finish();
    Ok(Outcome { summary, json, ok })
}

/// Takes keys from `next` until none is left: connect, one echo, close.
fn keys_worker(args: &KeysArgs, round: u32, next: &AtomicUsize) -> KeysTally {
    let mut tally = KeysTally::default();
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= args.keys as usize {
            return tally;
        }
        let key = format!("{}{index}", args.key.key_prefix);
        let path = keyed_path(&args.url.path, &args.key.key_query, &key);
        let mut landed = match connect(&args.url, &path) {
            Ok(landed) => landed,
            Err(err) => {
                tally.failures.record(&err);
                continue;
            }
        };
        tally.connections += 1;
        tally
            .landings
            .record(&key, &landed.upstream, landed.node.as_deref());
        let text = format!("{key} round {round}");
        let echoed = landed
            .client
            .send_text(&text)
            .and_then(|()| landed.client.recv());
        match echoed {
            Ok(frame) if frame.opcode == Opcode::Text && frame.payload == text.as_bytes() => {
                let _ = landed.client.close(CLOSE_NORMAL);
            }
            Ok(_) => tally.mismatches += 1,
            Err(err) => tally.failures.record(&err),
        }
    }
}

/// What one steady connection saw over the run.
#[derive(Debug, Default)]
struct SteadyTally {
    landings: Landings,
    failures: Failures,
    attempts: u64,
    upgrades: u64,
    sent: u64,
    echoed: u64,
    mismatches: u64,
    /// Connections the server ended with a Close frame, by its code.
    closes: BTreeMap<u16, u64>,
    /// Connections reset or closed without a Close frame.
    dropped: u64,
    /// Messages sent whose echo had not come when a Close arrived.
    lost_at_close: u64,
    /// How long before that Close each was sent (µs; the first
    /// [`MAX_AGES`]): within about one round trip, it crossed the Close.
    lost_ages_us: Vec<u64>,
    /// Messages sent whose echo had not come when the connection dropped.
    lost_at_drop: u64,
    /// Echoes that took longer than [`ECHO_TIMEOUT`].
    echo_timeouts: u64,
    outages: Latency,
    rtt: Latency,
}

impl SteadyTally {
    fn merge(&mut self, other: SteadyTally) {
        self.landings.merge(other.landings);
        self.failures.merge(&other.failures);
        self.attempts += other.attempts;
        self.upgrades += other.upgrades;
        self.sent += other.sent;
        self.echoed += other.echoed;
        self.mismatches += other.mismatches;
        for (code, n) in other.closes {
            *self.closes.entry(code).or_default() += n;
        }
        self.dropped += other.dropped;
        self.lost_at_close += other.lost_at_close;
        let room = MAX_AGES.saturating_sub(self.lost_ages_us.len());
        self.lost_ages_us
            .extend(other.lost_ages_us.iter().take(room).copied());
        self.lost_at_drop += other.lost_at_drop;
        self.echo_timeouts += other.echo_timeouts;
        self.outages.merge(&other.outages);
        self.rtt.merge(&other.rtt);
    }
}

/// When a steady run is over: at its deadline, or once its stop file exists.
struct Run {
    deadline: Instant,
    stop: AtomicBool,
}

impl Run {
    fn over(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }

    /// Sets `stop` once `file` exists, or returns when the run is over.
    fn watch(&self, file: &Path) {
        while !self.over() {
            if file.exists() {
                self.stop.store(true, Ordering::Relaxed);
                return;
            }
            thread::sleep(STOP_POLL);
        }
    }
}

/// How a connection's session ended.
enum Ended {
    /// The run is over; the client closed it.
    Done,
    /// The server sent Close (or the connection dropped): open another.
    Lost,
}

/// What arrived while a connection waited to send.
enum Wait {
    /// Nothing before the next send is due.
    Quiet,
    /// Bytes are there to read.
    Readable,
    /// The peer closed or reset the connection.
    Gone,
}

pub fn steady(args: &SteadyArgs) -> Result<Outcome, SetupError> {
    if args.url.tls {
        return Err(SetupError::Usage("steady speaks ws:// only".into()));
    }
    let started = Instant::now();
    let run = Run {
        deadline: started + args.duration,
        stop: AtomicBool::new(false),
    };
    let run = &run;
    let tallies = thread::scope(|scope| {
        let handles: Vec<_> = (0..args.conns)
            .map(|index| {
                thread::Builder::new()
                    .stack_size(THREAD_STACK)
                    .spawn_scoped(scope, move || steady_conn(args, index, run))
            })
            .collect::<io::Result<Vec<_>>>()
            .map_err(|err| SetupError::io("spawn a client thread", err))?;
        if let Some(file) = &args.stop_file {
            scope.spawn(move || run.watch(file));
        }
        eprintln!("steady: {} connections started", args.conns);
        Ok::<_, SetupError>(
            handles
                .into_iter()
                .map(|h| h.join().expect("a steady connection does not panic"))
                .collect::<Vec<_>>(),
        )
    })?;
    let mut total = SteadyTally::default();
    for tally in tallies {
        total.merge(tally);
    }
    let elapsed = started.elapsed();
    let violations = total.landings.violations().len() as u64;
    let lost = total.lost_at_close + total.lost_at_drop;
    let failed = total.failures.total();
    let ok = violations == 0
        && failed == 0
        && lost == 0
        && total.mismatches == 0
        && total.echo_timeouts == 0;
    let closed: u64 = total.closes.values().sum();
    let summary = format!(
        "steady: {} connections, {} upgrades, {} messages sent, {} echoed, {closed} closed by \
         the server, {} dropped, {lost} unanswered at a close or drop, {failed} failed attempts \
         ({} refused, {} reset), {violations} keys on more than one upstream, outages max {:.1} ms",
        args.conns,
        total.upgrades,
        total.sent,
        total.echoed,
        total.dropped,
        total.failures.refused,
        total.failures.reset,
        total.outages.max_ms()
    );
    let mut closes = Json::new();
    for (code, n) in &total.closes {
        closes = closes.uint(&code.to_string(), *n);
    }
    let json = total
        .landings
        .json(
            Json::new()
                .str("mode", "steady")
                .str("url", &args.url.url)
                .uint("conns", u64::from(args.conns))
                .uint("interval_ms", args.interval_ms)
                .uint("attempts", total.attempts)
                .uint("upgrades", total.upgrades)
                .uint("sent", total.sent)
                .uint("echoed", total.echoed)
                .uint("mismatches", total.mismatches)
                .raw("closes_by_server", &closes.finish())
                .uint("dropped", total.dropped)
                .uint("lost_at_close", total.lost_at_close)
                .raw("lost_at_close_ages_us", &uint_array(&total.lost_ages_us))
                .uint("lost_at_drop", total.lost_at_drop)
                .uint("echo_timeouts", total.echo_timeouts),
        )
        .raw("failures", &total.failures.json())
        .raw("outages", &total.outages.json())
        .raw("rtt", &total.rtt.json())
        .float("elapsed_s", elapsed.as_secs_f64())
        .bool("ok", ok)
        .finish();
    Ok(Outcome { summary, json, ok })
}

/// One steady connection, opened again whenever it is lost, until `deadline`.
fn steady_conn(args: &SteadyArgs, index: u32, run: &Run) -> SteadyTally {
    let mut tally = SteadyTally::default();
    let key = format!("{}{index}", args.key.key_prefix);
    let path = keyed_path(&args.url.path, &args.key.key_query, &key);
    let interval = Duration::from_millis(args.interval_ms);
    // Spread the first sends over one interval.
    let offset = interval.mul_f64(f64::from(index) / f64::from(args.conns.max(1)));
    let mut lost_since: Option<Instant> = None;
    while !run.over() {
        tally.attempts += 1;
        let mut landed = match connect(&args.url, &path) {
            Ok(landed) => landed,
            Err(err) => {
                tally.failures.record(&err);
                lost_since.get_or_insert_with(Instant::now);
                thread::sleep(RETRY_DELAY);
                continue;
            }
        };
        if let Some(since) = lost_since.take() {
            tally.outages.record(since.elapsed());
        }
        tally.upgrades += 1;
        tally
            .landings
            .record(&key, &landed.upstream, landed.node.as_deref());
        match session(&mut landed.client, &mut tally, run, interval, offset) {
            Ended::Done => break,
            Ended::Lost => lost_since = Some(Instant::now()),
        }
    }
    tally
}

/// Sends a message every `interval` and awaits each echo, until the run is
/// over (seen at the next send at the latest) or the connection is lost.
fn session(
    client: &mut Client,
    tally: &mut SteadyTally,
    run: &Run,
    interval: Duration,
    offset: Duration,
) -> Ended {
    let mut next = Instant::now() + offset;
    loop {
        match wait(client, next.min(run.deadline)) {
            Wait::Quiet => {}
            Wait::Gone => {
                tally.dropped += 1;
                return Ended::Lost;
            }
            Wait::Readable => {
                // Nothing is outstanding: only a Close (or a Ping) is due.
                match client.recv() {
                    Ok(frame) if frame.opcode == Opcode::Close => {
                        answer_close(client, tally, frame.close_code());
                        return Ended::Lost;
                    }
                    Ok(frame) if frame.opcode == Opcode::Ping => {
                        let _ = client.send(Opcode::Pong, &frame.payload);
                        continue;
                    }
                    Ok(_) => {
                        tally.mismatches += 1;
                        continue;
                    }
                    Err(_) => {
                        tally.dropped += 1;
                        return Ended::Lost;
                    }
                }
            }
        }
        let now = Instant::now();
        if run.over() {
            let _ = client.close(CLOSE_NORMAL);
            return Ended::Done;
        }
        if now < next {
            continue;
        }
        next += interval;
        if next < now {
            // Late (a slow echo): the schedule starts again from now.
            next = now + interval;
        }
        let text = format!("message {}", tally.sent);
        let sent_at = Instant::now();
        if client.send_text(&text).is_err() {
            tally.dropped += 1;
            tally.lost_at_drop += 1;
            return Ended::Lost;
        }
        tally.sent += 1;
        loop {
            match client.recv() {
                Ok(frame) if frame.opcode == Opcode::Text && frame.payload == text.as_bytes() => {
                    tally.echoed += 1;
                    tally.rtt.record(sent_at.elapsed());
                    break;
                }
                Ok(frame) if frame.opcode == Opcode::Ping => {
                    let _ = client.send(Opcode::Pong, &frame.payload);
                }
                Ok(frame) if frame.opcode == Opcode::Close => {
                    tally.lost_at_close += 1;
                    if tally.lost_ages_us.len() < MAX_AGES {
                        let age = sent_at.elapsed().as_micros();
                        tally
                            .lost_ages_us
                            .push(u64::try_from(age).unwrap_or(u64::MAX));
                    }
                    answer_close(client, tally, frame.close_code());
                    return Ended::Lost;
                }
                Ok(_) => {
                    tally.mismatches += 1;
                    break;
                }
                Err(err) => {
                    if matches!(
                        err.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    ) {
                        tally.echo_timeouts += 1;
                    } else {
                        tally.lost_at_drop += 1;
                    }
                    tally.dropped += 1;
                    return Ended::Lost;
                }
            }
        }
    }
}

/// Counts the server's Close and answers it (RFC 6455 §5.5.1); the socket
/// closes when the client is dropped.
fn answer_close(client: &mut Client, tally: &mut SteadyTally, code: Option<u16>) {
    *tally.closes.entry(code.unwrap_or(0)).or_default() += 1;
    let _ = client.send(Opcode::Close, &code.unwrap_or(CLOSE_NORMAL).to_be_bytes());
}

/// Waits until bytes arrive or `due`, without consuming any.
fn wait(client: &mut Client, due: Instant) -> Wait {
    if !client.buffered().is_empty() {
        return Wait::Readable;
    }
    let left = due.saturating_duration_since(Instant::now());
    if left < Duration::from_millis(1) {
        return Wait::Quiet;
    }
    let stream = client.stream();
    if stream.set_read_timeout(Some(left)).is_err() {
        return Wait::Gone;
    }
    let mut byte = [0u8; 1];
    let seen = stream.peek(&mut byte);
    let _ = stream.set_read_timeout(Some(ECHO_TIMEOUT));
    match seen {
        Ok(0) => Wait::Gone,
        Ok(_) => Wait::Readable,
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) =>
        {
            Wait::Quiet
        }
        Err(_) => Wait::Gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_paths() {
        let head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nx-upstream: up-1\r\nX-Node:node2";
        assert_eq!(field(head, UPSTREAM_FIELD), Some("up-1"));
        assert_eq!(field(head, NODE_FIELD), Some("node2"));
        assert_eq!(field(head, "sec-websocket-accept"), None);
        assert_eq!(keyed_path("/ws", "key", "k7"), "/ws?key=k7");
        assert_eq!(keyed_path("/ws?a=1", "sid", "k7"), "/ws?a=1&sid=k7");
    }

    #[test]
    fn a_key_on_two_upstreams_is_a_violation() {
        let mut a = Landings::default();
        a.record("k1", "up-1", Some("node1"));
        a.record("k2", "up-2", Some("node1"));
        let mut b = Landings::default();
        b.record("k1", "up-1", Some("node2"));
        b.record("k2", "up-3", Some("node2"));
        a.merge(b);
        assert_eq!(a.violations(), vec!["k2: up-2,up-3".to_owned()]);
        assert_eq!(a.multi_node_keys(), 2);
        assert_eq!(counts_json(&a.upstreams), r#"{"up-1":2,"up-2":1,"up-3":1}"#);
    }

    #[test]
    fn failures_by_kind() {
        let mut f = Failures::default();
        f.record(&io::Error::from(io::ErrorKind::ConnectionRefused));
        f.record(&io::Error::from(io::ErrorKind::ConnectionReset));
        f.record(&io::Error::from(io::ErrorKind::UnexpectedEof));
        f.record(&io::Error::other("odd"));
        assert_eq!((f.refused, f.reset, f.other, f.total()), (1, 2, 1, 4));
    }
}
