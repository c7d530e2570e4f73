//! Builds real plugin libraries (core/tests/plugins/ and examples/picker-reverse) with cargo and
//! loads them through the C ABI: a loaded picker behaves like the same type linked in, forged and
//! foreign libraries are refused with a reason naming the file, a panicking plugin is poisoned
//! while the process and other plugins keep working, and the registry lists everything.

#[path = "plugins/scripted-picker/src/picker.rs"]
mod scripted;

#[path = "../../examples/picker-reverse/src/picker.rs"]
mod reverse;

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rivulet_core::bitfield::Bitfield;
use rivulet_core::plugin::abi::picker::{DynPicker, PickerVTable};
use rivulet_core::plugin::loader::{self, Loaded};
use rivulet_core::plugin::{
    AnnounceEvent, AnnounceRequest, BuiltinPicker, PiecePicker, PluginError, PluginKind,
    PluginSource, PluginStatus, Registry, StorageError, StorageSpec, TrackerError,
};

const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-build")
}

/// Runs `cargo build` on `manifest` into [`target_dir`], failing the test on error or timeout.
fn cargo_build(manifest: &Path) {
    let target = target_dir();
    std::fs::create_dir_all(&target).unwrap();
    let log_path = target.join(format!(
        "build-{}.log",
        manifest
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
    ));
    let log = std::fs::File::create(&log_path).unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--offline", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(&target)
        .stdout(Stdio::null())
        .stderr(log);
    if profile() == "release" {
        cmd.arg("--release");
    }
    let mut child = cmd.spawn().expect("cargo runs");
    let deadline = Instant::now() + BUILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "building {} took over {BUILD_TIMEOUT:?}",
                manifest.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        status.success(),
        "building {} failed:\n{}",
        manifest.display(),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
}

/// Path of the built library of crate `name`, building all test plugins once per process.
fn lib(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let core = Path::new(env!("CARGO_MANIFEST_DIR"));
        cargo_build(&core.join("tests/plugins/Cargo.toml"));
        cargo_build(&core.join("../examples/picker-reverse/Cargo.toml"));
        target_dir().join(profile())
    });
    dir.join(format!("lib{}.so", name.replace('-', "_")))
}

fn load_picker(name: &str) -> DynPicker {
    match loader::load(&lib(name)) {
        Ok(Loaded::Picker(f)) => f.create_dyn().unwrap(),
        Ok(_) => panic!("{name} is not a picker"),
        Err(e) => panic!("{e}"),
    }
}

