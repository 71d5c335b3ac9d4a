//! Property test of every loader against random and mutated input: CSV, NPY, IDX (plain and
//! gzipped), TOML configs, and model files (safetensors + model.json) get random bytes and
//! random mutations of valid files. Each load must return a value or an error — never
//! panic — and never allocate more than [`ALLOC_BOUND`] for inputs of a few kilobytes: a
//! counting global allocator measures each load's peak (per thread, so tests running in
//! parallel do not disturb each other). Fixed case count and seed, so a run is repeatable.

mod common;
use common::data::{gz_at, gzip_bomb, idx_bytes, npy_bytes, two_class_spec, write};
use common::model_meta;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use sparse_alm::config::{config_from_str, DataConfig, DataSource, Task};
use sparse_alm::data::{load, load_for_eval, Preprocess};
use sparse_alm::model::{self, ModelMeta, Network};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

// ---------------------------------------------------------------------------------------
// Allocation accounting
// ---------------------------------------------------------------------------------------

/// Most bytes a load of a small input may hold at once. Inputs are at most a few KiB, so
/// anything near this means a size taken from the file was allocated unchecked.
const ALLOC_BOUND: isize = 64 << 20;

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    // `try_with`: no accounting while a thread's locals are being torn down.
    let _ = LIVE.try_with(|live| {
        let v = live.get() + delta;
        live.set(v);
        let _ = PEAK.try_with(|p| {
            if v > p.get() {
                p.set(v);
            }
        });
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        account(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            account(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Run `f` and return its result with the most bytes it held at once (on this thread).
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, isize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let r = f();
    (r, PEAK.with(Cell::get) - start)
}

// ---------------------------------------------------------------------------------------
// Valid inputs to mutate
// ---------------------------------------------------------------------------------------

const CSV: &str = "label,a,\"b, quoted\"\n0,1.5,2\n1,\"3\",4\n2,5,6e1\n\n1,7,8\n0,-1,0.5\n";
const CSV_REGRESSION: &str = "y,a,b\n0.5,1,2\n1.5,3,4\n-2,5,6\n3,7,8\n";

fn npy_x() -> Vec<u8> {
    let v: Vec<u8> = (0..8)
        .flat_map(|i| (i as f64 * 0.5).to_le_bytes())
        .collect();
    npy_bytes("<f8", "(4, 2)", &v)
}

fn npy_y() -> Vec<u8> {
    let v: Vec<u8> = [0i64, 1, 1, 0]
        .iter()
        .flat_map(|i| i.to_le_bytes())
        .collect();
    npy_bytes("<i8", "(4,)", &v)
}

fn idx_images() -> Vec<u8> {
    idx_bytes(&[4, 2, 2], &(0..16).map(|i| i * 15).collect::<Vec<u8>>())
}

fn idx_labels() -> Vec<u8> {
    idx_bytes(&[4], &[0, 1, 1, 0])
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    gz_at(bytes, flate2::Compression::fast())
}

fn toml_seed() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/configs/digits.toml")).unwrap()
}

/// A saved model's two files.
fn model_files() -> (Vec<u8>, Vec<u8>) {
    let net = Network::he_init(&[2, 3, 2], 0.1, 1);
    let meta = ModelMeta {
        target: vec!["label".into()],
        class_names: vec!["0".into(), "1".into()],
        program_version: "fuzz".into(),
        ..model_meta(
            &net,
            Task::Classification,
            serde_json::json!({"feature_scale": 1.0, "mean": [0.0, 1.0], "std": [1.0, 2.0]}),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    model::save(dir.path(), &net, &meta).unwrap();
    (
        std::fs::read(dir.path().join("model.safetensors")).unwrap(),
        std::fs::read(dir.path().join("model.json")).unwrap(),
    )
}

// ---------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------

/// One edit: `(kind, position, byte, length)`, positions taken modulo the input's length.
type Edit = (u8, u16, u8, u8);

/// Bytes that matter to the formats: separators, quotes, digits, NPY/IDX header bytes.
const INTERESTING: &[u8] = b",\"\n\r ()'0123456789.-e:\x00\x01\x08\x1b\x7f\x80\xff\x1f\x8b";

fn mutate(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for &(kind, pos, byte, len) in edits {
        let at = if v.is_empty() {
            0
        } else {
            pos as usize % v.len()
        };
        let len = len as usize % 16 + 1;
        let interesting = INTERESTING[byte as usize % INTERESTING.len()];
        match kind % 7 {
            0 => {
                if let Some(b) = v.get_mut(at) {
                    *b = byte;
                }
            }
            1 => {
                if let Some(b) = v.get_mut(at) {
                    *b = interesting;
                }
            }
            2 => v.insert(at.min(v.len()), interesting),
            3 => {
                let end = (at + len).min(v.len());
                v.drain(at.min(end)..end);
            }
            4 => {
                let end = (at + len).min(v.len());
                let piece = v[at.min(end)..end].to_vec();
                let to = (at + byte as usize) % (v.len() + 1);
                v.splice(to..to, piece);
            }
            5 => v.truncate(at),
            _ => {
                // A large number written over a digit run: shapes and sizes far too big.
                let big = b"99999999999999999999";
                let end = (at + len).min(v.len());
                v.splice(at.min(end)..end, big.iter().copied());
            }
        }
    }
    v
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(any::<Edit>(), 1..8)
}

fn random_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..1024)
}

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

fn data_cfg(source: DataSource, task: Task) -> DataConfig {
    DataConfig {
        source,
        task,
        test_fraction: 0.25,
        standardize: true,
        standardize_targets: true,
        ..DataConfig::default()
    }
}

/// Every data loader over `bytes` in the role of each file; the allocation peak of each.
fn load_data_files(bytes: &[u8]) -> Vec<(String, isize)> {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = write(d, "fuzz.bin", bytes);
    let good_x = write(d, "x.npy", npy_x());
    let good_y = write(d, "y.npy", npy_y());
    let good_images = write(d, "images.idx", idx_images());
    let good_labels = write(d, "labels.idx", idx_labels());
    let csv = |task, target: &str| {
        data_cfg(
            DataSource::Csv {
                path: f.clone(),
                target: vec![target.into()],
                test_path: None,
            },
            task,
        )
    };
    let npy_cfg = |x: &Path, y: &Path, task| {
        data_cfg(
            DataSource::Npy {
                x: x.to_path_buf(),
                y: y.to_path_buf(),
                test_x: None,
                test_y: None,
            },
            task,
        )
    };
    let idx_cfg = |i: &Path, l: &Path| {
        data_cfg(
            DataSource::Idx {
                images: i.to_path_buf(),
                labels: l.to_path_buf(),
                test_images: None,
                test_labels: None,
            },
            Task::Classification,
        )
    };
    let configs = [
        ("csv classification", csv(Task::Classification, "label")),
        ("csv regression", csv(Task::Regression, "y")),
        ("npy x", npy_cfg(&f, &good_y, Task::Classification)),
        ("npy y", npy_cfg(&good_x, &f, Task::Regression)),
        ("idx images", idx_cfg(&f, &good_labels)),
        ("idx labels", idx_cfg(&good_images, &f)),
    ];
    let mut peaks = Vec::new();
    for (what, c) in configs {
        let (_, peak) = peak_of(|| load(&c).map(|d| d.train.n()));
        peaks.push((what.to_string(), peak));
    }
    let spec = two_class_spec(Preprocess::default());
    let eval_csv = write(d, "fuzz.csv", bytes);
    let (_, peak) = peak_of(|| load_for_eval(&eval_csv, &spec).map(|d| d.n()));
    peaks.push(("eval csv".into(), peak));
    peaks
}

fn load_model_files(weights: &[u8], json: &[u8]) -> isize {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "model.safetensors", weights);
    write(dir.path(), "model.json", json);
    let (_, peak) = peak_of(|| model::load(dir.path()).map(|(n, _)| n.param_count()));
    peak
}

fn load_toml(bytes: &[u8]) -> isize {
    let text = String::from_utf8_lossy(bytes);
    let (_, peak) = peak_of(|| config_from_str(&text, &[]).map(|c| c.model.hidden.len()));
    peak
}

fn within_bound(peaks: &[(String, isize)]) -> Result<(), TestCaseError> {
    for (what, peak) in peaks {
        prop_assert!(*peak < ALLOC_BOUND, "{what}: peak allocation {peak} bytes");
    }
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        rng_seed: RngSeed::Fixed(0x5eed_0a1a),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_as_any_data_file(bytes in random_bytes()) {
        within_bound(&load_data_files(&bytes))?;
        within_bound(&load_data_files(&gz(&bytes)))?;
    }

    #[test]
    fn mutated_csv(e in edits(), regression in any::<bool>()) {
        let seed = if regression { CSV_REGRESSION } else { CSV };
        within_bound(&load_data_files(&mutate(seed.as_bytes(), &e)))?;
    }

    #[test]
    fn mutated_npy(e in edits(), which in any::<bool>()) {
        let seed = if which { npy_x() } else { npy_y() };
        within_bound(&load_data_files(&mutate(&seed, &e)))?;
    }

    #[test]
    fn mutated_idx_plain_and_gzipped(e in edits(), which in 0u8..4) {
        let seed = if which % 2 == 0 { idx_images() } else { idx_labels() };
        let bytes = if which < 2 {
            gz(&mutate(&seed, &e))
        } else {
            // The compressed stream itself damaged.
            mutate(&gz(&seed), &e)
        };
        within_bound(&load_data_files(&bytes))?;
    }

    #[test]
    fn mutated_toml_config(e in edits(), bytes in random_bytes()) {
        let peak = load_toml(&mutate(toml_seed().as_bytes(), &e));
        prop_assert!(peak < ALLOC_BOUND, "config: peak {peak}");
        let peak = load_toml(&bytes);
        prop_assert!(peak < ALLOC_BOUND, "random config: peak {peak}");
    }

    #[test]
    fn mutated_model_files(e in edits(), which in 0u8..3, bytes in random_bytes()) {
        let (w, j) = model_files();
        let peak = match which {
            0 => load_model_files(&mutate(&w, &e), &j),
            1 => load_model_files(&w, &mutate(&j, &e)),
            _ => load_model_files(&bytes, &j),
        };
        prop_assert!(peak < ALLOC_BOUND, "model: peak {peak}");
    }
}

/// The seeds load, so the mutations start from valid files (a loader that rejected
/// everything would pass the properties above).
#[test]
fn seeds_are_valid() {
    let peaks = load_data_files(CSV.as_bytes());
    assert_eq!(peaks.len(), 7);
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "seed.csv", CSV.as_bytes());
    let c = data_cfg(
        DataSource::Csv {
            path: p,
            target: vec!["label".into()],
            test_path: None,
        },
        Task::Classification,
    );
    assert_eq!(load(&c).unwrap().train.class_names, ["0", "1", "2"]);
    let x = write(dir.path(), "x.npy", npy_x());
    let y = write(dir.path(), "y.npy", npy_y());
    let c = data_cfg(
        DataSource::Npy {
            x,
            y,
            test_x: None,
            test_y: None,
        },
        Task::Classification,
    );
    assert_eq!(load(&c).unwrap().train.d(), 2);
    for (images, labels) in [
        (idx_images(), idx_labels()),
        (gz(&idx_images()), gz(&idx_labels())),
    ] {
        let c = data_cfg(
            DataSource::Idx {
                images: write(dir.path(), "i", &images),
                labels: write(dir.path(), "l", &labels),
                test_images: None,
                test_labels: None,
            },
            Task::Classification,
        );
        assert_eq!(load(&c).unwrap().train.d(), 4);
    }
    config_from_str(&toml_seed(), &[]).unwrap();
    let (w, j) = model_files();
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "model.safetensors", &w);
    write(d.path(), "model.json", &j);
    model::load(d.path()).unwrap();
}

