//! Crowds of hostile peers that dial the client under test, for the attacks of issue 14
//! ("Bounds", "Fairness"): each attacker is a thread with a loopback address of its own (or
//! one address shared by all, for per-address limits), doing one [`Behaviour`] over a
//! [`RawPeer`] and, if told to, dialing again after each drop. Everything stops and is joined
//! when the [`Attack`] is dropped; a [`Tally`] says what the attackers managed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::ports::own_loopback;
use crate::raw_peer::{Closed, RawPeer};
use crate::wire;

/// How often a waiting attacker looks at the stop flag.
const TICK: Duration = Duration::from_millis(100);
/// Unchoke/choke pairs per second of a [`Behaviour::ChokeCycle`]: 3,000 messages a second,
/// under rivulet's control-message budget (4,000 a second), so that what stops the attacker is
/// the bound on its outgoing queue and not the flood limit.
const CYCLE_PAIRS_PER_SEC: u64 = 1500;
/// Receive buffer of an attacker that never reads: small, so the client's writer stalls soon.
const TINY_WINDOW: usize = 4096;
const BLOCK: u32 = 16 << 10;

/// What each attacker does once its handshake is answered.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// A full bitfield, then unchoke/choke pairs, never reading: each unchoke makes the client
    /// queue a pipeline of requests that nobody reads.
    ChokeCycle,
    /// A full bitfield and an unchoke; every request answered with zeros (the data of a
    /// [`crate::make_torrent::zeros`] torrent), except that the last block of every even piece
    /// is never sent, so those never complete. The odd pieces, served whole, make the attacker
    /// look fast and earn it a deep pipeline, and so more pieces to start.
    WithholdLastBlock {
        piece_length: u64,
        total_length: u64,
    },
    /// Zero blocks for piece 0 that nobody asked for, as fast as the socket takes them.
    UnrequestedBlocks,
    /// These bytes (whole messages) over and over, never reading.
    Flood(Vec<u8>),
    /// Never interested; a request every `every` while choked, reading everything sent.
    SlotHolder { every: Duration },
    /// Connects and says nothing (not even a handshake) until the client hangs up.
    HalfOpen,
}

/// Where the attackers dial from.
#[derive(Clone, Copy, Debug)]
pub enum Source {
    /// Every attacker its own loopback address.
    OwnAddresses,
    /// All of them this one.
    Shared(Ipv4Addr),
}

/// What the attackers did, summed over all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub connections: u64,
    /// Connections whose handshake the client answered.
    pub handshakes: u64,
    /// Connections the client ended.
    pub closed_by_client: u64,
    /// Handshaken connections open right now.
    pub holding: u64,
    /// Messages written (blocks, flood messages, cycles, requests).
    pub messages: u64,
    /// Longest a handshaken connection lasted before the client ended it, ms.
    pub longest_ms: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    handshakes: AtomicU64,
    closed_by_client: AtomicU64,
    holding: AtomicU64,
    messages: AtomicU64,
    longest_ms: AtomicU64,
}

pub struct Attack {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    threads: Vec<JoinHandle<()>>,
    /// The address of each attacker, in start order.
    pub addrs: Vec<IpAddr>,
}

/// The fixed parts of every attacker.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    info_hash: [u8; 20],
    pieces: u32,
    behaviour: Behaviour,
    /// Pause before dialing again after a connection ended; `None`: one connection only.
    again: Option<Duration>,
}

impl Attack {
    /// Starts `count` attackers against `target` for the torrent `info_hash` of `pieces`
    /// pieces. With `again`, each dials again that long after its connection ends.
    pub fn start(
        target: SocketAddr,
        info_hash: [u8; 20],
        pieces: u32,
        count: usize,
        source: Source,
        behaviour: Behaviour,
        again: Option<Duration>,
    ) -> Attack {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let t = Target {
            addr: target,
            info_hash,
            pieces,
            behaviour,
            again,
        };
        let mut addrs = Vec::new();
        let threads = (0..count)
            .map(|_| {
                let from = IpAddr::V4(match source {
                    Source::OwnAddresses => own_loopback(),
                    Source::Shared(ip) => ip,
                });
                addrs.push(from);
                let (t, stop, counters) = (t.clone(), stop.clone(), counters.clone());
                std::thread::spawn(move || attacker(from, &t, &stop, &counters))
            })
            .collect();
        Attack {
            stop,
            counters,
            threads,
            addrs,
        }
    }

    pub fn tally(&self) -> Tally {
        let c = &self.counters;
        Tally {
            connections: c.connections.load(Ordering::SeqCst),
            handshakes: c.handshakes.load(Ordering::SeqCst),
            closed_by_client: c.closed_by_client.load(Ordering::SeqCst),
            holding: c.holding.load(Ordering::SeqCst),
            messages: c.messages.load(Ordering::SeqCst),
            longest_ms: c.longest_ms.load(Ordering::SeqCst),
        }
    }

    /// Stops every attacker (their connections close) and returns the final tally.
    pub fn stop(mut self) -> Tally {
        self.halt();
        self.tally()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        self.halt();
    }
}

/// How one connection ended.
#[derive(PartialEq, Eq)]
enum End {
    Client,
    Stopped,
}

