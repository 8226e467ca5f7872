//! echo-load: a load generator for echo servers.
//!
//! Each of `--conns` connections keeps `--pipeline` messages of
//! `--msg-size` bytes in flight: it sends that many, then one more each
//! time a whole message has come back. After `--warmup` seconds it counts,
//! for `--secs` seconds, the messages that complete and their latency (the
//! send of a message to the arrival of its last byte). With `--verify`,
//! every message carries a pattern of its own (connection and sequence
//! number), and every byte that comes back is checked, order included.
//!
//! Output (one line, parsed by `benches/run.sh` and the tests):
//! `echo-load conns=C size=S pipeline=P secs=T msgs/s=N bytes/s=X.XMB/s p50=Nus p99=Nus errors=E`.
//! Exit status 1 when there were errors or no message completed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_benches::{Tally, Totals};

const USAGE: &str = "usage: echo-load --addr HOST:PORT [--conns 50] [--msg-size 64] \
[--pipeline 16] [--secs 5] [--warmup 1] [--threads 1] [--verify]";

struct Opts {
    addr: SocketAddr,
    conns: usize,
    size: usize,
    pipeline: usize,
    secs: f64,
    warmup: f64,
    threads: usize,
    verify: bool,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        addr: "127.0.0.1:7007".parse().expect("a valid default"),
        conns: 50,
        size: 64,
        pipeline: 16,
        secs: 5.0,
        warmup: 1.0,
        threads: 1,
        verify: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--verify" {
            o.verify = true;
            continue;
        }
        if a == "-h" || a == "--help" {
            return Err(USAGE.into());
        }
        let v = args
            .next()
            .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))?;
        let bad = |_| format!("bad value for {a}: {v}");
        match a.as_str() {
            "--addr" => o.addr = v.parse().map_err(|_| format!("bad address: {v}"))?,
            "--conns" => o.conns = v.parse().map_err(bad)?,
            "--msg-size" => o.size = v.parse().map_err(bad)?,
            "--pipeline" => o.pipeline = v.parse().map_err(bad)?,
            "--threads" => o.threads = v.parse().map_err(bad)?,
            "--secs" => o.secs = v.parse().map_err(|_| format!("bad value for {a}: {v}"))?,
            "--warmup" => o.warmup = v.parse().map_err(|_| format!("bad value for {a}: {v}"))?,
            _ => return Err(format!("unknown option {a}\n{USAGE}")),
        }
    }
    if !o.addr.ip().is_loopback() {
        return Err(format!("{} is not a loopback address", o.addr));
    }
    if o.conns == 0 || o.size == 0 || o.pipeline == 0 || o.secs <= 0.0 || o.warmup < 0.0 {
        return Err(format!(
            "conns, msg-size, pipeline and secs must be positive\n{USAGE}"
        ));
    }
    Ok(o)
}

/// The byte at `offset` of message `seq` on connection `conn`.
fn pattern(conn: usize, seq: u64, offset: usize) -> u8 {
    (conn as u64)
        .wrapping_mul(131)
        .wrapping_add(seq.wrapping_mul(31))
        .wrapping_add(offset as u64) as u8
}

async fn one_connection(o: &Opts, conn: usize, start: Instant, end: Instant) -> Tally {
    let mut t = Tally::default();
    let stream = match tokio::net::TcpStream::connect(o.addr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("connect {}: {e}", o.addr);
            t.errors += 1;
            return t;
        }
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let measure_from = start + Duration::from_secs_f64(o.warmup);
    let mut sent_at: VecDeque<Instant> = VecDeque::new();
    let mut next_seq: u64 = 0;
    let message = |seq: u64| -> Vec<u8> {
        (0..o.size)
            .map(|i| {
                if o.verify {
                    pattern(conn, seq, i)
                } else {
                    b'x'
                }
            })
            .collect()
    };
    // Without --verify every message is the same: answers are written as
    // slices of one prebuilt run of `pipeline` messages, no allocation.
    let plain = message(0).repeat(o.pipeline);
    // What comes back: the message being received and how far into it.
    let (mut recv_seq, mut recv_off) = (0u64, 0usize);
    let mut buf = vec![0u8; (o.size * o.pipeline).clamp(4096, 1 << 20)];
    while sent_at.len() < o.pipeline {
        let m = if o.verify {
            message(next_seq)
        } else {
            plain[..o.size].to_vec()
        };
        if wr.write_all(&m).await.is_err() {
            t.errors += 1;
            return t;
        }
        sent_at.push_back(Instant::now());
        next_seq += 1;
    }
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let n = match tokio::time::timeout(left, rd.read(&mut buf)).await {
            Err(_) => break, // the measured window is over
            Ok(Ok(0)) => {
                eprintln!("connection {conn}: closed by the server");
                t.errors += 1;
                break;
            }
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                eprintln!("connection {conn}: {e}");
                t.errors += 1;
                break;
            }
        };
        let mut i = 0;
        let mut completed = 0;
        while i < n {
            let take = (o.size - recv_off).min(n - i);
            if o.verify {
                let bad = buf[i..i + take]
                    .iter()
                    .enumerate()
                    .any(|(k, &b)| b != pattern(conn, recv_seq, recv_off + k));
                if bad {
                    eprintln!("connection {conn}: message {recv_seq} came back altered");
                    t.errors += 1;
                    return t;
                }
            }
            i += take;
            recv_off += take;
            if recv_off == o.size {
                let now = Instant::now();
                let sent = sent_at.pop_front().expect("a message is in flight");
                if now >= measure_from {
                    t.msgs += 1;
                    t.latencies_ns.push((now - sent).as_nanos() as u64);
                }
                recv_seq += 1;
                recv_off = 0;
                completed += 1;
            }
        }
        // One more message for each that came back.
        if completed == 0 {
            continue;
        }
        let now = Instant::now();
        let written = if o.verify {
            let mut out = Vec::with_capacity(completed * o.size);
            for k in 0..completed as u64 {
                out.extend_from_slice(&message(next_seq + k));
            }
            wr.write_all(&out).await
        } else {
            wr.write_all(&plain[..completed * o.size]).await
        };
        for _ in 0..completed {
            sent_at.push_back(now);
        }
        next_seq += completed as u64;
        if written.is_err() {
            t.errors += 1;
            break;
        }
    }
    t
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
            .map(|c| {
                let o = o.clone();
                tokio::spawn(async move { one_connection(&o, c, start, end).await })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap_or_else(|_| Tally::failed()));
        }
        all
    });
    let t = Totals::of(tallies);
    let mps = t.msgs as f64 / o.secs;
    println!(
        "echo-load conns={} size={} pipeline={} secs={} msgs/s={mps:.0} bytes/s={:.1}MB/s \
         p50={}us p99={}us errors={}",
        o.conns,
        o.size,
        o.pipeline,
        o.secs,
        mps * o.size as f64 / 1e6,
        t.p50_us,
        t.p99_us,
        t.errors,
    );
    std::process::exit(t.exit_code());
}