/// The accounting sees a large allocation (the bound can fail).
#[test]
fn the_allocation_bound_can_fail() {
    let (v, peak) = peak_of(|| vec![1u8; ALLOC_BOUND as usize]);
    assert_eq!(v.len(), ALLOC_BOUND as usize);
    assert!(peak >= ALLOC_BOUND, "{peak}");
}

/// A 2 MB gzip that inflates to 2 GiB after a valid header, and headers declaring
/// enormous sizes: each an error, with a small allocation peak.
#[test]
fn bombs_and_huge_declared_sizes_stay_small() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = gzip_bomb(&idx_bytes(&[4], &[0, 1, 1, 0]));
    assert!(bomb.len() < 4 << 20, "{} bytes", bomb.len());
    let huge_idx = gz(&idx_bytes(&[4096, 4096, 4096], &[]));
    let huge_npy = npy_bytes("<f8", "(4611686018427387904, 4611686018427387904)", &[0; 8]);
    let wide_npy = npy_bytes("|u1", "(100000000, 40)", &[0; 8]);
    for (name, bytes) in [
        ("bomb", &bomb),
        ("huge_idx", &huge_idx),
        ("huge_npy", &huge_npy),
        ("wide_npy", &wide_npy),
    ] {
        let p = write(dir.path(), name, bytes);
        let (r, peak) = peak_of(|| {
            let c = data_cfg(
                DataSource::Idx {
                    images: write(dir.path(), "images", idx_images()),
                    labels: p.clone(),
                    test_images: None,
                    test_labels: None,
                },
                Task::Classification,
            );
            let idx_err = load(&c).unwrap_err().to_string();
            let c = data_cfg(
                DataSource::Npy {
                    x: p.clone(),
                    y: write(dir.path(), "y.npy", npy_y()),
                    test_x: None,
                    test_y: None,
                },
                Task::Classification,
            );
            (idx_err, load(&c).unwrap_err().to_string())
        });
        assert!(peak < ALLOC_BOUND, "{name}: peak {peak} ({r:?})");
        assert!(r.0.contains(name) && r.1.contains(name), "{r:?}");
    }
}
