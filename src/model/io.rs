//! The on-disk format of a network: `model.safetensors` (tensors `w1`,`b1`,…, f32, biases
//! 1-D, header bytes in a fixed order) beside `model.json` ([`ModelMeta`]). [`save`] and
//! [`load`] validate, so a damaged or mismatched file is reported by name instead of
//! producing a silently wrong network.

use super::{MResult, ModelError, Network, FORMAT_VERSION, META_FILE, WEIGHTS_FILE};
use crate::backend::{Axis, LossKind};
use crate::data::Task;
use ndarray::Array2;
use std::path::{Path, PathBuf};

/// Metadata saved beside the weights as model.json.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ModelMeta {
    /// [`FORMAT_VERSION`]; checked first on load so a future format fails clearly.
    pub format_version: u32,
    pub sizes: Vec<usize>,
    pub alpha: f64,
    pub lambda: f64,
    pub loss: LossKind,
    pub input_groups: Axis,
    pub output_groups: Axis,
    pub task: Task,
    pub method: String,
    pub seed: u64,
    pub init_seed: u64,
    pub target: Vec<String>,
    pub class_names: Vec<String>,
    /// The input features in the order the network reads them (empty in files written
    /// before names were stored); `eval` and `predict` match data columns by these.
    #[serde(default)]
    pub feature_names: Vec<String>,
    /// `data::Preprocess` serialised by the caller (keeps model.rs independent of data).
    pub preprocess: serde_json::Value,
    /// Final measures, free-form object.
    pub metrics: serde_json::Value,
    pub created_unix: u64,
    pub program_version: String,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes DIR/model.safetensors (tensors "w1","b1",… f32; b as 1-D) and DIR/model.json,
/// each atomically (output::write_atomic). Creates DIR.
///
/// Refuses a network that `load` would reject (inconsistent shapes, α outside (0,1),
/// `meta.sizes` ≠ the network's sizes, non-finite weights), so a saved model always loads.
/// The weights are written first: a run killed between the two writes leaves a stale or
/// missing model.json, which `load` reports, rather than new metadata describing old weights.
pub fn save(dir: &Path, net: &Network, meta: &ModelMeta) -> Result<(), ModelError> {
    save_with(dir, net, meta, &serde_json::Map::new())
}

