//! What `sparse-alm path` prints and writes: the table rows as points are made, the
//! recommendation (one-standard-error rule on the validation split, method §9), and the
//! files `path.json`, `path.csv` and `path.svg`.

use super::io_err;
use super::report::fmt_error;
use crate::config::Task;
use crate::output::{fmt_opt, fmt_sig, write_atomic, write_json};
use crate::Result;
use std::path::{Path, PathBuf};

/// One point of the frontier (a distinct support), as in `path.json`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PathPoint {
    /// The selection λ at which this support appeared.
    pub lambda: f64,
    pub lambda_refit: f64,
    /// Live neurons per hidden layer.
    pub live: Vec<usize>,
    pub live_total: usize,
    /// Input features kept.
    pub kept_inputs: usize,
    /// Their names, when the data has names and some were removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_input_names: Vec<String>,
    /// Errors of the refitted compact network (1 − accuracy, or MSE in target units).
    pub train_error: Option<f64>,
    pub val_error: Option<f64>,
    /// Standard error of `val_error` over the validation samples.
    pub val_se: Option<f64>,
    pub test_error: Option<f64>,
    /// Test error of the padded network the selector returned (before compaction and refit).
    pub selected_test_error: Option<f64>,
    /// (P0) at `λ_r` of the refitted network, beside the empty network's.
    pub p0_refit: Option<f64>,
    pub empty_p0_refit: f64,
    /// `cert` at `λ_r` (method §5), relative to the dense initialisation's.
    pub cert: Option<f64>,
    /// Refit passes (of the compact network).
    pub passes: f64,
    /// Wall time of the point: selection at λ and refit.
    pub seconds: f64,
    /// `points/<k>` (relative to the path's directory); empty when nothing was saved.
    pub model_dir: String,
    /// Why the refit failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

impl PathPoint {
    fn usable(&self) -> bool {
        self.failed.is_none() && self.val_error.is_some()
    }
}

/// The one-standard-error rule: among points whose validation error is within one standard
/// error of the best one's, the one with fewest live neurons (then fewest inputs, then the
/// lower validation error). Returns the index and the rule with its numbers.
pub fn recommend(points: &[PathPoint]) -> Option<(usize, String)> {
    let best = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.usable())
        .min_by(|a, b| a.1.val_error.unwrap().total_cmp(&b.1.val_error.unwrap()))?;
    let (bv, bse) = (best.1.val_error?, best.1.val_se.unwrap_or(0.0));
    let limit = bv + bse;
    let pick = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.usable() && p.val_error.unwrap() <= limit)
        .min_by(|a, b| {
            (a.1.live_total, a.1.kept_inputs)
                .cmp(&(b.1.live_total, b.1.kept_inputs))
                .then(a.1.val_error.unwrap().total_cmp(&b.1.val_error.unwrap()))
        })?;
    let rule = format!(
        "the smallest network (fewest live neurons) whose validation error is within one standard error of the best: ≤ {} + {} (point {})",
        fmt_sig(bv, 4),
        fmt_sig(bse, 3),
        best.0
    );
    Some((pick.0, rule))
}

const WIDTHS: [usize; 12] = [3, 9, 9, 12, 6, 8, 8, 8, 19, 9, 7, 6];

