//! `export` and `predict` end to end, and the column matching by name that `eval` shares:
//! a small model trained for a few passes (then given dead neurons and an unused input by
//! hand, so compaction has work to do), exported, and asked for predictions by
//! `predict` on the run and on the export, by `eval`, and by `examples/predict.py`.
//!
//! The Python check runs when `python3` with numpy is found (`SPARSE_ALM_PYTHON` names
//! the interpreter); under `SPARSE_ALM_REQUIRE_PYTHON=1` (CI) a missing one is a failure.

use sparse_alm::model;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::cli::{assert_ok, exit_stderr, run, s, text, train_cpu};
use common::data::{f64_bytes, npy_bytes};

#[track_caller]
fn ok(out: Output) -> String {
    assert_ok(&out);
    text(&out.stdout)
}

/// The command fails with exit 2 (the user's input); returns stderr.
#[track_caller]
fn fails_2(out: Output) -> String {
    exit_stderr(&out, 2)
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

/// A wine classifier (13 inputs, 16-8 hidden, 3 classes, column groups on W₁) trained for
/// 5 passes, then made sparse by hand: input `ash` (2) unused, hidden neuron 3 of layer 1
/// a constant (zero row, bias 0.5), hidden neuron 5 of layer 1 feeding nothing.
fn sparse_wine_run(dir: &Path) -> PathBuf {
    let run_dir = dir.join("run");
    ok(train_cpu(
        &run_dir,
        &[
            "--data",
            s(&data("wine.csv")),
            "--target",
            "class",
            "--task",
            "classification",
            "--hidden",
            "16,8",
            "--passes",
            "5",
            "--set",
            "model.input_groups=\"cols\"",
            "-q",
        ],
    ));
    let (mut net, meta) = model::load(&run_dir).unwrap();
    net.w[0].column_mut(2).fill(0.0);
    net.w[0].row_mut(3).fill(0.0);
    net.b[0][[3, 0]] = 0.5;
    net.w[1].column_mut(5).fill(0.0);
    model::save(&run_dir, &net, &meta).unwrap();
    run_dir
}

fn export(run_dir: &Path, out: &Path) -> String {
    ok(run(&["export", s(run_dir), "--out", s(out)]))
}

/// `export` of `run_dir` into `out` fails with exit 2; returns stderr.
#[track_caller]
fn export_fails(run_dir: &Path, out: &Path) -> String {
    fails_2(run(&["export", s(run_dir), "--out", s(out)]))
}

/// A CPU regression run on `data/diabetes.csv` into `out`.
fn train_diabetes(out: &Path, hidden: &str, passes: &str) {
    ok(train_cpu(
        out,
        &[
            "--data",
            s(&data("diabetes.csv")),
            "--target",
            "progression",
            "--task",
            "regression",
            "--hidden",
            hidden,
            "--passes",
            passes,
            "-q",
        ],
    ));
}

/// Header and rows of a CSV text (no quoted fields in these tests).
fn parse_csv(t: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = t.lines();
    let split = |l: &str| l.split(',').map(str::to_string).collect::<Vec<_>>();
    let header = split(lines.next().expect("a header"));
    (header, lines.map(split).collect())
}

fn num(s: &str) -> f64 {
    s.parse()
        .unwrap_or_else(|_| panic!("`{s}` is not a number"))
}

/// Same header, same labels (a classifier's first column), numbers equal within `tol`
/// relative (absolute below 1).
#[track_caller]
fn assert_same_predictions(a: &str, b: &str, tol: f64) {
    let (ha, ra) = parse_csv(a);
    let (hb, rb) = parse_csv(b);
    assert_eq!(ha, hb);
    assert_eq!(ra.len(), rb.len());
    let labels = ha.get(1).is_some_and(|c| c.starts_with("score_"));
    for (i, (x, y)) in ra.iter().zip(&rb).enumerate() {
        assert_eq!(x.len(), y.len(), "row {i}");
        for (k, (u, v)) in x.iter().zip(y).enumerate() {
            if labels && k == 0 {
                assert_eq!(u, v, "row {i}: label");
                continue;
            }
            let (u, v) = (num(u), num(v));
            assert!(
                (u - v).abs() <= tol * u.abs().max(1.0),
                "row {i}, column {}: {u} vs {v}",
                ha[k]
            );
        }
    }
}

/// The cells of one column of a CSV data file.
fn labels_of(path: &Path, column: &str) -> Vec<String> {
    let (h, rows) = parse_csv(&std::fs::read_to_string(path).unwrap());
    let k = h.iter().position(|c| c == column).unwrap();
    rows.into_iter().map(|r| r[k].clone()).collect()
}

/// Rewrites a CSV file with its columns in `order` (names), plus any `extra` column.
fn reorder_csv(src: &Path, dst: &Path, order: &[&str], extra: Option<(&str, &str)>) {
    let (h, rows) = parse_csv(&std::fs::read_to_string(src).unwrap());
    let idx: Vec<usize> = order
        .iter()
        .map(|n| h.iter().position(|c| c == n).unwrap())
        .collect();
    let mut out = String::new();
    let mut head: Vec<String> = order.iter().map(|s| s.to_string()).collect();
    if let Some((name, _)) = extra {
        head.insert(1, name.to_string());
    }
    out.push_str(&head.join(","));
    out.push('\n');
    for r in rows {
        let mut cells: Vec<String> = idx.iter().map(|&i| r[i].clone()).collect();
        if let Some((_, v)) = extra {
            cells.insert(1, v.to_string());
        }
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    std::fs::write(dst, out).unwrap();
}

fn header_of(path: &Path) -> Vec<String> {
    parse_csv(&std::fs::read_to_string(path).unwrap()).0
}

fn eval_accuracy(model: &Path, data: &Path) -> f64 {
    let out = ok(run(&["eval", s(model), s(data), "--device", "cpu"]));
    let line = out
        .lines()
        .find(|l| l.starts_with("accuracy"))
        .unwrap_or_else(|| panic!("no accuracy line in\n{out}"));
    num(line
        .split_whitespace()
        .last()
        .unwrap()
        .trim_end_matches('%'))
}

#[test]
fn an_export_is_compact_self_described_and_predicts_like_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = sparse_wine_run(tmp.path());
    let exp = tmp.path().join("export");
    let report = export(&run_dir, &exp);
    assert!(report.contains("12-14-8-3 (padded 13-16-8-3)"), "{report}");

    // model.json says what a user elsewhere needs.
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(exp.join("model.json")).unwrap()).unwrap();
    assert_eq!(meta["sizes"], serde_json::json!([12, 14, 8, 3]));
    assert_eq!(meta["activation"], "leaky_relu");
    assert_eq!(meta["output_activation"], "linear");
    assert_eq!(meta["alpha"], 0.1);
    assert_eq!(meta["layers"].as_array().unwrap().len(), 3);
    assert_eq!(meta["layers"][2]["activation"], "linear");
    assert_eq!(meta["layers"][0]["inputs"], 12);
    assert_eq!(meta["class_names"], serde_json::json!(["1", "2", "3"]));
    let names: Vec<String> = serde_json::from_value(meta["feature_names"].clone()).unwrap();
    let mut all = header_of(&data("wine.csv"));
    all.retain(|c| c != "class");
    let expected: Vec<String> = all.iter().filter(|c| *c != "ash").cloned().collect();
    assert_eq!(names, expected);
    assert_eq!(meta["preprocess"]["mean"].as_array().unwrap().len(), 12);
    assert_eq!(meta["preprocess"]["std"].as_array().unwrap().len(), 12);
    assert_eq!(
        meta["compaction"]["padded_sizes"],
        serde_json::json!([13, 16, 8, 3])
    );
    // The weights file holds the compact tensors.
    let (net, _) = model::load(&exp.join("model.safetensors")).unwrap();
    assert_eq!(net.sizes(), vec![12, 14, 8, 3]);

    // predict on the export and on the padded run agree; stdout and --out agree.
    let wine = data("wine.csv");
    let from_export = ok(run(&["predict", s(&exp), s(&wine)]));
    let from_run = ok(run(&["predict", s(&run_dir), s(&wine)]));
    assert_same_predictions(&from_run, &from_export, 1e-5);
    let file = tmp.path().join("p.csv");
    let summary = ok(run(&["predict", s(&exp), s(&wine), "--out", s(&file)]));
    assert!(summary.contains("wrote 178 predictions"), "{summary}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), from_export);

    // eval's accuracy is the accuracy of predict's labels, on the run and the export.
    let (h, rows) = parse_csv(&from_export);
    assert_eq!(h, ["class", "score_1", "score_2", "score_3"]);
    let truth = labels_of(&wine, "class");
    let right = rows.iter().zip(&truth).filter(|(r, t)| &r[0] == *t).count();
    let acc = 100.0 * right as f64 / truth.len() as f64;
    for m in [&exp, &run_dir] {
        let shown = eval_accuracy(m, &wine);
        assert!(
            (shown - acc).abs() < 0.006,
            "eval {shown}% vs predict {acc}%"
        );
    }
}

#[test]
fn columns_are_matched_by_name_and_a_missing_one_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = sparse_wine_run(tmp.path());
    let exp = tmp.path().join("export");
    export(&run_dir, &exp);
    let wine = data("wine.csv");
    let base = ok(run(&["predict", s(&exp), s(&wine)]));

    // Reversed columns and an extra text column: the same predictions, to the byte.
    let mut order: Vec<String> = header_of(&wine);
    order.reverse();
    let order: Vec<&str> = order.iter().map(String::as_str).collect();
    let shuffled = tmp.path().join("shuffled.csv");
    reorder_csv(&wine, &shuffled, &order, Some(("note", "n/a")));
    for m in [&exp, &run_dir] {
        let a = ok(run(&["predict", s(m), s(&wine)]));
        let b = ok(run(&["predict", s(m), s(&shuffled)]));
        assert_eq!(a, b);
        assert_eq!(eval_accuracy(m, &wine), eval_accuracy(m, &shuffled));
    }
    assert_eq!(base, ok(run(&["predict", s(&exp), s(&shuffled)])));

    // No target column: predict does not need one.
    let no_target: Vec<&str> = order.iter().copied().filter(|c| *c != "class").collect();
    let features_only = tmp.path().join("features.csv");
    reorder_csv(&wine, &features_only, &no_target, None);
    assert_eq!(base, ok(run(&["predict", s(&exp), s(&features_only)])));

    // The export does not read `ash`; the run does, and says so by name.
    let no_ash: Vec<&str> = order.iter().copied().filter(|c| *c != "ash").collect();
    let without = tmp.path().join("no_ash.csv");
    reorder_csv(&wine, &without, &no_ash, None);
    assert_eq!(base, ok(run(&["predict", s(&exp), s(&without)])));
    for cmd in ["predict", "eval"] {
        let err = fails_2(run(&[cmd, s(&run_dir), s(&without)]));
        assert!(err.contains("missing column `ash`"), "{err}");
    }
    // Two missing: both named.
    let fewer: Vec<&str> = no_ash.iter().copied().filter(|c| *c != "proline").collect();
    let fewer_path = tmp.path().join("fewer.csv");
    reorder_csv(&wine, &fewer_path, &fewer, None);
    let err = fails_2(run(&["predict", s(&exp), s(&fewer_path)]));
    assert!(err.contains("missing column `proline`"), "{err}");
    let err = fails_2(run(&["predict", s(&run_dir), s(&fewer_path)]));
    assert!(err.contains("missing columns `ash`, `proline`"), "{err}");
}

