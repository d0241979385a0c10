//! One blocking HTTP/2 client connection (RFC 9113) whose streams are
//! WebSockets opened by extended CONNECT (RFC 8441 §4), framed with the
//! proxy's own codec (`wsproxy_fast::h2::frame`, `::hpack`).
//!
//! Flow control: we grant the largest windows at once (the stream window
//! in our SETTINGS, the connection window by a WINDOW_UPDATE) and top the
//! connection's up as data arrives; a stream's 2^31-1 octets are never
//! topped up, far more than a run sends on one. Our sends wait for the
//! server's windows.

use std::collections::HashMap;
use std::io::{Read, Write};

use wsbench::ws::{close_payload, decode_frame, encode_frame, random_mask, Opcode};
use wsproxy_fast::h2::frame::{self, Decoded, Frame};
use wsproxy_fast::h2::hpack::decoder::Limits;
use wsproxy_fast::h2::hpack::{Decoder, Encoder, Field};
use wsproxy_fast::h2::settings::{
    Settings, DEFAULT_HEADER_TABLE_SIZE, DEFAULT_WINDOW_SIZE, MAX_WINDOW_SIZE, MIN_MAX_FRAME_SIZE,
};

use crate::tls::{Endpoint, Tls};

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Received octets after which we give the connection window back: half
/// the window, so the server never waits on us.
const WINDOW_REFILL: u32 = MAX_WINDOW_SIZE / 2;

/// Bytes read from TLS at a time.
const READ_CHUNK: usize = 64 * 1024;

/// One WebSocket stream.
#[derive(Default)]
struct Stream {
    /// The server's window for our DATA on this stream.
    send_window: i64,
    /// The `:status` of the answer, once it came.
    status: Option<u16>,
    /// WebSocket bytes received and not yet taken as frames.
    inbox: Vec<u8>,
    /// The server ended its side (END_STREAM) or reset the stream.
    ended: bool,
    /// RST_STREAM's error code, if the server reset it.
    reset: Option<u32>,
}

/// A connection and its open WebSocket streams, in the order opened.
pub struct Connection {
    tls: Tls,
    authority: String,
    path: String,
    encoder: Encoder,
    decoder: Decoder,
    /// Read but not yet decoded.
    input: Vec<u8>,
    output: Vec<u8>,
    streams: HashMap<u32, Stream>,
    /// Ids of the open WebSockets, the order their payloads are given in.
    open: Vec<u32>,
    next_id: u32,
    /// The server's connection window for our DATA.
    send_window: i64,
    /// The server's SETTINGS_INITIAL_WINDOW_SIZE.
    peer_initial_window: i64,
    peer_max_frame: u32,
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS, if it set one.
    peer_max_streams: Option<u32>,
    /// Octets received since the connection window was last topped up.
    received: u32,
    /// The field block being gathered from HEADERS and CONTINUATION.
    block: Option<(u32, bool, Vec<u8>)>,
}

impl Connection {
    /// Connects, exchanges SETTINGS (the server's must enable extended
    /// CONNECT) and opens `count` WebSocket streams.
    pub fn open(endpoint: &Endpoint, count: usize) -> Result<Self, String> {
        let tls = endpoint.connect()?;
        let mut conn = Self {
            tls,
            authority: endpoint.authority.clone(),
            path: endpoint.path.clone(),
            encoder: Encoder::new(DEFAULT_HEADER_TABLE_SIZE as usize, 4096, true),
            decoder: Decoder::new(
                DEFAULT_HEADER_TABLE_SIZE as usize,
                Limits {
                    max_string: 16 * 1024,
                    max_list: 64 * 1024,
                },
            ),
            input: Vec::with_capacity(READ_CHUNK),
            output: Vec::new(),
            streams: HashMap::new(),
            open: Vec::new(),
            next_id: 1,
            send_window: i64::from(DEFAULT_WINDOW_SIZE),
            peer_initial_window: i64::from(DEFAULT_WINDOW_SIZE),
            peer_max_frame: MIN_MAX_FRAME_SIZE,
            peer_max_streams: None,
            received: 0,
            block: None,
        };
        conn.output.extend_from_slice(PREFACE);
        Frame::Settings {
            ack: false,
            settings: Settings {
                enable_push: Some(false),
                initial_window_size: Some(MAX_WINDOW_SIZE),
                ..Settings::default()
            },
        }
        .encode(&mut conn.output);
        Frame::WindowUpdate {
            stream: 0,
            increment: MAX_WINDOW_SIZE - DEFAULT_WINDOW_SIZE,
        }
        .encode(&mut conn.output);
        conn.flush()?;
        // The server's SETTINGS come first (§3.4); extended CONNECT is
        // allowed only once they enable it (RFC 8441 §3).
        let settings = loop {
            if let Some(settings) = conn.first_settings()? {
                break settings;
            }
            conn.read_some()
                .map_err(|err| format!("waiting for the server's SETTINGS: {err}"))?;
        };
        if settings.enable_connect_protocol != Some(true) {
            return Err(
                "the server's SETTINGS do not enable extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL)"
                    .into(),
            );
        }
        conn.open_streams(count)?;
        Ok(conn)
    }

