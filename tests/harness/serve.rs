//! Drives `rivulet serve` and talks to its HTTP API: start on a free loopback port, wait until
//! it answers, and small blocking requests (status and body) for the JSON routes. Byte ranges
//! and media go through `curl` and ffmpeg in the tests themselves, as a user's tools would.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::ports::{LOCALHOST, free_addr};
use crate::process::{Proc, wait_for};
use crate::workdir::WorkDir;

/// A running `rivulet serve`.
pub struct Serve {
    proc: Proc,
    pub http: SocketAddr,
    pub data: PathBuf,
    pub events: PathBuf,
    pub stderr: PathBuf,
    agent: ureq::Agent,
}

/// A request's outcome: status and body text.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// An agent that reports every status instead of failing on 4xx/5xx.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>, what: &str) -> Answer {
    let mut r = r.unwrap_or_else(|e| panic!("{what}: {e}"));
    Answer {
        status: r.status().as_u16(),
        body: r
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap_or_else(|e| panic!("{what}: reading the body: {e}")),
    }
}

impl Serve {
    /// `rivulet serve` with its data, state and events in `work`, HTTP on a free loopback port,
    /// peers on another; `extra` flags are added. Waits until the API answers.
    pub fn start(work: &WorkDir, tag: &str, extra: &[&str]) -> Serve {
        let listen = free_addr(LOCALHOST).to_string();
        let mut flags = vec!["--listen", listen.as_str()];
        flags.extend_from_slice(extra);
        Self::start_on_default_port(work, tag, &flags)
    }

    /// Like [`Serve::start`] without `--listen`: peers on the default port, or the fallback.
    pub fn start_on_default_port(work: &WorkDir, tag: &str, extra: &[&str]) -> Serve {
        Self::start_with_http(work, tag, Some(free_addr(LOCALHOST)), extra)
    }

    /// Like [`Serve::start_on_default_port`] without `--http` either: the API on its default
    /// address or the fallback, found in what `serve` says on stderr.
    pub fn start_on_default_addresses(work: &WorkDir, tag: &str, extra: &[&str]) -> Serve {
        Self::start_with_http(work, tag, None, extra)
    }

    fn start_with_http(
        work: &WorkDir,
        tag: &str,
        http: Option<SocketAddr>,
        extra: &[&str],
    ) -> Serve {
        let data = work.subdir(&format!("{tag}-data"));
        let events = work.join(&format!("{tag}-events.jsonl"));
        let mut args: Vec<OsString> = vec!["serve".into(), "--data".into(), data.clone().into()];
        if let Some(addr) = http {
            args.extend(["--http".into(), addr.to_string().into()]);
        }
        args.extend([
            "--state-dir".into(),
            work.subdir(&format!("{tag}-state")).into(),
            "--events".into(),
            events.clone().into(),
        ]);
        args.extend(extra.iter().map(OsString::from));
        Self::spawn(work, tag, args, http, data, events)
    }

    fn spawn(
        work: &WorkDir,
        tag: &str,
        args: Vec<OsString>,
        http: Option<SocketAddr>,
        data: PathBuf,
        events: PathBuf,
    ) -> Serve {
        let mut cmd: Command = crate::rivulet::command();
        cmd.args(&args);
        let stderr = work.join(&format!("{tag}.stderr"));
        let mut proc = Proc::spawn_split(
            &format!("rivulet serve ({tag})"),
            cmd,
            &work.join(&format!("{tag}.stdout")),
            &stderr,
        );
        let http = http.unwrap_or_else(|| {
            let mut said = None;
            wait_for(
                Duration::from_secs(30),
                "rivulet serve to say its address",
                || {
                    proc.assert_running("rivulet serve starting");
                    let text = std::fs::read_to_string(&stderr).unwrap_or_default();
                    said = text
                        .split("serving http://")
                        .nth(1)
                        .and_then(|rest| rest.split('/').next()?.parse().ok());
                    said.is_some()
                },
            );
            said.expect("an address once the wait ended")
        });
        let mut serve = Serve {
            proc,
            http,
            data,
            events,
            stderr,
            agent: agent(),
        };
        let url = serve.url("/api/torrents");
        let probe = agent();
        wait_for(Duration::from_secs(30), "rivulet serve answers", || {
            serve.proc.assert_running("rivulet serve starting");
            probe
                .get(&url)
                .config()
                .timeout_global(Some(Duration::from_secs(2)))
                .build()
                .call()
                .is_ok()
        });
        serve
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn get(&self, path: &str) -> Answer {
        answer(self.agent.get(&self.url(path)).call(), path)
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Answer {
        answer(self.agent.post(&self.url(path)).send(body), path)
    }

    pub fn delete(&self, path: &str) -> Answer {
        answer(self.agent.delete(&self.url(path)).call(), path)
    }

    /// Uploads the `.torrent` at `path` and returns the API's view of the torrent (201 asserted).
    pub fn add(&self, torrent: &Path) -> Value {
        let bytes = std::fs::read(torrent).expect("read .torrent");
        let a = self.post("/api/torrents", &bytes);
        assert_eq!(a.status, 201, "adding {}: {}", torrent.display(), a.body);
        a.json()
    }

    /// One torrent's view (with its stats).
    pub fn torrent(&self, hash: &str) -> Value {
        let a = self.get(&format!("/api/torrents/{hash}"));
        assert_eq!(a.status, 200, "{}", a.body);
        a.json()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn proc_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }
}
