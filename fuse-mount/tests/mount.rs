//! Real FUSE mounts (root, /dev/fuse) of torrents built in the test.
//!
//! The sources stand in for the engine: one stopped like today's stub, one serving bytes from
//! memory and recording calls, one whose reads never finish.

mod support;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, mpsc};
use std::time::{Duration, SystemTime};

use rivulet_core::bitfield::Bitfield;
use rivulet_fuse::{MountError, MountOptions, PROGRESS_XATTR, STATUS_PATH};
use support::*;

const LIMIT: Duration = Duration::from_secs(20);

/// Nested folders, an empty file, odd sizes, a name with a space and non-ASCII.
fn album() -> Fixture {
    torrent(
        "album",
        &[
            ("a.txt", 1000),
            ("empty", 0),
            ("sub/deep/x.bin", 70_001),
            ("sub/y", 1),
            ("Z odd ü.dat", 16384 * 3 + 5),
        ],
        16384,
    )
}

/// Every entry under `dir`: relative path -> (is folder, size, mode bits, link count).
fn walk(dir: &Path) -> BTreeMap<String, (bool, u64, u32, u64)> {
    fn go(root: &Path, dir: &Path, out: &mut BTreeMap<String, (bool, u64, u32, u64)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
            out.insert(rel, (m.is_dir(), m.len(), m.mode() & 0o7777, m.nlink()));
            if m.is_dir() {
                go(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    go(dir, dir, &mut out);
    out
}

#[test]
fn tree_and_exact_sizes_are_there_as_soon_as_mount_returns() {
    let fx = album();
    let m = Mounted::new(StoppedSource, &fx.meta);
    let dir = m.dir();
    let tree = within(LIMIT, {
        let dir = dir.clone();
        move || walk(&dir)
    });
    // The status folder is left out of the root's listing but there by name.
    let status = std::fs::metadata(dir.join(STATUS_PATH)).unwrap();
    assert!(status.len() > 0 && status.is_file());
    let status_dir = std::fs::metadata(dir.join(".rivulet")).unwrap();
    assert!(status_dir.is_dir());
    let want: BTreeMap<String, (bool, u64, u32, u64)> = [
        ("album", (true, 0, 0o555, 3)),
        ("album/a.txt", (false, 1000, 0o444, 1)),
        ("album/empty", (false, 0, 0o444, 1)),
        ("album/sub", (true, 0, 0o555, 3)),
        ("album/sub/deep", (true, 0, 0o555, 2)),
        ("album/sub/deep/x.bin", (false, 70_001, 0o444, 1)),
        ("album/sub/y", (false, 1, 0o444, 1)),
        ("album/Z odd ü.dat", (false, 16384 * 3 + 5, 0o444, 1)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(tree, want);

    let x = std::fs::metadata(dir.join("album/sub/deep/x.bin")).unwrap();
    assert_eq!(x.blocks(), 70_001u64.div_ceil(512));
    // No creation date in the torrent: one fixed time, the same for every entry at every call.
    let fixed = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    for p in [&dir, &dir.join("album"), &dir.join("album/sub/deep/x.bin")] {
        let m = std::fs::metadata(p).unwrap();
        assert_eq!(m.modified().unwrap(), fixed, "{}", p.display());
        assert_eq!(m.ctime(), 1_000_000_000, "{}", p.display());
    }
    let root = std::fs::metadata(&dir).unwrap();
    assert!(root.is_dir());
    assert_eq!(root.permissions().mode() & 0o777, 0o555);

    // The usual tools, with `.` and `..` in every listing.
    let (du, find, ls) = within(LIMIT, {
        let dir = dir.clone();
        move || {
            let run = |cmd: &mut Command| {
                let out = cmd.output().unwrap();
                assert!(out.status.success(), "{cmd:?}: {out:?}");
                String::from_utf8(out.stdout).unwrap()
            };
            (
                run(Command::new("du")
                    .args(["-s", "-b", "--apparent-size"])
                    .arg(dir.join("album"))),
                run(Command::new("find").arg(&dir)),
                run(Command::new("ls").arg("-laR").arg(&dir)),
            )
        }
    });
    let total = fx.meta.total_length;
    assert_eq!(
        du.split_whitespace().next(),
        Some(total.to_string().as_str())
    );
    assert_eq!(find.lines().count(), 9, "{find}");
    assert!(ls.contains("Z odd ü.dat") && ls.contains(" ..\n"), "{ls}");
}

#[test]
fn single_file_torrent_is_the_file_itself() {
    let fx = torrent("movie.bin", &[("movie.bin", 123_457)], 32768);
    let m = Mounted::new(StoppedSource, &fx.meta);
    let dir = m.dir();
    let names: Vec<String> = within(LIMIT, move || {
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    });
    assert_eq!(names, ["movie.bin"]);
    assert_eq!(
        std::fs::metadata(m.dir().join("movie.bin")).unwrap().len(),
        123_457
    );
}

#[test]
fn writes_of_every_kind_are_refused_as_read_only() {
    let fx = album();
    let m = Mounted::new(StoppedSource, &fx.meta);
    let dir = m.dir();
    within(LIMIT, move || {
        let album = dir.join("album");
        let rofs = |r: std::io::Result<()>, what: &str| {
            let e = r.expect_err(what);
            assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}");
        };
        rofs(File::create(album.join("new")).map(drop), "create");
        rofs(
            OpenOptions::new()
                .write(true)
                .open(album.join("a.txt"))
                .map(drop),
            "open for writing",
        );
        rofs(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(album.join("a.txt"))
                .map(drop),
            "open read-write",
        );
        rofs(std::fs::create_dir(album.join("d")), "mkdir");
        rofs(std::fs::remove_file(album.join("a.txt")), "unlink");
        rofs(std::fs::remove_dir(album.join("sub/deep")), "rmdir");
        rofs(
            std::fs::rename(album.join("a.txt"), album.join("b.txt")),
            "rename",
        );
        rofs(
            std::fs::set_permissions(album.join("a.txt"), std::fs::Permissions::from_mode(0o644)),
            "chmod",
        );
        let c = CString::new(album.join("a.txt").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path.
        let rc = unsafe { libc::truncate(c.as_ptr(), 0) };
        rofs(
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            },
            "truncate",
        );
        // access(2) agrees.
        // SAFETY: valid NUL-terminated path.
        assert_ne!(unsafe { libc::access(c.as_ptr(), libc::W_OK) }, 0);
        assert_eq!(unsafe { libc::access(c.as_ptr(), libc::R_OK) }, 0);
    });
}

fn getxattr(path: &Path, name: &str) -> std::io::Result<String> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(len as usize);
    Ok(String::from_utf8(buf).unwrap())
}

fn listxattr(path: &Path) -> Vec<String> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid NUL-terminated path and a buffer of the given length.
    let len = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(len >= 0, "{}", std::io::Error::last_os_error());
    buf.truncate(len as usize);
    buf.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect()
}

#[test]
fn progress_attribute_and_status_file_show_the_engine_state() {
    let fx = album();
    // 120_159 bytes in 16 KiB pieces: 8 pieces. x.bin (bytes 1000..71_001) spans pieces 0..=4.
    let mut have = Bitfield::new(fx.meta.piece_count());
    have.set(0);
    have.set(2);
    let m = Mounted::new(MemorySource::new(&fx, have), &fx.meta);
    let dir = m.dir();
    within(LIMIT, move || {
        let album = dir.join("album");
        assert_eq!(
            getxattr(&album.join("a.txt"), PROGRESS_XATTR).unwrap(),
            "100.0% 1/1 pieces"
        );
        assert_eq!(
            getxattr(&album.join("sub/deep/x.bin"), PROGRESS_XATTR).unwrap(),
            "40.0% 2/5 pieces"
        );
        assert_eq!(
            getxattr(&album.join("empty"), PROGRESS_XATTR).unwrap(),
            "100.0% 0/0 pieces"
        );
        let total = fx.meta.piece_count();
        assert_eq!(
            getxattr(&album, PROGRESS_XATTR).unwrap(),
            format!("{:.1}% 2/{total} pieces", 200.0 / f64::from(total))
        );
        assert_eq!(listxattr(&album.join("sub/y")), [PROGRESS_XATTR]);
        let missing = getxattr(&album.join("sub/y"), "user.other").unwrap_err();
        assert_eq!(missing.raw_os_error(), Some(libc::ENODATA));

        let status = std::fs::read(dir.join(STATUS_PATH)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&status).unwrap();
        assert_eq!(v["name"], "album");
        assert_eq!(v["info_hash"], fx.meta.info_hash.hex());
        assert_eq!(v["pieces_total"], total);
        assert_eq!(v["pieces_have"], 2);
        assert_eq!(v["peers"], 3);
        assert!(listxattr(&dir.join(STATUS_PATH)).is_empty());
    });
}

#[test]
fn statfs_describes_a_read_only_filesystem_of_the_torrent_size() {
    let fx = album();
    let m = Mounted::new(StoppedSource, &fx.meta);
    let dir = m.dir();
    let st = within(LIMIT, move || {
        let c = CString::new(dir.as_os_str().as_bytes()).unwrap();
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: valid path and a statvfs to fill.
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        st
    });
    assert_eq!(st.f_frsize, 4096);
    assert_eq!(st.f_blocks, fx.meta.total_length.div_ceil(4096));
    assert_eq!(st.f_bavail, 0);
    // root, album, sub, deep, five files, .rivulet and status.json
    assert_eq!(st.f_files, 11);
    assert_ne!(st.f_flag & libc::ST_RDONLY, 0);
}

#[test]
fn a_read_the_engine_cannot_serve_fails_with_eio_quickly() {
    let fx = album();
    let m = Mounted::new(StoppedSource, &fx.meta);
    let dir = m.dir();
    within(Duration::from_secs(5), move || {
        let e = std::fs::read(dir.join("album/sub/deep/x.bin")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
        // An empty file never asks the engine.
        assert!(std::fs::read(dir.join("album/empty")).unwrap().is_empty());
    });
}

#[test]
fn reads_land_on_the_right_torrent_bytes() {
    let fx = album();
    let source = MemorySource::new(&fx, Bitfield::full(fx.meta.piece_count()));
    let calls = source.calls.clone();
    let m = Mounted::new(source, &fx.meta);
    let dir = m.dir();
    let expected = fx.meta.clone();
    let data = fx.data.clone();
    within(LIMIT, move || {
        let fx = Fixture {
            torrent: Vec::new(),
            meta: expected,
            data,
        };
        for (i, f) in fx.meta.files.iter().enumerate() {
            let path = dir.join(f.relative_path());
            assert_eq!(std::fs::read(&path).unwrap(), fx.file_data(i), "{path:?}");
        }
        // pread across the end of a file stops at its end; past the end reads nothing.
        let z = File::open(dir.join("album/Z odd ü.dat")).unwrap();
        let len = 16384 * 3 + 5;
        let mut buf = [0u8; 100];
        assert_eq!(z.read_at(&mut buf, len - 10).unwrap(), 10);
        assert_eq!(&buf[..10], &fx.file_data(4)[len as usize - 10..]);
        assert_eq!(z.read_at(&mut buf, len + 10).unwrap(), 0);
    });
    // Every read asked for bytes of one file, never past its end.
    for c in calls.snapshot().iter() {
        if let Call::Read(r) = c {
            let inside = fx
                .meta
                .files
                .iter()
                .any(|f| f.offset <= r.start && r.end <= f.offset + f.length);
            assert!(
                inside && !r.is_empty(),
                "read {r:?} crosses a file boundary"
            );
        }
    }
}

/// Prefetch hints of one handle: (reader, ranges) in call order.
fn hints(calls: &[Call]) -> BTreeMap<u64, Vec<std::ops::Range<u64>>> {
    let mut out: BTreeMap<u64, Vec<_>> = BTreeMap::new();
    for c in calls {
        if let Call::Prefetch { reader, range } = c {
            out.entry(*reader).or_default().push(range.clone());
        }
    }
    out
}

#[test]
fn each_open_handle_has_its_own_readahead() {
    const MIB: u64 = 1 << 20;
    let fx = torrent(
        "big",
        &[("lead", 100), ("big.bin", 40 * MIB), ("tail", 7)],
        256 * 1024,
    );
    let source = MemorySource::new(&fx, Bitfield::full(fx.meta.piece_count()));
    let calls = source.calls.clone();
    let m = Mounted::new(source, &fx.meta);
    let path = m.dir().join("big/big.bin");
    let file = fx.meta.files[1].clone();
    within(LIMIT, move || {
        // Two readers of one file, interleaved: one streams from the start, the other from
        // the middle. Neither's seek may reset the other's window.
        let mut a = File::open(&path).unwrap();
        let b = File::open(&path).unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut b_pos = 32 * MIB;
        for _ in 0..16 {
            a.read_exact(&mut buf).unwrap();
            b.read_exact_at(&mut buf, b_pos).unwrap();
            b_pos += buf.len() as u64;
        }
    });
    // Both handles are closed; their releases may still be on the way.
    let forgets = |calls: &[Call]| {
        calls
            .iter()
            .filter(|c| matches!(c, Call::Forget(_)))
            .count()
    };
    let calls = calls.wait_until(LIMIT, |c| forgets(c) >= 2);
    let hints = hints(&calls);
    assert_eq!(hints.len(), 2, "one readahead per handle: {hints:?}");
    let global = file.offset..file.offset + file.length;
    for (reader, ranges) in &hints {
        assert!(
            ranges
                .iter()
                .all(|r| !r.is_empty() && global.start <= r.start && r.end <= global.end)
        );
        assert!(
            ranges.windows(2).all(|w| w[1].end >= w[0].end),
            "reader {reader} hints went backwards: {ranges:?}"
        );
        assert_eq!(
            ranges[0].end - ranges[0].start,
            MIB,
            "first hint of reader {reader} is the minimum window"
        );
        let widest = ranges.iter().map(|r| r.end - r.start).max().unwrap();
        assert!(
            widest >= 4 * MIB,
            "reader {reader} never widened: {ranges:?}"
        );
    }
    let starts: Vec<u64> = hints.values().map(|r| r[0].start - file.offset).collect();
    assert!(starts.iter().any(|&s| s < MIB) && starts.iter().any(|&s| s > 32 * MIB));
    // Each handle was forgotten exactly once.
    let forgotten: Vec<u64> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Forget(r) => Some(*r),
            _ => None,
        })
        .collect();
    let mut readers: Vec<u64> = hints.keys().copied().collect();
    let mut f = forgotten.clone();
    f.sort();
    readers.sort();
    assert_eq!(f, readers);
}

#[test]
fn unmount_does_not_wait_for_reads_that_never_finish() {
    let fx = album();
    let (started_tx, started) = mpsc::channel();
    let mut m = Mounted::new(
        HangingSource {
            started: Mutex::new(started_tx),
        },
        &fx.meta,
    );
    let dir = m.dir();
    let (done_tx, done) = mpsc::channel();
    let reader = {
        let path = dir.join("album/a.txt");
        std::thread::spawn(move || {
            let _ = done_tx.send(std::fs::read(path));
        })
    };
    started
        .recv_timeout(LIMIT)
        .expect("the read reached the source");
    let mount = m.take();
    let t = std::time::Instant::now();
    within(LIMIT, move || mount.unmount()).expect("unmount");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let read = done.recv_timeout(LIMIT).expect("the reader was released");
    let e = read.expect_err("the waiting read failed");
    assert!(
        matches!(e.raw_os_error(), Some(libc::EIO | libc::ENOTCONN)),
        "{e}"
    );
    reader.join().unwrap();
    assert!(!is_mount_point(&dir));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn unmount_of_a_busy_mount_detaches_it_without_waiting_for_the_holder() {
    let fx = album();
    let mut m = Mounted::new(StoppedSource, &fx.meta);
    let dir = m.dir();
    let held = File::open(dir.join("album/a.txt")).unwrap();
    let mount = m.take();
    let t = std::time::Instant::now();
    within(LIMIT, move || mount.unmount()).expect("unmount");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(!is_mount_point(&dir), "detached from the tree");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    // The holder's reads fail instead of hanging, and closing it ends the session.
    let e = within(LIMIT, move || {
        let mut buf = [0u8; 10];
        held.read_at(&mut buf, 0).unwrap_err()
    });
    assert!(
        matches!(e.raw_os_error(), Some(libc::EIO | libc::ENOTCONN)),
        "{e}"
    );
}

#[test]
fn clean_unmount_leaves_an_empty_directory() {
    let fx = album();
    let mut m = Mounted::new(StoppedSource, &fx.meta);
    let dir = m.dir();
    assert!(is_mount_point(&dir));
    let mount = m.take();
    assert!(mount.is_mounted());
    within(LIMIT, move || mount.unmount()).expect("unmount");
    assert!(!is_mount_point(&dir));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn an_unmount_from_outside_is_noticed() {
    let fx = album();
    let mut m = Mounted::new(StoppedSource, &fx.meta);
    let dir = m.dir();
    let mount = m.take();
    let out = Command::new("fusermount3")
        .arg("-u")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mount = within(LIMIT, move || {
        rivulet_core::rt::block_on(mount.wait_unmounted());
        mount
    });
    assert!(!mount.is_mounted());
    within(LIMIT, move || mount.unmount()).expect("unmount after the fact");
    assert!(!is_mount_point(&dir));
}

#[test]
fn mount_point_must_be_an_empty_directory() {
    let fx = album();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("f"), b"x").unwrap();
    let e = rivulet_fuse::mount(
        StoppedSource,
        fx.meta.clone(),
        tmp.path(),
        MountOptions::default(),
    )
    .err()
    .expect("non-empty refused");
    assert!(matches!(e, MountError::NotEmpty { .. }), "{e}");
    let e = rivulet_fuse::mount(
        StoppedSource,
        fx.meta.clone(),
        &tmp.path().join("f"),
        MountOptions::default(),
    )
    .err()
    .expect("file refused");
    assert!(matches!(e, MountError::NotADirectory { .. }), "{e}");
    assert!(!is_mount_point(tmp.path()));
}

/// A FUSE mount whose server is gone: mounted on a /dev/fuse descriptor that is then closed
/// without ever answering, exactly what a killed FUSE daemon leaves behind.
struct StaleMount {
    tmp: tempfile::TempDir,
}

impl StaleMount {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .unwrap();
        let opts = CString::new(format!(
            "fd={},rootmode=40000,user_id=0,group_id=0",
            std::os::fd::AsRawFd::as_raw_fd(&dev)
        ))
        .unwrap();
        let target = CString::new(tmp.path().as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated strings; the fd is open for the call.
        let rc = unsafe {
            libc::mount(
                c"stale-test".as_ptr(),
                target.as_ptr(),
                c"fuse".as_ptr(),
                libc::MS_NODEV | libc::MS_NOSUID,
                opts.as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "mount: {}", std::io::Error::last_os_error());
        drop(dev);
        StaleMount { tmp }
    }
}

impl Drop for StaleMount {
    fn drop(&mut self) {
        let target = CString::new(self.tmp.path().as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn a_dead_fuse_mount_is_refused_with_the_command_that_clears_it() {
    let fx = album();
    let stale = StaleMount::new();
    let dir = stale.tmp.path().to_owned();
    let e = std::fs::metadata(&dir).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTCONN), "{e}");
    assert_eq!(e.kind(), ErrorKind::NotConnected);
    let err = within(LIMIT, {
        let dir = dir.clone();
        move || {
            rivulet_fuse::mount(
                StoppedSource,
                fx.meta.clone(),
                &dir,
                MountOptions::default(),
            )
            .err()
            .expect("stale mount refused")
        }
    });
    assert!(matches!(err, MountError::Stale { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("fusermount3 -u {}", dir.display())),
        "{msg}"
    );
}
