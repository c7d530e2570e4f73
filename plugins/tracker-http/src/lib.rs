//! HTTP(S) tracker client (BEP 3, compact peers BEP 23) over surf with a pure-Rust TLS stack.
//!
//! `announce` is blocking: it runs the request on the runtime seam's `block_on`, bounded
//! by the request's timeout. Replies are capped in size, and only a bencoded reply counts: an
//! HTML error page or a non-200 status is reported as such.
//!
//! Each announce has a client, and so a connection pool, of its own, dropped when it ends. A
//! shared client put a connection whose reply was refused half-read back in its pool, and the
//! next announce on it read the rest of the old reply into memory (4.0 GB for a hostile 4,000 MB
//! reply; tests/oversized_reply.rs). Announces are minutes apart: keep-alive saves nothing.

mod query;
mod reply;

use futures::AsyncReadExt;
use rivulet_core::plugin::{AnnounceRequest, AnnounceResponse, Tracker, TrackerError, TrackerOpen};
use url::Url;

/// Larger replies are refused; a real one is a few KiB.
const MAX_REPLY: u64 = 2 * 1024 * 1024;

pub struct HttpTracker {
    url: String,
    base: Url,
}

impl HttpTracker {
    /// A client for the `http://` or `https://` announce URL `url`.
    pub fn open(url: &str) -> Result<Self, TrackerError> {
        let base = Url::parse(url).map_err(|e| TrackerError::Unsupported(format!("{url}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(TrackerError::Unsupported(format!(
                "{url}: not an http or https URL"
            )));
        }
        Ok(HttpTracker {
            url: url.to_string(),
            base,
        })
    }

    /// Status and (capped) body of a GET.
    async fn get(&self, url: &Url) -> Result<(u16, Vec<u8>), TrackerError> {
        // Declared first, so dropped last: the response's connection goes back to this pool
        // and is closed with it.
        let client = surf::Client::new();
        let mut res = client
            .get(url.as_str())
            .await
            .map_err(|e| TrackerError::Unreachable(self.why_unreachable(&e)))?;
        let status = res.status() as u16;
        let mut body = Vec::new();
        res.take_body()
            .take(MAX_REPLY + 1)
            .read_to_end(&mut body)
            .await
            .map_err(|e| TrackerError::Unreachable(format!("{}: reading reply: {e}", self.url)))?;
        if body.len() as u64 > MAX_REPLY {
            return Err(TrackerError::BadReply(format!(
                "reply larger than {MAX_REPLY} bytes"
            )));
        }
        Ok((status, body))
    }

    /// A failed request in plain words. surf's connection pool hides why a connection could
    /// not be made ("An error occured while creating a new object"): a plain connect to the
    /// same address says (refused, no route, unknown host). Only after a failure, on the
    /// announce's blocking thread.
    fn why_unreachable(&self, e: &surf::Error) -> String {
        let url = &self.url;
        let addrs = match self.base.socket_addrs(|| self.base.port_or_known_default()) {
            Ok(a) => a,
            Err(err) => return format!("cannot resolve the host of {url}: {err}"),
        };
        let mut last = None;
        for addr in addrs {
            match std::net::TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) {
                Ok(_) => return format!("{url}: {e}"),
                Err(err) => last = Some(err),
            }
        }
        match last {
            Some(err) => format!("cannot connect to {url}: {err}"),
            None => format!("cannot resolve the host of {url}: no address"),
        }
    }
}

/// How long the plain connect that explains a failure may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

impl Tracker for HttpTracker {
    fn url(&self) -> &str {
        &self.url
    }

    fn announce(&self, req: &AnnounceRequest) -> Result<AnnounceResponse, TrackerError> {
        let url = query::announce_url(&self.base, req);
        let (status, body) =
            rivulet_core::rt::block_on(rivulet_core::rt::timeout(req.timeout, self.get(&url)))
                .map_err(|_| TrackerError::Timeout)??;
        if status != 200 {
            // Some trackers send their failure reason with an error status: prefer it.
            return match reply::parse(&body) {
                Err(e @ TrackerError::Failure(_)) => Err(e),
                _ => Err(TrackerError::Unreachable(format!(
                    "{}: HTTP status {status}: {}",
                    self.url,
                    reply::preview(&body)
                ))),
            };
        }
        let response = reply::parse(&body)?;
        tracing::debug!(url = %self.url, peers = response.peers.len(), "announced");
        Ok(response)
    }
}

impl TrackerOpen for HttpTracker {
    fn open(url: &str) -> Result<Self, TrackerError> {
        HttpTracker::open(url)
    }
}

rivulet_core::export_tracker!(
    HttpTracker,
    "http",
    env!("CARGO_PKG_VERSION"),
    schemes = ["http", "https"]
);
