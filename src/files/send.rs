//! Sending a file's bytes to the client: `sendfile(2)` on a plain socket,
//! reads through a scratch buffer where a TLS session must encrypt them.

use crate::sys;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;

/// Sends as much of the file as the socket takes: sendfile(2) from
/// `*offset` until `end` (a file offset, not a count), advancing
/// `offset`; Ok(true) when all sent, Ok(false) on WouldBlock (wait for
/// writable), Err on other errors (`UnexpectedEof` when the file ends
/// before `end`: it shrank while being sent). Retries EINTR.
pub fn send(socket: &impl AsFd, found_file: &File, offset: &mut u64, end: u64) -> io::Result<bool> {
    while *offset < end {
        let count = usize::try_from(end - *offset).unwrap_or(usize::MAX);
        let mut at = i64::try_from(*offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset past i64::MAX"))?;
        match sys::sendfile(socket.as_fd(), found_file.as_fd(), &mut at, count) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being sent",
                ))
            }
            Ok(n) => {
                *offset += n as u64;
                debug_assert_eq!(at as u64, *offset, "sendfile advanced the offset by n");
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// What [`send`] does, for a socket sendfile cannot write to (a TLS
/// session): reads the file at `offset` into `scratch` and hands it to
/// `write`, which takes what it can. `Ok(false)`: the writer is full.
pub fn send_through(
    mut write: impl FnMut(&[u8]) -> io::Result<usize>,
    found_file: &File,
    offset: &mut u64,
    end: u64,
    scratch: &mut [u8],
) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    while *offset < end {
        let want = usize::try_from(end - *offset)
            .unwrap_or(usize::MAX)
            .min(scratch.len());
        let n = match found_file.read_at(&mut scratch[..want], *offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being sent",
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        match write(&scratch[..n]) {
            Ok(0) => return Ok(false),
            Ok(taken) => *offset += taken as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Reads the file from `*offset` up to `end` into `buf`, which must hold
/// it all, advancing `offset`: for a small file over TLS, whose bytes then
/// go out in one record with the head. `UnexpectedEof` when the file
/// shrank.
pub fn read_into(
    found_file: &File,
    offset: &mut u64,
    end: u64,
    buf: &mut [u8],
) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let want = usize::try_from(end - *offset).unwrap_or(usize::MAX);
    debug_assert!(want <= buf.len(), "the caller checked it fits");
    let mut got = 0;
    while got < want {
        match found_file.read_at(&mut buf[got..want], *offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being sent",
                ))
            }
            Ok(n) => {
                got += n;
                *offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::tests::TempDir;
    use std::io::Read;
    use std::time::{Duration, Instant};

    #[test]
    fn send_a_mebibyte_over_tcp() {
        const LEN: usize = 1 << 20;
        let dir = TempDir::new("send");
        let bytes: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
        let path = dir.write("big.bin", &bytes);
        let file = File::open(&path).unwrap();

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        // A small send buffer so the socket fills long before 1 MiB.
        socket2::SockRef::from(&server)
            .set_send_buffer_size(16 * 1024)
            .unwrap();

        let (go, wait) = std::sync::mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            wait.recv().unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut got = Vec::new();
            client.read_to_end(&mut got).unwrap();
            got
        });

        let deadline = Instant::now() + Duration::from_secs(10);
        let mut offset = 0u64;
        let all = send(&server, &file, &mut offset, LEN as u64).unwrap();
        assert!(!all, "the client is not reading yet: WouldBlock");
        assert!(offset > 0 && offset < LEN as u64, "sent {offset}");
        go.send(()).unwrap();
        while !send(&server, &file, &mut offset, LEN as u64).unwrap() {
            assert!(Instant::now() < deadline, "stalled at {offset}");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(offset, LEN as u64);
        assert!(send(&server, &file, &mut offset, LEN as u64).unwrap());
        drop(server);
        let got = reader.join().unwrap();
        assert!(got == bytes, "received {} bytes, not the file", got.len());

        // A file shorter than promised is an error, not a hang.
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut offset = LEN as u64;
        let err = send(&server, &file, &mut offset, LEN as u64 + 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
