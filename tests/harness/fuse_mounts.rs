//! FUSE mounts seen from outside: whether a path is a mount point, waiting for one, and
//! clearing a mount whose daemon died (kill -9 leaves it behind, answering ENOTCONN).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::wait_for;

/// Whether `path` is a mount point of this mount namespace.
pub fn is_mounted(path: &Path) -> bool {
    let Ok(path) = path.canonicalize() else {
        // A dead FUSE mount cannot be resolved (ENOTCONN): it is still mounted.
        return mountinfo_has(path);
    };
    mountinfo_has(&path)
}

fn mountinfo_has(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m == want)
}

/// Waits until `path` is a mount point; panics after `timeout`.
pub fn wait_mounted(path: &Path, timeout: Duration) {
    wait_for(timeout, &format!("a mount on {}", path.display()), || {
        is_mounted(path)
    });
}

/// Detaches whatever is mounted on `path` (`fusermount3 -u -z`, else `umount -l`) and waits
/// until it is gone.
pub fn clear_dead_mount(path: &Path) {
    if !is_mounted(path) {
        return;
    }
    let fuse = Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(path)
        .status();
    if !fuse.is_ok_and(|s| s.success()) {
        let _ = Command::new("umount").arg("-l").arg(path).status();
    }
    wait_for(
        Duration::from_secs(10),
        &format!("{} to be unmounted", path.display()),
        || !is_mounted(path),
    );
}
