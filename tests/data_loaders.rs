//! Data loaders: the bundled digits split, the teacher problem, IDX(.gz)/NPY round trips,
//! Fashion-MNIST when installed, and one test per error case asserting that the message
//! names the file and the line/column (or sample) at fault.

use sparse_alm::config::{load_config, DataSource, Task, TeacherParams};
use sparse_alm::data::{load, load_for_eval, DataError, EvalSpec, Preprocess};
use std::path::{Path, PathBuf};

mod common;
use common::data::{
    cfg, csv_err, csv_source, f64_bytes, gz, idx_bytes, idx_cfg, load_err, npy_bytes, npy_cfg,
    two_class_spec, write,
};

// ---------------------------------------------------------------------------------------
// Bundled data and generated problems
// ---------------------------------------------------------------------------------------

#[test]
fn digits_default_split() {
    let c = load_config(None, &[]).unwrap();
    let d = load(&c.data).unwrap();
    assert_eq!((d.train.d(), d.train.n()), (64, 1437));
    assert_eq!((d.test.d(), d.test.n()), (64, 360));
    assert_eq!(d.train.m(), 10);
    assert_eq!(
        d.train.class_names,
        (0..10).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    for ds in [&d.train, &d.test] {
        let labels = ds.labels.as_ref().unwrap();
        for (j, col) in ds.y.columns().into_iter().enumerate() {
            assert_eq!(col.sum(), 1.0);
            assert_eq!(col[labels[j] as usize], 1.0);
        }
        assert!(ds.x.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }
    // Stratified: each class's test share is 20 % to within one sample.
    let count = |l: &[u32], k: u32| l.iter().filter(|&&c| c == k).count();
    let (tr, te) = (
        d.train.labels.as_ref().unwrap(),
        d.test.labels.as_ref().unwrap(),
    );
    for k in 0..10 {
        let total = count(tr, k) + count(te, k);
        let expect = 0.2 * total as f64;
        assert!(
            (count(te, k) as f64 - expect).abs() <= 1.0,
            "class {k}: {} of {total}",
            count(te, k)
        );
    }
    // Deterministic for a seed, different for another.
    let again = load(&c.data).unwrap();
    assert_eq!(again.test.x, d.test.x);
    assert_eq!(again.train.labels, d.train.labels);
    let c2 = load_config(None, &["data.split_seed=7".into()]).unwrap();
    let other = load(&c2.data).unwrap();
    assert_eq!(other.test.n(), 360);
    assert_ne!(other.test.x, d.test.x);
    assert!(d.description.contains("1437"));
}

#[test]
fn digits_unstratified_and_capped() {
    let c = load_config(
        None,
        &[
            "data.stratify=false".into(),
            "data.max_train=500".into(),
            "data.test_fraction=0.1".into(),
        ],
    )
    .unwrap();
    let d = load(&c.data).unwrap();
    assert_eq!(d.test.n(), 180);
    assert_eq!(d.train.n(), 500);
    let c0 = load_config(None, &["data.test_fraction=0".into()]).unwrap();
    let d0 = load(&c0.data).unwrap();
    assert_eq!((d0.train.n(), d0.test.n(), d0.test.d()), (1797, 0, 64));
}

#[test]
fn teacher_shapes_and_standardised_targets() {
    let p = TeacherParams {
        sizes: vec![50, 40, 20, 1],
        zero_rows: vec![10, 5],
        n_train: 5000,
        n_test: 1000,
        noise: 0.05,
        bias_std: 0.1,
        seed: 0,
    };
    let c = cfg(DataSource::Teacher(p), Task::Regression);
    let d = load(&c).unwrap();
    assert_eq!((d.train.d(), d.train.n(), d.train.m()), (50, 5000, 1));
    assert_eq!((d.test.d(), d.test.n(), d.test.m()), (50, 1000, 1));
    assert!(d.train.labels.is_none());
    let all: Vec<f64> = d
        .train
        .y
        .iter()
        .chain(d.test.y.iter())
        .map(|&v| v as f64)
        .collect();
    let n = all.len() as f64;
    let mean = all.iter().sum::<f64>() / n;
    let var = all.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    assert!(mean.abs() < 0.01, "mean {mean}");
    // Standardised, then noise of std 0.05: variance ≈ 1.0025.
    assert!((var - 1.0025).abs() < 0.01, "var {var}");
    let xm = d.train.x.iter().map(|&v| v as f64).sum::<f64>() / (50.0 * 5000.0);
    assert!(xm.abs() < 0.02);
    let again = load(&c).unwrap();
    assert_eq!(again.train.y, d.train.y);
    let c = load_config(
        Some(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/configs/teacher.toml"
        ))),
        &[],
    )
    .unwrap();
    let d2 = load(&c.data).unwrap();
    assert_eq!(d2.train.y, d.train.y);
}

