//! The limits against the published attacks: rapid reset, SETTINGS and
//! PING floods, empty DATA floods, too many streams.

use super::*;

#[test]
fn max_concurrent_streams_refuses_the_extra_one() {
    let mut s = Server::new(Config {
        max_concurrent_streams: 2,
        ..Config::default()
    });
    let mut c = Client::new();
    for id in [1, 3, 5] {
        c.headers(id, &POST, false);
    }
    assert_eq!(
        s.feed(&mut c),
        Ok(vec![Seen::Request(1, false), Seen::Request(3, false)])
    );
    assert!(s.written().contains(&rst(5, ErrorCode::RefusedStream)));
    // A stream ends, another may open.
    c.frame(rst(1, ErrorCode::Cancel));
    c.headers(7, &POST, false);
    assert_eq!(
        s.feed(&mut c),
        Ok(vec![Seen::Reset(1, 8), Seen::Request(7, false)])
    );
}

#[test]
fn rapid_reset_is_cut_off() {
    let mut s = Server::new(Config {
        max_resets: 50,
        ..Config::default()
    });
    let mut c = Client::new();
    let mut id = 1;
    let mut err = None;
    for _ in 0..100 {
        c.headers(id, &POST, false);
        c.frame(rst(id, ErrorCode::Cancel));
        id += 2;
        if let Err(e) = s.feed(&mut c) {
            err = Some(e);
            break;
        }
    }
    assert_eq!(err.map(|e| e.code), Some(ErrorCode::EnhanceYourCalm));
    assert!(id <= 2 * 51 + 1, "cut off after {} streams", id / 2);
    assert_eq!(
        goaway_code(&s.written()),
        Some(ErrorCode::EnhanceYourCalm.to_u32())
    );
    // Spread over time, the same number of resets is fine.
    let mut s = Server::new(Config {
        max_resets: 50,
        ..Config::default()
    });
    let mut c = Client::new();
    for id in (1..200).step_by(2) {
        c.headers(id, &POST, false);
        c.frame(rst(id, ErrorCode::Cancel));
        s.now += Duration::from_millis(500);
        s.feed(&mut c).expect("a slow pace of resets is allowed");
    }
}

#[test]
fn settings_and_ping_floods_are_cut_off() {
    for flood in [
        Frame::Ping {
            ack: false,
            data: [0; 8],
        },
        Frame::Settings {
            ack: false,
            settings: Settings::default(),
        },
    ] {
        let mut s = Server::new(Config {
            max_owed_answers: 100,
            ..Config::default()
        });
        let mut c = Client::new();
        for _ in 0..200 {
            c.frame(flood);
        }
        assert_eq!(
            s.feed(&mut c).expect_err("flood").code,
            ErrorCode::EnhanceYourCalm
        );
        assert!(s.out.len() < 200 * 17 + 200, "answers stopped at the limit");
        // Flushed in between, the same frames are fine.
        let mut s = Server::new(Config {
            max_owed_answers: 100,
            ..Config::default()
        });
        let mut c = Client::new();
        for _ in 0..4 {
            for _ in 0..50 {
                c.frame(flood);
            }
            s.feed(&mut c).expect("answered and flushed");
            s.conn.flushed();
        }
    }
}

#[test]
fn an_empty_data_flood_is_cut_off() {
    let mut s = Server::new(Config {
        max_empty_data: 10,
        ..Config::default()
    });
    let mut c = Client::new();
    c.headers(1, &POST, false);
    for _ in 0..10 {
        c.frame(Frame::Data {
            stream: 1,
            end_stream: false,
            data: b"",
            pad: None,
        });
    }
    assert_eq!(s.feed(&mut c).expect("within the limit").len(), 11);
    c.frame(Frame::Data {
        stream: 1,
        end_stream: false,
        data: b"",
        pad: None,
    });
    assert_eq!(
        s.feed(&mut c).expect_err("flood").code,
        ErrorCode::EnhanceYourCalm
    );
    // An empty DATA that ends the stream is not counted.
    let mut s = Server::new(Config {
        max_empty_data: 0,
        ..Config::default()
    });
    let mut c = Client::new();
    c.headers(1, &POST, false);
    c.frame(Frame::Data {
        stream: 1,
        end_stream: true,
        data: b"",
        pad: None,
    });
    assert_eq!(
        s.feed(&mut c),
        Ok(vec![Seen::Request(1, false), Seen::Data(1, vec![], true)])
    );
}
