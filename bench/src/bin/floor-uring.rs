//! `floor-uring`: the least work a WebSocket relay can do on io_uring,
//! measured beside wsproxy-fast by scripts/compare.sh (see `wsbench::floor`).
//!
//! One ring per worker, each with its own `SO_REUSEPORT` listener, created
//! with `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN` (falling
//! back to `COOP_TASKRUN`, then to no flags, and saying so on stderr). The
//! only system call in the steady state is `io_uring_enter`, which submits
//! everything queued and waits for at least one completion.
//!
//! Per connection, all through the ring and all on registered (direct)
//! descriptors, so the process's descriptor table is never touched:
//! - a multishot accept allocates the client's slot (`TCP_NODELAY` is
//!   inherited from the listener);
//! - a multishot receive per socket takes buffers from one provided buffer
//!   ring per worker ([`BUFFERS`] of [`BUF_SIZE`] bytes);
//! - the head is copied out of those buffers until the blank line, then a
//!   socket op allocates the upstream's slot, and a linked `setsockopt`
//!   (`TCP_NODELAY`) and connect follow;
//! - the head is sent, and from then on every received buffer is sent as
//!   it is to the other side (no copy) with `MSG_WAITALL`, one send in
//!   flight per direction (later buffers queue behind it, so bytes keep
//!   their order), and goes back to the buffer ring when the send is done;
//! - either side's end of stream or error cancels both sockets' requests
//!   and closes both slots; the pair is freed when its last request is in.
//!
//! There is no backpressure beyond the buffer ring: when it runs dry a
//! receive ends with `ENOBUFS` and is re-armed once buffers come back.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU16, Ordering};
use std::thread;

use clap::Parser;
use io_uring::types::{BufRingEntry, CancelBuilder, DestinationSlot, Fixed};
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use slab::Slab;
use wsbench::floor::{head_complete, listeners, FloorArgs, MAX_HEAD};

/// Submission queue entries per ring (completions get twice as many).
const RING_ENTRIES: u32 = 4096;
/// Registered descriptor slots per worker (two per pair), or fewer: a
/// ring's table may not exceed `RLIMIT_NOFILE`, whose soft limit is raised
/// to the hard one first.
const FILES: u32 = 32768;
/// Provided buffers per worker (a power of two, at most 32768).
const BUFFERS: u16 = 512;
/// Size of one provided buffer (bytes): a whole bulk message (64 KiB) per
/// receive and send.
const BUF_SIZE: usize = 64 * 1024;
/// The buffer group id of the worker's buffer ring.
const BGID: u16 = 0;
/// `TCP_NODELAY`'s value; static, as the kernel reads it after submission.
static ONE: libc::c_int = 1;

const CLIENT: usize = 0;
const UPSTREAM: usize = 1;

/// What a completion is for: `key << 8 | op << 1 | side` in `user_data`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Accept = 0,
    Recv,
    Send,
    Socket,
    SockOpt,
    Connect,
    Cancel,
    Close,
}

const OPS: [Op; 8] = [
    Op::Accept,
    Op::Recv,
    Op::Send,
    Op::Socket,
    Op::SockOpt,
    Op::Connect,
    Op::Cancel,
    Op::Close,
];

fn user_data(key: usize, op: Op, side: usize) -> u64 {
    ((key as u64) << 8) | ((op as u64) << 1) | side as u64
}

fn decode(data: u64) -> (usize, Op, usize) {
    (
        (data >> 8) as usize,
        OPS[((data >> 1) & 0x7f) as usize],
        (data & 1) as usize,
    )
}

enum Phase {
    /// Reading the client's head.
    Head(Vec<u8>),
    /// Creating and connecting the upstream socket; the head waits.
    Connecting(Vec<u8>),
    /// Relaying both ways.
    Relay,
    /// Requests cancelled, slots closing; freed when `inflight` is 0.
    Closing,
}

/// Bytes on their way to one side.
enum Chunk {
    /// A provided buffer: id and length.
    Buf(u16, usize),
    /// The head, owned by the pair.
    Head(Vec<u8>),
}

impl Chunk {
    fn len(&self) -> usize {
        match self {
            Chunk::Buf(_, len) => *len,
            Chunk::Head(head) => head.len(),
        }
    }
}

