//! Output files and terminal presentation: atomic file writes, the default run directory
//! name, the JSON Lines metrics log, pretty JSON files and the plain-text tables the CLI
//! prints. Everything that touches the output directory goes through [`write_atomic`] so a
//! run killed at any moment leaves either the old file or the new one, never half of one.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Distinguishes temp files of concurrent writers inside one process (threads writing to
/// the same directory); the pid distinguishes processes.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write bytes to `path` atomically: temp file in the same directory (unique name), write,
/// fsync, rename over the target. Never leaves a partial file at `path`.
///
/// The temp file must live in the same directory because `rename` is only atomic within
/// one filesystem. On failure the temp file is removed, so no `.tmp` debris accumulates.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: not a file path", path.display()),
        )
    })?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp.{}.{}.{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    ));
    let tmp = dir.join(tmp_name);

    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // Persist the rename itself (the directory entry). Best effort: not every platform lets
    // a directory be opened and synced, and the data is already safe either way.
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`), so no date crate is needed for a directory name.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYYMMDD-HHMMSS` (UTC) for a number of seconds since the Unix epoch.
pub fn utc_stamp(unix_secs: u64) -> String {
    let secs = unix_secs as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}{mo:02}{d:02}-{:02}{:02}{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Seconds since the Unix epoch now (0 if the clock is before 1970, which only a broken
/// clock produces; a wrong directory name is better than a crash).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `runs/<UTC timestamp>` like runs/20261125-103512 (no chrono crate: compute from
/// SystemTime by hand, civil-from-days), made unique with a -2, -3 suffix if it exists.
///
/// Only picks the name; the caller creates the directory (two runs started in the same
/// second in one process would therefore get the same name unless the first created it).
pub fn default_out_dir(base: &Path) -> PathBuf {
    let stamp = utc_stamp(unix_now());
    let first = base.join(&stamp);
    if !first.exists() {
        return first;
    }
    (2u64..)
        .map(|k| base.join(format!("{stamp}-{k}")))
        .find(|p| !p.exists())
        .expect("an unbounded suffix range always finds a free name")
}

/// A JSON Lines metrics log: one record per line. `push` appends in memory and rewrites the
/// whole file atomically (records are small; this keeps the file always valid even if the
/// run is killed); `flush_every` throttles rewrites (at most once per interval, default one
/// second, plus a final [`MetricsLog::finish`], also run on drop).
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    buf: String,
    n: usize,
    flush_every: Duration,
    last_write: Instant,
    dirty: bool,
}

impl MetricsLog {
    /// Creates (or truncates) the log file, so a run with no records yet still leaves an
    /// empty, valid JSONL file behind.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        write_atomic(path, b"")?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            buf: String::new(),
            n: 0,
            flush_every: Duration::from_secs(1),
            last_write: Instant::now(),
            dirty: false,
        })
    }

    /// Continues the log at `path` with its first `keep` records (those a resumed run had
    /// made at the state it resumes from; any written after that state are dropped, the
    /// run makes them again). A missing file reads as empty.
    pub fn resume(path: &Path, keep: usize) -> std::io::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut log = MetricsLog::create(path)?;
        for line in text.lines().take(keep) {
            log.buf.push_str(line);
            log.buf.push('\n');
            log.n += 1;
        }
        log.write()?;
        Ok(log)
    }

    /// Sets the minimum time between rewrites; `Duration::ZERO` rewrites on every push
    /// (tests, or logs with few records).
    pub fn flush_every(mut self, every: Duration) -> Self {
        self.flush_every = every;
        self
    }

    /// Appends one record (serialised compactly on one line) and rewrites the file if the
    /// throttle interval has passed.
    pub fn push<T: serde::Serialize>(&mut self, rec: &T) -> std::io::Result<()> {
        let line = serde_json::to_string(rec).map_err(std::io::Error::other)?;
        self.buf.push_str(&line);
        self.buf.push('\n');
        self.n += 1;
        self.dirty = true;
        if self.last_write.elapsed() >= self.flush_every {
            self.write()?;
        }
        Ok(())
    }

    /// Writes any records not yet on disk. Idempotent.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if self.dirty {
            self.write()?;
        }
        Ok(())
    }

    fn write(&mut self) -> std::io::Result<()> {
        write_atomic(&self.path, self.buf.as_bytes())?;
        self.last_write = Instant::now();
        self.dirty = false;
        Ok(())
    }

    /// Number of records pushed so far.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True before the first push.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The file this log writes.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for MetricsLog {
    /// Best-effort final write, so an early `?` return in the caller does not lose the
    /// throttled tail of the log; errors here cannot be reported and are ignored.
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Serialize `value` pretty to JSON and write_atomic it (with a trailing newline, so the
/// file is friendly to `cat` and line-oriented tools).
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Compact numbers for tables: `digits` significant digits, scientific below 1e-3 or from
/// 1e5 up, trailing zeros trimmed, "inf"/"-inf"/"nan" for non-finite values. Integers
/// part digits are never rounded away (1234.5 with 3 digits prints "1235", not "1.23e3").
pub fn fmt_sig(x: f64, digits: usize) -> String {
    let digits = digits.max(1);
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{:.*e}", digits - 1, x);
        // Trim the mantissa: "1.50e-4" → "1.5e-4", "1.00e7" → "1e7".
        return match s.split_once('e') {
            Some((m, e)) => format!("{}e{}", trim_zeros(m), e),
            None => s,
        };
    }
    let mag = a.log10().floor() as i64;
    let mut dec = (digits as i64 - 1 - mag).max(0) as usize;
    let mut s = format!("{:.*}", dec, x);
    // Rounding may carry into a new digit (9.996 → "10.00"); drop one decimal then.
    let int_digits = s
        .trim_start_matches('-')
        .split('.')
        .next()
        .map_or(0, |p| p.trim_start_matches('0').len());
    if dec > 0 && int_digits as i64 > mag + 1 {
        dec -= 1;
        s = format!("{:.*}", dec, x);
    }
    trim_zeros(&s).to_string()
}

