//! uring-echo: a TCP echo server written straight on io_uring, one ring on
//! one thread: multishot accept, multishot receive into provided buffers,
//! one send in flight per connection. It is the ceiling an io_uring
//! transport for weft could reach on this machine, measured beside
//! tokio-echo and weft's echo-server before such a transport is built
//! (issue 18): it answers "does io_uring win here, and by how much".
//!
//! usage: uring-echo --addr HOST:PORT
//!
//! Linux only (it exits with a message elsewhere or when the kernel
//! refuses io_uring).

#[cfg(target_os = "linux")]
fn main() {
    let (addr, _threads) = weft_benches::addr_and_threads("uring-echo", "127.0.0.1:7008");
    if let Err(e) = ring::serve(&addr) {
        eprintln!("uring-echo: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("uring-echo: io_uring is Linux only");
    std::process::exit(1);
}

#[cfg(target_os = "linux")]
mod ring {
    use std::collections::VecDeque;
    use std::io;
    use std::net::TcpListener;
    use std::os::fd::AsRawFd;

    use io_uring::{cqueue, opcode, squeue, types, IoUring};

    /// Receive buffers: this many, of this size, in one provided group.
    const NBUF: u16 = 1024;
    const BUF_SIZE: usize = 16 * 1024;
    const GROUP: u16 = 7;

    /// What a completion is for: the kind in the top byte, the connection's
    /// descriptor and a buffer id below.
    const ACCEPT: u64 = 1 << 56;
    const RECV: u64 = 2 << 56;
    const SEND: u64 = 3 << 56;
    const PROVIDE: u64 = 4 << 56;

    fn tag(kind: u64, fd: i32, bid: u16) -> u64 {
        kind | ((fd as u64) << 16) | u64::from(bid)
    }

    /// A connection: the received buffers waiting to be echoed, in order,
    /// and how much of the first one is sent.
    #[derive(Default)]
    struct Conn {
        queue: VecDeque<(u16, usize)>,
        sent: usize,
        sending: bool,
        open: bool,
    }

    struct Server {
        ring: IoUring,
        bufs: Vec<u8>,
        conns: Vec<Conn>,
    }

    impl Server {
        fn push(&mut self, sqe: squeue::Entry) -> io::Result<()> {
            // SAFETY: every entry refers to memory that outlives its
            // completion: `bufs` lives as long as the server, and a buffer
            // is handed to the kernel (provided, or sent from) by one entry
            // at a time.
            while unsafe { self.ring.submission().push(&sqe) }.is_err() {
                self.ring.submit()?;
            }
            Ok(())
        }

        fn buf_ptr(&mut self, bid: u16) -> *mut u8 {
            self.bufs[usize::from(bid) * BUF_SIZE..].as_mut_ptr()
        }

        fn provide(&mut self, bid: u16) -> io::Result<()> {
            let ptr = self.buf_ptr(bid);
            let e = opcode::ProvideBuffers::new(ptr, BUF_SIZE as i32, 1, GROUP, bid)
                .build()
                .user_data(PROVIDE);
            self.push(e)
        }

        fn recv(&mut self, fd: i32) -> io::Result<()> {
            let e = opcode::RecvMulti::new(types::Fd(fd), GROUP)
                .build()
                .user_data(tag(RECV, fd, 0));
            self.push(e)
        }

        /// Sends the rest of the connection's first buffer, if no send is
        /// in flight.
        fn send_next(&mut self, fd: i32) -> io::Result<()> {
            let c = &mut self.conns[fd as usize];
            if c.sending {
                return Ok(());
            }
            let Some(&(bid, len)) = c.queue.front() else {
                return Ok(());
            };
            c.sending = true;
            let off = c.sent;
            let ptr = self.buf_ptr(bid);
            // SAFETY: `off < len <= BUF_SIZE`: inside buffer `bid`.
            let at = unsafe { ptr.add(off) };
            let e = opcode::Send::new(types::Fd(fd), at, (len - off) as u32)
                .build()
                .user_data(tag(SEND, fd, bid));
            self.push(e)
        }

        fn close(&mut self, fd: i32) -> io::Result<()> {
            let c = &mut self.conns[fd as usize];
            if !c.open {
                return Ok(());
            }
            c.open = false;
            let pending: Vec<u16> = c.queue.drain(..).map(|(b, _)| b).collect();
            let in_flight = c.sending;
            for (i, bid) in pending.into_iter().enumerate() {
                // The buffer being sent goes back when its send completes.
                if !(in_flight && i == 0) {
                    self.provide(bid)?;
                }
            }
            // SAFETY: `fd` was returned by accept and is closed once (`open`
            // was true just above).
            unsafe { libc::close(fd) };
            Ok(())
        }

        fn completion(&mut self, user: u64, res: i32, flags: u32) -> io::Result<()> {
            let kind = user & (0xff << 56);
            let fd = ((user >> 16) & 0xffff_ffff) as i32;
            let bid = (user & 0xffff) as u16;
            match kind {
                ACCEPT => {
                    if res >= 0 {
                        let fd = res;
                        if self.conns.len() <= fd as usize {
                            self.conns.resize_with(fd as usize + 1, Conn::default);
                        }
                        self.conns[fd as usize] = Conn {
                            open: true,
                            ..Conn::default()
                        };
                        set_nodelay(fd);
                        self.recv(fd)?;
                    }
                    if !cqueue::more(flags) {
                        return Err(io::Error::other("multishot accept ended"));
                    }
                }
                RECV => {
                    let more = cqueue::more(flags);
                    match (res, cqueue::buffer_select(flags)) {
                        (n, Some(b)) if n > 0 => {
                            self.conns[fd as usize].queue.push_back((b, n as usize));
                            self.send_next(fd)?;
                        }
                        (_, Some(b)) => self.provide(b)?,
                        _ => {}
                    }
                    let out_of_buffers = res == -libc::ENOBUFS; // re-armed below
                    if res == 0 || (res < 0 && !out_of_buffers) {
                        self.close(fd)?;
                    } else if !more && self.conns[fd as usize].open {
                        self.recv(fd)?;
                    }
                }
                SEND => {
                    let c = &mut self.conns[fd as usize];
                    c.sending = false;
                    if !c.open || res < 0 {
                        self.provide(bid)?;
                        return self.close(fd);
                    }
                    c.sent += res as usize;
                    if let Some(&(_, len)) = c.queue.front() {
                        if c.sent >= len {
                            c.queue.pop_front();
                            c.sent = 0;
                            self.provide(bid)?;
                        }
                    }
                    self.send_next(fd)?;
                }
                _ => {
                    if res < 0 {
                        return Err(io::Error::from_raw_os_error(-res));
                    }
                }
            }
            Ok(())
        }
    }

    fn set_nodelay(fd: i32) {
        let one: libc::c_int = 1;
        // SAFETY: `fd` is an open TCP socket; the option is a c_int, passed
        // with its size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }

    pub(super) fn serve(addr: &str) -> io::Result<()> {
        let listener = TcpListener::bind(addr)?;
        println!("listening on {}", listener.local_addr()?);
        let mut s = Server {
            // One thread submits and reaps: completions are run when it
            // waits (DEFER_TASKRUN), not by interrupting it.
            ring: IoUring::builder()
                .setup_coop_taskrun()
                .setup_single_issuer()
                .setup_defer_taskrun()
                .build(4096)?,
            bufs: vec![0u8; usize::from(NBUF) * BUF_SIZE],
            conns: Vec::new(),
        };
        let all = s.bufs.as_mut_ptr();
        let e = opcode::ProvideBuffers::new(all, BUF_SIZE as i32, NBUF, GROUP, 0)
            .build()
            .user_data(PROVIDE);
        s.push(e)?;
        let accept = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
            .build()
            .user_data(ACCEPT);
        s.push(accept)?;
        let mut done = Vec::with_capacity(1024);
        loop {
            s.ring.submit_and_wait(1)?;
            done.clear();
            done.extend(
                s.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            for &(user, res, flags) in &done {
                s.completion(user, res, flags)?;
            }
        }
    }
}
