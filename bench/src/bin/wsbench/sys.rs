//! The raw system interface wsbench needs beyond mio and socket2: a
//! `timerfd`, which gives the open-loop `rate` mode sub-millisecond send
//! scheduling (epoll's own timeout has whole-millisecond resolution).
//!
//! All of the binary's `unsafe` lives here.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::time::Duration;

/// A non-blocking, one-shot monotonic timer that becomes readable when it
/// expires; register it with mio through `SourceFd`.
#[derive(Debug)]
pub struct TimerFd {
    file: File,
}

impl TimerFd {
    pub fn new() -> io::Result<TimerFd> {
        // SAFETY: timerfd_create takes no pointers and returns a new
        // descriptor or -1; nothing else refers to the descriptor.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created above and is owned by nobody else.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(TimerFd {
            file: File::from(owned),
        })
    }

    /// Fires once after `delay`, replacing any earlier setting. A zero delay
    /// is raised to 1 ns, because zero would disarm the timer.
    pub fn arm(&self, delay: Duration) -> io::Result<()> {
        let delay = delay.max(Duration::from_nanos(1));
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let spec = libc::itimerspec {
            it_interval: zero,
            it_value: libc::timespec {
                tv_sec: libc::time_t::try_from(delay.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: delay.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: the descriptor is open for the lifetime of `self`, `spec` is
        // a valid itimerspec that outlives the call, and a null old_value is
        // allowed.
        let rc = unsafe { libc::timerfd_settime(self.file.as_raw_fd(), 0, &spec, ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Consumes pending expirations so the next one is a fresh edge.
    pub fn acknowledge(&self) {
        let mut expirations = [0u8; 8];
        // WouldBlock means nothing expired since the last call: nothing to do.
        let _ = (&self.file).read(&mut expirations);
    }

    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn fires_after_the_delay() {
        let timer = TimerFd::new().unwrap();
        let mut poll = mio::Poll::new().unwrap();
        let mut events = mio::Events::with_capacity(4);
        let fd = timer.raw_fd();
        poll.registry()
            .register(
                &mut mio::unix::SourceFd(&fd),
                mio::Token(0),
                mio::Interest::READABLE,
            )
            .unwrap();
        let start = Instant::now();
        timer.arm(Duration::from_micros(300)).unwrap();
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert!(!events.is_empty(), "the timer fired");
        assert!(start.elapsed() >= Duration::from_micros(300));
        timer.acknowledge();
    }
}
