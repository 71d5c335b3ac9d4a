//! NPY reader (NumPy's `.npy`, format versions 1–3): little-endian `<f4`, `<f8`, `<i4`,
//! `<i8`, `|u1` (and `<u1`/`|i1`), 1-D or 2-D, C or Fortran order. Values come back as
//! `f64` in C (row-major) order so the caller decides the final type.
//!
//! The data must be exactly what the header's shape declares: fewer bytes is a truncated
//! file, more means the header claims fewer rows than the file holds. Shapes are
//! multiplied with overflow checks, and the decoded values must fit the read limit.

use super::limits::{check_memory, escape, human_bytes, limit_reason, read_limit, read_regular};
use super::DataError;
use std::path::Path;

pub(crate) struct NpyArray {
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f64>,
}

fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pos = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[pos + key.len() + 2..];
    let colon = rest.find(':')?;
    Some(rest[colon + 1..].trim_start())
}

pub(crate) fn read_npy(path: &Path) -> Result<NpyArray, DataError> {
    let limit = read_limit();
    let bytes = read_regular(path, limit).map_err(|e| DataError::read(path, e))?;
    let bad = |msg: String| DataError::Format {
        path: path.to_path_buf(),
        msg,
    };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not an NPY file (missing the \\x93NUMPY magic)".into()));
    }
    let major = bytes[6];
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated NPY header".into()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(bad(format!("unsupported NPY format version {v}"))),
    };
    if bytes.len() < start + hlen {
        return Err(bad("truncated NPY header".into()));
    }
    let header = String::from_utf8_lossy(&bytes[start..start + hlen]).to_string();
    let shown = escape(header.trim());
    let descr = header_value(&header, "descr")
        .and_then(|r| {
            let q = r.chars().next()?;
            r[q.len_utf8()..].split(q).next()
        })
        .ok_or_else(|| bad(format!("NPY header without a dtype: {shown}")))?
        .to_string();
    let fortran = header_value(&header, "fortran_order")
        .map(|r| r.starts_with("True"))
        .unwrap_or(false);
    let shape_raw = header_value(&header, "shape")
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.split(')').next())
        .ok_or_else(|| bad(format!("NPY header without a shape: {shown}")))?;
    let shape_txt = escape(shape_raw);
    let mut shape = Vec::new();
    for s in shape_raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        shape.push(
            s.parse::<usize>()
                .map_err(|_| bad(format!("bad NPY shape ({shape_txt})")))?,
        );
    }
    if shape.is_empty() || shape.len() > 2 {
        return Err(bad(format!(
            "expected a 1-D or 2-D array, got shape ({shape_txt})"
        )));
    }
    let (size, conv): (usize, fn(&[u8]) -> f64) = match descr.as_str() {
        "<f4" => (4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64),
        "<f8" => (8, |b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
        "<i4" => (4, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64),
        "<i8" => (8, |b| {
            i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f64
        }),
        "|u1" | "<u1" | "u1" => (1, |b| b[0] as f64),
        "|i1" | "<i1" | "i1" => (1, |b| b[0] as i8 as f64),
        _ => {
            return Err(DataError::NpyDtype {
                path: path.to_path_buf(),
                dtype: descr,
            })
        }
    };
    let overflow = || {
        bad(format!(
            "shape ({shape_txt}) declares more values than can be addressed"
        ))
    };
    let count = shape
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or_else(overflow)?;
    let need = count.checked_mul(size).ok_or_else(overflow)?;
    let body = &bytes[start + hlen..];
    if body.len() < need {
        return Err(bad(format!(
            "truncated: shape ({shape_txt}) needs {need} data bytes, the file has {}",
            body.len()
        )));
    }
    if body.len() > need {
        return Err(bad(format!(
            "{} unexpected bytes after the {need} data bytes of shape ({shape_txt}): the header declares fewer values than the file holds",
            body.len() - need
        )));
    }
    // Values are decoded to f64: a file of bytes takes 8 times its size.
    let decoded = (count as u128) * 8;
    if decoded > u128::from(limit) {
        return Err(DataError::Limit {
            path: path.to_path_buf(),
            msg: format!(
                "shape ({shape_txt}) holds {count} values, {} once decoded, above the read limit of {} ({})",
                human_bytes(decoded),
                human_bytes(u128::from(limit)),
                limit_reason(limit)
            ),
        });
    }
    // The file, the f64 values, then f32 samples by row and by column.
    let need = bytes.len() as u128 + count as u128 * 16;
    check_memory(path, &format!("shape ({shape_txt})"), need)?;
    let mut data: Vec<f64> = body.chunks_exact(size).map(conv).collect();
    if fortran && shape.len() == 2 {
        // Column-major r×c is row-major c×r: transpose back to row-major r×c.
        let (r, c) = (shape[0], shape[1]);
        let mut t = vec![0.0; count];
        for j in 0..c {
            for i in 0..r {
                t[i * c + j] = data[j * r + i];
            }
        }
        data = t;
    }
    Ok(NpyArray { shape, data })
}
