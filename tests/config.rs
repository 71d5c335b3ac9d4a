//! Config loading: defaults, shipped configs, overrides, and one error per invalid value
//! naming its dotted field.

use sparse_alm::backend::{Axis, LossKind};
use sparse_alm::config::{
    config_from_str, load_config, AlmVariant, Config, DataSource, DeviceChoice, Method, Task,
};
use std::path::Path;

fn sets(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

fn with(s: &[&str]) -> Result<Config, String> {
    load_config(None, &sets(s)).map_err(|e| e.to_string())
}

/// The message of the error a config text without overrides gives.
fn toml_err(text: &str) -> String {
    config_from_str(text, &[]).unwrap_err().to_string()
}

/// The override must fail with a message naming `field`.
fn rejects(set: &str, field: &str) {
    let msg = with(&[set]).expect_err(&format!("`{set}` should be rejected"));
    assert!(
        msg.contains(&format!("`{field}`")),
        "`{set}`: message does not name `{field}`: {msg}"
    );
}

#[test]
fn built_in_default_is_digits() {
    let c = load_config(None, &[]).unwrap();
    match &c.data.source {
        DataSource::Csv {
            path,
            target,
            test_path,
        } => {
            assert!(path.ends_with("data/digits.csv"), "{}", path.display());
            assert!(
                path.exists(),
                "default data path should resolve: {}",
                path.display()
            );
            assert_eq!(target, &vec!["label".to_string()]);
            assert!(test_path.is_none());
        }
        other => panic!("unexpected source {other:?}"),
    }
    assert_eq!(c.data.task, Task::Classification);
    assert_eq!(c.data.test_fraction, 0.2);
    assert!(c.data.stratify && !c.data.standardize);
    assert_eq!(c.model.hidden, vec![100, 100]);
    assert_eq!(c.model.alpha, 0.1);
    assert_eq!(c.model.loss, LossKind::Squared);
    assert_eq!(
        (c.model.input_groups, c.model.output_groups),
        (Axis::Rows, Axis::Rows)
    );
    assert_eq!(c.train.method, Method::WarmAlm);
    assert_eq!(c.train.lambda, 1e-3);
    assert_eq!(c.train.max_passes, 300.0);
    assert!(c.train.max_seconds.is_infinite());
    assert_eq!(c.train.device, DeviceChoice::Auto);
    assert_eq!(
        (c.alm.rho0, c.alm.rho0_warm, c.alm.gamma, c.alm.tau),
        (3.0, 30.0, 2.0, 0.9)
    );
    assert_eq!((c.alm.eps0, c.alm.theta, c.alm.eps_min), (0.3, 0.3, 1e-6));
    assert_eq!(
        (c.alm.inner_cap, c.alm.block_steps, c.alm.max_outer),
        (20, 1, 10000)
    );
    assert!(!c.alm.exact_blocks);
    assert_eq!((c.alm.variant, c.alm.p0_steps), (AlmVariant::P0Steps, 3));
    assert_eq!((c.sgd.lr, c.sgd.momentum, c.sgd.batch), (0.02, 0.9, 128));
    assert_eq!((c.adam.lr, c.adam.batch), (3e-3, 128));
    assert_eq!(c.warm.passes, 200.0);
    assert_eq!(c.compare.methods, Method::ALL.to_vec());
    assert_eq!(
        c.compare.pass_checkpoints,
        vec![10.0, 30.0, 100.0, 200.0, 300.0]
    );
}

#[test]
fn absent_keys_take_defaults() {
    let c = config_from_str("[data]\npath = \"x.csv\"\n", &[]).unwrap();
    assert!(matches!(c.data.source, DataSource::Csv { .. }));
    assert_eq!(c.data.test_fraction, 0.2);
    assert_eq!(c.data.feature_scale, 1.0);
    assert_eq!((c.data.max_train, c.data.split_seed), (0, 0));
    assert_eq!(c.model.hidden, vec![100, 100]);
    assert_eq!(c.model.init_seed, 0);
    assert_eq!(
        (c.adam.lr, c.adam.beta1, c.adam.beta2, c.adam.eps),
        (1e-3, 0.9, 0.999, 1e-8)
    );
    assert_eq!(c.gd.step0, 1.0);
    assert_eq!((c.alm.kkt_tol, c.train.seed), (1e-6, 0));
    assert!(c.compare.time_checkpoints.is_empty());
    let t = config_from_str("[data]\nsource = \"teacher\"\n", &[]).unwrap();
    assert_eq!(t.data.task, Task::Regression);
    match t.data.source {
        DataSource::Teacher(p) => {
            assert_eq!(p.sizes, vec![50, 40, 20, 1]);
            assert_eq!(p.zero_rows, vec![10, 5]);
            assert_eq!((p.n_train, p.n_test), (5000, 1000));
        }
        _ => panic!(),
    }
}

#[test]
fn shipped_configs_load_and_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            load_config(Some(&p), &[]).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(n >= 3);
    let mut d = load_config(Some(&dir.join("digits.toml")), &[]).unwrap();
    let builtin = load_config(None, &[]).unwrap();
    // Same file; only the data path is resolved differently (file dir vs working dir).
    if let (DataSource::Csv { path: a, .. }, DataSource::Csv { path: b, .. }) =
        (&mut d.data.source, &builtin.data.source)
    {
        assert_eq!(
            std::fs::canonicalize(&a).unwrap(),
            std::fs::canonicalize(b).unwrap()
        );
        *a = b.clone();
    }
    assert_eq!(d, builtin, "the built-in default is configs/digits.toml");
    let t = load_config(Some(&dir.join("teacher.toml")), &[]).unwrap();
    assert_eq!(t.model.hidden, vec![64, 32]);
    assert_eq!(
        (t.train.lambda, t.sgd.lr, t.sgd.momentum, t.adam.lr),
        (3e-3, 0.1, 0.0, 1e-3)
    );
    assert_eq!(t.data.task, Task::Regression);
    let f = load_config(Some(&dir.join("fashion.toml")), &[]).unwrap();
    assert_eq!(f.model.hidden, vec![256, 256]);
    assert_eq!(
        (f.train.lambda, f.sgd.lr, f.data.feature_scale),
        (1e-4, 0.01, 255.0)
    );
    assert!(matches!(
        f.data.source,
        DataSource::Idx {
            test_images: Some(_),
            ..
        }
    ));
}

