//! A pair's side of HTTP/2: the pair whose TLS handshake chose `h2`
//! hands its socket over ([`Pair::into_h2`]), and each stream of the
//! connection is served by a pair of its own whose client is the stream
//! ([`Pair::new_stream`]).

use std::mem;
use std::net::SocketAddr;

use mio::net::TcpStream;

use super::end::End;
use super::{Ctx, Outcome, Pair, Phase};
use crate::access_log::Ending;
use crate::buffer::Buf;
use crate::debug;
use crate::relay::stream::StreamIo;
use crate::relay::{Resources, Tls};
use crate::token::Side;

/// What an HTTP/2 connection takes over from the pair that did the TLS
/// handshake.
#[derive(Debug)]
pub struct Handover {
    pub tcp: TcpStream,
    pub tls: Tls,
    /// Bytes read after the handshake: the start of the preface.
    pub read: Option<Box<Buf>>,
    pub client_addr: SocketAddr,
    pub listener: usize,
    pub gen: usize,
    pub ip_counted: bool,
}

impl Pair {
    /// A pair for one stream of a client's HTTP/2 connection: its request
    /// head waits in `io`.
    pub fn new_stream(
        io: StreamIo,
        client_addr: SocketAddr,
        listener: usize,
        serial: u32,
        gen: usize,
    ) -> Pair {
        let mut pair = Pair::new_with(End::stream(io), client_addr, listener, serial, gen, false);
        pair.core.client_readable = true;
        pair
    }

    /// Reads a stream's request head, as [`Pair::start`] reads a
    /// connection's.
    pub fn start_stream(&mut self, ctx: &mut Ctx<'_>) -> Outcome {
        self.core.begin(ctx);
        self.core.arm(ctx, ctx.config.timeouts.handshake);
        let step = self.start_phase(ctx);
        self.apply(step, ctx)
    }

    /// The client reset the stream: the log says so, and the pair goes
    /// (the worker closes it next).
    pub fn client_reset(&mut self) {
        debug!(
            "client {}: stream reset by the client; closing its pair",
            self.core.client_addr
        );
        self.core.ended(Ending::Reset(Side::Client));
        if let Some(io) = self.core.client.stream_io() {
            io.reset = true;
        }
    }

    /// The stream this pair serves, if its client is one.
    pub fn stream_io(&mut self) -> Option<&mut StreamIo> {
        self.core.client.stream_io()
    }

    /// Whether the client is a stream of an HTTP/2 connection.
    pub fn is_stream(&self) -> bool {
        self.core.client.is_stream()
    }

    /// Whether the pair waits to write to its client.
    pub fn wants_client_write(&self) -> bool {
        self.interest()[0].is_some_and(|i| i.is_writable())
    }

    /// What an HTTP/2 connection takes over from a pair whose client chose
    /// it: the socket and its TLS session, the bytes read after the
    /// handshake, and who the client is.
    pub fn into_h2(mut self, res: &mut Resources) -> Option<Handover> {
        mem::replace(&mut self.phase, Phase::Moving).release(res);
        let core = self.core;
        let (tcp, tls) = core.client.into_socket()?;
        Some(Handover {
            tcp,
            tls: tls?,
            read: core.ahead,
            client_addr: core.client_addr,
            listener: usize::from(core.listener),
            gen: usize::from(core.gen),
            ip_counted: core.ip_counted,
        })
    }

    /// The stream, once the pair is closed: what it wrote last is still to
    /// be framed.
    pub fn into_stream(self) -> Option<StreamIo> {
        self.core.client.into_stream()
    }
}
