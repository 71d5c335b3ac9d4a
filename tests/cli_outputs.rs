//! Nothing lost, nothing silently wrong: the binary's output directory (refused when not
//! empty, `--force` removes only the tool's own files), `compare` keeping every method's
//! result when one fails, divergence caught when it happens, and memory checked before
//! anything big is allocated. CPU backend, tiny budgets, temporary directories.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::cli::{assert_ok, compare_cpu, exit_stderr, run, s, text, train_cpu};

/// The exit code must be `code`; returns the first line of stderr (no panic in it).
#[track_caller]
fn assert_exit(out: &Output, code: i32) -> String {
    let stderr = exit_stderr(out, code);
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
        .lines()
        .find(|l| l.starts_with("error"))
        .unwrap_or_default()
        .to_string()
}

/// A tiny digits training run into `dir`, with extra flags.
fn train_small(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--passes", "2", "--hidden", "8", "--method", "prox-sgd"];
    args.extend_from_slice(extra);
    train_cpu(dir, &args)
}

/// Names in `dir` (sorted), folders with their contents as `folder/name`.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            for inner in std::fs::read_dir(e.path()).unwrap() {
                let inner = inner.unwrap().file_name();
                out.push(format!("{name}/{}", inner.to_string_lossy()));
            }
        }
        out.push(name);
    }
    out.sort();
    out
}

#[test]
fn a_non_empty_output_directory_is_refused_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    assert_ok(&train_small(&dir, &[]));
    let model = std::fs::read(dir.join("model.safetensors")).unwrap();
    let metrics = std::fs::read(dir.join("metrics.jsonl")).unwrap();
    let before = listing(&dir);
    // A second train, with other settings, and a compare into the same directory.
    let again = train_small(&dir, &["--seed", "7"]);
    let first = assert_exit(&again, 2);
    assert!(first.contains(s(&dir)), "{first}");
    assert!(first.contains("not empty"), "{first}");
    assert!(first.contains("--force"), "{first}");
    let cmp = compare_cpu("configs/teacher.toml", &dir, &[]);
    let first = assert_exit(&cmp, 2);
    assert!(first.contains("--force"), "{first}");
    // Nothing was written, removed or changed.
    assert_eq!(listing(&dir), before);
    assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), model);
    assert_eq!(std::fs::read(dir.join("metrics.jsonl")).unwrap(), metrics);
    // A file where the directory should be is refused as well.
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let first = assert_exit(&train_small(&file, &[]), 2);
    assert!(first.contains("not a directory"), "{first}");
}

#[test]
fn an_empty_existing_output_directory_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let out = train_small(tmp.path(), &[]);
    assert_ok(&out);
    assert!(
        !text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        listing(tmp.path()),
        [
            "config.toml",
            "metrics.jsonl",
            "model.json",
            "model.safetensors"
        ]
    );
}

#[test]
fn force_replaces_an_earlier_compare_and_keeps_other_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cmp");
    let compare = |methods: &str, force: bool| {
        let mut args = vec![
            "compare",
            "configs/digits.toml",
            "--methods",
            methods,
            "--passes",
            "2",
            "--set",
            "model.hidden=[8]",
            "--device",
            "cpu",
            "--out",
            s(&dir),
        ];
        if force {
            args.push("--force");
        }
        run(&args)
    };
    assert_ok(&compare("prox-adam,prox-gd", false));
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    std::fs::write(dir.join("prox-gd/mine.txt"), "mine too").unwrap();
    let out = compare("prox-sgd", true);
    assert_ok(&out);
    let stderr = text(&out.stderr);
    let notice: Vec<&str> = stderr.lines().filter(|l| l.contains("--force")).collect();
    assert_eq!(notice.len(), 1, "one line says what --force did:\n{stderr}");
    assert!(notice[0].contains("removed"), "{}", notice[0]);
    assert!(notice[0].contains(s(&dir)), "{}", notice[0]);
    // The earlier run's method folders and logs are gone (prox-gd/ stays for the user's
    // file, without its model); the user's files are untouched.
    assert_eq!(
        listing(&dir),
        [
            "compare.json",
            "config.toml",
            "metrics-prox-sgd.jsonl",
            "notes.txt",
            "prox-gd",
            "prox-gd/mine.txt",
            "prox-sgd",
            "prox-sgd/model.json",
            "prox-sgd/model.safetensors",
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("prox-gd/mine.txt")).unwrap(),
        "mine too"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("compare.json")).unwrap()).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["method"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["prox-sgd"]);
}

/// The error lines of a diverged `train`: exit 1, what the message must say, and no model
/// files (the configuration and the metrics log up to the divergence stay).
#[track_caller]
fn assert_diverged(out: &Output, dir: &Path, wants: &[&str]) -> String {
    let first = assert_exit(out, 1);
    for want in wants {
        assert!(first.contains(want), "`{want}` missing: {first}");
    }
    assert_eq!(listing(dir), ["config.toml", "metrics.jsonl"]);
    first
}

