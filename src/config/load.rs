//! Reading a configuration: TOML text (a file or the built-in default) → `--set`
//! overrides → the `[data]` source settled by the data module (tag inferred, other
//! sources' keys reported or, when the source was switched on the command line, dropped)
//! → serde → the defaults that depend on the source → data paths resolved →
//! [`Config::validate`]. Each error is then located: blamed on the `--set` that gave the
//! value, else on the file.

use super::{Config, ConfigError, DEFAULT_CONFIG};
use crate::data::{settle_source, GivenKeys};
use crate::settings::deserialize;
use std::path::{Component, Path, PathBuf};
use toml::{Table, Value};

/// The largest config file read (a config is a page of settings; this only guards
/// against a wrong path naming a large or endless file).
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// How relative data paths are resolved. A config file's paths are relative to the file
/// (so a config works from any working directory); paths given with `--set` are relative
/// to the working directory (where the user typed them); the built-in default's paths are
/// tried from the working directory and then from the crate's `configs/` folder, so
/// `cargo run` finds `data/digits.csv` from anywhere inside the checkout.
enum Base {
    File(PathBuf),
    BuiltIn,
}

/// Where the text came from and what overrode it.
struct Origin {
    /// The file, for messages (`None`: built-in default or a string).
    file: Option<String>,
    base: Base,
    /// `(dotted key, override as given)`, in order.
    sets: Vec<(String, String)>,
}

/// Load a configuration: `path` (or the built-in digits default when `None`), then the
/// `key=value` overrides of `sets` (dotted keys, TOML values, bare strings allowed), then
/// defaults and validation.
pub fn load_config(path: Option<&Path>, sets: &[String]) -> Result<Config, ConfigError> {
    let Some(p) = path else {
        let origin = Origin::new(None, Base::BuiltIn);
        return build(DEFAULT_CONFIG, "<built-in default config>", origin, sets);
    };
    let file = p.display().to_string();
    let cannot = |e: std::io::Error| ConfigError::Parse {
        file: file.clone(),
        msg: format!("cannot read config file: {e}"),
    };
    let bytes = crate::data::read_regular(p, MAX_CONFIG_BYTES).map_err(|e| cannot(e.into_io()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        cannot(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e.utf8_error(),
        ))
    })?;
    let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
    let origin = Origin::new(Some(file.clone()), Base::File(dir));
    build(&text, &file, origin, sets)
}

/// Parse a TOML string (e.g. a saved resolved config) without touching the file system.
/// Relative paths are kept as written.
pub fn config_from_str(text: &str, sets: &[String]) -> Result<Config, ConfigError> {
    let origin = Origin::new(None, Base::File(PathBuf::new()));
    build(text, "<string>", origin, sets)
}

/// `label` names the text in syntax errors; `origin` comes without its overrides.
fn build(
    text: &str,
    label: &str,
    mut origin: Origin,
    sets: &[String],
) -> Result<Config, ConfigError> {
    let mut table: Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
        file: label.to_string(),
        msg: e.to_string(),
    })?;
    for s in sets {
        let key = apply_override(&mut table, s)?;
        origin.sets.push((key, s.trim().to_string()));
    }
    origin.config(table).map_err(|e| origin.locate(e))
}

