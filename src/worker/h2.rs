//! HTTP/2 client connections in a worker. A TLS client whose handshake
//! chose `h2` leaves its pair (see [`Outcome::Http2`]) for a [`Session`]:
//! the socket, the TLS session and a sans-I/O [`h2::conn::Conn`]. Each
//! stream it opens gets a pair of its own whose client is the stream
//! ([`StreamIo`]): its request goes in as an HTTP/1.1 head, so routing,
//! Origin checks, header edits, the upstream connect, pings, limits, the
//! drain and the access log are the HTTP/1.1 code's. An extended CONNECT
//! (RFC 8441) becomes a WebSocket upgrade with a key the proxy makes, and
//! the upstream's 101 becomes `:status 200` once its accept is checked
//! ([`bridge`]).
//!
//! After each of a stream pair's turns the worker frames what it wrote
//! ([`Worker::sync_stream`]); the session's socket is written once per
//! worker turn ([`Worker::flush_sessions`]). Backpressure both ways is the
//! windows: a stream's pair reads only what the client's DATA brought
//! (and the WINDOW_UPDATE follows what it read), and writes only into the
//! room the stream has, bounded by the peer's window and by what waits
//! for the socket.

use std::collections::HashMap;
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mio::Interest;

use super::session::{Session, Slot, OUT_HIGH, STREAM_ROOM};
use super::Worker;
use crate::h2::bridge::{self, Answer, Inbound};
use crate::h2::conn::{Config as H2Config, Conn as H2, Event};
use crate::h2::error::ErrorCode;
use crate::pair::{Ctx, Handover, Outcome, Pair, Ready};
use crate::relay::stream::StreamIo;
use crate::relay::{Conn, Got};
use crate::token::{self, Side};
use crate::{debug, info};

/// Reads per turn before other connections get theirs.
const READS_PER_TURN: usize = 16;

/// How long our SETTINGS may go unacknowledged (RFC 9113 §6.5.3).
const SETTINGS_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a stream's answer may wait on a window the client keeps shut
/// (nginx's `send_timeout`): then the stream is reset, its pair closed.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

impl Worker {
    /// A pair's client chose HTTP/2: its socket becomes a session.
    pub(super) fn take_h2(&mut self, key: usize) {
        let pair = self.pairs.remove(key);
        let Some(handover) = pair.into_h2(&mut self.relay) else {
            return;
        };
        let Handover {
            mut tcp,
            tls,
            read,
            client_addr,
            listener,
            gen,
            ip_counted,
        } = handover;
        let mut h2 = H2::new(H2Config::default());
        let mut out = Vec::new();
        let now = self.at;
        h2.start(now, &mut out);
        let entry = self.sessions.vacant_entry();
        let skey = entry.key();
        // The pair's registration goes over to the session's token.
        let token = token::session(skey);
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.poll.registry().reregister(&mut tcp, token, interest) {
            debug!("client {client_addr}: cannot watch the HTTP/2 connection: {e}");
            self.release_client(gen, ip_counted, client_addr);
            return;
        }
        let input = match read {
            Some(buf) => {
                let bytes = buf.data().to_vec();
                self.relay.bufs.pool.give(*buf);
                bytes
            }
            None => Vec::new(),
        };
        debug!("client {client_addr}: HTTP/2 connection {skey}");
        self.metrics.h2_connections.add(1);
        entry.insert(Session {
            tcp,
            tls: Some(Box::new(tls)),
            h2,
            client_addr,
            listener,
            gen,
            ip_counted,
            input,
            out,
            streams: HashMap::new(),
            registered: Some(interest),
            dirty: true,
            closing: false,
            idle_since: now,
            going_away: self.drain.is_some(),
        });
        if self.drain.is_some() {
            let s = &mut self.sessions[skey];
            s.h2.go_away(ErrorCode::NoError, &mut s.out);
        }
        self.dirty_sessions.push(skey);
        self.session_read(skey, false);
    }

    /// Gives back what a client connection held: its configuration
    /// generation and its place in the connection limits.
    fn release_client(&mut self, gen: usize, ip_counted: bool, addr: SocketAddr) {
        let config = &self.gens[gen].config;
        let ip: Option<IpAddr> = ip_counted.then(|| addr.ip());
        self.control.admission.release(&config.limits, ip);
        self.gens[gen].pairs -= 1;
        if self.gens[gen].pairs == 0 && gen != self.current {
            self.gens.remove(gen);
        }
    }

    /// A socket event for session `key`.
    pub(super) fn on_session_event(&mut self, key: usize, event: &mio::event::Event) {
        let ready = Ready::from_event(event);
        if ready.writable {
            self.flush_session(key);
        }
        if ready.readable && self.sessions.contains(key) {
            self.session_read(key, ready.closing);
        }
    }

