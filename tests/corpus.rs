//! Every torrent of the shared corpus (`../shared/corpus`: the test torrents of libtorrent,
//! anacrolix/torrent, rqbit, parse-torrent and webtorrent) gets the verdict its own project's
//! tests expect, and the parsed name, files, sizes and piece count where those tests state
//! them. A disagreement fails the test unless `tests/corpus_exceptions.tsv` lists it with a
//! reason; an exception that no longer disagrees fails too, so the table stays true.
//!
//! The corpus is not copied into the repository: it is found beside it, and its absence is a
//! failure, not a skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rivulet_core::metainfo::{Metainfo, Version};

/// The corpus beside the repository (`RIVULET_CORPUS` overrides). It is not part of the
/// repository: a checkout without it skips the test loudly, unless `RIVULET_REQUIRE_CORPUS=1`.
fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("RIVULET_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    if dir.join("expected.tsv").is_file() {
        return Some(dir);
    }
    let missing = format!(
        "the torrent corpus is missing: expected {} (with expected.tsv) beside the repository",
        dir.display()
    );
    assert!(
        std::env::var_os("RIVULET_REQUIRE_CORPUS").is_none_or(|v| v != "1"),
        "{missing}"
    );
    eprintln!("SKIPPED: {missing}");
    None
}

/// (path, verdict) from expected.tsv.
fn expected(dir: &Path) -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(dir.join("expected.tsv")).expect("read expected.tsv");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut cols = l.split('\t');
            let path = cols.next().expect("path column").to_string();
            let verdict = match cols.next() {
                Some("accept") => true,
                Some("reject") => false,
                other => panic!("expected.tsv: bad verdict {other:?} for {path}"),
            };
            (path, verdict)
        })
        .collect()
}

/// (path, aspect) -> reason, from tests/corpus_exceptions.tsv. Aspect is `verdict` or
/// `details`.
fn exceptions() -> BTreeMap<(String, String), String> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus_exceptions.tsv");
    let text = std::fs::read_to_string(&file).expect("read tests/corpus_exceptions.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(
                cols.len() == 3 && !cols[2].trim().is_empty(),
                "corpus_exceptions.tsv: each row is path, aspect, reason: {l:?}"
            );
            (
                (cols[0].to_string(), cols[1].to_string()),
                cols[2].to_string(),
            )
        })
        .collect()
}

fn paths(m: &Metainfo) -> Vec<String> {
    m.files.iter().map(|f| f.path.join("/")).collect()
}