struct Pair {
    /// Registered slots of the client and the upstream.
    files: [Option<u32>; 2],
    phase: Phase,
    /// Requests submitted and not completed (multishot ones count once).
    inflight: u32,
    /// Per destination side: the chunk being sent and how much has gone.
    sending: [Option<(Chunk, usize)>; 2],
    /// Per destination side: chunks waiting for the send in flight.
    queued: [VecDeque<Chunk>; 2],
}

/// The worker's provided buffer ring and the memory behind it.
struct Buffers {
    /// The ring's entries (page aligned, `BUFFERS` of them), from mmap.
    ring: *mut BufRingEntry,
    /// `BUFFERS * BUF_SIZE` bytes.
    memory: Vec<u8>,
    /// Our copy of the tail; published to the kernel by `publish`.
    tail: u16,
}

impl Buffers {
    fn new(ring: &IoUring) -> io::Result<Buffers> {
        let bytes = usize::from(BUFFERS) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: an anonymous private mapping; no existing memory is touched.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut buffers = Buffers {
            ring: addr.cast(),
            memory: vec![0u8; usize::from(BUFFERS) * BUF_SIZE],
            tail: 0,
        };
        // SAFETY: `ring` points at BUFFERS zeroed, page-aligned entries that
        // live as long as the worker (never unmapped: the worker never ends
        // but with the process).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(addr as u64, BUFFERS, BGID, 0)?
        };
        for bid in 0..BUFFERS {
            buffers.give_back(bid);
        }
        buffers.publish();
        Ok(buffers)
    }

    fn addr(&self, bid: u16) -> *const u8 {
        self.memory[usize::from(bid) * BUF_SIZE..].as_ptr()
    }

    fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * BUF_SIZE;
        &self.memory[start..start + len]
    }

    /// Puts buffer `bid` back in the ring (seen by the kernel after `publish`).
    fn give_back(&mut self, bid: u16) {
        let index = usize::from(self.tail & (BUFFERS - 1));
        let addr = self.addr(bid) as u64;
        // SAFETY: `index < BUFFERS`, inside the mapping; the kernel reads
        // only entries between its head and the published tail, and this
        // one is past the published tail.
        let entry = unsafe { &mut *self.ring.add(index) };
        entry.set_addr(addr);
        entry.set_len(BUF_SIZE as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field of the ring's first entry, a u16 the kernel
        // reads concurrently: written through an atomic with Release so the
        // entries written before are visible first.
        unsafe {
            let tail = BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

fn main() -> ExitCode {
    let args = FloorArgs::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("floor-uring: {err}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &FloorArgs) -> io::Result<()> {
    let all = listeners(args.listen, args.workers.max(1))?;
    let upstream = args.upstream;
    let (ready, started) = std::sync::mpsc::channel();
    let mut workers = Vec::new();
    for listener in all.iter() {
        let listener = listener.try_clone()?;
        let ready = ready.clone();
        workers.push(thread::spawn(move || worker(listener, upstream, ready)));
    }
    drop(ready);
    // Listening only once every ring is set up: a failure is said first.
    for _ in 0..workers.len() {
        match started.recv() {
            Ok(Ok(setup)) => eprintln!("floor-uring: ring set up with {setup}"),
            Ok(Err(err)) => return Err(err),
            Err(_) => return Err(io::Error::other("a worker ended before setting up")),
        }
    }
    println!("listening on {}", all[0].local_addr()?);
    for handle in workers {
        handle.join().expect("a worker panicked")?;
    }
    Ok(())
}

/// Raises the soft descriptor limit to the hard one and returns how many
/// registered slots a ring may have.
fn file_slots() -> u32 {
    // SAFETY: rlimit is plain data; all-zero is a valid value.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    let soft = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit; raising the soft limit up to the
    // hard one needs no privilege.
    let allowed = if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0 {
        limit.rlim_max
    } else {
        soft
    };
    FILES.min(u32::try_from(allowed).unwrap_or(u32::MAX))
}

/// Builds the ring with the most helpful flags this kernel takes.
fn build_ring() -> io::Result<(IoUring, &'static str)> {
    if let Ok(ring) = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(RING_ENTRIES)
    {
        return Ok((ring, "SINGLE_ISSUER|DEFER_TASKRUN"));
    }
    if let Ok(ring) = IoUring::builder().setup_coop_taskrun().build(RING_ENTRIES) {
        return Ok((ring, "COOP_TASKRUN (DEFER_TASKRUN refused)"));
    }
    Ok((
        IoUring::new(RING_ENTRIES)?,
        "no flags (COOP_TASKRUN refused)",
    ))
}

struct Worker {
    ring: IoUring,
    buffers: Buffers,
    pairs: Slab<Pair>,
    listener: TcpListener,
    /// The upstream as a sockaddr, read by the kernel after submission.
    upstream: Box<(libc::sockaddr_storage, libc::socklen_t)>,
    /// The upstream's address family.
    domain: libc::c_int,
    /// Receives that ran out of buffers: (key, side).
    rearm: Vec<(usize, usize)>,
}

fn worker(
    listener: TcpListener,
    upstream: SocketAddr,
    ready: std::sync::mpsc::Sender<io::Result<&'static str>>,
) -> io::Result<()> {
    let setup = (|| -> io::Result<(IoUring, &'static str, Buffers)> {
        let (ring, setup) = build_ring()?;
        ring.submitter().register_files_sparse(file_slots())?;
        let buffers = Buffers::new(&ring)?;
        Ok((ring, setup, buffers))
    })();
    let (ring, setup, buffers) = match setup {
        Ok(parts) => parts,
        Err(err) => {
            let _ = ready.send(Err(io::Error::new(err.kind(), err.to_string())));
            return Err(err);
        }
    };
    let _ = ready.send(Ok(setup));
    let socket = socket2::SockAddr::from(upstream);
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // SAFETY: `socket.len()` bytes fit in a sockaddr_storage (socket2 keeps
    // its address in one), and the two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            socket.as_ptr().cast::<u8>(),
            (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
            socket.len() as usize,
        );
    }
    let mut worker = Worker {
        ring,
        buffers,
        pairs: Slab::new(),
        listener,
        upstream: Box::new((storage, socket.len())),
        domain: if upstream.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        },
        rearm: Vec::new(),
    };
    worker.arm_accept();
    worker.run()
}

impl Worker {
    fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: every pointer in the entries we build (provided
            // buffers, the head, the upstream sockaddr, ONE) stays valid
            // until its completion is reaped: buffers and sockaddr live as
            // long as the worker, a head as long as its pair, which is
            // freed only when nothing of it is in flight.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return;
            }
            // The queue is full: hand it to the kernel and try again.
            if let Err(err) = self.ring.submit() {
                eprintln!("floor-uring: submit: {err}");
            }
        }
    }

    fn arm_accept(&mut self) {
        let entry = opcode::AcceptMulti::new(types::Fd(self.listener.as_raw_fd()))
            .allocate_file_index(true)
            .build()
            .user_data(user_data(0, Op::Accept, 0));
        self.push(entry);
    }

    fn arm_recv(&mut self, key: usize, side: usize) {
        let pair = &mut self.pairs[key];
        let Some(file) = pair.files[side] else { return };
        pair.inflight += 1;
        let entry = opcode::RecvMulti::new(Fixed(file), BGID)
            .build()
            .user_data(user_data(key, Op::Recv, side));
        self.push(entry);
    }

    fn run(&mut self) -> io::Result<()> {
        let mut completions = Vec::with_capacity(RING_ENTRIES as usize * 2);
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(err) if err.raw_os_error() == Some(libc::EINTR) => {}
                Err(err) if err.raw_os_error() == Some(libc::EBUSY) => {}
                Err(err) => return Err(err),
            }
            completions.clear();
            completions.extend(
                self.ring
                    .completion()
                    .map(|cqe| (cqe.user_data(), cqe.result(), cqe.flags())),
            );
            for &(data, result, flags) in &completions {
                self.complete(data, result, flags);
            }
            self.buffers.publish();
            for (key, side) in std::mem::take(&mut self.rearm) {
                if matches!(self.pairs.get(key), Some(p) if !matches!(p.phase, Phase::Closing)) {
                    self.arm_recv(key, side);
                }
            }
        }
    }

    fn complete(&mut self, data: u64, result: i32, flags: u32) {
        let (key, op, side) = decode(data);
        if op == Op::Accept {
            if result >= 0 {
                self.accepted(result as u32);
            }
            if !cqueue::more(flags) {
                self.arm_accept();
            }
            return;
        }
        let more = op == Op::Recv && cqueue::more(flags);
        let Some(pair) = self.pairs.get_mut(key) else {
            debug_assert!(false, "a completion for a freed pair");
            return;
        };
        if !more {
            pair.inflight -= 1;
        }
        match op {
            Op::Recv => self.received(key, side, result, flags),
            Op::Send => self.sent(key, side, result),
            Op::Socket => self.socket_made(key, result),
            Op::Connect => self.connected(key, result),
            Op::SockOpt | Op::Cancel | Op::Close | Op::Accept => {
                if op == Op::SockOpt && result < 0 {
                    self.close(key);
                }
            }
        }
        if let Some(pair) = self.pairs.get(key) {
            if matches!(pair.phase, Phase::Closing) && pair.inflight == 0 {
                self.pairs.remove(key);
            }
        }
    }

    fn accepted(&mut self, file: u32) {
        let key = self.pairs.insert(Pair {
            files: [Some(file), None],
            phase: Phase::Head(Vec::new()),
            inflight: 0,
            sending: [None, None],
            queued: [VecDeque::new(), VecDeque::new()],
        });
        self.arm_recv(key, CLIENT);
    }

    fn received(&mut self, key: usize, side: usize, result: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        let closing = matches!(self.pairs[key].phase, Phase::Closing);
        if result <= 0 || closing {
            if let Some(bid) = bid {
                self.buffers.give_back(bid);
            }
            if result == -libc::ENOBUFS && !closing {
                if !cqueue::more(flags) {
                    self.rearm.push((key, side));
                }
            } else if !closing {
                // End of stream or an error on either side ends the pair.
                self.close(key);
            }
            return;
        }
        let bid = bid.expect("a receive with data names its buffer");
        let len = result as usize;
        if let Phase::Head(head) = &mut self.pairs[key].phase {
            head.extend_from_slice(self.buffers.bytes(bid, len));
            self.buffers.give_back(bid);
            if head.len() > MAX_HEAD {
                self.close(key);
            } else if head_complete(head) {
                let head = std::mem::take(head);
                self.pairs[key].phase = Phase::Connecting(head);
                self.pairs[key].inflight += 1;
                let entry = opcode::Socket::new(self.domain, libc::SOCK_STREAM, 0)
                    .file_index(Some(DestinationSlot::auto_target()))
                    .build()
                    .user_data(user_data(key, Op::Socket, UPSTREAM));
                self.push(entry);
            }
        } else {
            // Connecting (early data after the head) or relaying.
            self.send_or_queue(key, 1 - side, Chunk::Buf(bid, len));
        }
        if !cqueue::more(flags) && !matches!(self.pairs[key].phase, Phase::Closing) {
            self.arm_recv(key, side);
        }
    }

    fn socket_made(&mut self, key: usize, result: i32) {
        if result < 0 {
            self.close(key);
            return;
        }
        if matches!(self.pairs[key].phase, Phase::Closing) {
            // Closed while the socket was being made: close its slot too.
            self.pairs[key].inflight += 1;
            let close = opcode::Close::new(Fixed(result as u32))
                .build()
                .user_data(user_data(key, Op::Close, UPSTREAM));
            self.push(close);
            return;
        }
        let file = result as u32;
        self.pairs[key].files[UPSTREAM] = Some(file);
        self.pairs[key].inflight += 2;
        let nodelay = opcode::SetSockOpt::new(
            Fixed(file),
            libc::IPPROTO_TCP as u32,
            libc::TCP_NODELAY as u32,
            (&ONE as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
        .build()
        .flags(squeue::Flags::IO_LINK)
        .user_data(user_data(key, Op::SockOpt, UPSTREAM));
        let (addr, len) = &*self.upstream;
        let connect = opcode::Connect::new(
            Fixed(file),
            (addr as *const libc::sockaddr_storage).cast(),
            *len,
        )
        .build()
        .user_data(user_data(key, Op::Connect, UPSTREAM));
        self.push(nodelay);
        self.push(connect);
    }

    fn connected(&mut self, key: usize, result: i32) {
        let pair = &mut self.pairs[key];
        if result < 0 {
            self.close(key);
            return;
        }
        let Phase::Connecting(head) = std::mem::replace(&mut pair.phase, Phase::Relay) else {
            // Closed meanwhile.
            pair.phase = Phase::Closing;
            return;
        };
        // The head goes first, before early data queued behind it.
        pair.queued[UPSTREAM].push_front(Chunk::Head(head));
        self.start_send(key, UPSTREAM);
        self.arm_recv(key, UPSTREAM);
    }

    fn send_or_queue(&mut self, key: usize, to: usize, chunk: Chunk) {
        let pair = &mut self.pairs[key];
        pair.queued[to].push_back(chunk);
        if matches!(pair.phase, Phase::Relay) && pair.sending[to].is_none() {
            self.start_send(key, to);
        }
    }

    /// Sends the next queued chunk to side `to`, if any.
    fn start_send(&mut self, key: usize, to: usize) {
        let pair = &mut self.pairs[key];
        if let Some(chunk) = pair.queued[to].pop_front() {
            pair.sending[to] = Some((chunk, 0));
            self.submit_send(key, to);
        }
    }

    fn submit_send(&mut self, key: usize, to: usize) {
        let pair = &mut self.pairs[key];
        let (Some(file), Some((chunk, done))) = (pair.files[to], pair.sending[to].as_ref()) else {
            return;
        };
        let start = match chunk {
            Chunk::Buf(bid, _) => self.buffers.addr(*bid),
            Chunk::Head(head) => head.as_ptr(),
        };
        // SAFETY: `done < chunk.len()`, inside the chunk.
        let ptr = unsafe { start.add(*done) };
        let len = (chunk.len() - done) as u32;
        pair.inflight += 1;
        let entry = opcode::Send::new(Fixed(file), ptr, len)
            .flags(libc::MSG_WAITALL)
            .build()
            .user_data(user_data(key, Op::Send, to));
        self.push(entry);
    }

    fn sent(&mut self, key: usize, to: usize, result: i32) {
        let pair = &mut self.pairs[key];
        let Some((chunk, done)) = pair.sending[to].as_mut() else {
            debug_assert!(false, "a send completion with nothing sending");
            return;
        };
        if result > 0 && !matches!(pair.phase, Phase::Closing) {
            *done += result as usize;
            if *done < chunk.len() {
                self.submit_send(key, to);
                return;
            }
        }
        if let Some((Chunk::Buf(bid, _), _)) = pair.sending[to].take() {
            self.buffers.give_back(bid);
        }
        if result <= 0 {
            self.close(key);
        } else if !matches!(self.pairs[key].phase, Phase::Closing) {
            self.start_send(key, to);
        }
    }

    /// Cancels both sockets' requests and closes their slots; the pair is
    /// freed when the last of its requests has completed.
    fn close(&mut self, key: usize) {
        let pair = &mut self.pairs[key];
        if matches!(pair.phase, Phase::Closing) {
            return;
        }
        pair.phase = Phase::Closing;
        let mut freed = Vec::new();
        for queue in &mut pair.queued {
            for chunk in queue.drain(..) {
                if let Chunk::Buf(bid, _) = chunk {
                    freed.push(bid);
                }
            }
        }
        let files: Vec<(usize, u32)> = pair
            .files
            .iter()
            .enumerate()
            .filter_map(|(side, file)| file.map(|f| (side, f)))
            .collect();
        pair.inflight += 2 * files.len() as u32;
        for bid in freed {
            self.buffers.give_back(bid);
        }
        for (side, file) in files {
            let cancel = opcode::AsyncCancel2::new(CancelBuilder::fd(Fixed(file)).all())
                .build()
                .user_data(user_data(key, Op::Cancel, side));
            let close =
                opcode::Close::new(Fixed(file))
                    .build()
                    .user_data(user_data(key, Op::Close, side));
            self.push(cancel);
            self.push(close);
        }
    }
}
