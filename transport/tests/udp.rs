//! Datagram channels over loopback: echo on IPv4 and IPv6, writes from
//! other tasks on a multi-thread runtime, connected channels, datagrams
//! refused, too large or dropped at the cap, GSO sends split by the kernel,
//! GRO receives split by reference, multicast, and batching seen in the
//! system calls.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::bounded;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use weft_core::{Context, DatagramPacket, Error, ErrorKind, Handler, Msg};
use weft_transport::{DatagramBootstrap, DatagramChannel, DatagramOptions};

/// Echoes every datagram to its sender, flushing once per read burst.
struct Echo;

#[weft_core::handler]
impl Handler for Echo {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        let p: DatagramPacket = msg.downcast().expect("datagram channels read packets");
        ctx.write(p.reply(p.content().clone()));
    }
    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        ctx.flush();
    }
}

/// Hands every datagram, and every error, to the test.
struct Sink {
    packets: mpsc::UnboundedSender<DatagramPacket>,
    errors: Arc<Mutex<Vec<Error>>>,
    bursts: Arc<Mutex<usize>>,
}

#[weft_core::handler]
impl Handler for Sink {
    fn channel_read(&mut self, _ctx: &mut Context<'_>, msg: Msg) {
        let _ = self.packets.send(msg.downcast().expect("a packet"));
    }
    fn channel_read_complete(&mut self, _ctx: &mut Context<'_>) {
        *self.bursts.lock().unwrap() += 1;
    }
    fn exception_caught(&mut self, _ctx: &mut Context<'_>, err: Error) {
        self.errors.lock().unwrap().push(err);
    }
}

struct Sunk {
    ch: DatagramChannel,
    packets: mpsc::UnboundedReceiver<DatagramPacket>,
    errors: Arc<Mutex<Vec<Error>>>,
}

impl Sunk {
    async fn next(&mut self) -> DatagramPacket {
        self.packets.recv().await.expect("the channel is open")
    }
}

async fn sink(bootstrap: DatagramBootstrap, addr: &str, remote: Option<SocketAddr>) -> Sunk {
    let (tx, rx) = mpsc::unbounded_channel();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = errors.clone();
    let b = bootstrap.handler(move |p| {
        p.add_last(
            "sink",
            Sink {
                packets: tx.clone(),
                errors: e.clone(),
                bursts: Arc::new(Mutex::new(0)),
            },
        )
    });
    let ch = match remote {
        Some(r) => b.connect(addr, r).await.unwrap(),
        None => b.bind(addr).await.unwrap(),
    };
    Sunk {
        ch,
        packets: rx,
        errors,
    }
}

async fn echo(addr: &str, opts: DatagramOptions) -> DatagramChannel {
    DatagramBootstrap::new()
        .options(opts)
        .handler(|p| p.add_last("echo", Echo))
        .bind(addr)
        .await
        .unwrap()
}

/// Sends `count` datagrams of `size` and reads their echoes, `window` at a
/// time (so that no loopback receive queue overflows); returns them in
/// arrival order.
async fn round_trips(
    client: &UdpSocket,
    to: SocketAddr,
    count: usize,
    size: usize,
) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let window = 64;
    let mut sent = 0;
    while got.len() < count {
        while sent < count && sent < got.len() + window {
            let mut d = vec![(sent % 251) as u8; size];
            d[..8.min(size)].copy_from_slice(&(sent as u64).to_be_bytes()[..8.min(size)]);
            client.send_to(&d, to).await.unwrap();
            sent += 1;
        }
        let (n, from) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!(from, to);
        got.push(buf[..n].to_vec());
    }
    got
}

