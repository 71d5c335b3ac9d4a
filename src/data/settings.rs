//! The `[data]` section of a configuration, owned here beside the readers it drives: the
//! task, where the data comes from ([`DataSource`]: CSV, NPY, IDX or the synthetic
//! teacher) and how it is preprocessed; the defaults that depend on the source; the
//! source's keys settled in the TOML before serde reads them; and the section's rules.
//! `config` embeds [`DataConfig`] in its whole-run `Config`.

use crate::settings::{deserialize, ConfigError};
use serde::{Deserialize, Deserializer, Serialize};
use std::path::PathBuf;
use toml::{Table, Value};

named! {
    /// Classification (one-hot targets, error = 1 − accuracy) or regression (error = MSE).
    pub enum Task {
        Classification = "classification",
        Regression = "regression",
    }
}

/// Where the data comes from: `source = "csv" | "npy" | "idx" | "teacher"` in `[data]`,
/// beside the source's own keys. Loading infers a missing tag from the keys present and
/// checks the required paths before serde reads this ([`settle_source`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase", deny_unknown_fields)]
pub enum DataSource {
    /// CSV with a header row; `target` names the label/target column(s).
    Csv {
        path: PathBuf,
        /// `target = "label"` (the default) or `target = ["y1", "y2"]`.
        #[serde(default = "default_target", deserialize_with = "one_or_many")]
        target: Vec<String>,
        test_path: Option<PathBuf>,
    },
    /// NPY features (`N×d`, one sample per row as NumPy stores it) and targets (`N` or `N×m`).
    Npy {
        x: PathBuf,
        y: PathBuf,
        test_x: Option<PathBuf>,
        test_y: Option<PathBuf>,
    },
    /// MNIST-format IDX (optionally gzipped) images + labels; optional separate test files.
    Idx {
        images: PathBuf,
        labels: PathBuf,
        test_images: Option<PathBuf>,
        test_labels: Option<PathBuf>,
    },
    /// The synthetic teacher problem (a random sparse leaky ReLU net), parameters in `[data.teacher]`.
    Teacher(#[serde(with = "teacher_table")] TeacherParams),
}

fn default_target() -> Vec<String> {
    vec!["label".into()]
}

/// One column name or a list of them.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// The teacher's parameters are a table of their own (`[data.teacher]`) rather than keys
/// beside `source`, so a teacher config reads like the problem it generates.
mod teacher_table {
    use super::TeacherParams;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Nested<T> {
        #[serde(default)]
        teacher: T,
    }

