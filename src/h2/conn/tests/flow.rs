//! Flow control: both windows in both directions, stalls, and bodies
//! against their content-length.

use super::*;

#[test]
fn receive_flow_control() {
    let (mut s, mut c) = opened();
    c.frame(Frame::Settings {
        ack: true,
        settings: Settings::default(),
    });
    c.headers(1, &POST, false);
    s.feed(&mut c).expect("valid");
    // 65 535 octets fit the stream window; one more does not.
    let chunk = vec![0u8; 16_384];
    for _ in 0..3 {
        c.frame(Frame::Data {
            stream: 1,
            end_stream: false,
            data: &chunk,
            pad: None,
        });
    }
    c.frame(Frame::Data {
        stream: 1,
        end_stream: false,
        data: &chunk[..16_383],
        pad: None,
    });
    assert_eq!(s.feed(&mut c).expect("valid").len(), 4);
    c.frame(Frame::Data {
        stream: 1,
        end_stream: false,
        data: b"x",
        pad: None,
    });
    assert_eq!(s.feed(&mut c), Ok(vec![Seen::Reset(1, 3)]));
    assert!(s.written().contains(&rst(1, ErrorCode::FlowControlError)));
    // Releasing consumed data sends WINDOW_UPDATEs.
    let (mut s, mut c) = opened();
    c.headers(1, &POST, false);
    c.frame(Frame::Data {
        stream: 1,
        end_stream: false,
        data: &chunk,
        pad: None,
    });
    c.frame(Frame::Data {
        stream: 1,
        end_stream: false,
        data: &chunk,
        pad: None,
    });
    s.feed(&mut c).expect("valid");
    s.written();
    s.conn.release(1, 32_768, &mut s.out);
    assert_eq!(
        s.written(),
        [Frame::WindowUpdate {
            stream: 1,
            increment: 32_768
        }]
    );
}

#[test]
fn the_connection_window_is_enforced() {
    let mut s = Server::new(Config {
        connection_window: 65_535,
        initial_window_size: 65_535,
        ..Config::default()
    });
    let mut c = Client::new();
    let chunk = vec![0u8; 16_384];
    c.headers(1, &POST, false);
    c.headers(3, &POST, false);
    for _ in 0..3 {
        c.frame(Frame::Data {
            stream: 1,
            end_stream: false,
            data: &chunk,
            pad: None,
        });
    }
    c.frame(Frame::Data {
        stream: 3,
        end_stream: false,
        data: &chunk,
        pad: None,
    });
    assert_eq!(
        s.feed(&mut c).expect_err("over").code,
        ErrorCode::FlowControlError
    );
}

#[test]
fn send_flow_control_and_stalls() {
    let (mut s, mut c) = opened();
    c.headers(1, &GET, true);
    // The peer allows 10 octets per stream.
    c.frame(Frame::Settings {
        ack: false,
        settings: Settings {
            initial_window_size: Some(10),
            ..Settings::default()
        },
    });
    s.feed(&mut c).expect("valid");
    s.written();
    s.conn
        .send_headers(1, [Field::new(b":status", b"200")], false, &mut s.out);
    assert_eq!(s.conn.send_capacity(1), 10);
    let t0 = s.now;
    assert_eq!(s.conn.send_data(1, &[7; 25], true, t0, &mut s.out), 10);
    assert_eq!(s.conn.stalled_since(), Some(t0));
    let t1 = t0 + Duration::from_secs(5);
    assert_eq!(s.conn.send_data(1, &[7; 15], true, t1, &mut s.out), 0);
    assert_eq!(
        s.conn.stalled_since(),
        Some(t0),
        "no progress: the stall goes on"
    );
    assert_eq!(s.conn.stalled_streams(t1), vec![1]);
    assert!(s.conn.stalled_streams(t0).is_empty(), "not before it began");
    c.frame(Frame::WindowUpdate {
        stream: 1,
        increment: 100,
    });
    assert_eq!(s.feed(&mut c), Ok(vec![Seen::Window(1)]));
    assert_eq!(s.conn.send_data(1, &[7; 15], true, t1, &mut s.out), 15);
    assert_eq!(s.conn.stalled_since(), None);
    let w = s.written();
    assert!(
        matches!(w.last(), Some(Frame::Data { end_stream: true, data, .. }) if data.len() == 15)
    );
    // A SETTINGS change that overflows a stream's window.
    let (mut s, mut c) = opened();
    c.headers(1, &POST, false);
    c.frame(Frame::WindowUpdate {
        stream: 1,
        increment: MAX_WINDOW_SIZE - 65_535,
    });
    c.frame(Frame::Settings {
        ack: false,
        settings: Settings {
            initial_window_size: Some(65_536),
            ..Settings::default()
        },
    });
    assert_eq!(
        s.feed(&mut c).expect_err("overflow").code,
        ErrorCode::FlowControlError
    );
    // WINDOW_UPDATE overflow: a stream error on a stream, a connection
    // error on the connection.
    let (mut s, mut c) = opened();
    c.headers(1, &POST, false);
    c.frame(Frame::WindowUpdate {
        stream: 1,
        increment: MAX_WINDOW_SIZE,
    });
    assert_eq!(
        s.feed(&mut c),
        Ok(vec![Seen::Request(1, false), Seen::Reset(1, 3)])
    );
    c.frame(Frame::WindowUpdate {
        stream: 0,
        increment: MAX_WINDOW_SIZE,
    });
    assert_eq!(
        s.feed(&mut c).expect_err("overflow").code,
        ErrorCode::FlowControlError
    );
}

#[test]
fn data_has_to_add_up_to_the_content_length() {
    let post = |c: &mut Client, id: u32| {
        let mut fields = POST.to_vec();
        fields.push(("content-length", "5"));
        c.headers(id, &fields, false);
    };
    let data = |stream: u32, data: &'static [u8], end_stream: bool| Frame::Data {
        stream,
        end_stream,
        data,
        pad: None,
    };
    let (mut s, mut c) = opened();
    // Exactly 5: fine.
    post(&mut c, 1);
    c.frame(data(1, b"abc", false));
    c.frame(data(1, b"de", true));
    assert_eq!(s.feed(&mut c).expect("valid").len(), 3);
    // More than 5.
    post(&mut c, 3);
    c.frame(data(3, b"abcdef", false));
    // Fewer than 5 at END_STREAM.
    post(&mut c, 5);
    c.frame(data(5, b"abcd", true));
    // Trailers before the 5 octets.
    post(&mut c, 7);
    c.headers(7, &[("x-checksum", "1")], true);
    let seen = s.feed(&mut c).expect("stream errors only");
    for id in [3, 5, 7] {
        assert!(seen.contains(&Seen::Reset(id, 1)), "stream {id}: {seen:?}");
    }
}
