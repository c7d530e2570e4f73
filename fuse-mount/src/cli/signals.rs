//! Ctrl-C and SIGTERM become a message on a channel, so the engine can stop cleanly (announce
//! `stopped`, flush, write the resume file) instead of dying mid-write.

use rivulet_core::rt::{self, Receiver};

pub fn termination() -> anyhow::Result<Receiver<()>> {
    let (tx, rx) = rt::bounded(4);
    ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    })?;
    Ok(rx)
}
