//! Deterministic test data and its torrents.
//!
//! Every fixture is a file or directory tree of pseudo-random bytes (ChaCha8 keyed by the
//! fixture and file name, so the same bytes on every machine) plus a torrent made by the real
//! `mktorrent -d` (no date, so the same info-hash every time). Data, torrent and the expected
//! SHA-1 of every file are cached under the cargo target directory and reused by later runs.
//! Torrents for a running tracker are made per test with [`Fixture::torrent`]; the announce URL
//! lies outside the info dictionary, so their info-hash is that of the cached base torrent.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::torrent::{TorrentInfo, hex};

/// Bump when the content or layout of a fixture changes, so stale caches are not reused.
const CACHE_VERSION: &str = "v1";
const MIB: u64 = 1 << 20;

enum Content {
    Random(u64),
    Text(usize),
    /// A real MPEG-4 video of this many seconds, made by ffmpeg (bit-exact, so the same bytes
    /// on every run).
    Video(u32),
}

struct Spec {
    id: &'static str,
    /// Paths relative to the data root; a single entry without '/' makes a single-file torrent.
    files: &'static [(&'static str, Content)],
    /// The directory a multi-file torrent is made from (its name), unused for single files.
    dir: Option<&'static str>,
    piece_exp: u32,
}

const SINGLE: Spec = Spec {
    id: "single",
    files: &[("single.bin", Content::Random(64 * MIB))],
    dir: None,
    piece_exp: 18,
};
const MULTI: Spec = Spec {
    id: "multi",
    files: &[
        ("multi/c.txt", Content::Text(1000)),
        ("multi/dir/a.bin", Content::Random(5 * MIB)),
        ("multi/dir/empty.bin", Content::Random(0)),
        ("multi/dir/sub/b.bin", Content::Random(13 * MIB + 1)),
    ],
    dir: Some("multi"),
    piece_exp: 16,
};
const BIG: Spec = Spec {
    id: "big",
    files: &[("big.bin", Content::Random(256 * MIB))],
    dir: None,
    piece_exp: 18,
};
const GIB: Spec = Spec {
    id: "gib",
    files: &[("gib.bin", Content::Random(1024 * MIB))],
    dir: None,
    piece_exp: 20,
};
const SINGLE_SMALL: Spec = Spec {
    id: "single-small",
    files: &[("small.bin", Content::Random(3 * MIB + 12345))],
    dir: None,
    piece_exp: 16,
};
const BIG_PIECES: Spec = Spec {
    id: "big-pieces",
    files: &[
        ("big-pieces/a.bin", Content::Random(100 * MIB + 5)),
        ("big-pieces/b.bin", Content::Random(36 * MIB)),
    ],
    dir: Some("big-pieces"),
    piece_exp: 27,
};
const MEDIA: Spec = Spec {
    id: "media",
    files: &[("video.mp4", Content::Video(10))],
    dir: None,
    piece_exp: 16,
};
const MULTI_SMALL: Spec = Spec {
    id: "multi-small",
    files: &[
        ("multi-small/c.txt", Content::Text(1000)),
        ("multi-small/dir/a.bin", Content::Random(300_000)),
        ("multi-small/dir/empty.bin", Content::Random(0)),
        ("multi-small/dir/sub/b.bin", Content::Random(700_001)),
    ],
    dir: Some("multi-small"),
    piece_exp: 15,
};

/// One payload file and what a correct copy must hash to.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExpectedFile {
    /// Relative to the data root (and to a client's output directory): starts with the name.
    pub rel: PathBuf,
    pub len: u64,
    pub sha1_hex: String,
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    files: Vec<ExpectedFile>,
}

/// A generated data set with its base torrent.
pub struct Fixture {
    pub id: &'static str,
    /// Directory holding the payload: `root/<name>` is the file or top directory.
    pub root: PathBuf,
    /// Files in torrent order.
    pub files: Vec<ExpectedFile>,
    pub meta: TorrentInfo,
    piece_exp: u32,
    content: PathBuf,
}

