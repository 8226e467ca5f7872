//! tokio-echo: the baseline a hand-written tokio echo server sets — what a
//! tokio user writes without a framework: a task per connection, a read
//! into a buffer, `write_all` of what was read.
//!
//! usage: tokio-echo --addr HOST:PORT [--threads K]
//! (`--threads 1`: a current-thread runtime; `0`: tokio's default, one
//! worker per core; default 1, as the weft echo benchmark runs.)

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() {
    let mut addr = String::from("127.0.0.1:7007");
    let mut threads = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| {
            eprintln!("usage: tokio-echo --addr HOST:PORT [--threads K]");
            std::process::exit(2);
        });
        match a.as_str() {
            "--addr" => addr = v,
            "--threads" => threads = v.parse().expect("--threads takes a number"),
            _ => {
                eprintln!("unknown option {a}");
                std::process::exit(2);
            }
        }
    }
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if threads > 1 {
            b.worker_threads(threads);
        }
        b.enable_all().build()
    }
    .expect("cannot build the tokio runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .unwrap_or_else(|e| panic!("cannot bind {addr}: {e}"));
        println!("listening on {}", listener.local_addr().expect("bound"));
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
}