#[test]
fn relative_paths_resolve_against_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("cfgs");
    std::fs::create_dir(&sub).unwrap();
    let p = sub.join("my.toml");
    std::fs::write(
        &p,
        "[data]\npath = \"../d/train.csv\"\ntest_path = \"t.csv\"\n",
    )
    .unwrap();
    let c = load_config(Some(&p), &[]).unwrap();
    match &c.data.source {
        DataSource::Csv {
            path, test_path, ..
        } => {
            assert_eq!(path, &dir.path().join("d/train.csv"));
            assert_eq!(test_path.as_deref(), Some(sub.join("t.csv").as_path()));
        }
        _ => panic!(),
    }
    // --set paths are relative to the working directory.
    let c = load_config(Some(&p), &sets(&["data.path=my.csv"])).unwrap();
    match &c.data.source {
        DataSource::Csv { path, .. } => assert_eq!(path, Path::new("my.csv")),
        _ => panic!(),
    }
}

#[test]
fn overrides_apply_including_lists() {
    let c = with(&[
        "alm.rho0=10",
        "model.hidden=[64, 32]",
        "data.path=my.csv",
        "train.method=prox-sgd",
        "compare.methods=[\"alm\", \"prox-gd\"]",
        "data.target=[\"a\",\"b\"]",
        "data.task=regression",
        "train.max_seconds=inf",
    ])
    .unwrap();
    assert_eq!(c.alm.rho0, 10.0);
    assert_eq!(c.model.hidden, vec![64, 32]);
    assert_eq!(c.train.method, Method::ProxSgd);
    assert_eq!(c.compare.methods, vec![Method::Alm, Method::ProxGd]);
    assert!(c.train.max_seconds.is_infinite());
    match &c.data.source {
        DataSource::Csv { path, target, .. } => {
            assert_eq!(path, Path::new("my.csv"));
            assert_eq!(target, &vec!["a".to_string(), "b".to_string()]);
        }
        _ => panic!(),
    }
    // Switching the source on the command line ignores the file's keys for the old one.
    let t = with(&[
        "data.source=teacher",
        "data.task=regression",
        "data.teacher.n_train=100",
    ])
    .unwrap();
    match t.data.source {
        DataSource::Teacher(p) => assert_eq!(p.n_train, 100),
        other => panic!("{other:?}"),
    }
    // In a file, a key of another source is reported.
    let msg = toml_err("[data]\nsource = \"teacher\"\npath = \"a.csv\"\n");
    assert!(msg.contains("`data.path`"), "{msg}");
    let msg = with(&["alm.rho0"]).unwrap_err();
    assert!(msg.contains("key=value"), "{msg}");
    let msg = with(&["alm.rho0.x=1"]).unwrap_err();
    assert!(msg.contains("alm.rho0"), "{msg}");
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    let msg = with(&["alm.rhoo=3"]).unwrap_err();
    assert!(msg.contains("`alm.rhoo`"), "{msg}");
    let msg = with(&["data.teacher.sizez=[1]"]).unwrap_err();
    assert!(msg.contains("sizez"), "{msg}");
    let msg = with(&["optim.lr=3"]).unwrap_err();
    assert!(msg.contains("`optim`"), "{msg}");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("typo.toml");
    std::fs::write(&p, "[model]\nhiden = [3]\n").unwrap();
    let msg = load_config(Some(&p), &[]).unwrap_err().to_string();
    assert!(
        msg.contains("typo.toml") && msg.contains("`model.hiden`"),
        "{msg}"
    );
    std::fs::write(&p, "[model\n").unwrap();
    let msg = load_config(Some(&p), &[]).unwrap_err().to_string();
    assert!(msg.contains("typo.toml"), "{msg}");
    let msg = load_config(Some(Path::new("/no/such/conf.toml")), &[])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("conf.toml"), "{msg}");
}

