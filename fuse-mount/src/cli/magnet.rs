//! Magnet links on the command line: wherever a `.torrent` path is taken, `magnet:?…` is too;
//! `rivulet info 'magnet:…' [--save FILE]` fetches the metadata, prints it and writes the
//! `.torrent`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rivulet_core::metainfo::{Magnet, Metainfo, torrent_file_with_layers};
use rivulet_core::session::TorrentSource;

use super::{EngineArgs, info, load_torrent, print, setup};

/// The magnet link in `arg`, if it is one rather than a path.
fn as_magnet(arg: &Path) -> Option<&str> {
    arg.to_str().filter(|s| Magnet::is_magnet(s))
}

/// What to add for a command-line argument: a magnet link or a `.torrent` file.
pub fn source(arg: &Path) -> anyhow::Result<TorrentSource> {
    match as_magnet(arg) {
        Some(uri) => Ok(TorrentSource::Magnet(
            Magnet::parse(uri).context("invalid magnet link")?,
        )),
        None => Ok(TorrentSource::Metainfo(Arc::new(load_torrent(arg)?))),
    }
}

/// `rivulet info`: a `.torrent` read at once, a magnet link's metadata fetched first; with
/// `save`, the `.torrent` written there.
pub async fn info(arg: PathBuf, save: Option<PathBuf>, args: EngineArgs) -> anyhow::Result<()> {
    let meta = match as_magnet(&arg) {
        Some(uri) => fetch(&Magnet::parse(uri).context("invalid magnet link")?, &args).await?,
        None => load_torrent(&arg)?,
    };
    print(&info::render(&meta))?;
    if let Some(path) = save {
        let trackers: Vec<String> = meta.trackers.iter().flatten().cloned().collect();
        // A v2 link's piece layers came from peers: the saved torrent carries them.
        let layers: Vec<_> = meta
            .piece_layers
            .iter()
            .map(|(root, tree)| (*root, tree.layer().to_vec()))
            .collect();
        let bytes = torrent_file_with_layers(&meta.info_bytes, &trackers, &layers);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Fetches a magnet link's metadata in a session of its own, until it arrives or Ctrl-C.
async fn fetch(link: &Magnet, args: &EngineArgs) -> anyhow::Result<Metainfo> {
    let settings = setup::settings(args)?;
    let stop = super::signals::termination()?;
    let session = setup::session(args, settings).await?;
    let got = setup::futures_select(session.fetch_metadata(link, &args.peers), stop.recv()).await;
    session.shutdown().await;
    match got {
        Some(r) => Ok(r?),
        None => anyhow::bail!("interrupted before the metadata arrived"),
    }
}
