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