fn line(cells: [String; 12]) -> String {
    cells
        .iter()
        .zip(WIDTHS)
        .map(|(c, w)| format!("{c:>w$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The table's header line.
pub fn header_row(task: Task) -> String {
    let e = match task {
        Task::Classification => "err",
        Task::Regression => "mse",
    };
    line([
        "k".into(),
        "λ".into(),
        "λ_r".into(),
        "live".into(),
        "inputs".into(),
        format!("train {e}"),
        format!("val {e}"),
        format!("test {e}"),
        "(P0)@λ_r / empty".into(),
        "cert".into(),
        "passes".into(),
        "s".into(),
    ])
}

fn live_str(p: &PathPoint) -> String {
    p.live
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("/")
}

/// One table row.
pub fn row(task: Task, k: usize, p: &PathPoint) -> String {
    let base = line([
        k.to_string(),
        fmt_sig(p.lambda, 3),
        fmt_sig(p.lambda_refit, 3),
        live_str(p),
        p.kept_inputs.to_string(),
        fmt_error(task, p.train_error),
        fmt_error(task, p.val_error),
        fmt_error(task, p.test_error),
        format!(
            "{} / {}",
            fmt_opt(p.p0_refit, 4),
            fmt_sig(p.empty_p0_refit, 4)
        ),
        fmt_opt(p.cert, 2),
        format!("{:.0}", p.passes),
        format!("{:.1}", p.seconds),
    ]);
    match &p.failed {
        Some(why) => format!("{base}  FAILED: {why}"),
        None => base,
    }
}

#[derive(serde::Serialize)]
struct PathJson<'a> {
    points: &'a [PathPoint],
    recommended: Option<usize>,
    rule: String,
}

/// `path.json`, `path.csv` and `path.svg` in `dir`, each written atomically (called after
/// every point, so an interrupted path keeps what it has).
pub fn write_files(dir: &Path, task: Task, points: &[PathPoint], lambda_r: f64) -> Result<()> {
    let rec = recommend(points);
    let json = PathJson {
        points,
        recommended: rec.as_ref().map(|r| r.0),
        rule: rec.as_ref().map(|r| r.1.clone()).unwrap_or_default(),
    };
    let p = dir.join("path.json");
    write_json(&p, &json).map_err(io_err(&p))?;
    let p = dir.join("path.csv");
    write_atomic(&p, csv_text(points).as_bytes()).map_err(io_err(&p))?;
    let p = dir.join("path.svg");
    let svg = super::plot::frontier_svg(task, points, rec.map(|r| r.0), lambda_r)?;
    write_atomic(&p, svg.as_bytes()).map_err(io_err(&p))?;
    Ok(())
}

fn csv_text(points: &[PathPoint]) -> String {
    let opt = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "lambda",
        "lambda_refit",
        "live",
        "live_total",
        "kept_inputs",
        "kept_input_names",
        "train_error",
        "val_error",
        "val_se",
        "test_error",
        "selected_test_error",
        "p0_refit",
        "empty_p0_refit",
        "cert",
        "passes",
        "seconds",
        "model_dir",
        "failed",
    ];
    let _ = w.write_record(header);
    for p in points {
        let _ = w.write_record([
            p.lambda.to_string(),
            p.lambda_refit.to_string(),
            live_str(p),
            p.live_total.to_string(),
            p.kept_inputs.to_string(),
            p.kept_input_names.join(" "),
            opt(p.train_error),
            opt(p.val_error),
            opt(p.val_se),
            opt(p.test_error),
            opt(p.selected_test_error),
            opt(p.p0_refit),
            p.empty_p0_refit.to_string(),
            opt(p.cert),
            p.passes.to_string(),
            p.seconds.to_string(),
            p.model_dir.clone(),
            p.failed.clone().unwrap_or_default(),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// What `path` returns: the points, the recommendation and where the files are.
#[derive(Clone, Debug)]
pub struct PathReport {
    pub out_dir: PathBuf,
    pub task: Task,
    pub points: Vec<PathPoint>,
    pub lambda_r: f64,
    pub recommended: Option<(usize, String)>,
}

impl PathReport {
    pub fn new(out_dir: PathBuf, task: Task, points: Vec<PathPoint>, lambda_r: f64) -> Self {
        let recommended = recommend(&points);
        PathReport {
            out_dir,
            task,
            points,
            lambda_r,
            recommended,
        }
    }

    /// Write the final `path.json`, `path.csv` and `path.svg`.
    pub fn write(&self) -> Result<()> {
        write_files(&self.out_dir, self.task, &self.points, self.lambda_r)
    }

    /// The closing lines: the recommended point, the rule, the files.
    pub fn footer(&self) -> String {
        let mut s = String::new();
        match &self.recommended {
            Some((k, rule)) => {
                let p = &self.points[*k];
                s.push_str(&format!(
                    "recommended: point {k}: live {} ({} total), {} inputs, val {}, test {}, cert {} → {}\n  rule: {rule}\n",
                    live_str(p),
                    p.live_total,
                    p.kept_inputs,
                    fmt_error(self.task, p.val_error),
                    fmt_error(self.task, p.test_error),
                    fmt_opt(p.cert, 2),
                    self.out_dir.join(&p.model_dir).display()
                ));
            }
            None => s.push_str("no point to recommend (every refit failed)\n"),
        }
        s.push_str(&format!(
            "wrote {} (path.json, path.csv, path.svg, points/<k>/, selection.jsonl)\n",
            self.out_dir.display()
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(live: usize, val: f64, se: f64) -> PathPoint {
        PathPoint {
            live_total: live,
            val_error: Some(val),
            val_se: Some(se),
            ..Default::default()
        }
    }

    #[test]
    fn the_smallest_network_within_one_standard_error_is_recommended() {
        let points = vec![
            pt(100, 0.030, 0.01),
            pt(40, 0.020, 0.01),
            pt(20, 0.029, 0.01),
            pt(10, 0.031, 0.01),
        ];
        // best 0.020 ± 0.010: points 0, 1, 2 qualify (≤ 0.030), point 2 is the smallest.
        assert_eq!(recommend(&points).unwrap().0, 2);
        let mut failed = points.clone();
        failed[2].failed = Some("diverged".into());
        assert_eq!(recommend(&failed).unwrap().0, 1);
        assert!(recommend(&[]).is_none());
    }
}