    pub fn serialize<S: Serializer>(t: &TeacherParams, s: S) -> Result<S::Ok, S::Error> {
        Nested { teacher: t }.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TeacherParams, D::Error> {
        Ok(Nested::<TeacherParams>::deserialize(d)?.teacher)
    }
}

impl DataSource {
    /// The source's files present, by key.
    pub(crate) fn paths_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)> {
        let (required, optional) = match self {
            DataSource::Csv {
                path, test_path, ..
            } => (vec![("path", path)], vec![("test_path", test_path)]),
            DataSource::Npy {
                x,
                y,
                test_x,
                test_y,
            } => (
                vec![("x", x), ("y", y)],
                vec![("test_x", test_x), ("test_y", test_y)],
            ),
            DataSource::Idx {
                images,
                labels,
                test_images: ti,
                test_labels: tl,
            } => (
                vec![("images", images), ("labels", labels)],
                vec![("test_images", ti), ("test_labels", tl)],
            ),
            DataSource::Teacher(_) => (Vec::new(), Vec::new()),
        };
        let optional = optional
            .into_iter()
            .filter_map(|(k, p)| Some((k, p.as_mut()?)));
        required.into_iter().chain(optional).collect()
    }
}

section! {
    /// The synthetic teacher problem (regression).
    #[serde(deny_unknown_fields)]
    pub struct TeacherParams {
        /// Teacher layer sizes, input first.
        pub sizes: Vec<usize> = vec![50, 40, 20, 1],
        /// Zero rows per hidden teacher layer (when only `sizes` is given, this default is
        /// cut or padded with zeros to one count per hidden layer).
        pub zero_rows: Vec<usize> = vec![10, 5],
        pub n_train: usize = 5000,
        pub n_test: usize = 1000,
        /// Std of the Gaussian noise added to the standardised targets.
        pub noise: f64 = 0.05 => NonNegative,
        /// Std of the teacher biases.
        pub bias_std: f64 = 0.1 => NonNegative,
        pub seed: u64 = 0,
    }
}

section! {
    /// `[data]`. Unknown keys are reported by the source's variant (serde cannot combine
    /// `deny_unknown_fields` with the flattened source). The teacher needs no files, so it
    /// is the one source with a complete default; a loaded config always names its source.
    pub struct DataConfig {
        #[serde(flatten)]
        pub source: DataSource = DataSource::Teacher(TeacherParams::default()),
        /// Default: regression for the teacher, classification for files.
        pub task: Task = Task::Regression,
        /// Fraction held out for test when no separate test set is given (0 allowed).
        pub test_fraction: f64 = 0.2 => HalfOpen,
        /// Stratify the split by class (classification only).
        pub stratify: bool = true,
        /// Standardise features with the training set's mean/std. Default when the key
        /// is absent: true for CSV files (tabular columns in their own units), false for
        /// IDX images (scaled by `feature_scale` instead), NPY arrays and the teacher.
        pub standardize: bool = false,
        /// Regression: standardise each target with the training set's mean/std; the
        /// loss and (P0) are then in standard units, reported errors in the target's own.
        /// Default when absent: true for CSV and NPY files, false for the teacher (whose
        /// targets are standardised by construction).
        pub standardize_targets: bool = false,
        /// Divide raw features by this (e.g. 255 for IDX images); 1 = none.
        pub feature_scale: f64 = 1.0 => Positive,
        /// Use at most this many training samples (0 = all), taken after the split.
        pub max_train: usize = 0,
        pub split_seed: u64 = 0,
        /// Number of classes when known in advance (classification): integer labels are
        /// then the class indices and must be below it (string labels: at most this many).
        /// `None`: the sorted distinct label values are the classes.
        pub classes: Option<usize> = None,
    }
}

/// Each data source's keys in `[data]` besides `source`: `(name, required, keys)`, the
/// first `required` keys required, the first key implying the source when `source` is
/// left out (sources in this order of precedence).
const SOURCES: [(&str, usize, &[&str]); 4] = [
    ("teacher", 0, &["teacher"]),
    (
        "idx",
        2,
        &["images", "labels", "test_images", "test_labels"],
    ),
    ("npy", 2, &["x", "y", "test_x", "test_y"]),
    ("csv", 1, &["path", "target", "test_path"]),
];

/// Settle `[data]`'s source in a config's TOML before serde reads it: infer a missing tag
/// from the keys present; check the types of every source's keys (serde reads the
/// internally tagged, flattened source through a buffer that forgets key names); report
/// another source's keys as a likely mistake, unless the source was `switched` on the
/// command line (then the file's keys for its old source are expected leftovers, and are
/// dropped); require the source's required paths (blank = missing) and drop blank
/// optional ones.
pub(crate) fn settle_source(table: &mut Table, switched: bool) -> Result<(), ConfigError> {
    let missing = || {
        ConfigError::field(
            "data.source",
            "missing; set source = \"csv\" | \"npy\" | \"idx\" | \"teacher\" (or data.path for a CSV file)",
        )
    };
    let data = match table.get_mut("data") {
        Some(Value::Table(d)) => d,
        Some(_) => return Ok(()), // serde names the wrong type
        None => return Err(missing()),
    };
    let source = match data.get("source") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => bail!("data.source" => "invalid type: {}, expected a source name", v.type_str()),
        None => {
            let (name, ..) = SOURCES
                .iter()
                .find(|(_, _, keys)| data.contains_key(keys[0]))
                .ok_or_else(missing)?;
            data.insert("source".into(), Value::String(name.to_string()));
            name.to_string()
        }
    };
    let Some(&(_, required, own)) = SOURCES.iter().find(|(n, ..)| *n == source) else {
        bail!("data.source" => "unknown source `{source}`; expected csv, npy, idx or teacher");
    };
    for (name, _, keys) in SOURCES {
        for &key in keys {
            let Some(v) = data.get(key) else { continue };
            let expected = match key {
                "teacher" => {
                    deserialize::<TeacherParams>(v.clone(), "data.teacher")?;
                    None
                }
                _ if v.is_str() => None,
                "target" if v.as_array().is_some_and(|a| a.iter().all(Value::is_str)) => None,
                "target" => Some("a column name or a list of them"),
                _ => Some("a path"),
            };
            if let Some(expected) = expected {
                bail!("data.{key}" => "invalid type: {}, expected {expected}", v.type_str());
            }
            ensure!(name == source || switched, "data.{key}" => "not used by source = \"{source}\"");
            if name != source {
                data.remove(key);
            }
        }
    }
    for (i, &key) in own.iter().enumerate() {
        let blank = data
            .get(key)
            .and_then(Value::as_str)
            .map(|s| s.trim().is_empty());
        let given = i >= required || blank == Some(false);
        ensure!(given, "data.{key}" => "required by source = \"{source}\"");
        if blank == Some(true) && key != "target" {
            data.remove(key);
        }
    }
    Ok(())
}

