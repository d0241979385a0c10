//! The few libc calls the proxy makes beyond std, mio and socket2, each
//! behind a safe function. Every `unsafe` block outside the splice relay
//! lives here.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Calls a libc function returning -1 on error, as `io::Result`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: each call site passes arguments that satisfy the libc
        // function's contract, stated in a comment at that site.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// `TCP_DEFER_ACCEPT`: the kernel hands a connection to `accept` only once
/// its first bytes arrived (or `seconds` passed), so the request head can
/// be read right after accepting, without another trip through epoll.
pub fn set_defer_accept(fd: BorrowedFd<'_>, seconds: u32) -> io::Result<()> {
    let value = libc::c_int::try_from(seconds).unwrap_or(libc::c_int::MAX);
    // Arguments: a live socket fd (borrowed for the call), a pointer to a
    // c_int that outlives the call, and that c_int's exact size.
    syscall!(setsockopt(
        fd.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_DEFER_ACCEPT,
        (&value as *const libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
    ))?;
    Ok(())
}

/// `IP_BIND_ADDRESS_NO_PORT`: a later `bind(addr:0)` fixes only the
/// source address and leaves the port to `connect`, which needs it unique
/// per destination (address and port) rather than per source address: one
/// source address then serves the whole local port range to every
/// upstream server, instead of the whole range once. Linux 4.2+; works on
/// IPv6 sockets too.
pub fn set_bind_address_no_port(fd: BorrowedFd<'_>) -> io::Result<()> {
    let on: libc::c_int = 1;
    // Arguments: a live socket fd (borrowed for the call), a pointer to a
    // c_int that outlives the call, and that c_int's exact size.
    syscall!(setsockopt(
        fd.as_raw_fd(),
        libc::IPPROTO_IP,
        libc::IP_BIND_ADDRESS_NO_PORT,
        (&on as *const libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
    ))?;
    Ok(())
}

/// A pipe as (read end, write end), both non-blocking and close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as libc::c_int; 2];
    // Arguments: a pointer to two c_ints that outlive the call.
    syscall!(pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC))?;
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by
    // nobody else; each is wrapped exactly once.
    let ends = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok(ends)
}

/// `F_SETPIPE_SZ`: asks for a pipe capacity of `bytes`; returns the
/// capacity the kernel granted (rounded up to whole pages).
pub fn set_pipe_size(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<usize> {
    let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // Arguments: a live pipe fd and an integer argument.
    let granted = syscall!(fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes))?;
    Ok(granted as usize)
}

/// `F_GETPIPE_SZ`: a pipe's capacity in bytes.
pub fn pipe_size(fd: BorrowedFd<'_>) -> io::Result<usize> {
    // Arguments: a live pipe fd; F_GETPIPE_SZ takes no third argument.
    let size = syscall!(fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ))?;
    Ok(size as usize)
}

/// `sendfile(2)`: copies up to `count` bytes of `file`, starting at
/// `*offset`, to `socket` inside the kernel, and advances `*offset` by the
/// bytes sent. A non-blocking socket that takes nothing more returns an
/// error of kind `WouldBlock`; 0 means `*offset` is at (or past) the end of
/// the file.
pub fn sendfile(
    socket: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: &mut i64,
    count: usize,
) -> io::Result<usize> {
    // Arguments: two live fds borrowed for the call, a pointer to an off_t
    // (i64 on the 64-bit targets the proxy runs on) that outlives the call
    // (the kernel reads and advances it), a count.
    let sent = syscall!(sendfile(
        socket.as_raw_fd(),
        file.as_raw_fd(),
        offset,
        count
    ))?;
    Ok(sent as usize)
}

/// The soft and hard limits on open file descriptors (`RLIMIT_NOFILE`).
pub fn nofile_limits() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // Arguments: a resource constant and a pointer to an rlimit that
    // outlives the call, which the kernel fills in.
    syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut limit))?;
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// Raises the soft open-file limit to the hard one (what an unprivileged
/// process may do), returning the limit now in force.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let (soft, hard) = nofile_limits()?;
    if soft >= hard {
        return Ok(soft);
    }
    let limit = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // Arguments: a resource constant and a pointer to an rlimit that
    // outlives the call, which the kernel only reads.
    syscall!(setrlimit(libc::RLIMIT_NOFILE, &limit))?;
    Ok(hard)
}

/// Hands free heap memory back to the kernel (glibc's `malloc_trim`):
/// freed 32 KiB buffers sit below the mmap threshold and would otherwise
/// stay resident. Called only when a worker has gone idle.
#[cfg(target_env = "gnu")]
pub fn release_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it
    // takes no pointers and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return memory on their own.
#[cfg(not(target_env = "gnu"))]
pub fn release_free_memory() {}

/// `openat2(2)` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: opens
/// `path` (relative) read-only, non-blocking and close-on-exec beneath the
/// directory `dir`, in one call, with the kernel refusing (`EXDEV`) any
/// resolution that would leave it through `..`, an absolute path or a
/// symlink. `ENOSYS` on kernels before 5.6.
pub fn open_beneath(dir: BorrowedFd<'_>, path: &std::ffi::CStr) -> io::Result<OwnedFd> {
    /// `struct open_how`, version 0 (linux/openat2.h): libc's is
    /// non-exhaustive, so it cannot be built outside libc.
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    };
    loop {
        // SAFETY: `dir` is borrowed, so open for the call; `path` is a
        // NUL-terminated string that outlives the call; `how` is a valid
        // `open_how` on the stack and its exact size is passed, as
        // openat2 requires. On success the kernel returns a new
        // descriptor that nothing else owns.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            let fd = i32::try_from(fd).expect("a descriptor fits in an int");
            // SAFETY: a fresh descriptor from the kernel, owned by nobody.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        // EAGAIN: a rename raced the resolution; the kernel asks to retry.
        if !matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) {
            return Err(e);
        }
    }
}

