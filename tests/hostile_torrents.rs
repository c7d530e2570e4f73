//! Hostile .torrent files beyond tests/malformed_torrent.rs.
//!
//! Odd but legal torrents are handled safely: device-like names (CON, NUL, aux.txt: ordinary
//! files on Linux), names that are not UTF-8 (shown with U+FFFD), piece lengths that are not
//! powers of two, and names that are unsafe or clash (duplicates, a file that is also a folder,
//! `.`, `..`, separators, NUL, an empty or absolute torrent name), which are made safe as
//! libtorrent does, go from `rivulet seed` to `rivulet download` byte for byte under the safe
//! names, and nothing lands outside the output directory. Contradictory torrents (hashes that
//! do not match the length, absurd piece lengths) are refused with one error line and a
//! non-zero exit. A torrent of a million pieces starts with bounded memory and a sparse file;
//! one over 64 MiB is refused.

use std::path::Path;
use std::time::{Duration, Instant};

use rivulet_core::metainfo::Metainfo;
use rivulet_tests::make_torrent::{PayloadFile, multi_file};
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::proc_stats::Sampler;
use rivulet_tests::rivulet::{self, Download};
use rivulet_tests::torrent::edit_info;
use rivulet_tests::workdir::{WorkDir, tree};
use serde_bencode::value::Value;

const DEAD_TRACKER: &str = "http://127.0.0.1:1/announce";

fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[seed as usize % 4] ^ seed)
        .collect()
}

fn file(path: &[&[u8]], data: Vec<u8>) -> PayloadFile {
    PayloadFile {
        path: path.iter().map(|c| c.to_vec()).collect(),
        data,
    }
}

struct Legal {
    id: &'static str,
    name: &'static [u8],
    piece_length: u64,
    files: Vec<PayloadFile>,
    /// Where each file lands below the output directory (`{hash}`: the info-hash); empty when
    /// that is its own path, with U+FFFD for bytes that are not UTF-8.
    disk: &'static [&'static str],
}

fn legal_cases() -> Vec<Legal> {
    vec![
        Legal {
            id: "device-names",
            name: b"devices",
            piece_length: 32 << 10,
            files: vec![
                file(&[b"CON"], data(1, 40_000)),
                file(&[b"NUL"], data(2, 70_001)),
                file(&[b"aux.txt"], data(3, 5)),
                file(&[b"COM1"], data(4, 33_333)),
                file(&[b"PRN", b"LPT1"], data(5, 100_000)),
                file(&[b"con.txt"], data(6, 1)),
            ],
            disk: &[],
        },
        Legal {
            id: "not-utf8",
            name: b"caf\xe9",
            piece_length: 16 << 10,
            files: vec![
                file(&[b"r\xe9sum\xe9.txt"], data(7, 50_000)),
                file(&[b"\xff\xfe", b"ok.bin"], data(8, 20_000)),
            ],
            disk: &[],
        },
        Legal {
            id: "odd-piece-length",
            name: b"odd",
            piece_length: 49_153,
            files: vec![
                file(&[b"a.bin"], data(9, 300_001)),
                file(&[b"b.bin"], data(10, 77_777)),
            ],
            disk: &[],
        },
        renamed(
            "duplicate-file-names",
            b"t",
            &[b"same.bin"],
            &[b"same.bin"],
            &["t/same.bin", "t/same.1.bin"],
        ),
        renamed(
            "file-is-also-a-folder",
            b"t",
            &[b"a"],
            &[b"a", b"b.bin"],
            &["t/a.1", "t/a/b.bin"],
        ),
        renamed(
            "dot-and-dot-dot",
            b"t",
            &[b"."],
            &[b"..", b"..", b"evil.txt"],
            &["t/_", "t/evil.txt"],
        ),
        renamed(
            "separators-and-nul",
            b"t",
            &[b"..\\..\\evil.txt"],
            &[b"/tmp", b"x\0y"],
            &["t/.._.._evil.txt", "t/_tmp/x_y"],
        ),
        renamed(
            "name-is-dot",
            b".",
            &[b"a"],
            &[b"b"],
            &["{hash}/a", "{hash}/b"],
        ),
        renamed(
            "name-is-empty",
            b"",
            &[b"a"],
            &[b"b"],
            &["{hash}/a", "{hash}/b"],
        ),
        renamed(
            "absolute-name",
            b"/tmp/evil",
            &[b"a"],
            &[b"b"],
            &["_tmp_evil/a", "_tmp_evil/b"],
        ),
    ]
}

