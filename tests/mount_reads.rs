//! Reads through `rivulet mount` with the real engine: a seek fetches the pieces under it first,
//! progress follows what was read, and a read nobody can serve ends (EIO after the read
//! timeout, or an error as soon as the mount goes away) instead of hanging.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::mount::{MountCmd, Mounted, is_mounted, lazy_mount, progress_xattr};
use rivulet_tests::ports::{LOCALHOST, free_addr};
use rivulet_tests::process::{Proc, poll};
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Tracker;
use rivulet_tests::verify::sha1_file;
use rivulet_tests::workdir::WorkDir;

const MIB: u64 = 1 << 20;

#[test]
fn a_read_at_60_percent_fetches_the_pieces_under_it_first() {
    let fixture = Fixture::single();
    let work = WorkDir::new("mount-seek");
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let mount = lazy_mount(&work, &swarm);
    let file = File::open(mount.path(&fixture.files[0].rel)).expect("open through the mount");
    let offset = fixture.total_length() * 6 / 10;
    let mut got = vec![0u8; MIB as usize];
    let started = Instant::now();
    file.read_exact_at(&mut got, offset)
        .expect("1 MiB read at 60%");
    let took = started.elapsed();
    let mut want = vec![0u8; MIB as usize];
    fixture.read_at(offset, &mut want).unwrap();
    assert!(got == want, "wrong bytes at {offset}");

    let plen = fixture.meta.piece_length;
    let under: Vec<u32> = ((offset / plen) as u32..=((offset + MIB - 1) / plen) as u32).collect();
    let events = mount.events();
    let order: Vec<u32> = events
        .of("piece_verified")
        .filter_map(|l| l["piece"].as_u64())
        .map(|p| p as u32)
        .collect();
    eprintln!("1 MiB at {offset} took {took:?}; verification order {order:?}");
    let first: Vec<u32> = order.iter().copied().take(under.len()).collect();
    assert!(
        first.iter().all(|p| under.contains(p)),
        "the first {} verified pieces {first:?} are not those under the read {under:?}",
        under.len()
    );
    assert!(
        order.iter().all(|&p| p >= under[0]),
        "a lazy mount fetched pieces before the read: {order:?}"
    );
}

#[test]
fn lazy_mount_progress_follows_what_was_read() {
    let fixture = Fixture::multi();
    let work = WorkDir::new("mount-progress");
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let mount = lazy_mount(&work, &swarm);
    let status = mount.status();
    assert_eq!(status["pieces_have"], 0, "{status}");
    let (a, b) = (&fixture.files[1], &fixture.files[3]);
    assert!(a.rel.ends_with("a.bin") && b.rel.ends_with("b.bin"));
    assert!(progress_xattr(&mount.path(&a.rel)).starts_with("0.0% 0/"));

    assert_eq!(sha1_file(&mount.path(&a.rel)).unwrap(), a.sha1_hex);
    // a.bin is 5 MiB in 64 KiB pieces at offset 1000: it touches 81 pieces.
    let a_pieces = (1000 + a.len).div_ceil(fixture.meta.piece_length) as u32;
    assert_eq!(
        progress_xattr(&mount.path(&a.rel)),
        format!("100.0% {a_pieces}/{a_pieces} pieces")
    );
    let b_progress = progress_xattr(&mount.path(&b.rel));
    assert!(!b_progress.starts_with("100.0%"), "b.bin: {b_progress}");
    let status = mount.status();
    let have = status["pieces_have"].as_u64().unwrap();
    assert!(
        have >= a_pieces as u64 && have < fixture.meta.piece_count() as u64,
        "after reading a.bin only: {status}"
    );
    assert_eq!(status["complete"], false);
}

/// A mount whose torrent no peer has: every read waits.
fn starved_mount(work: &WorkDir, fixture: &Fixture, read_timeout: u64) -> (Tracker, Mounted) {
    let tracker = Tracker::start(&work.subdir("tracker"), &[fixture.meta.info_hash]);
    let torrent = fixture.torrent(&tracker.http_url(), "http", work.path());
    let mount = MountCmd::new(&torrent, &work.subdir("mnt"))
        .data(&work.subdir("data"))
        .listen(free_addr(LOCALHOST))
        .read_timeout(read_timeout)
        .spawn(work.path(), "mount");
    (tracker, mount)
}

