//! What a person sees from `rivulet download` when nothing can be reached, with stderr not a
//! terminal (a log file): the progress line says no peer was found instead of sitting at
//! 0.0 %, the tracker failure names the URL and the reason in plain words, and no colour codes.

use std::time::Duration;

use rivulet_tests::make_torrent::zeros;
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::process::{tail_of, wait_for};
use rivulet_tests::rivulet::Download;
use rivulet_tests::workdir::WorkDir;

#[test]
fn a_download_with_no_reachable_peer_says_so_in_plain_words_without_colour() {
    let work = WorkDir::new("cli-polish");
    let torrent = work.join("lonely.torrent");
    let tracker = "http://127.0.0.1:1/announce";
    std::fs::write(&torrent, zeros("lonely.bin", 1 << 20, 1 << 16, tracker)).unwrap();
    let mut run = Download::new(&torrent, &work.subdir("out"))
        .listen(free_addr(LOCALHOST))
        .state_dir(&work.subdir("state"))
        .spawn(work.path(), "download");
    let log = work.join("download.log");
    // The plain progress line comes every 5 s.
    wait_for(
        Duration::from_secs(30),
        "a progress line and the tracker error",
        || {
            let text = tail_of(&log, 64 * 1024);
            text.contains("(no peers found yet)") && text.contains("cannot connect to")
        },
    );
    // Interrupted, a download says how far it got and exits non-zero: only its log matters here.
    run.proc.signal(libc::SIGTERM);
    run.proc.wait_exit(Duration::from_secs(20));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("cannot connect to {tracker}"))
            && text.to_lowercase().contains("connection refused"),
        "{text}"
    );
    assert!(!text.contains("An error occured"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "colour codes in a log file: {text:?}"
    );
}
