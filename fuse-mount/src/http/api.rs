//! The JSON API handlers under `/api/torrents`: list, add, one torrent's stats, files and
//! peers, pause, resume, remove.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use rivulet_core::metainfo::{InfoHash, Magnet};
use rivulet_core::session::SessionError;
use serde_json::Value;

use super::library::{self, Library, LibraryError};
use super::limits::MAX_UPLOAD;
use super::reply::{self, Reply};

pub fn list(lib: &Library) -> Reply {
    let mut all: Vec<Value> = lib
        .torrents()
        .iter()
        .map(|t| serde_json::to_value(library::view(t, false)).unwrap_or(Value::Null))
        .collect();
    all.extend(
        lib.pending()
            .iter()
            .map(|p| pending_view(&p.info_hash, p.name.as_deref())),
    );
    reply::json(StatusCode::OK, &all)
}

/// A magnet link whose metadata is still on its way, as the list shows it.
fn pending_view(hash: &InfoHash, name: Option<&str>) -> Value {
    serde_json::json!({
        "info_hash": hash.hex(),
        "name": name.unwrap_or_default(),
        "state": "fetching metadata",
        "progress": 0.0,
        "bytes_have": 0,
        "bytes_total": 0,
        "download_rate": 0,
        "upload_rate": 0,
        "peers": 0,
        "files": [],
    })
}

/// `POST /api/torrents`: the body is a `.torrent` file or a magnet link; answers 201 with the
/// torrent, or 202 when a magnet link's metadata is still being fetched.
pub async fn add(lib: &Library, req: Request<Incoming>) -> Reply {
    let too_large = || {
        reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("upload larger than {} MiB", MAX_UPLOAD >> 20),
        )
    };
    // Refused on its announced length, before a byte of it is read.
    if req.body().size_hint().lower() > MAX_UPLOAD as u64 {
        return too_large();
    }
    let body = match Limited::new(req.into_body(), MAX_UPLOAD).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, &format!("upload failed: {e}")),
    };
    if is_magnet(&body) {
        let text = String::from_utf8_lossy(&body);
        let link = match Magnet::parse(text.trim()) {
            Ok(link) => link,
            Err(e) => return reply::error(StatusCode::BAD_REQUEST, &e.to_string()),
        };
        let pending = pending_view(&link.info_hash, link.name.as_deref());
        return match lib.add_magnet(link).await {
            Ok(Some(handle)) => reply::json(StatusCode::CREATED, &library::view(&handle, false)),
            // Still fetching its metadata: accepted, listed as pending meanwhile.
            Ok(None) => reply::json(StatusCode::ACCEPTED, &pending),
            Err(e) => error(&e),
        };
    }
    match lib.add_bytes(body.to_vec()).await {
        Ok(handle) => reply::json(StatusCode::CREATED, &library::view(&handle, false)),
        Err(e) => error(&e),
    }
}

fn is_magnet(body: &Bytes) -> bool {
    let text = body.trim_ascii_start();
    text.len() >= 7 && text[..7].eq_ignore_ascii_case(b"magnet:")
}

fn error(e: &LibraryError) -> Reply {
    let status = match e {
        LibraryError::BadTorrent(_) => StatusCode::BAD_REQUEST,
        LibraryError::Session(SessionError::Duplicate(_)) => StatusCode::CONFLICT,
        LibraryError::Session(SessionError::NoSuchTorrent(_)) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    reply::error(status, &e.to_string())
}

fn not_found() -> Reply {
    reply::error(StatusCode::NOT_FOUND, "no such torrent")
}

pub fn one(lib: &Library, hash: &InfoHash) -> Reply {
    match lib.get(hash) {
        Some(t) => reply::json(StatusCode::OK, &library::view(&t, true)),
        None => not_found(),
    }
}

pub fn files(lib: &Library, hash: &InfoHash) -> Reply {
    match lib.get(hash) {
        Some(t) => reply::json(StatusCode::OK, &library::view(&t, false).files),
        None => not_found(),
    }
}

pub fn peers(lib: &Library, hash: &InfoHash) -> Reply {
    match lib.get(hash) {
        Some(t) => reply::json(StatusCode::OK, &t.peers()),
        None => not_found(),
    }
}

pub async fn pause(lib: &Library, hash: &InfoHash) -> Reply {
    match lib.session().pause(hash).await {
        Ok(()) => one(lib, hash),
        Err(e) => error(&e.into()),
    }
}

pub fn resume(lib: &Library, hash: &InfoHash) -> Reply {
    match lib.session().resume(hash) {
        Ok(()) => one(lib, hash),
        Err(e) => error(&e.into()),
    }
}

/// `DELETE /api/torrents/{hash}?delete_data=true|false` (default false: the data stays).
pub async fn remove(lib: &Library, hash: &InfoHash, query: Option<&str>) -> Reply {
    let delete_data = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .any(|kv| kv == "delete_data=true" || kv == "delete_data=1");
    match lib.remove(hash, delete_data).await {
        Ok(()) => reply::with(StatusCode::NO_CONTENT, "application/json", Bytes::new()),
        Err(e) => error(&e),
    }
}