#[test]
fn a_read_nobody_can_serve_fails_with_eio_after_the_read_timeout() {
    let fixture = Fixture::single_small();
    let work = WorkDir::new("mount-read-timeout");
    let (_tracker, mount) = starved_mount(&work, fixture, 2);
    let file = File::open(mount.path(&fixture.files[0].rel)).unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 64 << 10];
    let err = file.read_exact_at(&mut buf, 0).expect_err("no peer has it");
    let took = started.elapsed();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(
        (Duration::from_secs(2)..Duration::from_millis(3500)).contains(&took),
        "EIO after {took:?} with --read-timeout 2"
    );
}

/// Starts `dd` reading the start of the file and waits until the engine holds its read.
fn blocked_reader(work: &WorkDir, mount: &Mounted, rel: &std::path::Path) -> Proc {
    let mut cmd = Command::new("dd");
    cmd.arg(format!("if={}", mount.path(rel).display()))
        .args(["of=/dev/null", "bs=64k", "count=1"])
        .stdin(Stdio::null());
    let reader = Proc::spawn("dd reader", cmd, &work.join("dd.log"));
    poll(Duration::from_secs(20), || {
        let waiting = mount.status()["waiting_reads"].as_u64().unwrap_or(0);
        if waiting > 0 {
            Ok(())
        } else {
            Err("no waiting read yet".to_string())
        }
    })
    .unwrap_or_else(|e| panic!("the reader never reached the engine: {e}"));
    reader
}

fn assert_clean_end(mut mount: Mounted, mut reader: Proc, how: &str) {
    let started = Instant::now();
    let st = reader.wait_exit(Duration::from_secs(15));
    assert!(!st.success(), "{how}: the waiting reader succeeded?");
    let st = mount.wait_exit(Duration::from_secs(15));
    assert!(
        st.success(),
        "{how}: rivulet exited with {st}; log:\n{}",
        mount.proc.log_tail(3000)
    );
    eprintln!(
        "{how}: reader and rivulet ended {:?} after",
        started.elapsed()
    );
    assert!(!is_mounted(&mount.dir), "{how}: still mounted");
    assert_eq!(std::fs::read_dir(&mount.dir).unwrap().count(), 0);
}

#[test]
fn sigterm_ends_a_mount_with_a_waiting_read() {
    let fixture = Fixture::single_small();
    let work = WorkDir::new("mount-sigterm");
    let (_tracker, mut mount) = starved_mount(&work, fixture, 600);
    let reader = blocked_reader(&work, &mount, &fixture.files[0].rel);
    mount.proc.signal(libc::SIGTERM);
    assert_clean_end(mount, reader, "SIGTERM");
}

/// `fusermount3 -u` refuses a mount a reader still holds (EBUSY, the kernel's rule) without
/// disturbing it; the lazy `fusermount3 -u -z` detaches it, and then the waiting reader gets an
/// error and rivulet exits at once instead of after the read timeout.
#[test]
fn fusermount_ends_a_mount_with_a_waiting_read() {
    let fixture = Fixture::single_small();
    let work = WorkDir::new("mount-fusermount");
    let (_tracker, mut mount) = starved_mount(&work, fixture, 600);
    let mut reader = blocked_reader(&work, &mount, &fixture.files[0].rel);
    let out = mount.fusermount_u();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("busy"),
        "fusermount3 -u of a busy mount: {} {stderr}",
        out.status
    );
    reader.assert_running("after a refused unmount");
    mount.proc.assert_running("after a refused unmount");
    assert!(mount.is_mounted());

    let out = Command::new("fusermount3")
        .args(["-u", "-z"])
        .arg(&mount.dir)
        .output()
        .expect("run fusermount3");
    assert!(
        out.status.success(),
        "fusermount3 -u -z: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_clean_end(mount, reader, "fusermount3 -u -z");
}