    /// Sessions that used their turn's reads with more to read.
    pub(super) fn run_sessions_again(&mut self) {
        let again = mem::take(&mut self.sessions_again);
        for key in again {
            self.session_read(key, true);
        }
    }

    /// Reads what the client sent and acts on its frames. `closing`: the
    /// event said the client's end (or an error) came, which raises no
    /// further event: read until the socket says so, whatever a short read
    /// suggests.
    fn session_read(&mut self, key: usize, closing: bool) {
        let now = self.at;
        let mut more = true;
        for _ in 0..READS_PER_TURN {
            let Some(s) = self.sessions.get_mut(key) else {
                return;
            };
            if s.closing {
                break;
            }
            let scratch = &mut self.relay.bufs.scratch;
            scratch.clear();
            let mut conn = Conn::new(&s.tcp, &mut s.tls);
            let got = conn.read(scratch.space());
            let (n, drained) = match got {
                Ok(Got::Bytes(n)) => (
                    n,
                    !closing && n < scratch.space().len() && !conn.peer_ended(),
                ),
                Ok(Got::Blocked) => (0, true),
                Ok(Got::Eof) | Err(_) => {
                    debug!("client {}: HTTP/2 connection ended", s.client_addr);
                    s.closing = true;
                    break;
                }
            };
            if n > 0 {
                s.input.extend_from_slice(&scratch.space()[..n]);
            }
            if !s.input.is_empty() {
                self.receive(key, now);
            }
            if drained {
                more = false;
                break;
            }
        }
        if more && self.sessions.get(key).is_some_and(|s| !s.closing) {
            // The turn's share is used; no event will say the rest is
            // there.
            self.sessions_again.push(key);
        }
        self.dirty_sessions.push(key);
        if self.sessions.get(key).is_some_and(|s| s.closing) {
            self.flush_session(key);
        }
    }

    /// Hands the input to the HTTP/2 state machine and acts on what it
    /// says.
    fn receive(&mut self, key: usize, now: Instant) {
        let s = &mut self.sessions[key];
        let input = mem::take(&mut s.input);
        let mut events = Vec::new();
        let received = s.h2.receive(&input, now, &mut s.out, &mut events);
        s.dirty = true;
        let taken = match received {
            Ok(n) => n,
            Err(e) => {
                info!(
                    "client {}: HTTP/2 connection error: {e}; closing",
                    s.client_addr
                );
                s.closing = true;
                input.len()
            }
        };
        for event in events {
            self.on_h2_event(key, event, now);
        }
        if let Some(s) = self.sessions.get_mut(key) {
            if taken < input.len() {
                s.input = input[taken..].to_vec();
            }
        }
    }

    fn on_h2_event(&mut self, key: usize, event: Event<'_>, now: Instant) {
        match event {
            Event::Request {
                stream,
                request,
                end_stream,
            } => self.open_stream(key, stream, &request, end_stream, now),
            Event::TooLarge { stream } => {
                let s = &mut self.sessions[key];
                s.refuse(stream, 431, "request header fields too large", now);
            }
            Event::Data {
                stream,
                data,
                end_stream,
            } => {
                let s = &mut self.sessions[key];
                let Some(slot) = s.streams.get(&stream) else {
                    // Its pair is gone: the octets are dropped, the
                    // window given back.
                    s.h2.release(stream, data.len() as u32, &mut s.out);
                    return;
                };
                let Some(pair_key) = slot.pair else {
                    s.h2.release(stream, data.len() as u32, &mut s.out);
                    return;
                };
                let inbound = slot.inbound;
                if let Some(io) = self.pairs.get_mut(pair_key).and_then(Pair::stream_io) {
                    if inbound == Inbound::Raw {
                        io.push(data, data.len() as u32);
                    } else {
                        let mut bytes = Vec::new();
                        bridge::request_data(inbound, data, end_stream, &mut bytes);
                        io.push(&bytes, data.len() as u32);
                    }
                    io.inbound_ended |= end_stream;
                }
                self.wake(
                    pair_key,
                    Ready {
                        readable: true,
                        writable: false,
                        closing: end_stream,
                    },
                );
            }
            Event::Trailers { stream, .. } => {
                let s = &mut self.sessions[key];
                let Some(pair_key) = s.streams.get(&stream).and_then(|slot| slot.pair) else {
                    return;
                };
                let inbound = s.streams[&stream].inbound;
                if let Some(io) = self.pairs.get_mut(pair_key).and_then(Pair::stream_io) {
                    let mut bytes = Vec::new();
                    bridge::request_data(inbound, b"", true, &mut bytes);
                    io.push(&bytes, 0);
                    io.inbound_ended = true;
                }
                self.wake(pair_key, Ready::READABLE);
            }
            Event::Reset { stream, .. } => {
                let s = &mut self.sessions[key];
                let Some(slot) = s.streams.remove(&stream) else {
                    return;
                };
                if slot.websocket {
                    self.metrics.h2_websocket_streams.sub(1);
                }
                if let Some(pair_key) = slot.pair {
                    // The client gave the stream up: so does the proxy, at
                    // once, with its upstream connection (a request still
                    // waiting for its answer would otherwise hold it until
                    // the response timeout).
                    if let Some(pair) = self.pairs.get_mut(pair_key) {
                        pair.client_reset();
                    }
                    self.settle(pair_key, Outcome::Close);
                }
                self.session_idle_check(key, now);
            }
            Event::WindowOpened { stream } => {
                let s = &mut self.sessions[key];
                let ids: Vec<u32> = if stream == 0 {
                    s.streams.keys().copied().collect()
                } else {
                    vec![stream]
                };
                for id in ids {
                    self.resume_stream(key, id, now);
                }
            }
            Event::PingAck { .. } | Event::GoAway { .. } => {}
        }
    }

