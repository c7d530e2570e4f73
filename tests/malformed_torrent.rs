//! Hostile .torrent files: `rivulet info` and `rivulet download` refuse each with one error line
//! and a non-zero exit, never panic, and write nothing outside the output directory.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::rivulet::{self, Download};
use rivulet_tests::torrent::{InfoDict, edit_info};
use rivulet_tests::workdir::{WorkDir, tree};
use serde_bencode::value::Value;

fn base(fixture: &Fixture, dir: &Path) -> Vec<u8> {
    let path = fixture.torrent("http://127.0.0.1:1/announce", "base", dir);
    std::fs::read(path).expect("read base torrent")
}

fn set(info: &mut InfoDict, key: &str, v: Value) {
    info.insert(key.as_bytes().to_vec(), v);
}

fn bytes(s: &str) -> Value {
    Value::Bytes(s.as_bytes().to_vec())
}

/// Sets the path of file `index` of a multi-file torrent.
fn set_path(info: &mut InfoDict, index: usize, path: &[&str]) {
    let Some(Value::List(files)) = info.get_mut(&b"files"[..]) else {
        panic!("not a multi-file torrent")
    };
    let Value::Dict(file) = &mut files[index] else {
        panic!("file entry is not a dictionary")
    };
    file.insert(
        b"path".to_vec(),
        Value::List(path.iter().map(|c| bytes(c)).collect()),
    );
}

fn cases(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let single = base(Fixture::single_small(), dir);
    let multi = base(Fixture::multi_small(), dir);
    let pieces = |b: &[u8]| {
        let mut p = None;
        edit_info(b, |info| p = info.get(&b"pieces"[..]).cloned());
        match p {
            Some(Value::Bytes(p)) => p,
            _ => panic!("no pieces"),
        }
    };
    let (sp, mp) = (pieces(&single), pieces(&multi));
    vec![
        ("empty", Vec::new()),
        ("not-bencode", b"this is not a torrent\n".to_vec()),
        ("truncated", single[..single.len() / 2].to_vec()),
        ("truncated-multi", multi[..multi.len() - 1].to_vec()),
        ("top-level-list", b"l4:infoe".to_vec()),
        (
            "info-not-a-dict",
            b"d8:announce27:http://127.0.0.1:1/announce4:infoi42ee".to_vec(),
        ),
        (
            "piece-length-is-a-string",
            edit_info(&single, |i| set(i, "piece length", bytes("65536"))),
        ),
        (
            "piece-length-zero",
            edit_info(&single, |i| set(i, "piece length", Value::Int(0))),
        ),
        (
            "name-is-an-integer",
            edit_info(&single, |i| set(i, "name", Value::Int(7))),
        ),
        (
            "negative-length",
            edit_info(&single, |i| set(i, "length", Value::Int(-1))),
        ),
        (
            "files-is-a-dict",
            edit_info(&multi, |i| set(i, "files", Value::Dict(HashMap::new()))),
        ),
        (
            "piece-hashes-not-multiple-of-20",
            edit_info(&single, |i| {
                set(i, "pieces", Value::Bytes(sp[..sp.len() - 7].to_vec()))
            }),
        ),
        (
            "too-few-piece-hashes",
            edit_info(&multi, |i| {
                set(i, "pieces", Value::Bytes(mp[..mp.len() - 20].to_vec()))
            }),
        ),
        ("empty-path", edit_info(&multi, |i| set_path(i, 1, &[]))),
    ]
}

