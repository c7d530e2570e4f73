//! `GET /api/events`: the session's events as server-sent events, one `data:` line of the same
//! JSON the `--events` file holds per event. A comment line every [`KEEPALIVE`] lets proxies
//! and the server notice a client that went away.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use rivulet_core::rt;
use rivulet_core::session::Session;

use super::reply::Reply;

const KEEPALIVE: Duration = Duration::from_secs(15);
/// Events queued for one client; a client further behind loses events (the bus counts them).
const QUEUE: usize = 1024;

pub fn serve(session: &Session) -> Reply {
    let rx = session.subscribe(QUEUE);
    let stream = futures::stream::unfold(rx, |rx| async move {
        let text = match rt::timeout(KEEPALIVE, rx.recv()).await {
            Ok(Ok(event)) => match serde_json::to_string(&event) {
                Ok(json) => format!("data: {json}\n\n"),
                Err(_) => return Some((Ok(Frame::data(Bytes::new())), rx)),
            },
            // The session shut down.
            Ok(Err(_)) => return None,
            Err(rt::Elapsed) => ":\n\n".to_string(),
        };
        Some((Ok::<_, std::io::Error>(Frame::data(Bytes::from(text))), rx))
    });
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
