//! tokio-udp-echo: the baseline a hand-written tokio UDP echo sets — what a
//! tokio user writes without a framework: one `UdpSocket`, `recv_from` into
//! a buffer, `send_to` of what came, one datagram per system call.
//!
//! usage: tokio-udp-echo --addr HOST:PORT [--threads K]
//! (`--threads K` > 1: K sockets on the port with `SO_REUSEPORT`, a task
//! each; default 1, a current-thread runtime, as udp-echo runs.)

use std::net::SocketAddr;

use tokio::net::UdpSocket;

fn main() {
    let (addr, threads) = weft_benches::addr_and_threads("tokio-udp-echo", "127.0.0.1:7009");
    let addr: SocketAddr = addr.parse().expect("--addr takes HOST:PORT");
    weft_benches::runtime(threads).block_on(async move {
        let mut port = addr.port();
        let mut tasks = Vec::new();
        for _ in 0..threads.max(1) {
            let sock = weft_benches::udp_socket(SocketAddr::new(addr.ip(), port), threads > 1);
            port = sock.local_addr().expect("bound").port();
            tasks.push(tokio::spawn(echo(sock)));
        }
        println!("listening on {}", SocketAddr::new(addr.ip(), port));
        for t in tasks {
            let _ = t.await;
        }
    });
}

async fn echo(sock: UdpSocket) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let _ = sock.send_to(&buf[..n], from).await;
    }
}
