//! A TCP fault proxy between the services and PostgreSQL. The services always
//! connect through it, so delay and blackhole faults are switched on and off
//! without restarting anything.
//!
//! - **pass**: bytes flow unchanged.
//! - **delay**: every chunk, in each direction, is forwarded `delay ± jitter`
//!   after it *arrived* (order kept), as Toxiproxy's latency does: a link
//!   with that latency and no bandwidth limit. A query round trip costs
//!   about twice the delay, and a large result about the delay plus its
//!   transfer, not the delay once per chunk. The jitter is seeded.
//! - **blackhole**: bytes are read and silently dropped in both directions,
//!   and new connections are accepted but never reach the server. Clients
//!   hang until their own timeouts. Connections that lost bytes are closed
//!   when the blackhole ends, since their protocol stream is broken.
//!
//! A mode applies to every connection, or only to the connections of one
//! Kafka client: a proxy in front of a broker ([`FaultProxy::start_kafka`])
//! reads each connection's first request header and keeps its `client.id`,
//! so the consumers' link can be cut while the producers' stays up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::StackError;

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProxyMode {
    Pass,
    Delay {
        delay: Duration,
        jitter: Duration,
        /// Seeds the jitter: the same seed gives the same delays.
        seed: u64,
    },
    Blackhole,
}

/// A mode and the connections it applies to.
#[derive(Debug, Clone, PartialEq)]
struct Rule {
    mode: ProxyMode,
    /// Only the connections of the Kafka client with this `client.id`;
    /// `None`: every connection.
    only: Option<Arc<str>>,
}

impl Rule {
    /// The mode a connection of the client `client` is under.
    fn mode_for(&self, client: Option<&str>) -> ProxyMode {
        match &self.only {
            Some(only) if client != Some(&**only) => ProxyMode::Pass,
            _ => self.mode,
        }
    }
}

/// The name of the thread every fault proxy of a process runs on.
pub const THREAD: &str = "faultline-proxy";

/// The runtime of every fault proxy of this process: a thread of its own,
/// [`THREAD`], started on first use. Its tasks never queue behind the load
/// driver's, which can keep a shared runtime's threads busy at a high rate
/// (the kernel shares the cores between threads fairly; a runtime runs its
/// tasks in turn), and its CPU time is read apart from the driver's.
fn runtime() -> &'static tokio::runtime::Handle {
    static HANDLE: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the fault proxies' runtime starts");
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name(THREAD.into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .expect("the fault proxies' thread starts");
        handle
    })
}

