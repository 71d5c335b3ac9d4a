//! Model I/O and output helpers: save/load round trips and every validation error, He
//! initialisation statistics, the host forward pass against a hand computation, the
//! sparsity measures on a handmade network, atomic writes, the JSONL metrics log, the run
//! directory name and the CLI table.

use std::path::Path;

use ndarray::{array, Array2};
use sparse_alm::backend::{Axis, LossKind};
use sparse_alm::config::Task;
use sparse_alm::model::{self, ModelError, ModelMeta, Network};
use sparse_alm::output::{self, fmt_sig, MetricsLog, Table};

fn meta_for(net: &Network) -> ModelMeta {
    ModelMeta {
        format_version: 1,
        sizes: net.sizes(),
        alpha: f64::from(net.alpha),
        lambda: 1e-3,
        loss: LossKind::Squared,
        input_groups: Axis::Cols,
        output_groups: Axis::Rows,
        task: Task::Classification,
        method: "alm".into(),
        seed: 7,
        init_seed: 11,
        target: vec!["label".into()],
        class_names: vec!["a".into(), "b".into(), "c".into()],
        feature_names: vec![],
        preprocess: serde_json::json!({
            "feature_scale": 1.0,
            "mean": [0.5, 1.5, 0.0, -1.0],
            "std": [1.0, 2.0, 1.0, 0.5],
            "target_mean": null,
            "target_std": null
        }),
        metrics: serde_json::json!({"train_error": 0.125, "p0": 0.5}),
        created_unix: 1_764_066_912,
        program_version: "0.1.0".into(),
    }
}

fn saved(dir: &Path) -> (Network, ModelMeta) {
    let mut net = Network::he_init(&[4, 5, 3], 0.1, 3);
    net.b[0][[1, 0]] = 0.25;
    net.b[1][[2, 0]] = -1.5;
    let meta = meta_for(&net);
    model::save(dir, &net, &meta).unwrap();
    (net, meta)
}

fn bits(net: &Network) -> Vec<u32> {
    net.w
        .iter()
        .chain(&net.b)
        .flat_map(|m| m.iter().map(|v| v.to_bits()))
        .collect()
}

#[test]
fn round_trip_by_dir_safetensors_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run/nested");
    let (net, meta) = saved(&dir);
    assert!(dir.join("model.safetensors").is_file());
    assert!(dir.join("model.json").is_file());
    for p in [
        dir.clone(),
        dir.join("model.safetensors"),
        dir.join("model.json"),
    ] {
        let (n2, m2) = model::load(&p).unwrap();
        assert_eq!(
            bits(&n2),
            bits(&net),
            "weights differ loading {}",
            p.display()
        );
        assert_eq!(n2, net);
        assert_eq!(m2, meta);
    }
}

fn err_string(r: Result<(Network, ModelMeta), ModelError>) -> (ModelError, String) {
    let e = r.expect_err("load should fail");
    let s = e.to_string();
    (e, s)
}

#[test]
fn missing_file_names_path() {
    let tmp = tempfile::tempdir().unwrap();
    let (e, s) = err_string(model::load(&tmp.path().join("nope")));
    assert!(matches!(e, ModelError::Io { .. }), "{e:?}");
    assert!(s.contains("nope") && s.contains("model.json"), "{s}");

    // Weights present, metadata missing: names model.json.
    let dir = tmp.path().join("r");
    saved(&dir);
    std::fs::remove_file(dir.join("model.json")).unwrap();
    let (_, s) = err_string(model::load(&dir));
    assert!(s.contains("model.json"), "{s}");

    // Metadata present, weights missing: names model.safetensors.
    let dir = tmp.path().join("r2");
    saved(&dir);
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let (_, s) = err_string(model::load(&dir.join("model.json")));
    assert!(s.contains("model.safetensors"), "{s}");
}

