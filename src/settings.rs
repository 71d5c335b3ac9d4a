//! How a setting is declared and checked, shared by [`crate::config`] (the run's
//! configuration) and [`crate::data`] (which owns its `[data]` section): the `named!`
//! lists of value names, the `section!` tables of fields with their defaults and ranges,
//! [`Range`], the field error [`ConfigError`] and serde's errors turned into it. Kept
//! below both so that neither imports the other's internals (config → data only).

/// Return a field error: `bail!("data.{key}" => "required by source = \"{name}\"")`;
/// the field and the message are both format strings.
macro_rules! bail {
    ($field:literal => $($msg:tt)+) => {
        return Err($crate::settings::ConfigError::field(format!($field), format!($($msg)+)))
    };
}

/// [`bail!`] unless `ok`: `ensure!(ok, "alm.gamma" => "must be greater than 1, got {g}")`.
macro_rules! ensure {
    ($ok:expr, $field:literal => $($msg:tt)+) => {
        let ok: bool = $ok;
        if !ok {
            bail!($field => $($msg)+)
        }
    };
}

/// Declares a setting whose values are names: the variants and their names in one list,
/// from which come serde's names, `ALL`, `as_str`, `parse` and `Display`, so a new value
/// is one line.
macro_rules! named {
    ($(#[$meta:meta])* pub enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $text:literal,)*
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            pub const ALL: [$name; [$($text),*].len()] = [$($name::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
            pub fn parse(s: &str) -> Option<$name> {
                Self::ALL.into_iter().find(|v| v.as_str() == s.trim())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Declares a config section once: each field's doc, type, default and (after `=>`) its
/// allowed range together. The struct derives serde with `#[serde(default)]`, so an absent
/// key takes its default; `check_ranges` checks the declared ranges.
macro_rules! section {
    ($(#[$meta:meta])* pub struct $name:ident {
        $($(#[$fmeta:meta])* pub $field:ident: $ty:ty = $default:expr $(=> $range:ident)?,)*
    }) => {
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default)]
        $(#[$meta])*
        pub struct $name { $($(#[$fmeta])* pub $field: $ty,)* }

        impl Default for $name {
            fn default() -> Self {
                $name { $($field: $default,)* }
            }
        }

        impl $name {
            /// The ranges declared beside the fields; errors name `{section}.{field}`.
            #[allow(unused_variables)]
            fn check_ranges(
                &self,
                section: &str,
            ) -> Result<(), $crate::settings::ConfigError> {
                $($(
                    let field = format!("{section}.{}", stringify!($field));
                    let range = $crate::settings::Range::$range;
                    $crate::settings::in_range(&field, self.$field as f64, range)?;
                )?)*
                Ok(())
            }
        }
    };
}

/// A configuration error; `field` is the dotted TOML path. A value given with `--set`
/// is blamed on that override (`set`), any other on the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {msg}")]
    Parse { file: String, msg: String },
    #[error(
        "{}config field `{field}`{}: {msg}",
        file.as_ref().map(|f| format!("{f}: ")).unwrap_or_default(),
        set.as_ref().map(|s| format!(" (from --set {s})")).unwrap_or_default()
    )]
    Field {
        file: Option<String>,
        set: Option<String>,
        field: String,
        msg: String,
    },
}

impl ConfigError {
    /// An error of `field`, not yet located in a file or override.
    pub(crate) fn field(field: impl Into<String>, msg: impl Into<String>) -> Self {
        ConfigError::Field {
            file: None,
            set: None,
            field: field.into(),
            msg: msg.into(),
        }
    }
}

/// The allowed range of a setting, declared beside its field (`section!`).
#[derive(Clone, Copy)]
pub(crate) enum Range {
    Positive,
    NonNegative,
    /// `(0, 1)`.
    Open,
    /// `[0, 1)`.
    HalfOpen,
    /// A budget: positive, `inf` meaning none.
    Budget,
    /// A count: at least 1.
    Count,
}

pub(crate) fn in_range(field: &str, v: f64, range: Range) -> Result<(), ConfigError> {
    let (ok, want) = match range {
        Range::Positive => (v.is_finite() && v > 0.0, "positive and finite"),
        Range::NonNegative => (v.is_finite() && v >= 0.0, "finite and ≥ 0"),
        Range::Open => (v > 0.0 && v < 1.0, "in (0, 1)"),
        Range::HalfOpen => ((0.0..1.0).contains(&v), "in [0, 1)"),
        Range::Budget => (v > 0.0 && !v.is_nan(), "positive (or inf for no limit)"),
        Range::Count => (v >= 1.0, "at least 1"),
    };
    ensure!(ok, "{field}" => "must be {want}, got {v}");
    Ok(())
}

/// Deserialize `value` (found at `prefix`) with its errors as field errors.
pub(crate) fn deserialize<T: serde::de::DeserializeOwned>(
    value: toml::Value,
    prefix: &str,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| serde_error(prefix, e))
}

/// A serde error as a field error named by `prefix` and serde's path.
fn serde_error(prefix: &str, e: serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let mut field = format!("{prefix}.{}", e.path());
    field = field.trim_matches('.').to_string();
    // toml appends its own, less precise "in `key`".
    let msg = e.inner().to_string();
    let mut msg = msg
        .split("\nin `")
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    // A wrong type inside a list makes the list malformed: name the list, as for any
    // other field, and the item in the message (a wrong value names the item).
    let in_list = msg.starts_with("invalid type") && field.ends_with(']');
    if let (true, Some((list, item))) = (in_list, field.rsplit_once('[')) {
        msg = format!("item {}: {msg}", item.trim_end_matches(']'));
        field = list.to_string();
    }
    let unknown = msg
        .strip_prefix("unknown field `")
        .and_then(|r| r.split_once('`'));
    match unknown {
        // serde's path stops at the flattened source, whose list omits the [data] settings.
        Some((name, _)) if field == "data" => {
            let reads = msg.split_once(", expected ").map_or("", |(_, r)| r);
            let reads = reads.trim_start_matches("one of ");
            let msg = format!(
                "unknown key (neither a [data] setting nor one of the source's keys: {reads})"
            );
            ConfigError::field(format!("data.{name}"), msg)
        }
        Some(_) => ConfigError::field(field, format!("unknown key ({msg})")),
        None => ConfigError::field(field, msg),
    }
}
