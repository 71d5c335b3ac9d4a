//! Real-world and hostile inputs to the data loaders: read bounds (huge declared shapes,
//! gzip bombs, devices and FIFOs, oversized files, huge labels, a huge teacher), default
//! standardisation of features and regression targets with errors reported in the target's
//! units, label values mapped to classes, RFC 4180 CSV with duplicate-column and
//! control-character handling, NPY row-count checks, and a model whose stored
//! preprocessing is invalid. Each test reproduces the bad case and asserts the message.

mod common;
use common::data::{
    cfg, csv_err, csv_source, f64_bytes, gz_at, gzip_bomb, idx_cfg, idx_header, npy_bytes, npy_cfg,
    write,
};
use common::model_meta;

use ndarray::Array2;
use sparse_alm::backend::cpu::CpuBackend;
use sparse_alm::backend::gpu::GpuOptions;
use sparse_alm::backend::{Axis, Backend, LossKind};
use sparse_alm::config::{load_config, DataSource, Task};
use sparse_alm::data::{load, load_for_eval, EvalSpec, Preprocess};
use sparse_alm::model::{self, ModelMeta, Network};
use sparse_alm::problem::{DeviceData, Params, Spec};
use sparse_alm::solver::measures::Evaluator;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

fn data_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

/// Run `f` on another thread and fail (rather than hang) if it has not returned in a
/// minute: a read that blocks is the bug being tested.
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the loader blocked instead of returning an error")
}

// ---------------------------------------------------------------------------------------
// Read bounds
// ---------------------------------------------------------------------------------------

#[test]
fn npy_header_shape_overflow_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let x = write(
        dir.path(),
        "huge.npy",
        npy_bytes(
            "<f8",
            "(4611686018427387904, 4611686018427387904)",
            &[0; 16],
        ),
    );
    let y = write(dir.path(), "y.npy", npy_bytes("<f8", "(2,)", &[0; 16]));
    let msg = load(&npy_cfg(x, y.clone(), Task::Regression))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("huge.npy") && msg.contains("more values than can be addressed"),
        "{msg}"
    );
    // A large but addressable shape over a small body: reported as truncated, nothing
    // allocated for the declared size.
    let x = write(
        dir.path(),
        "claims.npy",
        npy_bytes("<f8", "(1099511627776, 1)", &[0; 16]),
    );
    let msg = load(&npy_cfg(x, y, Task::Regression))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("claims.npy") && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn idx_declared_size_beyond_the_limit_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let images = write(
        dir.path(),
        "declares.idx3.gz",
        gz_at(
            &idx_header(&[65535, 65535, 65535]),
            flate2::Compression::fast(),
        ),
    );
    let labels = write(
        dir.path(),
        "labels.idx1",
        [idx_header(&[2]), vec![0, 1]].concat(),
    );
    let msg = load(&idx_cfg(images, labels)).unwrap_err().to_string();
    assert!(
        msg.contains("declares.idx3.gz") && msg.contains("above the read limit"),
        "{msg}"
    );
}

/// A gzip stream inflating to 2 GiB after a valid 2-sample header: 256 members of 8 MiB of
/// zeros, about 2 MB on disk. The reader takes what the header declares, counts a bounded
/// surplus, and stops.
#[test]
fn gzip_bomb_after_a_valid_header_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = gzip_bomb(&[idx_header(&[2]), vec![0, 1]].concat());
    assert!(bomb.len() < 4 << 20, "{} bytes", bomb.len());
    let labels = write(dir.path(), "bomb-labels.gz", &bomb);
    let images = write(
        dir.path(),
        "images.idx3",
        [idx_header(&[2, 1, 1]), vec![3, 4]].concat(),
    );
    let msg = load(&idx_cfg(images, labels)).unwrap_err().to_string();
    assert!(
        msg.contains("bomb-labels.gz") && msg.contains("more than 1048576 unexpected bytes"),
        "{msg}"
    );
}

