//! Rivulet's settings, read with the `config` crate from, in rising precedence: built-in
//! defaults, a TOML file (`--config FILE`, else `$XDG_CONFIG_HOME/rivulet/config.toml` or
//! `~/.config/rivulet/config.toml` if it exists), `RIVULET_*` environment variables (lists
//! comma-separated), and command-line overrides. Unknown keys are refused, naming where they came
//! from; `~/` at the start of a path means the home directory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat, Source};
use serde::{Deserialize, Serialize};

const ENV_PREFIX: &str = "RIVULET_";

/// Every key, for refusing unknown ones before the values are read.
pub const KEYS: &[&str] = &[
    "picker",
    "storage",
    "plugin_dirs",
    "listen",
    "max_peers",
    "download_dir",
    "memory_cache_mib",
    "download_limit_kib",
    "upload_limit_kib",
    "upload_slots",
    "read_timeout_secs",
    "state_dir",
    "dht",
    "dht_bootstrap",
];

/// Keys whose value is a list, given comma-separated in the environment and on the command line.
const LIST_KEYS: &[&str] = &["plugin_dirs", "dht_bootstrap"];

/// Whole-number keys with their smallest and largest accepted value. Checked on the raw value:
/// the config crate would otherwise truncate `1.5` and saturate a huge number read from the
/// environment. The KiB/s limits are multiplied by 1024 later, so they must leave room.
const WHOLE_NUMBERS: &[(&str, u64, u64)] = &[
    ("max_peers", 1, u32::MAX as u64),
    ("memory_cache_mib", 0, u64::MAX >> 20),
    ("download_limit_kib", 0, u64::MAX >> 10),
    ("upload_limit_kib", 0, u64::MAX >> 10),
    ("upload_slots", 0, u32::MAX as u64),
    ("read_timeout_secs", 0, i64::MAX as u64),
];

/// The peer port when none is named; a front end may move off it when it is taken.
pub const DEFAULT_LISTEN_PORT: u16 = 6881;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Piece picker plugin name; unset means the command's own default (rarest-first for
    /// `download` and `seed`, streaming for `mount`).
    #[serde(default)]
    pub picker: Option<String>,
    /// Storage backend plugin name.
    pub storage: String,
    /// Directories whose `*.so` plugins are loaded; a loaded plugin overrides a built-in.
    // The config crate drops empty lists, so an empty default must come from serde.
    #[serde(default)]
    pub plugin_dirs: Vec<PathBuf>,
    /// Address the peer listener binds; a specific IP is also where outgoing connections leave
    /// from (peers, trackers, DHT).
    pub listen: SocketAddr,
    /// Connected peers per torrent.
    pub max_peers: u32,
    /// Where downloads are written.
    pub download_dir: PathBuf,
    /// RAM the memory storage backend (and read caches) may hold, MiB.
    pub memory_cache_mib: u64,
    /// KiB/s; 0 means unlimited.
    pub download_limit_kib: u64,
    /// KiB/s; 0 means unlimited.
    pub upload_limit_kib: u64,
    /// Peers unchoked at once.
    pub upload_slots: u32,
    /// A read through the mount fails with EIO after this long without its data.
    pub read_timeout_secs: u64,
    /// Resume data and other state.
    pub state_dir: PathBuf,
    /// Find peers of public torrents through the DHT (BEP 5) and answer other DHT nodes.
    pub dht: bool,
    /// `host:port` of DHT nodes to join through, besides those saved by the last run.
    #[serde(default)]
    pub dht_bootstrap: Vec<String>,
}

/// The public DHT routers most clients join through.
pub const DEFAULT_DHT_BOOTSTRAP: &[&str] = &[
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: unknown key '{key}' (known keys: {})", KEYS.join(", "))]
    UnknownKey { origin: String, key: String },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// A value of the wrong type or form; the message names the key and where it came from.
    #[error("{0}")]
    BadValue(String),
}

impl Settings {
    /// Settings from the process environment and the default or given file.
    pub fn load(
        config_file: Option<&Path>,
        overrides: &[(&str, String)],
    ) -> Result<Settings, ConfigError> {
        Self::load_from(config_file, std::env::vars(), overrides)
    }