/// A model saved before names were stored reads CSV columns by position.
#[test]
fn a_model_without_names_reads_columns_by_position() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = sparse_wine_run(tmp.path());
    let wine = data("wine.csv");
    let named = ok(run(&["predict", s(&run_dir), s(&wine)]));
    let mpath = run_dir.join("model.json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    meta.as_object_mut().unwrap().remove("feature_names");
    std::fs::write(&mpath, serde_json::to_string(&meta).unwrap()).unwrap();
    assert_eq!(named, ok(run(&["predict", s(&run_dir), s(&wine)])));
    // By position, reordered columns are different inputs.
    let mut order = header_of(&wine);
    order.reverse();
    let order: Vec<&str> = order.iter().map(String::as_str).collect();
    let shuffled = tmp.path().join("shuffled.csv");
    reorder_csv(&wine, &shuffled, &order, None);
    assert_ne!(named, ok(run(&["predict", s(&run_dir), s(&shuffled)])));
}

/// Stored names and preprocessing are checked before any prediction.
#[test]
fn damaged_model_json_is_refused_by_field() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = sparse_wine_run(tmp.path());
    let wine = data("wine.csv");
    let mpath = run_dir.join("model.json");
    let original = std::fs::read_to_string(&mpath).unwrap();
    let damage = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut meta: serde_json::Value = serde_json::from_str(&original).unwrap();
        f(&mut meta);
        std::fs::write(&mpath, serde_json::to_string(&meta).unwrap()).unwrap();
    };
    damage(&|m| m["feature_names"][3] = m["feature_names"][0].clone());
    let err = fails_2(run(&["predict", s(&run_dir), s(&wine)]));
    assert!(
        err.contains("feature_names") && err.contains("more than once"),
        "{err}"
    );
    damage(&|m| {
        m["feature_names"].as_array_mut().unwrap().pop();
    });
    let err = fails_2(run(&["eval", s(&run_dir), s(&wine), "--device", "cpu"]));
    assert!(
        err.contains("feature_names") && err.contains("12 names"),
        "{err}"
    );
    damage(&|m| m["preprocess"]["std"][4] = serde_json::json!(0.0));
    let err = fails_2(run(&["predict", s(&run_dir), s(&wine)]));
    assert!(err.contains("preprocess.std[4]"), "{err}");
    let err = export_fails(&run_dir, &tmp.path().join("e"));
    assert!(err.contains("preprocess.std[4]"), "{err}");
}