#[test]
fn standardize_uses_training_statistics() {
    let c = load_config(None, &["data.standardize=true".into()]).unwrap();
    let d = load(&c.data).unwrap();
    let mean = d.preprocess.mean.as_ref().unwrap();
    let std = d.preprocess.std.as_ref().unwrap();
    assert_eq!(mean.len(), 64);
    assert!(std.iter().all(|&s| s > 0.0), "constant features get std 1");
    for row in d.train.x.rows() {
        let m = row.mean().unwrap();
        assert!(m.abs() < 1e-4);
    }
    // Re-applying the saved preprocess to raw test features reproduces the test set.
    let raw = load(&load_config(None, &[]).unwrap().data).unwrap();
    let mut x = raw.test.x.clone();
    d.preprocess.apply(&mut x);
    assert!(x
        .iter()
        .zip(d.test.x.iter())
        .all(|(a, b)| (a - b).abs() < 1e-5));
}

#[test]
fn csv_string_labels_and_test_file() {
    let dir = tempfile::tempdir().unwrap();
    let tr = write(
        dir.path(),
        "tr.csv",
        "a,kind,b\n1,dog,2\n3,cat,4\n\n5,emu,6\n",
    );
    let te = write(dir.path(), "te.csv", "a,kind,b\n7,cat,8\n");
    let c = cfg(
        DataSource::Csv {
            path: tr,
            target: vec!["kind".into()],
            test_path: Some(te),
        },
        Task::Classification,
    );
    let d = load(&c).unwrap();
    assert_eq!(d.train.class_names, vec!["cat", "dog", "emu"]);
    assert_eq!(d.train.labels.as_deref(), Some(&[1u32, 0, 2][..]));
    assert_eq!(d.train.feature_names, vec!["a", "b"]);
    assert_eq!(d.train.x.row(1).to_vec(), vec![2.0, 4.0, 6.0]);
    assert_eq!(d.test.labels.as_deref(), Some(&[0u32][..]));
}

#[test]
fn csv_regression_multiple_targets() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "r.csv", "y1,x,y2\n0.5,1,-1\n1.5,2,-2\n");
    let c = cfg(csv_source(&p, &["y1", "y2"]), Task::Regression);
    let d = load(&c).unwrap();
    assert_eq!((d.train.d(), d.train.m(), d.train.n()), (1, 2, 2));
    assert_eq!(d.train.y.column(1).to_vec(), vec![1.5, -2.0]);
}

#[test]
fn idx_gz_round_trip_detects_gzip_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..5 * 2 * 3).map(|i| (i * 8) as u8).collect();
    let labels = [0u8, 1, 2, 1, 0];
    // Gzipped content without a .gz name, and plain content with one.
    let ip = write(dir.path(), "imgs.idx3", gz(&idx_bytes(&[5, 2, 3], &pixels)));
    let lp = write(dir.path(), "labels.gz", idx_bytes(&[5], &labels));
    let mut c = idx_cfg(ip.clone(), lp.clone());
    c.feature_scale = 255.0;
    let d = load(&c).unwrap();
    assert_eq!((d.train.d(), d.train.n(), d.train.m()), (6, 5, 3));
    for j in 0..5 {
        for k in 0..6 {
            assert_eq!(d.train.x[[k, j]], pixels[j * 6 + k] as f32 / 255.0);
        }
    }
    assert_eq!(d.train.labels.as_deref(), Some(&labels.map(u32::from)[..]));
    assert_eq!(d.preprocess.feature_scale, 255.0);
    // Eval with the `IMAGES,LABELS` form repeats the scaling.
    let spec = EvalSpec {
        task: Task::Classification,
        target: vec![],
        n_inputs: 6,
        n_outputs: 3,
        class_names: vec!["0".into(), "1".into(), "2".into()],
        feature_names: vec![],
        preprocess: d.preprocess.clone(),
    };
    let pair = PathBuf::from(format!("{},{}", ip.display(), lp.display()));
    let e = load_for_eval(&pair, &spec).unwrap();
    assert_eq!(e.x, d.train.x);
    assert_eq!(e.y, d.train.y);
}