#[tokio::test(flavor = "current_thread")]
async fn echo_over_ipv4_and_ipv6() {
    bounded(async {
        for addr in ["127.0.0.1:0", "[::1]:0"] {
            let server = echo(addr, DatagramOptions::new()).await;
            let client = UdpSocket::bind(addr).await.unwrap();
            let got = round_trips(&client, server.local(), 500, 100).await;
            let mut seen: Vec<u64> = got
                .iter()
                .map(|d| {
                    assert_eq!(d.len(), 100);
                    u64::from_be_bytes(d[..8].try_into().unwrap())
                })
                .collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..500).collect::<Vec<u64>>());
            // Empty datagrams are datagrams too.
            client.send_to(b"", server.local()).await.unwrap();
            let mut buf = [0u8; 16];
            let (n, _) = client.recv_from(&mut buf).await.unwrap();
            assert_eq!(n, 0);
            server.close().await.unwrap();
            assert!(!server.is_open());
        }
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_dual_stack_socket_serves_ipv4_peers() {
    bounded(async {
        let server = echo("[::]:0", DatagramOptions::new().only_v6(false)).await;
        let port = server.local().port();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"v4", ("127.0.0.1", port)).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from.port()), (&b"v4"[..], port));
        // A plain IPv4 recipient, written as a mapped address on the way out.
        server
            .write_and_flush(DatagramPacket::new("to v4", client.local_addr().unwrap()))
            .await
            .unwrap();
        let (n, _) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"to v4");
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_packet_says_who_sent_it_and_where_it_went() {
    bounded(async {
        let mut s = sink(
            DatagramBootstrap::new().options(DatagramOptions::new().packet_info(true)),
            "0.0.0.0:0",
            None,
        )
        .await;
        let port = s.ch.local().port();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"where", ("127.0.0.1", port)).await.unwrap();
        let p = s.next().await;
        assert_eq!(p.content(), "where");
        assert_eq!(p.remote(), client.local_addr().unwrap());
        // The wildcard socket learns the destination from the packet info.
        assert_eq!(
            p.local(),
            Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        );
        // Answered from that address.
        s.ch.write_and_flush(p.reply("here")).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from.port()), (&b"here"[..], port));
        assert_eq!(from.ip(), Ipv4Addr::LOCALHOST);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_from_other_tasks_all_arrive() {
    bounded(async {
        let receiver = std_receiver();
        let to = receiver.local_addr().unwrap();
        let ch = DatagramBootstrap::new().bind("127.0.0.1:0").await.unwrap();
        // Four tasks on two worker threads. They share a window: no more
        // than 64 datagrams sent and not yet read, so that the receive
        // queue never overflows (loopback drops what does not fit).
        let tasks = 4;
        let per_task = 250usize;
        let sent = Arc::new(AtomicUsize::new(0));
        let read = Arc::new(AtomicUsize::new(0));
        let r = read.clone();
        let reader = std::thread::spawn(move || {
            let mut seen = vec![0usize; tasks];
            let mut buf = [0u8; 64];
            for _ in 0..tasks * per_task {
                let (n, _) = receiver.recv_from(&mut buf).unwrap();
                assert_eq!(n, 9);
                seen[buf[0] as usize] += 1;
                r.fetch_add(1, Ordering::AcqRel);
            }
            seen
        });
        let mut joins = Vec::new();
        for t in 0..tasks {
            let (ch, sent, read) = (ch.clone(), sent.clone(), read.clone());
            joins.push(tokio::spawn(async move {
                for i in 0..per_task {
                    while sent.load(Ordering::Acquire) >= read.load(Ordering::Acquire) + 64 {
                        tokio::task::yield_now().await;
                    }
                    sent.fetch_add(1, Ordering::AcqRel);
                    let mut d = vec![t as u8];
                    d.extend_from_slice(&(i as u64).to_be_bytes());
                    ch.write_and_flush(DatagramPacket::new(d, to))
                        .await
                        .unwrap();
                }
            }));
        }
        for j in joins {
            j.await.unwrap();
        }
        let seen = tokio::task::spawn_blocking(move || reader.join().unwrap())
            .await
            .unwrap();
        assert_eq!(seen, vec![per_task; tasks]);
        assert_eq!(ch.writes_dropped(), 0);
        assert!(ch.bytes_written() >= (tasks * per_task * 9) as u64);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_connected_channel_writes_bytes_and_hears_only_its_peer() {
    bounded(async {
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut s = sink(
            DatagramBootstrap::new(),
            "127.0.0.1:0",
            Some(peer.local_addr().unwrap()),
        )
        .await;
        s.ch.write_and_flush(Bytes::from_static(b"to you"))
            .await
            .unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"to you"[..], s.ch.local()));
        stranger.send_to(b"not me", s.ch.local()).await.unwrap();
        peer.send_to(b"me", s.ch.local()).await.unwrap();
        let p = s.next().await;
        assert_eq!(
            (p.content().as_ref(), p.remote()),
            (&b"me"[..], peer.local_addr().unwrap())
        );
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_refused_datagram_is_an_error_and_the_channel_goes_on() {
    bounded(async {
        // A port with no socket behind it: the kernel answers with ICMP
        // port unreachable, reported on the connected socket.
        let gone = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let gone_addr = gone.local_addr().unwrap();
        drop(gone);
        let s = sink(DatagramBootstrap::new(), "127.0.0.1:0", Some(gone_addr)).await;
        s.ch.write_and_flush(Bytes::from_static(b"anyone?"))
            .await
            .unwrap();
        // The refusal comes back as an exception (on a read) or fails the
        // next write; either way the channel stays open.
        let mut refused = false;
        for _ in 0..50 {
            if let Err(e) = s.ch.write_and_flush(Bytes::from_static(b"again")).await {
                assert_eq!(e.io_kind(), Some(std::io::ErrorKind::ConnectionRefused));
                refused = true;
            }
            if !s.errors.lock().unwrap().is_empty() {
                refused = true;
            }
            if refused {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(refused, "the refusal was never reported");
        assert!(s.ch.is_open());
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn what_cannot_be_a_datagram_fails_its_write_only() {
    bounded(async {
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = receiver.local_addr().unwrap();
        let ch = DatagramBootstrap::new().bind("127.0.0.1:0").await.unwrap();
        let e = ch
            .write_and_flush(Bytes::from_static(b"where to?"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedMessage);
        let e = ch.write_and_flush(String::from("text")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedMessage);
        // Too large for UDP: the kernel refuses it (EMSGSIZE).
        let e = ch
            .write_and_flush(DatagramPacket::new(vec![0u8; 70_000], to))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        ch.write_and_flush(DatagramPacket::new("fine", to))
            .await
            .unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = receiver.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"fine");
        assert!(ch.is_open());
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_datagram_too_large_to_receive_is_counted_and_dropped() {
    bounded(async {
        let mut s = sink(
            DatagramBootstrap::new().options(DatagramOptions::new().max_datagram_size(512)),
            "127.0.0.1:0",
            None,
        )
        .await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(&[1u8; 513], s.ch.local()).await.unwrap();
        client.send_to(&[2u8; 512], s.ch.local()).await.unwrap();
        let p = s.next().await;
        assert_eq!(p.content().as_ref(), &[2u8; 512][..]);
        assert_eq!(s.ch.truncated(), 1);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_write_past_the_cap_is_dropped_and_counted_not_queued() {
    bounded(async {
        let receiver = std_receiver();
        let to = receiver.local_addr().unwrap();
        let wm = weft_core::WriteBufferWaterMark::new(1024, 8 * 1024).unwrap();
        let ch = DatagramBootstrap::new()
            .options(
                DatagramOptions::new()
                    .watermark(wm)
                    .max_outbound_bytes(Some(16 * 1024)),
            )
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        // Unflushed, the writes stay queued: 16 of 1 KiB fit under the cap.
        let mut futures = Vec::new();
        for i in 0..40u8 {
            futures.push(ch.write_with_promise(DatagramPacket::new(vec![i; 1024], to)));
        }
        ch.flush();
        let mut ok = 0;
        let mut dropped = 0;
        for f in futures {
            match f.await {
                Ok(()) => ok += 1,
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Dropped, "{e}");
                    dropped += 1;
                }
            }
        }
        assert_eq!((ok, dropped), (16, 24));
        assert_eq!(ch.writes_dropped(), 24);
        assert!(ch.is_open(), "a datagram channel drops, it does not close");
        // What was kept arrived, in order.
        let mut buf = [0u8; 2048];
        for i in 0..16u8 {
            let (n, _) = receiver.recv_from(&mut buf).unwrap();
            assert_eq!((n, buf[0]), (1024, i));
        }
        ch.write_and_flush(DatagramPacket::new("after", to))
            .await
            .unwrap();
        let (n, _) = receiver.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"after");
    })
    .await;
}

/// Writes one more datagram each time the channel turns writable again.
struct OnWritable {
    to: SocketAddr,
}

#[weft_core::handler]
impl Handler for OnWritable {
    fn writability_changed(&mut self, ctx: &mut Context<'_>, writable: bool) {
        if writable {
            ctx.write_and_flush(DatagramPacket::new("resumed", self.to));
        }
        ctx.fire_writability_changed(writable);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn what_a_handler_sends_when_writable_again_leaves_at_once() {
    bounded(async {
        let receiver = std_receiver();
        let to = receiver.local_addr().unwrap();
        let wm = weft_core::WriteBufferWaterMark::new(1024, 4096).unwrap();
        let ch = DatagramBootstrap::new()
            .options(DatagramOptions::new().watermark(wm))
            .handler(move |p| p.add_last("resume", OnWritable { to }))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        write_in_one_flush(
            &ch,
            (0..20).map(|_| DatagramPacket::new(vec![1u8; 1000], to)),
        )
        .await;
        // The 20 went out in one step, the channel turned writable again in
        // it, and the handler's answer to that needs no other event to leave.
        let mut buf = [0u8; 2048];
        for _ in 0..20 {
            assert_eq!(receiver.recv_from(&mut buf).unwrap().0, 1000);
        }
        let (n, _) = receiver.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"resumed");
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_segmented_send_arrives_as_separate_datagrams() {
    bounded(async {
        let receiver = std_receiver();
        let to = receiver.local_addr().unwrap();
        let ch = DatagramBootstrap::new().bind("127.0.0.1:0").await.unwrap();
        assert!(ch.gso(), "this kernel supports UDP_SEGMENT");
        // 40 equal datagrams and a shorter last one: one GSO message.
        let len = |i: u8| if i == 40 { 100 } else { 1200 };
        write_in_one_flush(
            &ch,
            (0..41u8).map(|i| DatagramPacket::new(vec![i; len(i)], to)),
        )
        .await;
        let mut buf = [0u8; 65536];
        for i in 0..41u8 {
            let (n, _) = receiver.recv_from(&mut buf).unwrap();
            assert_eq!(n, len(i), "datagram {i}");
            assert!(buf[..n].iter().all(|&b| b == i));
        }
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn without_gso_every_datagram_is_sent_alone() {
    bounded(async {
        let receiver = std_receiver();
        let to = receiver.local_addr().unwrap();
        let ch = DatagramBootstrap::new()
            .options(DatagramOptions::new().gso(false))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        assert!(!ch.gso());
        write_in_one_flush(
            &ch,
            (0..10u8).map(|i| DatagramPacket::new(vec![i; 300], to)),
        )
        .await;
        let mut buf = [0u8; 2048];
        for i in 0..10u8 {
            let (n, _) = receiver.recv_from(&mut buf).unwrap();
            assert_eq!((n, buf[0]), (300, i));
        }
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_coalesced_receive_is_split_into_slices_of_one_buffer() {
    bounded(async {
        let mut s = sink(
            DatagramBootstrap::new().options(DatagramOptions::new().gro(true).batch(4)),
            "127.0.0.1:0",
            None,
        )
        .await;
        assert!(s.ch.gro(), "this kernel supports UDP_GRO");
        let sender = DatagramBootstrap::new().bind("127.0.0.1:0").await.unwrap();
        for i in 0..20u8 {
            sender.write(DatagramPacket::new(vec![i; 1000], s.ch.local()));
        }
        sender.flush();
        let mut got = Vec::new();
        for _ in 0..20 {
            got.push(s.next().await);
        }
        for (i, p) in got.iter().enumerate() {
            assert_eq!(p.content().as_ref(), &vec![i as u8; 1000][..]);
            assert_eq!(p.remote(), sender.local());
        }
        // Sent as one GSO message, received as one GRO buffer: the packets
        // are consecutive slices of it.
        let adjacent = got
            .windows(2)
            .filter(|w| w[0].content().as_ptr().wrapping_add(1000) == w[1].content().as_ptr())
            .count();
        assert_eq!(
            adjacent, 19,
            "the datagrams were not split from one receive"
        );
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn multicast_on_loopback_join_receive_leave() {
    bounded(async {
        let group: Ipv4Addr = "239.255.77.1".parse().unwrap();
        let lo = Ipv4Addr::LOCALHOST;
        let mut s = sink(
            DatagramBootstrap::new().options(
                DatagramOptions::new()
                    .reuse_addr(true)
                    .join_multicast_v4(group, lo),
            ),
            "0.0.0.0:0",
            None,
        )
        .await;
        let port = s.ch.local().port();
        let sender = DatagramBootstrap::new()
            .options(
                DatagramOptions::new()
                    .multicast_interface_v4(lo)
                    .multicast_loop(true)
                    .multicast_ttl(0),
            )
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let to = SocketAddr::from((group, port));
        sender
            .write_and_flush(DatagramPacket::new("m1", to))
            .await
            .unwrap();
        assert_eq!(s.next().await.content(), "m1");
        s.ch.leave_multicast_v4(group, lo).unwrap();
        sender
            .write_and_flush(DatagramPacket::new("m2", to))
            .await
            .unwrap();
        // Joined again at run time: only what is sent after the join arrives.
        s.ch.join_multicast_v4(group, lo).unwrap();
        sender
            .write_and_flush(DatagramPacket::new("m3", to))
            .await
            .unwrap();
        assert_eq!(s.next().await.content(), "m3");
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn broadcast_needs_its_option() {
    bounded(async {
        let mut s = sink(DatagramBootstrap::new(), "0.0.0.0:0", None).await;
        let to = SocketAddr::from((Ipv4Addr::new(127, 255, 255, 255), s.ch.local().port()));
        let plain = DatagramBootstrap::new().bind("127.0.0.1:0").await.unwrap();
        let e = plain
            .write_and_flush(DatagramPacket::new("no", to))
            .await
            .unwrap_err();
        assert_eq!(
            e.io_kind(),
            Some(std::io::ErrorKind::PermissionDenied),
            "{e}"
        );
        let b = DatagramBootstrap::new()
            .options(DatagramOptions::new().broadcast(true))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        b.write_and_flush(DatagramPacket::new("all", to))
            .await
            .unwrap();
        assert_eq!(s.next().await.content(), "all");
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn options_are_checked_when_binding() {
    let e = DatagramBootstrap::new()
        .options(DatagramOptions::new().max_datagram_size(70_000))
        .bind("127.0.0.1:0")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = DatagramBootstrap::new()
        .options(DatagramOptions::new().ttl(0))
        .bind("127.0.0.1:0")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "run by batching_is_visible_in_strace under strace"]
async fn batching_child() {
    bounded(async {
        let server = echo("127.0.0.1:0", DatagramOptions::new()).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let client_rx = DatagramBootstrap::new()
            .handler(move |p| {
                p.add_last(
                    "sink",
                    Sink {
                        packets: tx.clone(),
                        errors: Arc::new(Mutex::new(Vec::new())),
                        bursts: Arc::new(Mutex::new(0)),
                    },
                )
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        // Rounds of 32 datagrams of 64 bytes, each round sent in one flush
        // (to different sizes, so no GSO: one sendmmsg of 32 messages).
        let rounds = 20;
        for _ in 0..rounds {
            for i in 0..32usize {
                client_rx.write(DatagramPacket::new(vec![7u8; 64 + i], server.local()));
            }
            client_rx.flush();
            for _ in 0..32 {
                rx.recv().await.unwrap();
            }
        }
        println!("BATCHED {}", rounds * 32);
    })
    .await;
}

/// Counts the calls of each kind the child made on its datagram sockets.
#[test]
fn batching_is_visible_in_strace() {
    let text = strace(
        "batching_child",
        &[
            "-e",
            "trace=recvmmsg,sendmmsg,recvfrom,sendto,recvmsg,sendmsg",
        ],
    );
    let calls = |name: &str| {
        text.lines()
            .filter(|l| {
                let call = l.split_once(' ').map(|(_, c)| c.trim_start()).unwrap_or(l);
                call.starts_with(name) && !call.contains("EAGAIN")
            })
            .count()
    };
    let datagrams = 20 * 32 * 2; // each one sent and echoed
    let (recvmmsg, sendmmsg) = (calls("recvmmsg("), calls("sendmmsg("));
    assert_eq!(
        calls("recvfrom(") + calls("sendto(") + calls("sendmsg(") + calls("recvmsg("),
        0
    );
    // Each round's 32 datagrams leave in one call; they arrive in a few.
    assert!(
        sendmmsg <= 20 * 2 + 4,
        "{sendmmsg} sendmmsg calls for {datagrams} datagrams"
    );
    assert!(
        recvmmsg * 4 <= datagrams,
        "{recvmmsg} recvmmsg calls for {datagrams} datagrams"
    );
    eprintln!("{datagrams} datagrams: {sendmmsg} sendmmsg, {recvmmsg} recvmmsg");
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "run by gso_is_visible_in_strace under strace"]
async fn gso_child() {
    bounded(async {
        let receiver = std_receiver();
        let to = receiver.local_addr().unwrap();
        let ch = DatagramBootstrap::new().bind("127.0.0.1:0").await.unwrap();
        write_in_one_flush(
            &ch,
            (0..51).map(|_| DatagramPacket::new(vec![5u8; 1200], to)),
        )
        .await;
        let mut buf = [0u8; 2048];
        for _ in 0..51 {
            assert_eq!(receiver.recv_from(&mut buf).unwrap().0, 1200);
        }
    })
    .await;
}

/// 51 datagrams of 1,200 bytes leave as one `sendmmsg` message of 61,200
/// bytes with a `UDP_SEGMENT` control message, and arrive as 51 datagrams.
#[test]
fn gso_is_visible_in_strace() {
    let text = strace("gso_child", &["-v", "-s", "0", "-e", "trace=sendmmsg"]);
    let sends: Vec<&str> = text.lines().filter(|l| l.contains("sendmmsg(")).collect();
    assert_eq!(sends.len(), 1, "{text}");
    let s = sends[0];
    // UDP_SEGMENT is 103 (0x67), its value a u16 (a 16-byte header + 2);
    // strace does not decode the value, but the child's receiver counted
    // 51 datagrams of 1,200 bytes cut from the one message.
    assert!(
        s.contains("cmsg_len=18, cmsg_level=SOL_UDP, cmsg_type=0x67"),
        "no UDP_SEGMENT control message: {s}"
    );
    assert!(
        s.contains("msg_len=61200"),
        "not one message of 51 x 1200 bytes: {s}"
    );
    assert!(s.ends_with("= 1"), "{s}");
}

/// Writes `packets`, flushing once with the last, and waits for that last
/// write: the whole burst reaches the transport in one step.
async fn write_in_one_flush(ch: &DatagramChannel, packets: impl Iterator<Item = DatagramPacket>) {
    let mut packets = packets.peekable();
    while let Some(p) = packets.next() {
        if packets.peek().is_some() {
            ch.write(p);
        } else {
            ch.write_and_flush(p).await.unwrap();
        }
    }
}

/// A blocking socket for the tests' receiving side, with a read timeout so
/// that a datagram that never comes fails the test instead of hanging it.
fn std_receiver() -> std::net::UdpSocket {
    let r = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    r.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    r
}

/// Runs the ignored test `child` of this binary under `strace -f` with
/// `args`; returns the trace.
fn strace(child: &str, args: &[&str]) -> String {
    let trace =
        std::env::temp_dir().join(format!("weft-strace-{child}-{}.txt", std::process::id()));
    let status = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&trace)
        .args(args)
        .arg(std::env::current_exe().unwrap())
        .args([child, "--exact", "--ignored", "--test-threads=1"])
        .status()
        .expect("strace must be installed (apt-get install -y strace)");
    assert!(status.success(), "{child} failed under strace");
    let text = std::fs::read_to_string(&trace).unwrap();
    let _ = std::fs::remove_file(&trace);
    text
}
