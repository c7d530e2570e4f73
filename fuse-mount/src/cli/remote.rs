//! `rivulet add|list|pause|resume|remove --server URL`: thin clients of a running
//! `rivulet serve`'s JSON API, for scripts. Plain text out, or the API's JSON with `--json`.

use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use rivulet_core::metainfo::Magnet;
use serde::Deserialize;
use surf::http::Method;

/// Where the server is and how to talk to it.
#[derive(Args, Clone)]
pub struct RemoteArgs {
    /// URL of a running `rivulet serve`.
    #[arg(long, default_value_t = format!("http://{}", super::serve::DEFAULT_HTTP))]
    pub server: String,
    /// Access token the server was started with (--token).
    #[arg(long)]
    pub token: Option<String>,
    /// Print the server's JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
}

pub enum Action {
    Add(PathBuf),
    List,
    Pause(String),
    Resume(String),
    Remove { hash: String, delete_data: bool },
}

#[derive(Deserialize)]
struct Torrent {
    info_hash: String,
    name: String,
    state: String,
    progress: f64,
    download_rate: u64,
    upload_rate: u64,
    peers: usize,
}

#[derive(Deserialize)]
struct ApiError {
    error: String,
}

struct Client {
    args: RemoteArgs,
    http: surf::Client,
}

impl Client {
    /// Sends a request; a status other than 2xx is an error carrying the server's reason.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Vec<u8>> {
        let base = self.args.server.trim_end_matches('/');
        let url: surf::Url = format!("{base}{path}")
            .parse()
            .with_context(|| format!("--server {base} is not a URL"))?;
        let mut req = surf::Request::new(method, url);
        if let Some(t) = &self.args.token {
            req.insert_header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req.set_body(b);
            req.set_content_type("application/x-bittorrent".into());
        }
        let mut res = self.http.send(req).await.map_err(|e| {
            anyhow!("cannot reach the rivulet server at {base} (is `rivulet serve` running?): {e}")
        })?;
        let bytes = res
            .body_bytes()
            .await
            .map_err(|e| anyhow!("reading the answer of {base}: {e}"))?;
        if !res.status().is_success() {
            let why = serde_json::from_slice::<ApiError>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_string());
            bail!("{base} answered {}: {why}", res.status() as u16);
        }
        Ok(bytes)
    }

    /// The full info-hash of `given`: itself, or the one torrent whose hash starts with it.
    async fn resolve(&self, given: &str) -> anyhow::Result<String> {
        if given.len() == 40 {
            return Ok(given.to_ascii_lowercase());
        }
        let all: Vec<Torrent> =
            serde_json::from_slice(&self.send(Method::Get, "/api/torrents", None).await?)?;
        let prefix = given.to_ascii_lowercase();
        let mut found = all.into_iter().filter(|t| t.info_hash.starts_with(&prefix));
        match (found.next(), found.next()) {
            (Some(t), None) => Ok(t.info_hash),
            (None, _) => bail!("no torrent's info-hash starts with {given}"),
            (Some(_), Some(_)) => bail!("several torrents' info-hashes start with {given}"),
        }
    }
}

impl Client {
    /// `POST /api/torrents/{hash}/{verb}`: the answer and the torrent's line.
    async fn act(&self, hash: &str, verb: &str) -> anyhow::Result<(Vec<u8>, String)> {
        let h = self.resolve(hash).await?;
        let a = self
            .send(Method::Post, &format!("/api/torrents/{h}/{verb}"), None)
            .await?;
        let t: Torrent = serde_json::from_slice(&a)?;
        Ok((a, line(&t)))
    }
}

fn line(t: &Torrent) -> String {
    format!(
        "{}  {:11} {:5.1}%  down {}/s  up {}/s  peers {}  {}\n",
        t.info_hash,
        t.state,
        t.progress * 100.0,
        indicatif::HumanBytes(t.download_rate),
        indicatif::HumanBytes(t.upload_rate),
        t.peers,
        t.name
    )
}

pub async fn run(args: RemoteArgs, action: Action) -> anyhow::Result<()> {
    let json = args.json;
    let c = Client {
        args,
        http: surf::Client::new(),
    };
    let (answer, text) = match action {
        Action::Add(path) => {
            // A magnet link is sent as the text it is; the server fetches its metadata.
            let bytes = match path.to_str().filter(|s| Magnet::is_magnet(s)) {
                Some(link) => link.as_bytes().to_vec(),
                None => std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
            };
            let a = c.send(Method::Post, "/api/torrents", Some(bytes)).await?;
            let t: Torrent = serde_json::from_slice(&a)?;
            let text = format!("added {}  {}\n", t.info_hash, t.name);
            (a, text)
        }
        Action::List => {
            let a = c.send(Method::Get, "/api/torrents", None).await?;
            let all: Vec<Torrent> = serde_json::from_slice(&a)?;
            let text = all.iter().map(line).collect();
            (a, text)
        }
        Action::Pause(h) => c.act(&h, "pause").await?,
        Action::Resume(h) => c.act(&h, "resume").await?,
        Action::Remove { hash, delete_data } => {
            let h = c.resolve(&hash).await?;
            let path = format!("/api/torrents/{h}?delete_data={delete_data}");
            c.send(Method::Delete, &path, None).await?;
            let what = if delete_data { " and its data" } else { "" };
            (b"{}".to_vec(), format!("removed {h}{what}\n"))
        }
    };
    if json {
        super::print(&format!("{}\n", String::from_utf8_lossy(&answer)))
    } else {
        super::print(&text)
    }
}