    /// Sends what the window now allows of a stream's answer, and lets its
    /// pair write again if it has room.
    fn resume_stream(&mut self, key: usize, id: u32, now: Instant) {
        let s = &mut self.sessions[key];
        s.push(id, now);
        let Some(slot) = s.streams.get(&id) else {
            return;
        };
        let room = if slot.ended { 0 } else { s.room(slot) };
        let pair_key = slot.pair;
        let done = slot.ended && slot.pair.is_none();
        if done {
            self.forget_stream(key, id, now);
            return;
        }
        let Some(pair_key) = pair_key else {
            return;
        };
        let Some(pair) = self.pairs.get_mut(pair_key) else {
            return;
        };
        let wants = pair.wants_client_write();
        if let Some(io) = pair.stream_io() {
            io.room = room;
            if wants && room > 0 {
                self.wake(
                    pair_key,
                    Ready {
                        readable: false,
                        writable: true,
                        closing: false,
                    },
                );
            }
        }
    }

    /// A new stream: a pair for its request, or the proxy's own answer.
    fn open_stream(
        &mut self,
        key: usize,
        id: u32,
        request: &crate::h2::request::Request,
        end_stream: bool,
        now: Instant,
    ) {
        let s = &mut self.sessions[key];
        let mut head = Vec::new();
        let upgrade = match bridge::request_head(
            request,
            end_stream,
            crate::upstream::websocket_key,
            &mut head,
        ) {
            Ok(upgrade) => upgrade,
            Err(refusal) => {
                debug!(
                    "client {}: stream {id}: {} {}",
                    s.client_addr, refusal.status, refusal.reason
                );
                s.refuse(id, refusal.status, refusal.reason, now);
                return;
            }
        };
        let websocket = upgrade.key.is_some();
        let head_only = request.method == b"HEAD";
        let accept = upgrade.key.as_deref().map(crate::upstream::accept_for);
        s.streams.insert(
            id,
            Slot {
                pair: None,
                inbound: upgrade.inbound,
                answer: Answer::new(head_only, accept),
                pending: Vec::new(),
                finishing: false,
                ended: false,
                websocket,
            },
        );
        if websocket {
            self.metrics.h2_websocket_streams_total.add(1);
            self.metrics.h2_websocket_streams.add(1);
        } else {
            self.metrics.h2_request_streams_total.add(1);
        }
        let mut io = StreamIo::new(key, id);
        io.push(&head, 0);
        if end_stream {
            let mut tail = Vec::new();
            bridge::request_data(upgrade.inbound, b"", true, &mut tail);
            io.push(&tail, 0);
            io.inbound_ended = true;
        }
        io.room = STREAM_ROOM;
        let (addr, listener) = (s.client_addr, s.listener);
        // A stream takes its connection's configuration, as requests on a
        // kept HTTP/1.1 connection do (a reload sends GOAWAY to it).
        let gen = s.gen;
        self.serial = self.serial.wrapping_add(1);
        let pair_key = self
            .pairs
            .insert(Pair::new_stream(io, addr, listener, self.serial, gen));
        self.sessions[key]
            .streams
            .get_mut(&id)
            .expect("inserted")
            .pair = Some(pair_key);
        self.gens[gen].pairs += 1;
        let pair = &mut self.pairs[pair_key];
        let mut ctx = ctx!(self, pair_key, gen);
        let outcome = pair.start_stream(&mut ctx);
        self.settle(pair_key, outcome);
    }