    /// Decodes the first frame, which must be the server's SETTINGS, and
    /// applies it; `None` until it is all there.
    fn first_settings(&mut self) -> Result<Option<Settings>, String> {
        let (settings, len) = match frame::decode(&self.input, MIN_MAX_FRAME_SIZE) {
            Ok(Decoded::NeedMore) => return Ok(None),
            Ok(Decoded::Frame {
                frame:
                    Frame::Settings {
                        ack: false,
                        settings,
                    },
                len,
            }) => (settings, len),
            Ok(other) => {
                return Err(format!(
                    "the server's first frame is not SETTINGS: {other:?}"
                ))
            }
            Err(err) => return Err(format!("the server's first frame: {err:?}")),
        };
        self.input.drain(..len);
        self.apply_settings(&settings)?;
        Ok(Some(settings))
    }

    fn apply_settings(&mut self, settings: &Settings) -> Result<(), String> {
        if let Some(size) = settings.initial_window_size {
            let delta = i64::from(size) - self.peer_initial_window;
            self.peer_initial_window = i64::from(size);
            for stream in self.streams.values_mut() {
                stream.send_window += delta;
            }
        }
        if let Some(max) = settings.max_frame_size {
            self.peer_max_frame = max;
        }
        if let Some(max) = settings.max_concurrent_streams {
            self.peer_max_streams = Some(max);
        }
        if let Some(size) = settings.header_table_size {
            self.encoder.set_max_table_size(size as usize);
        }
        Frame::Settings {
            ack: true,
            settings: Settings::default(),
        }
        .encode(&mut self.output);
        Ok(())
    }

    /// Opens `count` more WebSocket streams and waits for every answer to
    /// be `:status 200`.
    pub fn open_streams(&mut self, count: usize) -> Result<(), String> {
        let first = self.open.len();
        if let Some(max) = self.peer_max_streams {
            if first + count > max as usize {
                return Err(format!(
                    "{} streams on one connection asked for, the server allows {max}",
                    first + count
                ));
            }
        }
        for _ in 0..count {
            let id = self.next_id;
            self.next_id += 2;
            let mut block = Vec::new();
            self.encoder.encode(
                [
                    Field::new(b":method", b"CONNECT"),
                    Field::new(b":protocol", b"websocket"),
                    Field::new(b":scheme", b"https"),
                    Field::new(b":authority", self.authority.as_bytes()),
                    Field::new(b":path", self.path.as_bytes()),
                    Field::new(b"sec-websocket-version", b"13"),
                ],
                &mut block,
            );
            frame::encode_field_block(&mut self.output, id, &block, false, self.peer_max_frame);
            self.streams.insert(
                id,
                Stream {
                    send_window: self.peer_initial_window,
                    ..Stream::default()
                },
            );
            self.open.push(id);
        }
        self.flush()?;
        for i in first..self.open.len() {
            let id = self.open[i];
            loop {
                let stream = &self.streams[&id];
                match (stream.status, stream.reset) {
                    (Some(200), _) => break,
                    (Some(status), _) => {
                        return Err(format!("extended CONNECT answered :status {status}"))
                    }
                    (None, Some(code)) => {
                        return Err(format!("extended CONNECT reset (error code {code:#x})"))
                    }
                    (None, None) if stream.ended => {
                        return Err("extended CONNECT ended without an answer".into())
                    }
                    (None, None) => self.read_more().map_err(|err| {
                        format!("waiting for the answer to extended CONNECT: {err}")
                    })?,
                }
            }
        }
        Ok(())
    }

