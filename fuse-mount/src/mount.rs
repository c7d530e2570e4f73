//! Mounting torrents on a directory and taking it down again without ever hanging.
//!
//! fuser serves the mount from a background thread. Unmounting first fails every read still
//! waiting for pieces, then unmounts (lazily if a process still has a file open) and waits a
//! bounded time for the session to end. A lazy unmount from outside fails the reads as well
//! (see [`crate::detach_watch`]).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fuser::{BackgroundSession, Config, MountOption, SessionACL};
use rivulet_core::metainfo::Metainfo;
use rivulet_core::rt::{self, Receiver, Sender};

use crate::detach_watch;
use crate::fs::TorrentFs;
use crate::fs::library::Torrents;
use crate::mount_point;
use crate::source::Source;

/// How long an unmount waits for the session to end before aborting the connection, and then
/// for the abort to take effect.
const SESSION_END_GRACE: Duration = Duration::from_secs(3);
const ABORT_GRACE: Duration = Duration::from_secs(2);

/// Choices of the `mount` command.
#[derive(Clone, Debug, Default)]
pub struct MountOptions {
    /// Let users other than the one mounting use the mount (needs `user_allow_other` in
    /// /etc/fuse.conf when not root).
    pub allow_other: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount point {}: {source}", .dir.display())]
    Inaccessible { dir: PathBuf, source: io::Error },
    #[error("mount point {} is not a directory", .dir.display())]
    NotADirectory { dir: PathBuf },
    #[error("mount point {} is not empty", .dir.display())]
    NotEmpty { dir: PathBuf },
    #[error(
        "mount point {0} is already mounted by rivulet; unmount it with `fusermount3 -u {0}`",
        .dir.display()
    )]
    AlreadyMounted { dir: PathBuf },
    #[error(
        "mount point {0} is a dead FUSE mount (transport endpoint is not connected); clear it with `fusermount3 -u {0}` or `umount -l {0}`",
        .dir.display()
    )]
    Stale { dir: PathBuf },
    #[error("cannot mount on {}: {source}", .dir.display())]
    Mount { dir: PathBuf, source: io::Error },
    #[error(
        "cannot mount on {}: no permission to open /dev/fuse ({source}); run as a user who may \
         (often the `fuse` group) or check the device's permissions",
        .dir.display()
    )]
    FuseDevice { dir: PathBuf, source: io::Error },
    #[error("cannot unmount {}: {source}", .dir.display())]
    Unmount { dir: PathBuf, source: io::Error },
}

/// A mounted torrent. Dropping it unmounts, like [`Mount::unmount`] but logging failures.
pub struct Mount {
    dir: PathBuf,
    session: Option<BackgroundSession>,
    /// Closing it fails every read still waiting.
    abort: Sender<()>,
    /// Closes when the session ends, however the filesystem was unmounted.
    ended: Receiver<()>,
    /// The connection's name under /sys/fs/fuse/connections.
    connection: Option<u32>,
}

/// Mounts the torrent read-only on `dir`, an existing empty directory. Returns once the kernel
/// has the filesystem: the whole tree is visible from then on.
pub fn mount<S: Source>(
    source: S,
    meta: Arc<Metainfo>,
    dir: &Path,
    opts: MountOptions,
) -> Result<Mount, MountError> {
    let torrents = Torrents::new(Duration::ZERO);
    torrents.add(source, meta);
    mount_torrents(&torrents, dir, opts)
}

/// Mounts `torrents` read-only on `dir`, an existing empty directory: those added already are
/// there from the first listing, and `torrents` adds and removes others while mounted. One
/// mount per [`Torrents`].
pub fn mount_torrents<S: Source>(
    torrents: &Torrents<S>,
    dir: &Path,
    opts: MountOptions,
) -> Result<Mount, MountError> {
    mount_point::check(dir)?;
    let dir = dir
        .canonicalize()
        .map_err(|source| MountError::Inaccessible {
            dir: dir.to_owned(),
            source,
        })?;
    let (abort, abort_rx) = rt::bounded(1);
    let (alive, ended) = rt::bounded(1);
    let shared = torrents.shared();
    let fs = TorrentFs::new(shared.clone(), abort_rx, alive);

    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::DefaultPermissions,
        MountOption::FSName("rivulet".into()),
        MountOption::Subtype("rivulet".into()),
    ];
    config.acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    let session =
        fuser::spawn_mount(fs, &dir, &config).map_err(|source| mount_failed(&dir, source))?;
    shared.set_notifier(session.notifier());
    let dev = std::fs::metadata(&dir)
        .ok()
        .map(|m| (libc::major(m.dev()), libc::minor(m.dev())));
    if let Some(dev) = dev {
        detach_watch::spawn(dev, abort.clone(), ended.clone());
    }
    let connection = dev.map(|(_, minor)| minor);
    tracing::info!(dir = %dir.display(), "mounted");
    Ok(Mount {
        dir,
        session: Some(session),
        abort,
        ended,
        connection,
    })
}