/// [`save`] with `extra` top-level entries in model.json beside the [`ModelMeta`] fields
/// (an export's self-description: activations, layer list, compaction); [`load`] reads
/// the [`ModelMeta`] fields and ignores them. An entry may not replace a meta field.
pub fn save_with(
    dir: &Path,
    net: &Network,
    meta: &ModelMeta,
    extra: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), ModelError> {
    net.validate()?;
    if meta.sizes != net.sizes() {
        return Err(ModelError::Invalid(format!(
            "meta.sizes {:?} differ from the network's sizes {:?}",
            meta.sizes,
            net.sizes()
        )));
    }
    if !(meta.alpha > 0.0 && meta.alpha < 1.0 && meta.lambda.is_finite()) {
        return Err(ModelError::Invalid(format!(
            "meta.alpha = {} must be in (0, 1) and meta.lambda = {} finite",
            meta.alpha, meta.lambda
        )));
    }
    let wpath = dir.join(WEIGHTS_FILE);
    let mpath = dir.join(META_FILE);

    // Little-endian bytes built by hand: safetensors is LE by definition, and this avoids
    // any alignment or endianness assumption about the host.
    let mut bufs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(2 * net.layers());
    for (l, (w, b)) in net.w.iter().zip(&net.b).enumerate() {
        for (name, m, shape) in [
            (format!("w{}", l + 1), w, vec![w.nrows(), w.ncols()]),
            (format!("b{}", l + 1), b, vec![b.nrows()]),
        ] {
            let mut bytes = Vec::with_capacity(m.len() * 4);
            // `iter()` visits in logical row-major order whatever the memory layout.
            for (i, &v) in m.iter().enumerate() {
                if !v.is_finite() {
                    return Err(ModelError::NonFinite {
                        path: wpath,
                        tensor: name,
                        index: i,
                        value: v,
                    });
                }
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            bufs.push((name, shape, bytes));
        }
    }
    let st = safetensors_bytes(&bufs);
    let json_err = |source| ModelError::Json {
        path: mpath.clone(),
        source,
    };
    // Without extras the struct is written directly, keeping its field order.
    let mut js = if extra.is_empty() {
        serde_json::to_vec_pretty(meta).map_err(json_err)?
    } else {
        let mut value = serde_json::to_value(meta).map_err(json_err)?;
        if let Some(obj) = value.as_object_mut() {
            for (k, v) in extra {
                if obj.insert(k.clone(), v.clone()).is_some() {
                    return Err(ModelError::Invalid(format!(
                        "model.json entry `{k}` would replace a metadata field"
                    )));
                }
            }
        }
        serde_json::to_vec_pretty(&value).map_err(json_err)?
    };
    js.push(b'\n');

    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    crate::output::write_atomic(&wpath, &st).map_err(io_err(&wpath))?;
    crate::output::write_atomic(&mpath, &js).map_err(io_err(&mpath))?;
    Ok(())
}

/// The safetensors file of `tensors` (name, shape, little-endian f32 bytes), written
/// here rather than by `safetensors::serialize` so the header is the same bytes on every
/// run (that function takes the `__metadata__` as a `HashMap`, whose order changes from
/// process to process): a JSON object with its keys in sorted order, padded with spaces to
/// a multiple of 8 bytes, after its length as a little-endian u64; then the tensors' data
/// in the order given. `load` reads it back through the `safetensors` crate.
fn safetensors_bytes(tensors: &[(String, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    use serde_json::{json, Value};
    use std::collections::BTreeMap;
    let mut header: BTreeMap<String, Value> = BTreeMap::new();
    let info: BTreeMap<&str, String> = [
        ("format", "sparse-alm".to_string()),
        ("format_version", FORMAT_VERSION.to_string()),
    ]
    .into_iter()
    .collect();
    header.insert("__metadata__".into(), json!(info));
    let mut offset = 0usize;
    for (name, shape, bytes) in tensors {
        let end = offset + bytes.len();
        let mut entry: BTreeMap<&str, Value> = BTreeMap::new();
        entry.insert("dtype", json!("F32"));
        entry.insert("shape", json!(shape));
        entry.insert("data_offsets", json!([offset, end]));
        header.insert(name.clone(), json!(entry));
        offset = end;
    }
    // Serialising string keys and numbers cannot fail.
    let mut head = serde_json::to_vec(&header).unwrap_or_default();
    while !head.len().is_multiple_of(8) {
        head.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + head.len() + offset);
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(&head);
    for (_, _, bytes) in tensors {
        out.extend_from_slice(bytes);
    }
    out
}

/// Reads a model file within the read bounds (a regular file, at most the read limit).
fn read_file(path: &Path) -> MResult<Vec<u8>> {
    crate::data::read_regular(path, crate::data::read_limit()).map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        source: e.into_io(),
    })
}

/// Resolves a user path to `(weights, meta)`: a directory holds `model.safetensors` and
/// `model.json`; a `.safetensors` or `.json` file has the other as a same-stem sibling.
fn resolve(path: &Path) -> MResult<(PathBuf, PathBuf)> {
    if path.is_dir() {
        return Ok((path.join(WEIGHTS_FILE), path.join(META_FILE)));
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => Ok((path.to_path_buf(), path.with_extension("json"))),
        Some("json") => Ok((path.with_extension("safetensors"), path.to_path_buf())),
        // A missing directory: report the file we would have read in it.
        None if !path.exists() => Ok((path.join(WEIGHTS_FILE), path.join(META_FILE))),
        _ => Err(ModelError::BadPath {
            path: path.to_path_buf(),
        }),
    }
}

/// Parses and validates model.json: the version is checked on the raw JSON before the
/// typed parse, so a newer file fails with "unknown format_version" rather than a
/// confusing missing-field error.
fn read_meta(mpath: &Path) -> MResult<ModelMeta> {
    let text = read_file(mpath)?;
    let v: serde_json::Value =
        serde_json::from_slice(&text).map_err(|source| ModelError::Json {
            path: mpath.to_path_buf(),
            source,
        })?;
    let meta_err = |field: &str, msg: String| ModelError::Meta {
        path: mpath.to_path_buf(),
        field: field.into(),
        msg,
    };
    match v.get("format_version") {
        None => return Err(meta_err("format_version", "missing".into())),
        Some(fv) if fv.as_u64() == Some(u64::from(FORMAT_VERSION)) => {}
        Some(fv) => {
            return Err(ModelError::FormatVersion {
                path: mpath.to_path_buf(),
                found: fv.to_string(),
                supported: FORMAT_VERSION,
            })
        }
    }
    let meta: ModelMeta = serde_json::from_value(v).map_err(|source| ModelError::Json {
        path: mpath.to_path_buf(),
        source,
    })?;
    if meta.sizes.len() < 2 {
        return Err(meta_err(
            "sizes",
            format!(
                "{:?} needs at least an input and an output size",
                meta.sizes
            ),
        ));
    }
    if let Some(i) = meta.sizes.iter().position(|&n| n == 0) {
        return Err(meta_err(
            "sizes",
            format!("{:?} has a zero at position {i}", meta.sizes),
        ));
    }
    if !(meta.alpha > 0.0 && meta.alpha < 1.0) {
        return Err(meta_err(
            "alpha",
            format!("{} is not in (0, 1)", meta.alpha),
        ));
    }
    // The preprocessing is applied to every input: a zero scale or a NaN statistic would
    // turn every loss into NaN, so it is refused here, by field.
    // Data columns are matched by these names: a wrong count or a repeated name would
    // feed the network the wrong features.
    let d0 = meta.sizes[0];
    if !meta.feature_names.is_empty() && meta.feature_names.len() != d0 {
        return Err(meta_err(
            "feature_names",
            format!(
                "has {} names, the model has {d0} inputs",
                meta.feature_names.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = meta.feature_names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(meta_err(
            "feature_names",
            format!("`{}` appears more than once", crate::data::escape(dup)),
        ));
    }
    let pre: crate::data::Preprocess = serde_json::from_value(meta.preprocess.clone())
        .map_err(|e| meta_err("preprocess", e.to_string()))?;
    let (d, m) = (meta.sizes[0], meta.sizes[meta.sizes.len() - 1]);
    if let Err((field, msg)) = pre.check(d, m) {
        return Err(meta_err(&format!("preprocess.{field}"), msg));
    }
    Ok(meta)
}

/// `path` may be the run directory, model.safetensors or model.json (the other file is
/// its sibling). Validates: json parses, format_version known, every tensor present with
/// the shape meta.sizes implies, dtype f32, no NaN/inf, alpha in (0,1), the stored
/// preprocessing usable (scale positive and finite, statistics finite, stds positive,
/// one per input or output). Errors name the
/// file and the tensor/field. Extra tensors are ignored (room for future additions).
pub fn load(path: &Path) -> Result<(Network, ModelMeta), ModelError> {
    let (wpath, mpath) = resolve(path)?;
    let meta = read_meta(&mpath)?;
    let bytes = read_file(&wpath)?;
    let st =
        safetensors::SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Safetensors {
            path: wpath.clone(),
            msg: e.to_string(),
        })?;

    let read = |name: String, expected: Vec<usize>| -> MResult<Vec<f32>> {
        let t = st.tensor(&name).map_err(|_| ModelError::MissingTensor {
            path: wpath.clone(),
            tensor: name.clone(),
        })?;
        if t.dtype() != safetensors::Dtype::F32 {
            return Err(ModelError::TensorDtype {
                path: wpath.clone(),
                tensor: name,
                found: format!("{:?}", t.dtype()),
            });
        }
        if t.shape() != expected.as_slice() {
            return Err(ModelError::TensorShape {
                path: wpath.clone(),
                tensor: name,
                expected,
                found: t.shape().to_vec(),
            });
        }
        let vals: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some((index, &value)) = vals.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(ModelError::NonFinite {
                path: wpath.clone(),
                tensor: name,
                index,
                value,
            });
        }
        Ok(vals)
    };

    let mut w = Vec::with_capacity(meta.sizes.len() - 1);
    let mut b = Vec::with_capacity(meta.sizes.len() - 1);
    for (l, pair) in meta.sizes.windows(2).enumerate() {
        let (n_in, n_out) = (pair[0], pair[1]);
        let wv = read(format!("w{}", l + 1), vec![n_out, n_in])?;
        let bv = read(format!("b{}", l + 1), vec![n_out])?;
        let shape_err = |e: ndarray::ShapeError| ModelError::Invalid(e.to_string());
        w.push(Array2::from_shape_vec((n_out, n_in), wv).map_err(shape_err)?);
        b.push(Array2::from_shape_vec((n_out, 1), bv).map_err(shape_err)?);
    }
    let net = Network {
        alpha: meta.alpha as f32,
        w,
        b,
    };
    // α close to 1 can round to 1.0 in f32; report it against the field it came from.
    net.validate().map_err(|e| ModelError::Meta {
        path: mpath.clone(),
        field: "alpha".into(),
        msg: e.to_string(),
    })?;
    Ok((net, meta))
}