fn attacker(from: IpAddr, t: &Target, stop: &AtomicBool, c: &Counters) {
    let window =
        matches!(t.behaviour, Behaviour::ChokeCycle | Behaviour::Flood(_)).then_some(TINY_WINDOW);
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut p) = RawPeer::connect_from(from, t.addr, window) else {
            pause(stop, TICK);
            continue;
        };
        c.connections.fetch_add(1, Ordering::SeqCst);
        let end = if let Behaviour::HalfOpen = t.behaviour {
            until_closed(&mut p, stop)
        } else if p.handshake(&t.info_hash, Duration::from_secs(12)).is_err() {
            End::Client
        } else {
            c.handshakes.fetch_add(1, Ordering::SeqCst);
            c.holding.fetch_add(1, Ordering::SeqCst);
            let began = Instant::now();
            let end = behave(&mut p, t, stop, c);
            c.holding.fetch_sub(1, Ordering::SeqCst);
            if end == End::Client {
                let ms = began.elapsed().as_millis() as u64;
                c.longest_ms.fetch_max(ms, Ordering::SeqCst);
            }
            end
        };
        if end == End::Client {
            c.closed_by_client.fetch_add(1, Ordering::SeqCst);
        }
        match t.again {
            Some(d) => pause(stop, d),
            None => return,
        }
    }
}

fn behave(p: &mut RawPeer, t: &Target, stop: &AtomicBool, c: &Counters) -> End {
    match &t.behaviour {
        Behaviour::ChokeCycle => choke_cycle(p, t.pieces, stop, c),
        Behaviour::WithholdLastBlock {
            piece_length,
            total_length,
        } => withhold(p, t.pieces, *piece_length, *total_length, stop, c),
        Behaviour::UnrequestedBlocks => {
            let block = wire::piece(0, 0, &vec![0u8; BLOCK as usize]);
            flood(p, &block, 1, stop, c)
        }
        Behaviour::Flood(bytes) => {
            let copies = (64 << 10) / bytes.len().max(1) + 1;
            flood(p, &bytes.repeat(copies), copies as u64, stop, c)
        }
        Behaviour::SlotHolder { every } => slot_holder(p, *every, stop, c),
        Behaviour::HalfOpen => until_closed(p, stop),
    }
}

fn choke_cycle(p: &mut RawPeer, pieces: u32, stop: &AtomicBool, c: &Counters) -> End {
    if p.send(&wire::message(wire::BITFIELD, &wire::full_bitfield(pieces)))
        .is_err()
    {
        return End::Client;
    }
    // Ten batches a second, each a tenth of the pairs.
    let pairs = CYCLE_PAIRS_PER_SEC / 10;
    let mut batch = Vec::new();
    for _ in 0..pairs {
        batch.extend(wire::message(wire::UNCHOKE, &[]));
        batch.extend(wire::message(wire::CHOKE, &[]));
    }
    let mut next = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if p.send(&batch).is_err() {
            return End::Client;
        }
        c.messages.fetch_add(pairs, Ordering::SeqCst);
        next += TICK;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    End::Stopped
}

fn withhold(
    p: &mut RawPeer,
    pieces: u32,
    piece_length: u64,
    total_length: u64,
    stop: &AtomicBool,
    c: &Counters,
) -> End {
    let mut hello = wire::message(wire::BITFIELD, &wire::full_bitfield(pieces));
    hello.extend(wire::message(wire::UNCHOKE, &[]));
    if p.send(&hello).is_err() {
        return End::Client;
    }
    let zeros = vec![0u8; 128 << 10];
    while !stop.load(Ordering::SeqCst) {
        let (id, payload) = match p.read_message(TICK) {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => return End::Client,
        };
        if id != wire::REQUEST || payload.len() != 12 {
            continue;
        }
        let field = |i: usize| u32::from_be_bytes(payload[i..i + 4].try_into().expect("4 bytes"));
        let (index, begin, length) = (field(0), field(4), field(8));
        let piece_len =
            piece_length.min(total_length - (index as u64 * piece_length).min(total_length));
        let withheld = index % 2 == 0 && begin as u64 + length as u64 >= piece_len;
        if withheld || length as usize > zeros.len() {
            continue;
        }
        if p.send(&wire::piece(index, begin, &zeros[..length as usize]))
            .is_err()
        {
            return End::Client;
        }
        c.messages.fetch_add(1, Ordering::SeqCst);
    }
    End::Stopped
}

/// Writes `bytes` (holding `messages` messages) again and again until the client hangs up.
fn flood(p: &mut RawPeer, bytes: &[u8], messages: u64, stop: &AtomicBool, c: &Counters) -> End {
    while !stop.load(Ordering::SeqCst) {
        if p.send(bytes).is_err() {
            return End::Client;
        }
        c.messages.fetch_add(messages, Ordering::SeqCst);
    }
    End::Stopped
}

fn slot_holder(p: &mut RawPeer, every: Duration, stop: &AtomicBool, c: &Counters) -> End {
    let mut next = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if Instant::now() >= next {
            if p.send(&wire::request(0, 0, BLOCK)).is_err() {
                return End::Client;
            }
            c.messages.fetch_add(1, Ordering::SeqCst);
            next += every;
        }
        if p.wait_closed(TICK) == Closed::ByRemote {
            return End::Client;
        }
    }
    End::Stopped
}

fn until_closed(p: &mut RawPeer, stop: &AtomicBool) -> End {
    while !stop.load(Ordering::SeqCst) {
        if p.wait_closed(TICK) == Closed::ByRemote {
            return End::Client;
        }
    }
    End::Stopped
}

/// Sleeps `d` in ticks, returning early once `stop` is set.
fn pause(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::SeqCst) && Instant::now() < end {
        std::thread::sleep(TICK.min(end.saturating_duration_since(Instant::now())));
    }
}