/// Names /dev/fuse when it is what could not be opened: fuser's own error (or fusermount3's)
/// says only "permission denied", or less.
fn mount_failed(dir: &Path, source: io::Error) -> MountError {
    match mount_point::check_fuse_device(dir) {
        Err(named) => named,
        Ok(()) => MountError::Mount {
            dir: dir.to_owned(),
            source,
        },
    }
}

impl Mount {
    /// The mount point (canonical).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// False once the filesystem is gone, also when unmounted from outside
    /// (`fusermount3 -u DIR`).
    pub fn is_mounted(&self) -> bool {
        !self.ended.is_closed()
    }

    /// Resolves when the filesystem is gone, also when unmounted from outside; the CLI waits on
    /// this next to Ctrl-C to know when to shut the torrent down.
    pub async fn wait_unmounted(&self) {
        // Nothing is ever sent: recv returns when the channel closes.
        let _ = self.ended.recv().await;
    }

    /// Fails waiting reads with EIO, unmounts and waits (bounded) for the session to end.
    pub fn unmount(mut self) -> Result<(), MountError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), MountError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        self.abort.close();
        if self.is_mounted()
            && let Err(source) = unmount_dir(&self.dir)
        {
            // The session ends only once the kernel lets go of the mount; reap it then.
            std::thread::spawn(move || session.join());
            return Err(MountError::Unmount {
                dir: self.dir.clone(),
                source,
            });
        }
        let ended = self.wait_ended(SESSION_END_GRACE)
            || (self.abort_connection() && self.wait_ended(ABORT_GRACE));
        if !ended {
            // Still open somewhere (a shell's working directory, a process holding a file): the
            // lazy unmount keeps the connection until the last of those closes. Reads on it
            // fail already; reap the session in the background when it finally ends.
            tracing::warn!(
                dir = %self.dir.display(),
                "mount detached but still in use; it goes away when the last file on it is closed"
            );
            std::thread::spawn(move || session.join());
            return Ok(());
        }
        if let Err(e) = session.join() {
            tracing::warn!("FUSE session ended with: {e}");
        }
        tracing::info!(dir = %self.dir.display(), "unmounted");
        Ok(())
    }

    /// Aborts the FUSE connection through fusectl, when it is mounted; true if that worked.
    fn abort_connection(&self) -> bool {
        let Some(conn) = self.connection else {
            return false;
        };
        let aborted =
            std::fs::write(format!("/sys/fs/fuse/connections/{conn}/abort"), b"1").is_ok();
        if aborted {
            tracing::info!("aborted FUSE connection {conn}");
        }
        aborted
    }

    fn wait_ended(&self, limit: Duration) -> bool {
        rt::block_on(rt::timeout(limit, self.wait_unmounted())).is_ok()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!("{e}");
        }
    }
}

/// Unmounts `dir`, lazily if it is busy. Root unmounts directly; other users go through the
/// setuid `fusermount3`.
fn unmount_dir(dir: &Path) -> io::Result<()> {
    let c = CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let umount = |flags| {
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    let err = match umount(0) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    match err.raw_os_error() {
        Some(libc::EBUSY) => umount(libc::MNT_DETACH),
        // Already gone: unmounted from outside just now.
        Some(libc::EINVAL) => Ok(()),
        Some(libc::EPERM) => {
            let out = std::process::Command::new("fusermount3")
                .args(["-u", "-z", "--"])
                .arg(dir)
                .output()?;
            if out.status.success() {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "fusermount3 -u -z failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )))
            }
        }
        _ => Err(err),
    }
}
