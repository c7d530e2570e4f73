//! What keeps the server safe by default: the access token, and the bounds on what one client
//! can make it hold (header bytes, upload size, connections, time to send a request).

use hyper::Request;
use hyper::header::AUTHORIZATION;

/// Bytes of request head hyper buffers before answering 431 (its minimum is 8 KiB).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Header lines in one request.
pub const MAX_HEADERS: usize = 64;
/// Largest upload: a `.torrent` file of a very large torrent is a few MiB.
pub const MAX_UPLOAD: usize = 16 << 20;
/// Connections served at once; more are answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 1024;
/// A client has this long to send a request's headers, and an idle keep-alive connection is
/// closed after it (a slow or silent client cannot hold a slot).
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The bearer token every request must carry, when one is set.
pub struct Auth {
    token: Option<String>,
}

impl Auth {
    pub fn new(token: Option<String>) -> Auth {
        Auth {
            token: token.filter(|t| !t.is_empty()),
        }
    }

    /// Whether `req` may be served: no token set, or it carries the token as
    /// `Authorization: Bearer T` or as `?token=T` (what a browser link or a media player can
    /// send).
    pub fn allows<B>(&self, req: &Request<B>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let bearer = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let query = req.uri().query().into_iter().flat_map(|q| q.split('&'));
        let from_query = query.filter_map(|kv| kv.strip_prefix("token="));
        bearer
            .into_iter()
            .chain(from_query)
            .any(|given| same(given.as_bytes(), token.as_bytes()))
    }
}

/// Compares in time that does not depend on where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, auth: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn a_token_is_accepted_as_bearer_or_query_and_nothing_else_passes() {
        let auth = Auth::new(Some("s3cret".into()));
        assert!(auth.allows(&req("/api/torrents", Some("Bearer s3cret"))));
        assert!(auth.allows(&req("/stream/x/0/a?token=s3cret", None)));
        assert!(!auth.allows(&req("/api/torrents", None)));
        assert!(!auth.allows(&req("/api/torrents", Some("Bearer s3cre"))));
        assert!(!auth.allows(&req("/api/torrents?token=s3cret2", None)));
        assert!(Auth::new(None).allows(&req("/", None)));
    }
}