/// Torrents whose names would leave the output directory: loaded with safe names, each
/// change shown (the download side is in tests/hostile_torrents.rs).
fn renamed_cases(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let single = base(Fixture::single_small(), dir);
    let multi = base(Fixture::multi_small(), dir);
    vec![
        (
            "name-dot-dot",
            edit_info(&single, |i| set(i, "name", bytes(".."))),
        ),
        (
            "name-with-slash",
            edit_info(&single, |i| set(i, "name", bytes("../evil.txt"))),
        ),
        (
            "path-traversal",
            edit_info(&multi, |i| set_path(i, 1, &["..", "..", "evil.txt"])),
        ),
        (
            "path-component-with-slash",
            edit_info(&multi, |i| set_path(i, 1, &["dir", "../../evil.txt"])),
        ),
        (
            "absolute-path",
            edit_info(&multi, |i| set_path(i, 1, &["/tmp", "evil.txt"])),
        ),
    ]
}

#[test]
fn info_shows_unsafe_names_made_safe_and_marks_them() {
    let work = WorkDir::new("malformed-renamed");
    for (name, data) in renamed_cases(work.path()) {
        let path = work.join(&format!("{name}.torrent"));
        std::fs::write(&path, data).expect("write case");
        let finished = rivulet::info(work.path(), &path);
        assert!(
            finished.status.success(),
            "info {name} failed: {}",
            finished.stderr
        );
        let out = &finished.stdout;
        assert!(
            out.contains("renamed; the torrent says"),
            "info {name}:\n{out}"
        );
        for line in out.lines().filter(|l| !l.contains("renamed")) {
            assert!(
                !line.contains("../") && !line.trim_start().starts_with('/'),
                "info {name} shows an escaping name: {line}"
            );
        }
    }
}

#[test]
fn info_refuses_malformed_torrents() {
    let work = WorkDir::new("malformed-info");
    for (name, data) in cases(work.path()) {
        let path = work.join(&format!("{name}.torrent"));
        std::fs::write(&path, data).expect("write case");
        rivulet::info(work.path(), &path).assert_clean_failure(&format!("info {name}"));
    }
}

#[test]
fn download_refuses_malformed_torrents_and_writes_nothing_outside() {
    let work = WorkDir::new("malformed-download");
    let torrents = work.subdir("torrents");
    for (name, data) in cases(&torrents) {
        let torrent = torrents.join(format!("{name}.torrent"));
        std::fs::write(&torrent, data).expect("write case");
        // out sits two levels down so that a `..` escape lands in a directory we watch.
        let cage = work.subdir(&format!("cage-{name}"));
        let out = cage.join("inner/out");
        std::fs::create_dir_all(&out).expect("mkdir out");
        let logs = work.subdir(&format!("logs-{name}"));
        let finished = rivulet::run(
            &logs,
            "download",
            Download::new(&torrent, &out).args(),
            Duration::from_secs(20),
        );
        finished.assert_clean_failure(&format!("download {name}"));
        let outside: Vec<String> = tree(&cage)
            .into_iter()
            .filter(|p| p != "inner" && p != "inner/out" && !p.starts_with("inner/out/"))
            .collect();
        assert!(
            outside.is_empty(),
            "download {name} wrote outside its output dir: {outside:?}"
        );
    }
    let evil: Vec<String> = tree(work.path())
        .into_iter()
        .filter(|p| p.ends_with("evil.txt"))
        .collect();
    assert!(evil.is_empty(), "a traversal path was written: {evil:?}");
    assert!(
        !Path::new("/tmp/evil.txt").exists(),
        "an absolute path was written: /tmp/evil.txt"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random byte flips of a valid torrent: `info` either succeeds or fails cleanly.
    #[test]
    fn info_never_panics_on_mutated_torrents(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let work = WorkDir::new("malformed-fuzz");
        let mut data = base(Fixture::multi_small(), work.path());
        for (at, byte) in flips {
            let i = at.index(data.len());
            data[i] = byte;
        }
        let path = work.join("mutated.torrent");
        std::fs::write(&path, &data).expect("write mutated torrent");
        let finished = rivulet::info(work.path(), &path);
        prop_assert!(!finished.stderr.contains("panicked"), "panic: {}", finished.stderr);
        if !finished.status.success() {
            finished.assert_clean_failure("info on a mutated torrent");
        }
    }
}
