//! http-file-server against curl, a client nobody here wrote.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use common::{random_bytes, run_bounded, start, TempDir};

const EXE: &str = env!("CARGO_BIN_EXE_http-file-server");

fn sha256_of(path: &std::path::Path) -> String {
    let (ok, out) = run_bounded(Command::new("sha256sum").arg(path), 30);
    assert!(ok, "{out}");
    out.split_whitespace().next().unwrap().to_string()
}

fn curl(args: &[&str]) -> String {
    let (ok, out) = run_bounded(
        Command::new("curl")
            .args(["-s", "--max-time", "30"])
            .args(args),
        40,
    );
    assert!(ok, "curl {args:?} failed: {out}");
    out
}

struct Site {
    dir: TempDir,
    outside: TempDir,
    server: common::Running,
}

fn site() -> Site {
    let dir = TempDir::new("http-root");
    let outside = TempDir::new("http-outside");
    std::fs::write(dir.0.join("big.bin"), random_bytes(1, 20 * 1024 * 1024)).unwrap();
    std::fs::write(dir.0.join("hello.txt"), b"hello, world\n").unwrap();
    std::fs::create_dir(dir.0.join("sub")).unwrap();
    std::fs::write(dir.0.join("sub/a.html"), b"<p>a</p>").unwrap();
    std::fs::write(outside.0.join("secret.txt"), b"SECRET-OUTSIDE-ROOT").unwrap();
    std::os::unix::fs::symlink(outside.0.join("secret.txt"), dir.0.join("escape")).unwrap();
    std::os::unix::fs::symlink(&outside.0, dir.0.join("escape-dir")).unwrap();
    let server = start(EXE, &["--root", dir.0.to_str().unwrap(), "--threads", "2"]);
    Site {
        dir,
        outside,
        server,
    }
}

#[test]
fn curl_downloads_match_and_errors_are_right() {
    let s = site();
    let base = format!("http://{}", s.server.addr);
    let out = s.dir.0.join("download.tmp");
    curl(&["-o", out.to_str().unwrap(), &format!("{base}/big.bin")]);
    assert_eq!(sha256_of(&out), sha256_of(&s.dir.0.join("big.bin")));
    std::fs::remove_file(&out).unwrap();

    // HEAD: headers, no body.
    // (Field names are case-insensitive; weft sends them in lower case.)
    let head = curl(&["-I", &format!("{base}/hello.txt")]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-length: 13"), "{head}");
    assert!(head.contains("content-type: text/plain"), "{head}");
    assert!(head.contains("last-modified:"), "{head}");

    // A range.
    let r = curl(&[
        "-i",
        "-H",
        "Range: bytes=7-11",
        &format!("{base}/hello.txt"),
    ]);
    assert!(r.starts_with("HTTP/1.1 206"), "{r}");
    assert!(r.contains("content-range: bytes 7-11/13"), "{r}");
    assert!(r.ends_with("world"), "{r}");
    let r = curl(&[
        "-i",
        "-H",
        "Range: bytes=100-",
        &format!("{base}/hello.txt"),
    ]);
    assert!(r.starts_with("HTTP/1.1 416"), "{r}");

    // If-Modified-Since.
    let lm = head
        .lines()
        .find_map(|l| l.strip_prefix("last-modified: "))
        .unwrap()
        .trim()
        .to_string();
    let r = curl(&[
        "-i",
        "-H",
        &format!("If-Modified-Since: {lm}"),
        &format!("{base}/hello.txt"),
    ]);
    assert!(r.starts_with("HTTP/1.1 304"), "{r}");

    // 404, 405, directory index.
    let code = |args: &[&str]| curl(&[&["-o", "/dev/null", "-w", "%{http_code}"], args].concat());
    assert_eq!(code(&[&format!("{base}/missing")]), "404");
    assert_eq!(code(&["-X", "DELETE", &format!("{base}/hello.txt")]), "405");
    let index = curl(&[&format!("{base}/sub/")]);
    assert!(index.contains("a.html"), "{index}");
    assert_eq!(code(&[&format!("{base}/sub")]), "301");
}

#[test]
fn traversal_never_leaks_a_byte_from_outside() {
    let s = site();
    let base = format!("http://{}", s.server.addr);
    let secret_dir = s
        .outside
        .0
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let attempts = [
        "/../etc/passwd".to_string(),
        "/%2e%2e/etc/passwd".to_string(),
        "/%2E%2E/%2E%2E/etc/passwd".to_string(),
        "/sub/../../etc/passwd".to_string(),
        "/..%2fetc%2fpasswd".to_string(),
        format!("/../{secret_dir}/secret.txt"),
        "/escape".to_string(),
        "/escape-dir/secret.txt".to_string(),
        "//etc/passwd".to_string(),
        "/%00".to_string(),
    ];
    for a in &attempts {
        let out = curl(&["--path-as-is", "-i", &format!("{base}{a}")]);
        let status: u16 = out.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(matches!(status, 400 | 403 | 404), "{a}: {out}");
        assert!(
            !out.contains("SECRET") && !out.contains("root:"),
            "{a} leaked: {out}"
        );
    }
    // An absolute-form target (its path is looked up under the root: 404)
    // and a raw request with `..` over a plain socket.
    for raw in [
        "GET http://x/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut sock = std::net::TcpStream::connect(&s.server.addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock.write_all(raw.as_bytes()).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.read(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            ["400", "403", "404"]
                .iter()
                .any(|c| text.starts_with(&format!("HTTP/1.1 {c}"))),
            "{text}"
        );
        assert!(!text.contains("root:"), "{text}");
    }
}

