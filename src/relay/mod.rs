//! Relaying bytes in one direction of a pair: the [`Flow`] state that every
//! relay shares, and the relays themselves (`copy.rs` today; `splice.rs`
//! slots in beside it and keeps the same half-close and reset rules).
//!
//! A flow reads its source, writes its destination, and parks bytes only
//! when the destination is full; while bytes are parked the source is not
//! read, which is the backpressure. An idle flow holds no buffer.

pub mod copy;

use std::io;

use crate::buffer::{Buf, Pool};
use crate::handshake::body::{Body, BodyError};

/// Where a flow stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowState {
    /// Reading the source.
    Open,
    /// The message body ended: the source is not read again.
    Complete,
    /// The source sent EOF: the destination's write side is shut once the
    /// parked bytes are written.
    Eof,
    /// EOF passed on: the destination's write side is shut.
    Shut,
}

/// One direction of a pair.
#[derive(Debug)]
pub struct Flow {
    /// Bytes read from the source that the destination has not taken yet.
    pending: Option<Buf>,
    /// Which source bytes still belong to this flow.
    body: Body,
    state: FlowState,
    /// The source reported EOF or an error: read it to the end even after a
    /// short read (edge-triggered readiness gives no second event for it).
    src_closing: bool,
}

/// How a pump stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pumped {
    /// Waiting for the source to be readable or the destination writable.
    Blocked,
    /// Used its turn with more to do: call again after other pairs ran.
    Yield,
    /// Nothing more will move: the flow is complete or shut.
    Finished,
}

/// What a pump did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes written to the destination.
    pub moved: usize,
    pub pumped: Pumped,
}

/// Why a flow failed, by which end.
#[derive(Debug)]
pub enum Fault {
    Source(io::Error),
    Destination(io::Error),
    /// The source broke the message framing (plain HTTP only).
    Framing(BodyError),
}

impl Flow {
    pub fn new(body: Body) -> Flow {
        let state = if body.is_done() {
            FlowState::Complete
        } else {
            FlowState::Open
        };
        Flow {
            pending: None,
            body,
            state,
            src_closing: false,
        }
    }

    /// A flow that starts with `bytes` to write (a request or response head
    /// and whatever followed it).
    pub fn with_pending(body: Body, bytes: Buf) -> Flow {
        let mut flow = Flow::new(body);
        if !bytes.is_empty() {
            flow.pending = Some(bytes);
        }
        flow
    }

    pub fn state(&self) -> FlowState {
        self.state
    }

    /// The source should be watched for reading.
    pub fn wants_read(&self) -> bool {
        self.pending.is_none() && self.state == FlowState::Open
    }

    /// The destination should be watched for writing.
    pub fn wants_write(&self) -> bool {
        self.pending.is_some()
    }

    /// Everything that will ever move has moved.
    pub fn is_finished(&self) -> bool {
        self.pending.is_none() && matches!(self.state, FlowState::Complete | FlowState::Shut)
    }

    /// Holds a userspace buffer (only while the destination is full).
    pub fn holds_buffer(&self) -> bool {
        self.pending.is_some()
    }

    /// Notes that the source reported EOF or an error.
    pub fn source_closing(&mut self) {
        self.src_closing = true;
    }

    /// Returns the parked buffer, if any, to the pool.
    pub fn release(&mut self, pool: &mut Pool) {
        if let Some(buf) = self.pending.take() {
            pool.give(buf);
        }
    }
}
