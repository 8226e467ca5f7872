//! The datagram examples against real clients on loopback: dns-server with
//! `dig` (every record type, a missing name, truncation and the retry over
//! TCP) and `dnsperf` (10 s, no query lost), seeded garbage followed by a
//! query still answered; udp-echo with `socat`, with `nc -u`, and with
//! several channels on one port.

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{run_bounded, start, Running};

/// dns-server without response-rate limiting: these clients all ask from
/// 127.0.0.1, thousands of times (the limit's own test is in hostile.rs).
fn dns_server() -> Running {
    start(env!("CARGO_BIN_EXE_dns-server"), &["--rrl-rate", "0"])
}

/// `dig` against the server with `args`; its whole output.
fn dig(s: &Running, args: &[&str]) -> String {
    let (ok, out) = run_bounded(
        Command::new("dig")
            .arg("@127.0.0.1")
            .args(["-p", &s.port().to_string()])
            .args(["+time=5", "+tries=1"])
            .args(args),
        30,
    );
    assert!(ok, "dig {args:?} failed:\n{out}");
    out
}

fn short(s: &Running, name: &str, ty: &str) -> Vec<String> {
    dig(s, &[name, ty, "+short"])
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn dig_gets_each_record_type_and_the_right_status() {
    let s = dns_server();
    assert_eq!(short(&s, "www.example.test", "A"), ["192.0.2.10"]);
    assert_eq!(short(&s, "WWW.EXAMPLE.test", "AAAA"), ["2001:db8::10"]);
    assert_eq!(
        short(&s, "chain.example.test", "A"),
        ["alias.example.test.", "www.example.test.", "192.0.2.10"]
    );
    assert_eq!(
        short(&s, "alias.example.test", "CNAME"),
        ["www.example.test."]
    );
    assert_eq!(
        short(&s, "txt.example.test", "TXT"),
        ["\"hello from weft\""]
    );
    let out = dig(&s, &["nope.example.test", "A"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert!(out.contains("flags: qr aa"), "authoritative: {out}");
    assert!(out.contains("AUTHORITY: 1"), "the SOA: {out}");
    let out = dig(&s, &["www.example.test", "MX"]);
    assert!(
        out.contains("status: NOERROR") && out.contains("ANSWER: 0"),
        "{out}"
    );
    let out = dig(&s, &["example.org", "A"]);
    assert!(out.contains("status: REFUSED"), "{out}");
}

#[test]
fn a_large_answer_is_truncated_over_udp_and_whole_over_tcp() {
    let s = dns_server();
    // Without EDNS the client takes 512 bytes: TC set, nothing answered.
    let out = dig(&s, &["big.example.test", "TXT", "+noedns", "+ignore"]);
    assert!(out.contains(" tc"), "no TC bit: {out}");
    assert!(out.contains("ANSWER: 0"), "{out}");
    // dig then retries over TCP by itself, and gets all six records.
    let out = dig(&s, &["big.example.test", "TXT", "+noedns"]);
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert!(out.contains("ANSWER: 6"), "{out}");
    // With EDNS there is room in one datagram.
    let out = dig(&s, &["big.example.test", "TXT", "+bufsize=4096"]);
    assert!(!out.contains(" tc") && out.contains("ANSWER: 6"), "{out}");
}

#[test]
fn dnsperf_loses_no_query_in_ten_seconds() {
    let s = dns_server();
    let queries = std::env::temp_dir().join(format!("weft-dnsperf-{}.txt", std::process::id()));
    std::fs::write(
        &queries,
        "www.example.test A\nwww.example.test AAAA\nalias.example.test A\n\
         txt.example.test TXT\nnope.example.test A\n",
    )
    .unwrap();
    let (ok, out) = run_bounded(
        Command::new("dnsperf")
            .args(["-s", "127.0.0.1", "-p", &s.port().to_string()])
            .arg("-d")
            .arg(&queries)
            .args(["-l", "10", "-c", "4"]),
        60,
    );
    let _ = std::fs::remove_file(&queries);
    assert!(ok, "dnsperf failed:\n{out}");
    let field = |name: &str| -> u64 {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line:\n{out}"));
        line.split(':')
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (sent, completed, lost) = (
        field("Queries sent"),
        field("Queries completed"),
        field("Queries lost"),
    );
    eprintln!("dnsperf: {sent} sent, {completed} completed, {lost} lost");
    assert!(sent > 1000, "{out}");
    assert_eq!(lost, 0, "{out}");
    assert_eq!(sent, completed);
}

/// A DNS query for `www.example.test A` with `id`.
fn query(id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in ["www", "example", "test"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

#[test]
fn garbage_is_survived_and_the_next_query_answered() {
    let s = dns_server();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let to = ("127.0.0.1", s.port());
    let mut buf = [0u8; 4096];
    let valid = query(0x5151);
    // Seeded: random datagrams, and the valid query with bytes changed,
    // in windows of 50 so that no receive queue overflows.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut answered = 0;
    for window in 0..40 {
        for i in 0..50 {
            let d: Vec<u8> = if (window + i) % 2 == 0 {
                (0..next() % 700).map(|_| next() as u8).collect()
            } else {
                let mut d = valid.clone();
                let at = next() as usize % d.len();
                d[at] = next() as u8;
                d
            };
            sock.send_to(&d, to).unwrap();
        }
        // Drain what came back (FORMERR and the like), until a probe's
        // answer shows the window was read.
        let probe = query(0x7000 + window);
        sock.send_to(&probe, to).unwrap();
        loop {
            let (n, _) = sock
                .recv_from(&mut buf)
                .expect("the server stopped answering");
            if buf[..2] == probe[..2] && n > 12 {
                break;
            }
            answered += 1;
        }
    }
    eprintln!("garbage: 2000 datagrams, {answered} answered (FORMERR, NXDOMAIN, ...)");
    sock.send_to(&valid, to).unwrap();
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(buf[..2], valid[..2]);
    assert!(n > valid.len(), "an answer, not an error");
    let out = dig(&s, &["www.example.test", "A", "+short"]);
    assert_eq!(out.trim(), "192.0.2.10");
}

#[test]
fn socat_and_nc_get_their_datagrams_back() {
    let s = start(env!("CARGO_BIN_EXE_udp-echo"), &[]);
    let (ok, out) = run_bounded(
        Command::new("sh").arg("-c").arg(format!(
            "printf 'weft over udp' | socat -T 5 - UDP:127.0.0.1:{}",
            s.port()
        )),
        30,
    );
    assert!(ok, "{out}");
    assert_eq!(out, "weft over udp");
    let mut nc = Command::new("nc")
        .args(["-u", "-w", "2", "127.0.0.1", &s.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("nc (netcat-openbsd) must be installed");
    use std::io::Write;
    nc.stdin.take().unwrap().write_all(b"hello nc\n").unwrap();
    let out = nc.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello nc\n");
}

#[test]
fn several_channels_on_one_port_answer_every_client() {
    let s = start(env!("CARGO_BIN_EXE_udp-echo"), &["--threads", "2"]);
    let clients: Vec<UdpSocket> = (0..8)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for (i, c) in clients.iter().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for k in 0..20u8 {
            c.send_to(&[i as u8, k], ("127.0.0.1", s.port())).unwrap();
            let mut buf = [0u8; 8];
            let (n, _) = c.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i as u8, k]);
        }
    }
}
