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
];

/// Keys whose value is a list, given comma-separated in the environment and on the command line.
const LIST_KEYS: &[&str] = &["plugin_dirs"];

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
    /// Address the peer listener binds.
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
}

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
                .map_err(|e| file_error(one_line(&e)))?;
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
        let mut settings: Settings = builder
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|e| ConfigError::BadValue(describe(e, origin)))?;
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
            listen: SocketAddr::from(([0, 0, 0, 0], 6881)),
            max_peers: 50,
            download_dir: PathBuf::from("."),
            memory_cache_mib: 256,
            download_limit_kib: 0,
            upload_limit_kib: 0,
            upload_slots: 4,
            read_timeout_secs: 60,
            state_dir,
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
            r"origin a\nb\u{1b}[2J: unknown key 'a\nb\u{1b}[2J' (known keys: picker, storage, plugin_dirs, listen, max_peers, download_dir, memory_cache_mib, download_limit_kib, upload_limit_kib, upload_slots, read_timeout_secs, state_dir)"
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
