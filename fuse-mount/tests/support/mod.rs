//! Shared parts of the mount tests: torrents built in memory, sources with controlled
//! behaviour, bounded waits and mount bookkeeping.

#![allow(dead_code)] // each test file uses its own subset

use std::future::Future;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rivulet_core::bitfield::Bitfield;
use rivulet_core::metainfo::Metainfo;
use rivulet_core::reader::TorrentBytes;
use rivulet_core::torrent::{ReadError, Stats};
use rivulet_fuse::{Mount, MountOptions, Source};
use serde_bencode::value::Value;
use sha1::{Digest, Sha1};
use tempfile::TempDir;

fn dict(entries: Vec<(&str, Value)>) -> Value {
    Value::Dict(
        entries
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
    )
}

fn text(s: &str) -> Value {
    Value::Bytes(s.as_bytes().to_vec())
}

/// A torrent and the bytes it describes.
pub struct Fixture {
    /// The .torrent file (for a real seeder).
    pub torrent: Vec<u8>,
    pub meta: Arc<Metainfo>,
    /// The torrent's concatenated data.
    pub data: Arc<Vec<u8>>,
}

impl Fixture {
    /// Content of file `i` of the torrent.
    pub fn file_data(&self, i: usize) -> &[u8] {
        let f = &self.meta.files[i];
        &self.data[f.offset as usize..(f.offset + f.length) as usize]
    }
}

/// Deterministic, position-dependent bytes, so a misplaced range shows.
fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) % 251) as u8).collect()
}

/// Builds a torrent named `name`; `files` are (path inside the torrent, length). One file
/// whose path equals `name` makes a single-file torrent.
pub fn torrent(name: &str, files: &[(&str, u64)], piece_length: u64) -> Fixture {
    let total: u64 = files.iter().map(|f| f.1).sum();
    let data = content(total as usize);
    let pieces: Vec<u8> = data
        .chunks(piece_length as usize)
        .flat_map(|c| <[u8; 20]>::from(Sha1::digest(c)))
        .collect();
    let mut info = vec![
        ("name", text(name)),
        ("piece length", Value::Int(piece_length as i64)),
        ("pieces", Value::Bytes(pieces)),
    ];
    if let [(path, len)] = files
        && *path == name
    {
        info.push(("length", Value::Int(*len as i64)));
    } else {
        let list = files
            .iter()
            .map(|(path, len)| {
                dict(vec![
                    ("length", Value::Int(*len as i64)),
                    ("path", Value::List(path.split('/').map(text).collect())),
                ])
            })
            .collect();
        info.push(("files", Value::List(list)));
    }
    let bytes = serde_bencode::to_bytes(&dict(vec![
        ("announce", text("http://127.0.0.1:6969/announce")),
        ("info", dict(info)),
    ]))
    .expect("encode test torrent");
    let meta = Metainfo::from_bytes(&bytes).expect("test torrent parses");
    Fixture {
        torrent: bytes,
        meta: Arc::new(meta),
        data: Arc::new(data),
    }
}

/// Answers reads like the engine stub does today: the engine is stopped.
pub struct StoppedSource;

impl TorrentBytes for StoppedSource {
    fn read(
        &self,
        _offset: u64,
        _len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, ReadError>> + Send + 'static + use<> {
        std::future::ready(Err(ReadError::Stopped))
    }
    fn prefetch(&self, _reader: u64, _range: Range<u64>, _urgency: Duration) {}
    fn forget_reader(&self, _reader: u64) {}
}

impl Source for StoppedSource {
    fn stats(&self) -> Stats {
        Stats::default()
    }
    fn have(&self) -> Bitfield {
        Bitfield::default()
    }
}

/// What a [`MemorySource`] was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Read(Range<u64>),
    Prefetch { reader: u64, range: Range<u64> },
    Forget(u64),
}

/// The calls a [`MemorySource`] received, in order.
#[derive(Default)]
pub struct Calls {
    list: Mutex<Vec<Call>>,
    changed: Condvar,
}