#[test]
fn npy_round_trip_transposes() {
    let dir = tempfile::tempdir().unwrap();
    let xs: Vec<f64> = (0..12).map(|i| i as f64 * 0.5).collect(); // 4 × 3
    let xp = write(
        dir.path(),
        "x.npy",
        npy_bytes("<f8", "(4, 3)", &f64_bytes(&xs)),
    );
    let ys: Vec<u8> = [0i64, 1, 1, 0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let yp = write(dir.path(), "y.npy", npy_bytes("<i8", "(4,)", &ys));
    let c = npy_cfg(xp.clone(), yp.clone(), Task::Classification);
    let d = load(&c).unwrap();
    assert_eq!((d.train.d(), d.train.n(), d.train.m()), (3, 4, 2));
    assert_eq!(d.train.x[[2, 1]], 2.5); // sample 1, feature 2 = xs[1*3+2]
    assert_eq!(d.train.labels.as_deref(), Some(&[0u32, 1, 1, 0][..]));
    // f4 regression targets, 2-D.
    let yf: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let yr = write(dir.path(), "yr.npy", npy_bytes("<f4", "(4, 1)", &yf));
    let c = npy_cfg(xp, yr, Task::Regression);
    let d = load(&c).unwrap();
    assert_eq!(d.train.y.row(0).to_vec(), vec![1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn eval_csv_applies_preprocess_and_checks_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "ev.csv", "label,a,b\n1,2,4\n0,4,8\n");
    let pre = Preprocess {
        feature_scale: 2.0,
        mean: Some(vec![1.0, 2.0]),
        std: Some(vec![1.0, 0.5]),
        ..Default::default()
    };
    let spec = two_class_spec(pre);
    let d = load_for_eval(&p, &spec).unwrap();
    assert_eq!(d.x.column(0).to_vec(), vec![0.0, 0.0]);
    assert_eq!(d.x.column(1).to_vec(), vec![1.0, 4.0]);
    assert_eq!(d.labels.as_deref(), Some(&[1u32, 0][..]));
    let spec3 = EvalSpec {
        n_inputs: 3,
        ..spec.clone()
    };
    let msg = load_for_eval(&p, &spec3).unwrap_err().to_string();
    assert!(
        msg.contains("ev.csv") && msg.contains("2 features") && msg.contains("expects 3"),
        "{msg}"
    );
    let p2 = write(dir.path(), "ev2.csv", "label,a,b\n1,2,4\n2,4,8\n");
    let msg = load_for_eval(&p2, &spec).unwrap_err().to_string();
    assert!(
        msg.contains("ev2.csv") && msg.contains("line 3") && msg.contains("`label`"),
        "{msg}"
    );
    let msg = load_for_eval(Path::new("model.bin"), &spec)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("model.bin"), "{msg}");
}

#[test]
fn fashion_mnist_when_installed() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    if !dir.join("train-images-idx3-ubyte.gz").exists() {
        println!("skipping: Fashion-MNIST not found in {}", dir.display());
        return;
    }
    let c = load_config(
        Some(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/configs/fashion.toml"
        ))),
        &[],
    )
    .unwrap();
    let d = load(&c.data).unwrap();
    assert_eq!((d.train.d(), d.train.n(), d.train.m()), (784, 60000, 10));
    assert_eq!((d.test.d(), d.test.n()), (784, 10000));
    assert!(d.train.x.iter().all(|&v| (0.0..=1.0).contains(&v)));
    assert!(d.train.x.iter().any(|&v| v == 1.0));
}

// ---------------------------------------------------------------------------------------
// Errors: each names the file and the line/column or sample
// ---------------------------------------------------------------------------------------