#[test]
fn corrupt_json_names_file() {
    let tmp = tempfile::tempdir().unwrap();
    saved(tmp.path());
    std::fs::write(tmp.path().join("model.json"), b"{ \"format_version\": 1, ").unwrap();
    let (e, s) = err_string(model::load(tmp.path()));
    assert!(matches!(e, ModelError::Json { .. }), "{e:?}");
    assert!(s.contains("model.json"), "{s}");
}

#[test]
fn unknown_format_version() {
    let tmp = tempfile::tempdir().unwrap();
    let (net, mut meta) = saved(tmp.path());
    meta.format_version = 99;
    output::write_json(&tmp.path().join("model.json"), &meta).unwrap();
    let (e, s) = err_string(model::load(tmp.path()));
    assert!(matches!(e, ModelError::FormatVersion { .. }), "{e:?}");
    assert!(s.contains("99") && s.contains("model.json"), "{s}");
    // save refuses nothing about version, but sizes must match the network.
    meta.format_version = 1;
    meta.sizes = vec![4, 6, 3];
    assert!(model::save(tmp.path(), &net, &meta).is_err());
}

#[test]
fn wrong_shape_names_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, mut meta) = saved(tmp.path());
    // Meta now claims a wider hidden layer than the weights hold.
    meta.sizes = vec![4, 6, 3];
    output::write_json(&tmp.path().join("model.json"), &meta).unwrap();
    let (e, s) = err_string(model::load(tmp.path()));
    assert!(matches!(e, ModelError::TensorShape { .. }), "{e:?}");
    assert!(s.contains("`w1`") && s.contains("model.safetensors"), "{s}");
}

#[test]
fn missing_tensor_and_nan_weight() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, mut meta) = saved(tmp.path());
    // A third layer the file does not have.
    meta.sizes = vec![4, 5, 3, 2];
    output::write_json(&tmp.path().join("model.json"), &meta).unwrap();
    let (e, s) = err_string(model::load(tmp.path()));
    assert!(matches!(e, ModelError::MissingTensor { .. }), "{e:?}");
    assert!(s.contains("`w3`"), "{s}");

    // A NaN cannot be saved through `save`; write the file by hand.
    let dir = tmp.path().join("nan");
    saved(&dir);
    let w1 = vec![0u8; 5 * 4 * 4];
    let mut b1 = vec![0u8; 5 * 4];
    b1[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    let w2 = vec![0u8; 3 * 5 * 4];
    let b2 = vec![0u8; 3 * 4];
    use safetensors::tensor::TensorView;
    use safetensors::Dtype::F32;
    let views = vec![
        ("w1", TensorView::new(F32, vec![5, 4], &w1).unwrap()),
        ("b1", TensorView::new(F32, vec![5], &b1).unwrap()),
        ("w2", TensorView::new(F32, vec![3, 5], &w2).unwrap()),
        ("b2", TensorView::new(F32, vec![3], &b2).unwrap()),
    ];
    let bytes = safetensors::serialize(views, None).unwrap();
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
    let (e, s) = err_string(model::load(&dir));
    assert!(matches!(e, ModelError::NonFinite { index: 2, .. }), "{e:?}");
    assert!(s.contains("`b1`"), "{s}");

    // save refuses non-finite weights too (a saved model always loads).
    let mut net = Network::zeros(&[2, 2], 0.1);
    net.w[0][[0, 1]] = f32::INFINITY;
    assert!(matches!(
        model::save(&tmp.path().join("inf"), &net, &meta_for(&net)),
        Err(ModelError::NonFinite { .. })
    ));
}