/// Which of the keys whose default depends on the source a config's TOML gives.
pub(crate) struct GivenKeys {
    task: bool,
    standardize: bool,
    standardize_targets: bool,
    zero_rows: bool,
}

impl GivenKeys {
    /// Read from the whole config's TOML (before serde consumes it).
    pub(crate) fn of(table: &Table) -> GivenKeys {
        let data = table.get("data").and_then(Value::as_table);
        let has = |key: &str| data.is_some_and(|d| d.contains_key(key));
        GivenKeys {
            task: has("task"),
            standardize: has("standardize"),
            standardize_targets: has("standardize_targets"),
            zero_rows: data
                .and_then(|d| d.get("teacher")?.get("zero_rows"))
                .is_some(),
        }
    }
}

impl DataConfig {
    /// The defaults that depend on the source, for the keys `given` lacks (see the
    /// fields' docs).
    pub(crate) fn source_defaults(&mut self, given: &GivenKeys) {
        if let DataSource::Teacher(t) = &mut self.source {
            if !given.zero_rows {
                t.zero_rows = TeacherParams::default().zero_rows;
                t.zero_rows.resize(t.sizes.len().saturating_sub(2), 0);
            }
        } else if !given.task {
            self.task = Task::Classification;
        }
        let (csv, npy) = match &self.source {
            DataSource::Csv { .. } => (true, false),
            DataSource::Npy { .. } => (false, true),
            _ => (false, false),
        };
        if !given.standardize {
            self.standardize = csv;
        }
        if !given.standardize_targets {
            self.standardize_targets = csv || npy;
        }
    }

    /// The rules of `[data]` and of each source.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let task = self.task;
        // Optional test files come in pairs; the missing one is named.
        let (a, b, has_a, has_b) = match &self.source {
            DataSource::Npy { test_x, test_y, .. } => (
                "data.test_x",
                "data.test_y",
                test_x.is_some(),
                test_y.is_some(),
            ),
            DataSource::Idx {
                test_images: ti,
                test_labels: tl,
                ..
            } => (
                "data.test_images",
                "data.test_labels",
                ti.is_some(),
                tl.is_some(),
            ),
            _ => ("", "", false, false),
        };
        let missing = if has_a { b } else { a };
        ensure!(has_a == has_b, "{missing}" => "{a} and {b} must be given together");
        match &self.source {
            DataSource::Csv { target, .. } => {
                let n = target.len();
                let named = n > 0 && target.iter().all(|t| !t.trim().is_empty());
                ensure!(named, "data.target" => "needs at least one non-empty column name");
                let ok = task != Task::Classification || n == 1;
                ensure!(ok, "data.target" => "classification needs exactly one label column, got {n}");
            }
            DataSource::Teacher(t) => {
                let (sizes, zero_rows) = (&t.sizes, &t.zero_rows);
                let ok = sizes.len() >= 2 && !sizes.contains(&0);
                ensure!(ok, "data.teacher.sizes" => "needs at least two positive layer sizes (input first), got {sizes:?}");
                let (want, got) = (sizes.len() - 2, zero_rows.len());
                ensure!(want == got, "data.teacher.zero_rows" => "needs one count per hidden teacher layer ({want}), got {got}");
                for (i, (&z, &w)) in zero_rows.iter().zip(&sizes[1..]).enumerate() {
                    ensure!(z < w, "data.teacher.zero_rows[{i}]" => "must be below the layer width {w}, got {z}");
                }
                ensure!(t.n_train >= 1, "data.teacher.n_train" => "must be at least 1, got 0");
                // Refused before generating, with the estimate, rather than aborted by the
                // allocator halfway through.
                let need = super::teacher::memory_estimate(t);
                let avail = super::available_memory();
                let limit = avail.map_or(u128::MAX, u128::from);
                let (n_train, n_test) = (t.n_train, t.n_test);
                ensure!(need <= limit, "data.teacher.n_train" =>
                    "generating {n_train} + {n_test} samples needs about {} of memory, more than the {} available; use fewer samples",
                    super::human_bytes(need),
                    super::human_bytes(limit));
                t.check_ranges("data.teacher")?;
                let ok = task == Task::Regression;
                ensure!(ok, "data.task" => "the teacher problem is a regression task");
            }
            _ => {}
        }
        self.check_ranges("data")?;
        if let Some(k) = self.classes {
            ensure!(k >= 2, "data.classes" => "must be at least 2, got {k}");
            let ok = task == Task::Classification;
            ensure!(ok, "data.classes" => "only meaningful for classification");
        }
        Ok(())
    }
}
