//! The few libc calls the proxy makes beyond std, mio and socket2, each
//! behind a safe function. Every `unsafe` block outside the splice relay
//! lives here.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn defer_accept_on_a_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_defer_accept(listener.as_fd(), 10).unwrap();
    }
}