/// A quiet CPU `train` with `args` on the default digits problem and its full 300-pass
/// budget into a fresh directory, which must diverge as [`assert_diverged`] checks with
/// `wants`; returns the temporary directory (kept alive) and the run directory.
#[track_caller]
fn diverging_run(args: &[&str], wants: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut all = args.to_vec();
    all.push("--quiet");
    let out = train_cpu(&dir, &all);
    assert_diverged(&out, &dir, wants);
    (tmp, dir)
}

#[test]
fn a_diverging_prox_sgd_stops_at_its_first_record_with_exit_1() {
    let (_tmp, dir) = diverging_run(
        &["--method", "prox-sgd", "--set", "sgd.lr=100"],
        &[
            "prox-sgd diverged at sgd epoch 1",
            "passes)",
            "(P0) is NaN",
            "--set sgd.lr=10, now 100",
            "--standardize",
            "train.keep_diverged",
        ],
    );
    // It stopped at once: the log holds the one record that showed it.
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 1, "{log}");
}

#[test]
fn an_exploding_prox_adam_stops_with_exit_1() {
    diverging_run(
        &["--method", "prox-adam", "--set", "adam.lr=10"],
        &[
            "prox-adam diverged at adam epoch",
            "exceeds 1e6 × its scale",
            "--set adam.lr=1, now 10",
        ],
    );
}

#[test]
fn keep_diverged_saves_the_last_finite_state() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let out = train_small(
        &dir,
        &["--set", "sgd.lr=100", "--set", "train.keep_diverged=true"],
    );
    assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: prox-sgd diverged at sgd epoch 1"),
        "{stderr}"
    );
    assert!(
        text(&out.stdout).contains("DIVERGED"),
        "{}",
        text(&out.stdout)
    );
    let (net, meta) = sparse_alm::model::load(&dir).unwrap();
    assert!(
        meta.metrics["diverged"]
            .as_str()
            .is_some_and(|d| d.contains("(P0) is NaN")),
        "{}",
        meta.metrics
    );
    assert!(meta.metrics["p0"].as_f64().is_some_and(f64::is_finite));
    // The first record already diverged, so the last finite state is the shared He
    // initialisation (model.init_seed = 0, α = 0.1 of the digits config).
    let init = sparse_alm::model::Network::he_init(&net.sizes(), 0.1, 0);
    assert_eq!(net.w, init.w);
    assert_eq!(net.b, init.b);
}

#[test]
fn compare_keeps_the_methods_that_succeed_when_one_diverges() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cmp");
    let out = compare_cpu(
        "configs/teacher.toml",
        &dir,
        &[
            "--methods",
            "prox-sgd,prox-gd",
            "--set",
            "sgd.lr=100",
            "--passes",
            "5",
            "--set",
            "model.hidden=[8]",
        ],
    );
    let first = assert_exit(&out, 1);
    assert!(
        first.contains("1 of 2 methods failed (prox-sgd)"),
        "{first}"
    );
    let stdout = text(&out.stdout);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("prox-sgd "))
        .unwrap_or_else(|| panic!("no prox-sgd row:\n{stdout}"));
    assert!(row.ends_with("FAILED"), "{row}");
    assert!(
        stdout.contains("prox-sgd FAILED: prox-sgd diverged"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("compare.json")).unwrap()).unwrap();
    let arr = json.as_array().unwrap();
    assert_eq!(arr.len(), 2, "{json}");
    assert_eq!(arr[0]["method"], "prox-sgd");
    assert!(
        arr[0]["failed"]
            .as_str()
            .is_some_and(|r| r.contains("diverged") && r.contains("sgd.lr")),
        "{}",
        arr[0]
    );
    assert_eq!(arr[1]["method"], "prox-gd");
    assert!(arr[1].get("failed").is_none(), "{}", arr[1]);
    assert!(arr[1]["p0"].as_f64().is_some_and(f64::is_finite));
    sparse_alm::model::load(&dir.join("prox-gd")).expect("prox-gd's model is saved");
    assert!(
        !dir.join("prox-sgd").exists(),
        "no model for the failed method"
    );
    assert!(dir.join("metrics-prox-sgd.jsonl").is_file());
}

