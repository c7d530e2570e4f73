//! `rivulet info` prints what a torrent holds: name, info-hash, piece size and count, the file
//! tree with sizes, and the trackers.

use rivulet_tests::fixture::Fixture;
use rivulet_tests::rivulet;
use rivulet_tests::workdir::WorkDir;

fn check(test: &str, fixture: &Fixture, piece_size_forms: &[&str]) {
    let work = WorkDir::new(test);
    let announce = "udp://127.0.0.1:6969";
    let torrent = fixture.torrent(announce, "info", work.path());
    let finished = rivulet::info(work.path(), &torrent);
    assert!(
        finished.status.success(),
        "rivulet info failed ({}): {}",
        finished.status,
        finished.stderr
    );
    let out = &finished.stdout;
    let mut want = vec![
        fixture.name().to_string(),
        fixture.info_hash_hex(),
        fixture.meta.piece_count().to_string(),
        announce.to_string(),
    ];
    for f in &fixture.files {
        let file_name = f.rel.file_name().expect("file name").to_string_lossy();
        want.push(file_name.into_owned());
    }
    for w in want {
        assert!(
            out.contains(&w),
            "`rivulet info` does not show {w:?}:\n{out}"
        );
    }
    assert!(
        piece_size_forms.iter().any(|f| out.contains(f)),
        "`rivulet info` does not show the piece size (one of {piece_size_forms:?}):\n{out}"
    );
    assert!(!finished.stderr.contains("panicked"), "{}", finished.stderr);
}

#[test]
fn info_shows_single_file_torrent() {
    check(
        "info-single",
        Fixture::single_small(),
        &["65536", "64 KiB", "64.0 KiB"],
    );
}

#[test]
fn info_shows_multi_file_torrent() {
    check(
        "info-multi",
        Fixture::multi(),
        &["65536", "64 KiB", "64.0 KiB"],
    );
}

#[test]
fn info_escapes_control_characters_from_the_torrent() {
    use rivulet_tests::make_torrent::{PayloadFile, multi_file};
    use serde_bencode::value::Value;

    let work = WorkDir::new("info-escapes");
    let files = [PayloadFile {
        path: vec![b"dir\x1b]0;owned\x07".to_vec(), b"f\x1b[2J".to_vec()],
        data: vec![1; 100],
    }];
    let bytes = multi_file(b"name\x1b[31m", &files, 16384, "http://t/\x1b[5m");
    let Ok(Value::Dict(mut top)) = serde_bencode::from_bytes::<Value>(&bytes) else {
        panic!("the torrent builder made no dictionary");
    };
    top.insert(b"comment".to_vec(), Value::Bytes(b"hi\x1bc\r".to_vec()));
    let torrent = work.join("escapes.torrent");
    std::fs::write(
        &torrent,
        serde_bencode::to_bytes(&Value::Dict(top)).unwrap(),
    )
    .unwrap();

    let finished = rivulet::info(work.path(), &torrent);
    assert!(finished.status.success(), "{}", finished.stderr);
    let out = &finished.stdout;
    assert!(
        !out.chars().any(|c| c.is_control() && c != '\n'),
        "control characters reached the terminal: {out:?}"
    );
    for want in [
        r"name\u{1b}[31m",
        r"hi\u{1b}c\u{d}",
        r"http://t/\u{1b}[5m",
        r"dir\u{1b}]0;owned\u{7}/",
        r"f\u{1b}[2J  100",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
}

/// Every argument and option in `rivulet [COMMAND] --help` has a description.
#[test]
fn every_argument_and_option_in_help_is_described() {
    let work = WorkDir::new("help");
    for command in ["", "info", "download", "seed", "mount", "plugins"] {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        if !command.is_empty() {
            args.push(command.into());
        }
        args.push("--help".into());
        let tag = format!("help-{command}");
        let finished = rivulet::run(work.path(), &tag, &args, std::time::Duration::from_secs(20));
        assert!(finished.status.success(), "{}", finished.stderr);
        let mut section = "";
        let mut entries = 0;
        for line in finished.stdout.lines() {
            if !line.starts_with(' ') {
                section = line;
                continue;
            }
            if !matches!(section, "Arguments:" | "Options:" | "Commands:") {
                continue;
            }
            entries += 1;
            // `  -o, --output <OUTPUT>  Directory ...`: a name, two spaces, the description.
            let described = line
                .trim()
                .split_once("  ")
                .is_some_and(|(_, text)| !text.trim().is_empty());
            assert!(
                described,
                "`rivulet {command} --help`: {line:?} has no description"
            );
        }
        assert!(entries > 1, "no entries in:\n{}", finished.stdout);
    }
    let seed = rivulet::run(
        work.path(),
        "state-dir",
        &["seed".into(), "--help".into()],
        std::time::Duration::from_secs(20),
    );
    assert!(
        seed.stdout.contains("~/.local/state/rivulet"),
        "--state-dir does not name its real default:\n{}",
        seed.stdout
    );
}
