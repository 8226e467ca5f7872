//! tokio-echo: the baseline a hand-written tokio echo server sets — what a
//! tokio user writes without a framework: a task per connection, a read
//! into a buffer, `write_all` of what was read.
//!
//! usage: tokio-echo --addr HOST:PORT [--threads K]
//! (`--threads 1`: a current-thread runtime; `0`: tokio's default, one
//! worker per core; default 1, as the weft echo benchmark runs.)

fn main() {
    let (addr, threads) = weft_benches::addr_and_threads("tokio-echo", "127.0.0.1:7007");
    weft_benches::runtime(threads).block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .unwrap_or_else(|e| panic!("cannot bind {addr}: {e}"));
        println!("listening on {}", listener.local_addr().expect("bound"));
        weft_benches::tokio_echo(listener).await;
    });
}