#[test]
fn devices_and_fifos_are_refused_without_blocking() {
    let msg = within_a_minute(|| {
        let c = cfg(
            csv_source(Path::new("/dev/zero"), &["label"]),
            Task::Classification,
        );
        load(&c).unwrap_err().to_string()
    });
    assert!(
        msg.contains("/dev/zero") && msg.contains("not a regular file (a character device)"),
        "{msg}"
    );
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.csv");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        println!("skipping the FIFO case: mkfifo is not available");
        return;
    }
    for source in [
        csv_source(&fifo, &["label"]),
        DataSource::Npy {
            x: fifo.clone(),
            y: fifo.clone(),
            test_x: None,
            test_y: None,
        },
        DataSource::Idx {
            images: fifo.clone(),
            labels: fifo.clone(),
            test_images: None,
            test_labels: None,
        },
    ] {
        let msg = within_a_minute(move || {
            load(&cfg(source, Task::Classification))
                .unwrap_err()
                .to_string()
        });
        assert!(msg.contains("pipe.csv") && msg.contains("a FIFO"), "{msg}");
    }
    // A model path and a config path get the same treatment.
    let f = fifo.clone();
    let msg = within_a_minute(move || {
        format!(
            "{:#}",
            anyhow::Error::from(load_config(Some(&f), &[]).unwrap_err())
        )
    });
    assert!(msg.contains("pipe.csv") && msg.contains("a FIFO"), "{msg}");
    let model_fifo = dir.path().join("model.json");
    std::process::Command::new("mkfifo")
        .arg(&model_fifo)
        .status()
        .unwrap();
    let msg = within_a_minute(move || {
        format!(
            "{:#}",
            anyhow::Error::from(model::load(&model_fifo).unwrap_err())
        )
    });
    assert!(
        msg.contains("model.json") && msg.contains("a FIFO"),
        "{msg}"
    );
}

#[test]
fn a_file_beyond_the_read_limit_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sparse.csv");
    // Sparse: 5 GiB long, no blocks written.
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(5 << 30).unwrap();
    drop(f);
    let c = cfg(csv_source(&p, &["label"]), Task::Classification);
    let msg = load(&c).unwrap_err().to_string();
    assert!(
        msg.contains("sparse.csv") && msg.contains("above the read limit"),
        "{msg}"
    );
}

#[test]
fn a_huge_label_is_a_label_value_unless_classes_bounds_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "big.csv", "label,a\n4000000000,1\n0,2\n0,3\n");
    let d = load(&cfg(csv_source(&p, &["label"]), Task::Classification)).unwrap();
    assert_eq!(d.train.m(), 2);
    assert_eq!(d.train.class_names, ["0", "4000000000"]);
    assert_eq!(d.train.labels.as_deref(), Some(&[1u32, 0, 0][..]));
    let msg = csv_err(
        "label,a\n4000000000,1\n0,2\n",
        Task::Classification,
        Some(3),
    );
    assert!(
        msg.contains("line 2") && msg.contains("4000000000") && msg.contains("out of range"),
        "{msg}"
    );
}

