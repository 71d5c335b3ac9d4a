//! End-to-end tests of the `sparse-alm` binary: every command on tiny budgets, in temporary
//! directories, on the CPU backend (one test uses `--device auto`).

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::cli::{assert_ok, compare_cpu, exit_stderr, run, s, text, train_cpu};

fn digits_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits.csv")
}

/// Each line of a metrics log parses, and carries the method §5 measures.
fn check_metrics(path: &Path) -> Vec<serde_json::Value> {
    let body = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let recs: Vec<serde_json::Value> = body
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: bad line {l}: {e}", path.display()))
        })
        .collect();
    assert!(!recs.is_empty(), "{} is empty", path.display());
    for r in &recs {
        assert!(r["p0"].as_f64().is_some_and(f64::is_finite), "p0 in {r}");
        assert!(r["cert"].as_f64().is_some(), "cert in {r}");
        assert!(r["passes"].as_f64().is_some(), "passes in {r}");
        assert!(r["zero_rows"].is_array(), "zero_rows in {r}");
    }
    recs
}

#[test]
fn train_digits_writes_model_metrics_and_config() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    let out = train_cpu(&out_dir, &["--passes", "3", "--set", "model.hidden=[16]"]);
    assert_ok(&out);
    let stdout = text(&out.stdout);
    for word in [
        "p0",
        "cert",
        "zero rows per layer",
        "empty-network p0",
        "passes",
    ] {
        assert!(stdout.contains(word), "`{word}` missing from:\n{stdout}");
    }
    for f in [
        "model.safetensors",
        "model.json",
        "metrics.jsonl",
        "config.toml",
    ] {
        assert!(out_dir.join(f).is_file(), "{f} not written");
    }
    let (net, meta) = sparse_alm::model::load(&out_dir).expect("model loads back");
    assert_eq!(net.sizes(), vec![64, 16, 10]);
    assert_eq!(meta.sizes, vec![64, 16, 10]);
    assert_eq!(meta.method, "warm+alm");
    for key in [
        "p0",
        "loss",
        "reg",
        "train_error",
        "test_error",
        "cert",
        "passes",
        "seconds",
        "device",
    ] {
        assert!(
            !meta.metrics[key].is_null(),
            "metrics.{key} missing: {}",
            meta.metrics
        );
    }
    let _: sparse_alm::data::Preprocess =
        serde_json::from_value(meta.preprocess.clone()).expect("preprocess");
    check_metrics(&out_dir.join("metrics.jsonl"));
    let cfg_text = std::fs::read_to_string(out_dir.join("config.toml")).unwrap();
    let cfg =
        sparse_alm::config::config_from_str(&cfg_text, &[]).expect("saved config parses back");
    assert_eq!(cfg.model.hidden, vec![16]);
    assert_eq!(cfg.train.max_passes, 3.0);
}

#[test]
fn train_csv_regression_from_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("tmp.csv");
    let mut body = String::from("a,b,c,y\n");
    for i in 0..200 {
        let (a, b, c) = (
            (i % 7) as f64 / 7.0,
            (i % 11) as f64 / 11.0,
            (i % 5) as f64 / 5.0,
        );
        let y = 2.0 * a - b + 0.5 * c * a;
        body.push_str(&format!("{a},{b},{c},{y}\n"));
    }
    std::fs::write(&csv, body).unwrap();
    let out_dir = tmp.path().join("out");
    let out = train_cpu(
        &out_dir,
        &[
            "--data",
            s(&csv),
            "--target",
            "y",
            "--task",
            "regression",
            "--hidden",
            "8",
            "--passes",
            "3",
            "--method",
            "prox-gd",
        ],
    );
    assert_ok(&out);
    let (net, meta) = sparse_alm::model::load(&out_dir).unwrap();
    assert_eq!(net.sizes(), vec![3, 8, 1]);
    assert_eq!(meta.target, vec!["y".to_string()]);
    assert!(text(&out.stdout).contains("MSE"), "{}", text(&out.stdout));
    let recs = check_metrics(&out_dir.join("metrics.jsonl"));
    assert!(recs.iter().all(|r| r["method"] == "prox-gd"));
}

