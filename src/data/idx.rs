//! IDX reader (the MNIST format): big-endian magic `0x0000_08NN` (unsigned bytes, `NN`
//! dimensions) then `NN` big-endian u32 sizes then the data. Gzip is detected from the
//! first two bytes (`1f 8b`), not the extension, so renamed files still load.

use super::DataError;
use std::io::Read;
use std::path::Path;

pub(crate) struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

pub(crate) fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let bad = |msg: String| DataError::Format {
        path: path.to_path_buf(),
        msg,
    };
    let bytes = if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| bad(format!("gzip data is corrupt or truncated: {e}")))?;
        out
    } else {
        raw
    };
    if bytes.len() < 4 {
        return Err(bad(format!(
            "truncated: {} bytes, too short for an IDX header",
            bytes.len()
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad(format!(
            "bad IDX magic number 0x{:02x}{:02x}{:02x}{:02x} (expected 0x00000801 for labels or 0x00000803 for images)",
            bytes[0], bytes[1], bytes[2], bytes[3]
        )));
    }
    if bytes[2] != 0x08 {
        return Err(bad(format!(
            "unsupported IDX element type 0x{:02x} (only unsigned bytes, 0x08, are supported)",
            bytes[2]
        )));
    }
    let nd = bytes[3] as usize;
    if nd == 0 {
        return Err(bad("bad IDX magic number: zero dimensions".into()));
    }
    let head = 4 + 4 * nd;
    if bytes.len() < head {
        return Err(bad(format!(
            "truncated IDX header ({} bytes, need {head})",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = (0..nd)
        .map(|k| {
            let o = 4 + 4 * k;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or_else(|| bad("IDX dimensions overflow".into()))?;
    let have = bytes.len() - head;
    if have < count {
        return Err(bad(format!(
            "truncated: dimensions {dims:?} need {count} data bytes, the file has {have}"
        )));
    }
    if have > count {
        return Err(bad(format!(
            "{} unexpected bytes after the {count} data bytes of dimensions {dims:?}",
            have - count
        )));
    }
    let mut data = bytes;
    data.drain(..head);
    Ok(IdxArray { dims, data })
}
