//! The example servers' defences, each against the attack it answers.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{random_bytes, start, TempDir};

/// A response: status, header fields (names lower-cased), body.
type Response = (u16, Vec<(String, String)>, Vec<u8>);

/// Reads one HTTP response (head and a Content-Length body).
fn response(r: &mut BufReader<TcpStream>) -> Option<Response> {
    let mut status_line = String::new();
    if r.read_line(&mut status_line).ok()? == 0 {
        return None;
    }
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).ok()?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':')?;
        headers.push((n.to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some((status, headers, body))
}

fn connect(addr: &str) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

#[test]
fn http_stops_parsing_after_connection_close() {
    let root = TempDir::new("hard-close");
    std::fs::write(root.0.join("a"), b"A").unwrap();
    let s = start(
        env!("CARGO_BIN_EXE_http-file-server"),
        &["--root", root.0.to_str().unwrap()],
    );
    for first in [
        "GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "GET /a HTTP/1.0\r\n\r\n", // 1.0 without keep-alive
    ] {
        let (mut w, mut r) = connect(&s.addr);
        let mut req = first.as_bytes().to_vec();
        for _ in 0..50 {
            req.extend_from_slice(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
        }
        w.write_all(&req).unwrap();
        let (status, _, body) = response(&mut r).expect("the first response");
        assert_eq!((status, &body[..]), (200, &b"A"[..]));
        assert!(
            response(&mut r).is_none(),
            "answered after Connection: close"
        );
    }
}

#[test]
fn http_directory_redirect_is_never_protocol_relative() {
    let root = TempDir::new("hard-redirect");
    std::fs::create_dir_all(root.0.join("sub")).unwrap();
    let s = start(
        env!("CARGO_BIN_EXE_http-file-server"),
        &["--root", root.0.to_str().unwrap()],
    );
    for (target, want) in [("/sub", "/sub/"), ("//sub", "/sub/"), ("/./sub", "/sub/")] {
        let (mut w, mut r) = connect(&s.addr);
        w.write_all(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
        let (status, headers, _) = response(&mut r).unwrap();
        let loc = &headers.iter().find(|(n, _)| n == "location").unwrap().1;
        assert_eq!((status, loc.as_str()), (301, want), "GET {target}");
    }
}

#[test]
fn http_index_of_a_huge_directory_is_bounded() {
    let root = TempDir::new("hard-index");
    std::fs::create_dir_all(root.0.join("big")).unwrap();
    for i in 0..3000 {
        std::fs::write(root.0.join(format!("big/f{i:05}")), b"").unwrap();
    }
    let s = start(
        env!("CARGO_BIN_EXE_http-file-server"),
        &["--root", root.0.to_str().unwrap()],
    );
    let (mut w, mut r) = connect(&s.addr);
    w.write_all(b"GET /big/ HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let (status, _, body) = response(&mut r).unwrap();
    let page = String::from_utf8(body).unwrap();
    assert_eq!(status, 200);
    assert_eq!(page.matches("<li><a href=\"f").count(), 1000);
    assert!(page.contains("only the first 1000 entries"));
}

/// Under a descriptor limit, a file that cannot be opened for lack of
/// descriptors is 503 (try again), never 404 (a file that exists).
#[test]
fn http_out_of_descriptors_is_503_not_404() {
    let root = TempDir::new("hard-emfile");
    for i in 0..200 {
        std::fs::write(root.0.join(format!("f{i}")), b"x").unwrap();
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_http-file-server"));
    cmd.args(["--root", root.0.to_str().unwrap(), "--threads", "1"]);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the
    // child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 48, 48)
                .map_err(std::io::Error::from)
        });
    }
    let server = common::start_command(cmd);
    let addr = server.addr.clone();
    let (mut w, mut r) = connect(&addr);
    let mut statuses = Vec::new();
    // Distinct files, each kept open by the open-file cache for a second:
    // the limit is reached within a few dozen requests.
    for i in 0..200 {
        w.write_all(format!("GET /f{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
        statuses.push(response(&mut r).unwrap().0);
    }
    drop(server);
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(!statuses.contains(&404), "{statuses:?}");
}

/// A deleted file's descriptor is not kept by the open-file cache: its disk
/// space is freed (checked on the server's descriptors in /proc).
#[test]
fn http_cache_lets_go_of_deleted_files() {
    let root = TempDir::new("hard-deleted");
    std::fs::write(root.0.join("gone.bin"), random_bytes(5, 1 << 20)).unwrap();
    let s = start(
        env!("CARGO_BIN_EXE_http-file-server"),
        &["--root", root.0.to_str().unwrap()],
    );
    let (mut w, mut r) = connect(&s.addr);
    w.write_all(b"GET /gone.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut r).unwrap().0, 200);
    std::fs::remove_file(root.0.join("gone.bin")).unwrap();
    let pid = s.child.id();
    let holds_deleted = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .any(|t| t.to_string_lossy().contains("gone.bin (deleted)"))
    };
    // No request comes any more: the purge must happen on its own.
    let t0 = Instant::now();
    while holds_deleted() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the deleted file is still open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop((w, r));
}

#[test]
fn file_server_is_confined_and_never_blocks_on_a_fifo() {
    let base = TempDir::new("hard-file");
    let root = base.0.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(base.0.join("secret"), b"SECRET").unwrap();
    std::fs::write(root.join("ok"), b"fine").unwrap();
    std::os::unix::fs::symlink(base.0.join("secret"), root.join("link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd")).unwrap();
    nix::unistd::mkfifo(&root.join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let s = start(
        env!("CARGO_BIN_EXE_file-server"),
        &["--root", root.to_str().unwrap(), "--threads", "2"],
    );
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // Four FIFO requests (more than the worker threads), links out, then a
    // good file: all answered, none hangs.
    c.write_all(b"pipe\npipe\npipe\npipe\nlink\npasswd\nok\n")
        .unwrap();
    let mut len = [0u8; 8];
    for what in ["pipe", "pipe", "pipe", "pipe", "link", "passwd"] {
        c.read_exact(&mut len).unwrap();
        assert_eq!(i64::from_be_bytes(len), -1, "{what} must be refused");
    }
    c.read_exact(&mut len).unwrap();
    assert_eq!(i64::from_be_bytes(len), 4);
    let mut body = [0u8; 4];
    c.read_exact(&mut body).unwrap();
    assert_eq!(&body, b"fine");
}

/// CPU time (user + system) of a process, in seconds, from /proc.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0 // USER_HZ
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb / 1024.0
}

/// A 1M-argument MGET trickled in 700-byte pieces is parsed once: the
/// server's CPU time stays small (the first version re-parsed from byte 0
/// on every read: 19 CPU-seconds in a release build).
#[test]
fn resp_parses_a_trickled_huge_request_once() {
    let s = start(env!("CARGO_BIN_EXE_resp-server"), &["--threads", "1"]);
    let n = 1_000_000;
    let mut req = format!("*{}\r\n$4\r\nMGET\r\n", n + 1).into_bytes();
    for _ in 0..n {
        req.extend_from_slice(b"$1\r\nk\r\n");
    }
    let pid = s.child.id();
    let cpu0 = cpu_secs(pid);
    let (mut w, mut r) = connect(&s.addr);
    w.set_nodelay(true).unwrap();
    let reader = std::thread::spawn(move || {
        let mut head = String::new();
        r.read_line(&mut head).unwrap();
        let mut rest = vec![0u8; 5 * 1_000_000];
        r.read_exact(&mut rest).unwrap(); // a nil ($-1\r\n) per key
        head
    });
    for piece in req.chunks(700) {
        w.write_all(piece).unwrap();
    }
    assert_eq!(reader.join().unwrap(), format!("*{n}\r\n"));
    let cpu = cpu_secs(pid) - cpu0;
    println!(
        "resp-server: {cpu:.2} CPU-s for a trickled 1M-argument MGET ({} pieces)",
        req.len() / 700
    );
    assert!(cpu < 5.0, "{cpu} CPU-seconds");
}

/// Small values stored right behind a huge request do not keep its buffer
/// alive (the first version: 20 one-byte SETs after 50 MB ECHOs pinned
/// 958 MB).
#[test]
fn resp_small_values_do_not_pin_large_buffers() {
    let s = start(env!("CARGO_BIN_EXE_resp-server"), &["--threads", "1"]);
    let pid = s.child.id();
    let base = rss_mib(pid);
    let value = random_bytes(9, 50_000_000);
    let (mut w, mut r) = connect(&s.addr);
    for i in 0..20 {
        let mut req = format!("*2\r\n$4\r\nECHO\r\n${}\r\n", value.len()).into_bytes();
        req.extend_from_slice(&value);
        req.extend_from_slice(
            format!("\r\n*3\r\n$3\r\nSET\r\n$2\r\nk{}\r\n$1\r\nx\r\n", i % 10).as_bytes(),
        );
        let mut w2 = w.try_clone().unwrap();
        let writer = std::thread::spawn(move || w2.write_all(&req).unwrap());
        let mut head = String::new();
        r.read_line(&mut head).unwrap();
        let mut body = vec![0u8; value.len() + 2];
        r.read_exact(&mut body).unwrap();
        let mut ok = String::new();
        r.read_line(&mut ok).unwrap();
        assert_eq!(ok, "+OK\r\n");
        writer.join().unwrap();
    }
    w.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut pong = String::new();
    r.read_line(&mut pong).unwrap();
    let growth = rss_mib(pid) - base;
    println!("resp-server: RSS +{growth:.1} MiB after 20 x (50 MB ECHO + SET)");
    assert!(growth < 200.0, "RSS grew by {growth} MiB");
}

/// Keys with a time to live go when it runs out, though nobody reads them.
#[test]
fn resp_expires_keys_actively() {
    let s = start(env!("CARGO_BIN_EXE_resp-server"), &[]);
    let (mut w, mut r) = connect(&s.addr);
    let mut req = Vec::new();
    for i in 0..1000 {
        req.extend_from_slice(
            format!("*5\r\n$3\r\nSET\r\n$5\r\nk{i:04}\r\n$1\r\nv\r\n$2\r\nPX\r\n$3\r\n100\r\n")
                .as_bytes(),
        );
    }
    w.write_all(&req).unwrap();
    for _ in 0..1000 {
        let mut ok = String::new();
        r.read_line(&mut ok).unwrap();
        assert_eq!(ok, "+OK\r\n");
    }
    let t0 = Instant::now();
    loop {
        w.write_all(b"*1\r\n$6\r\nDBSIZE\r\n").unwrap();
        let mut n = String::new();
        r.read_line(&mut n).unwrap();
        if n == ":0\r\n" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "still {n}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