/// [`fmt_sig`] for an optional value: "-" when absent (a measure that does not apply).
pub fn fmt_opt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "-".into(), |v| fmt_sig(v, digits))
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// True for cells that read as numbers (including the placeholders `fmt_sig` produces), so
/// they are right-aligned and digits line up.
fn is_numeric(s: &str) -> bool {
    let t = s.trim().trim_end_matches('%');
    matches!(t, "inf" | "-inf" | "nan" | "-") || (!t.is_empty() && t.parse::<f64>().is_ok())
}

/// A plain-text table renderer for the CLI: headers + rows of strings, right-aligned
/// numbers, column widths computed (in chars, so `λ` and `‖W‖` count as one column each).
#[derive(Clone, Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; short rows are padded with empty cells, extra cells widen the table.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Header line, a dashed rule, one line per row; columns separated by two spaces, no
    /// trailing whitespace. A column is right-aligned (header included) when every
    /// non-empty cell in it is numeric, so mixed text columns stay readable.
    pub fn render(&self) -> String {
        let ncol = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let cell = |r: &Vec<String>, j: usize| r.get(j).cloned().unwrap_or_default();
        let width = |s: &str| s.chars().count();
        let mut widths = vec![0usize; ncol];
        let mut right = vec![true; ncol];
        for j in 0..ncol {
            widths[j] = width(&cell(&self.headers, j));
            for r in &self.rows {
                let c = cell(r, j);
                widths[j] = widths[j].max(width(&c));
                if !c.is_empty() && !is_numeric(&c) {
                    right[j] = false;
                }
            }
        }
        let line = |r: &Vec<String>| {
            let mut s = String::new();
            for j in 0..ncol {
                if j > 0 {
                    s.push_str("  ");
                }
                let c = cell(r, j);
                let pad = widths[j] - width(&c);
                if right[j] {
                    s.extend(std::iter::repeat_n(' ', pad));
                    s.push_str(&c);
                } else {
                    s.push_str(&c);
                    s.extend(std::iter::repeat_n(' ', pad));
                }
            }
            s.trim_end().to_string()
        };
        let mut out = String::new();
        let _ = writeln!(out, "{}", line(&self.headers));
        let total = widths.iter().sum::<usize>() + 2 * ncol.saturating_sub(1);
        let _ = writeln!(out, "{}", "-".repeat(total));
        for r in &self.rows {
            let _ = writeln!(out, "{}", line(r));
        }
        out
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}
