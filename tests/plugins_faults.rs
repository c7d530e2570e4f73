//! Broken plugins and the real `rivulet` binary: libraries that must be refused are listed with a
//! reason naming the file and stop nothing; a picker plugin that panics is replaced by the
//! built-in fallback and the download completes, and so is one that names pieces that do not
//! exist; a storage that keeps nothing is refused for
//! `download`; the initialiser of a library refused from its file never runs, and one that
//! exits the process is named before it does.

mod plugins_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use plugins_support::{config, fetch, list_plugins, started, toml_paths};
use rand::{RngCore, SeedableRng};
use rivulet_tests::aria2::SeederOptions;
use rivulet_tests::fixture::Fixture;
use rivulet_tests::plugin_libs::{plugin_dir, test_plugin};
use rivulet_tests::process::Proc;
use rivulet_tests::rivulet::{self, Finished};
use rivulet_tests::swarm::Swarm;
use rivulet_tests::tracker::Announce;
use rivulet_tests::workdir::WorkDir;

/// A plugin directory holding a library of a future ABI, random bytes named `.so` and a valid
/// picker that panics on its first pick; returns the directory and the three paths.
fn broken_plugins(work: &WorkDir) -> (PathBuf, [PathBuf; 3]) {
    let dir = work.join("plugins");
    let libs = plugin_dir(
        &dir,
        &[&test_plugin("wrong-abi"), &test_plugin("panicky-picker")],
    );
    let garbage = dir.join("garbage.so");
    let mut bytes = vec![0u8; 8192];
    rand_chacha::ChaCha8Rng::seed_from_u64(5).fill_bytes(&mut bytes);
    std::fs::write(&garbage, bytes).expect("write garbage.so");
    (dir, [libs[0].clone(), garbage, libs[1].clone()])
}

#[test]
fn refused_libraries_are_listed_with_a_reason_naming_the_file() {
    let work = WorkDir::new("plugins-refused");
    let (dir, [wrong_abi, garbage, panicky]) = broken_plugins(&work);
    let cfg = config(
        &work,
        "broken.toml",
        &format!("plugin_dirs = {}", toml_paths(&[&dir])),
    );
    let (listed, stderr) = list_plugins(&work, &cfg);
    let status_of = |path: &PathBuf| {
        let path = path.display().to_string();
        listed
            .iter()
            .find(|l| l.source == path)
            .unwrap_or_else(|| panic!("{path} not listed: {listed:?}"))
            .status
            .clone()
    };
    for (lib, reason) in [
        (
            &wrong_abi,
            "plugin ABI version 999, this rivulet expects ABI version 2",
        ),
        (&garbage, "not an ELF shared object"),
    ] {
        let status = status_of(lib);
        assert_eq!(
            status,
            format!("REFUSED: {}: {reason}", lib.display()),
            "{listed:?}"
        );
    }
    // Valid until it is used: listed like any picker.
    assert_eq!(status_of(&panicky), "ok");
    assert!(
        listed
            .iter()
            .any(|l| l.kind == "picker" && l.name == "sequential" && l.status == "ok"),
        "built-ins missing: {listed:?}"
    );
    assert!(
        stderr.contains("2 plugin file(s) refused"),
        "stderr: {stderr}"
    );
}

#[test]
fn broken_plugins_stop_nothing_and_a_panicking_picker_is_replaced() {
    let work = WorkDir::new("plugins-panicky");
    let (dir, _) = broken_plugins(&work);
    let fixture = Fixture::multi();
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let torrent = swarm.torrent(&work, Announce::Http);

    let good = config(
        &work,
        "good.toml",
        &format!(
            "plugin_dirs = {}\npicker = \"sequential\"",
            toml_paths(&[&dir])
        ),
    );
    let events = fetch(&work, fixture, &torrent, "good", |d| d.config(&good));
    assert_eq!(started(&events).0, "sequential");
    assert!(!events.has("picker_fault"), "{}", events.tail(10));

    let panicky = config(
        &work,
        "panicky.toml",
        &format!(
            "plugin_dirs = {}\npicker = \"panicky\"",
            toml_paths(&[&dir])
        ),
    );
    let events = fetch(&work, fixture, &torrent, "panicky", |d| d.config(&panicky));
    assert_eq!(started(&events).0, "panicky");
    let faults: Vec<_> = events.of("picker_fault").collect();
    assert_eq!(
        faults.len(),
        1,
        "one fault, one fallback:\n{}",
        events.tail(20)
    );
    assert_eq!(faults[0]["picker"], "panicky");
    assert_eq!(faults[0]["fallback"], "rarest-first");
    let error = faults[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("panicky") && error.contains("panicky picker refuses to pick"),
        "{error}"
    );
    assert_eq!(
        events.verified().len() as u32,
        fixture.meta.piece_count(),
        "{}",
        events.tail(10)
    );
}