#[test]
fn bad_alpha_and_dtype() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, mut meta) = saved(tmp.path());
    meta.alpha = 1.5;
    output::write_json(&tmp.path().join("model.json"), &meta).unwrap();
    let (e, s) = err_string(model::load(tmp.path()));
    assert!(matches!(e, ModelError::Meta { .. }), "{e:?}");
    assert!(s.contains("alpha"), "{s}");

    let dir = tmp.path().join("f64");
    saved(&dir);
    let w1 = vec![0u8; 5 * 4 * 8];
    let views = vec![(
        "w1",
        safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![5, 4], &w1).unwrap(),
    )];
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
    let (e, s) = err_string(model::load(&dir));
    assert!(matches!(e, ModelError::TensorDtype { .. }), "{e:?}");
    assert!(s.contains("`w1`"), "{s}");

    // Not a safetensors file at all.
    std::fs::write(dir.join("model.safetensors"), b"garbage").unwrap();
    let (e, _) = err_string(model::load(&dir));
    assert!(matches!(e, ModelError::Safetensors { .. }), "{e:?}");
}

#[test]
fn he_init_statistics() {
    let alpha = 0.1f32;
    let net = Network::he_init(&[400, 400, 10], alpha, 42);
    let w = &net.w[0];
    let n = w.len() as f64;
    let mean = w.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = w
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    let want = (2.0 / ((1.0 + 0.01) * 400.0f64)).sqrt();
    assert!(
        (var.sqrt() / want - 1.0).abs() < 0.05,
        "std {} want {want}",
        var.sqrt()
    );
    assert!(mean.abs() < 0.05 * want, "mean {mean}");
    assert!(net.b.iter().all(|b| b.iter().all(|&v| v == 0.0)));
    assert_eq!(net.sizes(), vec![400, 400, 10]);
    assert_eq!(net.layers(), 2);
    assert_eq!(net.param_count(), 400 * 400 + 400 + 10 * 400 + 10);

    assert_eq!(Network::he_init(&[400, 400, 10], alpha, 42), net);
    let other = Network::he_init(&[400, 400, 10], alpha, 43);
    assert_ne!(other.w[0], net.w[0]);
    assert_ne!(other.w[1], net.w[1]);
}

#[test]
fn zeros_is_the_empty_network() {
    let net = Network::zeros(&[3, 4, 2], 0.2);
    assert_eq!(net.sizes(), vec![3, 4, 2]);
    let y = net.forward(array![[1.0f32, -2.0], [3.0, 4.0], [5.0, 6.0]].view());
    assert_eq!(y, Array2::<f32>::zeros((2, 2)));
    assert_eq!(net.zero_groups(&[Axis::Rows, Axis::Rows]), vec![4, 2]);
    assert_eq!(net.live_neurons(), vec![0]);
    assert_eq!(net.penalty(&[Axis::Rows, Axis::Cols]), 0.0);
}

#[test]
fn forward_matches_hand_computation() {
    // 2 → 2 → 1, α = 0.1, two samples.
    let net = Network {
        alpha: 0.1,
        w: vec![array![[1.0, -1.0], [2.0, 0.5]], array![[3.0, -2.0]]],
        b: vec![array![[0.5], [-1.0]], array![[0.25]]],
    };
    let x = array![[1.0f32, -2.0], [3.0, 1.0]];
    // sample 1: u = [1-3+0.5, 2+1.5-1] = [-1.5, 2.5] → a = [-0.15, 2.5]; ŷ = -0.45-5+0.25 = -5.2
    // sample 2: u = [-2-1+0.5, -4+0.5-1] = [-2.5, -4.5] → a = [-0.25, -0.45]; ŷ = -0.75+0.9+0.25 = 0.4
    let y = net.forward(x.view());
    assert_eq!(y.dim(), (1, 2));
    assert!((y[[0, 0]] - (-5.2)).abs() < 1e-6, "{y}");
    assert!((y[[0, 1]] - 0.4).abs() < 1e-6, "{y}");
    // Wrong input width is an error, not a panic, through try_forward.
    assert!(net.try_forward(array![[1.0f32]].view()).is_err());
}