    /// Sends `payloads[i]` on the i-th open WebSocket as one masked binary
    /// message, then reads every echo and checks it.
    pub fn echo_round(&mut self, payloads: &[Vec<u8>]) -> Result<(), String> {
        let ids = self.open.clone();
        let mut message = Vec::new();
        for (&id, payload) in ids.iter().zip(payloads) {
            message.clear();
            encode_frame(
                &mut message,
                true,
                Opcode::Binary,
                payload,
                Some(random_mask()),
            );
            self.send_data(id, &message, false)?;
        }
        self.flush()?;
        for (&id, payload) in ids.iter().zip(payloads) {
            let frame = loop {
                let stream = self
                    .streams
                    .get_mut(&id)
                    .expect("open streams are in the map");
                match decode_frame(&stream.inbox) {
                    Ok(Some((frame, len))) => {
                        stream.inbox.drain(..len);
                        break frame;
                    }
                    Ok(None) if stream.ended => {
                        return Err(format!(
                            "stream {id} ended before its echo (reset: {:?})",
                            stream.reset
                        ))
                    }
                    Ok(None) => self
                        .read_more()
                        .map_err(|err| format!("waiting for an echo: {err}"))?,
                    Err(err) => return Err(format!("stream {id}: {err:?}")),
                }
            };
            if frame.opcode != Opcode::Binary || frame.payload != *payload {
                return Err(format!(
                    "stream {id}: a {:?} frame of {} bytes is not the {} bytes sent",
                    frame.opcode,
                    frame.payload.len(),
                    payload.len()
                ));
            }
        }
        Ok(())
    }

    /// Closes every open WebSocket: a Close frame with END_STREAM, then
    /// waits until the server has ended or reset each stream.
    pub fn close_all(&mut self) -> Result<(), String> {
        let mut message = Vec::new();
        for i in 0..self.open.len() {
            message.clear();
            encode_frame(
                &mut message,
                true,
                Opcode::Close,
                &close_payload(1000, ""),
                Some(random_mask()),
            );
            self.send_data(self.open[i], &message, true)?;
        }
        self.flush()?;
        for id in std::mem::take(&mut self.open) {
            while !self.streams[&id].ended {
                self.read_more()
                    .map_err(|err| format!("waiting for the end of a closed stream: {err}"))?;
            }
            self.streams.remove(&id);
        }
        Ok(())
    }