/// Two files whose names must be changed to land safely where `disk` says.
fn renamed(
    id: &'static str,
    name: &'static [u8],
    a: &[&[u8]],
    b: &[&[u8]],
    disk: &'static [&'static str],
) -> Legal {
    Legal {
        id,
        name,
        piece_length: 16 << 10,
        files: vec![file(a, data(11, 20_000)), file(b, data(12, 30_000))],
        disk,
    }
}

#[test]
fn odd_but_legal_torrents_download_exactly_inside_the_output_dir() {
    let work = WorkDir::new("hostile-torrents-legal");
    for case in legal_cases() {
        let torrent = work.join(&format!("{}.torrent", case.id));
        let bytes = multi_file(case.name, &case.files, case.piece_length, DEAD_TRACKER);
        std::fs::write(&torrent, &bytes).expect("write torrent");
        let hash = Metainfo::from_bytes(&bytes)
            .unwrap_or_else(|e| panic!("{}: refused: {e}", case.id))
            .info_hash
            .hex();
        let disk: Vec<String> = if case.disk.is_empty() {
            case.files
                .iter()
                .map(|f| {
                    std::iter::once(case.name)
                        .chain(f.path.iter().map(Vec::as_slice))
                        .map(String::from_utf8_lossy)
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect()
        } else {
            case.disk
                .iter()
                .map(|d| d.replace("{hash}", &hash))
                .collect()
        };
        // The seed finds its data under the names rivulet shows.
        let seed_data = work.subdir(&format!("seed-{}", case.id));
        for (f, d) in case.files.iter().zip(&disk) {
            let p = seed_data.join(d);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir seed data");
            std::fs::write(&p, &f.data).expect("write seed data");
        }
        let seed_addr = free_addr(LOCALHOST);
        let mut seed = rivulet::seed(
            work.path(),
            &torrent,
            &seed_data,
            seed_addr,
            &work.join(&format!("seed-{}.jsonl", case.id)),
        );
        let cage = work.subdir(&format!("cage-{}", case.id));
        let out = cage.join("inner/out");
        std::fs::create_dir_all(&out).expect("mkdir out");
        let mut dl = Download::new(&torrent, &out)
            .listen(free_addr(LOCALHOST))
            .peer(seed_addr)
            .spawn(work.path(), &format!("download-{}", case.id));
        dl.wait_success(Duration::from_secs(60));
        seed.terminate(Duration::from_secs(15));
        for (f, d) in case.files.iter().zip(&disk) {
            let p = out.join(d);
            let got = std::fs::read(&p)
                .unwrap_or_else(|e| panic!("{}: {} missing: {e}", case.id, p.display()));
            assert!(got == f.data, "{}: {} differs", case.id, p.display());
        }
        let outside: Vec<String> = tree(&cage)
            .into_iter()
            .filter(|p| p != "inner" && p != "inner/out" && !p.starts_with("inner/out/"))
            .collect();
        assert!(
            outside.is_empty(),
            "{}: wrote outside: {outside:?}",
            case.id
        );
    }
}

fn refused_cases() -> Vec<(&'static str, Vec<u8>)> {
    let two = |a: &[&[u8]], b: &[&[u8]]| {
        multi_file(
            b"t",
            &[file(a, data(1, 20_000)), file(b, data(2, 20_000))],
            16 << 10,
            DEAD_TRACKER,
        )
    };
    let good = two(&[b"a.bin"], &[b"b.bin"]);
    let set = |k: &str, v: Value| {
        edit_info(&good, |i| {
            i.insert(k.as_bytes().to_vec(), v);
        })
    };
    let pieces = |extra: i64| {
        edit_info(&good, |i| {
            let Some(Value::Bytes(p)) = i.get_mut(&b"pieces"[..]) else {
                panic!("no pieces")
            };
            if extra > 0 {
                p.extend(std::iter::repeat_n(7u8, 20 * extra as usize));
            } else {
                p.truncate(p.len() - 20 * (-extra) as usize);
            }
        })
    };
    vec![
        (
            "piece-length-negative",
            set("piece length", Value::Int(-16384)),
        ),
        // Over libtorrent's limit of 32767 blocks of 16 KiB.
        (
            "piece-length-1-gib",
            set("piece length", Value::Int(1 << 30)),
        ),
        ("more-hashes-than-data", pieces(5)),
        ("fewer-hashes-than-data", pieces(-1)),
        (
            "length-larger-than-hashes-cover",
            edit_info(&good, |i| {
                let Some(Value::List(files)) = i.get_mut(&b"files"[..]) else {
                    panic!("no files")
                };
                let Value::Dict(f) = &mut files[1] else {
                    panic!("file")
                };
                f.insert(b"length".to_vec(), Value::Int(20_000 + (64 << 10)));
            }),
        ),
    ]
}

#[test]
fn contradictory_torrents_are_refused_in_one_line_and_write_nothing() {
    let work = WorkDir::new("hostile-torrents-refused");
    for (name, bytes) in refused_cases() {
        let torrent = work.join(&format!("{name}.torrent"));
        std::fs::write(&torrent, bytes).expect("write case");
        rivulet::info(work.path(), &torrent).assert_clean_failure(&format!("info {name}"));
        let cage = work.subdir(&format!("cage-{name}"));
        let out = cage.join("inner/out");
        std::fs::create_dir_all(&out).expect("mkdir out");
        let logs = work.subdir(&format!("logs-{name}"));
        rivulet::run(
            &logs,
            "download",
            Download::new(&torrent, &out).args(),
            Duration::from_secs(20),
        )
        .assert_clean_failure(&format!("download {name}"));
        let written = tree(&cage);
        assert!(
            written.iter().all(|p| p == "inner" || p == "inner/out"),
            "download {name} wrote {written:?}"
        );
    }
    assert!(!Path::new("/tmp/evil").exists());
}

/// SIGTERM ends an unfinished download with exit 1 ("interrupted ... run the same command to
/// resume"): a clean exit, not a crash.
fn stop(run: &mut rivulet_tests::rivulet::Running) {
    run.proc.signal(libc::SIGTERM);
    let st = run.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(
        st.code(),
        Some(1),
        "SIGTERM of an unfinished download: {st}"
    );
    assert!(!run.proc.log_tail(4000).contains("panicked"));
}

/// A single-file torrent of `pieces` pieces of 16 KiB (hashes all zero: nothing will verify).
fn many_pieces(pieces: usize) -> Vec<u8> {
    let info = Value::Dict(
        [
            (b"name".to_vec(), Value::Bytes(b"huge.bin".to_vec())),
            (b"piece length".to_vec(), Value::Int(16 << 10)),
            (b"length".to_vec(), Value::Int(pieces as i64 * (16 << 10))),
            (b"pieces".to_vec(), Value::Bytes(vec![0u8; pieces * 20])),
        ]
        .into_iter()
        .collect(),
    );
    let top = Value::Dict(
        [
            (
                b"announce".to_vec(),
                Value::Bytes(DEAD_TRACKER.as_bytes().to_vec()),
            ),
            (b"info".to_vec(), info),
        ]
        .into_iter()
        .collect(),
    );
    serde_bencode::to_bytes(&top).expect("encode torrent")
}

#[test]
fn a_million_pieces_start_bounded_and_a_torrent_over_64_mib_is_refused() {
    let work = WorkDir::new("hostile-torrents-huge");
    let torrent = work.join("million.torrent");
    std::fs::write(&torrent, many_pieces(1_000_000)).expect("write torrent");
    let started = Instant::now();
    let info = rivulet::info(work.path(), &torrent);
    assert!(info.status.success(), "info failed: {}", info.stderr);
    assert!(
        info.stdout.contains("1000000"),
        "info output: {}",
        info.stdout
    );
    let out = work.subdir("out");
    let mut dl = Download::new(&torrent, &out)
        .listen(free_addr(LOCALHOST))
        .events(&work.join("events.jsonl"))
        .spawn(work.path(), "download");
    let sampler = Sampler::start(dl.proc.pid());
    dl.wait_events(
        Duration::from_secs(60),
        "a million-piece torrent to start",
        |e| e.has("listening"),
    );
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let rss = sampler.peak_rss_mib();
    stop(&mut dl);
    let on_disk: u64 = std::fs::read_dir(&out)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
        .sum();
    eprintln!(
        "1M pieces (16 GiB): started in {took:?}, peak RSS {rss} MiB, {on_disk} bytes on disk"
    );
    assert!(
        rss <= 200,
        "a million-piece torrent took {rss} MiB resident"
    );
    assert!(
        on_disk <= 1 << 20,
        "{on_disk} bytes allocated for data never fetched"
    );

    let over = work.join("over.torrent");
    std::fs::write(&over, many_pieces(3_500_000)).expect("write torrent");
    rivulet::info(work.path(), &over).assert_clean_failure("info of a 70 MB torrent");
}
