//! The examples over TLS with clients nobody here wrote: curl and openssl.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{random_bytes, run_bounded, start, TempDir};

/// A self-signed certificate for localhost, as PEM files in `dir`.
fn make_cert(dir: &std::path::Path) -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    (
        cert.to_str().unwrap().to_string(),
        key.to_str().unwrap().to_string(),
    )
}

fn sha256(path: &std::path::Path) -> String {
    let (ok, out) = run_bounded(Command::new("sha256sum").arg(path), 30);
    assert!(ok, "{out}");
    out.split_whitespace().next().unwrap().to_string()
}

/// http-file-server over TLS serving `root`, with `extra` options.
fn https_server(root: &std::path::Path, cert: &str, key: &str, extra: &[&str]) -> common::Running {
    let mut args = vec![
        "--root",
        root.to_str().unwrap(),
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ];
    args.extend_from_slice(extra);
    start(env!("CARGO_BIN_EXE_http-file-server"), &args)
}

/// curl fetching `path` from the HTTPS server on `port`, trusting `cert`
/// (for "localhost", resolved to 127.0.0.1), within `secs` (curl's own
/// limit; the command is killed 10 s later); `args` go before the URL.
fn curl_https(port: u16, cert: &str, secs: u64, args: &[&str], path: &str) -> (bool, String) {
    let resolve = format!("localhost:{port}:127.0.0.1");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", &secs.to_string(), "--cacert", cert])
        .args(["--resolve", &resolve])
        .args(args)
        .arg(format!("https://localhost:{port}/{path}"));
    run_bounded(&mut cmd, secs + 10)
}

#[test]
fn curl_over_https_gets_the_same_bytes() {
    let dir = TempDir::new("https");
    let pki = TempDir::new("https-pki");
    let (cert, key) = make_cert(&pki.0);
    std::fs::write(dir.0.join("big.bin"), random_bytes(11, 20 * 1024 * 1024)).unwrap();
    let s = https_server(&dir.0, &cert, &key, &[]);
    let out = pki.0.join("got.bin");
    let (ok, text) = curl_https(
        s.port(),
        &cert,
        60,
        &[
            "-o",
            out.to_str().unwrap(),
            "-w",
            "%{http_code} %{ssl_verify_result}",
        ],
        "big.bin",
    );
    assert!(ok, "curl: {text}");
    assert_eq!(text, "200 0", "status and certificate verification");
    assert_eq!(sha256(&out), sha256(&dir.0.join("big.bin")));
    // A range over HTTPS too.
    let (ok, text) = curl_https(
        s.port(),
        &cert,
        30,
        &[
            "-r",
            "0-9",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
        ],
        "big.bin",
    );
    assert!(ok && text == "206 10", "{text}");
}

#[test]
fn openssl_s_client_talks_to_the_tls_echo_server() {
    let pki = TempDir::new("echo-pki");
    let (cert, key) = make_cert(&pki.0);
    let s = start(
        env!("CARGO_BIN_EXE_echo-server"),
        &["--tls-cert", &cert, "--tls-key", &key],
    );
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &s.addr,
            "-servername",
            "localhost",
            "-CAfile",
            &cert,
            "-verify_return_error",
            "-quiet",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl must be installed");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello through openssl\n").unwrap();
    stdin.flush().unwrap();
    // Read s_client's output until the echo comes back, then stop it.
    let mut stdout_pipe = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = stdout_pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(21).any(|w| w == b"hello through openssl") {
                break;
            }
        }
        let _ = tx.send(seen);
    });
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .unwrap_or_default();
    drop(stdin);
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&got);
    assert!(
        stdout.contains("hello through openssl"),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn openssl_s_client_gets_a_page_from_the_https_server() {
    let dir = TempDir::new("https-s-client");
    let pki = TempDir::new("https-s-client-pki");
    let (cert, key) = make_cert(&pki.0);
    std::fs::write(dir.0.join("hello.txt"), b"hello over tls\n").unwrap();
    let s = start(
        env!("CARGO_BIN_EXE_http-file-server"),
        &[
            "--root",
            dir.0.to_str().unwrap(),
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &s.addr,
            "-servername",
            "localhost",
            "-CAfile",
            &cert,
            "-verify_return_error",
            "-quiet",
            "-alpn",
            "http/1.1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl must be installed");
    let mut stdin = child.stdin.take().unwrap();
    // Connection: close: the server closes after the response, s_client exits.
    stdin
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(stdin);
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("HTTP/1.1 200 OK"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.ends_with("hello over tls\n"), "{text}");
}

/// Over TLS too, the header timeout never cuts a response still being
/// written: curl downloads 30 MB at 4 MB/s (7.5 s) from a server whose
/// header timeout is 3 s (the first version cut such downloads with a FIN).
#[test]
fn a_slow_https_download_outlives_the_header_timeout() {
    let dir = TempDir::new("https-slow");
    let pki = TempDir::new("https-slow-pki");
    let (cert, key) = make_cert(&pki.0);
    std::fs::write(dir.0.join("big.bin"), random_bytes(12, 30_000_000)).unwrap();
    let s = https_server(&dir.0, &cert, &key, &["--header-timeout", "3"]);
    let out = pki.0.join("got.bin");
    let (ok, text) = curl_https(
        s.port(),
        &cert,
        60,
        &[
            "--limit-rate",
            "4000000",
            "-o",
            out.to_str().unwrap(),
            "-w",
            "%{http_code} %{size_download}",
        ],
        "big.bin",
    );
    assert!(ok, "curl: {text}");
    assert_eq!(text, "200 30000000");
    assert_eq!(sha256(&out), sha256(&dir.0.join("big.bin")));
}
