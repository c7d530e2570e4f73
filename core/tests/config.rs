//! Settings precedence (defaults < file < environment < command line) and the errors for unknown
//! keys and bad values, with real files and an environment passed in (never the process's).

use std::path::{Path, PathBuf};

use rivulet_core::config::{ConfigError, Settings};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn file_then_environment_then_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "rivulet.toml",
        "picker = \"sequential\"\nstorage = \"memory\"\nmax_peers = 30\nupload_slots = 7\n\
         plugin_dirs = [\"/opt/a\", \"~/plugins\"]\n",
    );
    let environment = env(&[
        ("HOME", "/home/u"),
        ("RIVULET_MAX_PEERS", "10"),
        ("RIVULET_STORAGE", "mmap"),
        ("RIVULET_LISTEN", "127.0.0.1:7000"),
        ("UNRELATED", "x"),
    ]);
    let overrides = [
        ("max_peers", "3".to_string()),
        ("download_dir", "~/dl".to_string()),
    ];
    let s = Settings::load_from(Some(&file), environment, &overrides).unwrap();
    assert_eq!(s.picker.as_deref(), Some("sequential"), "file over default");
    assert_eq!(s.upload_slots, 7, "file over default");
    assert_eq!(s.storage, "mmap", "environment over file");
    assert_eq!(s.listen, "127.0.0.1:7000".parse().unwrap());
    assert_eq!(s.max_peers, 3, "command line over environment");
    assert_eq!(s.download_dir, PathBuf::from("/home/u/dl"));
    assert_eq!(
        s.plugin_dirs,
        vec![PathBuf::from("/opt/a"), PathBuf::from("/home/u/plugins")]
    );
    assert_eq!(s.read_timeout_secs, 60, "untouched keys keep their default");
    assert_eq!(s.state_dir, PathBuf::from("/home/u/.local/state/rivulet"));
}

#[test]
fn lists_from_environment_and_command_line_are_comma_separated() {
    let e = env(&[("RIVULET_PLUGIN_DIRS", "/a,/b")]);
    let s = Settings::load_from(None, e.clone(), &[]).unwrap();
    assert_eq!(
        s.plugin_dirs,
        vec![PathBuf::from("/a"), PathBuf::from("/b")]
    );
    let s = Settings::load_from(None, e, &[("plugin_dirs", "/c,/d,/e".into())]).unwrap();
    assert_eq!(s.plugin_dirs.len(), 3);
    // Parsing for lists must not turn a numeric-looking name into something else.
    let s = Settings::load_from(None, env(&[("RIVULET_PICKER", "123")]), &[]).unwrap();
    assert_eq!(s.picker.as_deref(), Some("123"));
}

#[test]
fn default_file_is_found_under_xdg_config_home() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "rivulet/config.toml", "upload_slots = 9\n");
    let xdg = dir.path().to_str().unwrap();
    let s = Settings::load_from(None, env(&[("XDG_CONFIG_HOME", xdg)]), &[]).unwrap();
    assert_eq!(s.upload_slots, 9);
    // ~/.config is the fallback, and a missing default file is no error.
    let s = Settings::load_from(None, env(&[("HOME", xdg)]), &[]).unwrap();
    assert_eq!(s.upload_slots, 4);
}

#[test]
fn unknown_keys_are_refused_naming_key_and_origin() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.toml", "picker = \"x\"\nmax_peer = 3\n");
    let e = Settings::load_from(Some(&file), env(&[]), &[]).unwrap_err();
    assert!(matches!(e, ConfigError::UnknownKey { .. }));
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("{}: unknown key 'max_peer'", file.display())),
        "{msg}"
    );
    assert!(!msg.contains('\n'));

    let e = Settings::load_from(None, env(&[("RIVULET_PICKR", "x")]), &[]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("environment variable RIVULET_PICKR: unknown key 'pickr'"),
        "{e}"
    );
    let e = Settings::load_from(None, env(&[]), &[("colour", "x".into())]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("command line: unknown key 'colour'"),
        "{e}"
    );
}

#[test]
fn bad_values_name_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.toml", "max_peers = \"lots\"\n");
    let msg = Settings::load_from(Some(&file), env(&[]), &[])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("max_peers") && msg.contains(&file.display().to_string()),
        "{msg}"
    );
    assert!(!msg.contains('\n'));

    let msg = Settings::load_from(None, env(&[("RIVULET_LISTEN", "nowhere")]), &[])
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        "environment variable RIVULET_LISTEN: key 'listen': invalid socket address syntax"
    );
    let msg = Settings::load_from(None, env(&[]), &[("upload_slots", "-2".into())])
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("command line: key 'upload_slots': "),
        "{msg}"
    );

    let broken = write(dir.path(), "broken.toml", "picker = \n");
    let e = Settings::load_from(Some(&broken), env(&[]), &[]).unwrap_err();
    assert!(
        matches!(e, ConfigError::File { ref path, .. } if path == &broken),
        "{e}"
    );

    let missing = dir.path().join("missing.toml");
    let e = Settings::load_from(Some(&missing), env(&[]), &[]).unwrap_err();
    assert!(e.to_string().contains("missing.toml"), "{e}");
}