#[test]
fn sparsity_measures_on_handmade_net() {
    // 3 → 3 → 2 → 1.
    let net = Network {
        alpha: 0.1,
        w: vec![
            // row 1 zero; column 2 zero
            array![[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]],
            // column 0 zero (neuron 0 of layer 1 has no outgoing weights); row 1 zero
            array![[0.0, 2.0, 0.0], [0.0, 0.0, 0.0]],
            array![[0.0, 5.0]],
        ],
        b: vec![
            array![[0.0], [1.0], [0.0]],
            array![[0.0], [0.0]],
            array![[0.0]],
        ],
    };
    assert_eq!(
        net.zero_groups(&[Axis::Rows, Axis::Rows, Axis::Rows]),
        vec![1, 1, 0]
    );
    assert_eq!(
        net.zero_groups(&[Axis::Cols, Axis::Cols, Axis::Cols]),
        vec![1, 2, 1]
    );
    // Layer 1: neuron 0 row≠0 but column 0 of W2 = 0 → dead; neuron 1 row = 0 → dead (its
    // constant σ(1) folds into b2); neuron 2 row≠0 but column 2 of W2 = 0 → dead.
    // Layer 2: neuron 0 row≠0 but W3 column 0 = 0 → dead; neuron 1 row = 0 → dead.
    assert_eq!(net.live_neurons(), vec![0, 0]);
    let p_rows = net.penalty(&[Axis::Rows, Axis::Rows, Axis::Rows]);
    assert!(
        (p_rows - (5.0 + 0.0 + 1.0 + 2.0 + 5.0)).abs() < 1e-12,
        "{p_rows}"
    );
    let p_cols = net.penalty(&[Axis::Cols, Axis::Rows, Axis::Cols]);
    assert!(
        (p_cols - (10f64.sqrt() + 4.0 + 2.0 + 5.0)).abs() < 1e-12,
        "{p_cols}"
    );

    let mut live = net.clone();
    live.w[1][[0, 0]] = 1.0; // neuron 0 of layer 1 now feeds forward
    live.w[2][[0, 0]] = 1.0; // neuron 0 of layer 2 now feeds the output
    assert_eq!(live.live_neurons(), vec![1, 1]);
    // Default axes (empty slice) are rows.
    assert_eq!(live.zero_groups(&[]), live.zero_groups(&[Axis::Rows; 3]));
}

#[test]
fn write_atomic_replaces_and_leaves_no_temp() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("f.txt");
    output::write_atomic(&p, b"first version, longer").unwrap();
    output::write_atomic(&p, b"second").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"second");
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("f.txt")],
        "leftovers: {names:?}"
    );
    // A missing directory is an error, and leaves nothing behind.
    assert!(output::write_atomic(&tmp.path().join("no/such/f"), b"x").is_err());
}

#[test]
fn metrics_log_is_valid_jsonl() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("metrics.jsonl");
    let mut log = MetricsLog::create(&p).unwrap();
    assert!(p.is_file());
    assert!(log.is_empty());
    #[derive(serde::Serialize)]
    struct Rec {
        k: usize,
        loss: f64,
        tag: &'static str,
    }
    let n = 25;
    for k in 0..n {
        log.push(&Rec {
            k,
            loss: 1.0 / (k + 1) as f64,
            tag: "outer\n\"x\"",
        })
        .unwrap();
    }
    log.finish().unwrap();
    assert_eq!(log.len(), n);
    let text = std::fs::read_to_string(&p).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), n);
    for (k, l) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["k"], k);
    }
    // Unthrottled: every push is on disk immediately.
    let p2 = tmp.path().join("m2.jsonl");
    let mut log = MetricsLog::create(&p2)
        .unwrap()
        .flush_every(std::time::Duration::ZERO);
    log.push(&serde_json::json!({"a": 1})).unwrap();
    assert_eq!(std::fs::read_to_string(&p2).unwrap(), "{\"a\":1}\n");
    // Drop writes the throttled tail.
    let p3 = tmp.path().join("m3.jsonl");
    {
        let mut log = MetricsLog::create(&p3).unwrap();
        log.push(&serde_json::json!({"b": 2})).unwrap();
    }
    assert_eq!(std::fs::read_to_string(&p3).unwrap(), "{\"b\":2}\n");
}

