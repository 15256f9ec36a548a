//! A TCP fault proxy between the services and PostgreSQL. The services always
//! connect through it, so delay and blackhole faults are switched on and off
//! without restarting anything.
//!
//! - **pass**: bytes flow unchanged.
//! - **delay**: every chunk, in each direction, waits `delay ± jitter` before
//!   it is forwarded (order kept), so a query round trip costs about twice
//!   the delay.
//! - **blackhole**: bytes are read and silently dropped in both directions,
//!   and new connections are accepted but never reach the server. Clients
//!   hang until their own timeouts. Connections that lost bytes are closed
//!   when the blackhole ends, since their protocol stream is broken.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::StackError;

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProxyMode {
    Pass,
    Delay { delay: Duration, jitter: Duration },
    Blackhole,
}

/// A running proxy; dropping it stops it and closes every connection.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    mode: watch::Sender<ProxyMode>,
    accept: JoinHandle<()>,
    connections: Arc<AtomicU64>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Result<Self, StackError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| StackError::Io {
                path: "127.0.0.1:0".into(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StackError::Io {
            path: "127.0.0.1:0".into(),
            source,
        })?;
        let (mode, watcher) = watch::channel(ProxyMode::Pass);
        let connections = Arc::new(AtomicU64::new(0));
        let counter = connections.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = client.set_nodelay(true);
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(client, upstream, watcher.clone()));
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

    pub fn mode(&self) -> ProxyMode {
        *self.mode.borrow()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn set_mode(&self, mode: ProxyMode) {
        self.mode.send_replace(mode);
        tracing::info!(?mode, "Fault proxy mode changed.");
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Closing the channel ends every connection task.
        self.mode.send_modify(|_| {});
    }
}

async fn serve(client: TcpStream, upstream: SocketAddr, mode: watch::Receiver<ProxyMode>) {
    let mut waiting = mode.clone();
    // A connection opened during a blackhole never reaches the server.
    while *waiting.borrow() == ProxyMode::Blackhole {
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
    tokio::select! {
        () = pump(client_read, server_write, mode.clone()) => {}
        () = pump(server_read, client_write, mode.clone()) => {}
    }
}

/// Copies one direction, applying the proxy's mode to every chunk.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<ProxyMode>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    let mut lost_bytes = false;
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                // A blackhole ended on a connection that lost bytes to it.
                if lost_bytes && *mode.borrow() != ProxyMode::Blackhole {
                    return;
                }
                continue;
            }
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let current = *mode.borrow();
        match current {
            ProxyMode::Blackhole => {
                lost_bytes = true;
                continue;
            }
            ProxyMode::Delay { delay, jitter } => {
                tokio::time::sleep(jittered(delay, jitter)).await;
            }
            ProxyMode::Pass => {}
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// `delay` plus a uniform offset in `[-jitter, +jitter]`, never negative.
fn jittered(delay: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return delay;
    }
    // A cheap source of uniform noise; no need for a seeded RNG here.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let unit = f64::from(nanos.wrapping_mul(2_654_435_761) % 1_000_000) / 1_000_000.0;
    let offset = (unit * 2.0 - 1.0) * jitter.as_secs_f64();
    Duration::from_secs_f64((delay.as_secs_f64() + offset).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bounds() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_millis(100), Duration::from_millis(20));
            assert!(
                d >= Duration::from_millis(80) && d <= Duration::from_millis(120),
                "{d:?}"
            );
        }
        assert!(
            jittered(Duration::from_millis(5), Duration::from_millis(50))
                <= Duration::from_millis(55)
        );
    }

    #[tokio::test]
    async fn passes_delays_and_blackholes_traffic() {
        // An echo server upstream.
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
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
    }
}
