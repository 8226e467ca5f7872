//! weft-benches: benchmark binaries; see benches/README.md. This library
//! holds what several of them share.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// A tokio runtime with `threads` workers: 1 is a current-thread runtime
/// (the default of the load generators: it leaves the other core of a
/// 2-core machine to the server), 0 tokio's default (one per core).
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    if threads == 1 {
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
    .expect("cannot build the tokio runtime")
}

/// The command line of the baseline servers: `NAME --addr HOST:PORT
/// [--threads K]`, with `default_addr` and one thread unless given; exits
/// with the usage on anything else.
pub fn addr_and_threads(name: &str, default_addr: &str) -> (String, usize) {
    let mut addr = String::from(default_addr);
    let mut threads = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| {
            eprintln!("usage: {name} --addr HOST:PORT [--threads K]");
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
    (addr, threads)
}

/// The echo a tokio user writes by hand, the baseline weft is measured
/// against: a task per connection, a read into a 64 KiB buffer, `write_all`
/// of what was read. Serves `listener` for ever.
pub async fn tokio_echo(listener: TcpListener) {
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
}

/// The receive buffer every UDP server of the benchmarks asks for (the
/// same for weft and the baselines): room for a burst between two reads.
pub const UDP_RECV_BUFFER: usize = 4 << 20;

/// A UDP socket bound to `addr`, with [`UDP_RECV_BUFFER`] and, when
/// `reuse_port`, `SO_REUSEPORT`: what the tokio baselines use, set up as
/// weft's udp-echo sets up its own.
pub fn udp_socket(addr: std::net::SocketAddr, reuse_port: bool) -> UdpSocket {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .expect("a UDP socket");
    if reuse_port {
        s.set_reuse_port(true).expect("SO_REUSEPORT");
    }
    let _ = s.set_recv_buffer_size(UDP_RECV_BUFFER);
    s.set_nonblocking(true).expect("non-blocking");
    s.bind(&addr.into())
        .unwrap_or_else(|e| panic!("cannot bind {addr}: {e}"));
    UdpSocket::from_std(s.into()).expect("in a tokio runtime")
}

/// What one connection of a load generator counted in the measured window.
#[derive(Debug, Default)]
pub struct Tally {
    /// Messages that came back whole.
    pub msgs: u64,
    /// Each one's latency, in nanoseconds.
    pub latencies_ns: Vec<u64>,
    /// Connection errors and bad answers.
    pub errors: u64,
}

impl Tally {
    /// A connection that failed before counting anything.
    pub fn failed() -> Tally {
        Tally {
            errors: 1,
            ..Tally::default()
        }
    }
}

/// Every connection's tally together.
#[derive(Debug)]
pub struct Totals {
    /// Messages counted, all connections.
    pub msgs: u64,
    /// Errors, all connections.
    pub errors: u64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th-percentile latency, microseconds.
    pub p99_us: u64,
}

impl Totals {
    /// Sums `tallies` and takes the latency quantiles over all of them.
    pub fn of(tallies: Vec<Tally>) -> Totals {
        let msgs = tallies.iter().map(|t| t.msgs).sum();
        let errors = tallies.iter().map(|t| t.errors).sum();
        let mut lat: Vec<u64> = tallies.into_iter().flat_map(|t| t.latencies_ns).collect();
        lat.sort_unstable();
        Totals {
            msgs,
            errors,
            p50_us: percentile_us(&lat, 0.50),
            p99_us: percentile_us(&lat, 0.99),
        }
    }

    /// The exit status a load generator ends with: 0 when every
    /// connection went well and something was counted.
    pub fn exit_code(&self) -> i32 {
        if self.errors == 0 && self.msgs > 0 {
            0
        } else {
            1
        }
    }
}

/// The `p` quantile (0 to 1) of `sorted` nanoseconds, in microseconds; 0
/// for none.
fn percentile_us(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] / 1000
}
