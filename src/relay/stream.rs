//! One HTTP/2 stream as the pair that serves it sees its client: a
//! connection that reads the request as HTTP/1.1 bytes and takes the answer
//! as HTTP/1.1 bytes. The worker's HTTP/2 connection fills [`StreamIo`]
//! from the stream's HEADERS and DATA and empties it into frames after each
//! of the pair's turns, so a WebSocket stream is relayed, timed, drained and
//! logged by the same code as a WebSocket on its own connection.
//!
//! Both directions are bounded: what comes in by the stream's receive
//! window (a WINDOW_UPDATE goes out only for what the pair took), what goes
//! out by the room the connection gives it ([`StreamIo::room`]); a full
//! one reads as `WouldBlock`, as a full socket would, and the connection
//! wakes the pair when that changes. An idle stream holds no buffer.

use std::io;

/// The pair-facing side of one HTTP/2 stream.
#[derive(Debug, Default)]
pub struct StreamIo {
    /// The worker's HTTP/2 connection carrying the stream.
    pub session: usize,
    /// The stream's identifier on it.
    pub id: u32,
    /// The request as HTTP/1.1 bytes, from `read_at` on not yet read.
    inbound: Vec<u8>,
    read_at: usize,
    /// Nothing follows `inbound`: its end reads as EOF.
    pub inbound_ended: bool,
    /// The client reset the stream (or the connection went): reads and
    /// writes fail.
    pub reset: bool,
    /// Of `inbound`'s bytes, how many are DATA octets the peer's window
    /// has not been given back for.
    unreleased: u32,
    /// DATA octets the pair took since the connection last looked.
    pub consumed: u32,
    /// What the pair wrote, for the connection to frame.
    pub outbound: Vec<u8>,
    /// How many more bytes the pair may write before the connection takes
    /// what it wrote.
    pub room: usize,
    /// The pair shut its write side: the stream ends after `outbound`.
    pub shut: bool,
    /// The pair gave up on the stream (a reset is due, not an end).
    pub aborted: bool,
}

impl StreamIo {
    pub fn new(session: usize, id: u32) -> StreamIo {
        StreamIo {
            session,
            id,
            ..StreamIo::default()
        }
    }

    /// Adds request bytes; `data`: how many of them are DATA octets under
    /// flow control (the rest is what the connection wrote around them: a
    /// head, chunk sizes).
    pub fn push(&mut self, bytes: &[u8], data: u32) {
        if self.read_at == self.inbound.len() {
            self.inbound.clear();
            self.read_at = 0;
        }
        self.inbound.extend_from_slice(bytes);
        self.unreleased += data;
    }

    /// Bytes waiting to be read.
    pub fn pending(&self) -> usize {
        self.inbound.len() - self.read_at
    }

    fn gone() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionReset, "stream reset")
    }

    /// Reads what the stream holds: `WouldBlock` while it is empty and not
    /// ended.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.peek(buf)?;
        self.read_at += n;
        // Octets around the DATA (head, chunk sizes) are read first or in
        // between; counting what was read, capped at what came as DATA,
        // gives a window back no later than its octets were taken.
        let taken = (n as u32).min(self.unreleased);
        self.unreleased -= taken;
        self.consumed += taken;
        if self.read_at == self.inbound.len() {
            // An idle stream holds no buffer.
            self.inbound = Vec::new();
            self.read_at = 0;
        }
        Ok(n)
    }

    /// Looks at what the stream holds without taking it.
    pub fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.reset {
            return Err(StreamIo::gone());
        }
        let ahead = &self.inbound[self.read_at..];
        if ahead.is_empty() {
            if self.inbound_ended || buf.is_empty() {
                return Ok(0);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = ahead.len().min(buf.len());
        buf[..n].copy_from_slice(&ahead[..n]);
        Ok(n)
    }

    /// Takes what fits in the room the connection gave.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.reset || self.shut {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "stream closed"));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(self.room);
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.outbound.extend_from_slice(&buf[..n]);
        self.room -= n;
        Ok(n)
    }

    /// The pair passed its EOF on.
    pub fn shutdown_write(&mut self) {
        self.shut = true;
    }

    /// Takes what the pair wrote, buffer and all: an idle stream keeps
    /// none.
    pub fn take_outbound(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outbound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_count_data_octets_not_the_head() {
        let mut s = StreamIo::new(0, 1);
        s.push(b"GET / HTTP/1.1\r\n\r\n", 0);
        s.push(b"abc", 3);
        let mut buf = [0u8; 64];
        assert_eq!(s.read(&mut buf[..10]).unwrap(), 10);
        // Ten octets read, three of them could be DATA: at most three.
        assert_eq!(s.consumed, 3);
        assert_eq!(s.read(&mut buf).unwrap(), 11);
        assert_eq!(s.consumed, 3);
        assert_eq!(
            s.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        s.inbound_ended = true;
        assert_eq!(s.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn writes_stop_at_the_room_given() {
        let mut s = StreamIo::new(0, 1);
        assert_eq!(s.write(b"x").unwrap_err().kind(), io::ErrorKind::WouldBlock);
        s.room = 4;
        assert_eq!(s.write(b"abcdef").unwrap(), 4);
        assert_eq!(s.take_outbound(), b"abcd");
        assert_eq!(s.outbound.capacity(), 0);
        s.shutdown_write();
        assert!(s.write(b"x").is_err());
    }

    #[test]
    fn a_reset_stream_fails_both_ways() {
        let mut s = StreamIo::new(0, 1);
        s.room = 10;
        s.reset = true;
        assert!(s.read(&mut [0u8; 4]).is_err());
        assert!(s.write(b"x").is_err());
    }
}
