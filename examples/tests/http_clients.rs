//! http-hello and http-get against clients and servers nobody here wrote:
//! wrk (with 16 requests pipelined per connection), h2load --h1, ab -k,
//! Python's http.client (keep-alive, and pipelined answers read by its
//! parser), and http-get against http-file-server. Each load run counts
//! answers and errors, never speed.

mod common;

use std::process::Command;

use common::{random_bytes, run_bounded, start, TempDir};

const HELLO: &str = env!("CARGO_BIN_EXE_http-hello");

/// The number in `text` right after `label` (for tools' summaries).
fn number_after(text: &str, label: &str) -> Option<u64> {
    let rest = &text[text.find(label)? + label.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[test]
fn wrk_pipelined_and_plain_get_only_2xx() {
    let server = start(HELLO, &["--threads", "1"]);
    let dir = TempDir::new("wrk");
    let script = dir.0.join("pipeline.lua");
    std::fs::write(
        &script,
        "init = function(args)\n\
           local r = {}\n\
           for i = 1, 16 do r[i] = wrk.format(nil, \"/plaintext\") end\n\
           req = table.concat(r)\n\
         end\n\
         request = function() return req end\n",
    )
    .unwrap();
    for (path, extra) in [("/plaintext", Some(&script)), ("/json", None)] {
        let url = format!("http://{}{path}", server.addr);
        let mut cmd = Command::new("wrk");
        cmd.args(["-t", "1", "-c", "32", "-d", "2s"]);
        if let Some(s) = extra {
            cmd.args(["-s", s.to_str().unwrap()]);
        }
        cmd.arg(&url);
        let (ok, out) = run_bounded(&mut cmd, 60);
        assert!(ok, "{out}");
        let total = out
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no request count: {out}"));
        assert!(total > 0, "{out}");
        assert!(!out.contains("Non-2xx"), "non-2xx answers: {out}");
        assert!(!out.contains("Socket errors"), "socket errors: {out}");
    }
}

#[test]
fn h2load_h1_pipelined_all_succeed() {
    let server = start(HELLO, &["--threads", "1"]);
    let url = format!("http://{}/plaintext", server.addr);
    let (ok, out) = run_bounded(
        Command::new("h2load").args(["--h1", "-n", "20000", "-c", "16", "-m", "16", &url]),
        120,
    );
    assert!(ok, "{out}");
    assert_eq!(number_after(&out, "requests:"), Some(20000), "{out}");
    assert!(
        out.contains("20000 succeeded, 0 failed, 0 errored"),
        "{out}"
    );
    assert_eq!(
        number_after(&out, "status codes:"),
        Some(20000),
        "all 2xx: {out}"
    );
}

#[test]
fn ab_keep_alive_no_failures() {
    let server = start(HELLO, &["--threads", "1"]);
    let url = format!("http://{}/json", server.addr);
    let (ok, out) = run_bounded(
        Command::new("ab").args(["-k", "-n", "5000", "-c", "8", &url]),
        120,
    );
    assert!(ok, "{out}");
    assert_eq!(
        number_after(&out, "Complete requests:"),
        Some(5000),
        "{out}"
    );
    assert_eq!(number_after(&out, "Failed requests:"), Some(0), "{out}");
    assert_eq!(
        number_after(&out, "Keep-Alive requests:"),
        Some(5000),
        "{out}"
    );
    assert!(!out.contains("Non-2xx"), "{out}");
}

/// Python's http.client: 50 requests on one kept-alive connection, then
/// 20 requests written at once on a raw socket and the answers read one by
/// one by http.client's own parser.
#[test]
fn python_http_client_keep_alive_and_pipelining() {
    let server = start(HELLO, &["--threads", "1"]);
    let (host, port) = server.addr.rsplit_once(':').unwrap();
    let script = format!(
        r#"
import http.client, socket, json
c = http.client.HTTPConnection("{host}", {port}, timeout=20)
for i in range(50):
    c.request("GET", "/plaintext" if i % 2 else "/json")
    r = c.getresponse()
    body = r.read()
    assert r.status == 200, r.status
    if i % 2:
        assert body == b"Hello, World!", body
    else:
        assert json.loads(body) == {{"message": "Hello, World!"}}, body
    assert r.getheader("Date") and r.getheader("Server") == "weft"
c.close()
s = socket.create_connection(("{host}", {port}), timeout=20)
s.sendall(b"".join(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n" for _ in range(20)))
class Shared:
    """One buffered reader for every answer (the answers share reads)."""
    def __init__(self, f): self.f = f
    def makefile(self, mode): return self
    def __getattr__(self, name): return getattr(self.f, name)
    def close(self): pass
shared = Shared(s.makefile("rb"))
for i in range(20):
    r = http.client.HTTPResponse(shared)
    r.begin()
    assert r.status == 200 and r.read() == b"Hello, World!", i
s.close()
print("ok")
"#
    );
    let (ok, out) = run_bounded(Command::new("python3").args(["-c", &script]), 60);
    assert!(ok && out.trim_end().ends_with("ok"), "{out}");
}

/// http-get downloads from http-file-server: a file byte for byte, a 404
/// with exit code 22, a refused connection with exit code 1.
#[test]
fn http_get_downloads_from_the_file_server() {
    let dir = TempDir::new("http-get");
    let data = random_bytes(3, 5 << 20);
    std::fs::write(dir.0.join("f.bin"), &data).unwrap();
    let server = start(
        env!("CARGO_BIN_EXE_http-file-server"),
        &["--root", dir.0.to_str().unwrap()],
    );
    let get = env!("CARGO_BIN_EXE_http-get");
    let out_file = dir.0.join("got.bin");
    let url = format!("http://{}/f.bin", server.addr);
    let (ok, out) = run_bounded(
        Command::new(get).args([&url, "-o", out_file.to_str().unwrap()]),
        60,
    );
    assert!(ok, "{out}");
    assert!(std::fs::read(&out_file).unwrap() == data, "the file, whole");
    let status = Command::new(get)
        .arg(format!("http://{}/missing", server.addr))
        .output()
        .unwrap()
        .status;
    assert_eq!(status.code(), Some(22));
    let refused = Command::new(get)
        .arg("http://127.0.0.1:1/")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refused"));
}