macro_rules! fixture_getter {
    ($(#[$doc:meta])* $fn:ident, $spec:expr) => {
        $(#[$doc])*
        pub fn $fn() -> &'static Fixture {
            static CELL: OnceLock<Fixture> = OnceLock::new();
            CELL.get_or_init(|| Fixture::load_or_make(&$spec))
        }
    };
}

impl Fixture {
    fixture_getter!(
        /// 64 MiB single file, 256 KiB pieces.
        single,
        SINGLE
    );
    fixture_getter!(
        /// c.txt 1000 B, dir/a.bin 5 MiB, dir/empty.bin 0 B, dir/sub/b.bin 13 MiB + 1; 64 KiB pieces.
        multi,
        MULTI
    );
    fixture_getter!(
        /// 256 MiB single file, 256 KiB pieces (benchmarks).
        big,
        BIG
    );
    fixture_getter!(
        /// 1 GiB single file, 1 MiB pieces (benchmarks).
        gib,
        GIB
    );
    fixture_getter!(
        /// 3 MiB + 12345 B single file, 64 KiB pieces, short last piece.
        single_small,
        SINGLE_SMALL
    );
    fixture_getter!(
        /// a.bin 100 MiB + 5 B, b.bin 36 MiB; 128 MiB pieces: the first spans both files.
        big_pieces,
        BIG_PIECES
    );
    fixture_getter!(
        /// video.mp4: 10 s of 640x360 MPEG-4 video (~4 MB, index at the end), 64 KiB pieces.
        media,
        MEDIA
    );
    fixture_getter!(
        /// The multi layout at ~1 MB, 32 KiB pieces.
        multi_small,
        MULTI_SMALL
    );

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    pub fn info_hash_hex(&self) -> String {
        self.meta.info_hash_hex()
    }

    /// A magnet link to this data set: its info-hash, name, the tracker `tr` and `x.pe` peers.
    pub fn magnet(&self, tracker: &str, peers: &[std::net::SocketAddr]) -> String {
        use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
        let mut m = format!(
            "magnet:?xt=urn:btih:{}&dn={}&tr={}",
            self.info_hash_hex(),
            utf8_percent_encode(self.name(), NON_ALPHANUMERIC),
            utf8_percent_encode(tracker, NON_ALPHANUMERIC)
        );
        for p in peers {
            m.push_str(&format!("&x.pe={p}"));
        }
        m
    }

    pub fn total_length(&self) -> u64 {
        self.meta.total_length
    }

    /// Makes `dir/<id>-<tag>.torrent` announcing to `announce` with the real mktorrent.
    pub fn torrent(&self, announce: &str, tag: &str, dir: &Path) -> PathBuf {
        let out = dir.join(format!("{}-{tag}.torrent", self.id));
        mktorrent(&self.content, announce, self.piece_exp, &out);
        let made = TorrentInfo::read(&out);
        assert_eq!(
            made.info_hash, self.meta.info_hash,
            "mktorrent made a different info-hash for {} than for the cached base torrent",
            self.id
        );
        out
    }

    /// Copies the payload into `dest` (as `dest/<name>...`), for a client that may write to
    /// its data: the cached original must stay intact for the other tests.
    pub fn copy_payload(&self, dest: &Path) {
        for f in &self.files {
            let to = dest.join(&f.rel);
            fs::create_dir_all(to.parent().expect("file has a parent"))
                .unwrap_or_else(|e| panic!("mkdir for {}: {e}", to.display()));
            fs::copy(self.root.join(&f.rel), &to)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", f.rel.display(), to.display()));
        }
    }

    /// Reads `buf.len()` bytes at `offset` of the torrent's concatenated payload.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let mut file_start = 0u64;
        let mut done = 0usize;
        for f in &self.files {
            let file_end = file_start + f.len;
            let pos = offset + done as u64;
            if done < buf.len() && pos < file_end && f.len > 0 {
                let n = ((file_end - pos) as usize).min(buf.len() - done);
                let mut file = File::open(self.root.join(&f.rel))?;
                file.seek(SeekFrom::Start(pos - file_start))?;
                file.read_exact(&mut buf[done..done + n])?;
                done += n;
            }
            file_start = file_end;
        }
        if done == buf.len() {
            Ok(())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "range past the end of the torrent",
            ))
        }
    }

    /// The bytes of piece `index`.
    pub fn piece(&self, index: u32) -> Vec<u8> {
        let mut buf = vec![0; self.meta.piece_len(index) as usize];
        self.read_at(index as u64 * self.meta.piece_length, &mut buf)
            .unwrap_or_else(|e| panic!("fixture {} piece {index}: {e}", self.id));
        buf
    }

    fn load_or_make(spec: &Spec) -> Fixture {
        let dir = cache_dir().join(CACHE_VERSION).join(spec.id);
        if !dir.join("manifest.json").exists() {
            make(spec, &dir);
        }
        let manifest: Manifest = serde_json::from_slice(
            &fs::read(dir.join("manifest.json")).expect("fixture manifest readable"),
        )
        .expect("fixture manifest is valid JSON");
        let root = dir.join("data");
        let content = root.join(spec.dir.unwrap_or(spec.files[0].0));
        let meta = TorrentInfo::read(&dir.join("base.torrent"));
        // Torrent order comes from the torrent itself, not from the spec.
        let files = meta
            .files
            .iter()
            .map(|(path, _)| {
                let mut rel = PathBuf::from(&meta.name);
                rel.extend(path);
                manifest
                    .files
                    .iter()
                    .find(|f| f.rel == rel)
                    .unwrap_or_else(|| panic!("{} not in manifest of {}", rel.display(), spec.id))
                    .clone()
            })
            .collect();
        Fixture {
            id: spec.id,
            root,
            files,
            meta,
            piece_exp: spec.piece_exp,
            content,
        }
    }
}