#[test]
fn wrong_types_name_the_field() {
    rejects("alm.rho0=\"abc\"", "alm.rho0");
    rejects("model.hidden=[1, \"x\"]", "model.hidden");
    rejects("sgd.batch=1.5", "sgd.batch");
    rejects("data.max_train=-1", "data.max_train");
}

#[test]
fn invalid_values_name_their_field() {
    let cases = [
        ("train.lambda=-1", "train.lambda"),
        ("model.alpha=0", "model.alpha"),
        ("model.alpha=1", "model.alpha"),
        ("model.hidden=[]", "model.hidden"),
        ("model.hidden=[10, 0]", "model.hidden[1]"),
        ("model.hidden=[4,4,4,4,4,4,4,4,4,4]", "model.hidden"),
        ("data.test_fraction=1", "data.test_fraction"),
        ("data.test_fraction=-0.1", "data.test_fraction"),
        ("alm.rho0=0", "alm.rho0"),
        ("alm.rho0_warm=-3", "alm.rho0_warm"),
        ("alm.gamma=1", "alm.gamma"),
        ("alm.tau=1.5", "alm.tau"),
        ("alm.theta=0", "alm.theta"),
        ("alm.eps0=0", "alm.eps0"),
        ("alm.eps_min=0", "alm.eps_min"),
        ("alm.eps_min=0.5", "alm.eps_min"),
        ("alm.inner_cap=0", "alm.inner_cap"),
        ("alm.block_steps=0", "alm.block_steps"),
        ("alm.max_outer=0", "alm.max_outer"),
        ("alm.p0_steps=0", "alm.p0_steps"),
        ("alm.variant=\"fast\"", "alm.variant"),
        ("alm.kkt_tol=-1", "alm.kkt_tol"),
        ("sgd.lr=0", "sgd.lr"),
        ("sgd.momentum=1", "sgd.momentum"),
        ("sgd.momentum=-0.1", "sgd.momentum"),
        ("sgd.batch=0", "sgd.batch"),
        ("adam.lr=-1", "adam.lr"),
        ("adam.beta1=1", "adam.beta1"),
        ("adam.beta2=-0.5", "adam.beta2"),
        ("adam.eps=0", "adam.eps"),
        ("adam.batch=0", "adam.batch"),
        ("gd.step0=0", "gd.step0"),
        ("warm.passes=-1", "warm.passes"),
        ("train.method=sgd", "train.method"),
        ("train.device=tpu", "train.device"),
        ("train.max_passes=0", "train.max_passes"),
        ("train.max_seconds=-1", "train.max_seconds"),
        ("model.loss=hinge", "model.loss"),
        ("model.input_groups=diag", "model.input_groups"),
        ("model.output_groups=x", "model.output_groups"),
        ("data.source=parquet", "data.source"),
        ("data.task=ranking", "data.task"),
        ("data.feature_scale=0", "data.feature_scale"),
        ("data.classes=1", "data.classes"),
        ("data.target=[]", "data.target"),
        (
            "compare.methods=[\"alm\", \"newton\"]",
            "compare.methods[1]",
        ),
        ("compare.methods=[]", "compare.methods"),
        (
            "compare.pass_checkpoints=[10, 5]",
            "compare.pass_checkpoints[1]",
        ),
        (
            "compare.time_checkpoints=[-1]",
            "compare.time_checkpoints[0]",
        ),
    ];
    for (set, field) in cases {
        rejects(set, field);
    }
    let msg = with(&["alm.tau=1.5"]).unwrap_err();
    assert!(msg.contains("(0, 1)") && msg.contains("1.5"), "{msg}");
}