    /// As [`Settings::load`], reading `env` instead of the process environment.
    pub fn load_from(
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[(&str, String)],
    ) -> Result<Settings, ConfigError> {
        let env: HashMap<String, String> = env.into_iter().collect();
        let home = env.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        let file = match config_file {
            Some(f) => Some(f.to_path_buf()),
            None => default_file(&env, home.as_deref()).filter(|f| f.is_file()),
        };

        let mut builder = Config::builder().add_source(
            Config::try_from(&Settings::defaults(&env, home.as_deref()))
                .map_err(|e| ConfigError::BadValue(e.to_string()))?,
        );
        let mut file_keys = Vec::new();
        if let Some(path) = &file {
            let file_error = |message: String| ConfigError::File {
                path: path.clone(),
                message,
            };
            std::fs::metadata(path).map_err(|e| file_error(format!("cannot read: {e}")))?;
            let source = File::from(path.as_path())
                .format(FileFormat::Toml)
                .required(true);
            let alone = Config::builder()
                .add_source(source.clone())
                .build()
                .map_err(|e| {
                    match std::fs::read_to_string(path)
                        .ok()
                        .and_then(|t| too_large_for_toml(&t))
                    {
                        Some(key_and_value) => file_error(key_and_value),
                        None => file_error(one_line(&e)),
                    }
                })?;
            file_keys = alone
                .collect()
                .map_err(|e| file_error(one_line(&e)))?
                .into_keys()
                .collect();
            refuse_unknown(&file_keys, |_| path.display().to_string())?;
            builder = builder.add_source(source);
        }

        let ours: HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.len() > ENV_PREFIX.len())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        refuse_unknown(
            ours.keys()
                .map(|k| k[ENV_PREFIX.len()..].to_ascii_lowercase()),
            |key| {
                format!(
                    "environment variable {ENV_PREFIX}{}",
                    key.to_ascii_uppercase()
                )
            },
        )?;
        let mut environment = Environment::with_prefix("RIVULET")
            .prefix_separator("_")
            // Lists are only split when values are parsed; strings still read as strings.
            .try_parsing(true)
            .list_separator(",")
            .source(Some(ours.into_iter().collect()));
        for key in LIST_KEYS {
            environment = environment.with_list_parse_key(key);
        }
        builder = builder.add_source(environment);

        refuse_unknown(overrides.iter().map(|(k, _)| k.to_string()), |_| {
            "command line".to_string()
        })?;
        for (key, value) in overrides {
            let set = if LIST_KEYS.contains(key) {
                let items: Vec<String> = value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                builder.set_override(*key, items)
            } else {
                builder.set_override(*key, value.as_str())
            };
            builder = set.map_err(|e| ConfigError::BadValue(format!("command line: {e}")))?;
        }

        // Which layer a bad value came from: the last one that sets the key.
        let origin = |key: &str| {
            let var = format!("{ENV_PREFIX}{}", key.to_ascii_uppercase());
            if overrides.iter().any(|(k, _)| *k == key) {
                "command line".to_string()
            } else if env.contains_key(&var) {
                format!("environment variable {var}")
            } else if let Some(path) = file.as_ref().filter(|_| file_keys.iter().any(|k| k == key))
            {
                path.display().to_string()
            } else {
                "default".to_string()
            }
        };
        let built = builder
            .build()
            .map_err(|e| ConfigError::BadValue(describe(e, origin)))?;
        check_whole_numbers(&built, origin)?;
        let mut settings: Settings = built
            .try_deserialize()
            .map_err(|e| ConfigError::BadValue(describe(e, origin)))?;
        // An empty path (say `RIVULET_STATE_DIR=`) would quietly mean the working directory.
        let paths = [
            ("download_dir", &settings.download_dir),
            ("state_dir", &settings.state_dir),
        ];
        for (key, path) in paths {
            let var = format!("{ENV_PREFIX}{}", key.to_ascii_uppercase());
            let empty_var = env.get(&var).is_some_and(|v| v.trim().is_empty());
            if empty_var || path.as_os_str().is_empty() {
                return Err(ConfigError::BadValue(format!(
                    "{}: key '{key}': must not be empty",
                    origin(key)
                )));
            }
        }
        settings.expand_home(home.as_deref());
        Ok(settings)
    }

    /// The defaults, with state under `$XDG_STATE_HOME` or `~/.local/state`.
    fn defaults(env: &HashMap<String, String>, home: Option<&Path>) -> Settings {
        let state_dir = env
            .get("XDG_STATE_HOME")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(".local/state")))
            .map_or_else(|| PathBuf::from(".rivulet-state"), |d| d.join("rivulet"));
        Settings {
            picker: None,
            storage: "mmap".to_string(),
            plugin_dirs: Vec::new(),
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_LISTEN_PORT)),
            max_peers: 50,
            download_dir: PathBuf::from("."),
            memory_cache_mib: 256,
            download_limit_kib: 0,
            upload_limit_kib: 0,
            upload_slots: 4,
            read_timeout_secs: 60,
            state_dir,
            dht: true,
            dht_bootstrap: DEFAULT_DHT_BOOTSTRAP
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    fn expand_home(&mut self, home: Option<&Path>) {
        let Some(home) = home else { return };
        let expand = |p: &mut PathBuf| {
            if let Ok(rest) = p.strip_prefix("~") {
                *p = home.join(rest);
            }
        };
        self.plugin_dirs.iter_mut().for_each(expand);
        expand(&mut self.download_dir);
        expand(&mut self.state_dir);
    }
}

