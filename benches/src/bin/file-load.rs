//! file-load: a load generator for the file protocol (`NAME\n` asks for a
//! file; the answer is its length as an 8-byte big-endian signed integer,
//! then that many bytes, or -1 and nothing for a missing file).
//!
//! Each of `--conns` connections sends `--requests` requests one after the
//! other and reads each answer to its end, counting bytes (the body is
//! read, not kept). Output (one line, parsed by `benches/run.sh`):
//! `file-load conns=C requests=R bytes=N secs=S rate=X.XXGB/s req/s=N p50=Nus p99=Nus errors=E`
//! (GB = 10^9 bytes). Exit status 1 on errors.
//!
//! usage: file-load --addr HOST:PORT --file NAME [--conns 1] [--requests 10] [--threads 1]

use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Opts {
    addr: SocketAddr,
    file: String,
    conns: usize,
    requests: usize,
    threads: usize,
}

fn parse() -> Result<Opts, String> {
    const USAGE: &str =
        "usage: file-load --addr HOST:PORT --file NAME [--conns 1] [--requests 10] [--threads 1]";
    let (mut addr, mut file) = (None, None);
    let (mut conns, mut requests, mut threads) = (1, 10, 1);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args
            .next()
            .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))?;
        let num = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("bad value for {a}: {v}"))
        };
        match a.as_str() {
            "--addr" => addr = Some(v.parse().map_err(|_| format!("bad address: {v}"))?),
            "--file" => file = Some(v),
            "--conns" => conns = num(&v)?,
            "--requests" => requests = num(&v)?,
            "--threads" => threads = num(&v)?,
            _ => return Err(format!("unknown option {a}\n{USAGE}")),
        }
    }
    let addr: SocketAddr = addr.ok_or(USAGE)?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not a loopback address"));
    }
    let file = file.ok_or(USAGE)?;
    if file.contains('\n') || conns == 0 || requests == 0 {
        return Err(USAGE.into());
    }
    Ok(Opts {
        addr,
        file,
        conns,
        requests,
        threads,
    })
}

/// One connection's requests: (bytes, latencies in ns, errors).
async fn one_connection(o: &Opts) -> (u64, Vec<u64>, u64) {
    let mut s = match tokio::net::TcpStream::connect(o.addr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("connect {}: {e}", o.addr);
            return (0, Vec::new(), 1);
        }
    };
    let request = format!("{}\n", o.file);
    let mut buf = vec![0u8; 1 << 20];
    let (mut bytes, mut lat) = (0u64, Vec::with_capacity(o.requests));
    for _ in 0..o.requests {
        let t0 = Instant::now();
        if s.write_all(request.as_bytes()).await.is_err() {
            return (bytes, lat, 1);
        }
        let mut len = [0u8; 8];
        if s.read_exact(&mut len).await.is_err() {
            return (bytes, lat, 1);
        }
        let len = i64::from_be_bytes(len);
        if len < 0 {
            eprintln!("the server has no file named {:?}", o.file);
            return (bytes, lat, 1);
        }
        let mut left = len as u64;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            match s.read(&mut buf[..want]).await {
                Ok(0) | Err(_) => return (bytes, lat, 1),
                Ok(n) => left -= n as u64,
            }
        }
        bytes += len as u64;
        lat.push(t0.elapsed().as_nanos() as u64);
    }
    (bytes, lat, 0)
}

fn main() {
    let o = match parse() {
        Ok(o) => std::sync::Arc::new(o),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rt = weft_benches::runtime(o.threads);
    let start = Instant::now();
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..o.conns)
            .map(|_| {
                let o = o.clone();
                tokio::spawn(async move { one_connection(&o).await })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap_or((0, Vec::new(), 1)));
        }
        all
    });
    let secs = start.elapsed().as_secs_f64();
    let bytes: u64 = results.iter().map(|r| r.0).sum();
    let errors: u64 = results.iter().map(|r| r.2).sum();
    let mut lat: Vec<u64> = results.into_iter().flat_map(|r| r.1).collect();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * p).round() as usize)
            .map_or(0, |ns| ns / 1000)
    };
    println!(
        "file-load conns={} requests={} bytes={bytes} secs={secs:.3} rate={:.2}GB/s req/s={:.0} \
         p50={}us p99={}us errors={errors}",
        o.conns,
        o.requests,
        bytes as f64 / secs / 1e9,
        lat.len() as f64 / secs,
        pct(0.50),
        pct(0.99),
    );
    std::process::exit(if errors == 0 && bytes > 0 { 0 } else { 1 });
}
