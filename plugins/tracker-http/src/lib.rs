//! HTTP(S) tracker client (BEP 3, compact peers BEP 23) over surf with a pure-Rust TLS stack.
//!
//! `announce` is blocking: it runs the request on the runtime seam's `block_on`, bounded
//! by the request's timeout. Replies are capped in size, and only a bencoded reply counts: an
//! HTML error page or a non-200 status is reported as such.
//!
//! Each announce has a connection of its own, made by [`connector`] from the request's local
//! address and closed when the announce ends. A shared pooled client put a connection whose
//! reply was refused half-read back in its pool, and the next announce on it read the rest of
//! the old reply into memory (4.0 GB for a hostile 4,000 MB reply; tests/oversized_reply.rs).
//! Announces are minutes apart: keep-alive saves nothing.

mod connector;
mod query;
mod reply;

use std::net::IpAddr;

use futures::AsyncReadExt;
use rivulet_core::plugin::{AnnounceRequest, AnnounceResponse, Tracker, TrackerError, TrackerOpen};
use url::Url;

use crate::connector::{Connector, Unreachable};

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

    /// Status and (capped) body of a GET, over a connection from `local`.
    async fn get(&self, url: &Url, local: Option<IpAddr>) -> Result<(u16, Vec<u8>), TrackerError> {
        // The response owns the connection: it is closed when `res` is dropped, at the end.
        let client = surf::Client::with_http_client(Connector { local });
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

    /// A failed request in plain words, naming the tracker.
    fn why_unreachable(&self, e: &surf::Error) -> String {
        let url = &self.url;
        match e.downcast_ref::<Unreachable>() {
            Some(Unreachable::Resolve(err)) => format!("cannot resolve the host of {url}: {err}"),
            Some(Unreachable::Connect(err)) => format!("cannot connect to {url}: {err}"),
            None => format!("{url}: {e}"),
        }
    }
}

impl Tracker for HttpTracker {
    fn url(&self) -> &str {
        &self.url
    }

    fn announce(&self, req: &AnnounceRequest) -> Result<AnnounceResponse, TrackerError> {
        let url = query::announce_url(&self.base, req);
        let (status, body) = rivulet_core::rt::block_on(rivulet_core::rt::timeout(
            req.timeout,
            self.get(&url, req.local_ip),
        ))
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