#[test]
fn a_huge_teacher_is_refused_with_an_estimate() {
    let teacher = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/teacher.toml");
    let e = load_config(
        Some(&teacher),
        &["data.teacher.n_train=100000000000".into()],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("data.teacher.n_train") && e.contains("needs about") && e.contains("TiB"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// Standardisation by default, errors in the target's units
// ---------------------------------------------------------------------------------------

/// `--data FILE` on the built-in config (what `train --data` does).
fn quick(file: &str, target: &str, extra: &[&str]) -> sparse_alm::config::Config {
    let mut sets = vec![
        "data.source=\"csv\"".to_string(),
        format!("data.path=\"{}\"", data_file(file).display()),
        format!("data.target=\"{target}\""),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    load_config(None, &sets).unwrap()
}

#[test]
fn csv_features_are_standardised_by_default() {
    let c = quick("wine.csv", "class", &[]);
    assert!(c.data.standardize, "CSV data standardised by default");
    let d = load(&c.data).unwrap();
    let (mean, std) = (
        d.preprocess.mean.as_ref().unwrap(),
        d.preprocess.std.as_ref().unwrap(),
    );
    assert_eq!(mean.len(), 13);
    // Proline is in the hundreds: its mean and std are kept to undo nothing by hand.
    assert!(mean[12] > 500.0 && std[12] > 100.0, "{mean:?} {std:?}");
    for row in d.train.x.rows() {
        let n = row.len() as f64;
        let m = row.iter().map(|&v| v as f64).sum::<f64>() / n;
        let v = row.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
        assert!(
            m.abs() < 1e-4 && (v - 1.0).abs() < 1e-3,
            "mean {m}, var {v}"
        );
    }
    assert!(
        d.description.contains("features standardised"),
        "{}",
        d.description
    );
    // Turned off on the command line; the digits default keeps its raw pixels.
    let off = quick("wine.csv", "class", &["data.standardize=false"]);
    let d = load(&off.data).unwrap();
    assert!(d.preprocess.mean.is_none());
    assert!(
        d.description.contains("no preprocessing"),
        "{}",
        d.description
    );
    let digits = load_config(None, &[]).unwrap();
    assert!(!digits.data.standardize);
    // IDX and NPY sources keep false unless set; the teacher stays unscaled.
    let teacher = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/teacher.toml");
    let t = load_config(Some(&teacher), &[]).unwrap();
    assert!(!t.data.standardize && !t.data.standardize_targets);
    let npy = sparse_alm::config::config_from_str(
        "[data]\nx = \"x.npy\"\ny = \"y.npy\"\ntask = \"regression\"\n",
        &[],
    )
    .unwrap();
    assert!(!npy.data.standardize && npy.data.standardize_targets);
}

/// Regression targets in the hundreds: standardised for training, the reported MSE in
/// the target's own units — checked against the same network's host forward pass.
#[test]
fn regression_targets_standardised_and_errors_in_target_units() {
    let c = quick("diabetes.csv", "progression", &["data.task=\"regression\""]);
    assert!(c.data.standardize_targets);
    let d = load(&c.data).unwrap();
    let tm = d.preprocess.target_mean.as_ref().unwrap()[0];
    let ts = d.preprocess.target_std.as_ref().unwrap()[0];
    assert!(
        (100.0..200.0).contains(&tm) && (50.0..100.0).contains(&ts),
        "{tm} {ts}"
    );
    let y = d.train.y.row(0);
    let mean = y.iter().map(|&v| v as f64).sum::<f64>() / y.len() as f64;
    assert!(mean.abs() < 1e-4, "{mean}");
    assert!(d.description.contains("targets standardised"));
    let raw = load(
        &quick(
            "diabetes.csv",
            "progression",
            &["data.task=\"regression\"", "data.standardize_targets=false"],
        )
        .data,
    )
    .unwrap();
    assert!(raw.preprocess.target_mean.is_none());
    let sizes = [10, 8, 1];
    let net = Network::he_init(&sizes, 0.1, 3);
    let mse = measured_train_error(&d.train, &net);
    let host = host_mse(&net, &d.train.x, &raw.train.y, &d.preprocess);
    assert!(
        (mse - host).abs() <= 1e-4 * host,
        "measured {mse} vs host {host} (target units)"
    );
    assert!(
        host > 1000.0,
        "an untrained net's MSE in the target's units: {host}"
    );
}

/// Two targets of very different scales (per-output stds differ): the reported MSE is
/// still the plain MSE over both, in their own units.
#[test]
fn per_output_target_scales_report_the_plain_mse() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::from("a,b,y1,y2\n");
    for i in 0..40 {
        let (a, b) = (i as f64 * 0.1, (i % 7) as f64);
        body.push_str(&format!(
            "{a},{b},{},{}\n",
            300.0 + 50.0 * a,
            0.01 * b - 0.3
        ));
    }
    let p = write(dir.path(), "two.csv", body);
    let mut c = cfg(csv_source(&p, &["y1", "y2"]), Task::Regression);
    c.standardize_targets = true;
    let d = load(&c).unwrap();
    let std = d.train.target_std.clone().unwrap();
    assert!(std[0] / std[1] > 100.0, "{std:?}");
    c.standardize_targets = false;
    let raw = load(&c).unwrap();
    let net = Network::he_init(&[2, 5, 2], 0.1, 1);
    let mse = measured_train_error(&d.train, &net);
    let host = host_mse(&net, &d.train.x, &raw.train.y, &d.preprocess);
    assert!(
        (mse - host).abs() <= 1e-4 * host,
        "measured {mse} vs host {host}"
    );
    // The GPU twin measures the same (its matmul and loss kernels on the scaled outputs).
    if let Some(gpu) = common::gpu_or_skip(GpuOptions::from_env()) {
        let on_gpu = measured_on(&gpu, &d.train, &net);
        assert!(
            (on_gpu - host).abs() <= 1e-4 * host,
            "GPU {on_gpu} vs host {host}"
        );
    }
}

fn measured_train_error(train: &sparse_alm::data::Dataset, net: &Network) -> f64 {
    measured_on(&CpuBackend::<f32>::new(), train, net)
}

fn measured_on<B: Backend>(be: &B, train: &sparse_alm::data::Dataset, net: &Network) -> f64 {
    let spec = Spec::new(
        net.sizes(),
        net.alpha,
        1e-3,
        LossKind::Squared,
        Axis::Rows,
        Axis::Rows,
    );
    let dd = DeviceData::upload(be, train, &train.select(&[])).unwrap();
    let mut ev = Evaluator::new(be, &spec, &dd).unwrap();
    let p = Params::upload(be, net).unwrap();
    ev.measure(be, &p, &dd).unwrap().train_error
}

/// MSE of the network's predictions, brought back to the target's units, against the
/// raw targets, in f64 on the host.
fn host_mse(net: &Network, x: &Array2<f32>, raw_y: &Array2<f32>, pre: &Preprocess) -> f64 {
    let mut yhat = net.forward(x.view());
    pre.restore_targets(&mut yhat);
    let n = yhat.len() as f64;
    yhat.iter()
        .zip(raw_y.iter())
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum::<f64>()
        / n
}

// ---------------------------------------------------------------------------------------
// Labels → classes
// ---------------------------------------------------------------------------------------

fn classes_of(text: &str) -> (Vec<String>, Vec<u32>) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "l.csv", text);
    let d = load(&cfg(csv_source(&p, &["label"]), Task::Classification)).unwrap();
    (d.train.class_names, d.train.labels.unwrap())
}

#[test]
fn label_values_are_mapped_to_classes_in_sorted_order() {
    let (names, idx) = classes_of("label,a\n1,0\n2,0\n3,0\n2,1\n1,1\n3,1\n");
    assert_eq!(names, ["1", "2", "3"], "labels 1..3 make 3 classes, not 4");
    assert_eq!(idx, [0, 1, 2, 1, 0, 2]);
    let (names, idx) = classes_of("label,a\n100,0\n5,0\n10,0\n5,1\n100,1\n10,1\n");
    assert_eq!(names, ["5", "10", "100"], "numeric order, not text order");
    assert_eq!(idx, [2, 0, 1, 0, 2, 1]);
    // Integer-valued floats are the same labels.
    let (names, idx) = classes_of("label,a\n1.0,0\n2,0\n1,1\n2.0,1\n");
    assert_eq!(names, ["1", "2"]);
    assert_eq!(idx, [0, 1, 0, 1]);
    // The wine data: classes 1, 2, 3 (labels as in the file), 13 features.
    let d = load(&quick("wine.csv", "class", &[]).data).unwrap();
    assert_eq!((d.train.m(), d.train.d()), (3, 13));
    assert_eq!(d.train.class_names, ["1", "2", "3"]);
    // String labels: the breast cancer data.
    let d = load(&quick("breast_cancer.csv", "diagnosis", &[]).data).unwrap();
    assert_eq!(d.train.class_names, ["benign", "malignant"]);
    assert_eq!(d.train.n() + d.test.n(), 569);
    // Digits keeps 0..9 in order (data_loaders checks its figures).
    let d = load(&load_config(None, &[]).unwrap().data).unwrap();
    let digits: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    assert_eq!(d.train.class_names, digits);
}

#[test]
fn a_single_class_is_an_error_and_a_lone_sample_a_warning() {
    let msg = csv_err("label,a\n7,1\n7,2\n7,3\n", Task::Classification, None);
    assert!(
        msg.contains("every label is `7`") && msg.contains("at least two classes"),
        "{msg}"
    );
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "lone.csv", "label,a\n1,1\n1,2\n2,3\n2,4\n9,5\n");
    let mut c = cfg(csv_source(&p, &["label"]), Task::Classification);
    c.test_fraction = 0.4;
    let d = load(&c).unwrap();
    assert_eq!(d.train.class_names, ["1", "2", "9"]);
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    let w = &d.warnings[0];
    assert!(
        w.contains("lone.csv") && w.contains("`9` (1)") && w.contains("training proceeds"),
        "{w}"
    );
}