#[test]
fn error_unreadable_file() {
    let c = cfg(
        csv_source(Path::new("/nonexistent/dir/missing_file.csv"), &["label"]),
        Task::Classification,
    );
    let msg = load_err(&c);
    assert!(
        msg.contains("missing_file.csv") && msg.contains("cannot read"),
        "{msg}"
    );
}

/// `csv_err` of each case contains every expected fragment.
#[track_caller]
fn csv_errs(cases: &[(&str, Task, Option<usize>, &[&str])]) {
    for (text, task, classes, want) in cases {
        let msg = csv_err(text, *task, *classes);
        for w in *want {
            assert!(msg.contains(w), "{text:?}: `{w}` not in: {msg}");
        }
    }
}

#[test]
fn error_empty_data() {
    csv_errs(&[
        ("label,a,b\n", Task::Classification, None, &["no data rows"]),
        ("", Task::Classification, None, &["no header"]),
        (
            "label\n1\n2\n",
            Task::Classification,
            None,
            &["no feature columns"],
        ),
    ]);
}

#[test]
fn error_ragged_row() {
    csv_errs(&[(
        "label,a,b\n1,2,3\n\n0,1\n",
        Task::Classification,
        None,
        &["line 4", "expected 3", "found 2"],
    )]);
}

#[test]
fn error_unparsable_number() {
    csv_errs(&[
        (
            "label,a,b\n1,2,3\n0,1,x7\n",
            Task::Classification,
            None,
            &["line 3", "`b`", "x7"],
        ),
        (
            "label,a\n1.5,2\n2..5,3\n",
            Task::Regression,
            None,
            &["line 3", "`label`", "2..5"],
        ),
    ]);
}

#[test]
fn error_non_finite() {
    csv_errs(&[
        (
            "label,a,b\n1,nan,3\n",
            Task::Classification,
            None,
            &["line 2", "`a`", "non-finite"],
        ),
        (
            "label,a,b\n1,2,3\n1,2,inf\n",
            Task::Classification,
            None,
            &["line 3", "`b`"],
        ),
        (
            "label,a\n1e400,2\n",
            Task::Regression,
            None,
            &["line 2", "`label`"],
        ),
    ]);
}

#[test]
fn error_labels_out_of_range() {
    csv_errs(&[
        (
            "label,a\n1,2\n-1,3\n",
            Task::Classification,
            None,
            &["line 3", "`label`", "negative"],
        ),
        (
            "label,a\n1,2\n0,3\n2.5,3\n",
            Task::Classification,
            None,
            &["line 4", "not an integer"],
        ),
        (
            "label,a\n1,2\n3,3\n",
            Task::Classification,
            Some(3),
            &["line 3", "out of range", "3"],
        ),
        (
            "label,a\n1,2\ncat,3\n",
            Task::Classification,
            None,
            &["line 3", "cat"],
        ),
    ]);
}

#[test]
fn error_target_missing_lists_columns() {
    csv_errs(&[(
        "lab,a,b\n1,2,3\n",
        Task::Classification,
        None,
        &["`label`", "lab, a, b"],
    )]);
}

#[test]
fn error_shape_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    // NPY: X has 4 samples, y has 5.
    let xp = write(
        dir.path(),
        "feat.npy",
        npy_bytes("<f8", "(4, 2)", &f64_bytes(&[0.0; 8])),
    );
    let yp = write(
        dir.path(),
        "targ.npy",
        npy_bytes("<f8", "(5,)", &f64_bytes(&[0.0; 5])),
    );
    let c = npy_cfg(xp, yp, Task::Regression);
    let msg = load_err(&c);
    assert!(
        msg.contains("targ.npy") && msg.contains("5 samples") && msg.contains("feat.npy"),
        "{msg}"
    );
    // CSV: test file with a different feature count.
    let tr = write(dir.path(), "train_set.csv", "label,a,b\n1,2,3\n");
    let te = write(dir.path(), "test_set.csv", "label,a\n1,2\n");
    let c = cfg(
        DataSource::Csv {
            path: tr,
            target: vec!["label".into()],
            test_path: Some(te),
        },
        Task::Classification,
    );
    let msg = load_err(&c);
    assert!(
        msg.contains("test_set.csv") && msg.contains("1 features") && msg.contains("2"),
        "{msg}"
    );
    // IDX: labels count differs from images count.
    let ip = write(dir.path(), "im.idx", idx_bytes(&[2, 1, 1], &[1, 2]));
    let lp = write(dir.path(), "lb.idx", idx_bytes(&[3], &[0, 1, 0]));
    let c = idx_cfg(ip, lp);
    let msg = load_err(&c);
    assert!(
        msg.contains("lb.idx") && msg.contains("3 labels") && msg.contains("2 images"),
        "{msg}"
    );
}

