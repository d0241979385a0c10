//! One HTTP/2 server connection as a state machine, sans I/O: bytes in
//! ([`Conn::receive`]), events out, frames written into a caller's `Vec`;
//! no socket and no clock (the caller passes `now`).
//!
//! It checks the preface and that SETTINGS comes first (RFC 9113 §3.4),
//! sends our SETTINGS and tracks their ACK, answers SETTINGS and PING,
//! keeps each stream's state (§5.1; idle streams are those above the
//! highest the peer opened, closed ones are forgotten but for a short list
//! of streams we reset, whose late frames are ignored), enforces
//! `MAX_CONCURRENT_STREAMS`, and keeps both flow-control windows of the
//! connection and of every stream, in both directions (§6.9).
//!
//! Against the published attacks it counts, and ends the connection with
//! ENHANCE_YOUR_CALM past a limit: stream resets per interval, by the peer
//! or provoked by it (rapid reset, CVE-2023-44487); empty DATA frames per
//! interval (CVE-2019-9518); control answers owed while the caller has
//! not flushed (SETTINGS and PING floods). HPACK and
//! field block limits are in [`hpack`](super::hpack) and
//! [`block`](super::block); a send blocked on a zero window is reported by
//! [`Conn::stalled_since`] for the caller to time out.
//!
//! `conn/config.rs` holds what a connection allows and its defaults,
//! `conn/flow.rs` the flow control in both directions.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::block::{Assembler, Block};
use super::error::{ConnError, ErrorCode};
use super::frame::{self, Decoded, Frame};
use super::hpack::{self, Decoder, Encoder, Field};
use super::request::{Fields, Request, RequestBuilder, RequestError};
use super::settings::{Settings, DEFAULT_WINDOW_SIZE, MAX_WINDOW_SIZE, MIN_MAX_FRAME_SIZE};

/// The client connection preface (§3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How many streams we reset are remembered, so frames the peer sent
/// before it saw the reset are ignored rather than taken as errors (§5.1,
/// "closed").
const RECENT_RESETS: usize = 64;

/// Events counted over an interval: the count restarts when `interval`
/// has passed since the first of the current run.
#[derive(Debug, Default)]
struct RateCounter {
    count: u32,
    since: Option<Instant>,
}

impl RateCounter {
    /// Counts one event at `now`; the count within the interval.
    fn count(&mut self, now: Instant, interval: Duration) -> u32 {
        match self.since {
            Some(since) if now.duration_since(since) < interval => self.count += 1,
            _ => {
                self.since = Some(now);
                self.count = 1;
            }
        }
        self.count
    }
}

