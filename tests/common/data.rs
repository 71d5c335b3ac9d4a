//! Writing data files for the loader tests: configs over a source, files in a tempdir,
//! and the byte layouts of NPY v1.0 and IDX files built by hand (so a test controls every
//! header field, including the wrong ones).

use sparse_alm::config::{DataConfig, DataSource, Task};
use sparse_alm::data::{load, EvalSpec, Preprocess};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `source` for `task`, nothing held out, every other field at its default.
pub fn cfg(source: DataSource, task: Task) -> DataConfig {
    DataConfig {
        source,
        task,
        test_fraction: 0.0,
        ..DataConfig::default()
    }
}

pub fn csv_source(path: &Path, target: &[&str]) -> DataSource {
    DataSource::Csv {
        path: path.to_path_buf(),
        target: target.iter().map(|s| s.to_string()).collect(),
        test_path: None,
    }
}

/// An NPY pair without test files, through [`cfg`].
pub fn npy_cfg(x: PathBuf, y: PathBuf, task: Task) -> DataConfig {
    cfg(
        DataSource::Npy {
            x,
            y,
            test_x: None,
            test_y: None,
        },
        task,
    )
}

/// An IDX pair without test files, for classification, through [`cfg`].
pub fn idx_cfg(images: PathBuf, labels: PathBuf) -> DataConfig {
    cfg(
        DataSource::Idx {
            images,
            labels,
            test_images: None,
            test_labels: None,
        },
        Task::Classification,
    )
}

/// The message of the error loading `c` gives (panics if it loads).
#[track_caller]
pub fn load_err(c: &DataConfig) -> String {
    load(c).expect_err("should fail").to_string()
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// An NPY v1.0 file: `descr` and `shape_txt` (a Python tuple, e.g. `(4, 2)` or `(4,)`)
/// go into the header as given, padded to 64 bytes; `data` follows unchecked.
pub fn npy_bytes(descr: &str, shape_txt: &str, data: &[u8]) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// `v` as little-endian `<f8` bytes.
pub fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The header of an IDX file of unsigned bytes: magic `0x0000_08NN` with `NN` = number
/// of dimensions, then each dimension big-endian.
pub fn idx_header(dims: &[u32]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out
}

/// An IDX file of unsigned bytes: [`idx_header`] then `data`.
pub fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = idx_header(dims);
    out.extend_from_slice(data);
    out
}

/// `bytes` gzipped at `level`.
pub fn gz_at(bytes: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// `bytes` gzipped at the default level.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    gz_at(bytes, flate2::Compression::default())
}

/// The message of a failed load of `text` as `input.csv` with target `label`; asserts
/// that the message names the file (panics if it loads).
#[track_caller]
pub fn csv_err(text: &str, task: Task, classes: Option<usize>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "input.csv", text);
    let mut c = cfg(csv_source(&p, &["label"]), task);
    c.classes = classes;
    let msg = load_err(&c);
    assert!(msg.contains("input.csv"), "the file is not named: {msg}");
    msg
}

/// A gzip bomb: `prefix` then 2 GiB of zeros, as 256 gzip members of 8 MiB of zeros each
/// (about 2 MB compressed). A reader must stop after what `prefix` declares.
pub fn gzip_bomb(prefix: &[u8]) -> Vec<u8> {
    let zeros = vec![0u8; 8 << 20];
    let member = |prefix: &[u8]| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(prefix).unwrap();
        gz.write_all(&zeros).unwrap();
        gz.finish().unwrap()
    };
    let mut bomb = member(prefix);
    let rest = member(&[]);
    for _ in 1..256 {
        bomb.extend_from_slice(&rest);
    }
    bomb
}

/// What `eval` needs to read a 2-feature, 2-class file with target `label`.
pub fn two_class_spec(preprocess: Preprocess) -> EvalSpec {
    EvalSpec {
        task: Task::Classification,
        target: vec!["label".into()],
        n_inputs: 2,
        n_outputs: 2,
        class_names: vec!["0".into(), "1".into()],
        feature_names: vec![],
        preprocess,
    }
}
