//! `compare --resume` and `path --resume` (nothing lost when a run is killed): a run
//! stopped in-process right after it saved its state, as a killed process would be, then
//! finished by the binary's `--resume`, ends with the very model files and figures of an
//! uninterrupted run (CPU backend: bit for bit), and leaves no state behind.

mod common;
use common::cli::{assert_ok, run, s, text};
use sparse_alm::app::{self, CompareOptions, PathOptions, RunArgs, Verbosity};
use sparse_alm::config::Method;
use sparse_alm::solver::checkpoint::Stop;
use sparse_alm::Error;
use std::path::{Path, PathBuf};

const QUIET: Verbosity = Verbosity {
    quiet: true,
    verbose: false,
};

/// The exit code and first error line of a failed run.
#[track_caller]
fn refused(args: &[&str]) -> String {
    let out = run(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr.lines().next().unwrap_or_default().to_string()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A quiet run of the crate's `config` with `sets`, into `out`.
fn run_args(config: &str, sets: &[&str], out: &Path) -> RunArgs {
    RunArgs {
        config: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(config)),
        sets: strs(sets),
        out: Some(out.to_path_buf()),
        verbosity: QUIET,
        ..Default::default()
    }
}

/// Every file below `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// `v` without the wall-time fields, which differ between any two runs.
fn timeless(mut v: serde_json::Value) -> serde_json::Value {
    match &mut v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| !k.contains("seconds") && k != "time" && k != "p0_at_time");
            for x in m.values_mut() {
                *x = timeless(x.take());
            }
        }
        serde_json::Value::Array(a) => {
            for x in a.iter_mut() {
                *x = timeless(x.take());
            }
        }
        _ => {}
    }
    v
}

const COMPARE_SETS: [&str; 6] = [
    "train.device=\"cpu\"",
    "train.max_passes=40",
    "model.hidden=[12,8]",
    "warm.passes=15",
    "compare.methods=[\"prox-sgd\",\"warm+alm\",\"prox-gd\"]",
    "train.checkpoint_seconds=0",
];

fn compare_args(out: &Path) -> Vec<String> {
    let mut a = strs(&[
        "compare",
        "configs/teacher.toml",
        "--quiet",
        "--out",
        s(out),
    ]);
    for set in COMPARE_SETS {
        a.extend(strs(&["--set", set]));
    }
    a
}

#[test]
fn compare_resume_finishes_an_interrupted_comparison_with_the_same_results() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, cut) = (tmp.path().join("full"), tmp.path().join("cut"));
    let args = compare_args(&full);
    assert_ok(&run(&args.iter().map(String::as_str).collect::<Vec<_>>()));

    // The same comparison, stopped in the ALM phase of its second method.
    let opts = CompareOptions {
        run: run_args("configs/teacher.toml", &COMPARE_SETS, &cut),
        stop: Some((Method::WarmAlm, Stop::AtPhaseEnd("alm".into()))),
    };
    match app::compare(&opts, &mut |_| {}) {
        Err(Error::Interrupted(p)) => {
            assert_eq!(p, cut.join("warm+alm").join("checkpoint.safetensors"))
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("the comparison was not stopped"),
    }
    assert!(!cut.join("compare.json").exists());
    assert!(cut.join("prox-sgd/model.safetensors").is_file());

    let first = refused(&["compare", "--resume", s(&cut), "--passes", "40"]);
    assert!(first.contains("--resume"), "{first}");
    let out = run(&["compare", "--resume", s(&cut)]);
    assert_ok(&out);
    assert!(text(&out.stdout).contains("resuming from its checkpoint"));
    for m in ["prox-sgd", "warm+alm", "prox-gd"] {
        let model = |d: &Path| std::fs::read(d.join(m).join("model.safetensors")).unwrap();
        assert_eq!(model(&cut), model(&full), "{m}: the models differ");
    }
    assert_eq!(
        timeless(json(&cut.join("compare.json"))),
        timeless(json(&full.join("compare.json")))
    );
    // No checkpoint is left, and the directory holds what an uninterrupted run leaves.
    assert_eq!(files(&cut), files(&full));
    let first = refused(&["compare", "--resume", s(&cut)]);
    assert!(first.contains("compare.json"), "{first}");
}

const PATH_SETS: [&str; 8] = [
    "train.device=\"cpu\"",
    "model.hidden=[16,8]",
    "data.teacher.n_train=600",
    "data.teacher.n_test=200",
    "train.max_passes=40",
    "path.refit_passes=120",
    "path.sgd_passes=30",
    "path.lambdas=\"1e-3:30:7\"",
];

#[test]
fn path_resume_finishes_an_interrupted_path_with_the_same_points() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, cut) = (tmp.path().join("full"), tmp.path().join("cut"));
    let mut args = strs(&["path", "configs/teacher.toml", "--quiet", "--out", s(&full)]);
    for set in PATH_SETS {
        args.extend(strs(&["--set", set]));
    }
    assert_ok(&run(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    let full_points = json(&full.join("path.json"));
    let n_points = full_points["points"].as_array().unwrap().len();
    assert!(n_points >= 3, "{full_points}");

    let opts = PathOptions {
        run: run_args("configs/teacher.toml", &PATH_SETS, &cut),
        stop_after: Some(2),
    };
    match app::path(&opts, &mut |_| {}) {
        Err(Error::Interrupted(p)) => assert_eq!(p, cut.join("path-state.json")),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("the path was not stopped"),
    }
    let partial = json(&cut.join("path.json"));
    assert!(partial["points"].as_array().unwrap().len() < n_points);

    let first = refused(&["path", "--resume", s(&cut), "--lambdas", "1e-3:1:3"]);
    assert!(first.contains("--resume"), "{first}");
    let out = run(&["path", "--resume", s(&cut), "--quiet"]);
    assert_ok(&out);
    assert_eq!(
        timeless(json(&cut.join("path.json"))),
        timeless(full_points),
        "the resumed path's points differ from the uninterrupted path's"
    );
    for k in 0..n_points {
        let f = format!("points/{k}/model.safetensors");
        if full.join(&f).exists() {
            assert_eq!(
                std::fs::read(cut.join(&f)).unwrap(),
                std::fs::read(full.join(&f)).unwrap(),
                "{f} differs"
            );
        }
    }
    let lines = |d: &Path| -> Vec<String> {
        std::fs::read_to_string(d.join("selection.jsonl"))
            .unwrap()
            .lines()
            .map(|l| timeless(serde_json::from_str(l).unwrap()).to_string())
            .collect()
    };
    assert_eq!(lines(&cut), lines(&full));
    assert_eq!(files(&cut), files(&full));
    let first = refused(&["path", "--resume", s(&cut)]);
    assert!(first.contains("no path-state.json"), "{first}");
}
