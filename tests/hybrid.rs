//! BitTorrent v2 and hybrid torrents made by libtorrent (Debian's python3-libtorrent).
//!
//! A hybrid torrent passes the check that its v1 and v2 halves agree (piece layers against
//! the merkle roots, files on piece boundaries) and downloads through its v1 half from a
//! libtorrent seeder, byte for byte, without storing the pad files libtorrent put between the
//! files; `rivulet seed` serves it to libtorrent, which checks it against both halves. A
//! v2-only torrent is described by `rivulet info` and refused by `rivulet download`
//! with a clear "not supported yet".

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::process::{Proc, wait_for};
use rivulet_tests::rivulet::{self, Download};
use rivulet_tests::workdir::{WorkDir, tree};

/// python3-libtorrent is installed for Debian's python, which need not be the first python3
/// on PATH.
const PYTHON: &str = "/usr/bin/python3";

/// `create ROOT NAME PIECE OUT hybrid|v2`: a torrent of ROOT/NAME. `seed TORRENT SAVE PORT
/// [PEER_PORT]`: seeds it on 127.0.0.1:PORT (after fetching it from 127.0.0.1:PEER_PORT if
/// given), says "seeding" once it has all the data, checked.
const LIBTORRENT: &str = r#"
import sys, time, libtorrent as lt
if sys.argv[1] == "create":
    root, name, piece, out, kind = sys.argv[2:7]
    fs = lt.file_storage()
    lt.add_files(fs, root + "/" + name)
    flags = lt.create_torrent.v2_only if kind == "v2" else 0
    t = lt.create_torrent(fs, int(piece), flags=flags)
    lt.set_piece_hashes(t, root)
    open(out, "wb").write(lt.bencode(t.generate()))
else:
    torrent, save, port = sys.argv[2:5]
    s = lt.session({"listen_interfaces": "127.0.0.1:" + port, "enable_dht": False,
                    "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
                    "allow_multiple_connections_per_ip": True})
    h = s.add_torrent({"ti": lt.torrent_info(torrent), "save_path": save})
    if len(sys.argv) > 5:
        h.connect_peer(("127.0.0.1", int(sys.argv[5])))
    while not h.status().is_seeding:
        time.sleep(0.05)
    print("seeding", flush=True)
    while True:
        time.sleep(1)
"#;

fn libtorrent(args: &[&str]) -> Command {
    let mut cmd = Command::new(PYTHON);
    cmd.arg("-c").arg(LIBTORRENT).args(args);
    cmd
}

fn payload(root: &Path) -> Vec<(&'static str, Vec<u8>)> {
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
    for (p, data) in &files {
        let at = root.join(p);
        std::fs::create_dir_all(at.parent().expect("parent")).expect("mkdir payload");
        std::fs::write(at, data).expect("write payload");
    }
    files
}

fn create(work: &WorkDir, root: &Path, kind: &str) -> std::path::PathBuf {
    let out = work.join(&format!("{kind}.torrent"));
    let root_s = root.to_str().expect("utf-8 path");
    let out_s = out.to_str().expect("utf-8 path");
    let st = libtorrent(&["create", root_s, "pay", "32768", out_s, kind])
        .status()
        .expect("run python3-libtorrent");
    assert!(
        st.success(),
        "libtorrent could not create the {kind} torrent"
    );
    out
}

#[test]
fn a_libtorrent_hybrid_torrent_downloads_through_v1_from_a_libtorrent_seeder() {
    let work = WorkDir::new("hybrid-download");
    let seed_data = work.subdir("seed");
    let files = payload(&seed_data);
    let torrent = create(&work, &seed_data, "hybrid");
    let info = rivulet::info(work.path(), &torrent);
    assert!(info.status.success(), "info refused: {}", info.stderr);
    assert!(info.stdout.contains("hybrid"), "{}", info.stdout);

    let seed_addr = free_addr(LOCALHOST);
    let port = seed_addr.port().to_string();
    let cmd = libtorrent(&[
        "seed",
        torrent.to_str().expect("utf-8"),
        seed_data.to_str().expect("utf-8"),
        &port,
    ]);
    let mut seeder = Proc::spawn("libtorrent seeder", cmd, &work.join("seeder.log"));
    wait_for(Duration::from_secs(30), "libtorrent to seed", || {
        seeder.assert_running("libtorrent seeder");
        seeder.log_tail(200).contains("seeding")
    });

    let out = work.subdir("out");
    let mut dl = Download::new(&torrent, &out)
        .listen(free_addr(LOCALHOST))
        .peer(seed_addr)
        .spawn(work.path(), "download");
    dl.wait_success(Duration::from_secs(60));
    for (p, data) in &files {
        let got = std::fs::read(out.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(got == *data, "{p} differs");
    }
    let written = tree(&out);
    assert!(
        !written.iter().any(|p| p.contains(".pad")),
        "pad files were stored: {written:?}"
    );
}

#[test]
fn rivulet_seeds_a_libtorrent_hybrid_torrent_to_libtorrent() {
    let work = WorkDir::new("hybrid-seed");
    let seed_data = work.subdir("seed");
    let files = payload(&seed_data);
    let torrent = create(&work, &seed_data, "hybrid");
    let seed_addr = free_addr(LOCALHOST);
    let mut seed = rivulet::seed(
        work.path(),
        &torrent,
        &seed_data,
        seed_addr,
        &work.join("seed.jsonl"),
    );
    let out = work.subdir("out");
    let leech_port = free_addr(LOCALHOST).port().to_string();
    let cmd = libtorrent(&[
        "seed",
        torrent.to_str().expect("utf-8"),
        out.to_str().expect("utf-8"),
        &leech_port,
        &seed_addr.port().to_string(),
    ]);
    let mut leecher = Proc::spawn("libtorrent leecher", cmd, &work.join("leecher.log"));
    wait_for(Duration::from_secs(60), "libtorrent to complete", || {
        leecher.assert_running("libtorrent leecher");
        leecher.log_tail(200).contains("seeding")
    });
    seed.terminate(Duration::from_secs(15));
    for (p, data) in &files {
        let got = std::fs::read(out.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(got == *data, "{p} differs");
    }
}

#[test]
fn a_v2_only_torrent_is_described_but_not_downloaded_yet() {
    let work = WorkDir::new("v2-only");
    let root = work.subdir("data");
    payload(&root);
    let torrent = create(&work, &root, "v2");
    let info = rivulet::info(work.path(), &torrent);
    assert!(info.status.success(), "info refused: {}", info.stderr);
    assert!(info.stdout.contains("v2 only"), "{}", info.stdout);
    let out = work.subdir("out");
    let finished = rivulet::run(
        work.path(),
        "download",
        Download::new(&torrent, &out).args(),
        Duration::from_secs(20),
    );
    finished.assert_clean_failure("download of a v2-only torrent");
    assert!(
        finished
            .stderr
            .contains("v2-only torrents are not supported yet"),
        "{}",
        finished.stderr
    );
    assert!(tree(&out).is_empty(), "download wrote {:?}", tree(&out));
}