#[test]
fn regression_predictions_are_in_target_units() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let diabetes = data("diabetes.csv");
    train_diabetes(&run_dir, "16", "20");
    let exp = tmp.path().join("export");
    export(&run_dir, &exp);
    let out = ok(run(&["predict", s(&exp), s(&diabetes)]));
    assert_same_predictions(
        &ok(run(&["predict", s(&run_dir), s(&diabetes)])),
        &out,
        1e-5,
    );
    let (h, rows) = parse_csv(&out);
    assert_eq!(h, ["progression"]);
    let pred: Vec<f64> = rows.iter().map(|r| num(&r[0])).collect();
    let truth: Vec<f64> = labels_of(&diabetes, "progression")
        .iter()
        .map(|v| num(v))
        .collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (mp, mt) = (mean(&pred), mean(&truth));
    let sd = (truth.iter().map(|t| (t - mt).powi(2)).sum::<f64>() / truth.len() as f64).sqrt();
    // Standard units would put the mean near 0 and the spread near 1 (target mean ≈ 152,
    // std ≈ 77): in target units the mean is within a quarter std of the target's.
    assert!(
        (mp - mt).abs() < 0.25 * sd,
        "mean prediction {mp}, target mean {mt}, std {sd}"
    );
    let mse = pred
        .iter()
        .zip(&truth)
        .map(|(p, t)| (p - t).powi(2))
        .sum::<f64>()
        / pred.len() as f64;
    assert!(
        mse < sd * sd,
        "MSE {mse} is no better than the mean (variance {})",
        sd * sd
    );
}

