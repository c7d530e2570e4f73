//! BitTorrent v2 and hybrid torrents made by libtorrent (Debian's python3-libtorrent).
//!
//! A hybrid torrent passes the check that its v1 and v2 halves agree (piece layers against
//! the merkle roots, files on piece boundaries) and downloads through its v1 half from a
//! libtorrent seeder, byte for byte, without storing the pad files libtorrent put between the
//! files; `rivulet seed` serves it to libtorrent, which checks it against both halves. A
//! v2-only torrent (its swarm found by the truncated v2 info-hash, pieces checked by their
//! merkle roots) downloads from libtorrent, through the mount, and is seeded to libtorrent;
//! a piece a seeder corrupted on disk fails its merkle check, the seeder is blamed and the
//! piece comes from an honest one. libtorrent given only a v2 magnet link fetches the info
//! dictionary and then the piece layers from `rivulet seed` (BEP 52 hash requests, answered
//! with merkle proofs), and ends with the same bytes; the other way round, `rivulet download`
//! of a v2 magnet link fetches the info dictionary (checked against its SHA-256) and the layers
//! (each answer's proof checked against its file's root, a peer whose proof fails banned) from
//! libtorrent, caches both, and a restart fetches neither. A v2 `.torrent` written without its
//! piece layers gets them the same way, for a download and for a mount; seeded, it computes
//! them from its files and serves them to libtorrent. A hybrid torrent downloads at once from
//! rtorrent, which speaks v1 only, and libtorrent, each holding one of its files; v2-only and
//! hybrid downloads killed half-way resume without fetching again what they had.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::FileExt;

use rivulet_core::metainfo::{Metainfo, torrent_file};
use rivulet_tests::events::Events;
use rivulet_tests::libtorrent::{LibtorrentNode, SwarmPeer};
use rivulet_tests::metadata_liar::{MetadataLiar, MetadataLie};
use rivulet_tests::mount::MountCmd;
use rivulet_tests::ports::{LOCALHOST, free_addr, own_loopback};
use rivulet_tests::process::{Proc, wait_for};
use rivulet_tests::raw_peer::RawPeer;
use rivulet_tests::resume_check::kill_half_way_then_resume;
use rivulet_tests::rivulet::{self, Download};
use rivulet_tests::rtorrent::Rtorrent;
use rivulet_tests::tracker::Tracker;
use rivulet_tests::workdir::{WorkDir, tree};

/// python3-libtorrent is installed for Debian's python, which need not be the first python3
/// on PATH.
const PYTHON: &str = "/usr/bin/python3";

/// `create ROOT NAME PIECE OUT hybrid|v2 [TRACKER]`: a torrent of ROOT/NAME. `pads TORRENT DIR`:
/// its pad files in DIR, full of zeros, for a client that stores them. `seed TORRENT SAVE IP:PORT
/// [PEER_PORT]`: seeds it on IP:PORT (after fetching it from 127.0.0.1:PEER_PORT if given),
/// says "seeding" once it has all the data, checked. `magnet URI SAVE IP:PORT PEER_PORT`: the
/// same from a magnet link, printing what it sends and gets of metadata and hashes.
const LIBTORRENT: &str = r#"
import os, sys, time, libtorrent as lt
if sys.argv[1] == "create":
    root, name, piece, out, kind = sys.argv[2:7]
    fs = lt.file_storage()
    lt.add_files(fs, root + "/" + name)
    flags = lt.create_torrent.v2_only if kind == "v2" else 0
    t = lt.create_torrent(fs, int(piece), flags=flags)
    if len(sys.argv) > 7:
        t.add_tracker(sys.argv[7])
    lt.set_piece_hashes(t, root)
    open(out, "wb").write(lt.bencode(t.generate()))
elif sys.argv[1] == "pads":
    fs = lt.torrent_info(sys.argv[2]).files()
    for i in range(fs.num_files()):
        if fs.file_flags(i) & lt.file_storage.flag_pad_file:
            at = os.path.join(sys.argv[3], fs.file_path(i))
            os.makedirs(os.path.dirname(at), exist_ok=True)
            with open(at, "wb") as f:
                f.truncate(fs.file_size(i))
