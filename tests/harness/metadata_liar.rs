//! A peer that lies about a torrent's metadata (BEP 9), for what no real client does: it
//! answers the handshake with the extension bit, offers ut_metadata, and then sends wrong
//! bytes, a wrong size, or an endless stream; or the right metadata of a v2 torrent and then
//! hashes (BEP 52) that prove nothing. It records what it was asked, so a test can tell
//! whether the client under test consulted it and dropped it. The wire is written by hand.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::ports::free_port;
use crate::wire;

/// The extended id this peer asks ut_metadata messages to be sent under.
const ITS_UT_METADATA: u8 = 3;
const EXTENDED: u8 = 20;
const HASH_REQUEST: u8 = 21;
const HASHES: u8 = 22;
const TICK: Duration = Duration::from_millis(100);

/// How the peer lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataLie {
    /// The right size, every byte flipped.
    WrongBytes,
    /// Claims 1000 bytes more than the real size and sends that many (the real bytes, then
    /// zeros).
    WrongSize,
    /// Claims 4 GiB of metadata and answers any request with data messages without end.
    Endless,
    /// The right metadata, and every hash request answered with as many hashes as asked for,
    /// all wrong.
    WrongHashes,
}

/// What the liar saw.
#[derive(Clone, Debug, Default)]
pub struct LiarRecord {
    pub connections: u32,
    /// ut_metadata requests received.
    pub requests: u32,
    /// Hash requests received (and answered with wrong hashes).
    pub hash_requests: u32,
    /// Connections the client closed.
    pub closed_by_client: u32,
}

pub struct MetadataLiar {
    pub addr: SocketAddr,
    record: Arc<Mutex<LiarRecord>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl MetadataLiar {
    /// Listens on a free port of `ip` for peers of `info_hash`, whose real info dictionary is
    /// `info`.
    pub fn start(ip: Ipv4Addr, info_hash: [u8; 20], info: Vec<u8>, lie: MetadataLie) -> Self {
        let addr = SocketAddr::from((ip, free_port(ip)));
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("liar bind {addr}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let record = Arc::new(Mutex::new(LiarRecord::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (record.clone(), stop.clone());
        let info = Arc::new(info);
        let acceptor = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        r.lock().expect("record").connections += 1;
                        let (r, s, info) = (r.clone(), s.clone(), info.clone());
                        std::thread::spawn(move || {
                            if serve(stream, info_hash, &info, lie, &r, &s).is_err() {
                                r.lock().expect("record").closed_by_client += 1;
                            }
                        });
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(TICK / 5),
                    Err(_) => std::thread::sleep(TICK),
                }
            }
        });
        MetadataLiar {
            addr,
            record,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn record(&self) -> LiarRecord {
        self.record.lock().expect("record").clone()
    }
}

impl Drop for MetadataLiar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn extended(sub: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![sub];
    p.extend_from_slice(payload);
    wire::message(EXTENDED, &p)
}

fn data_message(piece: u32, total: u64, data: &[u8], to: u8) -> Vec<u8> {
    let mut p = format!("d8:msg_typei1e5:piecei{piece}e10:total_sizei{total}ee").into_bytes();
    p.extend_from_slice(data);
    extended(to, &p)
}

/// Reads one message; `Ok(None)` on a read timeout, `Err` when the client closed.
fn read_message(s: &mut TcpStream) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > 1 << 20 {
        return Err(ErrorKind::InvalidData.into());
    }
    let mut body = vec![0u8; len];
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.read_exact(&mut body)?;
    s.set_read_timeout(Some(TICK))?;
    if body.is_empty() {
        return Ok(Some((255, body)));
    }
    let id = body.remove(0);
    Ok(Some((id, body)))
}

/// The piece a ut_metadata request asks for, read from `...5:piecei<N>e...`.
fn requested_piece(payload: &[u8]) -> Option<u32> {
    let text = String::from_utf8_lossy(payload);
    let rest = text.split("5:piecei").nth(1)?;
    rest.split('e').next()?.parse().ok()
}

/// Serves one connection; `Err` when the client closed it.
fn serve(
    mut s: TcpStream,
    info_hash: [u8; 20],
    info: &[u8],
    lie: MetadataLie,
    record: &Mutex<LiarRecord>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut hs = [0u8; 68];
    s.read_exact(&mut hs)?;
    if wire::handshake_info_hash(&hs) != Some(info_hash) {
        return Ok(());
    }
    s.set_read_timeout(Some(TICK))?;
    let mut ours = wire::handshake(&info_hash);
    ours[20 + 5] |= 0x10;
    s.write_all(&ours)?;
    let lied: Vec<u8> = match lie {
        MetadataLie::WrongBytes => info.iter().map(|b| !b).collect(),
        MetadataLie::WrongSize => {
            let mut v = info.to_vec();
            v.extend(std::iter::repeat_n(0, 1000));
            v
        }
        MetadataLie::Endless | MetadataLie::WrongHashes => info.to_vec(),
    };
    let claimed = match lie {
        MetadataLie::Endless => 4u64 << 30,
        _ => lied.len() as u64,
    };
    let hello = format!("d1:md11:ut_metadatai{ITS_UT_METADATA}ee13:metadata_sizei{claimed}ee");
    s.write_all(&extended(0, hello.as_bytes()))?;
    let mut their_id = None;
    while !stop.load(Ordering::SeqCst) {
        let Some((id, payload)) = read_message(&mut s)? else {
            continue;
        };
        if id == HASH_REQUEST && payload.len() == 48 && lie == MetadataLie::WrongHashes {
            record.lock().expect("record").hash_requests += 1;
            let be = |at: usize| u32::from_be_bytes(payload[at..at + 4].try_into().expect("4"));
            let (length, proof_layers) = (be(40), be(44));
            let uncles = (proof_layers + 1).saturating_sub(length.trailing_zeros());
            let mut answer = payload.clone();
            answer.extend(std::iter::repeat_n(
                0x5a,
                32 * (length + uncles).min(1024) as usize,
            ));
            s.write_all(&wire::message(HASHES, &answer))?;
            continue;
        }
        if id != EXTENDED || payload.is_empty() {
            continue;
        }
        if payload[0] == 0 {
            let text = String::from_utf8_lossy(&payload[1..]).into_owned();
            their_id = text
                .split("11:ut_metadatai")
                .nth(1)
                .and_then(|r| r.split('e').next())
                .and_then(|n| n.parse::<u8>().ok());
            continue;
        }
        let (Some(to), Some(piece)) = (their_id, requested_piece(&payload[1..])) else {
            continue;
        };
        if payload[0] != ITS_UT_METADATA {
            continue;
        }
        record.lock().expect("record").requests += 1;
        let start = piece as usize * 16384;
        let end = (start + 16384).min(lied.len());
        let chunk = lied.get(start..end).unwrap_or_default();
        if lie == MetadataLie::Endless {
            let mut p = piece;
            while !stop.load(Ordering::SeqCst) {
                s.write_all(&data_message(p, claimed, chunk, to))?;
                p = p.wrapping_add(1);
            }
            return Ok(());
        }
        s.write_all(&data_message(piece, claimed, chunk, to))?;
    }
    Ok(())
}