#[test]
fn export_refuses_a_busy_or_source_directory_and_an_empty_network() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = sparse_wine_run(tmp.path());
    let out = tmp.path().join("busy");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "keep me").unwrap();
    let err = export_fails(&run_dir, &out);
    assert!(
        err.contains("not empty") && err.contains("--force"),
        "{err}"
    );
    assert!(!out.join("model.json").exists());
    ok(run(&["export", s(&run_dir), "--out", s(&out), "--force"]));
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "keep me"
    );
    assert!(model::load(&out).is_ok());
    // Exporting into the model's own directory would replace it.
    let err = fails_2(run(&[
        "export",
        s(&run_dir.join("model.json")),
        "--out",
        s(&run_dir),
        "--force",
    ]));
    assert!(err.contains("directory of the model"), "{err}");
    // A network with a dead hidden layer is a constant.
    let (mut net, meta) = model::load(&run_dir).unwrap();
    net.w[1].fill(0.0);
    model::save(&run_dir, &net, &meta).unwrap();
    let err = export_fails(&run_dir, &tmp.path().join("e"));
    assert!(err.contains("no live neuron"), "{err}");
}

/// `examples/predict.py` (numpy only) gives `predict`'s output to 1e-4.
#[test]
fn the_python_example_predicts_like_predict() {
    let python = std::env::var("SPARSE_ALM_PYTHON").unwrap_or_else(|_| "python3".into());
    let required = std::env::var("SPARSE_ALM_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
    let has_numpy = Command::new(&python)
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_numpy {
        assert!(
            !required,
            "SPARSE_ALM_REQUIRE_PYTHON=1 but `{python}` with numpy is not available"
        );
        eprintln!(
            "\n*** SKIPPED: `{python}` with numpy not found (set SPARSE_ALM_PYTHON, or SPARSE_ALM_REQUIRE_PYTHON=1 to fail instead) ***\n"
        );
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/predict.py");
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = sparse_wine_run(tmp.path());
    let exp = tmp.path().join("export");
    export(&run_dir, &exp);
    let wine = data("wine.csv");
    let mut order = header_of(&wine);
    order.reverse();
    let order: Vec<&str> = order.iter().map(String::as_str).collect();
    let shuffled = tmp.path().join("shuffled.csv");
    reorder_csv(&wine, &shuffled, &order, Some(("note", "x")));
    let rust = ok(run(&["predict", s(&exp), s(&wine)]));
    for d in [&wine, &shuffled] {
        let py = ok(Command::new(&python)
            .arg(&script)
            .args([s(&exp), s(d)])
            .output()
            .expect("python runs"));
        assert_same_predictions(&rust, &py, 1e-4);
    }
    // Regression, with target scaling.
    let reg = tmp.path().join("reg");
    let diabetes = data("diabetes.csv");
    train_diabetes(&reg, "8,8", "5");
    let reg_exp = tmp.path().join("reg_export");
    export(&reg, &reg_exp);
    let rust = ok(run(&["predict", s(&reg_exp), s(&diabetes)]));
    let py = ok(Command::new(&python)
        .arg(&script)
        .args([s(&reg_exp.join("model.json")), s(&diabetes)])
        .output()
        .expect("python runs"));
    assert_same_predictions(&rust, &py, 1e-4);
}

/// Writes `rows` (`n × d`, row-major) as an NPY v1.0 `<f8` file.
fn write_npy(path: &Path, rows: &[Vec<f64>]) {
    let (n, d) = (rows.len(), rows[0].len());
    let flat: Vec<f64> = rows.concat();
    let bytes = npy_bytes("<f8", &format!("({n}, {d})"), &f64_bytes(&flat));
    std::fs::write(path, bytes).unwrap();
}

/// Unnamed features (`X.npy`) are read by position and predict as the CSV does.
#[test]
fn predict_reads_a_features_npy_by_position() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = sparse_wine_run(tmp.path());
    let wine = data("wine.csv");
    let (h, rows) = parse_csv(&std::fs::read_to_string(&wine).unwrap());
    let keep: Vec<usize> = (0..h.len()).filter(|&k| h[k] != "class").collect();
    let x: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| keep.iter().map(|&k| num(&r[k])).collect())
        .collect();
    let npy = tmp.path().join("x.npy");
    write_npy(&npy, &x);
    let from_csv = ok(run(&["predict", s(&run_dir), s(&wine)]));
    assert_eq!(from_csv, ok(run(&["predict", s(&run_dir), s(&npy)])));
    // The export reads 12 features: a 13-column array is refused, naming both counts.
    let exp = tmp.path().join("export");
    export(&run_dir, &exp);
    let err = fails_2(run(&["predict", s(&exp), s(&npy)]));
    assert!(
        err.contains("has 13 features but the model expects 12"),
        "{err}"
    );
}
