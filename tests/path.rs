//! `sparse-alm path` end to end (method §9) on a small teacher problem, on the CPU: the
//! files it writes, the stop after an empty support, the recommendation, a failed refit
//! reported without stopping the path, and the flag errors.

use std::path::Path;
use std::process::{Command, Output};

/// A small teacher problem and a short path, so a whole path takes seconds.
const SMALL: &[&str] = &[
    "path",
    "configs/teacher.toml",
    "--device",
    "cpu",
    "--hidden",
    "16,8",
    "--set",
    "data.teacher.n_train=600",
    "--set",
    "data.teacher.n_test=200",
    "--passes",
    "40",
    "--set",
    "path.refit_passes=120",
    "--set",
    "path.sgd_passes=30",
];

fn run(extra: &[&str], out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparse-alm"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(SMALL)
        .args(extra)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A JSON array of unsigned integers.
fn u64s(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    let body = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_path_writes_its_points_and_stops_after_the_empty_support() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p");
    let o = run(&["--lambdas", "1e-3:30:7"], &out);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let stdout = text(&o.stdout);
    assert!(stdout.contains("recommended: point"), "{stdout}");
    let pj = json(&out.join("path.json"));
    let points = pj["points"].as_array().unwrap();
    assert!(points.len() >= 2, "{pj}");
    // Supports are distinct and shrink (rows die, never revive), and the path stops at
    // the first empty one: λ = 30 kills everything on this problem.
    let totals: Vec<u64> = points
        .iter()
        .map(|p| p["live_total"].as_u64().unwrap())
        .collect();
    assert!(totals.windows(2).all(|w| w[1] <= w[0]), "{totals:?}");
    assert_eq!(*totals.last().unwrap(), 0, "{totals:?}");
    assert!(
        totals[..totals.len() - 1].iter().all(|&t| t > 0),
        "{totals:?}"
    );
    for (k, p) in points.iter().enumerate() {
        for key in [
            "lambda",
            "lambda_refit",
            "live",
            "kept_inputs",
            "empty_p0_refit",
            "passes",
            "seconds",
        ] {
            assert!(!p[key].is_null(), "point {k} lacks {key}: {p}");
        }
        if p["live_total"].as_u64() == Some(0) {
            continue;
        }
        assert!(p["failed"].is_null(), "{p}");
        let cert = p["cert"].as_f64().unwrap();
        assert!(cert.is_finite() && cert > 0.0, "{p}");
        // Refitted at λ_r, the (P0) is far below the empty network's (method §9).
        assert!(p["p0_refit"].as_f64().unwrap() < p["empty_p0_refit"].as_f64().unwrap());
        let dir = out.join(p["model_dir"].as_str().unwrap());
        let meta = json(&dir.join("model.json"));
        // The saved model is compact: its hidden widths are the live counts.
        let sizes = u64s(&meta["sizes"]);
        let live = u64s(&p["live"]);
        assert_eq!(&sizes[1..sizes.len() - 1], &live[..], "{meta}");
        assert!(dir.join("metrics.jsonl").is_file());
        assert!(dir.join("model.safetensors").is_file());
    }
    let rec = pj["recommended"].as_u64().unwrap() as usize;
    assert!(rec < points.len() && pj["rule"].as_str().unwrap().contains("standard error"));
    let csv = std::fs::read_to_string(out.join("path.csv")).unwrap();
    assert_eq!(csv.lines().count(), points.len() + 1, "{csv}");
    let svg = std::fs::read_to_string(out.join("path.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("live neurons"),
        "{svg:.200}"
    );
    assert!(out.join("selection.jsonl").is_file() && out.join("config.toml").is_file());
}

#[test]
fn a_failed_refit_is_reported_and_the_path_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p");
    // The selector (prox-GD) does not use sgd.lr; the polisher's SGD phase diverges.
    let o = run(
        &[
            "--lambdas",
            "1e-3:0.1:3",
            "--selector",
            "prox-gd",
            "--set",
            "sgd.lr=1e6",
        ],
        &out,
    );
    let pj = json(&out.join("path.json"));
    let points = pj["points"].as_array().unwrap();
    assert!(!points.is_empty(), "{pj}");
    for p in points {
        if p["live_total"].as_u64() == Some(0) {
            continue;
        }
        assert!(p["failed"].as_str().is_some(), "{p}");
        assert_eq!(p["model_dir"].as_str(), Some(""), "{p}");
    }
    assert!(o.status.success(), "{}", text(&o.stderr));
    let csv = std::fs::read_to_string(out.join("path.csv")).unwrap();
    assert!(csv.contains("refit failed"), "{csv}");
    // Only the constant (empty-support) point, which needs no refit, can be recommended.
    if let Some(k) = pj["recommended"].as_u64() {
        assert_eq!(points[k as usize]["live_total"].as_u64(), Some(0), "{pj}");
    }
}

#[test]
fn bad_path_flags_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--lambdas", "1e-3:0.1"], "path.lambdas"),
        (&["--lambdas", "0:0.1:4"], "path.lambdas"),
        (&["--lambdas", "0.1:1e-3:4"], "path.lambdas"),
        (&["--selector", "newton"], "path.selector"),
        (&["--polisher", "lbfgs"], "path.polisher"),
        (
            &["--validation-fraction", "0.999"],
            "path.validation_fraction",
        ),
        (
            &["--validation-fraction", "1.5"],
            "path.validation_fraction",
        ),
        (&["--lambda-refit", "-1"], "path.lambda_refit"),
    ];
    for (i, (args, field)) in cases.iter().enumerate() {
        let o = run(args, &dir.path().join(format!("bad{i}")));
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(field), "{args:?}: {err}");
    }
}

#[test]
fn the_path_extends_past_the_grid_until_the_support_is_empty_unless_told_not_to() {
    let dir = tempfile::tempdir().unwrap();
    let live_and_lambda = |pj: &serde_json::Value| -> Vec<(u64, f64)> {
        pj["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["live_total"].as_u64().unwrap(),
                    p["lambda"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let out = dir.path().join("ext");
    let o = run(&["--lambdas", "1e-3:1e-2:2"], &out);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let pts = live_and_lambda(&json(&out.join("path.json")));
    let (live, lambda) = *pts.last().unwrap();
    assert_eq!(live, 0, "{pts:?}");
    assert!(lambda > 1e-2 * 1.01, "{pts:?}");
    let out = dir.path().join("fixed");
    let o = run(
        &["--lambdas", "1e-3:1e-2:2", "--set", "path.extend=0"],
        &out,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let pts = live_and_lambda(&json(&out.join("path.json")));
    assert!(
        pts.iter()
            .all(|&(live, l)| live > 0 && l <= 1e-2 * 1.000001),
        "{pts:?}"
    );
}
