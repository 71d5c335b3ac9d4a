//! The output directory of `train` and `compare`: which files in it the tool owns, the
//! refusal of a non-empty directory (a run must never overwrite or mix with an earlier one
//! by accident), and under `--force` the removal of the tool's own files only, so a
//! user's notes or data kept beside a run are never touched.

use super::{io_err, Notice};
use crate::config::Method;
use crate::{Error, Result};
use std::path::Path;

/// What a run writes directly in its output directory (`train` and `compare`), and the
/// checkpoint of a resumable run.
const OWNED_FILES: &[&str] = &[
    "model.safetensors",
    "model.json",
    "metrics.jsonl",
    "config.toml",
    "compare.json",
    "checkpoint.safetensors",
    "path.json",
    "path.csv",
    "path.svg",
    "selection.jsonl",
    "path-state.json",
];

/// What `compare` writes inside each method's folder (`<method>/`), with the method's
/// checkpoint (kept until `compare.json` is written, so `compare --resume` finds every
/// finished method's result).
const METHOD_FILES: &[&str] = &["model.safetensors", "model.json", "checkpoint.safetensors"];

/// Whether `name` is one of `owned` or the temporary file of an interrupted atomic write
/// of one (`.NAME.tmp.<pid>.<n>.<ns>`, see [`crate::output::write_atomic`]).
fn is_owned(name: &str, owned: &[&str]) -> bool {
    owned.contains(&name)
        || owned.iter().any(|o| {
            name.strip_prefix('.')
                .and_then(|rest| rest.strip_prefix(o))
                .is_some_and(|rest| rest.starts_with(".tmp."))
        })
}

/// The files of the top level a run owns: [`OWNED_FILES`] and `metrics-<method>.jsonl`.
fn is_owned_top(name: &str) -> bool {
    let metrics: Vec<String> = Method::ALL
        .iter()
        .map(|m| format!("metrics-{}.jsonl", m.as_str()))
        .collect();
    let metrics: Vec<&str> = metrics.iter().map(String::as_str).collect();
    is_owned(name, OWNED_FILES) || is_owned(name, &metrics)
}

/// Refuse an existing, non-empty `dir` unless `force`; refuse a path that is not a
/// directory. Cheap: called before the data is loaded, so a mistake costs nothing.
pub(super) fn check(dir: &Path, force: bool) -> Result<()> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    if !meta.is_dir() {
        return Err(Error::Refused(format!(
            "output directory {} exists and is not a directory; choose another --out",
            dir.display()
        )));
    }
    if force {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(dir).map_err(io_err(dir))?;
    if let Some(first) = entries.next() {
        let first = first.map_err(io_err(dir))?;
        let more = entries.count();
        return Err(Error::Refused(format!(
            "output directory {} is not empty ({}{}); pass --force to replace the run in it \
             (only sparse-alm's own files are removed) or choose another --out",
            dir.display(),
            first.file_name().to_string_lossy(),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )));
    }
    Ok(())
}

/// Remove `path` if it is a file or a link (never a directory's contents through a link);
/// true when something was removed.
fn remove_file(path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() || m.file_type().is_symlink() => {
            std::fs::remove_file(path).map_err(io_err(path))?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Create `dir` (and its parents). With `force`, first remove what an earlier run of the
/// tool left there: its files, its `metrics-<method>.jsonl` and the models inside the
/// method folders (a folder is removed once empty; one holding other files stays). Says
/// in one line what was removed; everything else is left as it was.
pub(super) fn prepare(dir: &Path, force: bool, say: &mut dyn FnMut(Notice)) -> Result<()> {
    check(dir, force)?;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    if !force {
        return Ok(());
    }
    let (mut files, mut folders, mut kept) = (0usize, 0usize, 0usize);
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let is_dir = entry.file_type().map_err(io_err(&path))?.is_dir();
        if is_dir && Method::parse(&name).is_some_and(|m| m.as_str() == name) {
            for inner in std::fs::read_dir(&path).map_err(io_err(&path))? {
                let inner = inner.map_err(io_err(&path))?;
                let inner_name = inner.file_name().to_string_lossy().into_owned();
                if is_owned(&inner_name, METHOD_FILES) && remove_file(&inner.path())? {
                    files += 1;
                }
            }
            let empty = std::fs::read_dir(&path)
                .map_err(io_err(&path))?
                .next()
                .is_none();
            if empty {
                std::fs::remove_dir(&path).map_err(io_err(&path))?;
                folders += 1;
            } else {
                kept += 1;
            }
        } else if !is_dir && is_owned_top(&name) && remove_file(&path)? {
            files += 1;
        } else {
            kept += 1;
        }
    }
    say(Notice::Warn(format!(
        "--force: removed {files} file{} and {folders} method folder{} of an earlier run from {}; {kept} other entr{} left untouched",
        if files == 1 { "" } else { "s" },
        if folders == 1 { "" } else { "s" },
        dir.display(),
        if kept == 1 { "y" } else { "ies" },
    )));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_names_and_their_temp_files() {
        assert!(is_owned_top("model.json"));
        assert!(is_owned_top("metrics-prox-sgd.jsonl"));
        assert!(is_owned_top(".model.json.tmp.12.0.345"));
        assert!(!is_owned_top("model.json.bak"));
        assert!(!is_owned_top(".model.jsonx.tmp.1"));
        assert!(!is_owned_top("notes.txt"));
        assert!(!is_owned_top("metrics-mine.jsonl"));
    }

    #[test]
    fn force_removes_only_owned_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for f in [
            "model.json",
            "metrics-alm.jsonl",
            "notes.txt",
            "compare.json",
        ] {
            std::fs::write(d.join(f), "x").unwrap();
        }
        std::fs::create_dir(d.join("alm")).unwrap();
        std::fs::write(d.join("alm/model.json"), "x").unwrap();
        std::fs::create_dir(d.join("prox-sgd")).unwrap();
        std::fs::write(d.join("prox-sgd/model.json"), "x").unwrap();
        std::fs::write(d.join("prox-sgd/mine.txt"), "x").unwrap();
        std::fs::create_dir(d.join("data")).unwrap();
        std::fs::write(d.join("data/model.json"), "x").unwrap();
        assert!(matches!(check(d, false), Err(Error::Refused(_))));
        let mut said = Vec::new();
        prepare(d, true, &mut |n| said.push(n)).unwrap();
        let mut left: Vec<String> = walk(d);
        left.sort();
        assert_eq!(
            left,
            [
                "data",
                "data/model.json",
                "notes.txt",
                "prox-sgd",
                "prox-sgd/mine.txt"
            ]
        );
        assert_eq!(said.len(), 1, "{said:?}");
        let Notice::Warn(line) = &said[0] else {
            panic!("{said:?}")
        };
        assert!(
            line.contains("removed 5 files and 1 method folder"),
            "{line}"
        );
    }

    fn walk(d: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                for inner in std::fs::read_dir(e.path()).unwrap() {
                    out.push(format!(
                        "{name}/{}",
                        inner.unwrap().file_name().to_string_lossy()
                    ));
                }
            }
            out.push(name);
        }
        out
    }
}
