//! Flow control of one connection (RFC 9113 §5.2, §6.9): the peer's
//! WINDOW_UPDATEs, DATA sent within the peer's windows (and the stall a
//! zero window causes), and our windows given back as the caller consumes
//! what it received.

use std::time::Instant;

use super::{Conn, Event, StreamState};
use crate::h2::error::{ConnError, ErrorCode};
use crate::h2::frame::Frame;
use crate::h2::settings::MAX_WINDOW_SIZE;

impl Conn {
    /// Since when a send has been held back by a zero window without
    /// progress, the earliest over the streams.
    pub fn stalled_since(&self) -> Option<Instant> {
        self.streams.values().filter_map(|s| s.stalled_since).min()
    }

    /// The streams whose sends have been held back by a zero window,
    /// without progress, since before `before`.
    pub fn stalled_streams(&self, before: Instant) -> Vec<u32> {
        self.streams
            .iter()
            .filter(|(_, s)| s.stalled_since.is_some_and(|at| at < before))
            .map(|(&id, _)| id)
            .collect()
    }

    /// The peer's WINDOW_UPDATE: a window past 2^31-1 is a connection
    /// error on the connection, a stream error on a stream (§6.9.1).
    pub(super) fn on_window_update<'a>(
        &mut self,
        stream: u32,
        increment: u32,
        now: Instant,
        out: &mut Vec<u8>,
        events: &mut Vec<Event<'a>>,
    ) -> Result<(), ConnError> {
        if stream == 0 {
            self.conn_send += i64::from(increment);
            if self.conn_send > i64::from(MAX_WINDOW_SIZE) {
                return Err(ConnError::new(
                    ErrorCode::FlowControlError,
                    "connection window above 2^31-1",
                ));
            }
            events.push(Event::WindowOpened { stream: 0 });
            return Ok(());
        }
        if stream > self.last_peer_stream {
            return Err(ConnError::new(
                ErrorCode::ProtocolError,
                "WINDOW_UPDATE on an idle stream",
            ));
        }
        let Some(s) = self.streams.get_mut(&stream) else {
            // Closed: a late update is no error (§6.9).
            return Ok(());
        };
        s.send_window += i64::from(increment);
        if s.send_window > i64::from(MAX_WINDOW_SIZE) {
            return self.reset(stream, ErrorCode::FlowControlError, now, out, events);
        }
        events.push(Event::WindowOpened { stream });
        Ok(())
    }

    /// The caller consumed `n` octets of `stream`'s data: the windows
    /// reopen, with a WINDOW_UPDATE once half of a window is consumed (so
    /// a stream never holds more than its window, and updates stay few).
    pub fn release(&mut self, stream: u32, n: u32, out: &mut Vec<u8>) {
        self.release_connection(n, out);
        let target = self.recv_initial;
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        s.consumed += n;
        let live = matches!(s.state, StreamState::Open | StreamState::HalfClosedLocal);
        if live && s.consumed >= target / 2 {
            let increment = s.consumed;
            s.recv_window += i64::from(increment);
            s.consumed = 0;
            Frame::WindowUpdate { stream, increment }.encode(out);
        }
    }

    pub(super) fn release_connection(&mut self, n: u32, out: &mut Vec<u8>) {
        self.conn_consumed += n;
        if self.conn_consumed >= self.config.connection_window / 2 {
            let increment = self.conn_consumed;
            self.conn_recv += i64::from(increment);
            self.conn_consumed = 0;
            Frame::WindowUpdate {
                stream: 0,
                increment,
            }
            .encode(out);
        }
    }

    /// How many octets of DATA `stream` may send now.
    pub fn send_capacity(&self, stream: u32) -> usize {
        match self.streams.get(&stream) {
            Some(s) if s.state != StreamState::HalfClosedLocal => {
                s.send_window.min(self.conn_send).max(0) as usize
            }
            _ => 0,
        }
    }

    /// Writes as much of `data` on `stream` as the windows allow, in
    /// frames of at most the peer's `SETTINGS_MAX_FRAME_SIZE`; returns the
    /// octets taken. END_STREAM goes out only with the last octet. A send
    /// cut short by a window marks the stream stalled (see
    /// [`Conn::stalled_since`]) until one goes out whole.
    pub fn send_data(
        &mut self,
        stream: u32,
        data: &[u8],
        end_stream: bool,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> usize {
        let n = data.len().min(self.send_capacity(stream));
        let Some(s) = self.streams.get_mut(&stream) else {
            return 0;
        };
        if s.state == StreamState::HalfClosedLocal {
            return 0;
        }
        let whole = n == data.len();
        for (i, chunk) in data[..n].chunks(self.peer_max_frame as usize).enumerate() {
            let last = (i + 1) * (self.peer_max_frame as usize) >= n;
            Frame::Data {
                stream,
                end_stream: end_stream && whole && last,
                data: chunk,
                pad: None,
            }
            .encode(out);
        }
        if n == 0 && whole && end_stream {
            Frame::Data {
                stream,
                end_stream: true,
                data: b"",
                pad: None,
            }
            .encode(out);
        }
        s.send_window -= n as i64;
        self.conn_send -= n as i64;
        s.stalled_since = match (whole, n) {
            (true, _) => None,
            (false, 0) => s.stalled_since.or(Some(now)),
            (false, _) => Some(now),
        };
        if whole && end_stream {
            self.close_local(stream);
        }
        n
    }
}