#[test]
fn a_run_too_big_for_memory_is_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // 64-100000-100000-10 on digits: 1e10 parameters, 40 GB each copy; with the
    // solver's workspaces about half a terabyte on the CPU backend. This used to abort
    // in the allocator (`memory allocation of 40000000000 bytes failed`).
    for device in ["cpu", "auto"] {
        let out = run(&[
            "train",
            "--hidden",
            "100000,100000",
            "--device",
            device,
            "--out",
            s(&dir),
        ]);
        let first = assert_exit(&out, 2);
        for want in [
            "of host memory",
            "GiB",
            "available (MemAvailable)",
            "--hidden",
        ] {
            assert!(first.contains(want), "{device}: `{want}` missing: {first}");
        }
        assert!(!dir.exists(), "nothing is created for a refused run");
    }
    // The same for compare, whose methods run one after another.
    let out = compare_cpu(
        "configs/digits.toml",
        &dir,
        &["--set", "model.hidden=[100000,100000]"],
    );
    let first = assert_exit(&out, 2);
    assert!(first.contains("of host memory"), "{first}");
}

/// The arguments of a small `train` run into `dir` whose checkpoints resume it.
fn resumable(dir: &Path) -> Vec<String> {
    [
        "--device",
        "cpu",
        "--passes",
        "80",
        "--hidden",
        "12,8",
        "--set",
        "warm.passes=15",
        "--checkpoint-seconds",
        "inf",
        "--quiet",
        "--out",
        s(dir),
    ]
    .map(String::from)
    .to_vec()
}

/// `--resume` after a run stopped mid-way: the in-process run stops right after a
/// checkpoint in the ALM phase of warm+alm (as if killed there), leaving its configuration,
/// metrics and checkpoint but no model; the binary's `train --resume` finishes it with the
/// very model file an uninterrupted run writes, and removes the checkpoint.
#[test]
fn train_resume_finishes_an_interrupted_run_with_the_same_model() {
    use sparse_alm::app::{self, TrainOptions};
    use sparse_alm::solver::checkpoint::Stop;
    let tmp = tempfile::tempdir().unwrap();
    let (full, cut) = (tmp.path().join("full"), tmp.path().join("cut"));
    let mut args = vec!["train".to_string()];
    args.extend(resumable(&full));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_ok(&run(&args));
    let full_records = std::fs::read_to_string(full.join("metrics.jsonl")).unwrap();
    let records = full_records.lines().count();
    assert!(!full.join("checkpoint.safetensors").exists());

    // The same run in-process (the flags as the binary turns them into overrides).
    let sets = [
        "train.device=\"cpu\"",
        "train.max_passes=80",
        "model.hidden=[12,8]",
        "warm.passes=15",
        "train.checkpoint_seconds=inf",
    ];
    let opts = TrainOptions {
        run: app::RunArgs {
            sets: sets.map(String::from).to_vec(),
            out: Some(cut.clone()),
            verbosity: app::Verbosity {
                quiet: true,
                verbose: false,
            },
            ..Default::default()
        },
        // warm+alm: 7 records of the warm start, then 3 of the ALM.
        stop: Some(Stop::AfterRecords(records - 1)),
    };
    match app::train(&opts, &mut |_| {}) {
        Err(sparse_alm::Error::Interrupted(p)) => {
            assert_eq!(p, cut.join("checkpoint.safetensors"))
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("the run was not stopped"),
    }
    assert_eq!(
        listing(&cut),
        ["checkpoint.safetensors", "config.toml", "metrics.jsonl"]
    );
    let state = sparse_alm::solver::checkpoint::load(&cut.join("checkpoint.safetensors")).unwrap();
    assert_eq!((state.phase.as_str(), state.started), ("alm", true));
    assert_eq!(
        std::fs::read_to_string(cut.join("config.toml")).unwrap(),
        std::fs::read_to_string(full.join("config.toml")).unwrap()
    );

    // Flags beside --resume are refused (the run continues with its own config).
    let first = assert_exit(&run(&["train", "--resume", s(&cut), "--passes", "80"]), 2);
    assert!(first.contains("--resume"), "{first}");
    let out = run(&["train", "--resume", s(&cut), "--quiet"]);
    assert_ok(&out);
    assert_eq!(
        std::fs::read(cut.join("model.safetensors")).unwrap(),
        std::fs::read(full.join("model.safetensors")).unwrap(),
        "the resumed run's model differs from the uninterrupted run's"
    );
    assert_eq!(
        listing(&cut),
        [
            "config.toml",
            "metrics.jsonl",
            "model.json",
            "model.safetensors"
        ]
    );
    // The metrics log holds the whole run: the same records (wall time aside).
    let fields = |text: &str| -> Vec<(String, String)> {
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["passes"].to_string(), v["p0"].to_string())
            })
            .collect()
    };
    let resumed = std::fs::read_to_string(cut.join("metrics.jsonl")).unwrap();
    assert_eq!(fields(&resumed), fields(&full_records));
    // Nothing is left to resume.
    let first = assert_exit(&run(&["train", "--resume", s(&cut)]), 2);
    assert!(first.contains("no checkpoint"), "{first}");
}
