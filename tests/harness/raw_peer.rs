//! A scripted peer that dials the client under test: the hostile side of an incoming
//! connection (slowloris, wrong info-hash, request floods, crowds), written with
//! [`crate::wire`] so that it can say anything.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::wire;

/// How a wait on the remote side ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// The remote closed or reset the connection.
    ByRemote,
    /// It was still open when the wait ended.
    StillOpen,
}

pub struct RawPeer {
    stream: TcpStream,
}

impl RawPeer {
    pub fn connect(addr: SocketAddr) -> std::io::Result<RawPeer> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        Ok(RawPeer { stream })
    }

    /// Connects from source address `from` (attackers need addresses of their own: rivulet
    /// bans, caps and evicts per address), optionally with a receive buffer of about
    /// `recv_buffer` bytes so that a peer that stops reading stalls the sender soon. Writes
    /// give up after 5 s rather than hang a test on a peer that stopped reading.
    pub fn connect_from(
        from: IpAddr,
        addr: SocketAddr,
        recv_buffer: Option<usize>,
    ) -> std::io::Result<RawPeer> {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        socket.bind(&SocketAddr::new(from, 0).into())?;
        if let Some(n) = recv_buffer {
            socket.set_recv_buffer_size(n)?;
        }
        socket.connect_timeout(&addr.into(), Duration::from_secs(5))?;
        let stream: TcpStream = socket.into();
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(RawPeer { stream })
    }

    /// Our end of the connection: the address the remote's events name us by.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream
            .local_addr()
            .expect("a connected socket has a local address")
    }

    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends our handshake for `info_hash` and reads the remote's; returns the info-hash the
    /// remote named, or an error if it closed first.
    pub fn handshake(
        &mut self,
        info_hash: &[u8; 20],
        timeout: Duration,
    ) -> std::io::Result<[u8; 20]> {
        let hs = self.exchange_handshakes(&wire::handshake(info_hash), timeout)?;
        wire::handshake_info_hash(&hs).ok_or_else(|| {
            std::io::Error::new(ErrorKind::InvalidData, "not a BitTorrent handshake")
        })
    }

    /// Sends handshake `ours` and returns the remote's 68 bytes.
    pub fn exchange_handshakes(
        &mut self,
        ours: &[u8],
        timeout: Duration,
    ) -> std::io::Result<[u8; 68]> {
        self.send(ours)?;
        let mut hs = [0u8; 68];
        self.read_exact(&mut hs, timeout)?;
        Ok(hs)
    }

    /// The next message as (id, payload); `None` for a keep-alive.
    pub fn read_message(&mut self, timeout: Duration) -> std::io::Result<Option<(u8, Vec<u8>)>> {
        let mut len = [0u8; 4];
        self.read_exact(&mut len, timeout)?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            return Ok(None);
        }
        if len > 1 << 20 {
            return Err(std::io::Error::new(
                ErrorKind::InvalidData,
                "message over 1 MiB",
            ));
        }
        let mut body = vec![0u8; len];
        self.read_exact(&mut body, timeout)?;
        let payload = body.split_off(1);
        Ok(Some((body[0], payload)))
    }

    /// Reads messages until one with `id` arrives; returns its payload.
    pub fn wait_message(&mut self, id: u8, timeout: Duration) -> std::io::Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some((got, payload)) = self.read_message(left)?
                && got == id
            {
                return Ok(payload);
            }
        }
    }

    /// Reads and discards until the remote closes or `timeout` passes.
    pub fn wait_closed(&mut self, timeout: Duration) -> Closed {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                return Closed::StillOpen;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Closed::ByRemote,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Closed::ByRemote,
            }
        }
    }

    fn read_exact(&mut self, buf: &mut [u8], timeout: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut got = 0;
        while got < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ErrorKind::TimedOut.into());
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