else:
    torrent, save, listen = sys.argv[2:5]
    magnet = sys.argv[1] == "magnet"
    settings = {"listen_interfaces": listen, "enable_dht": False,
                "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
                "allow_multiple_connections_per_ip": True}
    if magnet:
        settings["alert_mask"] = lt.alert.category_t.peer_log_notification
    s = lt.session(settings)
    if magnet:
        atp = lt.parse_magnet_uri(torrent)
        atp.save_path = save
        h = s.add_torrent(atp)
    else:
        h = s.add_torrent({"ti": lt.torrent_info(torrent), "save_path": save})
    if len(sys.argv) > 5:
        h.connect_peer(("127.0.0.1", int(sys.argv[5])))
    while not h.status().is_seeding:
        s.wait_for_alert(50)
        for a in s.pop_alerts():
            m = a.message()
            if "HASH" in m or "METADATA" in m:
                print(m, flush=True)
    print("seeding", flush=True)
    while True:
        time.sleep(1)
"#;

fn libtorrent(args: &[&str]) -> Command {
    let mut cmd = Command::new(PYTHON);
    cmd.arg("-c").arg(LIBTORRENT).args(args);
    cmd
}

/// Relative paths and contents of a payload.
type Files = Vec<(&'static str, Vec<u8>)>;

fn payload(root: &Path) -> Files {
    let files = vec![
        (
            "pay/a.bin",
            (0..100_000u32).map(|i| (i * 31 % 253) as u8).collect(),
        ),
        (
            "pay/sub/b.bin",
            (0..50_000u32).map(|i| (i * 17 % 239) as u8).collect(),
        ),
    ];
    write_files(root, &files);
    files
}

/// `files` written below `root`.
fn write_files(root: &Path, files: &[(&str, Vec<u8>)]) {
    for (p, data) in files {
        let at = root.join(p);
        std::fs::create_dir_all(at.parent().expect("parent")).expect("mkdir payload");
        std::fs::write(at, data).expect("write payload");
    }
}

fn create(work: &WorkDir, root: &Path, kind: &str) -> PathBuf {
    create_with(work, root, kind, &[])
}

/// [`create`] with more arguments (a tracker URL).
fn create_with(work: &WorkDir, root: &Path, kind: &str, extra: &[&str]) -> PathBuf {
    let out = work.join(&format!("{kind}.torrent"));
    let root_s = root.to_str().expect("utf-8 path");
    let out_s = out.to_str().expect("utf-8 path");
    let mut args = vec!["create", root_s, "pay", "32768", out_s, kind];
    args.extend(extra);
    let st = libtorrent(&args).status().expect("run python3-libtorrent");
    assert!(
        st.success(),
        "libtorrent could not create the {kind} torrent"
    );
    out
}

/// A work dir named `tag`, the test payload in its `seed/` (the files, as [`payload`] gives
/// them) and a libtorrent-made `kind` torrent of it.
fn made(tag: &str, kind: &str) -> (WorkDir, PathBuf, Files, PathBuf) {
    let work = WorkDir::new(tag);
    let seed_data = work.subdir("seed");
    let files = payload(&seed_data);
    let torrent = create(&work, &seed_data, kind);
    (work, seed_data, files, torrent)
}

/// libtorrent seeding `torrent` from `data` on a free address of `ip`, once it has checked its
/// data; with `peer`, it also connects to that port of 127.0.0.1.
fn lt_seeder(
    work: &WorkDir,
    torrent: &Path,
    data: &Path,
    ip: Ipv4Addr,
    peer: Option<u16>,
) -> (Proc, SocketAddr) {
    let addr = free_addr(ip);
    let mut args = vec![
        "seed".to_string(),
        torrent.to_str().expect("utf-8").to_string(),
        data.to_str().expect("utf-8").to_string(),
        addr.to_string(),
    ];
    args.extend(peer.map(|p| p.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let tag = format!("seeder-{}.log", addr.port());
    let mut seeder = Proc::spawn("libtorrent seeder", libtorrent(&args), &work.join(&tag));
    wait_for(Duration::from_secs(30), "libtorrent to seed", || {
        seeder.assert_running("libtorrent seeder");
        seeder.log_tail(200).contains("seeding")
    });
    (seeder, addr)
}

fn assert_payload(out: &Path, files: &[(&str, Vec<u8>)]) {
    for (p, data) in files {
        let got = std::fs::read(out.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(got == *data, "{p} differs");
    }
}

/// `rivulet download` of a libtorrent-made `kind` torrent from a libtorrent seeder.
fn downloads_from_libtorrent(kind: &str, shown: &str) {
    let (work, seed_data, files, torrent) = made(&format!("{kind}-download"), kind);
    let info = rivulet::info(work.path(), &torrent);
    assert!(info.status.success(), "info refused: {}", info.stderr);
    assert!(info.stdout.contains(shown), "{}", info.stdout);
    let (_seeder, seed_addr) = lt_seeder(&work, &torrent, &seed_data, LOCALHOST, None);
    let out = work.subdir("out");
    let mut dl = Download::new(&torrent, &out)
        .listen(free_addr(LOCALHOST))
        .peer(seed_addr)
        .spawn(work.path(), "download");
    dl.wait_success(Duration::from_secs(60));
    assert_payload(&out, &files);
    let written = tree(&out);
    assert!(
        !written.iter().any(|p| p.contains(".pad")),
        "pad files were stored: {written:?}"
    );
}

#[test]
fn a_libtorrent_hybrid_torrent_downloads_through_v1_from_a_libtorrent_seeder() {
    downloads_from_libtorrent("hybrid", "hybrid");
}

#[test]
fn a_libtorrent_v2_only_torrent_downloads_from_a_libtorrent_seeder() {
    downloads_from_libtorrent("v2", "v2 only");
}

/// `rivulet seed` of a libtorrent-made `kind` torrent to a libtorrent leecher, which checks
/// every piece against its own copy of the torrent.
fn seeds_to_libtorrent(kind: &str) {
    let (work, seed_data, files, torrent) = made(&format!("{kind}-seed"), kind);
    let seed_addr = free_addr(LOCALHOST);
    let mut seed = rivulet::seed(
        work.path(),
        &torrent,
        &seed_data,
        seed_addr,
        &work.join("seed.jsonl"),
    );
    let out = work.subdir("out");
    // The leecher says "seeding" once it holds every piece, checked.
    let (_leecher, _) = lt_seeder(&work, &torrent, &out, LOCALHOST, Some(seed_addr.port()));
    seed.terminate(Duration::from_secs(15));
    assert_payload(&out, &files);
}

#[test]
fn rivulet_seeds_a_libtorrent_hybrid_torrent_to_libtorrent() {
    seeds_to_libtorrent("hybrid");
}

#[test]
fn rivulet_seeds_a_libtorrent_v2_only_torrent_to_libtorrent() {
    seeds_to_libtorrent("v2");
}

#[test]
fn a_v2_only_torrent_reads_byte_identical_through_the_mount() {
    reads_through_the_mount("v2", |_| {});
}

#[test]
fn a_hybrid_torrent_reads_byte_identical_through_the_mount_without_its_pad_files() {
    reads_through_the_mount("hybrid", |mnt| {
        let shown = tree(mnt);
        assert!(shown.iter().any(|p| p.ends_with("b.bin")), "{shown:?}");
        assert!(
            !shown.iter().any(|p| p.contains(".pad")),
            "the mount shows pad files: {shown:?}"
        );
    });
}

/// A libtorrent-made `kind` torrent mounted with a libtorrent seeder: every file reads
/// byte-identical; then `also` looks at the mount point.
fn reads_through_the_mount(kind: &str, also: impl Fn(&Path)) {
    let (work, seed_data, files, torrent) = made(&format!("{kind}-mount"), kind);
    let (_seeder, seed_addr) = lt_seeder(&work, &torrent, &seed_data, LOCALHOST, None);
    let mnt = work.subdir("mnt");
    let mut mounted = MountCmd::new(&torrent, &mnt)
        .listen(free_addr(LOCALHOST))
        .peer(seed_addr)
        .spawn(work.path(), "mount");
    assert_payload(&mnt, &files);
    also(&mnt);
    mounted.terminate(Duration::from_secs(20));
}

#[test]
fn a_v2_piece_corrupted_by_its_seeder_fails_its_merkle_check_and_comes_from_another() {
    let (work, seed_data, files, torrent) = made("v2-corrupt", "v2");
    // On an address of its own: the ban it earns is per address.
    let (_liar, liar_addr) = lt_seeder(&work, &torrent, &seed_data, own_loopback(), None);
    // After libtorrent checked its copy, one byte in each 32 KiB piece of a.bin changes under
    // it: it serves what is on disk (its storage maps the file) without hashing again.
    let a = std::fs::OpenOptions::new()
        .write(true)
        .open(seed_data.join("pay/a.bin"))
        .expect("open the seeder's a.bin");
    let a_len = files[0].1.len() as u64;
    for at in (100..a_len).step_by(32768) {
        let byte = files[0].1[at as usize] ^ 0xff;
        a.write_all_at(&[byte], at).expect("corrupt a.bin");
    }
    a.sync_all().expect("sync a.bin");
    let out = work.subdir("out");
    let events = work.join("events.jsonl");
    let listen = free_addr(LOCALHOST);
    let mut dl = Download::new(&torrent, &out)
        .listen(listen)
        .peer(liar_addr)
        .events(&events)
        .spawn(work.path(), "download");
    dl.wait_events(Duration::from_secs(60), "a failed merkle check", |e| {
        !e.hash_failed().is_empty()
    });
    // An honest seeder, which finds the download through its own connection.
    let honest_data = work.subdir("honest");
    payload(&honest_data);
    let (_honest, _) = lt_seeder(
        &work,
        &torrent,
        &honest_data,
        LOCALHOST,
        Some(listen.port()),
    );
    dl.wait_success(Duration::from_secs(60));
    assert_payload(&out, &files);
    let ev = dl.events();
    let failed = ev.hash_failed();
    // a.bin is pieces 0-3 (it starts the torrent; 100,000 bytes in 32 KiB pieces).
    assert!(
        failed.iter().all(|p| *p < 4),
        "pieces outside a.bin failed: {failed:?}"
    );
    let blamed: Vec<String> = ev
        .of("hash_failed")
        .flat_map(|e| e["peers"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    assert!(
        blamed.contains(&liar_addr.to_string()),
        "blamed {blamed:?}, the liar is {liar_addr}"
    );
}

#[test]
fn a_hybrid_torrent_joins_its_v1_and_its_v2_swarm() {
    let (work, seed_data, _, plain) = made("hybrid-swarms", "hybrid");
    // The info dictionary, so both hashes, does not depend on the tracker named outside it.
    let plain = Metainfo::from_file(&plain).expect("parse");
    let hashes: Vec<[u8; 20]> = plain.swarm_hashes().iter().map(|h| h.0).collect();
    assert_eq!(hashes.len(), 2, "a hybrid torrent has two swarms");
    let tracker = Tracker::start(&work.subdir("tracker"), &hashes);
    let torrent = create_with(&work, &seed_data, "hybrid", &[&tracker.http_url()]);
    let seed_addr = free_addr(LOCALHOST);
    let mut seed = rivulet::seed(
        work.path(),
        &torrent,
        &seed_data,
        seed_addr,
        &work.join("seed.jsonl"),
    );
    for hash in &hashes {
        tracker.wait_lists(hash, seed_addr, Duration::from_secs(30));
    }
    // A peer of the v2 swarm asks by the truncated v2 hash and is answered with it.
    let mut v2_peer = RawPeer::connect(seed_addr).expect("connect to the seed");
    let answered = v2_peer
        .handshake(&hashes[1], Duration::from_secs(10))
        .expect("handshake by the v2 hash");
    assert_eq!(answered, hashes[1]);
    let bitfield = v2_peer
        .wait_message(5, Duration::from_secs(10))
        .expect("the seed's bitfield");
    assert!(!bitfield.is_empty());
    seed.terminate(Duration::from_secs(15));
}

/// A hybrid torrent from two peers that each hold one of its files, found through its tracker:
/// rtorrent, which speaks v1 only and so is met in the v1 swarm, holds `a.bin`; libtorrent, in
/// upload mode (it asks for nothing), holds `b.bin`. Neither can give the whole torrent, and
/// rtorrent cannot pass `b.bin` on in time (its downloads are held to 1 KiB/s), so a byte-exact
/// download took pieces from both swarms' peers at once, checked against one piece space.
#[test]
fn a_hybrid_torrent_downloads_from_a_v1_only_rtorrent_and_a_libtorrent_peer_at_once() {
    let (work, seed_data, files, plain) = made("hybrid-rtorrent", "hybrid");
    let hashes: Vec<[u8; 20]> = Metainfo::from_file(&plain)
        .expect("parse")
        .swarm_hashes()
        .iter()
        .map(|h| h.0)
        .collect();
    let tracker = Tracker::start(&work.subdir("tracker"), &hashes);
    let torrent = create_with(&work, &seed_data, "hybrid", &[&tracker.http_url()]);

    let rt_data = work.subdir("rtorrent-data");
    write_files(&rt_data, &files[..1]);
    let pads = [
        "pads",
        torrent.to_str().expect("utf-8"),
        rt_data.to_str().expect("utf-8"),
    ];
    assert!(libtorrent(&pads).status().expect("python3").success());
    let rtorrent = Rtorrent::start(work.path(), own_loopback(), &torrent, &rt_data);

    let lt_data = work.subdir("libtorrent-data");
    write_files(&lt_data, &files[1..]);
    let mut lt = LibtorrentNode::start_peer(
        work.path(),
        own_loopback(),
        SwarmPeer {
            upload_mode: true,
            ..SwarmPeer::leecher(&torrent, &lt_data)
        },
    );
    lt.wait_checked();

    tracker.wait_lists(&hashes[0], rtorrent.addr, Duration::from_secs(30));
    tracker.wait_lists(&hashes[1], lt.addr, Duration::from_secs(30));
    assert!(
        !tracker.peers(&hashes[1]).contains(&rtorrent.addr),
        "rtorrent is in the v2 swarm"
    );
    let events = download_exact(&work, &torrent, None, &work.subdir("state"), &files, "out");
    let connected = events.addrs("peer_connected");
    for peer in [rtorrent.addr, lt.addr] {
        assert!(
            connected.contains(&peer.to_string()),
            "{peer} never connected: {connected:?}"
        );
    }
}

#[test]
fn a_v2_only_download_killed_half_way_resumes_without_refetching() {
    resumes_after_kill_9("v2");
}

#[test]
fn a_hybrid_download_killed_half_way_resumes_without_refetching() {
    resumes_after_kill_9("hybrid");
}

/// `rivulet download` of a `kind` torrent of 8 MiB (257 pieces) from a libtorrent seeder held to
/// 1 MiB/s, killed with SIGKILL once half of it is verified, then started again: the second run
/// finds the first run's pieces on disk (`resumed`), fetches the rest and ends byte-exact.
fn resumes_after_kill_9(kind: &str) {
    let work = WorkDir::new(&format!("{kind}-resume"));
    let seed_data = work.subdir("seed");
    let files: Files = vec![
        (
            "pay/big.bin",
            (0..(8 << 20) - 70_000u32)
                .map(|i| (i * 13 + i / 4099) as u8)
                .collect(),
        ),
        ("pay/small.bin", vec![b'y'; 70_000]),
    ];
    write_files(&seed_data, &files);
    let torrent = create(&work, &seed_data, kind);
    let pieces = Metainfo::from_file(&torrent).expect("parse").piece_count();
    let seeder = LibtorrentNode::start_peer(
        work.path(),
        own_loopback(),
        SwarmPeer {
            upload_limit: 1 << 20,
            ..SwarmPeer::seeder(&torrent, &seed_data)
        },
    );
    let out = work.subdir("out");
    let state = work.subdir("state");
    let run = |n: u32| {
        Download::new(&torrent, &out)
            .listen(free_addr(LOCALHOST))
            .peer(seeder.addr)
            .state_dir(&state)
            .events(&work.join(&format!("run-{n}.jsonl")))
            .spawn(work.path(), &format!("run-{n}"))
    };
    kill_half_way_then_resume(pieces, Duration::from_secs(60), run);
    assert_payload(&out, &files);
}

/// A v2-only torrent of 601 pieces of 16 KiB in one file, whose layer is asked for 512 hashes
/// at a time (the second answer is the last, padded chunk with a longer proof), and a file of
/// one piece, which has no layer: the data directory, the files and the torrent.
fn many_pieces(work: &WorkDir) -> (PathBuf, Files, PathBuf) {
    many_pieces_as(work, "v2")
}

/// [`many_pieces`] in a `kind` torrent (`v2` or `hybrid`).
fn many_pieces_as(work: &WorkDir, kind: &str) -> (PathBuf, Files, PathBuf) {
    let seed_data = work.subdir("seed");
    let files = vec![
        (
            "pay/big.bin",
            (0..600 * 16384 + 123u32)
                .map(|i| (i * 31 + i / 7) as u8)
                .collect::<Vec<u8>>(),
        ),
        ("pay/small.bin", vec![b'x'; 5000]),
    ];
    write_files(&seed_data, &files);
    let torrent = work.join(&format!("{kind}.torrent"));
    let args = [
        "create",
        seed_data.to_str().expect("utf-8"),
        "pay",
        "16384",
        torrent.to_str().expect("utf-8"),
        kind,
    ];
    assert!(libtorrent(&args).status().expect("python3").success());
    (seed_data, files, torrent)
}

/// `magnet ...` of the script: libtorrent fetching `uri` into `save` from 127.0.0.1:`peer`;
/// returns once it holds every piece, checked.
fn lt_magnet(work: &WorkDir, uri: &str, save: &Path, peer: u16) -> Proc {
    let listen = free_addr(LOCALHOST).to_string();
    let args = [
        "magnet",
        uri,
        save.to_str().expect("utf-8"),
        &listen,
        &peer.to_string(),
    ];
    let mut lt = Proc::spawn(
        "libtorrent magnet",
        libtorrent(&args),
        &work.join("magnet.log"),
    );
    wait_for(Duration::from_secs(90), "libtorrent to finish", || {
        lt.assert_running("libtorrent magnet");
        lt.log_tail(400).contains("seeding")
    });
    lt
}

/// libtorrent given only the v2 magnet link (`v2`: the info-hash in hex) fetching from
/// 127.0.0.1:`peer` into `work`'s `out`, which must end byte-exact.
fn lt_from_v2_link(work: &WorkDir, v2: &str, peer: u16, files: &Files) -> Proc {
    let out = work.subdir("out");
    let lt = lt_magnet(work, &format!("magnet:?xt=urn:btmh:1220{v2}"), &out, peer);
    assert_payload(&out, files);
    lt
}

#[test]
fn libtorrent_given_a_v2_magnet_gets_the_piece_layers_from_rivulet_through_hash_requests() {
    gets_the_piece_layers_from_rivulet("v2");
}

#[test]
fn libtorrent_given_a_hybrid_torrents_v2_magnet_gets_its_piece_layers_from_rivulet() {
    gets_the_piece_layers_from_rivulet("hybrid");
}

/// libtorrent given only the v2 magnet link of a `kind` torrent that `rivulet seed` serves.
fn gets_the_piece_layers_from_rivulet(kind: &str) {
    let work = WorkDir::new(&format!("{kind}-hashes"));
    let (seed_data, files, torrent) = many_pieces_as(&work, kind);
    let meta = Metainfo::from_file(&torrent).expect("parse");
    assert_eq!(meta.piece_layers.len(), 1, "only big.bin has a layer");
    let v2 = meta.info_hash_v2_hex().expect("a v2 torrent");
    let events = work.join("seed.jsonl");
    let seed_addr = free_addr(LOCALHOST);
    let mut seed = rivulet::seed(work.path(), &torrent, &seed_data, seed_addr, &events);
    // A magnet link holds no piece layer: without the hashes from rivulet libtorrent could
    // check no piece of big.bin and would never finish.
    let _lt = lt_from_v2_link(&work, &v2, seed_addr.port(), &files);
    let log = std::fs::read_to_string(work.join("magnet.log")).unwrap_or_default();
    assert!(
        log.contains("UT_METADATA"),
        "metadata not fetched from rivulet:\n{log}"
    );
    assert!(log.contains("<== HASHES"), "no hashes received:\n{log}");
    assert!(!log.contains("HASH_REJECT"), "hashes were rejected:\n{log}");
    let served: Vec<(u64, u64)> = seed
        .events()
        .of("hashes_served")
        .map(|e| (e["index"].as_u64().unwrap(), e["length"].as_u64().unwrap()))
        .collect();
    assert!(
        served.contains(&(0, 512)) && served.contains(&(512, 128)),
        "hashes served: {served:?}"
    );
    seed.terminate(Duration::from_secs(15));
}

/// `rivulet download` of `source` (dialling `peer` too) into `work`'s folder `tag`, its state
/// in `state`: it must end byte-exact. Its events.
fn download_exact(
    work: &WorkDir,
    source: &Path,
    peer: Option<SocketAddr>,
    state: &Path,
    files: &Files,
    tag: &str,
) -> Events {
    let out = work.subdir(tag);
    let mut dl = Download::new(source, &out)
        .listen(free_addr(LOCALHOST))
        .events(&work.join(&format!("{tag}.jsonl")))
        .state_dir(state);
    if let Some(p) = peer {
        dl = dl.peer(p);
    }
    let mut run = dl.spawn(work.path(), tag);
    run.wait_success(Duration::from_secs(60));
    assert_payload(&out, files);
    run.events()
}

#[test]
fn a_v2_magnet_link_downloads_from_libtorrent_with_the_piece_layers_from_hash_requests() {
    let work = WorkDir::new("v2-magnet");
    let (seed_data, files, torrent) = many_pieces(&work);
    let v2 = Metainfo::from_file(&torrent)
        .expect("parse")
        .info_hash_v2_hex()
        .expect("a v2 torrent");
    let (_seeder, seed_addr) = lt_seeder(&work, &torrent, &seed_data, LOCALHOST, None);
    let link = format!("magnet:?xt=urn:btmh:1220{v2}&x.pe={seed_addr}");
    let state = work.subdir("state");
    let download = |tag| download_exact(&work, Path::new(&link), None, &state, &files, tag);
    // big.bin cannot be checked without its layer: two chunks of it, the last padded.
    let first = download("out");
    let fetched: Vec<_> = first.of("piece_layers_fetched").collect();
    assert_eq!(fetched.len(), 1, "{}", first.tail(20));
    assert_eq!(fetched[0]["files"], 1);
    assert_eq!(fetched[0]["hashes"], 601);
    // The layers were cached with the metadata: the next run fetches neither.
    let again = download("again");
    assert!(!again.has("metadata_fetching"), "{}", again.tail(20));
    assert!(!again.has("piece_layers_fetched"));
    // `info --save` writes a .torrent that carries the layers, so it transfers as it is.
    let saved = work.join("saved.torrent");
    let args: Vec<std::ffi::OsString> = vec![
        "info".into(),
        link.clone().into(),
        "--save".into(),
        saved.clone().into(),
        "--state-dir".into(),
        state.into(),
    ];
    let run = rivulet::run(work.path(), "info", &args, Duration::from_secs(20));
    assert!(run.status.success(), "{}", run.stderr);
    let saved = Metainfo::from_file(&saved).expect("the saved torrent parses");
    assert_eq!(saved.info_hash_v2_hex(), Some(v2));
    assert_eq!(saved.missing_piece_layers, 0);
    assert!(!saved.lacks_piece_layers());
}

#[test]
fn a_peer_answering_hash_requests_with_wrong_hashes_is_banned_and_the_layers_come_from_another() {
    let (work, seed_data, files, torrent) = made("v2-magnet-liar", "v2");
    let meta = Metainfo::from_file(&torrent).expect("parse");
    let v2 = meta.info_hash_v2_hex().expect("a v2 torrent");
    // The right metadata, then hashes that prove nothing; on an address of its own (bans are
    // per address), and the only peer until it is banned.
    let liar = MetadataLiar::start(
        own_loopback(),
        meta.info_hash.0,
        meta.info_bytes.to_vec(),
        MetadataLie::WrongHashes,
    );
    let link = format!("magnet:?xt=urn:btmh:1220{v2}&x.pe={}", liar.addr);
    let out = work.subdir("out");
    let listen = free_addr(LOCALHOST);
    let mut dl = Download::new(Path::new(&link), &out)
        .listen(listen)
        .events(&work.join("events.jsonl"))
        .state_dir(&work.subdir("state"))
        .spawn(work.path(), "download");
    dl.wait_events(Duration::from_secs(60), "the liar to be banned", |e| {
        e.addrs("peer_banned").contains(&liar.addr.to_string())
    });
    assert!(liar.record().hash_requests >= 1);
    // An honest seeder, which finds the fetch through its own connection.
    let (_honest, _) = lt_seeder(&work, &torrent, &seed_data, LOCALHOST, Some(listen.port()));
    dl.wait_success(Duration::from_secs(60));
    assert_payload(&out, &files);
    let ev = dl.events();
    let reasons: Vec<String> = ev
        .of("peer_banned")
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("wrong hashes")),
        "{reasons:?}"
    );
    assert!(ev.has("piece_layers_fetched"));
}

/// The torrent of [`many_pieces`] as BEP 52 allows it to be written: without `piece layers`,
/// which peers then have to send (big.bin's 601 hashes; small.bin has none).
fn without_layers(work: &WorkDir, torrent: &Path) -> PathBuf {
    let meta = Metainfo::from_file(torrent).expect("parse");
    let bare = work.join("bare.torrent");
    std::fs::write(&bare, torrent_file(&meta.info_bytes, &[])).expect("write bare.torrent");
    assert!(
        Metainfo::from_file(&bare)
            .expect("parse")
            .lacks_piece_layers()
    );
    bare
}

#[test]
fn a_v2_torrent_without_piece_layers_downloads_with_them_from_libtorrent_and_keeps_them() {
    let work = WorkDir::new("v2-no-layers");
    let (seed_data, files, torrent) = many_pieces(&work);
    let bare = without_layers(&work, &torrent);
    let info = rivulet::info(work.path(), &bare);
    assert!(info.status.success(), "info refused: {}", info.stderr);
    assert!(
        info.stdout.contains(
            "1 piece layers missing: computed from complete files, else fetched from peers"
        ),
        "{}",
        info.stdout
    );
    let (_seeder, seed_addr) = lt_seeder(&work, &torrent, &seed_data, LOCALHOST, None);
    let state = work.subdir("state");
    let download = |tag| download_exact(&work, &bare, Some(seed_addr), &state, &files, tag);
    // Without big.bin's layer no piece of it could be checked: the download would never end.
    let first = download("out");
    let fetched: Vec<_> = first.of("piece_layers_fetched").collect();
    assert_eq!(fetched.len(), 1, "{}", first.tail(20));
    assert_eq!(fetched[0]["hashes"], 601);
    // The layers were kept with the torrent's metadata: the next run asks for none.
    let again = download("again");
    assert!(!again.has("piece_layers_fetched"), "{}", again.tail(20));
}

#[test]
fn a_v2_torrent_without_piece_layers_mounts_and_reads_byte_identical() {
    let work = WorkDir::new("v2-no-layers-mount");
    let (seed_data, files, torrent) = many_pieces(&work);
    let bare = without_layers(&work, &torrent);
    let (_seeder, seed_addr) = lt_seeder(&work, &torrent, &seed_data, LOCALHOST, None);
    let mnt = work.subdir("mnt");
    let mut mounted = MountCmd::new(&bare, &mnt)
        .listen(free_addr(LOCALHOST))
        .peer(seed_addr)
        .env("XDG_STATE_HOME", work.subdir("state"))
        .spawn(work.path(), "mount");
    // The torrent joins the mount once its layers are in; reads then check every piece.
    wait_for(Duration::from_secs(60), "the torrent in the mount", || {
        mnt.join("pay/big.bin").exists()
    });
    assert_payload(&mnt, &files);
    mounted.terminate(Duration::from_secs(20));
}

#[test]
fn a_v2_torrent_without_piece_layers_is_seeded_with_layers_computed_from_its_files() {
    let work = WorkDir::new("v2-no-layers-seed");
    let (seed_data, files, torrent) = many_pieces(&work);
    let bare = without_layers(&work, &torrent);
    let v2 = Metainfo::from_file(&torrent)
        .expect("parse")
        .info_hash_v2_hex()
        .expect("a v2 torrent");
    let seed_addr = free_addr(LOCALHOST);
    let events = work.join("seed.jsonl");
    // A state folder of its own: no layers cached by another test.
    let state = work.subdir("state");
    let state_arg = ["--state-dir", state.to_str().expect("utf-8")];
    let mut seed = rivulet::seed_with(
        work.path(),
        &bare,
        &seed_data,
        seed_addr,
        &events,
        &state_arg,
    );
    seed.wait_listening();
    // No other peer has the layers: libtorrent, given only the link, can check big.bin only
    // with the layer rivulet computed.
    let _lt = lt_from_v2_link(&work, &v2, seed_addr.port(), &files);
    let ev = seed.events();
    let hashed: Vec<_> = ev.of("piece_layers_hashed").collect();
    assert_eq!(hashed.len(), 1, "{}", ev.tail(20));
    assert_eq!(hashed[0]["hashes"], 601);
    assert!(ev.has("hashes_served"), "{}", ev.tail(20));
    seed.terminate(Duration::from_secs(15));
}
