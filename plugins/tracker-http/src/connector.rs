//! surf's HTTP backend for an announce: one HTTP/1.1 exchange (async-h1) over a connection made
//! here, from the announce's local address when it has one. surf's own h1 backend connects with
//! the runtime's plain `connect`, which cannot bind a local address, so a session listening on
//! one interface announced from another and the tracker handed out an address nobody listened on.
//!
//! A connection per request, closed after it: the client lives for one announce (see lib.rs).
//! Making the connection here also lets a failure say why (refused, no route, unknown host);
//! surf's pool reported only "An error occured while creating a new object".

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use rivulet_core::rt::Conn;
use surf::http::{Error, Request, Response, StatusCode};

#[derive(Debug)]
pub(crate) struct Connector {
    /// Where connections leave from; `None` lets the routing table choose.
    pub(crate) local: Option<IpAddr>,
}

/// Why no connection was made; the caller names the tracker.
#[derive(Debug)]
pub(crate) enum Unreachable {
    Resolve(io::Error),
    Connect(io::Error),
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreachable::Resolve(e) => write!(f, "cannot resolve the host: {e}"),
            Unreachable::Connect(e) => write!(f, "cannot connect: {e}"),
        }
    }
}

impl std::error::Error for Unreachable {}

impl Connector {
    async fn exchange(local: Option<IpAddr>, req: Request) -> Result<Response, Error> {
        let url = req.url();
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(Error::from_str(
                    StatusCode::BadRequest,
                    format!("unsupported URL scheme '{other}'"),
                ));
            }
        };
        let host = url.host_str().unwrap_or_default().to_string();
        // A blocking lookup, as surf's own backend does: announces run on a blocking thread.
        let addrs = url
            .socket_addrs(|| url.port_or_known_default())
            .map_err(Unreachable::Resolve)?;
        let conn = connect_any(&addrs, local).await?;
        if https {
            let tls = async_tls::TlsConnector::default()
                .connect(&host, conn)
                .await?;
            async_h1::client::connect(tls, req).await
        } else {
            async_h1::client::connect(conn, req).await
        }
    }
}

/// A connection to the first of `addrs` that accepts one, from `local`; only addresses of
/// `local`'s family are tried, as no other can be reached from it.
async fn connect_any(addrs: &[SocketAddr], local: Option<IpAddr>) -> Result<Conn, Unreachable> {
    let mut last = None;
    for &addr in addrs {
        if local.is_some_and(|ip| ip.is_ipv4() != addr.is_ipv4()) {
            continue;
        }
        match Conn::connect(addr, local).await {
            Ok(conn) => return Ok(conn),
            Err(e) => last = Some(e),
        }
    }
    Err(match (last, local) {
        (Some(e), _) => Unreachable::Connect(e),
        (None, Some(ip)) if !addrs.is_empty() => Unreachable::Connect(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("no address of the host is reachable from the listen address {ip}"),
        )),
        (None, _) => Unreachable::Resolve(io::Error::new(io::ErrorKind::NotFound, "no address")),
    })
}

impl surf::HttpClient for Connector {
    fn send<'a, 'f>(
        &'a self,
        req: Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, Error>> + Send + 'f>>
    where
        'a: 'f,
        Self: 'f,
    {
        Box::pin(Self::exchange(self.local, req))
    }
}