/// Refuses a whole-number key whose value is fractional, not a number, or out of its range,
/// naming where it came from and the key.
fn check_whole_numbers(built: &Config, origin: impl Fn(&str) -> String) -> Result<(), ConfigError> {
    let config::ValueKind::Table(root) = &built.cache.kind else {
        return Ok(());
    };
    for &(key, min, max) in WHOLE_NUMBERS {
        let Some(value) = root.get(key) else { continue };
        let n: Option<i128> = match &value.kind {
            config::ValueKind::I64(n) => Some(i128::from(*n)),
            config::ValueKind::U64(n) => Some(i128::from(*n)),
            config::ValueKind::I128(n) => Some(*n),
            config::ValueKind::U128(n) => i128::try_from(*n).ok(),
            config::ValueKind::String(s) => s.trim().parse::<i128>().ok(),
            _ => None,
        };
        if n.is_some_and(|n| (i128::from(min)..=i128::from(max)).contains(&n)) {
            continue;
        }
        // The value as given, escaped: an environment variable may hold anything.
        let shown = match &value.kind {
            config::ValueKind::String(s) => format!("'{}'", s.escape_debug()),
            other => other.to_string().escape_debug().to_string(),
        };
        return Err(ConfigError::BadValue(format!(
            "{}: key '{key}': {shown} is not a whole number from {min} to {max}",
            origin(key)
        )));
    }
    Ok(())
}

/// `key 'K' (line N): V is outside the range of a TOML number (...)` for the first
/// `K = V` line whose integer is past TOML's 64-bit range: the parser reports such a number
/// with neither key nor line.
fn too_large_for_toml(text: &str) -> Option<String> {
    text.lines().enumerate().find_map(|(i, line)| {
        let (key, value) = line.split_once('=')?;
        let value = value.split('#').next()?.trim();
        let digits = value.trim_start_matches(['+', '-']).replace('_', "");
        let (radix, digits) = match digits.get(..2) {
            Some("0x") => (16, &digits[2..]),
            Some("0o") => (8, &digits[2..]),
            Some("0b") => (2, &digits[2..]),
            _ => (10, digits.as_str()),
        };
        let is_integer = !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
        if !is_integer || i64::from_str_radix(digits, radix).is_ok() {
            return None;
        }
        let key = key.trim().trim_matches(['"', '\'']).escape_debug();
        let value = value.escape_debug();
        Some(format!(
            "key '{key}' (line {}): {value} is outside the range of a TOML number (±{})",
            i + 1,
            i64::MAX
        ))
    })
}

fn default_file(env: &HashMap<String, String>, home: Option<&Path>) -> Option<PathBuf> {
    env.get("XDG_CONFIG_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".config")))
        .map(|d| d.join("rivulet/config.toml"))
}

/// A value error as one line: where the value came from, the key, what was wrong. The config
/// crate's own origin is dropped: it shows file paths relative to the working directory.
fn describe(e: config::ConfigError, origin: impl Fn(&str) -> String) -> String {
    match e {
        config::ConfigError::Type {
            unexpected,
            expected,
            key: Some(key),
            ..
        } => format!(
            "{}: key '{key}': invalid type: {unexpected}, expected {expected}",
            origin(&key)
        ),
        config::ConfigError::At {
            error,
            key: Some(key),
            ..
        } => {
            let inner = match *error {
                config::ConfigError::Message(m) => m,
                other => one_line(&other),
            };
            format!("{}: key '{key}': {inner}", origin(&key))
        }
        other => one_line(&other),
    }
}

/// A TOML parse error spans several lines (the offending line, a caret); keep the position and
/// the reason.
fn one_line(e: &config::ConfigError) -> String {
    let text = match e {
        config::ConfigError::FileParse { cause, .. } => cause.to_string(),
        other => other.to_string(),
    };
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.contains(" | "));
    let first = lines.next().unwrap_or_default().to_string();
    match lines.next_back() {
        Some(last) => format!("{first}: {last}"),
        None => first,
    }
}

fn refuse_unknown(
    keys: impl IntoIterator<Item = impl AsRef<str>>,
    origin: impl Fn(&str) -> String,
) -> Result<(), ConfigError> {
    let mut unknown: Vec<String> = keys
        .into_iter()
        .filter(|k| !KEYS.contains(&k.as_ref()))
        .map(|k| k.as_ref().to_string())
        .collect();
    unknown.sort();
    match unknown.into_iter().next() {
        // A quoted TOML key or a variable name may hold a newline or an escape sequence.
        Some(key) => Err(ConfigError::UnknownKey {
            origin: origin(&key).escape_debug().to_string(),
            key: key.escape_debug().to_string(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_printed_escaped() {
        let e = refuse_unknown(["a\nb\u{1b}[2J"], |k| format!("origin {k}")).unwrap_err();
        assert_eq!(
            e.to_string().lines().next().unwrap(),
            r"origin a\nb\u{1b}[2J: unknown key 'a\nb\u{1b}[2J' (known keys: picker, storage, plugin_dirs, listen, max_peers, download_dir, memory_cache_mib, download_limit_kib, upload_limit_kib, upload_slots, read_timeout_secs, state_dir, dht, dht_bootstrap)"
        );
    }

    #[test]
    fn keys_list_every_field() {
        let defaults = Settings::defaults(&HashMap::new(), None);
        let value = serde_json::to_value(defaults).unwrap();
        let mut fields: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut keys = KEYS.to_vec();
        fields.sort_unstable();
        keys.sort_unstable();
        assert_eq!(fields, keys);
    }
}
