//! What `rivulet plugins` says of each plugin: its kind, name, version, where it came from and
//! whether it is used.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PluginKind {
    Picker,
    Storage,
    Tracker,
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginKind::Picker => "picker",
            PluginKind::Storage => "storage",
            PluginKind::Tracker => "tracker",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginSource {
    BuiltIn,
    Path(PathBuf),
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginSource::BuiltIn => f.write_str("built-in"),
            PluginSource::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginStatus {
    Ok,
    /// Another plugin of the same kind and name is used instead.
    Overridden {
        by: PluginSource,
    },
    /// The library was refused; the reason names the file.
    Broken(String),
}

/// One line of `rivulet plugins`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    /// `None` when the library was refused before its kind could be read.
    pub kind: Option<PluginKind>,
    /// The plugin's name; for a refused library, its file name.
    pub name: String,
    pub version: String,
    pub source: PluginSource,
    pub status: PluginStatus,
    /// URL schemes a tracker plugin handles; empty for other kinds.
    pub schemes: Vec<String>,
}

impl PluginInfo {
    pub fn new(kind: PluginKind, name: &str, version: &str, source: PluginSource) -> Self {
        PluginInfo {
            kind: Some(kind),
            name: name.to_string(),
            version: version.to_string(),
            source,
            status: PluginStatus::Ok,
            schemes: Vec::new(),
        }
    }

    /// A refused library or unreadable directory, listed under its file name.
    pub fn broken(path: &Path, reason: String) -> Self {
        PluginInfo {
            kind: None,
            name: path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            version: String::new(),
            source: PluginSource::Path(path.to_path_buf()),
            status: PluginStatus::Broken(reason),
            schemes: Vec::new(),
        }
    }
}
