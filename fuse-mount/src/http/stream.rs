//! File streaming: `GET`/`HEAD /stream/{info_hash}/{index}/{name}` with HTTP Range requests.
//!
//! Files are named by index, so a URL can never reach outside its torrent (the name segment is
//! for players and people and is not looked at). Bytes come through core's [`Reader`], the
//! same one the mount uses: a player seeking over HTTP gets the same read deadline and
//! readahead as one reading through FUSE. The body is sent a chunk at a time, with the read of
//! the next chunk already under way while one is sent ([`READS_AHEAD`]), so a slow client holds
//! two chunks, not the file. Each file carries a strong `ETag` (its bytes never change), so
//! `If-Range` resumes and `If-None-Match` revalidation work as they do against a file server.

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use rivulet_core::metainfo::InfoHash;
use rivulet_core::reader::{Reader, ReaderError};
use rivulet_core::torrent::{ReadError, TorrentHandle};

use super::library::{Library, parse_hash};
use super::reply::{self, Reply};

/// Bytes per read and per body frame: whole pieces of common sizes, small enough that a
/// stalled client pins little.
const CHUNK: u64 = 256 * 1024;
/// Chunk reads in flight per response: the next one is read while hyper writes the last, so
/// the storage read and the socket write of a completed file overlap instead of taking turns.
const READS_AHEAD: usize = 2;

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Wanted {
    /// The whole file (no Range, or one we do not honour, such as several ranges).
    All,
    /// `start..end` (end exclusive).
    Part(u64, u64),
    /// Nothing of the file can satisfy it: 416.
    Unsatisfiable,
}

/// Parses a `Range` header value for a file of `len` bytes (RFC 9110 §14.1.2; one range only:
/// a multi-range request gets the whole file, which the RFC allows).
pub fn parse_range(value: Option<&str>, len: u64) -> Wanted {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Wanted::All;
    };
    if spec.contains(',') {
        return Wanted::All;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Wanted::All;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(b) {
            Some(0) => Wanted::Unsatisfiable,
            Some(n) if len > 0 => Wanted::Part(len.saturating_sub(n), len),
            Some(_) => Wanted::Unsatisfiable,
            None => Wanted::All,
        },
        (false, _) => {
            let (Some(first), Some(last)) =
                (num(a), if b.is_empty() { Some(u64::MAX) } else { num(b) })
            else {
                return Wanted::All;
            };
            if last < first {
                // Syntactically invalid: ignored, as the RFC says.
                Wanted::All
            } else if first >= len {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part(first, last.saturating_add(1).min(len))
            }
        }
        (true, true) => Wanted::All,
    }
}