    /// Queues `data` on stream `id` as DATA frames, waiting for the
    /// server's windows when they are short.
    fn send_data(&mut self, id: u32, mut data: &[u8], end_stream: bool) -> Result<(), String> {
        loop {
            let stream_window = self.streams[&id].send_window;
            let room = self
                .send_window
                .min(stream_window)
                .min(i64::from(self.peer_max_frame));
            let take = data.len().min(room.max(0) as usize);
            if take > 0 || data.is_empty() {
                let (now, rest) = data.split_at(take);
                Frame::Data {
                    stream: id,
                    end_stream: end_stream && rest.is_empty(),
                    data: now,
                    pad: None,
                }
                .encode(&mut self.output);
                self.send_window -= take as i64;
                if let Some(stream) = self.streams.get_mut(&id) {
                    stream.send_window -= take as i64;
                }
                data = rest;
                if data.is_empty() {
                    return Ok(());
                }
            } else {
                self.flush()?;
                self.read_more()?;
            }
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        if !self.output.is_empty() {
            self.tls
                .write_all(&self.output)
                .and_then(|()| self.tls.flush())
                .map_err(|err| format!("send: {err}"))?;
            self.output.clear();
        }
        Ok(())
    }

    /// Reads what the server sent (blocking until something comes) and
    /// handles every whole frame in it.
    fn read_more(&mut self) -> Result<(), String> {
        self.read_some()?;
        let mut at = 0;
        loop {
            let (len, outcome) = match frame::decode(&self.input[at..], MIN_MAX_FRAME_SIZE) {
                Ok(Decoded::NeedMore) => break,
                Ok(Decoded::Frame { frame, len }) => (len, owned(frame)),
                Ok(Decoded::StreamError { error, .. }) => {
                    return Err(format!("a malformed frame from the server: {error:?}"))
                }
                Err(err) => return Err(format!("a malformed frame from the server: {err:?}")),
            };
            at += len;
            self.handle(outcome)?;
        }
        self.input.drain(..at);
        self.flush()
    }

    /// Appends what the server sent to the input, blocking until something
    /// comes.
    fn read_some(&mut self) -> Result<(), String> {
        let start = self.input.len();
        self.input.resize(start + READ_CHUNK, 0);
        let n = match self.tls.read(&mut self.input[start..]) {
            Ok(0) => {
                self.input.truncate(start);
                return Err("the server closed the connection".into());
            }
            Ok(n) => n,
            Err(err) => {
                self.input.truncate(start);
                return Err(format!("read: {err}"));
            }
        };
        self.input.truncate(start + n);
        Ok(())
    }

    fn handle(&mut self, frame: Owned) -> Result<(), String> {
        match frame {
            Owned::Data {
                stream,
                end_stream,
                data,
                flow_len,
            } => {
                self.received += flow_len;
                if self.received >= WINDOW_REFILL {
                    Frame::WindowUpdate {
                        stream: 0,
                        increment: self.received,
                    }
                    .encode(&mut self.output);
                    self.received = 0;
                }
                if let Some(s) = self.streams.get_mut(&stream) {
                    s.inbox.extend_from_slice(&data);
                    s.ended |= end_stream;
                }
            }
            Owned::Headers {
                stream,
                end_stream,
                end_headers,
                fragment,
            } => {
                self.block = Some((stream, end_stream, fragment));
                if end_headers {
                    self.end_block()?;
                }
            }
            Owned::Continuation {
                end_headers,
                fragment,
            } => {
                let Some((_, _, block)) = self.block.as_mut() else {
                    return Err("CONTINUATION without HEADERS".into());
                };
                block.extend_from_slice(&fragment);
                if end_headers {
                    self.end_block()?;
                }
            }
            Owned::Reset { stream, code } => {
                if let Some(s) = self.streams.get_mut(&stream) {
                    s.reset = Some(code);
                    s.ended = true;
                }
            }
            Owned::Settings(settings) => self.apply_settings(&settings)?,
            Owned::Ping(data) => Frame::Ping { ack: true, data }.encode(&mut self.output),
            Owned::GoAway { code, debug } => {
                return Err(format!(
                    "GOAWAY from the server (error code {code:#x}: {debug:?})"
                ))
            }
            Owned::WindowUpdate { stream, increment } => {
                if stream == 0 {
                    self.send_window += i64::from(increment);
                } else if let Some(s) = self.streams.get_mut(&stream) {
                    s.send_window += i64::from(increment);
                }
            }
            Owned::Other => {}
        }
        Ok(())
    }

    /// Decodes a whole field block: the `:status` of an answer (a second
    /// block, trailers, carries none we need).
    fn end_block(&mut self) -> Result<(), String> {
        let (stream, end_stream, block) = self.block.take().expect("a block is being gathered");
        let mut status = None;
        self.decoder
            .decode(&block, |name, value| {
                if name == b":status" {
                    status = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
                }
            })
            .map_err(|err| format!("HPACK: {err:?}"))?;
        if let Some(s) = self.streams.get_mut(&stream) {
            if s.status.is_none() {
                s.status = Some(status.ok_or("an answer without :status")?);
            }
            s.ended |= end_stream;
        }
        Ok(())
    }
}

/// A frame with its payload copied out of the read buffer.
enum Owned {
    Data {
        stream: u32,
        end_stream: bool,
        data: Vec<u8>,
        /// What it counts against flow control, padding included.
        flow_len: u32,
    },
    Headers {
        stream: u32,
        end_stream: bool,
        end_headers: bool,
        fragment: Vec<u8>,
    },
    Continuation {
        end_headers: bool,
        fragment: Vec<u8>,
    },
    Reset {
        stream: u32,
        code: u32,
    },
    Settings(Settings),
    Ping([u8; 8]),
    GoAway {
        code: u32,
        debug: String,
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
    Other,
}

fn owned(frame: Frame<'_>) -> Owned {
    let flow_len = frame.flow_len();
    match frame {
        Frame::Data {
            stream,
            end_stream,
            data,
            ..
        } => Owned::Data {
            stream,
            end_stream,
            data: data.to_vec(),
            flow_len,
        },
        Frame::Headers {
            stream,
            end_stream,
            end_headers,
            fragment,
            ..
        } => Owned::Headers {
            stream,
            end_stream,
            end_headers,
            fragment: fragment.to_vec(),
        },
        Frame::Continuation {
            end_headers,
            fragment,
            ..
        } => Owned::Continuation {
            end_headers,
            fragment: fragment.to_vec(),
        },
        Frame::RstStream { stream, code } => Owned::Reset { stream, code },
        Frame::Settings {
            ack: false,
            settings,
        } => Owned::Settings(settings),
        Frame::Ping { ack: false, data } => Owned::Ping(data),
        Frame::GoAway { code, debug, .. } => Owned::GoAway {
            code,
            debug: String::from_utf8_lossy(debug).into_owned(),
        },
        Frame::WindowUpdate { stream, increment } => Owned::WindowUpdate { stream, increment },
        _ => Owned::Other,
    }
}
