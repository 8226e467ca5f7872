//! ws-load: a load generator for WebSocket echo servers.
//!
//! Each of `--conns` connections upgrades (`GET --path`), then keeps one
//! binary message of `--msg-size` bytes in flight: it sends a masked frame,
//! waits for the whole echo, sends the next. After `--warmup` seconds it
//! counts, for `--secs` seconds, the echoes that complete and their
//! latency. Every echo is checked: one unmasked binary frame of the size
//! sent (a server that fragments its echo is counted in error).
//!
//! Output (one line, parsed by `benches/run.sh`):
//! `ws-load conns=C size=S secs=T msgs/s=N p50=Nus p99=Nus errors=E`.
//! Exit status 1 when there were errors or no message completed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_benches::{Tally, Totals};

const USAGE: &str = "usage: ws-load --addr HOST:PORT [--path /echo] [--conns 100] \
[--msg-size 20] [--secs 5] [--warmup 1] [--threads 1]";

struct Opts {
    addr: SocketAddr,
    path: String,
    conns: usize,
    size: usize,
    secs: f64,
    warmup: f64,
    threads: usize,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        addr: "127.0.0.1:8090".parse().expect("a valid default"),
        path: "/echo".into(),
        conns: 100,
        size: 20,
        secs: 5.0,
        warmup: 1.0,
        threads: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "-h" || a == "--help" {
            return Err(USAGE.into());
        }
        let v = args
            .next()
            .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))?;
        let bad = || format!("bad value for {a}: {v}");
        match a.as_str() {
            "--addr" => o.addr = v.parse().map_err(|_| bad())?,
            "--path" => o.path = v.clone(),
            "--conns" => o.conns = v.parse().map_err(|_| bad())?,
            "--msg-size" => o.size = v.parse().map_err(|_| bad())?,
            "--threads" => o.threads = v.parse().map_err(|_| bad())?,
            "--secs" => o.secs = v.parse().map_err(|_| bad())?,
            "--warmup" => o.warmup = v.parse().map_err(|_| bad())?,
            _ => return Err(format!("unknown option {a}\n{USAGE}")),
        }
    }
    if !o.addr.ip().is_loopback() {
        return Err(format!("{} is not a loopback address", o.addr));
    }
    if o.conns == 0 || o.size == 0 || o.secs <= 0.0 || o.warmup < 0.0 {
        return Err(format!(
            "conns, msg-size and secs must be positive\n{USAGE}"
        ));
    }
    Ok(o)
}

/// A client's binary frame of `size` bytes, masked with a fixed key (the
/// same bytes for every message: no work per message on our side).
fn masked_frame(size: usize) -> Vec<u8> {
    const KEY: [u8; 4] = [0x5a, 0x3c, 0x96, 0x0f];
    let mut f = vec![0x82];
    match size {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&KEY);
    f.extend((0..size).map(|i| b'x' ^ KEY[i & 3]));
    f
}

/// Sends the upgrade and reads the answer's head; what followed it.
async fn upgrade(s: &mut TcpStream, o: &Opts) -> Result<Vec<u8>, String> {
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        o.path, o.addr
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed during the handshake".into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            if !head.starts_with(b"HTTP/1.1 101") {
                return Err(format!("not upgraded: {}", String::from_utf8_lossy(&head)));
            }
            return Ok(head.split_off(end + 4));
        }
        if head.len() > 16 << 10 {
            return Err("an answer head over 16 KiB".into());
        }
    }
}

/// The length of the frame header at the start of `b` and its payload
/// length, once the header is whole; an error for anything but an
/// unmasked, final binary frame.
fn frame_header(b: &[u8]) -> Result<Option<(usize, usize)>, String> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[0] != 0x82 || b[1] & 0x80 != 0 {
        return Err(format!("unexpected frame header {:02x} {:02x}", b[0], b[1]));
    }
    Ok(match b[1] & 0x7F {
        126 if b.len() >= 4 => Some((4, u16::from_be_bytes([b[2], b[3]]) as usize)),
        127 if b.len() >= 10 => Some((
            10,
            u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
        )),
        126 | 127 => None,
        n => Some((2, n as usize)),
    })
}

async fn one_connection(o: &Opts, start: Instant, end: Instant) -> Result<Tally, String> {
    let mut t = Tally::default();
    let mut s = TcpStream::connect(o.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", o.addr))?;
    let _ = s.set_nodelay(true);
    let mut pending = upgrade(&mut s, o).await?;
    let frame = masked_frame(o.size);
    let measure_from = start + Duration::from_secs_f64(o.warmup);
    let mut buf = vec![0u8; (o.size + 16).clamp(4096, 256 << 10)];
    while Instant::now() < end {
        let sent = Instant::now();
        s.write_all(&frame).await.map_err(|e| e.to_string())?;
        // Read the header, then skip the payload as it arrives.
        let (hlen, plen) = loop {
            if let Some(h) = frame_header(&pending)? {
                break h;
            }
            let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed by the server".into());
            }
            pending.extend_from_slice(&buf[..n]);
        };
        if plen != o.size {
            return Err(format!("an echo of {plen} bytes for {}", o.size));
        }
        let mut left = hlen + plen;
        let have = pending.len().min(left);
        pending.drain(..have);
        left -= have;
        while left > 0 {
            let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed by the server".into());
            }
            let used = n.min(left);
            left -= used;
            // Only one message is in flight: nothing may follow its echo.
            pending.extend_from_slice(&buf[used..n]);
        }
        let now = Instant::now();
        if now >= measure_from {
            t.msgs += 1;
            t.latencies_ns.push((now - sent).as_nanos() as u64);
        }
    }
    Ok(t)
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rt = weft_benches::runtime(o.threads);
    let o = std::sync::Arc::new(o);
    let tallies = rt.block_on(async {
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(o.warmup + o.secs);
        let tasks: Vec<_> = (0..o.conns)
            .map(|_| {
                let o = o.clone();
                tokio::spawn(async move { one_connection(&o, start, end).await })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.push(match t.await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    eprintln!("ws-load: {e}");
                    Tally::failed()
                }
                Err(_) => Tally::failed(),
            });
        }
        all
    });
    let t = Totals::of(tallies);
    println!(
        "ws-load conns={} size={} secs={} msgs/s={:.0} p50={}us p99={}us errors={}",
        o.conns,
        o.size,
        o.secs,
        t.msgs as f64 / o.secs,
        t.p50_us,
        t.p99_us,
        t.errors,
    );
    std::process::exit(t.exit_code());
}
