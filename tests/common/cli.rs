//! Running the `sparse-alm` binary from a CLI test: the command in the crate's root, its
//! output as text, and the success check that prints both streams when it fails.

use std::path::Path;
use std::process::{Command, Output};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sparse-alm"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The exit code must be `code`; returns stderr (both streams are shown when it is not).
#[track_caller]
pub fn exit_stderr(out: &Output, code: i32) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{stderr}",
        text(&out.stdout)
    );
    stderr
}

/// `train --device cpu ARGS --out OUT`: a run on the CPU backend into `out`.
pub fn train_cpu(out: &Path, args: &[&str]) -> Output {
    let mut all = vec!["train", "--device", "cpu"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", s(out)]);
    run(&all)
}

/// `compare CONFIG --device cpu ARGS --out OUT`: a comparison on the CPU backend into `out`.
pub fn compare_cpu(config: &str, out: &Path, args: &[&str]) -> Output {
    let mut all = vec!["compare", config, "--device", "cpu"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", s(out)]);
    run(&all)
}
