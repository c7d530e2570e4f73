//! A BEP 15 announce from a chosen source address: the harness asks the tracker whom it lists,
//! and lets a fake peer join a swarm (opentracker records the packet's source address).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Duration;

const PROTOCOL_ID: u64 = 0x417_2710_1980;
const CONNECT: u32 = 0;
const ANNOUNCE: u32 = 1;
const ERROR: u32 = 3;

#[derive(Clone, Copy, Debug)]
pub enum Event {
    None = 0,
    Completed = 1,
    Started = 2,
    Stopped = 3,
}

/// What one announce asks for.
pub struct Request {
    pub info_hash: [u8; 20],
    /// The peer being announced: the socket is bound to its IP, the port is sent in the packet.
    pub peer: SocketAddrV4,
    pub left: u64,
    pub event: Event,
}

/// Announces and returns the peers the tracker lists.
pub fn announce(tracker: SocketAddr, req: &Request) -> anyhow::Result<Vec<SocketAddr>> {
    let sock = UdpSocket::bind((*req.peer.ip(), 0))?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    sock.connect(tracker)?;
    let tid = rand::random::<u32>();
    let mut msg = Vec::with_capacity(98);
    msg.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
    msg.extend_from_slice(&CONNECT.to_be_bytes());
    msg.extend_from_slice(&tid.to_be_bytes());
    sock.send(&msg)?;
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf)?;
    anyhow::ensure!(n >= 16, "short connect reply ({n} bytes)");
    anyhow::ensure!(
        be32(&buf[0..4]) == CONNECT && be32(&buf[4..8]) == tid,
        "bad connect reply"
    );
    let conn_id = &buf[8..16].to_vec();

    let tid = rand::random::<u32>();
    msg.clear();
    msg.extend_from_slice(conn_id);
    msg.extend_from_slice(&ANNOUNCE.to_be_bytes());
    msg.extend_from_slice(&tid.to_be_bytes());
    msg.extend_from_slice(&req.info_hash);
    msg.extend_from_slice(b"-RH0001-");
    msg.extend_from_slice(&rand::random::<[u8; 12]>());
    msg.extend_from_slice(&0u64.to_be_bytes()); // downloaded
    msg.extend_from_slice(&req.left.to_be_bytes());
    msg.extend_from_slice(&0u64.to_be_bytes()); // uploaded
    msg.extend_from_slice(&(req.event as u32).to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes()); // ip: the packet's source
    msg.extend_from_slice(&rand::random::<u32>().to_be_bytes()); // key
    msg.extend_from_slice(&200i32.to_be_bytes()); // num_want
    msg.extend_from_slice(&req.peer.port().to_be_bytes());
    sock.send(&msg)?;
    let n = sock.recv(&mut buf)?;
    anyhow::ensure!(n >= 8 && be32(&buf[4..8]) == tid, "bad announce reply");
    let action = be32(&buf[0..4]);
    if action == ERROR {
        anyhow::bail!("tracker error: {}", String::from_utf8_lossy(&buf[8..n]));
    }
    anyhow::ensure!(action == ANNOUNCE && n >= 20, "bad announce reply");
    Ok(buf[20..n]
        .chunks_exact(6)
        .map(|c| {
            let ip = Ipv4Addr::new(c[0], c[1], c[2], c[3]);
            SocketAddr::from((ip, u16::from_be_bytes([c[4], c[5]])))
        })
        .collect())
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