impl Calls {
    fn push(&self, call: Call) {
        self.list.lock().unwrap().push(call);
        self.changed.notify_all();
    }

    pub fn snapshot(&self) -> Vec<Call> {
        self.list.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the calls so far (the kernel sends some requests, such as
    /// release, after the system call that caused them has returned).
    pub fn wait_until(&self, limit: Duration, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let list = self.list.lock().unwrap();
        let (list, timeout) = self
            .changed
            .wait_timeout_while(list, limit, |l| !done(l))
            .unwrap();
        assert!(!timeout.timed_out(), "calls never got there: {:?}", *list);
        list.clone()
    }
}

/// Serves the fixture's bytes at once and records every call.
pub struct MemorySource {
    pub data: Arc<Vec<u8>>,
    pub have: Bitfield,
    pub stats: Stats,
    pub calls: Arc<Calls>,
}

impl MemorySource {
    pub fn new(fx: &Fixture, have: Bitfield) -> Self {
        let stats = Stats {
            pieces_total: fx.meta.piece_count(),
            pieces_have: have.count(),
            bytes_total: fx.meta.total_length,
            peers: 3,
            ..Stats::default()
        };
        MemorySource {
            data: fx.data.clone(),
            have,
            stats,
            calls: Arc::default(),
        }
    }
}

impl TorrentBytes for MemorySource {
    fn read(
        &self,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, ReadError>> + Send + 'static + use<> {
        self.calls.push(Call::Read(offset..offset + len));
        let data = self.data.clone();
        async move {
            let start = offset as usize;
            let end = (offset + len).min(data.len() as u64) as usize;
            data.get(start..end)
                .map(<[u8]>::to_vec)
                .ok_or(ReadError::OutOfRange { offset })
        }
    }
    fn prefetch(&self, reader: u64, range: Range<u64>, _urgency: Duration) {
        self.calls.push(Call::Prefetch { reader, range });
    }
    fn forget_reader(&self, reader: u64) {
        self.calls.push(Call::Forget(reader));
    }
}

impl Source for MemorySource {
    fn stats(&self) -> Stats {
        self.stats.clone()
    }
    fn have(&self) -> Bitfield {
        self.have.clone()
    }
}

/// Reads never complete, like pieces no peer has; each read is announced on `started`.
pub struct HangingSource {
    pub started: Mutex<mpsc::Sender<u64>>,
}

impl TorrentBytes for HangingSource {
    fn read(
        &self,
        offset: u64,
        _len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, ReadError>> + Send + 'static + use<> {
        let _ = self.started.lock().unwrap().send(offset);
        std::future::pending()
    }
    fn prefetch(&self, _reader: u64, _range: Range<u64>, _urgency: Duration) {}
    fn forget_reader(&self, _reader: u64) {}
}

impl Source for HangingSource {
    fn stats(&self) -> Stats {
        Stats::default()
    }
    fn have(&self) -> Bitfield {
        Bitfield::default()
    }
}

/// A mounted fixture. Fields drop in order: the mount goes before its directory.
pub struct Mounted {
    pub mount: Option<Mount>,
    pub tmp: TempDir,
}

impl Mounted {
    pub fn new<S: Source>(source: S, meta: &Arc<Metainfo>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mount = rivulet_fuse::mount(source, meta.clone(), tmp.path(), MountOptions::default())
            .expect("mount");
        Mounted {
            mount: Some(mount),
            tmp,
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.tmp.path().canonicalize().unwrap()
    }

    pub fn take(&mut self) -> Mount {
        self.mount.take().expect("still mounted")
    }
}

/// Runs `f` on its own thread and fails the test if it takes longer than `limit`: a request
/// the filesystem never answers must fail the test, not hang it. The caller's mount guard
/// then unmounts, which frees the stuck thread.
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker sends before it ends"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("timed out after {limit:?}"),
    }
}

/// Whether `dir` is a mount point of this mount namespace.
pub fn is_mount_point(dir: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.to_str().unwrap();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m == dir))
}
