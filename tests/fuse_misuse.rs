//! Misusing a real `rivulet mount`: a reader SIGKILLed while its read waits for data, an
//! unmount (SIGTERM) with readers still waiting, reads past the end of a file, opening for
//! write, and 16 concurrent readers at different offsets. No hang, no crash: the killed reader
//! dies at once, waiting readers fail promptly when the mount goes, writes get EROFS, reads past
//! the end are empty, and every concurrent reader gets exactly the torrent's bytes.
//!
//! Needs FUSE (root, /dev/fuse) and a private mount namespace (tests/run-all.sh).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::mount::{MountCmd, Mounted, clear_dead_mount, is_mounted};
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::process::{Proc, poll};
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::workdir::WorkDir;

const MIB: u64 = 1 << 20;

fn mount(work: &WorkDir, torrent: &Path, mnt: &Path) -> Mounted {
    MountCmd::new(torrent, mnt)
        .data(&work.subdir("data"))
        .events(&work.join("events.jsonl"))
        .lazy()
        .read_timeout(60)
        .listen(free_addr(LOCALHOST))
        .spawn(work.path(), "mount")
}

/// Reads waiting in the engine, from the mount's own status file.
fn waiting_reads(mnt: &Path) -> u64 {
    std::fs::read(mnt.join(".rivulet/status.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["waiting_reads"].as_u64())
        .unwrap_or(0)
}

fn wait_waiting(mnt: &Path, at_least: u64) {
    poll(Duration::from_secs(20), || {
        let n = waiting_reads(mnt);
        if n >= at_least {
            Ok(())
        } else {
            Err(format!("{n} reads waiting"))
        }
    })
    .unwrap_or_else(|e| panic!("waiting for {at_least} blocked reads: {e}"));
}

/// `dd` of one MiB at `skip_mib` of `file`, in the background.
fn dd(work: &WorkDir, file: &Path, skip_mib: u64, tag: &str) -> Proc {
    let mut cmd = Command::new("dd");
    cmd.arg(format!("if={}", file.display()))
        .args(["of=/dev/null", "bs=1M", "count=1", "iflag=fullblock"])
        .arg(format!("skip={skip_mib}"));
    Proc::spawn(tag, cmd, &work.join(&format!("{tag}.log")))
}

#[test]
fn killed_readers_unmount_with_waiting_readers_eof_and_erofs() {
    let fixture = Fixture::single();
    let work = WorkDir::new("fuse-misuse");
    // No peer anywhere: every read of data waits.
    let torrent = fixture.torrent("http://127.0.0.1:1/announce", "dead", work.path());
    let mnt: PathBuf = work.subdir("mnt");
    let mut m = mount(&work, &torrent, &mnt);
    let file = mnt.join(&fixture.files[0].rel);
    let len = fixture.files[0].len;

    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::EROFS),
        "open for write: {err}"
    );
    let err = File::create(mnt.join("new.txt")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "create: {err}");
    let f = File::open(&file).expect("open for reading");
    let mut buf = [0u8; 4096];
    assert_eq!(f.read_at(&mut buf, len).expect("read at EOF"), 0);
    assert_eq!(f.read_at(&mut buf, len + 12_345).expect("read past EOF"), 0);

    let mut victim = dd(&work, &file, 10, "dd-victim");
    wait_waiting(&mnt, 1);
    victim.kill_hard();
    m.proc.assert_running("a reader was killed mid-read");
    assert!(
        std::fs::metadata(&file).is_ok_and(|md| md.len() == len),
        "the mount stopped answering after a reader was killed"
    );

    let mut waiting: Vec<Proc> = (0..3)
        .map(|i| dd(&work, &file, 20 + 7 * i, &format!("dd-waiting-{i}")))
        .collect();
    wait_waiting(&mnt, 3);
    m.proc.signal(libc::SIGTERM);
    for (i, r) in waiting.iter_mut().enumerate() {
        let st = r.wait_exit(Duration::from_secs(15));
        assert!(!st.success(), "waiting reader {i} succeeded without data");
    }
    let st = m.proc.wait_exit(Duration::from_secs(20));
    assert!(
        st.success(),
        "rivulet mount exited with {st} on SIGTERM with readers waiting"
    );
    assert!(!is_mounted(&mnt), "the mount outlived rivulet");
    clear_dead_mount(&mnt);
}

#[test]
fn sixteen_concurrent_readers_at_different_offsets_get_exact_bytes() {
    let fixture = Fixture::single();
    let work = WorkDir::new("fuse-concurrent");
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let torrent = swarm.torrent(&work, Announce::Http);
    let mnt = work.subdir("mnt");
    let mut m = mount(&work, &torrent, &mnt);
    let file = mnt.join(&fixture.files[0].rel);
    let len = fixture.files[0].len;
    let readers: Vec<_> = (0..16u64)
        .map(|i| {
            let file = file.clone();
            std::thread::spawn(move || {
                let offset = (i * 4 * MIB + i * 12_345).min(len - 1);
                let want_len = (300_000).min(len - offset) as usize;
                let f = File::open(&file).expect("open through the mount");
                let mut got = vec![0u8; want_len];
                f.read_exact_at(&mut got, offset)
                    .unwrap_or_else(|e| panic!("reader {i} at {offset}: {e}"));
                (offset, got)
            })
        })
        .collect();
    for (i, r) in readers.into_iter().enumerate() {
        let (offset, got) = r.join().expect("reader thread");
        let mut want = vec![0u8; got.len()];
        fixture.read_at(offset, &mut want).expect("fixture bytes");
        assert!(got == want, "reader {i} at {offset} got wrong bytes");
    }
    m.terminate(Duration::from_secs(20));
    clear_dead_mount(&mnt);
}
