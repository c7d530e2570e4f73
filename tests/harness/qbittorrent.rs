//! qBittorrent (libtorrent) as a real leecher: its own profile, WebUI on a free port, DHT, LSD,
//! PeX, UPnP and encryption off, bound to a loopback address of its own. Only inside the
//! isolated network namespace (libtorrent still tries to reach the outside world).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::netns::assert_isolated_network;
use crate::ports::{LOCALHOST, free_port};
use crate::process::{Proc, poll};
use crate::torrent::TorrentInfo;

pub struct QbLeecher {
    proc: Proc,
    api: String,
    hash: String,
    pub out: PathBuf,
}

impl QbLeecher {
    /// Starts qbittorrent-nox downloading `torrent` into `out` from `bind`.
    pub fn start(dir: &Path, torrent: &Path, out: &Path, bind: Ipv4Addr) -> QbLeecher {
        assert_isolated_network();
        let port = free_port(bind);
        let webui = free_port(LOCALHOST);
        let home = dir.join(format!("qbittorrent-{port}"));
        let conf_dir = home.join("profile/qBittorrent/config");
        std::fs::create_dir_all(&conf_dir).expect("create qBittorrent profile");
        std::fs::write(conf_dir.join("qBittorrent.conf"), config(bind, port, webui))
            .expect("write qBittorrent.conf");
        let mut cmd = Command::new("qbittorrent-nox");
        cmd.env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .arg(format!("--profile={}", home.join("profile").display()))
            .arg(format!("--webui-port={webui}"))
            .arg(format!("--save-path={}", out.display()))
            .arg("--skip-dialog=true")
            .arg(torrent);
        let proc = Proc::spawn("qbittorrent-nox", cmd, &home.join("qbittorrent.log"));
        QbLeecher {
            proc,
            api: format!("http://{LOCALHOST}:{webui}/api/v2"),
            hash: TorrentInfo::read(torrent).info_hash_hex(),
            out: out.to_path_buf(),
        }
    }

    /// Waits until qBittorrent has every piece and reports itself seeding.
    pub fn wait_done(&mut self, timeout: Duration) {
        let url = format!("{}/torrents/info?hashes={}", self.api, self.hash);
        let done = poll(timeout, || {
            if let Some(st) = self.proc.try_status() {
                return Ok(Err(format!("qbittorrent-nox exited ({st})")));
            }
            let reply = get_json(&url).map_err(|e| format!("WebUI: {e}"))?;
            let Some(t) = reply.as_array().and_then(|a| a.first()) else {
                return Err(format!("torrent not added yet: {reply}"));
            };
            let seeding = matches!(
                t["state"].as_str(),
                Some("uploading" | "stalledUP" | "forcedUP" | "queuedUP" | "pausedUP")
            );
            if t["progress"] == 1.0 && seeding {
                Ok(Ok(()))
            } else {
                Err(format!("state {} progress {}", t["state"], t["progress"]))
            }
        })
        .and_then(|r| r);
        if let Err(e) = done {
            panic!(
                "qBittorrent did not complete the download: {e}\nlog tail:\n{}",
                self.proc.log_tail(3000)
            );
        }
    }
}

fn get_json(url: &str) -> anyhow::Result<Value> {
    Ok(ureq::get(url).call()?.body_mut().read_json()?)
}

fn config(bind: Ipv4Addr, port: u16, webui: u16) -> String {
    format!(
        r"[LegalNotice]
Accepted=true

[BitTorrent]
Session\Port={port}
Session\Interface=lo
Session\InterfaceName=lo
Session\InterfaceAddress={bind}
Session\DHTEnabled=false
Session\LSDEnabled=false
Session\PeXEnabled=false
Session\Encryption=2
Session\AnonymousModeEnabled=false
Session\TempPathEnabled=false
Session\QueueingSystemEnabled=false
Session\BTProtocol=TCP
Session\IgnoreLimitsOnLAN=true
Session\AddTorrentPaused=false
Session\Preallocation=false

[Network]
PortForwardingEnabled=false

[Preferences]
General\Locale=en
Connection\UPnP=false
Connection\ResolvePeerCountries=false
WebUI\Enabled=true
WebUI\Address={LOCALHOST}
WebUI\Port={webui}
WebUI\LocalHostAuth=false
WebUI\CSRFProtection=false
WebUI\HostHeaderValidation=false
"
    )
}