/// Something the caller acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A new stream with a checked request head.
    Request {
        /// The stream.
        stream: u32,
        /// The head.
        request: Request,
        /// No body follows.
        end_stream: bool,
    },
    /// A new stream whose header list is over our limit: answer 431.
    TooLarge {
        /// The stream.
        stream: u32,
    },
    /// Body octets of a stream; [`Conn::release`] them once consumed or
    /// dropped, even after the stream ended, or the connection window
    /// stays closed by them.
    Data {
        /// The stream.
        stream: u32,
        /// The octets, borrowed from the input.
        data: &'a [u8],
        /// The peer's side of the stream ends here.
        end_stream: bool,
    },
    /// Trailers ended the peer's side of a stream.
    Trailers {
        /// The stream.
        stream: u32,
        /// The trailer fields, checked as §8.1 and §8.2 require.
        fields: Fields,
    },
    /// The stream was reset, by the peer or by us for its fault.
    Reset {
        /// The stream.
        stream: u32,
        /// Why.
        code: u32,
    },
    /// A send window grew: try sending again (0 for the connection).
    WindowOpened {
        /// The stream, or 0.
        stream: u32,
    },
    /// The peer answered our PING.
    PingAck {
        /// The opaque data.
        data: [u8; 8],
    },
    /// The peer is going away: no stream above `last_stream` was seen.
    GoAway {
        /// The highest stream it processed.
        last_stream: u32,
        /// Why.
        code: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StreamState {
    Open,
    /// We sent END_STREAM.
    HalfClosedLocal,
    /// The peer sent END_STREAM.
    HalfClosedRemote,
}

#[derive(Debug)]
struct Stream {
    state: StreamState,
    send_window: i64,
    recv_window: i64,
    /// Octets consumed since the last WINDOW_UPDATE we sent for it.
    consumed: u32,
    /// Since when a send has been held back by a window, without progress.
    stalled_since: Option<Instant>,
    /// Body octets still to come by the request's `content-length`.
    remaining: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the client preface.
    Preface,
    /// The preface arrived; the next frame has to be SETTINGS.
    FirstSettings,
    /// Streams come and go.
    Open,
    /// We sent GOAWAY naming `last_stream`: streams above it are ignored.
    Draining {
        /// The last stream we took.
        last_stream: u32,
    },
    /// A connection error ended it; nothing more is read.
    Closed,
}

/// One server connection.
#[derive(Debug)]
pub struct Conn {
    config: Config,
    phase: Phase,
    decoder: Decoder,
    encoder: Encoder,
    assembler: Assembler,
    streams: HashMap<u32, Stream>,
    recent_resets: VecDeque<u32>,
    /// The highest stream the peer opened (§5.1.1).
    last_peer_stream: u32,
    /// Our SETTINGS, sent at this time and not yet acknowledged.
    settings_sent: Option<Instant>,
    /// The stream receive window the peer uses for new streams: 65 535
    /// until it acknowledges ours.
    recv_initial: u32,
    /// The peer's `SETTINGS_INITIAL_WINDOW_SIZE`.
    send_initial: u32,
    /// The peer's `SETTINGS_MAX_FRAME_SIZE`.
    peer_max_frame: u32,
    conn_send: i64,
    conn_recv: i64,
    conn_consumed: u32,
    resets: RateCounter,
    empty_data: RateCounter,
    owed: u32,
}

fn calm(reason: &'static str) -> ConnError {
    ConnError::new(ErrorCode::EnhanceYourCalm, reason)
}

impl Conn {
    /// A connection that has read nothing; [`Conn::start`] writes our
    /// side of the preface.
    pub fn new(config: Config) -> Self {
        let limits = hpack::Limits {
            max_string: config.max_header_string as usize,
            max_list: config.max_header_list_size as usize,
        };
        Self {
            config,
            phase: Phase::Preface,
            // Until the peer acknowledges our SETTINGS it may use the
            // default table size (§6.5.3); ours takes effect on the ACK.
            decoder: Decoder::new(4096, limits),
            encoder: Encoder::new(4096, config.encoder_table_cap as usize, true),
            assembler: Assembler::new(config.block),
            streams: HashMap::new(),
            recent_resets: VecDeque::new(),
            last_peer_stream: 0,
            settings_sent: None,
            recv_initial: DEFAULT_WINDOW_SIZE,
            send_initial: DEFAULT_WINDOW_SIZE,
            peer_max_frame: MIN_MAX_FRAME_SIZE,
            conn_send: i64::from(DEFAULT_WINDOW_SIZE),
            conn_recv: i64::from(DEFAULT_WINDOW_SIZE),
            conn_consumed: 0,
            resets: RateCounter::default(),
            empty_data: RateCounter::default(),
            owed: 0,
        }
    }

    /// Writes our SETTINGS (the server preface, §3.4) and the WINDOW_UPDATE
    /// that opens the connection window to its configured size.
    pub fn start(&mut self, now: Instant, out: &mut Vec<u8>) {
        let c = &self.config;
        let settings = Settings {
            header_table_size: Some(c.header_table_size),
            enable_push: Some(false),
            max_concurrent_streams: Some(c.max_concurrent_streams),
            initial_window_size: Some(c.initial_window_size),
            max_frame_size: Some(c.max_frame_size),
            max_header_list_size: Some(c.max_header_list_size),
            enable_connect_protocol: Some(c.enable_connect_protocol),
        };
        Frame::Settings {
            ack: false,
            settings,
        }
        .encode(out);
        self.settings_sent = Some(now);
        let target = i64::from(c.connection_window);
        if target > self.conn_recv {
            let increment = (target - self.conn_recv) as u32;
            Frame::WindowUpdate {
                stream: 0,
                increment,
            }
            .encode(out);
            self.conn_recv = target;
        }
    }

    /// Since when our SETTINGS wait for their ACK (SETTINGS_TIMEOUT is the
    /// caller's to enforce, §6.5.3).
    pub fn settings_unacked_since(&self) -> Option<Instant> {
        self.settings_sent
    }

    /// Whether `stream` is open or half-closed (not yet closed both ways).
    pub fn is_open(&self, stream: u32) -> bool {
        self.streams.contains_key(&stream)
    }

    /// The streams open or half-closed.
    pub fn active_streams(&self) -> usize {
        self.streams.len()
    }

    /// The answers owed were written out: the flood count starts again.
    pub fn flushed(&mut self) {
        self.owed = 0;
    }

    /// Whether the connection ended with a connection error.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Reads as many whole frames from `input` as it holds; returns the
    /// octets taken (the rest is an incomplete frame, to be offered again
    /// with more). On a connection error a GOAWAY is written to `out` and
    /// the error returned: close after writing `out`.
    pub fn receive<'a>(
        &mut self,
        input: &'a [u8],
        now: Instant,
        out: &mut Vec<u8>,
        events: &mut Vec<Event<'a>>,
    ) -> Result<usize, ConnError> {
        if self.phase == Phase::Closed {
            return Ok(0);
        }
        let result = self.read_frames(input, now, out, events);
        if let Err(e) = &result {
            Frame::GoAway {
                last_stream: self.last_taken(),
                code: e.code.to_u32(),
                debug: e.reason.as_bytes(),
            }
            .encode(out);
            self.phase = Phase::Closed;
        }
        result
    }

    fn read_frames<'a>(
        &mut self,
        input: &'a [u8],
        now: Instant,
        out: &mut Vec<u8>,
        events: &mut Vec<Event<'a>>,
    ) -> Result<usize, ConnError> {
        let mut pos = 0;
        if self.phase == Phase::Preface {
            let n = input.len().min(PREFACE.len());
            if input[..n] != PREFACE[..n] {
                return Err(ConnError::new(ErrorCode::ProtocolError, "bad preface"));
            }
            if n < PREFACE.len() {
                return Ok(0);
            }
            pos = PREFACE.len();
            self.phase = Phase::FirstSettings;
        }
        loop {
            match frame::decode(&input[pos..], self.config.max_frame_size)? {
                Decoded::NeedMore => return Ok(pos),
                Decoded::StreamError { error, len } => {
                    if self.phase == Phase::FirstSettings {
                        return Err(ConnError::new(
                            ErrorCode::ProtocolError,
                            "first frame not SETTINGS",
                        ));
                    }
                    if self.assembler.expecting().is_some()
                        || input[pos + 3] == frame::HEADERS
                        || error.stream > self.last_peer_stream
                    {
                        // A HEADERS frame refused before its block was
                        // decoded leaves the HPACK table behind the
                        // peer's (§4.3), and an idle stream cannot be
                        // reset (§6.4): only a connection error is left.
                        return Err(ConnError::new(error.code, error.reason));
                    }
                    pos += len;
                    self.reset(error.stream, error.code, now, out, events)?;
                }
                Decoded::Frame { frame, len } => {
                    pos += len;
                    self.on_frame(frame, now, out, events)?;
                }
            }
        }
    }

    fn on_frame<'a>(
        &mut self,
        frame: Frame<'a>,
        now: Instant,
        out: &mut Vec<u8>,
        events: &mut Vec<Event<'a>>,
    ) -> Result<(), ConnError> {
        if self.phase == Phase::FirstSettings {
            if !matches!(frame, Frame::Settings { ack: false, .. }) {
                return Err(ConnError::new(
                    ErrorCode::ProtocolError,
                    "first frame not SETTINGS",
                ));
            }
            self.phase = Phase::Open;
        }
        if let Some(block) = self.assembler.take(&frame)? {
            return self.on_block(block, now, out, events);
        }
        match frame {
            // Fed to the assembler above.
            Frame::Headers { .. } | Frame::Continuation { .. } => Ok(()),
            Frame::Data {
                stream,
                end_stream,
                data,
                ..
            } => self.on_data(stream, data, frame.flow_len(), end_stream, now, out, events),
            Frame::Priority { .. } | Frame::Unknown { .. } => Ok(()),
            Frame::RstStream { stream, code } => {
                if stream > self.last_peer_stream {
                    return Err(ConnError::new(
                        ErrorCode::ProtocolError,
                        "RST_STREAM on an idle stream",
                    ));
                }
                self.count_reset(now)?;
                if self.streams.remove(&stream).is_some() {
                    events.push(Event::Reset { stream, code });
                }
                Ok(())
            }
            Frame::Settings { ack: true, .. } => {
                if self.settings_sent.take().is_some() {
                    self.apply_our_settings();
                }
                Ok(())
            }
            Frame::Settings {
                ack: false,
                settings,
            } => {
                self.apply_peer_settings(&settings)?;
                Frame::Settings {
                    ack: true,
                    settings: Settings::default(),
                }
                .encode(out);
                self.owe()
            }
            Frame::Ping { ack: true, data } => {
                events.push(Event::PingAck { data });
                Ok(())
            }
            Frame::Ping { ack: false, data } => {
                Frame::Ping { ack: true, data }.encode(out);
                self.owe()
            }
            Frame::GoAway {
                last_stream, code, ..
            } => {
                events.push(Event::GoAway { last_stream, code });
                Ok(())
            }
            Frame::WindowUpdate { stream, increment } => {
                self.on_window_update(stream, increment, now, out, events)
            }
        }
    }

    /// The highest stream we took: the peer's last, or the one our GOAWAY
    /// named.
    fn last_taken(&self) -> u32 {
        match self.phase {
            Phase::Draining { last_stream } => last_stream,
            _ => self.last_peer_stream,
        }
    }

    /// Whether `stream` is one our GOAWAY made us ignore.
    fn ignored(&self, stream: u32) -> bool {
        matches!(self.phase, Phase::Draining { last_stream } if stream > last_stream)
    }

    fn owe(&mut self) -> Result<(), ConnError> {
        self.owed += 1;
        if self.owed > self.config.max_owed_answers {
            return Err(calm("too many answers owed (SETTINGS or PING flood)"));
        }
        Ok(())
    }

    fn count_reset(&mut self, now: Instant) -> Result<(), ConnError> {
        if self.resets.count(now, self.config.reset_interval) > self.config.max_resets {
            return Err(calm("too many stream resets (rapid reset)"));
        }
        Ok(())
    }

    /// Our SETTINGS took effect (the peer acknowledged them).
    fn apply_our_settings(&mut self) {
        let delta = i64::from(self.config.initial_window_size) - i64::from(self.recv_initial);
        for s in self.streams.values_mut() {
            s.recv_window += delta;
        }
        self.recv_initial = self.config.initial_window_size;
        self.decoder
            .set_max_table_size(self.config.header_table_size as usize);
    }

    fn apply_peer_settings(&mut self, settings: &Settings) -> Result<(), ConnError> {
        if let Some(size) = settings.initial_window_size {
            // §6.9.2: the change applies to every stream's send window,
            // which may go negative but not past 2^31-1.
            let delta = i64::from(size) - i64::from(self.send_initial);
            for s in self.streams.values_mut() {
                s.send_window += delta;
                if s.send_window > i64::from(MAX_WINDOW_SIZE) {
                    return Err(ConnError::new(
                        ErrorCode::FlowControlError,
                        "INITIAL_WINDOW_SIZE overflows a stream window",
                    ));
                }
            }
            self.send_initial = size;
        }
        if let Some(size) = settings.max_frame_size {
            self.peer_max_frame = size;
        }
        if let Some(size) = settings.header_table_size {
            self.encoder.set_max_table_size(size as usize);
        }
        Ok(())
    }

    fn on_block<'a>(
        &mut self,
        block: Block<'_>,
        now: Instant,
        out: &mut Vec<u8>,
        events: &mut Vec<Event<'a>>,
    ) -> Result<(), ConnError> {
        let stream = block.stream;
        // The block is decoded whatever becomes of the stream: the HPACK
        // table has to stay in step with the peer's (§4.3).
        let mut builder = RequestBuilder::new(self.config.enable_connect_protocol);
        let size = self
            .decoder
            .decode(&block.fragment, |n, v| builder.field(n, v))
            .map_err(|e| ConnError::new(ErrorCode::CompressionError, e.0))?;
        if let Some(s) = self.streams.get_mut(&stream) {
            // A second block on a stream: trailers, which end it.
            if s.state == StreamState::HalfClosedRemote {
                return self.reset(stream, ErrorCode::StreamClosed, now, out, events);
            }
            if !block.end_stream {
                return self.reset(stream, ErrorCode::ProtocolError, now, out, events);
            }
            if s.remaining.is_some_and(|r| r != 0) {
                return self.reset(stream, ErrorCode::ProtocolError, now, out, events);
            }
            let fields = match builder.finish_trailers(stream, size) {
                Ok(fields) => fields,
                Err(RequestError::Malformed(e)) => {
                    return self.reset(e.stream, e.code, now, out, events);
                }
                // Trailers over the limit cannot be answered with a 431
                // (the request is under way): refuse the stream.
                Err(RequestError::TooLarge(_)) => {
                    return self.reset(stream, ErrorCode::ProtocolError, now, out, events);
                }
            };
            self.close_remote(stream);
            events.push(Event::Trailers { stream, fields });
            return Ok(());
        }
        if self.recent_resets.contains(&stream) {
            return Ok(());
        }
        if stream <= self.last_peer_stream {
            return Err(ConnError::new(
                ErrorCode::StreamClosed,
                "HEADERS on a closed stream",
            ));
        }
        if stream % 2 == 0 {
            return Err(ConnError::new(
                ErrorCode::ProtocolError,
                "even stream from a client",
            ));
        }
        self.last_peer_stream = stream;
        if self.ignored(stream) {
            // §6.8: streams above the GOAWAY's last stream are ignored.
            return Ok(());
        }
        if self.streams.len() >= self.config.max_concurrent_streams as usize {
            return self.reset(stream, ErrorCode::RefusedStream, now, out, events);
        }
        let request = match builder.finish(stream, size) {
            Ok(request) => Some(request),
            Err(RequestError::TooLarge(_)) => None,
            Err(RequestError::Malformed(e)) => {
                return self.reset(e.stream, e.code, now, out, events);
            }
        };
        self.streams.insert(
            stream,
            Stream {
                state: if block.end_stream {
                    StreamState::HalfClosedRemote
                } else {
                    StreamState::Open
                },
                send_window: i64::from(self.send_initial),
                recv_window: i64::from(self.recv_initial),
                consumed: 0,
                stalled_since: None,
                remaining: request.as_ref().and_then(|r| r.content_length),
            },
        );
        events.push(match request {
            Some(request) => Event::Request {
                stream,
                request,
                end_stream: block.end_stream,
            },
            None => Event::TooLarge { stream },
        });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn on_data<'a>(
        &mut self,
        stream: u32,
        data: &'a [u8],
        flow: u32,
        end_stream: bool,
        now: Instant,
        out: &mut Vec<u8>,
        events: &mut Vec<Event<'a>>,
    ) -> Result<(), ConnError> {
        if stream > self.last_peer_stream {
            return Err(ConnError::new(
                ErrorCode::ProtocolError,
                "DATA on an idle stream",
            ));
        }
        // Every DATA counts against the connection window, even on a
        // stream that is gone (§6.9).
        if i64::from(flow) > self.conn_recv {
            return Err(ConnError::new(
                ErrorCode::FlowControlError,
                "DATA beyond the connection window",
            ));
        }
        self.conn_recv -= i64::from(flow);
        let Some(s) = self.streams.get_mut(&stream) else {
            self.release_connection(flow, out);
            if self.recent_resets.contains(&stream) || self.ignored(stream) {
                return Ok(());
            }
            return Err(ConnError::new(
                ErrorCode::StreamClosed,
                "DATA on a closed stream",
            ));
        };
        if s.state == StreamState::HalfClosedRemote {
            self.release_connection(flow, out);
            return self.reset(stream, ErrorCode::StreamClosed, now, out, events);
        }
        if i64::from(flow) > s.recv_window {
            self.release_connection(flow, out);
            return self.reset(stream, ErrorCode::FlowControlError, now, out, events);
        }
        s.recv_window -= i64::from(flow);
        // §8.1.1: the DATA has to add up to the content-length.
        let length_broken = match &mut s.remaining {
            Some(remaining) => match remaining.checked_sub(data.len() as u64) {
                Some(left) => {
                    *remaining = left;
                    end_stream && left != 0
                }
                None => true,
            },
            None => false,
        };
        if length_broken {
            self.release_connection(flow, out);
            return self.reset(stream, ErrorCode::ProtocolError, now, out, events);
        }
        if flow == 0
            && !end_stream
            && self.empty_data.count(now, self.config.reset_interval) > self.config.max_empty_data
        {
            return Err(calm("too many empty DATA frames"));
        }
        // Padding is flow-controlled but never reaches the caller: give
        // it back at once.
        let padding = flow - data.len() as u32;
        if end_stream {
            self.close_remote(stream);
        }
        if padding > 0 {
            self.release(stream, padding, out);
        }
        events.push(Event::Data {
            stream,
            data,
            end_stream,
        });
        Ok(())
    }

    /// The peer's side of `stream` ended.
    fn close_remote(&mut self, stream: u32) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        match s.state {
            StreamState::Open => s.state = StreamState::HalfClosedRemote,
            StreamState::HalfClosedLocal => {
                self.streams.remove(&stream);
            }
            StreamState::HalfClosedRemote => {
                debug_assert!(false, "the peer's side of stream {stream} ended twice");
            }
        }
    }

    /// Our side of `stream` ended.
    fn close_local(&mut self, stream: u32) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        match s.state {
            StreamState::Open => s.state = StreamState::HalfClosedLocal,
            StreamState::HalfClosedRemote => {
                self.streams.remove(&stream);
            }
            StreamState::HalfClosedLocal => {
                debug_assert!(false, "our side of stream {stream} ended twice");
            }
        }
    }

    /// Resets `stream` for the peer's fault: RST_STREAM, counted against
    /// the reset budget.
    fn reset<'a>(
        &mut self,
        stream: u32,
        code: ErrorCode,
        now: Instant,
        out: &mut Vec<u8>,
        events: &mut Vec<Event<'a>>,
    ) -> Result<(), ConnError> {
        self.count_reset(now)?;
        let was_open = self.streams.contains_key(&stream);
        self.cancel(stream, code, out);
        if was_open {
            events.push(Event::Reset {
                stream,
                code: code.to_u32(),
            });
        }
        self.owe()
    }

    /// Ends `stream` with RST_STREAM `code` (the caller's decision, e.g.
    /// its upstream failed).
    pub fn cancel(&mut self, stream: u32, code: ErrorCode, out: &mut Vec<u8>) {
        Frame::RstStream {
            stream,
            code: code.to_u32(),
        }
        .encode(out);
        self.streams.remove(&stream);
        if self.recent_resets.len() == RECENT_RESETS {
            self.recent_resets.pop_front();
        }
        self.recent_resets.push_back(stream);
    }

    /// Sends GOAWAY naming the last stream we took (a graceful drain with
    /// NO_ERROR): streams above it are ignored from now on.
    pub fn go_away(&mut self, code: ErrorCode, out: &mut Vec<u8>) {
        let last_stream = self.last_taken();
        Frame::GoAway {
            last_stream,
            code: code.to_u32(),
            debug: b"",
        }
        .encode(out);
        if self.phase == Phase::Open {
            self.phase = Phase::Draining { last_stream };
        }
    }

    /// Sends a PING (for dead-peer detection); its answer is
    /// [`Event::PingAck`].
    pub fn ping(&mut self, data: [u8; 8], out: &mut Vec<u8>) {
        Frame::Ping { ack: false, data }.encode(out);
    }

    /// Writes a response or trailer head on `stream`; false (and nothing
    /// written) if our side of the stream is no longer open.
    pub fn send_headers<'f>(
        &mut self,
        stream: u32,
        fields: impl IntoIterator<Item = Field<'f>>,
        end_stream: bool,
        out: &mut Vec<u8>,
    ) -> bool {
        match self.streams.get(&stream) {
            Some(s) if s.state != StreamState::HalfClosedLocal => {}
            _ => return false,
        }
        let mut block = Vec::new();
        self.encoder.encode(fields, &mut block);
        frame::encode_field_block(out, stream, &block, end_stream, self.peer_max_frame);
        if end_stream {
            self.close_local(stream);
        }
        true
    }
}

mod config;
mod flow;

pub use config::Config;

#[cfg(test)]
mod tests;
