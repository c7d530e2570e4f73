//! Generated-input tests of the config file reader (`Settings::load_from` on a TOML file):
//! valid settings written as TOML read back equal; generated TOML documents of every shape
//! (known and unknown keys, wrong types, huge numbers, odd strings, nested tables and arrays),
//! their structured mutations and random bytes never panic and fail with one line.
//!
//! Cases per property: RIVULET_FUZZ_CASES (see rivulet-fuzz-support).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use rivulet_core::config::{KEYS, Settings};
use rivulet_fuzz_support::{config, mutate};

/// Loads `text` as the config file, with no environment and no overrides.
fn load(dir: &Path, text: &[u8]) -> Result<Settings, String> {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).expect("write config");
    let r = Settings::load_from(Some(&path), std::iter::empty(), &[]).map_err(|e| e.to_string());
    if let Err(e) = &r {
        assert!(
            !e.chars().any(char::is_control),
            "error is not one printable line: {e:?}"
        );
        assert!(!e.is_empty());
    }
    r
}

/// A TOML basic string holding `s` exactly.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        Just("inf".to_string()),
        Just("nan".to_string()),
        Just("18446744073709551616".to_string()),
        Just("0x7fffffffffffffff".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        ".{0,24}".prop_map(|s| quoted(&s)),
        "[0-9.:\\[\\]a-f]{0,24}".prop_map(|s| quoted(&s)),
        Just(quoted("0.0.0.0:6881")),
        Just(quoted("[::1]:0")),
        Just("1979-05-27T07:32:00Z".to_string()),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(", "))),
            proptest::collection::vec(("[a-z_]{1,8}", inner), 0..4).prop_map(|kv| {
                let body: Vec<String> = kv.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", body.join(", "))
            }),
        ]
    })
}

fn toml_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS.to_vec()).prop_map(str::to_string),
        1 => "[A-Za-z_-]{1,12}",
        1 => ".{0,12}".prop_map(|s| quoted(&s)),
        1 => prop::sample::select(KEYS.to_vec()).prop_map(|k| format!("{k}.sub")),
    ]
}

/// A TOML document: key/value lines, sometimes under a `[table]` header.
fn toml_doc() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        (
            proptest::option::weighted(0.1, toml_key()),
            proptest::collection::vec((toml_key(), toml_value()), 0..4),
        ),
        1..4,
    )
    .prop_map(|sections| {
        let mut doc = String::new();
        for (header, lines) in sections {
            if let Some(h) = header {
                doc.push_str(&format!("[{h}]\n"));
            }
            for (k, v) in lines {
                doc.push_str(&format!("{k} = {v}\n"));
            }
        }
        doc
    })
}

fn path() -> impl Strategy<Value = PathBuf> {
    "(/|\\./)?[a-zA-Z0-9 _é.-]{1,12}(/[a-zA-Z0-9 _é.-]{1,12}){0,2}".prop_map(PathBuf::from)
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        (any::<[u16; 8]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
    ]
}

/// Settings every field of which is set in the file.
fn settings() -> impl Strategy<Value = Settings> {
    // Each whole-number key over its whole accepted range (config::WHOLE_NUMBERS).
    let kib = 0u64..=u64::MAX >> 10;
    (
        (
            proptest::option::of("[a-z-]{1,16}"),
            "[a-z-]{1,16}",
            proptest::collection::vec(path(), 0..3),
            socket_addr(),
            1..=u32::MAX,
            path(),
        ),
        (
            0u64..=u64::MAX >> 20,
            kib.clone(),
            kib,
            any::<u32>(),
            0u64..=i64::MAX as u64,
            path(),
        ),
        (
            any::<bool>(),
            // An empty list in the file would read as the default (the config crate drops it).
            proptest::collection::vec("[a-z0-9.]{1,12}:[0-9]{1,5}", 1..4),
        ),
    )
        .prop_map(
            |(
                (picker, storage, plugin_dirs, listen, max_peers, download_dir),
                (
                    memory_cache_mib,
                    download_limit_kib,
                    upload_limit_kib,
                    upload_slots,
                    read_timeout_secs,
                    state_dir,
                ),
                (dht, dht_bootstrap),
            )| Settings {
                picker,
                storage,
                plugin_dirs,
                listen,
                max_peers,
                download_dir,
                memory_cache_mib,
                download_limit_kib,
                upload_limit_kib,
                upload_slots,
                read_timeout_secs,
                state_dir,
                dht,
                dht_bootstrap,
            },
        )
}

fn to_toml(s: &Settings) -> String {
    let p = |p: &Path| quoted(&p.display().to_string());
    let mut doc = String::new();
    if let Some(picker) = &s.picker {
        doc.push_str(&format!("picker = {}\n", quoted(picker)));
    }
    let dirs: Vec<String> = s.plugin_dirs.iter().map(|d| p(d)).collect();
    doc.push_str(&format!(
        "storage = {}\nplugin_dirs = [{}]\nlisten = {}\nmax_peers = {}\ndownload_dir = {}\n\
         memory_cache_mib = {}\ndownload_limit_kib = {}\nupload_limit_kib = {}\nupload_slots = {}\n\
         read_timeout_secs = {}\nstate_dir = {}\ndht = {}\ndht_bootstrap = [{}]\n",
        quoted(&s.storage),
        dirs.join(", "),
        quoted(&s.listen.to_string()),
        s.max_peers,
        p(&s.download_dir),
        s.memory_cache_mib,
        s.download_limit_kib,
        s.upload_limit_kib,
        s.upload_slots,
        s.read_timeout_secs,
        p(&s.state_dir),
        s.dht,
        s.dht_bootstrap
            .iter()
            .map(|b| quoted(b))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    doc
}

/// Runs `check` on [`config`] cases of `strategy`, each loading its file from one scratch
/// directory (a directory per case would cost more than the parse).
fn run<S: Strategy>(strategy: S, check: impl Fn(&Path, S::Value) -> Result<(), TestCaseError>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut runner = TestRunner::new(config());
    if let Err(e) = runner.run(&strategy, |v| check(dir.path(), v)) {
        panic!("{e}");
    }
}

#[test]
fn fuzz_config_valid_round_trip() {
    run(settings(), |dir, s| {
        let got = load(dir, to_toml(&s).as_bytes());
        prop_assert_eq!(got, Ok(s));
        Ok(())
    });
}

#[test]
fn fuzz_config_generated_toml() {
    run(toml_doc(), |dir, doc| {
        let _ = load(dir, doc.as_bytes());
        Ok(())
    });
}

#[test]
fn fuzz_config_mutated_valid() {
    run((settings(), mutate::edits()), |dir, (s, edits)| {
        let _ = load(dir, &mutate::apply(to_toml(&s).as_bytes(), &edits));
        Ok(())
    });
}

#[test]
fn fuzz_config_random_bytes() {
    run(
        proptest::collection::vec(any::<u8>(), 0..256),
        |dir, bytes| {
            let _ = load(dir, &bytes);
            Ok(())
        },
    );
}

#[test]
fn deep_nesting_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    for n in [100, 10_000, 200_000] {
        let doc = format!("picker = {}{}\n", "[".repeat(n), "]".repeat(n));
        assert!(load(dir.path(), doc.as_bytes()).is_err(), "nesting {n}");
        let doc = format!("picker = {}1{}\n", "{a = ".repeat(n), "}".repeat(n));
        assert!(
            load(dir.path(), doc.as_bytes()).is_err(),
            "inline tables {n}"
        );
    }
}
