//! `rivulet seed` never writes to its data and serves only data that verifies: a wrong folder, a
//! truncated file or a changed byte (even under a resume file that vouched for it) is refused
//! before the engine starts, in one line naming the files, and nothing on disk changes.
//! `--download-missing` turns it into a download of what is missing, from a real aria2 seeder.
//! Before the fix the wrong folder got every file created, a truncated file was extended with
//! zeros and the changed piece was served (leechers ban such a seed).

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::rivulet::{self, Finished};
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::{WorkDir, tree};

/// Nothing listens there: a refused seed never gets as far as announcing.
const NO_TRACKER: &str = "http://127.0.0.1:9/announce";

fn seed_to_the_end(work: &WorkDir, tag: &str, torrent: &Path, data: &Path) -> Finished {
    let args: Vec<OsString> = vec![
        "seed".into(),
        torrent.into(),
        "--data".into(),
        data.into(),
        "--listen".into(),
        free_addr(LOCALHOST).to_string().into(),
        "--state-dir".into(),
        work.join("state").into(),
    ];
    rivulet::run(work.path(), tag, &args, Duration::from_secs(60))
}

#[test]
fn seed_of_the_wrong_folder_is_refused_naming_the_files_and_creates_nothing() {
    let fixture = Fixture::multi();
    let work = WorkDir::new("seed-wrong-folder");
    let torrent = fixture.torrent(NO_TRACKER, "seed", work.path());
    let data = work.subdir("somewhere-else");
    std::fs::write(data.join("notes.txt"), b"mine").unwrap();
    let before = tree(&data);

    let run = seed_to_the_end(&work, "seed", &torrent, &data);
    run.assert_clean_failure("seed of the wrong folder");
    for want in [
        "3 of 4 files",
        "multi/c.txt (absent)",
        "multi/dir/sub/b.bin (absent)",
        "--download-missing",
    ] {
        assert!(run.stderr.contains(want), "no {want:?} in {}", run.stderr);
    }
    assert_eq!(tree(&data), before, "seed changed the folder it was given");
}

#[test]
fn seed_of_a_truncated_file_is_refused_and_leaves_the_file_as_it_was() {
    let fixture = Fixture::multi();
    let work = WorkDir::new("seed-truncated");
    let torrent = fixture.torrent(NO_TRACKER, "seed", work.path());
    let data = work.subdir("data");
    fixture.copy_payload(&data);
    let b = data.join("multi/dir/sub/b.bin");
    OpenOptions::new()
        .write(true)
        .open(&b)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let before = std::fs::metadata(&b).unwrap();

    let run = seed_to_the_end(&work, "seed", &torrent, &data);
    run.assert_clean_failure("seed of a truncated file");
    let want = "1 of 4 files";
    assert!(run.stderr.contains(want), "no {want:?} in {}", run.stderr);
    let want = "multi/dir/sub/b.bin (1048576 bytes, not 13631489)";
    assert!(run.stderr.contains(want), "no {want:?} in {}", run.stderr);
    let after = std::fs::metadata(&b).unwrap();
    assert_eq!(after.len(), 1 << 20, "the truncated file was resized");
    assert_eq!(after.modified().unwrap(), before.modified().unwrap());
}

#[test]
fn seed_of_a_changed_byte_is_refused_even_where_a_resume_file_vouched_for_it() {
    let fixture = Fixture::multi();
    let work = WorkDir::new("seed-changed-byte");
    let torrent = fixture.torrent(NO_TRACKER, "seed", work.path());
    let data = work.subdir("data");
    fixture.copy_payload(&data);

    // A first seed checks everything and writes its resume file on the way out.
    let events = work.join("events-1.jsonl");
    let mut first = rivulet::seed_with(
        work.path(),
        &torrent,
        &data,
        free_addr(LOCALHOST),
        &events,
        &["--state-dir", work.join("state").to_str().unwrap()],
    );
    first.wait_listening();
    first.terminate(Duration::from_secs(15));

    let a = OpenOptions::new()
        .write(true)
        .read(true)
        .open(data.join("multi/dir/a.bin"))
        .unwrap();
    let mut byte = [0u8];
    a.read_exact_at(&mut byte, 3 << 20).unwrap();
    a.write_all_at(&[!byte[0]], 3 << 20).unwrap();
    drop(a);

    let run = seed_to_the_end(&work, "seed-2", &torrent, &data);
    run.assert_clean_failure("seed of a changed byte");
    let want = format!(
        "1 of {} pieces are absent or do not verify, in multi/dir/a.bin;",
        fixture.meta.piece_count()
    );
    assert!(run.stderr.contains(&want), "no {want:?} in {}", run.stderr);
}

#[test]
fn seed_with_download_missing_fetches_an_absent_file_from_a_real_seeder() {
    let fixture = Fixture::multi();
    let work = WorkDir::new("seed-download-missing");
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let torrent = swarm.torrent(&work, Announce::Http);
    let data = work.subdir("data");
    fixture.copy_payload(&data);
    std::fs::remove_file(data.join("multi/dir/a.bin")).unwrap();

    let events = work.join("events.jsonl");
    let mut seed = rivulet::seed_with(
        work.path(),
        &torrent,
        &data,
        free_addr(LOCALHOST),
        &events,
        &[
            "--download-missing",
            "--state-dir",
            work.join("state").to_str().unwrap(),
        ],
    );
    seed.wait_events(Duration::from_secs(180), "the download to complete", |e| {
        e.has("complete")
    });
    assert_same_files(fixture, &data, "seed --download-missing");
    seed.proc.assert_running("seeding after the download");
    seed.terminate(Duration::from_secs(15));
}
