//! Reads the .torrent files the harness makes, independently of the engine under test: the
//! info-hash, piece hashes and file list the fake peer and the checks need.

use std::path::Path;

use serde::Deserialize;
use serde_bencode::value::Value;
use serde_bytes::ByteBuf;
use sha1::{Digest, Sha1};

#[derive(Deserialize)]
struct Raw {
    announce: Option<String>,
    info: RawInfo,
}

#[derive(Deserialize)]
struct RawInfo {
    name: String,
    #[serde(rename = "piece length")]
    piece_length: u64,
    pieces: ByteBuf,
    length: Option<u64>,
    files: Option<Vec<RawFile>>,
}

#[derive(Deserialize)]
struct RawFile {
    length: u64,
    path: Vec<String>,
}

/// What the harness knows about one of its torrents.
#[derive(Clone, Debug)]
pub struct TorrentInfo {
    pub info_hash: [u8; 20],
    pub name: String,
    pub announce: Option<String>,
    pub piece_length: u64,
    pub piece_hashes: Vec<[u8; 20]>,
    /// Files in torrent order: path below the torrent's name (empty for a single file), length.
    pub files: Vec<(Vec<String>, u64)>,
    pub total_length: u64,
}

impl TorrentInfo {
    pub fn read(path: &Path) -> TorrentInfo {
        let bytes =
            std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Self::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    pub fn parse(bytes: &[u8]) -> Result<TorrentInfo, String> {
        let raw: Raw = serde_bencode::from_bytes(bytes).map_err(|e| e.to_string())?;
        // mktorrent writes canonical bencode (sorted keys), so re-encoding the info dictionary
        // gives back exactly the bytes the info-hash is taken over.
        let Value::Dict(top) =
            serde_bencode::from_bytes::<Value>(bytes).map_err(|e| e.to_string())?
        else {
            return Err("top level is not a dictionary".into());
        };
        let info = top.get(&b"info"[..]).ok_or("no info dictionary")?;
        let info_bytes = serde_bencode::to_bytes(info).map_err(|e| e.to_string())?;
        let info_hash: [u8; 20] = Sha1::digest(&info_bytes).into();

        let piece_hashes = raw
            .info
            .pieces
            .chunks_exact(20)
            .map(|c| c.try_into().expect("chunks_exact(20) yields 20 bytes"))
            .collect();
        let files = match (raw.info.length, raw.info.files) {
            (Some(len), None) => vec![(Vec::new(), len)],
            (None, Some(fs)) => fs.into_iter().map(|f| (f.path, f.length)).collect(),
            _ => return Err("need exactly one of length and files".into()),
        };
        let total_length = files.iter().map(|(_, l)| l).sum();
        Ok(TorrentInfo {
            info_hash,
            name: raw.info.name,
            announce: raw.announce,
            piece_length: raw.info.piece_length,
            piece_hashes,
            files,
            total_length,
        })
    }

    pub fn info_hash_hex(&self) -> String {
        hex(&self.info_hash)
    }

    pub fn piece_count(&self) -> u32 {
        self.piece_hashes.len() as u32
    }

    /// Length of piece `index` (the last one may be short).
    pub fn piece_len(&self, index: u32) -> u64 {
        let start = index as u64 * self.piece_length;
        (self.total_length - start).min(self.piece_length)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Rewrites the torrent at `path` to announce to `tiers` (BEP 12 `announce-list`, `announce`
/// set to the first URL). Both keys lie outside the info dictionary: the info-hash stays.
pub fn set_tiers(path: &Path, tiers: &[Vec<String>]) {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let Ok(Value::Dict(mut top)) = serde_bencode::from_bytes::<Value>(&bytes) else {
        panic!("{} is not a bencoded dictionary", path.display());
    };
    let url = |u: &String| Value::Bytes(u.as_bytes().to_vec());
    top.insert(
        b"announce-list".to_vec(),
        Value::List(
            tiers
                .iter()
                .map(|t| Value::List(t.iter().map(url).collect()))
                .collect(),
        ),
    );
    if let Some(first) = tiers.first().and_then(|t| t.first()) {
        top.insert(b"announce".to_vec(), url(first));
    }
    let out = serde_bencode::to_bytes(&Value::Dict(top)).expect("encode torrent");
    std::fs::write(path, out).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// A torrent's info dictionary, decoded, for tests that make broken torrents.
pub type InfoDict = std::collections::HashMap<Vec<u8>, Value>;

/// Decodes the `.torrent` `bytes`, lets `edit` change its info dictionary, encodes it again.
pub fn edit_info(bytes: &[u8], edit: impl FnOnce(&mut InfoDict)) -> Vec<u8> {
    let Ok(Value::Dict(mut top)) = serde_bencode::from_bytes::<Value>(bytes) else {
        panic!("not a dictionary")
    };
    let Some(Value::Dict(info)) = top.get_mut(&b"info"[..]) else {
        panic!("no info dictionary")
    };
    edit(info);
    serde_bencode::to_bytes(&Value::Dict(top)).expect("encode torrent")
}
