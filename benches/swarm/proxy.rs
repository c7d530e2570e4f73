//! The network path to one seeder: a forwarding TCP proxy that delays every chunk by half the
//! round-trip time in each direction (order kept: one queue per direction), paces the
//! seeder-to-leecher direction to the seeder's upload rate (one pacer for all its connections),
//! and can make the seeder "leave" (close every connection, refuse new ones) a set time after
//! the leecher first connected to any seeder. Time, not bytes received: a leecher that fetches
//! duplicates must not see the seeder leave earlier in its real progress than another one. This kernel has no `netem`, and
//! doing rate and delay here treats every client, seeder or leecher, the same.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Largest chunk read and forwarded at once: one block plus its header, so pacing is smooth
/// even at 200 KB/s (a slot of ~80 ms).
const CHUNK: usize = 16 * 1024 + 13;

/// What the path to a seeder looks like.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    pub rtt: Duration,
    /// Seeder upload rate in bytes per second.
    pub rate: u64,
    /// Time after the leecher's first connection at which this seeder leaves.
    pub leave_after: Option<Duration>,
}

/// Figures of one leecher's run, shared by all proxies.
#[derive(Default)]
pub struct RunStats {
    /// Bytes delivered to the leecher.
    pub down: AtomicU64,
    /// When the leecher first connected to any seeder.
    pub first_connect: Mutex<Option<Instant>>,
}

impl RunStats {
    pub fn reset(&self) {
        self.down.store(0, Ordering::SeqCst);
        *self.first_connect.lock().expect("stats lock") = None;
    }

    pub fn first_connect(&self) -> Option<Instant> {
        *self.first_connect.lock().expect("stats lock")
    }
}

struct State {
    link: Link,
    seeder: SocketAddr,
    run: Arc<RunStats>,
    gone: AtomicBool,
    /// Bumped by `reset`: a connection of an earlier run stops forwarding, so the chunks it
    /// still holds neither reach the next run nor take its share of the pacer.
    epoch: AtomicU64,
    /// When the next downstream byte may leave (the pacer's virtual clock).
    next_free: Mutex<Instant>,
    /// Time since the leecher's first connection during which this link had nothing to send
    /// although the seeder was there: capacity the leecher left unused (a pipeline too short,
    /// a late connection, a piece picked elsewhere).
    idle_ns: AtomicU64,
    /// Every socket of the current run, to cut them all when the seeder leaves.
    streams: Mutex<Vec<TcpStream>>,
}

pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl Proxy {
    /// Listens on `listen` and forwards to `seeder` over `link`, counting into `run`.
    pub fn start(listen: SocketAddr, seeder: SocketAddr, link: Link, run: Arc<RunStats>) -> Proxy {
        let listener = TcpListener::bind(listen)
            .unwrap_or_else(|e| panic!("proxy cannot listen on {listen}: {e}"));
        let state = Arc::new(State {
            link,
            seeder,
            run,
            gone: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            next_free: Mutex::new(Instant::now()),
            idle_ns: AtomicU64::new(0),
            streams: Mutex::new(Vec::new()),
        });
        let accepting = Arc::clone(&state);
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                if accepting.gone_now() {
                    continue; // dropped: the seeder has left
                }
                let st = Arc::clone(&accepting);
                thread::spawn(move || connect(st, conn));
            }
        });
        Proxy {
            addr: listen,
            state,
        }
    }

    /// Seconds this link idled in the current run (see `State::idle_ns`).
    pub fn idle(&self) -> f64 {
        self.state.idle_ns.load(Ordering::SeqCst) as f64 / 1e9
    }

    /// Back to a present seeder with no connections and an idle pacer, for the next leecher.
    pub fn reset(&self) {
        self.state.epoch.fetch_add(1, Ordering::SeqCst);
        self.state.cut();
        *self.state.next_free.lock().expect("pacer lock") = Instant::now();
        self.state.idle_ns.store(0, Ordering::SeqCst);
        self.state.gone.store(false, Ordering::SeqCst);
    }
}

impl State {
    fn cut(&self) {
        for s in self.streams.lock().expect("streams lock").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Leaves (once) if its time has come; true if gone.
    fn gone_now(&self) -> bool {
        if self.gone.load(Ordering::SeqCst) {
            return true;
        }
        let due = self.link.leave_after.is_some_and(|after| {
            self.run
                .first_connect()
                .is_some_and(|first| first.elapsed() >= after)
        });
        if due {
            self.gone.store(true, Ordering::SeqCst);
            self.cut();
        }
        due
    }

    /// Waits until `len` bytes fit the seeder's upload rate.
    fn pace(&self, len: usize) {
        let start = {
            let mut next = self.next_free.lock().expect("pacer lock");
            let now = Instant::now();
            let since = self.run.first_connect().map_or(now, |f| f.max(*next));
            let idle = now.saturating_duration_since(since).as_nanos() as u64;
            self.idle_ns.fetch_add(idle, Ordering::SeqCst);
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(len as f64 / self.link.rate as f64);
            start
        };
        sleep_until(start);
    }
}

fn connect(st: Arc<State>, leecher: TcpStream) {
    let epoch = st.epoch.load(Ordering::SeqCst);
    st.run
        .first_connect
        .lock()
        .expect("stats lock")
        .get_or_insert_with(Instant::now);
    let Ok(seeder) = TcpStream::connect_timeout(&st.seeder, Duration::from_secs(5)) else {
        return;
    };
    let _ = leecher.set_nodelay(true);
    let _ = seeder.set_nodelay(true);
    let clones = (|| {
        Some((
            leecher.try_clone().ok()?,
            seeder.try_clone().ok()?,
            leecher.try_clone().ok()?,
            seeder.try_clone().ok()?,
        ))
    })();
    let Some((l2, s2, l3, s3)) = clones else {
        return;
    };
    st.streams.lock().expect("streams lock").extend([l3, s3]);
    let up = Arc::clone(&st);
    thread::spawn(move || pipe(&up, leecher, s2, false, epoch));
    pipe(&st, seeder, l2, true, epoch);
}

/// Forwards `from` to `to`, each chunk RTT/2 after it was read; `down` is the paced, counted
/// direction (seeder to leecher). Stops once the proxy was reset after `epoch`.
fn pipe(st: &State, mut from: TcpStream, mut to: TcpStream, down: bool, epoch: u64) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let reader = thread::spawn(move || {
        let mut buf = vec![0u8; CHUNK];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    let half = st.link.rtt / 2;
    for (read_at, chunk) in rx {
        sleep_until(read_at + half);
        if st.epoch.load(Ordering::SeqCst) != epoch {
            break;
        }
        if down {
            st.pace(chunk.len());
        }
        if st.gone_now() || to.write_all(&chunk).is_err() {
            break;
        }
        if down {
            st.run.down.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = reader.join();
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        thread::sleep(t - now);
    }
}
