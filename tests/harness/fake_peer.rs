//! A raw BitTorrent peer for fault injection: what no real client can be made to do.
//!
//! It listens on a loopback address, answers the BEP 3 handshake for one fixture, sends a full
//! bitfield and an unchoke, and serves requests from the fixture's real data, except where its
//! [`Misbehaviour`] says otherwise. It records what happened ([`Record`]) so a test can assert
//! that the client under test dropped it. The wire format is written out here on purpose: a
//! well-behaved protocol library could not produce these faults.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::fixture::Fixture;
use crate::ports::free_port;
use crate::wire::{self, BITFIELD, CHOKE, PIECE, REQUEST, UNCHOKE, message};

/// Larger requests are ignored (clients ask for 16 KiB).
const MAX_BLOCK: u32 = 128 << 10;
/// Larger incoming messages end the connection (a bitfield of 100k pieces is 12.5 KB).
const MAX_MESSAGE: usize = 1 << 20;
/// How often blocked reads look at the stop flag.
const TICK: Duration = Duration::from_millis(100);

/// What the fake peer does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Serves every request correctly (proves the fake peer itself against real clients).
    Honest,
    /// Every block has its first byte flipped: each piece it contributes to fails its hash.
    CorruptBlocks,
    /// Every answer carries half the requested length.
    WrongBlockSize,
    /// Advertises the even pieces only; before each answer, a block of zeros for an odd piece.
    UnrequestedBlocks,
    /// Answers the first request with a length prefix of almost 4 GiB, then a trickle of bytes.
    HugeLengthPrefix,
    /// Sends half of the first block and closes the connection.
    DisconnectMidBlock,
    /// Handshake, bitfield and unchoke, then never answers a request.
    Silence,
    /// Before each answer, a block for a piece index past the torrent's last piece.
    PieceOutOfRange,
    /// Right after its bitfield, a `have` for the piece index one past the last.
    HaveOutOfRange,
    /// A bitfield with the spare bits after the last piece set (the fixture's piece count must
    /// not be a multiple of 8).
    BitfieldSpareBits,
    /// A bitfield one byte longer than the torrent's piece count allows.
    BitfieldWrongLength,
    /// Answers the handshake naming another torrent's info-hash.
    WrongInfoHash,
    /// Answers the first request of each connection with a block whose first byte is flipped,
    /// then chokes and answers nothing more: one bad block in a piece others complete.
    CorruptOnceThenChoke,
}

/// What the fake peer saw, for assertions.
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub connections: u32,
    /// Connections whose handshake named our info-hash.
    pub handshakes: u32,
    /// (piece, begin, length) of every request received.
    pub requests: Vec<(u32, u32, u32)>,
    /// Pieces of which at least one block was sent.
    pub pieces_served: BTreeSet<u32>,
    pub blocks_sent: u32,
    /// Connections the client ended (EOF or reset) while we still wanted to talk.
    pub closed_by_client: u32,
}