fn refusal(path: &Path) -> String {
    match loader::load(path) {
        Err(e @ PluginError::Load { .. }) => e.to_string(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("{} was loaded", path.display()),
    }
}

fn bitfield(pieces: u32, rng: &mut StdRng, density: f64) -> Bitfield {
    let mut b = Bitfield::new(pieces);
    for p in 0..pieces {
        if rng.random_bool(density) {
            b.set(p);
        }
    }
    b
}

#[test]
fn loaded_picker_picks_like_the_same_type_linked_in() {
    let mut loaded = load_picker("scripted-picker");
    let mut linked: Box<dyn PiecePicker> = Box::new(scripted::ScriptedPicker::default());
    let pickers: [&mut dyn PiecePicker; 2] = [&mut loaded, linked.as_mut()];
    let pieces = 300;
    let mut rng = StdRng::seed_from_u64(7);
    let have = bitfield(pieces, &mut rng, 0.1);
    let mut peers: Vec<Bitfield> = (0..8).map(|_| bitfield(pieces, &mut rng, 0.5)).collect();
    for p in pickers {
        p.init(pieces, &have);
    }
    let [loaded, linked]: [&mut dyn PiecePicker; 2] = [&mut loaded, linked.as_mut()];
    for (peer, has) in peers.iter().enumerate() {
        loaded.peer_bitfield(peer as u32, has);
        linked.peer_bitfield(peer as u32, has);
    }
    let mut picks = Vec::new();
    for _ in 0..2000 {
        let peer = rng.random_range(0..8u32);
        let piece = rng.random_range(0..pieces);
        match rng.random_range(0..8) {
            0 => {
                peers[peer as usize].set(piece);
                loaded.peer_have(peer, piece);
                linked.peer_have(peer, piece);
            }
            1 => {
                loaded.piece_verified(piece);
                linked.piece_verified(piece);
            }
            2 => {
                loaded.piece_lost(piece);
                linked.piece_lost(piece);
            }
            3 => {
                let deadline = rng.random_bool(0.7).then(|| rng.random_range(0..1000));
                loaded.set_deadline(piece, deadline);
                linked.set_deadline(piece, deadline);
            }
            4 if rng.random_bool(0.1) => {
                peers[peer as usize] = bitfield(pieces, &mut rng, 0.5);
                loaded.peer_left(peer);
                linked.peer_left(peer);
                loaded.peer_bitfield(peer, &peers[peer as usize]);
                linked.peer_bitfield(peer, &peers[peer as usize]);
            }
            _ => {
                let pick = loaded.pick(peer);
                assert_eq!(pick, linked.pick(peer), "pick {} differs", picks.len());
                picks.push(pick);
            }
        }
    }
    assert!(picks.len() > 500);
    let distinct: std::collections::HashSet<_> = picks.iter().flatten().collect();
    assert!(
        distinct.len() > 100,
        "the script barely exercised the picker"
    );
}

#[test]
fn example_reverse_picker_loads_and_picks_highest_first() {
    let mut p = load_picker("rivulet-picker-reverse");
    let mut have = Bitfield::new(20);
    have.set(19);
    p.init(20, &have);
    let all = Bitfield::full(20);
    p.peer_bitfield(1, &all);
    p.peer_bitfield(2, &all);
    assert_eq!(p.pick(1), Some(18));
    assert_eq!(p.pick(1), Some(17));
    p.piece_lost(18);
    assert_eq!(p.pick(2), Some(18));
    p.peer_have(3, 3);
    p.peer_have(3, 17);
    assert_eq!(p.pick(3), Some(3));
    assert_eq!(p.pick(3), None);
    assert_eq!(p.pick(4), None, "a peer it was told nothing of has nothing");
    assert_eq!(p.poisoned(), None);
}

#[test]
fn foreign_and_forged_libraries_are_refused_naming_the_file() {
    let wrong_abi = lib("wrong-abi");
    let e = refusal(&wrong_abi);
    assert!(e.starts_with(&wrong_abi.display().to_string()), "{e}");
    assert!(
        e.ends_with("plugin ABI version 999, this rivulet expects ABI version 2"),
        "{e}"
    );

    let e = refusal(&lib("wrong-stamp"));
    let expected = format!("{:016x}", PickerVTable::FINGERPRINT);
    assert!(
        e.contains("picker ABI fingerprint") && e.contains(&expected) && e.contains("rebuild"),
        "{e}"
    );
    let e = refusal(&lib("old-abi"));
    assert!(
        e.contains("no `rivulet_plugin_descriptor` symbol")
            && e.contains("built for an ABI before version 2"),
        "{e}"
    );
    assert!(refusal(&lib("unknown-kind")).contains("unknown plugin kind 42"));

    // Built with export_picker! but without the `dynamic` feature: no descriptor symbol.
    let no_entry = lib("no-entry");
    let e = refusal(&no_entry);
    assert!(e.starts_with(&no_entry.display().to_string()), "{e}");
    assert!(e.contains("no `rivulet_plugin_descriptor` symbol"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let random = dir.path().join("random.so");
    let mut rng = StdRng::seed_from_u64(1);
    std::fs::write(
        &random,
        (0..4096).map(|_| rng.random()).collect::<Vec<u8>>(),
    )
    .unwrap();
    let e = refusal(&random);
    assert_eq!(e, format!("{}: not an ELF shared object", random.display()));

    let fake_elf = dir.path().join("fake.so");
    std::fs::write(
        &fake_elf,
        b"\x7fELF and then nothing an ELF loader could use",
    )
    .unwrap();
    let e = refusal(&fake_elf);
    assert!(e.contains("malformed ELF file"), "{e}");

    let missing = dir.path().join("missing.so");
    assert!(refusal(&missing).contains("cannot read"));
}

#[test]
fn libraries_and_directories_others_can_write_are_refused_before_loading() {
    use std::os::unix::fs::PermissionsExt;
    let chmod = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("scripted.so");
    std::fs::copy(lib("scripted-picker"), &copy).unwrap();
    chmod(dir.path(), 0o755);
    chmod(&copy, 0o755);
    assert!(loader::load(&copy).is_ok(), "a private copy loads");

    chmod(&copy, 0o777);
    let e = refusal(&copy);
    assert_eq!(
        e,
        format!(
            "{}: file is world-writable (mode 777): refusing to load code others can change",
            copy.display()
        )
    );
    chmod(&copy, 0o775);
    assert!(refusal(&copy).contains("file is group-writable"));

    chmod(&copy, 0o755);
    chmod(dir.path(), 0o777);
    assert!(refusal(&copy).contains("its directory is world-writable"));
    let mut registry = Registry::new();
    registry.load_dirs(&[dir.path().to_path_buf()]);
    let list = registry.list();
    assert_eq!(list.len(), 1, "only the refused directory: {list:#?}");
    match &list[0].status {
        PluginStatus::Broken(reason) => assert!(
            reason.contains("directory is world-writable")
                && reason.starts_with(&dir.path().display().to_string()),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    chmod(dir.path(), 0o700);
}

#[test]
fn a_panicking_picker_is_poisoned_and_the_process_keeps_working() {
    let mut panicky = load_picker("panicky-picker");
    let all = Bitfield::full(4);
    panicky.init(4, &Bitfield::new(4));
    panicky.peer_bitfield(1, &all);
    assert_eq!(panicky.poisoned(), None);
    assert_eq!(panicky.pick(1), None);
    assert_eq!(panicky.poisoned(), Some("panicky picker refuses to pick"));
    assert_eq!(
        panicky.fault().as_deref(),
        Some("picker plugin 'panicky' panicked: panicky picker refuses to pick")
    );
    // Poisoned: later calls never reach the plugin (which would panic again).
    panicky.peer_have(1, 2);
    assert_eq!(panicky.pick(1), None);

    // Through the registry as the engine sees it: a boxed trait object that picks nothing.
    let mut registry = Registry::new();
    registry.load_file(&lib("panicky-picker")).unwrap();
    registry.load_file(&lib("scripted-picker")).unwrap();
    let mut boxed = registry.picker("panicky").unwrap().create().unwrap();
    boxed.init(4, &Bitfield::new(4));
    boxed.peer_bitfield(1, &all);
    assert_eq!(boxed.pick(1), None);
    assert!(boxed.fault().is_some());

    let mut other = registry.picker("scripted").unwrap().create().unwrap();
    other.init(4, &Bitfield::new(4));
    other.peer_bitfield(1, &all);
    assert_eq!(other.pick(1), Some(0));
    drop(panicky);
    drop(boxed);
    assert_eq!(other.pick(1), Some(1));
}

#[test]
fn storage_plugin_round_trips_data_and_errors() {
    let mut registry = Registry::new();
    assert_eq!(
        registry.load_file(&lib("test-storage")).unwrap(),
        PluginKind::Storage
    );
    let factory = registry.storage("test-storage").unwrap();
    let spec = StorageSpec {
        root: PathBuf::from("/srv/rivulet/é"),
        files: vec![(PathBuf::from("a"), 10), (PathBuf::from("d/b"), 5)],
        piece_length: 4,
        memory_limit: 1 << 20,
    };
    let s = factory.open(&spec).unwrap();
    assert!(!s.has_data(1, 1, 3), "nothing written yet");
    s.write(1, 1, b"xyz").unwrap();
    assert!(s.has_data(1, 1, 3));
    assert!(!s.has_data(1, 0, 3), "byte 0 was never written");
    let mut buf = [0u8; 3];
    s.read(1, 1, &mut buf).unwrap();
    assert_eq!(&buf, b"xyz");
    assert!(matches!(s.read(0, 0, &mut buf), Err(StorageError::Evicted)));
    assert!(matches!(
        s.write(1, 4, b"xy"),
        Err(StorageError::OutOfRange {
            file: 1,
            offset: 4,
            len: 2
        })
    ));
    match s.flush() {
        Err(StorageError::Io { path, source }) => {
            assert_eq!(path, spec.root.join("flush"));
            assert_eq!(source.raw_os_error(), Some(30));
        }
        other => panic!("{other:?}"),
    }
    assert!(s.persistent());

    let empty = StorageSpec {
        files: vec![],
        ..spec.clone()
    };
    match factory.open(&empty) {
        Err(StorageError::Other(m)) => assert_eq!(m, "test storage needs at least one file"),
        other => panic!("{:?}", other.map(|_| ())),
    }

    let e = s.write(0, u64::MAX, b"x").unwrap_err().to_string();
    assert!(e.contains("test-storage") && e.contains("panicked"), "{e}");
    let e = s.read(1, 1, &mut buf).unwrap_err().to_string();
    assert!(e.contains("disabled after an earlier panic"), "{e}");
    assert!(!s.persistent());
    // Poisoned: "may hold data" is the answer that never skips a piece that is there.
    assert!(s.has_data(1, 0, 3));

    let fresh = factory.open(&spec).unwrap();
    fresh.write(0, 0, b"ok").unwrap();
}

#[test]
fn tracker_plugin_is_chosen_by_scheme_and_round_trips_announces() {
    let mut registry = Registry::new();
    registry.load_file(&lib("test-tracker")).unwrap();
    let t = registry
        .tracker_for_url("TESTS://tracker.invalid/announce")
        .unwrap();
    assert_eq!(t.url(), "TESTS://tracker.invalid/announce");
    let mut req = AnnounceRequest {
        info_hash: [0xab; 20],
        peer_id: [0x2d; 20],
        port: 6881,
        uploaded: 1,
        downloaded: 2,
        left: 3,
        event: AnnounceEvent::Started,
        num_want: 50,
        key: 0xdead_beef,
        timeout: Duration::from_millis(1500),
        local_ip: Some("127.0.0.2".parse().unwrap()),
    };
    let r = t.announce(&req).unwrap();
    assert_eq!(
        r.peers,
        vec![
            SocketAddr::from(([127, 0, 0, 1], 6881)),
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 6882, 0, 3)),
        ]
    );
    assert_eq!(r.interval, Duration::from_secs(1800));
    assert_eq!(r.min_interval, Some(Duration::from_millis(1500)));
    assert_eq!((r.seeders, r.leechers), (Some(50), None));
    assert_eq!(
        r.warning.as_deref(),
        Some("Started key=3735928559 left=3 hash0=171 id0=45 from=Some(127.0.0.2)")
    );

    req.event = AnnounceEvent::Stopped;
    assert!(matches!(t.announce(&req), Err(TrackerError::Failure(m)) if m.contains("stopped")));
    req.event = AnnounceEvent::Completed;
    req.timeout = Duration::ZERO;
    assert!(matches!(t.announce(&req), Err(TrackerError::Timeout)));

    assert!(matches!(
        registry.tracker_for_url("test://refuse/announce"),
        Err(TrackerError::Unsupported(m)) if m.contains("refused by test tracker")
    ));
    assert!(matches!(
        registry.tracker_for_url("udp://127.0.0.1:1/announce"),
        Err(TrackerError::Unsupported(m)) if m.contains("'udp'")
    ));
}

#[test]
fn registry_lists_built_ins_loaded_and_broken_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let copy = |name: &str, to: &str| {
        let dest = dir.path().join(to);
        std::fs::copy(lib(name), &dest).unwrap();
        dest
    };
    let scripted = copy("scripted-picker", "a-scripted.so");
    let wrong = copy("wrong-abi", "b-wrong.so");
    std::fs::write(dir.path().join("c-garbage.so"), b"not a library").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"ignored: not a .so").unwrap();
    let missing = dir.path().join("no-such-dir");

    let mut registry = Registry::new();
    registry.add_picker(BuiltinPicker::<scripted::ScriptedPicker>::new(
        "scripted", "0.9.0",
    ));
    registry.add_picker(BuiltinPicker::<scripted::ScriptedPicker>::new(
        "plain", "0.9.0",
    ));
    registry.load_dirs(&[dir.path().to_path_buf(), missing.clone()]);

    let list = registry.list();
    let find = |name: &str, source: &PluginSource| {
        list.iter()
            .find(|i| i.name == name && &i.source == source)
            .unwrap_or_else(|| panic!("{name} from {source} not listed in {list:#?}"))
    };
    let loaded = PluginSource::Path(scripted.clone());
    assert_eq!(
        find("scripted", &PluginSource::BuiltIn).status,
        PluginStatus::Overridden { by: loaded.clone() }
    );
    let l = find("scripted", &loaded);
    assert_eq!(
        (l.kind, l.version.as_str(), &l.status),
        (Some(PluginKind::Picker), "1.2.3", &PluginStatus::Ok)
    );
    assert_eq!(
        find("plain", &PluginSource::BuiltIn).status,
        PluginStatus::Ok
    );
    let broken = |name: &str, path: &Path, needle: &str| {
        let i = find(name, &PluginSource::Path(path.to_path_buf()));
        assert_eq!(i.kind, None);
        match &i.status {
            PluginStatus::Broken(reason) => assert!(reason.contains(needle), "{reason}"),
            other => panic!("{other:?}"),
        }
    };
    broken("b-wrong.so", &wrong, "ABI version 999");
    broken(
        "c-garbage.so",
        &dir.path().join("c-garbage.so"),
        "not an ELF shared object",
    );
    broken("no-such-dir", &missing, "cannot read plugin directory");
    assert_eq!(list.len(), 6, "{list:#?}");

    // The loaded plugin wins over the built-in of the same name.
    let chosen = registry.picker("scripted").unwrap();
    assert_eq!(chosen.info().source, loaded);
    let e = registry.picker("nope").err().unwrap().to_string();
    assert_eq!(
        e,
        "no picker plugin named 'nope' (available: plain, scripted)"
    );
}

/// Not a correctness test: prints the cost of a call across the boundary. Run it with
/// `cargo test --release -p rivulet-core --test plugin_abi -- --ignored --nocapture overhead`.
#[test]
#[ignore]
fn dynamic_call_overhead() {
    let pieces = 100_000;
    let all = Bitfield::full(pieces);
    static TABLE: PickerVTable = PickerVTable::of::<reverse::ReversePicker>();
    let mut linked: Box<dyn PiecePicker> = Box::new(reverse::ReversePicker::default());
    let mut in_process: Box<dyn PiecePicker> =
        Box::new(DynPicker::open(TABLE.check().unwrap(), "reverse", None).unwrap());
    let mut loaded: Box<dyn PiecePicker> = Box::new(load_picker("rivulet-picker-reverse"));
    for (label, p) in [
        ("linked", &mut linked),
        ("table in process", &mut in_process),
        ("loaded .so", &mut loaded),
    ] {
        p.init(pieces, &Bitfield::new(pieces));
        p.peer_bitfield(1, &all);
        let n = 1_000_000;
        let start = Instant::now();
        for i in 0..n {
            p.peer_have(i % 50, i % pieces);
        }
        let have_ns = start.elapsed().as_nanos() as f64 / n as f64;
        let n = 100_000;
        let start = Instant::now();
        for _ in 0..n {
            let piece = p.pick(1).unwrap();
            p.piece_lost(piece);
        }
        let pick_ns = start.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "{label:>16}: peer_have {have_ns:7.1} ns/call, pick+piece_lost on {pieces} pieces {pick_ns:8.1} ns"
        );
    }
}
