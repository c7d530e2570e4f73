//! Notices a lazy unmount from outside (`fusermount3 -u -z`, `umount -l`).
//!
//! A detached FUSE mount lives on, invisible, until the last open file on it is closed; the
//! kernel tells the filesystem nothing. A reader waiting for pieces no peer has would then keep
//! the session (and `rivulet mount`) alive until its read timeout. So a thread watches the mount
//! table (the kernel wakes `poll` on /proc/self/mountinfo when it changes) and, once our mount
//! is gone from it, fails every waiting and future read: the readers close their files and the
//! session ends.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;

use rivulet_core::rt::{Receiver, Sender};

/// How often the watcher looks whether the session ended by itself, when the table is quiet.
const IDLE_CHECK_MS: i32 = 1000;

/// Watches until the mount with device `major:minor` leaves the mount table (then closes
/// `abort`) or the session ends (`ended` closes).
pub(crate) fn spawn(dev: (u32, u32), abort: Sender<()>, ended: Receiver<()>) {
    let spawned = std::thread::Builder::new()
        .name("rivulet-detach-watch".into())
        .spawn(move || watch(dev, &abort, &ended));
    if let Err(e) = spawned {
        tracing::warn!("cannot watch for a lazy unmount: {e}");
    }
}

fn watch(dev: (u32, u32), abort: &Sender<()>, ended: &Receiver<()>) {
    let mut table = match File::open("/proc/self/mountinfo") {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("cannot watch for a lazy unmount: /proc/self/mountinfo: {e}");
            return;
        }
    };
    let wanted = format!("{}:{}", dev.0, dev.1);
    let mut text = String::new();
    loop {
        if ended.is_closed() || abort.is_closed() {
            return;
        }
        text.clear();
        let listed = table
            .seek(SeekFrom::Start(0))
            .and_then(|_| table.read_to_string(&mut text))
            .map(|_| listed(&text, &wanted));
        match listed {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!("mount detached from outside: failing its reads");
                abort.close();
                return;
            }
            Err(e) => {
                tracing::warn!("cannot watch for a lazy unmount: {e}");
                return;
            }
        }
        let mut pfd = libc::pollfd {
            fd: table.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: one valid pollfd, the file outlives the call.
        unsafe {
            libc::poll(&mut pfd, 1, IDLE_CHECK_MS);
        }
    }
}

/// True if a line of mountinfo has device `wanted` ("major:minor", the third field).
fn listed(mountinfo: &str, wanted: &str) -> bool {
    mountinfo
        .lines()
        .any(|l| l.split(' ').nth(2) == Some(wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_mount_by_its_device() {
        let table = "22 1 0:21 / /proc rw - proc proc rw\n\
                     98 22 0:55 / /tmp/m ro,nosuid - fuse.rivulet rivulet ro\n";
        assert!(listed(table, "0:55"));
        assert!(!listed(table, "0:5"));
        assert!(!listed(table, "1:55"));
    }
}