fn one_file(m: &Metainfo, name: &str, len: u64) -> Result<(), String> {
    let got: Vec<(String, u64)> = m
        .files
        .iter()
        .map(|f| (f.path.join("/"), f.length))
        .collect();
    if got != [(name.to_string(), len)] {
        return Err(format!("files {got:?}, want one {name:?} of {len} bytes"));
    }
    Ok(())
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

/// What the source projects' tests state about a torrent beyond its verdict (expected.tsv's
/// notes), as a check of the parse.
fn details(path: &str, m: &Metainfo) -> Result<(), String> {
    let ih = m.info_hash.hex();
    let file_paths = paths(m);
    let ih_is = |want: &str| check(ih == want, || format!("info-hash {ih}, want {want}"));
    let paths_are = |want: &[&str]| {
        check(file_paths == want, || {
            format!("files {file_paths:?}, want {want:?}")
        })
    };
    let links: Vec<(String, String)> = m
        .symlinks
        .iter()
        .map(|s| (s.path.join("/"), s.target.join("/")))
        .collect();
    let url_list = |n: usize| {
        check(m.url_list.len() == n, || {
            format!("url-list {:?}", m.url_list)
        })
    };
    match path.rsplit_once("torrents/").map_or(path, |(_, p)| p) {
        "anacrolix/SKODAOCTAVIA336x280_archive.torrent" => {
            url_list(3)?;
            ih_is("d4b197dff199aad447a9a352e31528adbbd97922")
        }
        "anacrolix/bootstrap.dat.torrent" => {
            check(m.name == "bootstrap.dat", || format!("name {}", m.name))?;
            let n: usize = m.trackers.iter().map(Vec::len).sum();
            check(n == 5, || format!("{n} trackers, want 5"))?;
            ih_is("36719ba2cecf9f3bd7c5abfb7a88e939611b536c")
        }
        "anacrolix/debian-10.8.0-amd64-netinst.iso.torrent" => {
            check(m.name == "debian-10.8.0-amd64-netinst.iso", || {
                m.name.clone()
            })?;
            ih_is("4090c3c2a394a49974dfbbf2ce7ad0db3cdeddd7")
        }
        "anacrolix/flat-url-list.torrent" => {
            url_list(1)?;
            ih_is("9da24e606e4ed9c7b91c1772fb5bf98f82bd9687")
        }
        "anacrolix/issue_65a.torrent" => {
            check(m.trackers.len() == 5, || format!("tiers {:?}", m.trackers))
        }
        "anacrolix/issue-949.torrent" => check(m.version == Version::Hybrid, || {
            format!("version {:?}", m.version)
        }),
        "libtorrent/creation_date.torrent" => check(m.creation_date == Some(1234567), || {
            format!("{:?}", m.creation_date)
        }),
        "libtorrent/duplicate_files.torrent" => {
            paths_are(&["temp/foo/bar.txt", "temp/foo/bar.1.txt"])
        }
        "libtorrent/invalid_directory_name.torrent" => paths_are(&["test2/_/foo", "test2/_/foo.1"]),
        "libtorrent/invalid_name2.torrent" => {
            check(m.name == "b61560c2918f463768cd122b6d2fdd47b77bdb35", || {
                format!("name {}", m.name)
            })
        }
        "libtorrent/invalid_name3.torrent" => check(m.name == "foobar ", || m.name.clone()),
        "libtorrent/large_piece_size.torrent" => check(m.piece_length == 32767 * 16384, || {
            format!("piece length {}", m.piece_length)
        }),
        "libtorrent/long_name.torrent" => check(
            m.files
                .iter()
                .all(|f| f.path.iter().all(|c| c.len() <= 255)),
            || format!("a component over 255 bytes: {file_paths:?}"),
        ),
        "libtorrent/pad_file.torrent" | "libtorrent/pad_file_no_path.torrent" => check(
            m.files.len() == 1 && !file_paths[0].contains("padding"),
            || format!("pad file shown: {file_paths:?}"),
        ),
        "libtorrent/parent_path.torrent" => paths_are(&["temp/bar"]),
        "libtorrent/sample.torrent" => {
            paths_are(&["sample/text_file2.txt", "sample/text_file.txt"])
        }
        "libtorrent/symlink1.torrent" | "libtorrent/symlink_zero_size.torrent" => {
            check(m.files.len() == 1, || format!("files {file_paths:?}"))?;
            check(links.len() == 1 && links[0].1 == "temp/a/b/bar", || {
                format!("symlinks {links:?}, want one to temp/a/b/bar")
            })
        }
        "libtorrent/symlink2.torrent" => check(
            m.files.len() + m.symlinks.len() == 5
                && links
                    .iter()
                    .any(|l| l.1 == "Some.framework/Versions/A/SDL2"),
            || format!("files {file_paths:?} symlinks {links:?}"),
        ),
        "libtorrent/url_seed.torrent" => check(m.url_list == ["http://test.com/file"], || {
            format!("url-list {:?}", m.url_list)
        }),
        "libtorrent/whitespace_url.torrent" => check(
            m.trackers
                .first()
                .and_then(|t| t.first())
                .map(String::as_str)
                == Some("udp://test.com/announce"),
            || format!("trackers {:?}", m.trackers),
        ),
        "libtorrent/v2.torrent" => {
            check(m.version == Version::Hybrid, || format!("{:?}", m.version))?;
            let v2 = m.info_hash_v2_hex().unwrap_or_default();
            check(v2.starts_with("597b180c"), || format!("v2 info-hash {v2}"))?;
            one_file(m, "test64K", 65536)
        }
        "libtorrent/v2_multipiece_file.torrent" => {
            check(m.version == Version::Hybrid, || format!("{:?}", m.version))?;
            one_file(m, "test1MB", 1048576)
        }
        "libtorrent/v2_only.torrent" => {
            check(m.version == Version::V2, || format!("{:?}", m.version))?;
            one_file(m, "test1MB", 1048576)
        }
        "libtorrent/v2_invalid_filename2.torrent" => {
            paths_are(&["test/_", "test/_.1", "test/stress_test2"])
        }
        // libtorrent's count of 5 includes the 2 pad files it inserts between v2 files; here
        // v2 alignment leaves gaps instead of listing pad files.
        "libtorrent/v2_multiple_files.torrent" => {
            check(m.files.len() == 3, || format!("files {file_paths:?}"))
        }
        "parse-torrent/bitlove-intro.torrent" => {
            ih_is("4cb67059ed6bd08362da625b3ae77f6f4a075705")?;
            one_file(m, "bl001-introduction.webm", 19211729)?;
            check(m.piece_length == 1048576 && m.piece_count() == 19, || {
                format!("{} pieces of {}", m.piece_count(), m.piece_length)
            })?;
            check(m.trackers == [["http://t.bitlove.org/announce"]], || {
                format!("trackers {:?}", m.trackers)
            })
        }
        "parse-torrent/leaves-duplicate-tracker.torrent" => check(
            m.trackers.concat() == ["http://tracker.example.com/announce"],
            || format!("trackers {:?}", m.trackers),
        ),
        "parse-torrent/leaves-empty-announce-list.torrent" => check(
            m.trackers.concat() == ["udp://tracker.publicbt.com:80/announce"],
            || format!("trackers {:?}", m.trackers),
        ),
        "parse-torrent/leaves-empty-url-list.torrent" => url_list(0),
        "rqbit/private.torrent" => check(m.private, || "not private".to_string()),
        "rqbit/ubuntu-21.04-desktop-amd64.iso.torrent" => {
            ih_is("64a980abe6e448226bb930ba061592e44c3781a1")
        }
        _ => Ok(()),
    }
}

/// Every accepted torrent keeps its files inside its folder, in names the kernel takes.
fn assert_safe(path: &str, m: &Metainfo) {
    let all = m
        .files
        .iter()
        .map(|f| &f.path)
        .chain(m.symlinks.iter().flat_map(|s| [&s.path, &s.target]));
    for p in all {
        assert!(!p.is_empty(), "{path}: an empty path");
        for c in p {
            assert!(
                !c.is_empty()
                    && c != "."
                    && c != ".."
                    && !c.contains(['/', '\0'])
                    && c.len() <= 255,
                "{path}: unsafe component {c:?} in {p:?}"
            );
        }
        if m.multi_file {
            assert_eq!(
                p[0], m.name,
                "{path}: {p:?} is outside the torrent's folder"
            );
        }
    }
}

#[test]
fn every_corpus_torrent_gets_the_reference_verdict_and_parse() {
    let Some(dir) = corpus_dir() else { return };
    let exceptions = exceptions();
    let cases = expected(&dir);
    assert!(
        cases.len() >= 150,
        "expected.tsv lists only {} torrents",
        cases.len()
    );
    let mut failures = Vec::new();
    let mut excused = Vec::new();
    let mut agree = 0;
    for (path, accept) in &cases {
        let parsed = Metainfo::from_file(&dir.join(path));
        let mut disagreements: Vec<(&str, String)> = Vec::new();
        match (&parsed, accept) {
            (Ok(m), true) => {
                assert_safe(path, m);
                if let Err(e) = details(path, m) {
                    disagreements.push(("details", e));
                }
            }
            (Err(e), false) => {
                assert!(
                    !e.to_string().contains('\n'),
                    "{path}: error spans lines: {e}"
                );
            }
            (Ok(m), false) => {
                assert_safe(path, m);
                disagreements.push(("verdict", "accepted, reference rejects".to_string()));
            }
            (Err(e), true) => disagreements.push(("verdict", format!("rejected: {e}"))),
        }
        for aspect in ["verdict", "details"] {
            let key = (path.clone(), aspect.to_string());
            let found = disagreements.iter().find(|(a, _)| *a == aspect);
            match (found, exceptions.get(&key)) {
                (Some((_, what)), None) => failures.push(format!("{path} ({aspect}): {what}")),
                (Some((_, what)), Some(_)) => excused.push(format!("{path}: {what}")),
                (None, Some(_)) => failures.push(format!(
                    "{path} ({aspect}): listed in corpus_exceptions.tsv but agrees now"
                )),
                (None, None) => {}
            }
        }
        if disagreements.is_empty() {
            agree += 1;
        }
    }
    eprintln!(
        "corpus: {agree}/{} agree with the reference; {} reasoned exceptions:",
        cases.len(),
        excused.len()
    );
    for e in &excused {
        eprintln!("  {e}");
    }
    for key in exceptions.keys() {
        assert!(
            cases.iter().any(|(p, _)| *p == key.0),
            "corpus_exceptions.tsv names {} which expected.tsv does not list",
            key.0
        );
    }
    assert!(
        failures.is_empty(),
        "{} disagreements with the reference:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
