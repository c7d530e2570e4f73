//! Peer exchange (BEP 11) against real libtorrent peers, with no tracker, DHT or LSD to find
//! peers any other way: rivulet is given one peer, learns a second through its ut_pex list,
//! connects to it and downloads everything from it; and rivulet's own lists make two
//! libtorrent peers that were never told of each other connect. A raw peer sees what rivulet
//! sends: a list naming its other peer for a public torrent, no ut_pex at all for a private one.
//!
//! The fixture moves over loopback in under 0.1 s, and a peer drops another once both are
//! complete; rate limits keep the swarms incomplete long enough for a list to be sent.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use rivulet_core::wire::{ExtHandshake, PexMsg};
use rivulet_tests::dht::{private_trackerless_torrent, trackerless_torrent};
use rivulet_tests::fixture::Fixture;
use rivulet_tests::libtorrent::{LibtorrentNode, SwarmPeer};
use rivulet_tests::ports::{free_addr, own_loopback};
use rivulet_tests::process::wait_for;
use rivulet_tests::raw_peer::RawPeer;
use rivulet_tests::rivulet::{self, Download};
use rivulet_tests::torrent::TorrentInfo;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::wire;
use rivulet_tests::workdir::WorkDir;
use serde_json::Value;

const BOUND: Duration = Duration::from_secs(180);
/// libtorrent's first list goes a second after the extension handshake, ours two seconds
/// after; a dial and a handshake on loopback take milliseconds.
const LEARN: Duration = Duration::from_secs(60);
/// A seed's answers to a raw peer.
const ANSWER: Duration = Duration::from_secs(15);
/// Nobody listens here: peers come only from `--peer` and peer exchange.
const DEAD_TRACKER: &str = "http://127.0.0.1:9/announce";

