//! The resume file is not trusted over the disk. After a complete download from a real aria2
//! seeder, a data file is truncated, emptied, or has a byte changed (with its modification time
//! put back, as `touch -r` would); running the same `rivulet download` again re-checks that
//! file's pieces (`rechecked` event), fetches what is wrong, and ends with byte-identical files.
//! Before the fix the second run reported every piece resumed, verified none, exited 0 and left
//! the file wrong (a short file extended with zeros).

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::rivulet::Download;
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::verify::assert_same_files;
use rivulet_tests::workdir::WorkDir;

const BOUND: Duration = Duration::from_secs(180);

/// How a test damages a downloaded file.
enum Damage {
    /// Cut to this many bytes.
    TruncateTo(u64),
    /// Flip the byte at this offset, then restore the modification time.
    FlipKeepingMtime(u64),
}

/// Torrent-global byte range of the fixture's file `rel`.
fn file_range(fixture: &Fixture, rel: &str) -> Range<u64> {
    let mut offset = 0;
    for f in &fixture.files {
        if f.rel == Path::new(rel) {
            return offset..offset + f.len;
        }
        offset += f.len;
    }
    panic!("no file {rel} in fixture {}", fixture.id);
}

/// Pieces holding any byte of the torrent-global `range`.
fn pieces_of(fixture: &Fixture, range: Range<u64>) -> BTreeSet<u32> {
    let pl = fixture.meta.piece_length;
    ((range.start / pl) as u32..range.end.div_ceil(pl) as u32).collect()
}

fn damage(path: &Path, how: &Damage) {
    let f = OpenOptions::new()
        .write(true)
        .read(true)
        .open(path)
        .unwrap();
    match *how {
        Damage::TruncateTo(len) => f.set_len(len).unwrap(),
        Damage::FlipKeepingMtime(at) => {
            let mtime = f.metadata().unwrap().modified().unwrap();
            let mut b = [0u8];
            f.read_exact_at(&mut b, at).unwrap();
            f.write_all_at(&[!b[0]], at).unwrap();
            f.set_modified(mtime).unwrap();
            assert_eq!(f.metadata().unwrap().modified().unwrap(), mtime);
        }
    }
}

#[test]
fn a_truncated_emptied_or_edited_file_is_checked_again_and_fetched_back() {
    let fixture = Fixture::multi();
    let pieces = fixture.meta.piece_count();
    let work = WorkDir::new("resume-integrity");
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let torrent = swarm.torrent(&work, Announce::Http);
    let out = work.subdir("out");
    let state = work.subdir("state");
    let run = |tag: &str| {
        let events = work.join(&format!("events-{tag}.jsonl"));
        let mut run = Download::new(&torrent, &out)
            .listen(free_addr(LOCALHOST))
            .state_dir(&state)
            .events(&events)
            .spawn(work.path(), tag);
        run.wait_success(BOUND);
        assert_same_files(fixture, &out, tag);
        run.events()
    };
    run("first");

    let b = "multi/dir/sub/b.bin";
    let a = "multi/dir/a.bin";
    let cases = [
        ("truncated", b, Damage::TruncateTo(6 << 20)),
        ("emptied", a, Damage::TruncateTo(0)),
        ("edited", b, Damage::FlipKeepingMtime(9 << 20)),
    ];
    for (tag, rel, how) in cases {
        damage(&out.join(rel), &how);
        let range = file_range(fixture, rel);
        let lost = match how {
            Damage::TruncateTo(len) => range.start + len..range.end,
            Damage::FlipKeepingMtime(at) => range.start + at..range.start + at + 1,
        };
        let must_refetch = pieces_of(fixture, lost);

        let events = run(tag);
        let rechecked = events
            .of("rechecked")
            .next()
            .unwrap_or_else(|| panic!("{tag}: no `rechecked` event:\n{}", events.tail(10)));
        assert_eq!(rechecked["changed_files"], 1, "{tag}: {rechecked}");
        assert!(
            rechecked["files"].as_str().unwrap().contains(rel),
            "{tag}: {rechecked}"
        );
        let fetched = events.verified();
        assert!(
            must_refetch.is_subset(&fetched),
            "{tag}: damaged pieces {must_refetch:?} were not fetched again (fetched {fetched:?})"
        );
        // Only the changed file's pieces lost the resume file's word: the rest were resumed.
        let of_file = pieces_of(fixture, range);
        assert!(
            fetched.is_subset(&of_file),
            "{tag}: fetched pieces outside {rel}: {:?}",
            fetched.difference(&of_file).collect::<Vec<_>>()
        );
        let resumed = events.resumed().expect("resumed event");
        assert_eq!(
            resumed + fetched.len() as u64,
            pieces as u64,
            "{tag}: {}",
            events.tail(10)
        );
    }
}
