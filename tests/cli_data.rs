//! The binary on real and hostile data: the README's quick command on the bundled wine and
//! diabetes sets (standardised by default, MSE in the target's units), data and model
//! errors with exit 2 and no run directory left behind, escaped control characters, a
//! closed stdout, and byte-identical model files from identical CPU runs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

mod common;
use common::cli::{assert_ok, bin, exit_stderr, run, s, text, train_cpu};

/// Exit 2, the first line of stderr, and no output directory created.
#[track_caller]
fn assert_data_error(out: &Output, out_dir: &Path) -> String {
    let stderr = exit_stderr(out, 2);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out_dir.exists(), "{} was created", out_dir.display());
    stderr.lines().next().unwrap_or_default().to_string()
}

/// A figure from the final table (`test error  5.56%`, `test MSE  2971`).
fn figure(stdout: &str, row: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(row))
        .unwrap_or_else(|| panic!("no `{row}` row:\n{stdout}"));
    line.split_whitespace()
        .last()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn readme_quick_command_on_wine_reaches_a_sensible_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("wine");
    let quick = [
        "train",
        "--data",
        "data/wine.csv",
        "--target",
        "class",
        "--task",
        "classification",
        "--hidden",
        "64,32",
        "--lambda",
        "1e-3",
        "--test-fraction",
        "0.2",
        "--method",
        "alm",
        "--device",
        "cpu",
        "--out",
    ];
    let out = run(&[&quick[..], &[s(&out_dir)]].concat());
    assert_ok(&out);
    let stdout = text(&out.stdout);
    let header = stdout.lines().next().unwrap();
    assert!(
        header.contains("3 classes (1, 2, 3)") && header.contains("features standardised"),
        "{header}"
    );
    let err = figure(&stdout, "test error");
    assert!(
        err < 20.0,
        "wine test error {err}% (73% unstandardised)\n{stdout}"
    );
    let (_, meta) = sparse_alm::model::load(&out_dir).unwrap();
    assert_eq!(meta.class_names, ["1", "2", "3"]);
    let pre: sparse_alm::data::Preprocess = serde_json::from_value(meta.preprocess).unwrap();
    assert_eq!(pre.mean.as_ref().map(Vec::len), Some(13));
    // eval reads the labels 1..3 by name and applies the standardisation.
    let out = run(&["eval", s(&out_dir), "data/wine.csv", "--device", "cpu"]);
    assert_ok(&out);
    let acc = figure(&text(&out.stdout), "accuracy");
    assert!(acc > 80.0, "{}", text(&out.stdout));
}

#[test]
fn diabetes_regression_trains_and_reports_mse_in_target_units() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("diabetes");
    let out = train_cpu(
        &out_dir,
        &[
            "--data",
            "data/diabetes.csv",
            "--target",
            "progression",
            "--task",
            "regression",
            "--hidden",
            "32",
            "--passes",
            "60",
        ],
    );
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .next()
            .unwrap()
            .contains("targets standardised"),
        "{stdout}"
    );
    assert!(!stdout.to_lowercase().contains("nan"), "{stdout}");
    let mse = figure(&stdout, "test MSE");
    // The targets' variance is about 6000: an MSE in their units is in the thousands,
    // an MSE in standard units would be below 1.
    assert!((1000.0..6500.0).contains(&mse), "test MSE {mse}\n{stdout}");
    let p0 = figure(&stdout, "p0");
    assert!(p0.is_finite() && p0 < 1.5, "(P0) in standard units: {p0}");
    let (_, meta) = sparse_alm::model::load(&out_dir).unwrap();
    let test_error = meta.metrics["test_error"].as_f64().unwrap();
    assert!(
        (test_error - mse).abs() <= 1e-3 * mse + 1.0,
        "{test_error} vs {mse}"
    );
    let pre: sparse_alm::data::Preprocess = serde_json::from_value(meta.preprocess).unwrap();
    assert!(pre.target_std.is_some_and(|s| s[0] > 50.0));
}

#[test]
fn data_errors_exit_2_and_leave_no_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("never");
    let dup = tmp.path().join("dup.csv");
    std::fs::write(&dup, "label,a,a\n1,2,3\n2,3,4\n").unwrap();
    let esc = tmp.path().join("esc.csv");
    std::fs::write(&esc, "label,a\n1,2\n2,\x1b[31mred\n").unwrap();
    let one = tmp.path().join("one.csv");
    std::fs::write(&one, "label,a\n4,2\n4,3\n").unwrap();
    let cases: [(&str, &[&str], &str); 5] = [
        ("/dev/zero", &[], "not a regular file"),
        (s(&dup), &[], "duplicate column name `a`"),
        (s(&esc), &[], "\\u{1b}[31mred"),
        (s(&one), &[], "at least two classes"),
        (
            s(&one),
            &["--set", "data.classes=3"],
            "data.classes = 3 allows 0..2",
        ),
    ];
    for (data, extra, want) in cases {
        let mut args = vec!["--data", data];
        args.extend_from_slice(extra);
        let out = train_cpu(&out_dir, &args);
        let first = assert_data_error(&out, &out_dir);
        assert!(first.contains(want), "{data}: {first}");
        assert!(
            !out.stderr.contains(&0x1b),
            "raw escape character on stderr: {first}"
        );
    }
}

#[test]
fn eval_refuses_a_model_with_invalid_preprocessing() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let out = train_cpu(
        &run_dir,
        &[
            "--data",
            "data/wine.csv",
            "--target",
            "class",
            "--hidden",
            "8",
            "--passes",
            "2",
            "--quiet",
        ],
    );
    assert_ok(&out);
    let json_path = run_dir.join("model.json");
    let original = std::fs::read_to_string(&json_path).unwrap();
    for (edit, field) in [
        (
            serde_json::json!({"feature_scale": 0.0}),
            "preprocess.feature_scale",
        ),
        (
            serde_json::json!({"std": vec![-1.0; 13]}),
            "preprocess.std[0]",
        ),
        (serde_json::json!({"mean": [0.0]}), "preprocess.mean"),
    ] {
        let mut v: serde_json::Value = serde_json::from_str(&original).unwrap();
        for (k, val) in edit.as_object().unwrap() {
            v["preprocess"][k] = val.clone();
        }
        std::fs::write(&json_path, v.to_string()).unwrap();
        let out = run(&["eval", s(&run_dir), "data/wine.csv", "--device", "cpu"]);
        let stderr = exit_stderr(&out, 2);
        assert!(
            stderr.contains("model.json") && stderr.contains(&format!("field `{field}`")),
            "{stderr}"
        );
        assert!(!text(&out.stdout).contains("loss"), "{}", text(&out.stdout));
    }
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("piped");
    // `sparse-alm train | head -1`: read the header line, then close the pipe.
    let mut child = bin()
        .args([
            "train",
            "--passes",
            "3",
            "--set",
            "model.hidden=[8]",
            "--device",
            "cpu",
            "--out",
            s(&out_dir),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("digits.csv"), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The run itself completed.
    sparse_alm::model::load(&out_dir).unwrap();
}

#[test]
fn identical_cpu_runs_write_identical_model_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (0..2).map(|k| tmp.path().join(format!("r{k}"))).collect();
    for d in &dirs {
        let out = train_cpu(
            d,
            &["--passes", "3", "--set", "model.hidden=[16]", "--quiet"],
        );
        assert_ok(&out);
    }
    let a = std::fs::read(dirs[0].join("model.safetensors")).unwrap();
    let b = std::fs::read(dirs[1].join("model.safetensors")).unwrap();
    assert!(
        a == b,
        "model.safetensors differs between identical CPU runs"
    );
}