#[test]
fn eval_matches_mapped_labels_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "ev.csv", "label,a\n10,1\n5,2\n100,3\n");
    let spec = EvalSpec {
        task: Task::Classification,
        target: vec!["label".into()],
        n_inputs: 1,
        n_outputs: 3,
        class_names: vec!["5".into(), "10".into(), "100".into()],
        feature_names: vec![],
        preprocess: Preprocess::default(),
    };
    let d = load_for_eval(&p, &spec).unwrap();
    assert_eq!(d.labels.as_deref(), Some(&[1u32, 0, 2][..]));
    let bad = write(dir.path(), "ev2.csv", "label,a\n10,1\n7,2\n");
    let msg = load_for_eval(&bad, &spec).unwrap_err().to_string();
    assert!(
        msg.contains("ev2.csv") && msg.contains("line 3") && msg.contains("5, 10, 100"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------
// CSV per RFC 4180, duplicate columns, control characters; NPY row counts
// ---------------------------------------------------------------------------------------

#[test]
fn csv_quoted_fields_with_commas_quotes_and_line_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let text = "label,\"width, cm\",\"say \"\"hi\"\"\"\n\
                \"a, b\",1.5,\"2\"\n\
                \"c \"\"q\"\"\",3,4\n\
                \n\
                \"multi\nline\",5,6\n\
                plain,7,x8\n";
    let p = write(dir.path(), "quoted.csv", text);
    let c = cfg(csv_source(&p, &["label"]), Task::Classification);
    let msg = load(&c).unwrap_err().to_string();
    // The record after a quoted line break is on line 7 of the file.
    assert!(
        msg.contains("line 7") && msg.contains("`say \"hi\"`") && msg.contains("x8"),
        "{msg}"
    );
    let p = write(
        dir.path(),
        "quoted2.csv",
        &text[..text.find("plain").unwrap()],
    );
    let d = load(&cfg(csv_source(&p, &["label"]), Task::Classification)).unwrap();
    assert_eq!(d.train.feature_names, ["width, cm", "say \"hi\""]);
    assert_eq!(d.train.class_names, ["a, b", "c \"q\"", "multi\nline"]);
    assert_eq!(d.train.x.row(0).to_vec(), vec![1.5, 3.0, 5.0]);
}

#[test]
fn duplicate_column_names_are_an_error_naming_them() {
    let msg = csv_err("label,a,b,a\n1,2,3,4\n", Task::Classification, None);
    assert!(
        msg.contains("line 1")
            && msg.contains("duplicate column name `a`")
            && msg.contains("columns 2 and 4"),
        "{msg}"
    );
}

#[test]
fn control_characters_from_input_are_escaped_in_messages() {
    let cases = [
        "label,a\n1,\x1b[31mred\x1b[0m\n",    // unparsable value
        "label,\x1b]0;title\x07\n1,2\n3,x\n", // column name in the location
        "lab\x1b[2Jel,a\n1,2\n",              // missing target lists the columns
        "label,a\n1,2\n\x1b[1mcat,3\n",       // label text after numeric labels
        "label,a,a\x1b\n1,2,3\n1,2,3,4\n",    // ragged row
    ];
    for text in cases {
        let msg = csv_err(text, Task::Classification, None);
        assert!(
            !msg.chars().any(|c| c.is_control()),
            "raw control character in: {msg:?}"
        );
    }
    let msg = csv_err(cases[0], Task::Classification, None);
    assert!(msg.contains("\\u{1b}[31mred"), "{msg}");
    // Long values are cut.
    let long = format!("label,a\n1,{}\n", "z".repeat(5000));
    let msg = csv_err(&long, Task::Classification, None);
    assert!(msg.len() < 400 && msg.contains('…'), "{msg}");
}

#[test]
fn npy_with_more_rows_than_its_header_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let x = write(
        dir.path(),
        "more-rows.npy",
        npy_bytes("<f8", "(2, 2)", &f64_bytes(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])),
    );
    let y = write(
        dir.path(),
        "y.npy",
        npy_bytes("<f8", "(2,)", &f64_bytes(&[0.0, 1.0])),
    );
    let msg = load(&npy_cfg(x, y, Task::Regression))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("more-rows.npy")
            && msg.contains("16 unexpected bytes")
            && msg.contains("fewer values than the file holds"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------
// A model whose stored preprocessing is invalid
// ---------------------------------------------------------------------------------------

fn meta(net: &Network, preprocess: serde_json::Value) -> ModelMeta {
    ModelMeta {
        target: vec!["y".into()],
        ..model_meta(net, Task::Regression, preprocess)
    }
}

#[test]
fn invalid_stored_preprocessing_is_refused_by_field() {
    let net = Network::he_init(&[3, 4, 1], 0.1, 0);
    let dir = tempfile::tempdir().unwrap();
    let good = serde_json::json!({"feature_scale": 2.0, "mean": [0.0, 1.0, 2.0],
        "std": [1.0, 1.0, 3.0], "target_mean": [100.0], "target_std": [50.0]});
    model::save(dir.path(), &net, &meta(&net, good.clone())).unwrap();
    let (_, m) = model::load(dir.path()).unwrap();
    let pre: Preprocess = serde_json::from_value(m.preprocess).unwrap();
    assert_eq!(pre.target_std, Some(vec![50.0]));
    let cases: [(&str, serde_json::Value, &str); 6] = [
        (
            "feature_scale",
            serde_json::json!(0.0),
            "preprocess.feature_scale",
        ),
        (
            "feature_scale",
            serde_json::json!(-1.0),
            "preprocess.feature_scale",
        ),
        (
            "std",
            serde_json::json!([1.0, -2.0, 1.0]),
            "preprocess.std[1]",
        ),
        (
            "std",
            serde_json::json!([1.0, 0.0, 1.0]),
            "preprocess.std[1]",
        ),
        ("mean", serde_json::json!([0.0, 1.0]), "preprocess.mean"),
        ("target_std", serde_json::json!([1e39]), "preprocess"),
    ];
    for (key, value, field) in cases {
        let mut v = good.clone();
        v[key] = value;
        let mut text = serde_json::to_string_pretty(&meta(&net, v)).unwrap();
        text.push('\n');
        std::fs::write(dir.path().join("model.json"), text).unwrap();
        let msg = model::load(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("model.json") && msg.contains(&format!("field `{field}")),
            "{key}: {msg}"
        );
    }
    // NaN cannot be written in JSON; a hand edit writes null, refused the same way.
    let text = std::fs::read_to_string(dir.path().join("model.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["preprocess"] = good;
    v["preprocess"]["mean"] = serde_json::json!([0.0, null, 1.0]);
    std::fs::write(dir.path().join("model.json"), v.to_string()).unwrap();
    let msg = model::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("field `preprocess`"), "{msg}");
}

// ---------------------------------------------------------------------------------------
// Byte-reproducible model files
// ---------------------------------------------------------------------------------------

#[test]
fn saved_safetensors_bytes_do_not_depend_on_the_process() {
    let net = Network::he_init(&[3, 4, 2], 0.1, 5);
    let dir = tempfile::tempdir().unwrap();
    let pre = serde_json::json!({"feature_scale": 1.0});
    let mut first = None;
    // The old writer's metadata order changed with each HashMap's random state.
    for k in 0..12 {
        let d = dir.path().join(k.to_string());
        model::save(&d, &net, &meta(&net, pre.clone())).unwrap();
        let bytes = std::fs::read(d.join("model.safetensors")).unwrap();
        match &first {
            None => first = Some(bytes),
            Some(f) => assert_eq!(f, &bytes, "save {k} differs"),
        }
    }
    let bytes = first.unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    assert!(
        header
            .starts_with("{\"__metadata__\":{\"format\":\"sparse-alm\",\"format_version\":\"1\"}"),
        "{header}"
    );
    assert_eq!(n % 8, 0);
}