/// Apply one `key=value` override to the TOML tree; returns the dotted key.
fn apply_override(table: &mut Table, set: &str) -> Result<String, ConfigError> {
    let Some((key, val)) = set.split_once('=') else {
        let key = set.trim();
        bail!("{key}" => "override `{set}` is not of the form key=value");
    };
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    let named = !key.is_empty() && parts.iter().all(|p| !p.is_empty());
    ensure!(named, "{key}" => "override `{set}` has an empty key");
    let val = val.trim();
    // A value is TOML when it parses as one (`3`, `[64, 32]`, `true`, `"x"`), else a bare
    // string (`data.path=my.csv`), so file names need no quoting on a command line.
    let value = toml::from_str::<Table>(&format!("v = {val}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(val.to_string()));
    let mut cur = table;
    for i in 0..parts.len() - 1 {
        let entry = cur
            .entry(parts[i])
            .or_insert_with(|| Value::Table(Table::new()));
        let Value::Table(t) = entry else {
            let at = parts[..=i].join(".");
            bail!("{at}" => "override `{set}`: `{at}` is not a table");
        };
        cur = t;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(parts.join("."))
}

/// Whether the override of `key` set `field` (itself, or a part of it).
fn covers(key: &str, field: &str) -> bool {
    field
        .strip_prefix(key)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

impl Origin {
    fn new(file: Option<String>, base: Base) -> Self {
        let sets = Vec::new();
        Origin { file, base, sets }
    }

    fn config(&self, mut table: Table) -> Result<Config, ConfigError> {
        let switched = self.sets.iter().any(|(k, _)| covers(k, "data.source"));
        if let Err(e) = settle_source(&mut table, switched) {
            // Typos, wrong types and the model's rules come before what `[data]` lacks.
            table.remove("data");
            deserialize::<Config>(Value::Table(table), "")?.validate_model()?;
            return Err(e);
        }
        if matches!(self.base, Base::BuiltIn) {
            self.drop_builtin_data_settings(&mut table);
        }
        let given = GivenKeys::of(&table);
        let mut cfg: Config = deserialize(Value::Table(table), "")?;
        cfg.data.source_defaults(&given);
        for (key, p) in cfg.data.source.paths_mut() {
            *p = self.resolve(key, p);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// The built-in default describes its own data (digits pixels, already in [0, 1]):
    /// when the command line names other data (`--data`, `data.path`, `data.source`), the
    /// default's preprocessing keys do not carry over, so the new data gets its source's
    /// defaults (a CSV file is standardised) unless the command line says otherwise.
    fn drop_builtin_data_settings(&self, table: &mut Table) {
        let replaced = ["data.path", "data.source", "data.x", "data.images"]
            .iter()
            .any(|f| self.sets.iter().any(|(k, _)| covers(k, f)));
        let Some(Value::Table(data)) = table.get_mut("data") else {
            return;
        };
        if !replaced {
            return;
        }
        for key in ["standardize", "standardize_targets", "feature_scale"] {
            let field = format!("data.{key}");
            if !self.sets.iter().any(|(k, _)| covers(k, &field)) {
                data.remove(key);
            }
        }
    }

    /// Blame a field error on the `--set` that gave the value, else on the file.
    fn locate(&self, mut e: ConfigError) -> ConfigError {
        if let ConfigError::Field {
            file, set, field, ..
        } = &mut e
        {
            // The override set this field, or created the table it names.
            let mut sets = self.sets.iter().rev();
            let by = sets.find(|(k, _)| covers(k, field) || covers(field, k));
            *set = by.map(|(_, s)| s.clone());
            *file = by.map_or(self.file.clone(), |_| None);
        }
        e
    }

    /// `path` of `data.{key}` resolved as [`Base`] says.
    fn resolve(&self, key: &str, path: &Path) -> PathBuf {
        let field = format!("data.{key}");
        if path.is_absolute() || self.sets.iter().any(|(k, _)| covers(k, &field)) {
            return normalize(path);
        }
        match &self.base {
            Base::File(dir) => normalize(&dir.join(path)),
            Base::BuiltIn => {
                // The default is written relative to `configs/`; from a working directory
                // it is more natural to look for `data/…` directly.
                let stripped: PathBuf = path
                    .components()
                    .skip_while(|c| matches!(c, Component::ParentDir))
                    .collect();
                let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("configs")
                    .join(path);
                [path.to_path_buf(), stripped.clone(), manifest]
                    .iter()
                    .map(|c| normalize(c))
                    .find(|c| c.exists())
                    .unwrap_or_else(|| normalize(&stripped))
            }
        }
    }
}

/// `p` made absolute against the working directory and cleaned.
pub(super) fn absolute(p: &Path) -> PathBuf {
    normalize(&std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
}

/// Lexically clean `a/b/../c` → `a/c` so resolved paths print readably.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match (c, out.components().next_back()) {
            (Component::CurDir, _) => {}
            (Component::ParentDir, Some(Component::Normal(_))) => _ = out.pop(),
            (Component::ParentDir, Some(Component::RootDir | Component::Prefix(_))) => {}
            _ => out.push(c),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}