#[test]
fn pipelined_requests_on_one_connection() {
    let s = site();
    let mut sock = std::net::TcpStream::connect(&s.server.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /sub/a.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut all = Vec::new();
    sock.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    let first = text.find("hello, world").expect(&text);
    let second = text.find("<p>a</p>").expect(&text);
    assert!(first < second, "answered in order");
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
}

#[test]
fn oversized_heads_get_414_and_431() {
    let s = site();
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        "X-A: b\r\n".repeat(100)
    );
    for (req, want) in [(long_target, "414"), (many_headers, "431")] {
        let mut sock = std::net::TcpStream::connect(&s.server.addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock.write_all(req.as_bytes()).unwrap();
        let mut all = Vec::new();
        let _ = sock.read_to_end(&mut all);
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with(&format!("HTTP/1.1 {want}")), "{text}");
    }
}

/// A file of `mib` MiB whose every MiB is stamped with its index: a lost,
/// repeated or reordered piece changes the hash. Cheap to make in a debug
/// build, unlike `mib` MiB of random bytes.
fn stamped_file(path: &std::path::Path, mib: usize) {
    let block = random_bytes(5, 1 << 20);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut b = block.clone();
    for i in 0..mib {
        b[..8].copy_from_slice(&(i as u64).to_le_bytes());
        f.write_all(&b).unwrap();
    }
    f.flush().unwrap();
}

/// A value from `/proc/PID/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// `curl -T` of a 1 GiB file to `--upload`: the file arrives whole (sha256),
/// and the server's peak memory grows by less than 64 MiB: the body is
/// streamed to disk, never held.
#[test]
fn a_one_gib_upload_streams_to_disk_with_bounded_memory() {
    let root = TempDir::new("http-up-root");
    let up = TempDir::new("http-up");
    let src = TempDir::new("http-up-src");
    let file = src.0.join("big.bin");
    stamped_file(&file, 1024);
    let server = start(
        EXE,
        &[
            "--root",
            root.0.to_str().unwrap(),
            "--upload",
            up.0.to_str().unwrap(),
            "--threads",
            "2",
        ],
    );
    let pid = server.child.id();
    let before = status_kib(pid, "VmRSS:");
    let (ok, out) = run_bounded(
        Command::new("curl").args([
            "-s",
            "--max-time",
            "600",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-T",
            file.to_str().unwrap(),
            &format!("http://{}/big.bin", server.addr),
        ]),
        620,
    );
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "201", "created");
    let peak = status_kib(pid, "VmHWM:");
    assert!(
        peak.saturating_sub(before) < 64 * 1024,
        "peak RSS grew from {before} KiB to {peak} KiB"
    );
    assert_eq!(sha256_of(&up.0.join("big.bin")), sha256_of(&file));
    let leftovers: Vec<_> = std::fs::read_dir(&up.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary left: {leftovers:?}");
}

