//! BEP 47 file attributes with the real binary: a torrent holding a pad file, a symlink and an
//! executable file. The mount shows the link as a link to a path inside the torrent, the
//! executable with its `x` bits and no pad file; `rivulet seed` serves the data (the pad's
//! bytes are zeros it never stored) and `rivulet download` gets it byte for byte, creates the
//! link, marks the executable and stores no pad file.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use rivulet_tests::mount::MountCmd;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::rivulet::{self, Download};
use rivulet_tests::workdir::{WorkDir, tree};
use serde_bencode::value::Value;
use sha1::{Digest, Sha1};

const PIECE: usize = 16 << 10;

fn b(s: &str) -> Value {
    Value::Bytes(s.as_bytes().to_vec())
}

fn entry(path: &[&str], length: usize, attr: &str, link: Option<&[&str]>) -> Value {
    let mut d = HashMap::new();
    d.insert(b"length".to_vec(), Value::Int(length as i64));
    d.insert(
        b"path".to_vec(),
        Value::List(path.iter().map(|c| b(c)).collect()),
    );
    if !attr.is_empty() {
        d.insert(b"attr".to_vec(), b(attr));
    }
    if let Some(t) = link {
        d.insert(
            b"symlink path".to_vec(),
            Value::List(t.iter().map(|c| b(c)).collect()),
        );
    }
    Value::Dict(d)
}

/// (torrent, data of `t/a.bin`, data of `t/bin/run`): a.bin is padded to a piece boundary.
fn torrent() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    // The pad covers the rest of piece 0 and all of piece 1.
    let a: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let run: Vec<u8> = (0..9_000u32).map(|i| (i * 13 % 241) as u8).collect();
    let pad = 2 * PIECE - a.len();
    let mut space = a.clone();
    space.extend(std::iter::repeat_n(0u8, pad));
    space.extend(&run);
    let pieces: Vec<u8> = space
        .chunks(PIECE)
        .flat_map(|c| Sha1::digest(c).to_vec())
        .collect();
    let files = vec![
        entry(&["a.bin"], a.len(), "", None),
        entry(&[".pad", &pad.to_string()], pad, "p", None),
        entry(&["bin", "run"], run.len(), "x", None),
        entry(&["links", "to-a"], 0, "l", Some(&["a.bin"])),
    ];
    let mut info = HashMap::new();
    info.insert(b"name".to_vec(), b("t"));
    info.insert(b"piece length".to_vec(), Value::Int(PIECE as i64));
    info.insert(b"pieces".to_vec(), Value::Bytes(pieces));
    info.insert(b"files".to_vec(), Value::List(files));
    let mut top = HashMap::new();
    top.insert(b"announce".to_vec(), b("http://127.0.0.1:1/announce"));
    top.insert(b"info".to_vec(), Value::Dict(info));
    let bytes = serde_bencode::to_bytes(&Value::Dict(top)).expect("encode torrent");
    (bytes, a, run)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

#[test]
fn the_mount_shows_links_inside_the_torrent_executables_and_no_pad_files() {
    let work = WorkDir::new("bep47-mount");
    let (bytes, _, _) = torrent();
    let t = work.join("t.torrent");
    std::fs::write(&t, bytes).expect("write torrent");
    let mut mount = MountCmd::new(&t, &work.subdir("mnt"))
        .data(&work.subdir("data"))
        .lazy()
        .spawn(work.path(), "mount");
    let link = mount.path("t/links/to-a");
    assert_eq!(
        std::fs::read_link(&link).expect("readlink"),
        Path::new("../a.bin")
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(mode(&mount.path("t/bin/run")), 0o555);
    assert_eq!(mode(&mount.path("t/a.bin")), 0o444);
    let names: Vec<String> = std::fs::read_dir(mount.path("t"))
        .expect("list t")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("pad")),
        "pad file shown: {names:?}"
    );
    mount.terminate(Duration::from_secs(20));
}

#[test]
fn pad_files_are_never_stored_and_links_are_created_on_download() {
    let work = WorkDir::new("bep47-download");
    let (bytes, a, run) = torrent();
    let t = work.join("t.torrent");
    std::fs::write(&t, bytes).expect("write torrent");
    let seed_data = work.subdir("seed");
    std::fs::create_dir_all(seed_data.join("t/bin")).expect("mkdir seed");
    std::fs::write(seed_data.join("t/a.bin"), &a).expect("write a");
    std::fs::write(seed_data.join("t/bin/run"), &run).expect("write run");
    let seed_addr = free_addr(LOCALHOST);
    let mut seed = rivulet::seed(
        work.path(),
        &t,
        &seed_data,
        seed_addr,
        &work.join("seed.jsonl"),
    );
    let out = work.subdir("out");
    let mut dl = Download::new(&t, &out)
        .listen(free_addr(LOCALHOST))
        .peer(seed_addr)
        .spawn(work.path(), "download");
    dl.wait_success(Duration::from_secs(60));
    seed.terminate(Duration::from_secs(15));
    assert_eq!(std::fs::read(out.join("t/a.bin")).expect("a.bin"), a);
    assert_eq!(std::fs::read(out.join("t/bin/run")).expect("run"), run);
    assert_eq!(
        mode(&out.join("t/bin/run")) & 0o111,
        0o111,
        "run is not executable"
    );
    assert_eq!(mode(&out.join("t/a.bin")) & 0o111, 0, "a.bin is executable");
    assert_eq!(
        std::fs::read_link(out.join("t/links/to-a")).expect("link"),
        Path::new("../a.bin")
    );
    assert_eq!(
        std::fs::read(out.join("t/links/to-a")).expect("through link"),
        a
    );
    let written = tree(&out);
    assert!(
        !written.iter().any(|p| p.contains("pad")),
        "a pad file was stored: {written:?}"
    );
}