#[test]
fn cross_field_rules() {
    // softmax-ce only with classification.
    let msg = with(&["model.loss=softmax-ce", "data.task=regression"]).unwrap_err();
    assert!(msg.contains("`model.loss`"), "{msg}");
    assert!(with(&["model.loss=softmax-ce"]).is_ok());
    // exact blocks only with squared loss.
    let msg = with(&["model.loss=softmax-ce", "alm.exact_blocks=true"]).unwrap_err();
    assert!(msg.contains("`alm.exact_blocks`"), "{msg}");
    // Teacher is regression; classification with several targets is rejected.
    let msg = toml_err("[data]\nsource = \"teacher\"\ntask = \"classification\"\n");
    assert!(msg.contains("`data.task`"), "{msg}");
    let msg = with(&["data.target=[\"a\", \"b\"]"]).unwrap_err();
    assert!(msg.contains("`data.target`"), "{msg}");
    let msg = toml_err(
        "[data]\nsource = \"teacher\"\n[data.teacher]\nsizes = [5, 4, 1]\nzero_rows = [4]\n",
    );
    assert!(msg.contains("`data.teacher.zero_rows[0]`"), "{msg}");
    let msg = toml_err("[data]\nsource = \"idx\"\nimages = \"a\"\n");
    assert!(msg.contains("`data.labels`"), "{msg}");
    let msg = toml_err("[model]\nhidden = [3]\n");
    assert!(msg.contains("`data.source`"), "{msg}");
}