/// Most descriptors one `SCM_RIGHTS` message carries (`SCM_MAX_FD`).
pub const MAX_FDS_PER_MESSAGE: usize = 253;

/// Sends `data` on a connected Unix socket with `fds` attached as
/// `SCM_RIGHTS`: the receiver gets its own descriptors for the same open
/// files (sockets keep their queues). At most [`MAX_FDS_PER_MESSAGE`].
pub fn send_with_fds(
    socket: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    assert!(
        fds.len() <= MAX_FDS_PER_MESSAGE,
        "too many descriptors for one message"
    );
    let raw: Vec<libc::c_int> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let payload = std::mem::size_of_val(raw.as_slice()) as libc::c_uint;
    // SAFETY: CMSG_SPACE only computes a size from its argument.
    let space = unsafe { libc::CMSG_SPACE(payload) } as usize;
    // u64 words keep the control buffer aligned for `cmsghdr`.
    let mut control = vec![0u64; space.div_ceil(8).max(1)];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty one; fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !raw.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` zeroed, aligned bytes,
        // enough for one header carrying `payload` bytes, so the first
        // header exists and its data area holds `raw` exactly.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&msg);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN(payload) as _;
            std::ptr::copy_nonoverlapping(
                raw.as_ptr(),
                libc::CMSG_DATA(header).cast::<libc::c_int>(),
                raw.len(),
            );
        }
    }
    loop {
        // SAFETY: `msg` points at `iov` (over `data`) and `control`, all
        // alive for the call; the descriptors in it are borrowed, so open.
        let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            return if sent as usize == data.len() {
                Ok(())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "message cut short",
                ))
            };
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives one message into `buf` and the descriptors attached to it
/// (close-on-exec): (bytes, descriptors). 0 bytes and none: the peer
/// closed.
pub fn recv_with_fds(socket: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let payload = (MAX_FDS_PER_MESSAGE * std::mem::size_of::<libc::c_int>()) as libc::c_uint;
    // SAFETY: CMSG_SPACE only computes a size from its argument.
    let space = unsafe { libc::CMSG_SPACE(payload) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty one; fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let received = loop {
        // SAFETY: `msg` points at `iov` (over `buf`) and `control`, both
        // writable and alive for the call, with their lengths.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `msg`'s control area; CMSG_FIRSTHDR and
    // CMSG_NXTHDR walk only within msg_controllen. Each SCM_RIGHTS
    // descriptor is new to this process and owned by nothing else, so it
    // is wrapped exactly once (closing any that a cut message left).
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header).cast::<libc::c_int>();
                let bytes = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / std::mem::size_of::<libc::c_int>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            header = libc::CMSG_NXTHDR(&msg, header);
        }
    }
    if msg.msg_flags & (libc::MSG_CTRUNC | libc::MSG_TRUNC) != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message cut short",
        ));
    }
    Ok((received, fds))
}

/// Socket activation (`sd_listen_fds`): the `count` descriptors from 3 on
/// that the service manager passed, owned from now on and close-on-exec.
/// A descriptor that is not open is an error.
pub fn take_inherited(count: usize) -> io::Result<Vec<OwnedFd>> {
    const FIRST: libc::c_int = 3;
    let mut fds = Vec::with_capacity(count);
    for i in 0..count {
        let fd = FIRST + libc::c_int::try_from(i).map_err(|_| io::ErrorKind::InvalidInput)?;
        // Arguments: an integer descriptor (EBADF if it is not open).
        syscall!(fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC))?;
        // SAFETY: the descriptor is open (fcntl succeeded) and, by the
        // activation protocol (LISTEN_PID names this process), was passed
        // for this process to own; nothing else here wraps it, since it
        // is taken once, at startup, before anything opens a descriptor.
        fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    Ok(fds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn pipes_carry_bytes_and_report_their_size() {
        use std::io::{Read, Write};
        let (read, write) = pipe().unwrap();
        let granted = set_pipe_size(write.as_fd(), 4096).unwrap();
        assert_eq!(pipe_size(read.as_fd()).unwrap(), granted);
        let mut w = std::fs::File::from(write);
        let mut r = std::fs::File::from(read);
        w.write_all(b"through").unwrap();
        let mut got = [0u8; 7];
        r.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"through");
        let mut more = [0u8; 1];
        let err = r.read(&mut more).unwrap_err();
        assert_eq!(
            err.kind(),
            io::ErrorKind::WouldBlock,
            "pipes are non-blocking"
        );
    }

    #[test]
    fn bind_address_no_port_leaves_the_port_to_connect() {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        set_bind_address_no_port(socket.as_fd()).unwrap();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&any.into()).unwrap();
        let bound = socket.local_addr().unwrap().as_socket().unwrap();
        assert_eq!(bound.port(), 0, "no port taken at bind");
    }

    #[test]
    fn defer_accept_on_a_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_defer_accept(listener.as_fd(), 10).unwrap();
    }
}