#[test]
fn compare_writes_json_and_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("cmp");
    let out = compare_cpu(
        "configs/digits.toml",
        &out_dir,
        &[
            "--methods",
            "alm,prox-sgd,prox-gd",
            "--passes",
            "3",
            "--set",
            "model.hidden=[12]",
            "--set",
            "compare.pass_checkpoints=[1,3,10]",
        ],
    );
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("empty network"), "{stdout}");
    let passes_header = stdout
        .lines()
        .find(|l| l.starts_with("(P0) at passes"))
        .expect("a passes table");
    // Checkpoints beyond the 3-pass budget are left out.
    assert_eq!(
        passes_header.split_whitespace().skip(3).collect::<Vec<_>>(),
        ["1", "3"],
        "{stdout}"
    );
    assert!(stdout.contains("(P0) at seconds"), "{stdout}");
    let table_header = stdout
        .lines()
        .find(|l| l.starts_with("method"))
        .expect("a table header");
    for col in [
        "p0",
        "train err",
        "test err",
        "zero rows",
        "cert",
        "passes",
        "seconds",
    ] {
        assert!(
            table_header.contains(col),
            "column {col} missing: {table_header}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("compare.json")).unwrap())
            .unwrap();
    let arr = json.as_array().expect("an array");
    let names: Vec<&str> = arr.iter().map(|o| o["method"].as_str().unwrap()).collect();
    assert_eq!(names, ["alm", "prox-sgd", "prox-gd"]);
    for o in arr {
        for key in [
            "p0",
            "train_error",
            "test_error",
            "zero_rows",
            "cert",
            "passes",
            "seconds",
            "empty_p0",
            "worse_than_empty",
            "live_neurons",
            "checkpoints",
        ] {
            assert!(
                o.get(key).is_some_and(|v| !v.is_null()),
                "{key} missing in {o}"
            );
        }
        assert_eq!(o["zero_rows"].as_array().unwrap().len(), 2);
        let e = o["test_error"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&e), "errors are fractions: {e}");
        let m = o["method"].as_str().unwrap();
        check_metrics(&out_dir.join(format!("metrics-{m}.jsonl")));
        sparse_alm::model::load(&out_dir.join(m)).expect("per-method model loads");
    }
}

#[test]
fn eval_matches_the_saved_test_error() {
    let tmp = tempfile::tempdir().unwrap();
    let all = std::fs::read_to_string(digits_csv()).unwrap();
    let mut lines = all.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let (train_rows, test_rows) = rows.split_at(1400);
    let train = tmp.path().join("train.csv");
    let test = tmp.path().join("test.csv");
    std::fs::write(&train, format!("{header}\n{}\n", train_rows.join("\n"))).unwrap();
    std::fs::write(&test, format!("{header}\n{}\n", test_rows.join("\n"))).unwrap();
    let out_dir = tmp.path().join("run");
    let test_set = format!("data.test_path={}", s(&test));
    let out = train_cpu(
        &out_dir,
        &[
            "--data",
            s(&train),
            "--target",
            "label",
            "--hidden",
            "16",
            "--passes",
            "4",
            "--method",
            "prox-sgd",
            "--set",
            &test_set,
            "--quiet",
        ],
    );
    assert_ok(&out);
    let (_, meta) = sparse_alm::model::load(&out_dir).unwrap();
    let test_error = meta.metrics["test_error"].as_f64().expect("a test error");
    let out = run(&["eval", s(&out_dir), s(&test), "--device", "cpu"]);
    assert_ok(&out);
    let stdout = text(&out.stdout);
    let acc_line = stdout
        .lines()
        .find(|l| l.starts_with("accuracy"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let acc: f64 = acc_line
        .split_whitespace()
        .last()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    let expected = 100.0 * (1.0 - test_error);
    assert!(
        (acc - expected).abs() < 0.006,
        "eval accuracy {acc}% vs model.json {expected}%\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("{} samples", test_rows.len())),
        "{stdout}"
    );
    for word in [
        "loss",
        "p0",
        "zero groups per layer",
        "live neurons per hidden layer",
        "parameters",
    ] {
        assert!(stdout.contains(word), "`{word}` missing:\n{stdout}");
    }
}

#[test]
fn bad_config_value_names_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path().join("r");
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[model]\nalpha = 1.5\n").unwrap();
    let cases: [(Output, &[&str]); 3] = [
        (train_cpu(&r, &["--set", "alm.rho0=-1"]), &["alm.rho0"]),
        (train_cpu(&r, &["--lambda", "-1"]), &["train.lambda"]),
        (
            run(&["compare", s(&bad), "--device", "cpu"]),
            &["model.alpha", "bad.toml"],
        ),
    ];
    for (out, wants) in cases {
        let err = exit_stderr(&out, 2);
        for want in wants {
            assert!(err.contains(want), "`{want}` missing: {err}");
        }
    }
}

#[test]
fn missing_data_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-file.csv");
    let out = train_cpu(
        &tmp.path().join("r"),
        &["--data", s(&missing), "--target", "y"],
    );
    let err = exit_stderr(&out, 2);
    assert!(err.contains("no-such-file.csv"), "{err}");

    let out = run(&[
        "eval",
        s(&tmp.path().join("no-model")),
        s(&missing),
        "--device",
        "cpu",
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("no-model"), "{err}");
}

#[test]
fn info_succeeds() {
    let out = run(&["info"]);
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("CPU backend"), "{stdout}");
    assert!(stdout.contains("--device auto uses"), "{stdout}");
}

#[test]
fn device_auto_runs_on_whatever_is_there() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("auto");
    let out = run(&[
        "train",
        "--device",
        "auto",
        "--passes",
        "2",
        "--method",
        "prox-sgd",
        "--hidden",
        "8",
        "--out",
        s(&out_dir),
    ]);
    assert_ok(&out);
    // Either the GPU is named in the header, or a one-line notice says why not.
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(stdout.contains("device "), "{stdout}");
    assert!(
        stderr.lines().filter(|l| l.starts_with("note:")).count() <= 1,
        "{stderr}"
    );
    let (_, meta) = sparse_alm::model::load(&out_dir).unwrap();
    assert!(meta.metrics["device"].is_string());
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&["train", "--device", "tpu"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}
