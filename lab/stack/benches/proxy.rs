//! The fault proxy's cost on a request's round trip: a 200-byte request
//! and its echo, straight to the server, through the proxy passing (the
//! path of every request of a run without a fault), and through the proxy
//! under a delay of zero (the queued path a fault takes, and every chunk
//! took before the pass path existed). Compare the three of one run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use faultline_stack::proxy::{FaultProxy, ProxyMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REQUEST: usize = 200;

/// A server that sends back every byte it reads.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket.set_nodelay(true);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = socket.read(&mut buffer).await {
                    if n == 0 || socket.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn round_trips(addr: SocketAddr, count: u64) -> Duration {
    let mut client = TcpStream::connect(addr).await.expect("connect");
    client.set_nodelay(true).expect("nodelay");
    let request = [7u8; REQUEST];
    let mut answer = [0u8; REQUEST];
    // One round trip outside the timing: the proxy connects upstream.
    client.write_all(&request).await.expect("write");
    client.read_exact(&mut answer).await.expect("read");
    let started = Instant::now();
    for _ in 0..count {
        client.write_all(&request).await.expect("write");
        client.read_exact(&mut answer).await.expect("read");
    }
    started.elapsed()
}

fn round_trip(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (server, proxy) = runtime.block_on(async {
        let server = echo_server().await;
        (server, FaultProxy::start(server).await.expect("proxy"))
    });
    let mut group = c.benchmark_group("proxy_round_trip");
    group.bench_function("direct", |b| {
        b.iter_custom(|iters| runtime.block_on(round_trips(server, iters)))
    });
    group.bench_function("pass", |b| {
        proxy.set_mode(ProxyMode::Pass);
        b.iter_custom(|iters| runtime.block_on(round_trips(proxy.addr(), iters)))
    });
    group.bench_function("queued_delay_0", |b| {
        proxy.set_mode(ProxyMode::Delay {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            seed: 1,
        });
        b.iter_custom(|iters| runtime.block_on(round_trips(proxy.addr(), iters)))
    });
    group.finish();

    // CPU: the whole process's (client, echo server and proxy) per round
    // trip; the proxy's own is what passing through it adds to direct.
    let cpu_per_round_trip = |addr: SocketAddr| {
        const COUNT: u64 = 20_000;
        let before = cpu_time();
        runtime.block_on(round_trips(addr, COUNT));
        (cpu_time() - before).as_secs_f64() * 1e6 / COUNT as f64
    };
    proxy.set_mode(ProxyMode::Pass);
    let direct = cpu_per_round_trip(server);
    let pass = cpu_per_round_trip(proxy.addr());
    proxy.set_mode(ProxyMode::Delay {
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        seed: 1,
    });
    let queued = cpu_per_round_trip(proxy.addr());
    println!(
        "proxy_round_trip/cpu: direct {direct:.1} µs, pass {pass:.1} µs (proxy +{:.1}), \
         queued_delay_0 {queued:.1} µs (proxy +{:.1}) per round trip",
        pass - direct,
        queued - direct
    );
    drop(proxy);
}

/// CPU time (user and system) this process has used so far.
fn cpu_time() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let user = usage.user_time();
    let system = usage.system_time();
    let micros = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    Duration::from_micros(micros(user) + micros(system))
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
