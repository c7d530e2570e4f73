//! Plugin shared libraries for tests of the real binary: the workspace's own plugins built as
//! loadable twins (their `dynamic` feature on, in a target directory of their own so the switch
//! does not rebuild the main one), the third-party example `examples/picker-reverse`, and the
//! good and broken test plugins of `core/tests/plugins`. Each build runs at most once per test
//! process (cargo itself skips what is up to date) and fails the test after a timeout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::process::Proc;

/// A cold build compiles rivulet-core and its dependencies once more; on a busy two-core
/// machine that takes minutes.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// The workspace root (this package's manifest directory).
fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/`, found from the test executable (`target/<profile>/deps/<exe>`).
fn target_root() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors()
        .nth(3)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// File name of the shared library cargo makes for crate `name`.
fn lib_file(name: &str) -> String {
    format!("lib{}.so", name.replace('-', "_"))
}

/// Runs `cargo build --offline ARGS --target-dir TARGET` once per distinct `args` in this
/// process; returns the directory the libraries land in.
fn build(key: &str, args: &[&str], target: &Path) -> PathBuf {
    static DONE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let done = DONE.get_or_init(Default::default);
    // Held across the build: two tests asking for the same libraries wait for one build.
    let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = done.get(key) {
        return dir.clone();
    }
    std::fs::create_dir_all(target).unwrap_or_else(|e| panic!("mkdir {}: {e}", target.display()));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace())
        .args(["build", "--offline"])
        .args(args)
        .arg("--target-dir")
        .arg(target);
    if profile() == "release" {
        cmd.arg("--release");
    }
    let log = target.join(format!("build-{key}.log"));
    let mut proc = Proc::spawn(&format!("cargo build ({key})"), cmd, &log);
    proc.wait_success(BUILD_TIMEOUT);
    let dir = target.join(profile());
    done.insert(key.to_string(), dir.clone());
    dir
}

/// The loadable twin of a workspace plugin crate, e.g. `rivulet-picker-sequential`.
pub fn twin(crate_name: &str) -> PathBuf {
    let feature = format!("{crate_name}/dynamic");
    // One crate per build: picker-streaming links picker-rarest-first, whose entry symbol must
    // not be switched on inside it.
    let dir = build(
        crate_name,
        &["-p", crate_name, "--features", &feature],
        &target_root().join("dynamic-plugins"),
    );
    existing(dir.join(lib_file(crate_name)))
}

/// The example third-party picker `reverse`, built on its own as a user would.
pub fn reverse_example() -> PathBuf {
    let manifest = workspace().join("examples/picker-reverse/Cargo.toml");
    let dir = build(
        "picker-reverse",
        &["--manifest-path", &manifest.to_string_lossy()],
        &plugin_build_dir(),
    );
    existing(dir.join(lib_file("rivulet-picker-reverse")))
}

/// A crate of `core/tests/plugins` (e.g. `panicky-picker`, `wrong-abi`).
pub fn test_plugin(name: &str) -> PathBuf {
    let manifest = workspace().join("core/tests/plugins/Cargo.toml");
    let dir = build(
        "core-test-plugins",
        &["--manifest-path", &manifest.to_string_lossy()],
        &plugin_build_dir(),
    );
    existing(dir.join(lib_file(name)))
}

/// Where core's plugin ABI test builds the same crates (`CARGO_TARGET_TMPDIR/plugin-build`),
/// so that a workspace test run builds them once.
fn plugin_build_dir() -> PathBuf {
    target_root().join("tmp").join("plugin-build")
}

fn existing(path: PathBuf) -> PathBuf {
    assert!(
        path.is_file(),
        "the build succeeded but {} is missing",
        path.display()
    );
    path
}

/// Copies `libs` into `dir` (created, writable only by us: rivulet refuses a plugin directory
/// others can write), as a `plugin_dirs` entry; returns the copies.
pub fn plugin_dir(dir: &Path, libs: &[&Path]) -> Vec<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
    libs.iter()
        .map(|lib| {
            let to = dir.join(lib.file_name().expect("a library has a file name"));
            std::fs::copy(lib, &to)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", lib.display(), to.display()));
            to
        })
        .collect()
}