pub struct FakePeer {
    pub addr: SocketAddr,
    record: Arc<Mutex<Record>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakePeer {
    /// Listens on a free port of `ip` for peers of `fixture`.
    pub fn start(ip: Ipv4Addr, fixture: &'static Fixture, behaviour: Misbehaviour) -> FakePeer {
        let addr = SocketAddr::from((ip, free_port(ip)));
        let listener =
            TcpListener::bind(addr).unwrap_or_else(|e| panic!("fake peer bind {addr}: {e}"));
        listener
            .set_nonblocking(true)
            .expect("fake peer listener nonblocking");
        let record = Arc::new(Mutex::new(Record::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (record, stop) = (record.clone(), stop.clone());
            std::thread::spawn(move || accept_loop(listener, fixture, behaviour, record, stop))
        };
        FakePeer {
            addr,
            record,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn record(&self) -> Record {
        self.record.lock().expect("fake peer record lock").clone()
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    fixture: &'static Fixture,
    behaviour: Misbehaviour,
    record: Arc<Mutex<Record>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                record.lock().expect("record lock").connections += 1;
                let conn = Conn {
                    stream,
                    fixture,
                    behaviour,
                    record: record.clone(),
                    stop: stop.clone(),
                };
                std::thread::spawn(move || conn.run());
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(TICK / 5),
            Err(_) => std::thread::sleep(TICK),
        }
    }
}

/// Why a connection ended.
enum End {
    /// The client closed or reset it.
    ClientClosed,
    /// We ended it (bad handshake, our own misbehaviour, test over).
    Us,
}

struct Conn {
    stream: TcpStream,
    fixture: &'static Fixture,
    behaviour: Misbehaviour,
    record: Arc<Mutex<Record>>,
    stop: Arc<AtomicBool>,
}

impl Conn {
    fn run(mut self) {
        if let End::ClientClosed = self.serve() {
            self.record.lock().expect("record lock").closed_by_client += 1;
        }
    }

    fn serve(&mut self) -> End {
        if self.stream.set_nonblocking(false).is_err()
            || self.stream.set_read_timeout(Some(TICK)).is_err()
        {
            return End::Us;
        }
        let mut hs = [0u8; 68];
        match self.read_full(&mut hs, Duration::from_secs(10)) {
            Ok(()) => {}
            Err(end) => return end,
        }
        // aria2 tries an encrypted (MSE) handshake first and retries in plaintext when refused.
        if wire::handshake_info_hash(&hs) != Some(self.fixture.meta.info_hash) {
            return End::Us;
        }
        self.record.lock().expect("record lock").handshakes += 1;
        let meta = &self.fixture.meta;
        let pieces = meta.piece_count();
        let own_hash = match self.behaviour {
            Misbehaviour::WrongInfoHash => {
                let mut other = meta.info_hash;
                other[0] ^= 0xff;
                other
            }
            _ => meta.info_hash,
        };
        let mut reply = wire::handshake(&own_hash);
        let mut bits = wire::full_bitfield(pieces);
        match self.behaviour {
            Misbehaviour::BitfieldSpareBits => {
                let last = bits.len() - 1;
                bits[last] = 0xff;
            }
            Misbehaviour::BitfieldWrongLength => bits.push(0xff),
            // Only even pieces: the zero blocks it pushes are for odd ones, which rivulet can
            // never have asked it for (a block for a piece we did request of it, even if its
            // request was still in flight, is an answer, right or wrong).
            Misbehaviour::UnrequestedBlocks => {
                for odd in (1..pieces).step_by(2) {
                    bits[odd as usize / 8] &= !(0x80u8 >> (odd % 8));
                }
            }
            _ => {}
        }
        reply.extend_from_slice(&message(BITFIELD, &bits));
        if self.behaviour == Misbehaviour::HaveOutOfRange {
            reply.extend_from_slice(&wire::have(pieces));
        }
        reply.extend_from_slice(&message(UNCHOKE, &[]));
        if self.stream.write_all(&reply).is_err() {
            return End::ClientClosed;
        }
        let mut answered = 0u32;
        loop {
            let mut len = [0u8; 4];
            if let Err(end) = self.read_full(&mut len, Duration::MAX) {
                return end;
            }
            let len = u32::from_be_bytes(len) as usize;
            if len == 0 {
                continue; // keep-alive
            }
            if len > MAX_MESSAGE {
                return End::Us;
            }
            let mut msg = vec![0u8; len];
            if let Err(end) = self.read_full(&mut msg, Duration::from_secs(30)) {
                return end;
            }
            if msg[0] != REQUEST || msg.len() != 13 {
                continue;
            }
            let field = |i: usize| u32::from_be_bytes([msg[i], msg[i + 1], msg[i + 2], msg[i + 3]]);
            let (index, begin, length) = (field(1), field(5), field(9));
            self.record
                .lock()
                .expect("record lock")
                .requests
                .push((index, begin, length));
            if let Some(end) = self.answer(index, begin, length, answered) {
                return end;
            }
            answered += 1;
        }
    }

    /// Answers one request as the misbehaviour says; `Some` ends the connection.
    fn answer(&mut self, index: u32, begin: u32, length: u32, answered: u32) -> Option<End> {
        let meta = &self.fixture.meta;
        if index >= meta.piece_count()
            || length == 0
            || length > MAX_BLOCK
            || begin as u64 + length as u64 > meta.piece_len(index)
        {
            return None;
        }
        let mut data = vec![0u8; length as usize];
        let offset = index as u64 * meta.piece_length + begin as u64;
        if self.fixture.read_at(offset, &mut data).is_err() {
            return Some(End::Us);
        }
        let mut out = Vec::new();
        match self.behaviour {
            Misbehaviour::CorruptBlocks => {
                data[0] ^= 0xff;
                out.extend(wire::piece(index, begin, &data));
            }
            Misbehaviour::WrongBlockSize => {
                out.extend(wire::piece(index, begin, &data[..data.len() / 2]));
            }
            Misbehaviour::UnrequestedBlocks => {
                let other = if index | 1 < meta.piece_count() {
                    index | 1
                } else {
                    1
                };
                let len = (16 << 10).min(meta.piece_len(other)) as usize;
                out.extend(wire::piece(other, 0, &vec![0u8; len]));
                out.extend(wire::piece(index, begin, &data));
            }
            Misbehaviour::HugeLengthPrefix => {
                if answered > 0 {
                    return None;
                }
                out.extend_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
                out.push(PIECE);
                out.extend_from_slice(&index.to_be_bytes());
                out.extend_from_slice(&begin.to_be_bytes());
                out.extend_from_slice(&data);
            }
            Misbehaviour::DisconnectMidBlock => {
                let whole = wire::piece(index, begin, &data);
                let _ = self.stream.write_all(&whole[..whole.len() / 2]);
                return Some(End::Us);
            }
            Misbehaviour::PieceOutOfRange => {
                out.extend(wire::piece(meta.piece_count() + 7, 0, &data));
                out.extend(wire::piece(index, begin, &data));
            }
            Misbehaviour::Silence => return None,
            Misbehaviour::CorruptOnceThenChoke => {
                if answered > 0 {
                    return None;
                }
                data[0] ^= 0xff;
                out.extend(wire::piece(index, begin, &data));
                out.extend(message(CHOKE, &[]));
            }
            Misbehaviour::Honest
            | Misbehaviour::HaveOutOfRange
            | Misbehaviour::BitfieldSpareBits
            | Misbehaviour::BitfieldWrongLength
            | Misbehaviour::WrongInfoHash => out.extend(wire::piece(index, begin, &data)),
        }
        if self.stream.write_all(&out).is_err() {
            return Some(End::ClientClosed);
        }
        let mut rec = self.record.lock().expect("record lock");
        rec.blocks_sent += 1;
        rec.pieces_served.insert(index);
        None
    }

    /// Fills `buf`, waking every [`TICK`] to honour the stop flag; `Err` says who ended it.
    fn read_full(&mut self, buf: &mut [u8], timeout: Duration) -> Result<(), End> {
        let deadline = Instant::now().checked_add(timeout);
        let mut got = 0;
        while got < buf.len() {
            if self.stop.load(Ordering::SeqCst) || deadline.is_some_and(|d| Instant::now() > d) {
                return Err(End::Us);
            }
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => return Err(End::ClientClosed),
                Ok(n) => got += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(End::ClientClosed),
            }
        }
        Ok(())
    }
}
