//! A user who may not open /dev/fuse is told so, naming the device, instead of a bare
//! "permission denied". The device is made unreadable for one run only: in a mount namespace of
//! its own, an inaccessible file is bound over /dev/fuse and rivulet runs as `nobody`.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use rivulet_tests::make_torrent::zeros;
use rivulet_tests::rivulet::binary;

#[test]
fn no_permission_on_dev_fuse_is_named_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let open_to_all = |p: &std::path::Path| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    };
    open_to_all(dir);
    for sub in ["mnt", "data", "state"] {
        std::fs::create_dir(dir.join(sub)).unwrap();
        open_to_all(&dir.join(sub));
    }
    let torrent = dir.join("z.torrent");
    std::fs::write(
        &torrent,
        zeros("z.bin", 1 << 20, 1 << 16, "http://127.0.0.1:1/a"),
    )
    .unwrap();
    let fake = dir.join("no-fuse");
    std::fs::write(&fake, b"").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o000)).unwrap();

    let script = r#"mount --bind "$1" /dev/fuse && shift && exec setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@""#;
    let out = Command::new("unshare")
        .args(["--mount", "--", "sh", "-c", script, "sh"])
        .arg(&fake)
        .arg(binary())
        .args(["-q", "mount"])
        .arg(&torrent)
        .arg(dir.join("mnt"))
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--listen", "127.0.0.1:0"])
        .env("HOME", dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "mounted without /dev/fuse: {stderr}");
    // One line, before the engine starts (no tracker was tried).
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr}");
    assert!(
        lines[0].contains("no permission to open /dev/fuse"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
