//! Bounds on every read of user input, so a hostile or mistaken file is an error and never
//! a hang or an out-of-memory abort: only regular files are opened (a FIFO or `/dev/zero`
//! would block or never end), a file or a decompressed stream may hold at most
//! [`read_limit`] bytes, and sizes declared inside a file (NPY shapes, IDX dimensions) are
//! multiplied with overflow checks and compared with that limit before anything is
//! allocated. Also the escaping of input text quoted in messages, so raw control characters
//! from a file never reach the terminal.

use super::DataError;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The most bytes one file (or one decompressed stream) may hold, whatever the memory.
pub const MAX_READ_BYTES: u64 = 4 << 30;

/// Trailing bytes counted (and discarded) after a stream's declared data, before giving up
/// counting: enough for an exact figure in the usual case, bounded for a gzip bomb.
pub(crate) const TRAILING_COUNT_CAP: u64 = 1 << 20;

/// Memory the kernel reports as available for new allocations (`MemAvailable` of
/// `/proc/meminfo`), in bytes; `None` where that is unknown (other systems).
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The most bytes one read may produce: [`MAX_READ_BYTES`], lowered to half the available
/// memory (the parsed arrays take about as much again as the bytes read).
pub fn read_limit() -> u64 {
    match available_memory() {
        Some(avail) => MAX_READ_BYTES.min(avail / 2).max(1 << 20),
        None => MAX_READ_BYTES,
    }
}

/// Refuse a load that would need more memory than is available (`need` bytes for the
/// arrays it builds, `what` says which), before building them: an error is better than
/// the allocator aborting the process, or the system swapping.
pub(crate) fn check_memory(path: &Path, what: &str, need: u128) -> Result<(), DataError> {
    match available_memory() {
        Some(avail) if need > u128::from(avail) => Err(DataError::Limit {
            path: path.to_path_buf(),
            msg: format!(
                "{what}: loading it needs about {} of memory, more than the {} available",
                human_bytes(need),
                human_bytes(u128::from(avail))
            ),
        }),
        _ => Ok(()),
    }
}

/// `n` bytes for people: `512 B`, `3.2 MiB`, `4.0 GiB`.
pub fn human_bytes(n: u128) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Why a file could not be read within the bounds.
#[derive(Debug)]
pub(crate) enum ReadError {
    Io(io::Error),
    /// Not a regular file: what it is instead (`a directory`, `a FIFO`, …).
    NotAFile(&'static str),
    /// The file holds `size` bytes, more than `limit`.
    TooLarge {
        size: u64,
        limit: u64,
    },
}

impl ReadError {
    /// As an [`io::Error`] with the whole explanation, for callers whose error type wraps
    /// I/O errors (configuration and model files).
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            ReadError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidInput, other.explain()),
        }
    }

    /// The explanation of a bound that was hit (I/O errors explain themselves).
    pub(crate) fn explain(&self) -> String {
        match self {
            ReadError::Io(e) => e.to_string(),
            ReadError::NotAFile(kind) => {
                format!("not a regular file ({kind}); give the path of a file")
            }
            ReadError::TooLarge { size, limit } => format!(
                "the file is {} ({size} bytes), above the read limit of {} ({limit} bytes: {})",
                human_bytes(u128::from(*size)),
                human_bytes(u128::from(*limit)),
                limit_reason(*limit)
            ),
        }
    }
}

/// Why the limit is what it is, for messages.
pub(crate) fn limit_reason(limit: u64) -> &'static str {
    if limit < MAX_READ_BYTES {
        "half the available memory"
    } else {
        "the per-file maximum"
    }
}

/// What a non-regular file is, by its type.
fn kind_of(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_dir() {
        "a directory"
    } else {
        "not a plain file"
    }
}

/// Open `path` for reading if it is a regular file of at most `limit` bytes; returns the
/// file and its size. The type is checked before opening: opening a FIFO blocks until a
/// writer appears.
pub(crate) fn open_regular(path: &Path, limit: u64) -> Result<(File, u64), ReadError> {
    let meta = std::fs::metadata(path).map_err(ReadError::Io)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotAFile(kind_of(&meta.file_type())));
    }
    let file = File::open(path).map_err(ReadError::Io)?;
    // Checked again on the open file, in case the path was swapped in between.
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotAFile(kind_of(&meta.file_type())));
    }
    let size = meta.len();
    if size > limit {
        return Err(ReadError::TooLarge { size, limit });
    }
    Ok((file, size))
}

/// The whole of a regular file of at most `limit` bytes. Reads at most `limit + 1` bytes
/// even if the file grows while being read.
pub(crate) fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let (file, size) = open_regular(path, limit)?;
    let mut out = Vec::with_capacity(size as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(ReadError::Io)?;
    if out.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            size: out.len() as u64,
            limit,
        });
    }
    Ok(out)
}

/// Up to `n` bytes from `r` (fewer only at the end of the stream), appended to `out`;
/// the buffer grows with what arrives, so a large `n` costs nothing up front.
pub(crate) fn read_up_to(r: &mut impl Read, n: u64, out: &mut Vec<u8>) -> io::Result<u64> {
    let before = out.len();
    r.take(n).read_to_end(out)?;
    Ok((out.len() - before) as u64)
}

/// Count (and discard) what is left in `r`, stopping at `cap`: `(count, reached_cap)`.
pub(crate) fn count_rest(r: &mut impl Read, cap: u64) -> io::Result<(u64, bool)> {
    let n = io::copy(&mut r.take(cap.saturating_add(1)), &mut io::sink())?;
    Ok((n.min(cap), n > cap))
}

/// Longest piece of input quoted in a message.
const QUOTE_MAX_CHARS: usize = 80;

/// Input text made safe to print: control characters (escape sequences, carriage returns,
/// newlines, …) written as Rust escapes (`\u{1b}`, `\r`), and anything past 80 characters
/// cut with `…`, so a message can neither drive the terminal nor flood it.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(4 * QUOTE_MAX_CHARS));
    for (i, c) in s.chars().enumerate() {
        if i == QUOTE_MAX_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`escape`] for a path.
pub fn escape_path(p: &Path) -> String {
    let s = p.display().to_string();
    // Paths are not cut: the user needs the whole name to find the file.
    s.chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect()
}
