//! Which handler answers a request: the access check, then method and path.

use std::convert::Infallible;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Request, StatusCode};

use super::library::{Library, parse_hash};
use super::limits::Auth;
use super::reply::{self, Reply};
use super::{api, events, page, stream};

pub async fn route(
    lib: &Library,
    auth: &Auth,
    req: Request<Incoming>,
) -> Result<Reply, Infallible> {
    if !auth.allows(&req) {
        let mut r = reply::error(
            StatusCode::UNAUTHORIZED,
            "this server needs its access token (Authorization: Bearer TOKEN, or ?token=TOKEN)",
        );
        r.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Ok(r);
    }
    let path = req.uri().path().to_owned();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().clone();
    let get = method == Method::GET;
    let reply = match segs.as_slice() {
        [] if get => page::serve(),
        ["api", "torrents"] if get => api::list(lib),
        ["api", "torrents"] if method == Method::POST => api::add(lib, req).await,
        ["api", "events"] if get => events::serve(lib.session()),
        ["api", "torrents", hash, rest @ ..] => match parse_hash(hash) {
            None => reply::error(StatusCode::NOT_FOUND, "no such torrent"),
            Some(h) => match (rest, &method) {
                ([], &Method::GET) => api::one(lib, &h),
                ([], &Method::DELETE) => api::remove(lib, &h, req.uri().query()).await,
                (["files"], &Method::GET) => api::files(lib, &h),
                (["peers"], &Method::GET) => api::peers(lib, &h),
                (["pause"], &Method::POST) => api::pause(lib, &h).await,
                (["resume"], &Method::POST) => api::resume(lib, &h),
                ([] | ["files" | "peers" | "pause" | "resume"], _) => not_allowed(),
                _ => not_found(),
            },
        },
        ["stream", rest @ ..] if get || method == Method::HEAD => {
            stream::serve(lib, &req, rest).await
        }
        ["stream", ..] | ["api", "torrents" | "events"] | [] => not_allowed(),
        _ => not_found(),
    };
    Ok(reply)
}

fn not_found() -> Reply {
    reply::error(StatusCode::NOT_FOUND, "not found")
}

fn not_allowed() -> Reply {
    reply::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
}
