//! `rivulet serve`: a long-running session downloading into `--data`, offered over the HTTP API
//! and web page of [`rivulet_fuse::http`] until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use rivulet_fuse::http::{self, Library, ServeOptions};

use super::{EngineArgs, setup, signals};

pub struct ServeArgs {
    pub data: PathBuf,
    pub http: SocketAddr,
    pub token: Option<String>,
    pub mount: Option<PathBuf>,
    pub watch: Option<PathBuf>,
    pub engine: EngineArgs,
}

pub async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    if a.mount.is_some() {
        bail!("serve --mount is not supported yet; run `rivulet mount` beside it for now");
    }
    if a.watch.is_some() {
        bail!(
            "serve --watch is not supported yet; add torrents with `rivulet add` or the web page"
        );
    }
    let settings = setup::settings(&a.engine)?;
    let stop = signals::termination()?;
    let session = setup::session(&a.engine, settings).await?;
    let lib = Library::new(session.clone(), a.data.clone(), a.engine.peers.clone());
    lib.restore().await;
    let opts = ServeOptions {
        addr: a.http,
        token: a.token.clone(),
    };
    let server = match http::start(lib, opts).await {
        Ok(s) => s,
        Err(e) => {
            session.shutdown().await;
            return Err(e.into());
        }
    };
    let addr = server.local_addr();
    eprintln!(
        "serving http://{addr}/ (API under /api), downloading into {}",
        a.data.display()
    );
    if !addr.ip().is_loopback() {
        eprintln!(
            "listening on {addr}, reachable from other machines: every request must carry the \
             access token (Authorization: Bearer TOKEN, or ?token=TOKEN in a link)"
        );
    }
    let _ = stop.recv().await;
    server.shutdown().await;
    session.shutdown().await;
    Ok(())
}