#[test]
fn to_toml_round_trips() {
    let teacher = config_from_str("[data]\nsource = \"teacher\"\n", &[]).unwrap();
    let digits_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/digits.toml");
    for c in [load_config(Some(&digits_file), &[]).unwrap(), teacher] {
        let text = c.to_toml();
        let back = config_from_str(&text, &[]).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, c, "{text}");
    }
    let c = load_config(
        Some(&digits_file),
        &sets(&[
            "train.max_seconds=12.5",
            "data.classes=10",
            "model.input_groups=cols",
        ]),
    )
    .unwrap();
    assert_eq!(config_from_str(&c.to_toml(), &[]).unwrap(), c);
    // Relative paths are saved absolute, so a saved config reloads from anywhere.
    let rel = with(&["data.path=rel/x.csv"]).unwrap().to_toml();
    let cwd = std::env::current_dir().unwrap();
    assert!(
        rel.contains(&cwd.join("rel/x.csv").display().to_string()),
        "{rel}"
    );
}

#[test]
fn bad_values_are_blamed_on_their_origin() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("run.toml");
    std::fs::write(&p, "[data]\nsource = \"teacher\"\n[train]\nlambda = -2\n").unwrap();
    // A bad value in the file names the file.
    let msg = load_config(Some(&p), &[]).unwrap_err().to_string();
    assert!(
        msg.contains("run.toml") && msg.contains("`train.lambda`") && !msg.contains("--set"),
        "{msg}"
    );
    // The same field overridden with a bad value names the override, not the file.
    let msg = load_config(Some(&p), &sets(&["train.lambda=-1"]))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("from --set train.lambda=-1") && !msg.contains("run.toml"),
        "{msg}"
    );
    // Wrong types, unknown keys and list items from --set are blamed on it too.
    for (set, field) in [
        ("sgd.batch=1.5", "`sgd.batch`"),
        ("alm.rhoo=3", "`alm.rhoo`"),
        ("model.hidden=[8, 0]", "`model.hidden[1]`"),
        ("optim.lr=3", "`optim`"),
    ] {
        let msg = load_config(Some(&p), &sets(&[set]))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(field) && msg.contains(&format!("from --set {set}")),
            "{msg}"
        );
    }
    // A good override leaves a bad file value blamed on the file.
    let msg = load_config(Some(&p), &sets(&["train.seed=3"]))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("run.toml") && !msg.contains("--set"), "{msg}");
}

#[test]
fn accepted_spellings_and_inferred_sources() {
    let c = with(&["model.input_groups=columns", "model.output_groups=col"]).unwrap();
    assert_eq!(
        (c.model.input_groups, c.model.output_groups),
        (Axis::Cols, Axis::Cols)
    );
    let c = with(&["model.input_groups=row"]).unwrap();
    assert_eq!(c.model.input_groups, Axis::Rows);
    let c = config_from_str("[data]\npath = \"a.csv\"\ntarget = \"y\"\n", &[]).unwrap();
    assert!(matches!(&c.data.source, DataSource::Csv { target, .. } if target == &["y"]));
    let c = config_from_str("[data]\nimages = \"i\"\nlabels = \"l\"\n", &[]).unwrap();
    assert!(matches!(c.data.source, DataSource::Idx { .. }));
    assert_eq!(c.data.task, Task::Classification);
    let c = config_from_str(
        "[data]\nx = \"x.npy\"\ny = \"y.npy\"\ntask = \"regression\"\n",
        &[],
    )
    .unwrap();
    assert!(matches!(
        c.data.source,
        DataSource::Npy { test_x: None, .. }
    ));
    // The default zero rows [10, 5], padded or cut to one per hidden teacher layer.
    for (sizes, zero_rows) in [
        ("[20, 16, 8, 4, 1]", vec![10, 5, 0]),
        ("[20, 16, 1]", vec![10]),
    ] {
        let text = format!("[data.teacher]\nsizes = {sizes}\n");
        match config_from_str(&text, &[]).unwrap().data.source {
            DataSource::Teacher(p) => assert_eq!(p.zero_rows, zero_rows),
            other => panic!("{other:?}"),
        }
    }
}
