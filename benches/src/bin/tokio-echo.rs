//! tokio-echo: the baseline a hand-written tokio echo server sets — what a
//! tokio user writes without a framework: a task per connection, a read
//! into a buffer, `write_all` of what was read.
//!
//! usage: tokio-echo --addr HOST:PORT [--threads K]
//! (`--threads 1`: a current-thread runtime; `0`: tokio's default, one
//! worker per core; default 1, as the weft echo benchmark runs.)

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
    weft_benches::runtime(threads).block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .unwrap_or_else(|e| panic!("cannot bind {addr}: {e}"));
        println!("listening on {}", listener.local_addr().expect("bound"));
        weft_benches::tokio_echo(listener).await;
    });
}