/// Answers a request for `/stream/{hash}/{index}/...` (segments after `stream`).
pub async fn serve(lib: &Library, req: &Request<hyper::body::Incoming>, rest: &[&str]) -> Reply {
    let (Some(hash), Some(index)) = (
        rest.first().and_then(|h| parse_hash(h)),
        rest.get(1).and_then(|i| i.parse::<usize>().ok()),
    ) else {
        return reply::error(StatusCode::NOT_FOUND, "no such file");
    };
    let (Some(readers), Some(handle)) = (lib.readers(&hash), lib.get(&hash)) else {
        return reply::error(StatusCode::NOT_FOUND, "no such torrent");
    };
    let Ok(reader) = readers.open(index) else {
        return reply::error(StatusCode::NOT_FOUND, "no such file in this torrent");
    };
    let name = handle.meta().files[index].path.last().cloned();
    let len = reader.len();
    let etag = entity_tag(&hash, index);
    let text = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    if text(header::IF_NONE_MATCH).is_some_and(|v| matches_any(v, &etag)) {
        let mut resp = Response::new(reply::empty());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        insert_etag(resp.headers_mut(), &etag);
        return resp;
    }
    let range = text(header::RANGE).filter(|_| range_applies(text(header::IF_RANGE), &etag));
    let (status, start, end) = match parse_range(range, len) {
        Wanted::All => (StatusCode::OK, 0, len),
        Wanted::Part(s, e) => (StatusCode::PARTIAL_CONTENT, s, e),
        Wanted::Unsatisfiable => {
            let mut r = reply::error(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let mut resp = Response::new(reply::empty());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    let mime = name
        .as_deref()
        .and_then(|n| mime_guess::from_path(n).first_raw())
        .unwrap_or("application/octet-stream");
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    insert_etag(h, &etag);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    if req.method() == Method::HEAD || start == end {
        return resp;
    }
    // The first chunk before the headers: a read that cannot be served gets a status code
    // instead of a response that breaks off.
    let first_len = (end - start).min(CHUNK);
    let first = match reader.read_at(start, first_len).await {
        Ok(data) => Bytes::from(data),
        Err(e) => return read_failed(&e),
    };
    *resp.body_mut() = body(reader, first, start + first_len, end);
    resp
}

/// A strong validator of file `index`: its bytes are fixed by the info-hash, so the tag never
/// changes while the torrent is the same, and players and download managers that resume with
/// `If-Range` get the rest instead of the whole file again.
fn entity_tag(hash: &InfoHash, index: usize) -> String {
    format!("\"{}-{index}\"", hash.hex())
}

fn insert_etag(h: &mut hyper::HeaderMap, etag: &str) {
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
}

/// Whether an `If-None-Match` list names `etag` (weak comparison, RFC 9110 §13.1.2) or is `*`.
fn matches_any(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// Whether a `Range` is honoured under `If-Range` (RFC 9110 §13.1.5): always without one;
/// with one only when it is our strong tag. A date cannot be checked (the files have no
/// modification time of their own), so it gets the whole file, as the RFC says.
fn range_applies(if_range: Option<&str>, etag: &str) -> bool {
    if_range.is_none_or(|v| v.trim() == etag)
}

fn read_failed(e: &ReaderError) -> Reply {
    let status = match e {
        ReaderError::Read(ReadError::Timeout { .. }) => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    reply::error(status, &e.to_string())
}

/// `first`, then `next..end` of the file read a chunk at a time as the client takes them.
fn body(reader: Reader<TorrentHandle>, first: Bytes, next: u64, end: u64) -> reply::Body {
    // Reads are started in file order (the reader sees them so), at most READS_AHEAD at once.
    let rest = futures::stream::iter((next..end).step_by(CHUNK as usize))
        .map(move |pos| reader.read_at(pos, (end - pos).min(CHUNK)))
        .buffered(READS_AHEAD)
        .scan(false, |failed, read| {
            // After an error the stream ends: hyper closes the connection mid-body, which is
            // how HTTP/1.1 says the rest will not come.
            if *failed {
                return futures::future::ready(None);
            }
            *failed = read.is_err();
            let frame = read
                .map(|d| Frame::data(Bytes::from(d)))
                .map_err(|e| std::io::Error::other(e.to_string()));
            futures::future::ready(Some(frame))
        });
    let stream = futures::stream::once(async move { Ok(Frame::data(first)) }).chain(rest);
    StreamBody::new(stream).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_requests_compare_tags_as_rfc_9110_says() {
        let tag = entity_tag(&InfoHash([0xab; 20]), 3);
        assert_eq!(tag, format!("\"{}-3\"", "ab".repeat(20)));
        assert!(range_applies(None, &tag));
        assert!(range_applies(Some(&tag), &tag));
        assert!(!range_applies(Some("\"other\""), &tag));
        assert!(
            !range_applies(Some(&format!("W/{tag}")), &tag),
            "If-Range is strong"
        );
        assert!(!range_applies(Some("Sun, 06 Dec 2026 06:00:00 GMT"), &tag));
        assert!(matches_any(&format!("\"x\", W/{tag}"), &tag));
        assert!(matches_any("*", &tag));
        assert!(!matches_any("\"x\"", &tag));
    }

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        let p = |v: &str| parse_range(Some(v), 1000);
        assert_eq!(parse_range(None, 1000), Wanted::All);
        assert_eq!(p("bytes=0-99"), Wanted::Part(0, 100));
        assert_eq!(p("bytes=500-"), Wanted::Part(500, 1000));
        assert_eq!(p("bytes=-100"), Wanted::Part(900, 1000));
        assert_eq!(p("bytes=-5000"), Wanted::Part(0, 1000));
        assert_eq!(p("bytes=900-5000"), Wanted::Part(900, 1000));
        assert_eq!(p("bytes=1000-"), Wanted::Unsatisfiable);
        assert_eq!(p("bytes=2000-3000"), Wanted::Unsatisfiable);
        assert_eq!(p("bytes=-0"), Wanted::Unsatisfiable);
        assert_eq!(p("bytes=50-10"), Wanted::All);
        assert_eq!(p("bytes=0-1,5-9"), Wanted::All);
        assert_eq!(p("items=0-1"), Wanted::All);
        assert_eq!(p("bytes=x-"), Wanted::All);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Wanted::Unsatisfiable);
    }
}