/// A picker plugin that names pieces past the end of the torrent is a faulty picker like a
/// panicking one: replaced once by the fallback, and the download completes.
#[test]
fn a_picker_naming_pieces_that_do_not_exist_is_replaced() {
    let work = WorkDir::new("plugins-liar");
    let dir = work.join("plugins");
    plugin_dir(&dir, &[&test_plugin("liar-picker")]);
    let fixture = Fixture::multi();
    let swarm = Swarm::start(&work, fixture, SeederOptions::default());
    let torrent = swarm.torrent(&work, Announce::Http);
    let liar = config(
        &work,
        "liar.toml",
        &format!("plugin_dirs = {}\npicker = \"liar\"", toml_paths(&[&dir])),
    );
    let events = fetch(&work, fixture, &torrent, "liar", |d| d.config(&liar));
    assert_eq!(started(&events).0, "liar");
    let faults: Vec<_> = events.of("picker_fault").collect();
    assert_eq!(
        faults.len(),
        1,
        "one fault, one fallback:\n{}",
        events.tail(20)
    );
    assert_eq!(faults[0]["fallback"], "rarest-first");
    let error = faults[0]["error"].as_str().unwrap_or_default();
    let bogus = (fixture.meta.piece_count() + 1000).to_string();
    assert!(
        error.contains(&bogus),
        "the fault names the bogus piece: {error}"
    );
    assert_eq!(events.verified().len() as u32, fixture.meta.piece_count());
}

#[test]
fn download_refuses_a_storage_that_keeps_nothing() {
    let work = WorkDir::new("plugins-download-memory");
    let fixture = Fixture::multi_small();
    let torrent = fixture.torrent("http://127.0.0.1:1/announce", "nowhere", work.path());
    let run = rivulet::run(
        work.path(),
        "download-memory",
        &[
            "download".into(),
            torrent.into(),
            "--output".into(),
            work.subdir("out").into(),
            "--storage".into(),
            "memory".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ],
        Duration::from_secs(30),
    );
    run.assert_clean_failure("download --storage memory");
    assert!(
        run.stderr.contains("storage 'memory' keeps nothing")
            && run.stderr.contains("rivulet mount --storage memory"),
        "{}",
        run.stderr
    );
}

/// `rivulet plugins` with `dir` as its plugin directory, debug logs of the loader on, and the
/// test libraries' initialisers told to leave their markers in `markers` (and, with `exit`, to
/// exit the process).
fn list_with_initialisers(work: &WorkDir, dir: &Path, markers: &Path, exit: bool) -> Finished {
    let tag = if exit { "exiting" } else { "listing" };
    let cfg = config(
        work,
        &format!("{tag}.toml"),
        &format!("plugin_dirs = {}", toml_paths(&[dir])),
    );
    let mut cmd = rivulet::command();
    cmd.arg("plugins")
        .arg("--config")
        .arg(&cfg)
        .env("RUST_LOG", "rivulet_core::plugin=debug")
        .env("TEST_PLUGIN_CONSTRUCTOR_MARKERS", markers);
    if exit {
        cmd.env("TEST_PLUGIN_CONSTRUCTOR_EXIT", "1");
    }
    let (out, err) = (
        work.join(&format!("{tag}.stdout")),
        work.join(&format!("{tag}.stderr")),
    );
    let mut proc = Proc::spawn_split(&format!("rivulet plugins ({tag})"), cmd, &out, &err);
    let status = proc.wait_exit(Duration::from_secs(30));
    Finished {
        status,
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    }
}

#[test]
fn a_refused_librarys_initialiser_never_runs_and_an_exiting_one_is_named() {
    let work = WorkDir::new("plugins-initialisers");
    let dir = work.join("plugins");
    let libs = plugin_dir(
        &dir,
        &[
            &test_plugin("wrong-abi"),
            &test_plugin("constructor-picker"),
        ],
    );
    let markers = work.subdir("markers");

    let listed = list_with_initialisers(&work, &dir, &markers, false);
    assert!(listed.status.success(), "{}", listed.stderr);
    assert!(
        listed.stdout.contains(&format!(
            "{}: plugin ABI version 999, this rivulet expects ABI version 2",
            libs[0].display()
        )),
        "{}",
        listed.stdout
    );
    assert!(
        markers.join("constructor-picker").exists(),
        "the accepted library's initialiser did not run, so the check below proves nothing"
    );
    assert!(
        !markers.join("wrong-abi").exists(),
        "the initialiser of a library refused for its ABI ran"
    );

    let exited = list_with_initialisers(&work, &dir, &markers, true);
    assert_eq!(exited.status.code(), Some(42), "{}", exited.stderr);
    let last = exited.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("loading plugin {}", libs[1].display())),
        "the last words before the exit name the library: {}",
        exited.stderr
    );
}