/// Bytes of the files under `dir` (libtorrent creates the torrent's directories at once).
fn bytes_under(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// Whether `node` is connected to `other`'s listen address, learnt through peer exchange.
fn learnt_through_pex(node: &LibtorrentNode, other: SocketAddr) -> bool {
    node.events().iter().any(|e| {
        e["event"] == "peers"
            && e["peers"].as_array().is_some_and(|peers| {
                peers.iter().any(|p| {
                    p["addr"] == other.to_string().as_str()
                        && p["source"]
                            .as_array()
                            .is_some_and(|s| s.iter().any(|s| s == "pex"))
                })
            })
    })
}

fn ip_of(peer: &Value) -> Option<IpAddr> {
    peer["addr"]
        .as_str()
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .map(|a| a.ip())
}

#[test]
fn a_peer_learnt_only_through_pex_is_connected_and_serves_the_whole_download() {
    let fixture = Fixture::multi_small();
    let work = WorkDir::new("pex-learn");
    let torrent = fixture.torrent(DEAD_TRACKER, "pex", work.path());
    // The peer rivulet is given has no data and asks for none: everything rivulet gets comes
    // from the seeder it can only have learnt of through this peer's ut_pex list. The seeder
    // dials it (a peer in upload mode does not dial seeds); it names its listen port in its
    // extension handshake, which is how the middle peer can pass it on.
    let empty = work.subdir("middle-data");
    let mut middle = LibtorrentNode::start_peer(
        work.path(),
        own_loopback(),
        SwarmPeer {
            upload_mode: true,
            ..SwarmPeer::leecher(&torrent, &empty)
        },
    );
    let seeder = LibtorrentNode::start_peer(
        work.path(),
        own_loopback(),
        SwarmPeer {
            connect: vec![middle.addr],
            ..SwarmPeer::seeder(&torrent, &fixture.root)
        },
    );
    let seeder_addr = seeder.addr.to_string();
    let seeder_ip = seeder.addr.ip();
    middle.wait_peer(LEARN, "the seeder to connect to the middle peer", |p| {
        ip_of(p) == Some(seeder_ip)
    });

    let out = work.subdir("out");
    let download = Download::new(&torrent, &out)
        .listen(free_addr(own_loopback()))
        .peer(middle.addr)
        .no_dht()
        .events(&work.join("events.jsonl"));
    assert!(
        !download
            .args()
            .iter()
            .any(|a| a.to_string_lossy().contains(&seeder_addr)),
        "the seeder's address must not be given to rivulet"
    );
    let mut leecher = download.spawn(work.path(), "leecher");
    leecher.wait_success(BOUND);
    assert_same_files(
        fixture,
        &out,
        "rivulet leecher of a seeder learnt through PEX",
    );

    let events = leecher.events();
    let middle_addr = middle.addr.to_string();
    assert!(
        events
            .of("pex_peers")
            .any(|e| e["from"] == middle_addr.as_str()),
        "no pex_peers event from {middle_addr}:\n{}",
        events.tail(30)
    );
    assert!(
        events.addrs("peer_connected").contains(&seeder_addr),
        "rivulet never connected to the seeder {seeder_addr}:\n{}",
        events.tail(30)
    );
    // The middle peer is in upload mode with an empty directory: it still has nothing, so the
    // data rivulet verified came from the seeder.
    assert_eq!(
        bytes_under(&empty),
        0,
        "the middle peer downloaded something"
    );
}

#[test]
fn rivulet_tells_a_libtorrent_peer_of_another_it_never_heard_of() {
    let fixture = Fixture::multi_small();
    let work = WorkDir::new("pex-tell");
    let torrent = fixture.torrent(DEAD_TRACKER, "pex-tell", work.path());
    let seeder = LibtorrentNode::start_peer(
        work.path(),
        own_loopback(),
        SwarmPeer::seeder(&torrent, &fixture.root),
    );
    let empty = work.subdir("leecher-data");
    let leecher = LibtorrentNode::start_peer(
        work.path(),
        own_loopback(),
        SwarmPeer {
            download_limit: 32 * 1024,
            ..SwarmPeer::leecher(&torrent, &empty)
        },
    );
    // Rivulet dials both, and fetches slowly enough (100 KiB/s, 10 s for the fixture) to be
    // connected to both when its first lists go out 2 s after the handshakes.
    let slow = work.join("slow.toml");
    std::fs::write(&slow, "download_limit_kib = 100\n").expect("write the config");
    let out = work.subdir("out");
    let mut rivulet = Download::new(&torrent, &out)
        .config(&slow)
        .listen(free_addr(own_loopback()))
        .peer(seeder.addr)
        .peer(leecher.addr)
        .no_dht()
        .events(&work.join("events.jsonl"))
        .spawn(work.path(), "rivulet");
    // Neither libtorrent peer was told of the other, and there is no tracker, DHT or LSD: one
    // dialling the other's listen address with "pex" as its source learnt it from rivulet.
    wait_for(
        LEARN,
        "a libtorrent peer to connect to the other through rivulet's ut_pex list",
        || learnt_through_pex(&leecher, seeder.addr) || learnt_through_pex(&seeder, leecher.addr),
    );
    rivulet.wait_success(BOUND);
    assert_same_files(fixture, &out, "rivulet leecher sending PEX");
}

/// What a raw peer that speaks ut_pex heard from a rivulet seed of `torrent` while another raw
/// peer, listening (it says) on port 6881 of `other_ip`, was connected too: rivulet's extension
/// handshake, and its first ut_pex list if one came within `within`.
fn heard_by_a_raw_peer(
    work: &WorkDir,
    torrent: &Path,
    other_ip: IpAddr,
    within: Duration,
) -> (ExtHandshake, Option<PexMsg>) {
    let fixture = Fixture::multi_small();
    let data = work.subdir("data");
    fixture.copy_payload(&data);
    let addr = free_addr(own_loopback());
    let mut seed = rivulet::seed_with(
        work.path(),
        torrent,
        &data,
        addr,
        &work.join("seed-events.jsonl"),
        &["--no-dht"],
    );
    seed.wait_events(LEARN, "the seed to listen", |e| e.has("listening"));
    let info_hash = TorrentInfo::read(torrent).info_hash;
    // Both peers speak ut_pex under id 1 and name their listen port, as clients that dialled
    // out do; the seed can pass them on only through that port.
    let hello = |port: u16| wire::extended(0, format!("d1:md6:ut_pexi1ee1:pi{port}ee").as_bytes());
    let connect = |ip: IpAddr, port: u16| {
        let mut p = RawPeer::connect_from(ip, addr, None).expect("connect to the seed");
        p.exchange_handshakes(&wire::extension_handshake(&info_hash), ANSWER)
            .expect("the seed's handshake");
        p.send(&hello(port)).expect("send the extension handshake");
        p
    };
    let _other = connect(other_ip, 6881);
    let mut peer = connect(own_loopback().into(), 6882);
    let theirs = peer
        .wait_message(wire::EXTENDED, ANSWER)
        .expect("the seed's extension handshake");
    assert_eq!(theirs[0], 0, "the first extension message is the handshake");
    let ours = ExtHandshake::decode(&theirs[1..]).expect("the seed's extension handshake reads");
    let deadline = Instant::now() + within;
    let mut list = None;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match peer.read_message(left) {
            Ok(Some((wire::EXTENDED, m))) if m.first() == Some(&1) => {
                list = Some(PexMsg::decode(&m[1..]).expect("the seed's ut_pex list reads"));
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    seed.proc.assert_running("seeding");
    (ours, list)
}

#[test]
fn a_raw_peer_hears_of_the_other_peers_of_a_public_torrent_but_not_of_a_private_one() {
    let fixture = Fixture::multi_small();
    let work = WorkDir::new("pex-raw-public");
    let other: IpAddr = own_loopback().into();
    let torrent = trackerless_torrent(fixture, work.path());
    let (h, list) = heard_by_a_raw_peer(&work, &torrent, other, LEARN);
    assert!(h.ut_pex.is_some(), "a public torrent advertises ut_pex");
    assert!(h.listen_port.is_some(), "the seed names its listen port");
    let list = list.expect("a ut_pex list from the seed");
    let want = SocketAddr::new(other, 6881);
    assert!(
        list.added.iter().any(|p| p.addr == want),
        "the list names the other peer's listen address {want}: {list:?}"
    );

    // A private torrent (BEP 27): no ut_pex in the handshake, no list however long we wait
    // past the 2 s after which the public torrent's came.
    let work = WorkDir::new("pex-raw-private");
    let torrent = private_trackerless_torrent(fixture, work.path());
    let (h, list) = heard_by_a_raw_peer(&work, &torrent, other, Duration::from_secs(6));
    assert_eq!(h.ut_pex, None, "a private torrent advertises no ut_pex");
    assert_eq!(list, None, "a private torrent sends no ut_pex list");
}
