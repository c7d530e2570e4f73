//! Checks a directory before mounting on it, naming the fix when it is a dead FUSE mount or a
//! live rivulet mount (found in `/proc/self/mountinfo`), and that /dev/fuse can be opened.

use std::io;
use std::path::{Path, PathBuf};

use crate::MountError;

/// Accepts an existing, empty directory that is not a dead FUSE mount, when /dev/fuse can be
/// opened.
pub fn check(dir: &Path) -> Result<(), MountError> {
    check_dir(dir)?;
    check_fuse_device(dir)
}

/// An error naming /dev/fuse if this user cannot open it (no permission, or no such device).
pub(crate) fn check_fuse_device(dir: &Path) -> Result<(), MountError> {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse");
    match opened {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::NotFound
            ) =>
        {
            Err(MountError::FuseDevice {
                dir: dir.to_owned(),
                source: e,
            })
        }
        _ => Ok(()),
    }
}

fn check_dir(dir: &Path) -> Result<(), MountError> {
    let meta = std::fs::metadata(dir).map_err(|e| classify(dir, e))?;
    if !meta.is_dir() {
        return Err(MountError::NotADirectory {
            dir: dir.to_owned(),
        });
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| classify(dir, e))?;
    if entries.next().is_some() {
        let dir = dir.to_owned();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let rivulet =
            std::fs::canonicalize(&dir).is_ok_and(|real| top_mount_is_rivulet(&mountinfo, &real));
        return Err(if rivulet {
            MountError::AlreadyMounted { dir }
        } else {
            MountError::NotEmpty { dir }
        });
    }
    Ok(())
}

/// Whether the last (topmost) mount on `dir` in mountinfo text is a rivulet FUSE mount: fstype
/// `fuse.rivulet`, or `fuse` with source `rivulet` (how fuser names it without a subtype).
fn top_mount_is_rivulet(mountinfo: &str, dir: &Path) -> bool {
    let want = dir.as_os_str().as_encoded_bytes();
    mountinfo
        .lines()
        .filter_map(|line| {
            // ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
            let (head, tail) = line.split_once(" - ")?;
            let point = head.split(' ').nth(4)?;
            let mut tail = tail.split(' ');
            let (fstype, source) = (tail.next()?, tail.next()?);
            (unescape(point) == want).then_some((fstype, source))
        })
        .next_back()
        .is_some_and(|(fstype, source)| {
            fstype == "fuse.rivulet" || (fstype.starts_with("fuse") && source == "rivulet")
        })
}

/// Undoes the kernel's octal escapes (`\040` for a space) in a mountinfo path.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).and_then(|d| {
            d.iter()
                .all(|c| (b'0'..=b'7').contains(c))
                .then(|| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')))
        });
        match octal {
            Some(v) if b[i] == b'\\' && v <= 0xff => {
                out.push(v as u8);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// A FUSE mount whose server died answers every request with ENOTCONN (ECONNABORTED once its
/// connection was aborted through fusectl): say so, with the command that clears it.
fn classify(dir: &Path, source: io::Error) -> MountError {
    let dir: PathBuf = dir.to_owned();
    match source.raw_os_error() {
        Some(libc::ENOTCONN | libc::ECONNABORTED) => MountError::Stale { dir },
        _ => MountError::Inaccessible { dir, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_connection_errors_read_as_a_stale_mount_with_the_fix() {
        let e = classify(
            Path::new("/m"),
            io::Error::from_raw_os_error(libc::ENOTCONN),
        );
        assert!(matches!(e, MountError::Stale { .. }));
        let msg = e.to_string();
        assert!(msg.contains("fusermount3 -u /m"), "{msg}");
        assert!(msg.contains("umount -l /m"), "{msg}");
        assert!(!msg.contains('\n'));
        let e = classify(Path::new("/m"), io::Error::from_raw_os_error(libc::ENOENT));
        assert!(matches!(e, MountError::Inaccessible { .. }));
    }

    #[test]
    fn the_topmost_mount_decides_whether_rivulet_holds_a_folder() {
        let info = "22 1 0:21 / /proc rw - proc proc rw\n\
                    40 22 0:50 / /tmp/my\\040mnt rw,nosuid - fuse.rivulet rivulet ro,user_id=0\n\
                    41 22 0:51 / /tmp/plain rw - fuse rivulet rw\n\
                    42 22 0:52 / /tmp/other rw - fuse.sshfs host:/ rw\n\
                    43 22 0:53 / /tmp/plain rw - tmpfs tmpfs rw\n";
        assert!(top_mount_is_rivulet(info, Path::new("/tmp/my mnt")));
        assert!(!top_mount_is_rivulet(info, Path::new("/tmp/other")));
        // Something else was mounted over the rivulet mount.
        assert!(!top_mount_is_rivulet(info, Path::new("/tmp/plain")));
        assert!(!top_mount_is_rivulet(info, Path::new("/tmp/my")));
        let msg = MountError::AlreadyMounted {
            dir: PathBuf::from("/m"),
        }
        .to_string();
        assert!(msg.contains("already mounted by rivulet"), "{msg}");
        assert!(msg.contains("`fusermount3 -u /m`"), "{msg}");
    }

    #[test]
    fn refuses_files_and_non_empty_folders() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(check(tmp.path()).is_ok());
        let file = tmp.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            check(&file),
            Err(MountError::NotADirectory { .. })
        ));
        assert!(matches!(
            check(tmp.path()),
            Err(MountError::NotEmpty { .. })
        ));
        assert!(matches!(
            check(&tmp.path().join("missing")),
            Err(MountError::Inaccessible { .. })
        ));
    }
}