    /// Runs a stream pair's turn for what its connection brought.
    fn wake(&mut self, pair_key: usize, ready: Ready) {
        if self.pairs.contains(pair_key) {
            self.dispatch(pair_key, Side::Client, ready);
        }
    }

    /// After a stream pair's turn: frames what it wrote (see
    /// [`Session::sync`]).
    pub(super) fn sync_stream(&mut self, pair_key: usize) {
        let now = self.at;
        let Some(io) = self.pairs.get_mut(pair_key).and_then(Pair::stream_io) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(io.session) else {
            io.reset = true;
            return;
        };
        s.sync(io, now);
        if s.dirty {
            self.dirty_sessions.push(io.session);
        }
        // The frames may have taken all it wrote: a pair that found the
        // stream full waits for room, and has it now.
        let room = io.room > 0;
        if room && self.pairs[pair_key].wants_client_write() {
            self.stream_wakes.push(pair_key);
        }
    }

    /// Runs the turns [`Worker::sync_stream`] found due: after the pairs'
    /// own, so one stream's writes never nest inside another's.
    pub(super) fn run_stream_wakes(&mut self) {
        let mut wakes = mem::take(&mut self.stream_wakes);
        for &pair_key in &wakes {
            self.wake(
                pair_key,
                Ready {
                    readable: false,
                    writable: true,
                    closing: false,
                },
            );
        }
        wakes.clear();
        if self.stream_wakes.is_empty() {
            self.stream_wakes = wakes;
        }
    }

    /// A stream pair is gone: what it wrote last is framed, then the
    /// stream ends, cleanly if the answer is through, else with
    /// RST_STREAM.
    pub(super) fn stream_closed(&mut self, pair: Pair) {
        let now = self.at;
        let Some(mut io) = pair.into_stream() else {
            return;
        };
        let (key, id) = (io.session, io.id);
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        s.sync(&mut io, now);
        if let Some(slot) = s.streams.get_mut(&id) {
            slot.pair = None;
            if !slot.finishing && !slot.ended {
                // The pair went without passing an end on: a reset.
                s.h2.cancel(id, ErrorCode::Cancel, &mut s.out);
                slot.ended = true;
                slot.pending = Vec::new();
            }
            if slot.ended {
                self.forget_stream(key, id, now);
            }
        }
        self.dirty_sessions.push(key);
    }

    /// A stream whose answer went out and whose pair is gone.
    fn forget_stream(&mut self, key: usize, id: u32, now: Instant) {
        let s = &mut self.sessions[key];
        if let Some(slot) = s.streams.remove(&id) {
            if slot.websocket {
                self.metrics.h2_websocket_streams.sub(1);
            }
        }
        if s.h2.is_open(id) {
            // The client's side is still open: what it sends is not wanted
            // (RFC 9113 §8.1).
            s.h2.cancel(id, ErrorCode::NoError, &mut s.out);
        }
        s.dirty = true;
        self.session_idle_check(key, now);
    }

    /// A session with no stream left: closes if it is going away.
    fn session_idle_check(&mut self, key: usize, now: Instant) {
        let s = &mut self.sessions[key];
        if s.streams.is_empty() {
            s.idle_since = now;
            if s.going_away {
                s.closing = true;
                self.dirty_sessions.push(key);
            }
        }
    }

    /// Writes the sessions that have frames waiting; the worker does this
    /// once per turn, so a turn's frames leave together.
    pub(super) fn flush_sessions(&mut self) {
        let mut dirty = mem::take(&mut self.dirty_sessions);
        dirty.sort_unstable();
        dirty.dedup();
        for &key in &dirty {
            self.flush_session(key);
        }
        dirty.clear();
        if self.dirty_sessions.is_empty() {
            self.dirty_sessions = dirty;
        }
    }

