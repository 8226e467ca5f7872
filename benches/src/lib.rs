//! weft-benches: benchmark binaries; see benches/README.md. This library
//! holds what several of them share.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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

/// The `p` quantile (0 to 1) of `sorted` nanoseconds, in microseconds; 0
/// for none.
pub fn percentile_us(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] / 1000
}