/// `target/rivulet-fixtures`, found from the test executable (`target/<profile>/deps/<exe>`),
/// or `RIVULET_FIXTURE_DIR`.
fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RIVULET_FIXTURE_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .expect("test executable lives in target/<profile>/deps")
        .join("rivulet-fixtures")
}

/// Generates into a private directory and renames it into place, so that a concurrent or
/// interrupted run never leaves a half-made fixture behind.
fn make(spec: &Spec, dir: &Path) {
    let parent = dir.parent().expect("fixture dir has a parent");
    fs::create_dir_all(parent).expect("create fixture cache dir");
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}-", spec.id))
        .tempdir_in(parent)
        .expect("create fixture temp dir");
    let data = tmp.path().join("data");
    let mut files = Vec::new();
    for (rel, content) in spec.files {
        let path = data.join(rel);
        fs::create_dir_all(path.parent().expect("file has a parent")).expect("create data dir");
        let (len, sha1) = write_content(spec.id, rel, content, &path);
        files.push(ExpectedFile {
            rel: PathBuf::from(rel),
            len,
            sha1_hex: hex(&sha1),
        });
    }
    let content = data.join(spec.dir.unwrap_or(spec.files[0].0));
    mktorrent(
        &content,
        "http://127.0.0.1:1/announce",
        spec.piece_exp,
        &tmp.path().join("base.torrent"),
    );
    fs::write(
        tmp.path().join("manifest.json"),
        serde_json::to_vec_pretty(&Manifest { files }).expect("manifest serialises"),
    )
    .expect("write manifest");
    let made = tmp.keep();
    if fs::rename(&made, dir).is_err() {
        // Another process finished first; its copy is identical.
        let _ = fs::remove_dir_all(&made);
        assert!(
            dir.join("manifest.json").exists(),
            "could not move fixture {} into {}",
            spec.id,
            dir.display()
        );
    }
}

fn write_content(id: &str, rel: &str, content: &Content, path: &Path) -> (u64, [u8; 20]) {
    let mut out = BufWriter::new(File::create(path).expect("create fixture file"));
    let mut hasher = Sha1::new();
    let len = match content {
        Content::Random(len) => {
            let seed: [u8; 32] = file_seed(id, rel);
            let mut rng = ChaCha8Rng::from_seed(seed);
            let mut buf = vec![0u8; MIB as usize];
            let mut left = *len;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                rng.fill_bytes(&mut buf[..n]);
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).expect("write fixture file");
                left -= n as u64;
            }
            *len
        }
        Content::Video(seconds) => {
            drop(out);
            return write_video(*seconds, path);
        }
        Content::Text(len) => {
            let mut text = String::new();
            for i in 1.. {
                if text.len() >= *len {
                    break;
                }
                text.push_str(&format!("multi-file fixture text line {i}\n"));
            }
            let bytes = &text.as_bytes()[..*len];
            hasher.update(bytes);
            out.write_all(bytes).expect("write fixture file");
            *len as u64
        }
    };
    out.flush().expect("flush fixture file");
    (len, hasher.finalize().into())
}

/// Encodes a test pattern with ffmpeg's built-in MPEG-4 encoder, single-threaded and bit-exact.
fn write_video(seconds: u32, path: &Path) -> (u64, [u8; 20]) {
    let result = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=640x360:rate=25", "-t"])
        .arg(seconds.to_string())
        .args(["-c:v", "mpeg4", "-q:v", "2", "-g", "25", "-threads", "1"])
        .args([
            "-fflags",
            "+bitexact",
            "-flags:v",
            "+bitexact",
            "-map_metadata",
            "-1",
        ])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg (apt-get install ffmpeg): {e}"));
    assert!(
        result.status.success(),
        "ffmpeg failed to make {}: {}",
        path.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    let bytes = fs::read(path).expect("read the video ffmpeg made");
    (bytes.len() as u64, Sha1::digest(&bytes).into())
}

/// A 32-byte ChaCha seed from the fixture and file name.
fn file_seed(id: &str, rel: &str) -> [u8; 32] {
    let a: [u8; 20] = Sha1::digest(format!("{id}/{rel}")).into();
    let b: [u8; 20] = Sha1::digest(format!("{rel}/{id}")).into();
    let mut seed = [0u8; 32];
    seed[..20].copy_from_slice(&a);
    seed[20..].copy_from_slice(&b[..12]);
    seed
}

fn mktorrent(content: &Path, announce: &str, piece_exp: u32, out: &Path) {
    let _ = fs::remove_file(out);
    let result = Command::new("mktorrent")
        .arg("-d")
        .arg("-l")
        .arg(piece_exp.to_string())
        .arg("-a")
        .arg(announce)
        .arg("-o")
        .arg(out)
        .arg(content)
        .output()
        .unwrap_or_else(|e| panic!("cannot run mktorrent (apt-get install mktorrent): {e}"));
    assert!(
        result.status.success(),
        "mktorrent failed for {}: {}",
        content.display(),
        String::from_utf8_lossy(&result.stderr)
    );
}