    fn flush_session(&mut self, key: usize) {
        let now = self.at;
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        s.dirty = false;
        let was_high = s.out.len() >= OUT_HIGH;
        let mut conn = Conn::new(&s.tcp, &mut s.tls);
        let failed = match conn.write_all(&s.out) {
            Ok(n) => {
                s.out.drain(..n);
                false
            }
            Err(e) => {
                debug!("client {}: HTTP/2 write failed: {e}", s.client_addr);
                true
            }
        };
        let flushed = !failed
            && match s.tls.as_mut().filter(|t| t.wants_flush()) {
                Some(tls) => tls.flush(&s.tcp).is_ok(),
                None => true,
            };
        if s.out.is_empty() {
            s.h2.flushed();
            // An idle connection holds no buffer but its HPACK tables.
            s.out = Vec::new();
        }
        let done = s.out.is_empty() && !s.tls.as_ref().is_some_and(|t| t.wants_flush());
        if failed || (s.closing && done) || (s.closing && !flushed) {
            self.close_session(key);
            return;
        }
        let want = s.want();
        if s.registered != Some(want) {
            let token = token::session(key);
            if self
                .poll
                .registry()
                .reregister(&mut s.tcp, token, want)
                .is_err()
            {
                self.close_session(key);
                return;
            }
            s.registered = Some(want);
        }
        if was_high && s.out.len() < OUT_HIGH {
            let ids: Vec<u32> = s.streams.keys().copied().collect();
            for id in ids {
                self.resume_stream(key, id, now);
            }
        }
    }

    /// Closes a session: its streams' pairs see a reset.
    pub(super) fn close_session(&mut self, key: usize) {
        let Some(mut s) = self.sessions.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut s.tcp);
        self.metrics.h2_connections.sub(1);
        let mut pairs = Vec::new();
        for (_, slot) in s.streams.drain() {
            if slot.websocket {
                self.metrics.h2_websocket_streams.sub(1);
            }
            pairs.extend(slot.pair);
        }
        for pair_key in pairs {
            if let Some(io) = self.pairs.get_mut(pair_key).and_then(Pair::stream_io) {
                io.reset = true;
                io.room = 0;
            }
            self.settle(pair_key, Outcome::Close);
        }
        self.release_client(s.gen, s.ip_counted, s.client_addr);
    }

    /// Closes sessions idle past the keep-alive timeout, and those whose
    /// client never acknowledged our SETTINGS; resets streams stalled on a
    /// shut window.
    pub(super) fn sweep_sessions(&mut self, now: Instant) {
        let idle = self.gens[self.current].config.keepalive.timeout;
        let mut ends = Vec::new();
        let mut stalled = Vec::new();
        for (key, s) in self.sessions.iter_mut() {
            if let Some(before) = now.checked_sub(STALL_TIMEOUT) {
                for id in s.h2.stalled_streams(before) {
                    info!(
                        "client {}: stream {id}: window shut for {STALL_TIMEOUT:?} with an answer waiting; resetting it",
                        s.client_addr
                    );
                    s.h2.cancel(id, ErrorCode::Cancel, &mut s.out);
                    s.dirty = true;
                    if let Some(slot) = s.streams.get_mut(&id) {
                        slot.ended = true;
                        slot.pending = Vec::new();
                        stalled.extend(slot.pair.map(|p| (key, id, p)));
                    }
                }
            }
            let unacked =
                s.h2.settings_unacked_since()
                    .is_some_and(|at| now.duration_since(at) > SETTINGS_TIMEOUT);
            let code = if unacked {
                info!(
                    "client {}: HTTP/2 SETTINGS not acknowledged within {SETTINGS_TIMEOUT:?}; closing",
                    s.client_addr
                );
                ErrorCode::SettingsTimeout
            } else if s.streams.is_empty() && now.duration_since(s.idle_since) > idle {
                debug!(
                    "client {}: HTTP/2 connection idle for {idle:?}, closing",
                    s.client_addr
                );
                ErrorCode::NoError
            } else {
                continue;
            };
            s.h2.go_away(code, &mut s.out);
            s.closing = true;
            ends.push(key);
        }
        for (key, id, pair_key) in stalled {
            if let Some(io) = self.pairs.get_mut(pair_key).and_then(Pair::stream_io) {
                io.reset = true;
                io.room = 0;
            }
            self.wake(
                pair_key,
                Ready {
                    readable: true,
                    writable: true,
                    closing: true,
                },
            );
            if self
                .sessions
                .get(key)
                .is_some_and(|s| s.streams.contains_key(&id))
            {
                self.dirty_sessions.push(key);
            }
        }
        for key in ends {
            self.flush_session(key);
        }
    }

    /// A drain (`keep`: none), or a reload (`keep`: the current
    /// configuration's): the other sessions say GOAWAY, and close once
    /// their streams (drained as tunnels like any other, on a drain) are
    /// gone.
    pub(super) fn retire_sessions(&mut self, keep: Option<usize>) {
        let now = self.at;
        let keys: Vec<usize> = self
            .sessions
            .iter()
            .filter(|(_, s)| keep != Some(s.gen) && !s.going_away)
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            let s = &mut self.sessions[key];
            s.going_away = true;
            s.h2.go_away(ErrorCode::NoError, &mut s.out);
            self.session_idle_check(key, now);
            self.dirty_sessions.push(key);
        }
    }
}