#[test]
fn the_sample_config_is_complete_and_valid() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rivulet.toml");
    let text = std::fs::read_to_string(&sample).unwrap();
    for key in rivulet_core::config::KEYS {
        // An optional key with no default (picker) is shown commented out.
        let shown =
            text.contains(&format!("\n{key} = ")) || text.contains(&format!("\n# {key} = "));
        assert!(shown, "sample lacks {key}");
    }
    Settings::load_from(Some(&sample), env(&[("HOME", "/home/u")]), &[]).unwrap();
}

#[test]
fn out_of_range_and_fractional_numbers_name_the_key_wherever_they_come_from() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("max_peers = 99999999999\n", "key 'max_peers'"),
        ("upload_slots = 1.5\n", "key 'upload_slots'"),
        (
            "memory_cache_mib = 99999999999999999999\n",
            "memory_cache_mib",
        ),
        ("read_timeout_secs = -1\n", "key 'read_timeout_secs'"),
        (
            "download_limit_kib = 18446744073709551\n",
            "key 'download_limit_kib'",
        ),
    ];
    for (text, want) in cases {
        let file = write(dir.path(), "c.toml", text);
        let msg = Settings::load_from(Some(&file), env(&[]), &[])
            .unwrap_err()
            .to_string();
        assert!(msg.contains(want), "{text:?}: {msg}");
        assert!(msg.starts_with(&file.display().to_string()), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
    for (var, value, key) in [
        (
            "RIVULET_MEMORY_CACHE_MIB",
            "99999999999999999999",
            "memory_cache_mib",
        ),
        ("RIVULET_MAX_PEERS", "2.5", "max_peers"),
        ("RIVULET_UPLOAD_SLOTS", "4294967296", "upload_slots"),
    ] {
        let msg = Settings::load_from(None, env(&[(var, value)]), &[])
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(&format!("environment variable {var}: key '{key}': ")),
            "{msg}"
        );
    }
    let msg = Settings::load_from(None, env(&[]), &[("max_peers", "99999999999".into())])
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("command line: key 'max_peers': "), "{msg}");
}

#[test]
fn no_peers_at_all_and_empty_paths_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "c.toml", "max_peers = 0\n");
    let msg = Settings::load_from(Some(&file), env(&[]), &[])
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        format!(
            "{}: key 'max_peers': 0 is not a whole number from 1 to 4294967295",
            file.display()
        )
    );
    let msg = Settings::load_from(None, env(&[("RIVULET_MAX_PEERS", "0")]), &[])
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("environment variable RIVULET_MAX_PEERS: key 'max_peers'"),
        "{msg}"
    );
    for var in ["RIVULET_STATE_DIR", "RIVULET_DOWNLOAD_DIR"] {
        let msg = Settings::load_from(None, env(&[(var, "")]), &[])
            .unwrap_err()
            .to_string();
        let key = var["RIVULET_".len()..].to_ascii_lowercase();
        assert_eq!(
            msg,
            format!("environment variable {var}: key '{key}': must not be empty")
        );
    }
    let file = write(dir.path(), "d.toml", "state_dir = \"\"\n");
    let msg = Settings::load_from(Some(&file), env(&[]), &[])
        .unwrap_err()
        .to_string();
    assert!(msg.ends_with("key 'state_dir': must not be empty"), "{msg}");
}

#[test]
fn the_dht_is_on_with_the_public_routers_unless_configured_otherwise() {
    let s = Settings::load_from(None, env(&[]), &[]).unwrap();
    assert!(s.dht);
    assert!(
        s.dht_bootstrap
            .contains(&"router.bittorrent.com:6881".to_string())
    );

    let vars = [
        ("RIVULET_DHT", "false"),
        ("RIVULET_DHT_BOOTSTRAP", "127.0.0.4:6881,node.example:25401"),
    ];
    let s = Settings::load_from(None, env(&vars), &[]).unwrap();
    assert!(!s.dht);
    assert_eq!(s.dht_bootstrap, ["127.0.0.4:6881", "node.example:25401"]);

    let overrides = [
        ("dht", "true".to_string()),
        ("dht_bootstrap", "127.0.0.5:1".into()),
    ];
    let s = Settings::load_from(None, env(&vars), &overrides).unwrap();
    assert!(s.dht, "the command line wins over the environment");
    assert_eq!(s.dht_bootstrap, ["127.0.0.5:1"]);
}