#[test]
fn default_out_dir_format_and_uniqueness() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("runs");
    let d = output::default_out_dir(&base);
    assert_eq!(d.parent().unwrap(), base);
    let name = d.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(name.len(), 15, "{name}");
    assert_eq!(&name[8..9], "-");
    assert!(
        name[..8]
            .chars()
            .chain(name[9..].chars())
            .all(|c| c.is_ascii_digit()),
        "{name}"
    );
    let year: u32 = name[..4].parse().unwrap();
    assert!((2024..2200).contains(&year));
    std::fs::create_dir_all(&d).unwrap();
    let d2 = output::default_out_dir(&base);
    // Same second → "-2"; a new second → a fresh stamp. Either way it is new.
    assert!(!d2.exists());
    if d2.file_name().unwrap().to_str().unwrap().starts_with(&name) {
        assert_eq!(
            d2.file_name().unwrap().to_str().unwrap(),
            format!("{name}-2")
        );
    }
    // Known dates, including a leap day and the epoch.
    assert_eq!(output::utc_stamp(0), "19700101-000000");
    assert_eq!(output::utc_stamp(951_782_400), "20000229-000000");
    assert_eq!(output::utc_stamp(1_764_066_912), "20251125-103512");
}

#[test]
fn write_json_is_pretty_and_parses() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("x.json");
    output::write_json(&p, &serde_json::json!({"a": [1, 2], "b": "c"})).unwrap();
    let t = std::fs::read_to_string(&p).unwrap();
    assert!(t.contains('\n') && t.ends_with('\n'));
    let v: serde_json::Value = serde_json::from_str(&t).unwrap();
    assert_eq!(v["b"], "c");
}

#[test]
fn table_renders_aligned() {
    let mut t = Table::new(["method", "λ", "loss"]);
    t.row(["alm", "0.001", "0.123"]);
    t.row(["prox-adam", "1e-4", "12.5"]);
    t.row(["gd", "-", "inf"]);
    let s = t.render();
    let lines: Vec<_> = s.lines().collect();
    assert_eq!(lines.len(), 5, "{s}");
    assert_eq!(
        lines,
        vec![
            "method         λ   loss",
            "-----------------------",
            "alm        0.001  0.123",
            "prox-adam   1e-4   12.5",
            "gd             -    inf",
        ],
        "\n{s}"
    );
    assert_eq!(t.len(), 3);
}

#[test]
fn fmt_sig_cases() {
    assert_eq!(fmt_sig(0.0, 3), "0");
    assert_eq!(fmt_sig(0.123456, 3), "0.123");
    assert_eq!(fmt_sig(1.5, 3), "1.5");
    assert_eq!(fmt_sig(-2.34567, 3), "-2.35");
    assert_eq!(fmt_sig(9.996, 3), "10");
    assert_eq!(fmt_sig(99.96, 3), "100");
    assert_eq!(fmt_sig(1234.6, 3), "1235");
    assert_eq!(fmt_sig(0.001, 3), "0.001");
    assert_eq!(fmt_sig(0.000123456, 3), "1.23e-4");
    assert_eq!(fmt_sig(1.0e-7, 3), "1e-7");
    assert_eq!(fmt_sig(123456.0, 3), "1.23e5");
    assert_eq!(fmt_sig(f64::INFINITY, 3), "inf");
    assert_eq!(fmt_sig(f64::NEG_INFINITY, 3), "-inf");
    assert_eq!(fmt_sig(f64::NAN, 3), "nan");
    assert_eq!(output::fmt_opt(None, 3), "-");
}