/// A running proxy; dropping it stops it and closes every connection.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    mode: watch::Sender<Rule>,
    accept: JoinHandle<()>,
    connections: Arc<AtomicU64>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<Self, StackError> {
        Self::start_with(upstream, false).await
    }

    /// As [`FaultProxy::start`], in front of a Kafka broker: each
    /// connection is known by the `client.id` of its first request, so a
    /// mode can apply to one client's connections only
    /// ([`FaultProxy::set_mode_for`]).
    pub async fn start_kafka(upstream: SocketAddr) -> Result<Self, StackError> {
        Self::start_with(upstream, true).await
    }

    async fn start_with(upstream: SocketAddr, kafka: bool) -> Result<Self, StackError> {
        let io_error = |source| StackError::Io {
            path: "127.0.0.1:0".into(),
            source,
        };
        // Bound here, registered with the proxies' runtime there: a socket
        // belongs to the runtime whose reactor it was registered with.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io_error)?;
        listener.set_nonblocking(true).map_err(io_error)?;
        let addr = listener.local_addr().map_err(io_error)?;
        let (mode, watcher) = watch::channel(Rule {
            mode: ProxyMode::Pass,
            only: None,
        });
        let connections = Arc::new(AtomicU64::new(0));
        let counter = connections.clone();
        let accept = runtime().spawn(async move {
            let Ok(listener) = TcpListener::from_std(listener) else {
                return;
            };
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = client.set_nodelay(true);
                let number = counter.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(client, upstream, watcher.clone(), number, kafka));
            }
        });
        Ok(Self {
            addr,
            upstream,
            mode,
            accept,
            connections,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The mode, and the client it applies to alone, if one.
    pub fn mode(&self) -> (ProxyMode, Option<String>) {
        let rule = self.mode.borrow();
        (rule.mode, rule.only.as_deref().map(str::to_string))
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Puts every connection under `mode`.
    pub fn set_mode(&self, mode: ProxyMode) {
        self.mode.send_replace(Rule { mode, only: None });
        tracing::info!(?mode, "Fault proxy mode changed.");
    }

    /// Puts the connections of the Kafka client `client_id` under `mode`,
    /// and every other connection back to [`ProxyMode::Pass`]. Only a proxy
    /// started with [`FaultProxy::start_kafka`] knows its connections'
    /// clients; on another, no connection is affected.
    pub fn set_mode_for(&self, client_id: &str, mode: ProxyMode) {
        self.mode.send_replace(Rule {
            mode,
            only: Some(client_id.into()),
        });
        tracing::info!(?mode, client_id, "Fault proxy mode changed for one client.");
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Closing the channel ends every connection task.
        self.mode.send_modify(|_| {});
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    mode: watch::Receiver<Rule>,
    number: u64,
    kafka: bool,
) {
    // A Kafka client speaks first: its first request names it.
    let (first, client_id) = if kafka {
        match first_request(&mut client).await {
            Some(read) => read,
            None => return,
        }
    } else {
        (Bytes::new(), None)
    };
    let client_id: Option<Arc<str>> = client_id.map(Into::into);
    let mut waiting = mode.clone();
    // A connection opened during a blackhole never reaches the server.
    while waiting.borrow().mode_for(client_id.as_deref()) == ProxyMode::Blackhole {
        if waiting.changed().await.is_err() {
            return;
        }
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Each direction of each connection draws its own jitter.
    let stream = number.wrapping_mul(2);
    let outbound = Direction {
        mode: mode.clone(),
        client_id: client_id.clone(),
        stream,
    };
    let inbound = Direction {
        mode,
        client_id,
        stream: stream + 1,
    };
    tokio::select! {
        () = pump(client_read, server_write, outbound, first) => {}
        () = pump(server_read, client_write, inbound, Bytes::new()) => {}
    }
}

/// Reads a Kafka client's first request far enough to learn its
/// `client.id` (request header: size, api key, api version, correlation id,
/// client id as a nullable string of 16-bit length). Returns the bytes read,
/// to be forwarded, and the id; `None` if the client left first.
async fn first_request(client: &mut TcpStream) -> Option<(Bytes, Option<String>)> {
    const BEFORE_ID: usize = 4 + 2 + 2 + 4;
    let mut read = BytesMut::with_capacity(1024);
    loop {
        match client_id(&read) {
            Header::Incomplete => {}
            Header::ClientId(id) => return Some((read.freeze(), id)),
            Header::NotKafka => return Some((read.freeze(), None)),
        }
        if read.len() >= BEFORE_ID + 2 + usize::from(u16::MAX) {
            return Some((read.freeze(), None));
        }
        match client.read_buf(&mut read).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// What the first bytes of a connection say about its Kafka client.
#[derive(Debug, PartialEq)]
enum Header {
    Incomplete,
    ClientId(Option<String>),
    NotKafka,
}

fn client_id(bytes: &[u8]) -> Header {
    const BEFORE_ID: usize = 4 + 2 + 2 + 4;
    if bytes.len() < BEFORE_ID + 2 {
        return Header::Incomplete;
    }
    let size = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let length = i16::from_be_bytes([bytes[BEFORE_ID], bytes[BEFORE_ID + 1]]);
    let Ok(length) = usize::try_from(length) else {
        // -1: a null client id.
        return if length == -1 {
            Header::ClientId(None)
        } else {
            Header::NotKafka
        };
    };
    if usize::try_from(size).map_or(true, |size| size < BEFORE_ID - 4 + 2 + length) {
        return Header::NotKafka;
    }
    let start = BEFORE_ID + 2;
    match bytes.get(start..start + length) {
        None => Header::Incomplete,
        Some(id) => Header::ClientId(Some(String::from_utf8_lossy(id).into_owned())),
    }
}

/// One direction of a connection: the proxy's rule, the connection's
/// client, and the direction's jitter stream.
struct Direction {
    mode: watch::Receiver<Rule>,
    client_id: Option<Arc<str>>,
    stream: u64,
}

impl Direction {
    /// The mode this direction is under now.
    fn current(&self) -> ProxyMode {
        self.mode.borrow().mode_for(self.client_id.as_deref())
    }

    /// As [`Direction::current`], and every change so far is seen: the
    /// next wait for a change waits for a new one.
    fn settle(&mut self) -> ProxyMode {
        self.mode
            .borrow_and_update()
            .mode_for(self.client_id.as_deref())
    }
}

/// How a stretch of one direction's copy ended.
enum Stretch {
    /// The mode changed: the other way of copying takes over, with the
    /// chunk read as it changed, if one.
    ModeChanged(Option<Bytes>),
    /// End of stream, an error, a broken stream or a stopped proxy: the
    /// connection ends.
    Ended,
}

/// Copies one direction: passing, bytes go from the read straight to the
/// write through one reused buffer; under a fault, through [`faulted`].
/// `first` was read before (a Kafka client's first request) and goes first.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut direction: Direction,
    first: Bytes,
) {
    let mut pending = Some(first).filter(|first| !first.is_empty());
    let mut jitter = Jitter {
        state: None,
        stream: direction.stream,
    };
    loop {
        let stretch = if direction.settle() == ProxyMode::Pass {
            if let Some(chunk) = pending.take()
                && to.write_all(&chunk).await.is_err()
            {
                return;
            }
            pass(&mut from, &mut to, &mut direction).await
        } else {
            faulted(
                &mut from,
                &mut to,
                &mut direction,
                &mut jitter,
                pending.take(),
            )
            .await
        };
        match stretch {
            Stretch::ModeChanged(chunk) => pending = chunk,
            Stretch::Ended => return,
        }
    }
}

/// The pass path, which every request of a run without a fault takes:
/// a read, then a write of the same bytes, no timer, no queue, no
/// allocation. The mode is looked at once per chunk, when it arrives; a
/// change is watched by one waiter for the whole stretch.
async fn pass(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    direction: &mut Direction,
) -> Stretch {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut watcher = direction.mode.clone();
    let changed = watcher.changed();
    tokio::pin!(changed);
    loop {
        let read = tokio::select! {
            biased;
            read = from.read(&mut buffer) => read,
            changed = &mut changed => {
                return match changed {
                    Ok(()) => Stretch::ModeChanged(None),
                    Err(_) => Stretch::Ended,
                };
            }
        };
        let n = match read {
            Ok(0) | Err(_) => return Stretch::Ended,
            Ok(n) => n,
        };
        if direction.current() != ProxyMode::Pass {
            // The mode changed as the chunk came: the chunk is the fault's.
            return Stretch::ModeChanged(Some(Bytes::copy_from_slice(&buffer[..n])));
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return Stretch::Ended;
        }
    }
}

/// A direction's jitter: its random stream, seeded at the first delayed
/// chunk from the mode's seed and the direction.
struct Jitter {
    state: Option<u64>,
    stream: u64,
}

/// Copies one direction while a fault is on, applying it to every chunk:
/// the reader stamps each chunk with when it may leave (its arrival plus
/// the delay, never before the chunk ahead of it) and the writer sends it
/// then, so the delay is paid once per chunk in flight, not once per chunk
/// in turn. Ends once the mode is back to pass and what was in flight is
/// sent; a connection that lost bytes to a blackhole ends with it.
async fn faulted(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    direction: &mut Direction,
    jitter: &mut Jitter,
    first: Option<Bytes>,
) -> Stretch {
    // Chunks in flight; a full queue stops reading (backpressure).
    let (queue, mut due) = tokio::sync::mpsc::channel::<(Instant, Bytes)>(1024);
    let writer = async move {
        while let Some((at, chunk)) = due.recv().await {
            if at > Instant::now() {
                tokio::time::sleep_until(at).await;
            }
            if to.write_all(&chunk).await.is_err() {
                return false;
            }
        }
        true
    };
    let reader = async move {
        let mut buffer = BytesMut::with_capacity(64 * 1024);
        let mut lost_bytes = false;
        let mut last = Instant::now();
        let mut first = first;
        loop {
            let chunk = match first.take() {
                Some(first) => first,
                None => {
                    if buffer.capacity() - buffer.len() < 16 * 1024 {
                        buffer.reserve(64 * 1024);
                    }
                    let read = tokio::select! {
                        read = from.read_buf(&mut buffer) => read,
                        changed = direction.mode.changed() => {
                            if changed.is_err() {
                                return Stretch::Ended;
                            }
                            match direction.current() {
                                // A blackhole ended on a connection that lost bytes to it.
                                ProxyMode::Pass if lost_bytes => return Stretch::Ended,
                                ProxyMode::Pass => return Stretch::ModeChanged(None),
                                ProxyMode::Blackhole | ProxyMode::Delay { .. } => continue,
                            }
                        }
                    };
                    match read {
                        Ok(0) | Err(_) => return Stretch::Ended,
                        Ok(_) => {}
                    }
                    buffer.split().freeze()
                }
            };
            let arrived = Instant::now();
            let at = match direction.current() {
                ProxyMode::Blackhole => {
                    lost_bytes = true;
                    continue;
                }
                ProxyMode::Delay {
                    delay,
                    jitter: spread,
                    seed,
                } => {
                    let state = jitter.state.get_or_insert(seed ^ splitmix(jitter.stream));
                    arrived + jittered(delay, spread, state)
                }
                ProxyMode::Pass => arrived,
            };
            // Order is kept: a chunk never leaves before the one ahead.
            last = last.max(at);
            if queue.send((last, chunk)).await.is_err() {
                return Stretch::Ended;
            }
        }
    };
    // The reader ends the stretch; the writer then sends what is still in
    // flight and ends too.
    match tokio::join!(reader, writer) {
        (Stretch::ModeChanged(None), true) => Stretch::ModeChanged(None),
        _ => Stretch::Ended,
    }
}

/// One step of SplitMix64: a well-mixed 64-bit value from `x`.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `delay` plus a uniform offset in `[-jitter, +jitter]`, never negative;
/// `state` is the jitter's random stream, advanced.
fn jittered(delay: Duration, jitter: Duration, state: &mut u64) -> Duration {
    if jitter.is_zero() {
        return delay;
    }
    *state = splitmix(*state);
    let unit = (*state >> 11) as f64 / (1u64 << 53) as f64;
    let offset = (unit * 2.0 - 1.0) * jitter.as_secs_f64();
    Duration::from_secs_f64((delay.as_secs_f64() + offset).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bounds_and_follows_its_seed() {
        let mut state = 7;
        let draws: Vec<Duration> = (0..1000)
            .map(|_| {
                jittered(
                    Duration::from_millis(100),
                    Duration::from_millis(20),
                    &mut state,
                )
            })
            .collect();
        for d in &draws {
            assert!(
                *d >= Duration::from_millis(80) && *d <= Duration::from_millis(120),
                "{d:?}"
            );
        }
        // Spread over the range, not stuck.
        assert!(draws.iter().any(|d| *d < Duration::from_millis(90)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(110)));
        // The same seed, the same delays; another seed, others.
        let again: Vec<Duration> = {
            let mut state = 7;
            (0..1000)
                .map(|_| {
                    jittered(
                        Duration::from_millis(100),
                        Duration::from_millis(20),
                        &mut state,
                    )
                })
                .collect()
        };
        assert_eq!(draws, again);
        let mut other = 8;
        assert_ne!(
            draws[..10].to_vec(),
            (0..10)
                .map(|_| jittered(
                    Duration::from_millis(100),
                    Duration::from_millis(20),
                    &mut other
                ))
                .collect::<Vec<_>>()
        );
        assert!(
            jittered(
                Duration::from_millis(5),
                Duration::from_millis(50),
                &mut state
            ) <= Duration::from_millis(55)
        );
    }

    /// A server that sends back every byte it reads.
    async fn echo_server() -> SocketAddr {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = upstream.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_proxy_passes_bytes_while_the_runtime_that_started_it_is_busy() {
        // An echo server on a thread of its own.
        let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = upstream.accept().unwrap();
            let mut buf = [0u8; 64];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let proxy = FaultProxy::start(upstream_addr).await.unwrap();
        // This test's runtime has one thread, blocked below in plain
        // system calls: only a proxy on a thread of its own can answer.
        use std::io::{Read, Write};
        let mut client = std::net::TcpStream::connect(proxy.addr()).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        let me = std::process::id();
        assert!(
            crate::process::thread_cpu_seconds(me, THREAD).is_some_and(|s| s >= 0.0)
                && std::fs::read_dir(format!("/proc/{me}/task"))
                    .unwrap()
                    .flatten()
                    .any(|task| std::fs::read_to_string(task.path().join("comm"))
                        .is_ok_and(|comm| comm.trim_end() == THREAD)),
            "no thread named {THREAD}"
        );
    }

    #[tokio::test]
    async fn passes_delays_and_blackholes_traffic() {
        let upstream_addr = echo_server().await;
        let proxy = FaultProxy::start(upstream_addr).await.unwrap();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        let round_trip = async |client: &mut TcpStream| {
            let started = std::time::Instant::now();
            client.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            tokio::time::timeout(Duration::from_millis(500), client.read_exact(&mut buf))
                .await
                .ok()
                .map(|r| (r.is_ok(), started.elapsed()))
        };
        let (ok, fast) = round_trip(&mut client).await.unwrap();
        assert!(ok && fast < Duration::from_millis(50));

        proxy.set_mode(ProxyMode::Delay {
            delay: Duration::from_millis(60),
            jitter: Duration::ZERO,
            seed: 1,
        });
        let (ok, slow) = round_trip(&mut client).await.unwrap();
        assert!(ok && slow >= Duration::from_millis(120), "{slow:?}");

        proxy.set_mode(ProxyMode::Blackhole);
        assert!(
            round_trip(&mut client).await.is_none(),
            "bytes crossed a blackhole"
        );
        let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
        assert!(round_trip(&mut fresh).await.is_none());

        proxy.set_mode(ProxyMode::Pass);
        // The connection that lost bytes is closed; the one that waited goes through.
        let mut buf = [0u8; 4];
        let closed = tokio::time::timeout(Duration::from_millis(500), client.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
        assert!(round_trip(&mut after).await.is_some_and(|(ok, _)| ok));

        // One connection goes from passing to a delay and back, as often
        // as the faults of a run switch.
        for _ in 0..2 {
            proxy.set_mode(ProxyMode::Delay {
                delay: Duration::from_millis(60),
                jitter: Duration::ZERO,
                seed: 1,
            });
            let (ok, slow) = round_trip(&mut after).await.unwrap();
            assert!(ok && slow >= Duration::from_millis(120), "{slow:?}");
            proxy.set_mode(ProxyMode::Pass);
            let (ok, fast) = round_trip(&mut after).await.unwrap();
            assert!(ok && fast < Duration::from_millis(50), "{fast:?}");
        }

        // A stopped proxy closes the connections passing through it.
        drop(proxy);
        let closed = tokio::time::timeout(Duration::from_millis(500), after.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    }

    #[tokio::test]
    async fn a_large_result_pays_the_delay_once_not_once_per_chunk() {
        // Upstream answers any byte with 1.6 MB, as a large query result.
        const SIZE: usize = 1_600_000;
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = upstream.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut one = [0u8; 1];
                    while s.read_exact(&mut one).await.is_ok() {
                        if s.write_all(&vec![7u8; SIZE]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = FaultProxy::start(upstream_addr).await.unwrap();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        let fetch = async |client: &mut TcpStream| {
            let started = std::time::Instant::now();
            client.write_all(b"q").await.unwrap();
            let mut result = vec![0u8; SIZE];
            client.read_exact(&mut result).await.unwrap();
            assert!(result.iter().all(|b| *b == 7), "bytes changed on the way");
            started.elapsed()
        };
        let direct = fetch(&mut client).await;
        proxy.set_mode(ProxyMode::Delay {
            delay: Duration::from_millis(100),
            jitter: Duration::ZERO,
            seed: 1,
        });
        let delayed = fetch(&mut client).await;
        // The request's 100 ms, then the result's 100 ms and its transfer;
        // delaying each 16 KiB chunk in turn would take about 10 s.
        assert!(delayed >= Duration::from_millis(200), "{delayed:?}");
        assert!(
            delayed < Duration::from_millis(200) + direct + Duration::from_millis(400),
            "{delayed:?} (direct {direct:?})"
        );
    }

    /// A Kafka request header's first bytes: size, api key 18
    /// (ApiVersions), version 3, correlation id 1, `client_id`.
    fn request(client_id: &str) -> Vec<u8> {
        let mut body = vec![0, 18, 0, 3, 0, 0, 0, 1];
        body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
        body.extend_from_slice(client_id.as_bytes());
        body.extend_from_slice(&[0, 0, 0]);
        let mut framed = (body.len() as i32).to_be_bytes().to_vec();
        framed.extend(body);
        framed
    }

    #[test]
    fn a_request_header_names_its_client() {
        let whole = request("faultline-consumer");
        assert_eq!(
            client_id(&whole),
            Header::ClientId(Some("faultline-consumer".into()))
        );
        for cut in [0, 5, 13, 14, 20] {
            assert_eq!(client_id(&whole[..cut]), Header::Incomplete, "{cut}");
        }
        let mut null = whole[..12].to_vec();
        null.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(client_id(&null), Header::ClientId(None));
        // A PostgreSQL startup message is no Kafka request.
        let startup = [0, 0, 0, 8, 4, 210, 22, 47, 0, 0, 0, 0, 0, 0];
        assert_eq!(client_id(&startup), Header::NotKafka);
    }

    #[tokio::test]
    async fn a_mode_for_one_client_leaves_the_others_alone() {
        let upstream_addr = echo_server().await;
        let proxy = FaultProxy::start_kafka(upstream_addr).await.unwrap();
        // Each client's first request comes back whole, then pings do.
        let open = async |id: &str| {
            let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
            let first = request(id);
            client.write_all(&first).await.unwrap();
            let mut echoed = vec![0u8; first.len()];
            let back =
                tokio::time::timeout(Duration::from_millis(500), client.read_exact(&mut echoed))
                    .await;
            (client, back.is_ok() && echoed == first)
        };
        let ping = async |client: &mut TcpStream| {
            client.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            tokio::time::timeout(Duration::from_millis(300), client.read_exact(&mut buf))
                .await
                .is_ok_and(|r| r.is_ok())
        };
        let (mut consumer, answered) = open("faultline-consumer").await;
        assert!(answered);
        let (mut producer, answered) = open("faultline-producer").await;
        assert!(answered);

        proxy.set_mode_for("faultline-consumer", ProxyMode::Blackhole);
        assert!(ping(&mut producer).await, "the producer's link was cut too");
        assert!(
            !ping(&mut consumer).await,
            "bytes crossed the consumer's blackhole"
        );
        // New connections: the consumer's waits, the producer's goes through.
        let (_, answered) = open("faultline-producer").await;
        assert!(answered);
        let (mut waiting, answered) = open("faultline-consumer").await;
        assert!(!answered);

        proxy.set_mode(ProxyMode::Pass);
        let mut echoed = vec![0u8; request("faultline-consumer").len()];
        let through =
            tokio::time::timeout(Duration::from_millis(500), waiting.read_exact(&mut echoed)).await;
        assert!(
            through.is_ok_and(|r| r.is_ok()),
            "the waiting connection stayed cut"
        );
        assert!(ping(&mut producer).await);
    }
}