/// Chunked uploads, `Expect: 100-continue`, replacing a file (204), and
/// refused targets; the uploaded file is then served.
#[test]
fn chunked_and_continued_uploads_and_refusals() {
    let up = TempDir::new("http-up2");
    std::fs::create_dir(up.0.join("sub")).unwrap();
    let src = TempDir::new("http-up-src2");
    let data = random_bytes(9, 3 << 20);
    let file = src.0.join("data.bin");
    std::fs::write(&file, &data).unwrap();
    let server = start(
        EXE,
        &[
            "--root",
            up.0.to_str().unwrap(),
            "--upload",
            up.0.to_str().unwrap(),
        ],
    );
    let base = format!("http://{}", server.addr);
    let put = |extra: &[&str], path: &str| -> String {
        let mut args = vec!["-s", "-o", "/dev/null", "-w", "%{http_code}", "-T"];
        args.push(file.to_str().unwrap());
        args.extend_from_slice(extra);
        let url = format!("{base}{path}");
        args.push(&url);
        curl(&args)
    };
    // Chunked (no length known to the server).
    assert_eq!(
        put(&["-H", "Transfer-Encoding: chunked"], "/sub/c.bin"),
        "201"
    );
    assert_eq!(std::fs::read(up.0.join("sub/c.bin")).unwrap(), data);
    // Replacing it: 204.
    assert_eq!(put(&[], "/sub/c.bin"), "204");
    // 100-continue: curl waits for it and reports it with -v.
    let (ok, out) = run_bounded(
        Command::new("curl").args([
            "-s",
            "-v",
            "--max-time",
            "30",
            "--expect100-timeout",
            "20",
            "-H",
            "Expect: 100-continue",
            "-o",
            "/dev/null",
            "-T",
            file.to_str().unwrap(),
            &format!("{base}/e.bin"),
        ]),
        40,
    );
    assert!(ok, "{out}");
    assert!(out.contains("HTTP/1.1 100 Continue"), "{out}");
    assert!(out.contains("HTTP/1.1 201 Created"), "{out}");
    assert_eq!(std::fs::read(up.0.join("e.bin")).unwrap(), data);
    // The uploaded file is served back.
    let back = src.0.join("back.bin");
    curl(&["-o", back.to_str().unwrap(), &format!("{base}/e.bin")]);
    assert_eq!(std::fs::read(&back).unwrap(), data);
    // Refusals: outside the root, into a missing directory, over a
    // directory; nothing is left behind.
    assert_eq!(put(&["--path-as-is"], "/../x.bin"), "403");
    assert_eq!(put(&[], "/nodir/x.bin"), "404");
    assert_eq!(put(&[], "/sub"), "403");
    let mut names: Vec<_> = std::fs::read_dir(&up.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["e.bin", "sub"]);
}

/// `curl --compressed` against `--compress`: a text file and an index page
/// arrive coded (gzip or br) and inflate to the original; without the
/// flag the file leaves plain.
#[test]
fn curl_compressed_gets_coded_answers() {
    let dir = TempDir::new("http-gz");
    let text = "a line of text that compresses well\n".repeat(500);
    std::fs::write(dir.0.join("t.txt"), &text).unwrap();
    let server = start(EXE, &["--root", dir.0.to_str().unwrap(), "--compress"]);
    let base = format!("http://{}", server.addr);
    let out = dir.0.join("got.txt");
    let head = curl(&[
        "--compressed",
        "-D",
        "-",
        "-o",
        out.to_str().unwrap(),
        &format!("{base}/t.txt"),
    ]);
    assert!(head.contains("content-encoding: "), "{head}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
    let index = curl(&["--compressed", "-i", &format!("{base}/")]);
    assert!(index.contains("t.txt"), "{index}");
    let plain = start(EXE, &["--root", dir.0.to_str().unwrap()]);
    let head = curl(&[
        "--compressed",
        "-I",
        &format!("http://{}/t.txt", plain.addr),
    ]);
    assert!(!head.contains("content-encoding"), "{head}");
}

/// A client that half-closes in the middle of its upload: the upload is
/// dropped (no file, no temporary left), and the connection ends.
#[test]
fn an_upload_cut_short_by_a_half_close_leaves_nothing() {
    let up = TempDir::new("http-up-half");
    let server = start(
        EXE,
        &[
            "--root",
            up.0.to_str().unwrap(),
            "--upload",
            up.0.to_str().unwrap(),
        ],
    );
    let mut sock = std::net::TcpStream::connect(&server.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    sock.write_all(b"PUT /half.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        .unwrap();
    sock.write_all(&random_bytes(2, 300_000)).unwrap();
    sock.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = sock.read_to_end(&mut rest);
    assert!(rest.is_empty(), "no answer to half a request: {rest:?}");
    // The writer thread removes its temporary once it sees the end.
    let mut names = Vec::new();
    for _ in 0..500 {
        names = std::fs::read_dir(&up.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        if names.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(names.is_empty(), "left behind: {names:?}");
}