#[test]
fn error_bad_idx() {
    let dir = tempfile::tempdir().unwrap();
    let lp = write(dir.path(), "ok-labels.idx", idx_bytes(&[2], &[0, 1]));
    let bad = write(
        dir.path(),
        "bad-magic.idx",
        [0x12u8, 0x34, 0x08, 0x03, 0, 0, 0, 1],
    );
    let c = idx_cfg(bad, lp.clone());
    let msg = load_err(&c);
    assert!(
        msg.contains("bad-magic.idx") && msg.contains("magic"),
        "{msg}"
    );
    let mut b = idx_bytes(&[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8]);
    b.truncate(b.len() - 3);
    let short = write(dir.path(), "short.idx.gz", gz(&b));
    let c = idx_cfg(short, lp.clone());
    let msg = load_err(&c);
    assert!(
        msg.contains("short.idx.gz") && msg.contains("truncated"),
        "{msg}"
    );
    // A gzip stream cut short.
    let g = gz(&idx_bytes(&[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8]));
    let cut = write(dir.path(), "cut.gz", &g[..g.len() / 2]);
    let c = idx_cfg(cut, lp);
    let msg = load_err(&c);
    assert!(msg.contains("cut.gz"), "{msg}");
}

#[test]
fn error_npy_dtype_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let xp = write(
        dir.path(),
        "complex.npy",
        npy_bytes("<c8", "(2, 1)", &[0; 16]),
    );
    let yp = write(
        dir.path(),
        "y.npy",
        npy_bytes("<f8", "(2,)", &f64_bytes(&[0.0, 1.0])),
    );
    let c = npy_cfg(xp, yp.clone(), Task::Regression);
    let msg = load_err(&c);
    assert!(msg.contains("complex.npy") && msg.contains("<c8"), "{msg}");
    let be = write(
        dir.path(),
        "bigendian.npy",
        npy_bytes(">f8", "(2, 1)", &[0; 16]),
    );
    let c = npy_cfg(be, yp.clone(), Task::Regression);
    assert!(load_err(&c).contains(">f8"));
    let nanp = write(
        dir.path(),
        "withnan.npy",
        npy_bytes("<f8", "(2, 2)", &f64_bytes(&[0.0, 1.0, f64::NAN, 2.0])),
    );
    let c = npy_cfg(nanp, yp.clone(), Task::Regression);
    let msg = load_err(&c);
    assert!(
        msg.contains("withnan.npy") && msg.contains("sample 1") && msg.contains("feature 0"),
        "{msg}"
    );
    let xp = write(
        dir.path(),
        "x.npy",
        npy_bytes("<f8", "(2, 1)", &f64_bytes(&[0.0, 1.0])),
    );
    let lab = write(
        dir.path(),
        "neglabels.npy",
        npy_bytes("<i4", "(2,)", &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
    );
    let c = npy_cfg(xp.clone(), lab, Task::Classification);
    let msg = load_err(&c);
    assert!(
        msg.contains("neglabels.npy") && msg.contains("sample 1") && msg.contains("negative"),
        "{msg}"
    );
    let trunc = write(
        dir.path(),
        "trunc.npy",
        npy_bytes("<f8", "(4, 1)", &f64_bytes(&[0.0, 1.0])),
    );
    let c = npy_cfg(trunc, yp, Task::Regression);
    let msg = load_err(&c);
    assert!(
        msg.contains("trunc.npy") && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn error_type_is_wrapped_by_crate_error() {
    let c = cfg(
        csv_source(Path::new("nowhere.csv"), &["label"]),
        Task::Classification,
    );
    let e: sparse_alm::Error = load(&c).unwrap_err().into();
    assert!(e.to_string().contains("nowhere.csv"));
    let _: &dyn std::error::Error = &DataError::Invalid("x".into());
}
