//! Free ports and loopback addresses for the processes of a test.
//!
//! Ports come from below the kernel's ephemeral range (so an outgoing connection cannot take a
//! port between our check and the listener's bind), start at a per-process offset, are never
//! handed out twice by one process, and are checked free for both TCP and UDP: opentracker binds
//! with SO_REUSEPORT and would silently share a busy port.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

const FIRST: u32 = 20_000;
const SPAN: u32 = 12_000;

static NEXT_PORT: AtomicU32 = AtomicU32::new(u32::MAX);
static NEXT_HOST: AtomicU32 = AtomicU32::new(0);

/// A port on `ip` that is free for TCP and UDP right now.
pub fn free_port(ip: Ipv4Addr) -> u16 {
    // Start where other test binaries that run at the same time are unlikely to be.
    let _ = NEXT_PORT.compare_exchange(
        u32::MAX,
        (std::process::id() * 97) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (FIRST + NEXT_PORT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if port_is_free(ip, port) {
            return port;
        }
    }
    panic!("no free TCP+UDP port on {ip} in {FIRST}..{}", FIRST + SPAN);
}

/// A free `ip:port` for a listener.
pub fn free_addr(ip: Ipv4Addr) -> SocketAddr {
    SocketAddr::from((ip, free_port(ip)))
}

fn port_is_free(ip: Ipv4Addr, port: u16) -> bool {
    // A listener on 0.0.0.0 also blocks a specific address, so test both.
    [ip, Ipv4Addr::UNSPECIFIED]
        .iter()
        .all(|&a| TcpListener::bind((a, port)).is_ok() && UdpSocket::bind((a, port)).is_ok())
}

/// A loopback address of its own (127.0.0.10 and up) for a libtorrent client or a fake peer:
/// libtorrent keeps one peer per IP, so every peer in a swarm needs a distinct address.
pub fn own_loopback() -> Ipv4Addr {
    let n = NEXT_HOST.fetch_add(1, Ordering::SeqCst);
    Ipv4Addr::new(127, 0, (n / 200) as u8, 10 + (n % 200) as u8)
}

/// The address aria2 seeders bind to; distinct from 127.0.0.1, where the clients under test live.
pub const SEEDER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Where the tracker and the client under test listen.
pub const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
