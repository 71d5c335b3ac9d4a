//! IDX reader (the MNIST format): big-endian magic `0x0000_08NN` (unsigned bytes, `NN`
//! dimensions) then `NN` big-endian u32 sizes then the data. Gzip is detected from the
//! first two bytes (`1f 8b`), not the extension, so renamed files still load.
//!
//! The file is read as a stream: the header's dimensions say how many bytes follow, that
//! count is checked against the read limit before anything is allocated, and exactly that
//! many bytes are taken from the (decompressed) stream. A gzip stream that inflates far
//! beyond what its header declares is cut off after a bounded count of surplus bytes.

use super::limits::{
    check_memory, count_rest, human_bytes, limit_reason, open_regular, read_limit, read_up_to,
    TRAILING_COUNT_CAP,
};
use super::DataError;
use std::io::{BufReader, Cursor, Read};
use std::path::Path;

pub(crate) struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

pub(crate) fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let limit = read_limit();
    let (file, size) = open_regular(path, limit).map_err(|e| DataError::read(path, e))?;
    let bad = |msg: String| DataError::Format {
        path: path.to_path_buf(),
        msg,
    };
    let mut file = BufReader::new(file);
    let mut magic = Vec::with_capacity(2);
    read_up_to(&mut file, 2, &mut magic).map_err(|e| DataError::io(path, e))?;
    let gzip = magic == [0x1f, 0x8b];
    let stream = Cursor::new(magic).chain(file);
    let mut stream: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(stream))
    } else {
        Box::new(stream)
    };
    // Read errors of a gzip stream are corrupt data; of a plain file, I/O errors.
    let read_err = |e: std::io::Error| {
        if gzip {
            bad(format!("gzip data is corrupt or truncated: {e}"))
        } else {
            DataError::io(path, e)
        }
    };
    let mut head = Vec::with_capacity(4);
    read_up_to(&mut stream, 4, &mut head).map_err(read_err)?;
    if head.len() < 4 {
        return Err(bad(format!(
            "truncated: {} bytes, too short for an IDX header",
            head.len()
        )));
    }
    if head[0] != 0 || head[1] != 0 {
        return Err(bad(format!(
            "bad IDX magic number 0x{:02x}{:02x}{:02x}{:02x} (expected 0x00000801 for labels or 0x00000803 for images)",
            head[0], head[1], head[2], head[3]
        )));
    }
    if head[2] != 0x08 {
        return Err(bad(format!(
            "unsupported IDX element type 0x{:02x} (only unsigned bytes, 0x08, are supported)",
            head[2]
        )));
    }
    let nd = head[3] as usize;
    if nd == 0 {
        return Err(bad("bad IDX magic number: zero dimensions".into()));
    }
    let head_len = 4 + 4 * nd;
    read_up_to(&mut stream, 4 * nd as u64, &mut head).map_err(read_err)?;
    if head.len() < head_len {
        return Err(bad(format!(
            "truncated IDX header ({} bytes, need {head_len})",
            head.len()
        )));
    }
    let dims: Vec<usize> = head[4..]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or_else(|| bad("IDX dimensions overflow".into()))?;
    if count as u64 > limit {
        return Err(DataError::Limit {
            path: path.to_path_buf(),
            msg: format!(
                "dimensions {dims:?} declare {count} data bytes ({}), above the read limit of {} ({})",
                human_bytes(count as u128),
                human_bytes(u128::from(limit)),
                limit_reason(limit)
            ),
        });
    }
    // The bytes, then as f32 samples by row and by column.
    let what = format!("dimensions {dims:?}");
    check_memory(path, &what, count as u128 * 9)?;
    // A plain file's size is known: a short one is reported without reading it.
    let plain_have = (!gzip).then(|| size.saturating_sub(head_len as u64));
    if let Some(have) = plain_have.filter(|&h| h < count as u64) {
        return Err(bad(format!(
            "truncated: dimensions {dims:?} need {count} data bytes, the file has {have}"
        )));
    }
    let mut data = Vec::with_capacity(if gzip { 0 } else { count });
    let have = read_up_to(&mut stream, count as u64, &mut data).map_err(read_err)?;
    if have < count as u64 {
        return Err(bad(format!(
            "truncated: dimensions {dims:?} need {count} data bytes, the file has {have}"
        )));
    }
    let (extra, more) = count_rest(&mut stream, TRAILING_COUNT_CAP).map_err(read_err)?;
    if extra > 0 {
        return Err(bad(format!(
            "{}{extra} unexpected bytes after the {count} data bytes of dimensions {dims:?}",
            if more { "more than " } else { "" }
        )));
    }
    Ok(IdxArray { dims, data })
}
