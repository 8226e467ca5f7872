//! resp-server against Debian's redis-tools (redis-cli, redis-benchmark).

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use common::{run_bounded, start};

const EXE: &str = env!("CARGO_BIN_EXE_resp-server");

fn redis_cli(port: u16, args: &[&str]) -> String {
    let (ok, out) = run_bounded(
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args),
        30,
    );
    assert!(ok, "redis-cli {args:?}: {out}");
    out.trim_end().to_string()
}

#[test]
fn redis_cli_round_trips_give_redis_answers() {
    let s = start(EXE, &["--threads", "2"]);
    let p = s.port();
    let cases: &[(&[&str], &str)] = &[
        (&["PING"], "PONG"),
        (&["PING", "hi"], "hi"),
        (&["ECHO", "hello world"], "hello world"),
        (&["SET", "k", "v"], "OK"),
        (&["GET", "k"], "v"),
        (&["SET", "k", "w", "NX"], ""),
        (&["SET", "k", "w", "XX"], "OK"),
        (&["SET", "fresh", "x", "XX"], ""),
        (&["GET", "k"], "w"),
        (&["SET", "n", "10"], "OK"),
        (&["INCR", "n"], "11"),
        (&["DECR", "n"], "10"),
        (
            &["INCR", "k"],
            "ERR value is not an integer or out of range",
        ),
        (&["MSET", "a", "1", "b", "2"], "OK"),
        (&["MGET", "a", "missing", "b"], "1\n\n2"),
        (&["EXISTS", "a", "b", "missing"], "2"),
        (&["DEL", "a", "missing"], "1"),
        (&["TTL", "b"], "-1"),
        (&["EXPIRE", "b", "100"], "1"),
        (&["TTL", "b"], "100"),
        (&["TTL", "missing"], "-2"),
        (&["SET", "e", "v", "EX", "50"], "OK"),
        (&["TTL", "e"], "50"),
        (&["SET", "pe", "v", "PX", "100000"], "OK"),
        (&["TTL", "pe"], "100"),
        (&["GET"], "ERR wrong number of arguments for 'get' command"),
        (&["FLUSHALL"], "OK"),
        (&["EXISTS", "k"], "0"),
        (&["GET", "k"], ""),
    ];
    for (args, want) in cases {
        assert_eq!(&redis_cli(p, args), want, "{args:?}");
    }
    assert!(redis_cli(p, &["NOSUCH", "x"]).starts_with("ERR unknown command 'NOSUCH'"));
    // Inline commands and QUIT over a raw socket.
    let mut sock = std::net::TcpStream::connect(&s.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(b"PING\r\nSET inline yes\r\nGET inline\r\nQUIT\r\n")
        .unwrap();
    let mut all = String::new();
    sock.read_to_string(&mut all).unwrap();
    assert_eq!(all, "+PONG\r\n+OK\r\n$3\r\nyes\r\n+OK\r\n");
}

#[test]
fn redis_benchmark_completes_without_errors() {
    let s = start(EXE, &["--threads", "2"]);
    let (ok, out) = run_bounded(
        Command::new("redis-benchmark").args([
            "-h",
            "127.0.0.1",
            "-p",
            &s.port().to_string(),
            "-t",
            "set,get,incr,mset",
            "-n",
            "20000",
            "-P",
            "16",
            "-q",
        ]),
        120,
    );
    assert!(ok, "redis-benchmark: {out}");
    for t in ["SET", "GET", "INCR", "MSET"] {
        assert!(
            out.contains(t) && out.contains("requests per second"),
            "{out}"
        );
    }
    assert!(!out.to_lowercase().contains("error"), "{out}");
}

#[test]
fn protocol_errors_are_answered_then_closed() {
    let s = start(EXE, &[]);
    for bad in [&b"*1\r\n+notbulk\r\n"[..], b"*x\r\n", b"*1\r\n$-3\r\n"] {
        let mut sock = std::net::TcpStream::connect(&s.addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock.write_all(bad).unwrap();
        let mut all = String::new();
        sock.read_to_string(&mut all).unwrap(); // returns at EOF: the server closed
        assert!(all.starts_with("-ERR Protocol error"), "{bad:?}: {all}");
    }
    // The server still answers well-formed requests.
    assert_eq!(redis_cli(s.port(), &["PING"]), "PONG");
}
