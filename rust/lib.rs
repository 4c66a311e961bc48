//! perflaw._core: thin PyO3 bindings over the pure kernels.
//!
//! Each binding takes numpy slices (no copy), releases the GIL, runs a kernel
//! on a rayon pool and returns a numpy array. Python normalises input first
//! (perflaw.sequences); the kernels still validate offsets, so bad input can
//! only ever surface as a ValueError.

pub mod apen;
pub mod batch;
pub mod blocks;
pub mod coding;
pub mod dense;
pub mod error;
pub mod fingerprint;
pub mod keycount;
pub mod order;
pub mod packing;
pub mod partition;
pub mod spill;
pub mod stats;
pub mod sums;

use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use std::panic::{self, AssertUnwindSafe};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use batch::{pool, Batch};
use error::KernelError;

/// Window rows and their counts (or group bounds) as numpy arrays.
type WindowArrays<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray1<u64>>);

/// Per-user ApEn, Lempel-Ziv sums and hashes as numpy arrays.
type UserStatsArrays<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<u64>>,
    Bound<'py, PyArray1<u64>>,
);

/// Runs a binding's body; a panic (a bug) becomes a RuntimeError naming the
/// function instead of crossing into Python as a PanicException, which
/// `except Exception` would not catch. Input errors never panic: they are
/// checked first and raised as ValueError.
fn guard<T>(name: &str, body: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => {
            let why = payload
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Err(PyRuntimeError::new_err(format!(
                "perflaw._core.{name} failed internally ({why}); please report it"
            )))
        }
    }
}

impl From<KernelError> for PyErr {
    fn from(err: KernelError) -> PyErr {
        PyValueError::new_err(err.to_string())
    }
}

/// Signed exact-match ApEn(m) of every sequence; NaN where a sequence has <= m items.
#[pyfunction]
#[pyo3(name = "apen", signature = (offsets, items, m, max_len=None, threads=0))]
fn apen_batch<'py>(
    py: Python<'py>,
    offsets: PyReadonlyArray1<'py, i64>,
    items: PyReadonlyArray1<'py, i64>,
    m: usize,
    max_len: Option<usize>,
    threads: usize,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    guard("apen", || {
        let m = error::check_m(m)?;
        let batch = Batch::new(offsets.as_slice()?, items.as_slice()?)?;
        batch.check_lengths(max_len)?;
        let pool = pool(threads)?;
        let values = py.detach(|| batch.map(&pool, max_len, |s, seq| apen::apen(seq, m, s)));
        Ok(values.into_pyarray(py))
    })
}

/// Sum of the Lempel-Ziv match lengths Lambda_i of every sequence.
#[pyfunction]
#[pyo3(name = "lz_lambda_sums", signature = (offsets, items, max_len=None, threads=0))]
fn lz_batch<'py>(
    py: Python<'py>,
    offsets: PyReadonlyArray1<'py, i64>,
    items: PyReadonlyArray1<'py, i64>,
    max_len: Option<usize>,
    threads: usize,
) -> PyResult<Bound<'py, PyArray1<u64>>> {
    guard("lz_lambda_sums", || {
        let batch = Batch::new(offsets.as_slice()?, items.as_slice()?)?;
        batch.check_lengths(max_len)?;
        let pool = pool(threads)?;
        // the window walk of ApEn(2) gives the sum (see `stats::user_stats`)
        let sums =
            py.detach(|| batch.map(&pool, max_len, |s, seq| stats::user_stats(seq, 2, s).lz_sum));
        Ok(sums.into_pyarray(py))
    })
}

/// Stable 64-bit hash of every sequence (its items in order, and its length).
#[pyfunction]
#[pyo3(name = "sequence_hashes", signature = (offsets, items, threads=0))]
fn hashes_batch<'py>(
    py: Python<'py>,
    offsets: PyReadonlyArray1<'py, i64>,
    items: PyReadonlyArray1<'py, i64>,
    threads: usize,
) -> PyResult<Bound<'py, PyArray1<u64>>> {
    guard("sequence_hashes", || {
        let batch = Batch::new(offsets.as_slice()?, items.as_slice()?)?;
        let pool = pool(threads)?;
        let hashes = py.detach(|| stats::sequence_hashes(&batch, &pool));
        Ok(hashes.into_pyarray(py))
    })
}

/// ApEn(m) and the Lempel-Ziv sum of every sequence's last `max_len` items, and
/// the hash of the whole sequence: (apen, lz_sums, hashes).
#[pyfunction]
#[pyo3(name = "user_stats", signature = (offsets, items, m, max_len=None, threads=0))]
fn user_stats_batch<'py>(
    py: Python<'py>,
    offsets: PyReadonlyArray1<'py, i64>,
    items: PyReadonlyArray1<'py, i64>,
    m: usize,
    max_len: Option<usize>,
    threads: usize,
) -> PyResult<UserStatsArrays<'py>> {
    guard("user_stats", || {
        let m = error::check_m(m)?;
        let batch = Batch::new(offsets.as_slice()?, items.as_slice()?)?;
        batch.check_lengths(max_len)?;
        let pool = pool(threads)?;
        let (all, hashes) = py.detach(|| {
            let all = batch.map(&pool, max_len, |s, seq| stats::user_stats(seq, m, s));
            (all, stats::sequence_hashes(&batch, &pool))
        });
        Ok((
            all.iter()
                .map(|u| u.apen)
                .collect::<Vec<_>>()
                .into_pyarray(py),
            all.iter()
                .map(|u| u.lz_sum)
                .collect::<Vec<_>>()
                .into_pyarray(py),
            hashes.into_pyarray(py),
        ))
    })
}

/// The median of `values` (numpy.median's value; NaN for none or a NaN), selected
/// in linear time on a copy.
#[pyfunction]
fn median(py: Python<'_>, values: PyReadonlyArray1<'_, f64>) -> PyResult<f64> {
    guard("median", || {
        let mut values = values.as_slice()?.to_vec();
        Ok(py.detach(|| order::median(&mut values)))
    })
}

/// The sum of finite floats, exactly rounded (the value of Python's `math.fsum`, also
/// where `math.fsum` overflows midway); None when a value is NaN or infinite or the sum
/// itself overflows: `math.fsum` decides those.
#[pyfunction]
#[pyo3(signature = (values, threads=0))]
fn exact_sum(
    py: Python<'_>,
    values: PyReadonlyArray1<'_, f64>,
    threads: usize,
) -> PyResult<Option<f64>> {
    guard("exact_sum", || {
        let values = values.as_slice()?;
        let pool = pool(threads)?;
        Ok(py.detach(|| sums::parallel_exact_sum(values, &pool)))
    })
}

/// A few floats whose exact sum is that of `values` (their `exact_sum` is that of
/// the values, also after concatenating several such arrays); None when a value
/// is NaN or infinite or a partial overflows.
#[pyfunction]
#[pyo3(signature = (values, threads=0))]
fn exact_partials<'py>(
    py: Python<'py>,
    values: PyReadonlyArray1<'py, f64>,
    threads: usize,
) -> PyResult<Option<Bound<'py, PyArray1<f64>>>> {
    guard("exact_partials", || {
        let values = values.as_slice()?;
        let pool = pool(threads)?;
        let partials = py.detach(|| sums::parallel_partials(values, &pool));
        Ok(partials.map(|p| p.into_pyarray(py)))
    })
}

/// Every window of m + 1 items, grouped by a hash of its m-item prefix:
/// (windows as a (k, m + 1) int64 array, group after group; the partitions + 1 group bounds).
#[pyfunction]
#[pyo3(signature = (offsets, items, m, partitions, max_len=None, threads=0))]
fn partition_windows<'py>(
    py: Python<'py>,
    offsets: PyReadonlyArray1<'py, i64>,
    items: PyReadonlyArray1<'py, i64>,
    m: usize,
    partitions: usize,
    max_len: Option<usize>,
    threads: usize,
) -> PyResult<WindowArrays<'py>> {
    guard("partition_windows", || {
        let m = error::check_m(m)?;
        partition::check_parts(partitions)?;
        let batch = Batch::new(offsets.as_slice()?, items.as_slice()?)?;
        let pool = pool(threads)?;
        let (rows, bounds) =
            py.detach(|| blocks::partition_windows(&batch, m, max_len, partitions, &pool));
        let windows = rows.len() / (m + 1);
        Ok((
            rows.into_pyarray(py).reshape([windows, m + 1])?,
            bounds.into_pyarray(py),
        ))
    })
}

/// Histograms of a bag of windows given as rows of m + 1 ids (e.g. one spilled
/// partition): (joint_counts, joint_windows, prefix_counts, prefix_windows).
#[pyfunction]
fn window_histograms<'py>(
    py: Python<'py>,
    windows: PyReadonlyArray1<'py, i64>,
    m: usize,
) -> PyResult<Histograms<'py>> {
    guard("window_histograms", || {
        let flat = windows.as_slice()?;
        let m = error::check_m(m)?;
        let (joint, prefix) = py.detach(|| blocks::row_histograms(flat, m + 1))?;
        Ok(histogram_arrays(py, joint, prefix))
    })
}

/// H(X_{m+1} | X_1..X_m) from count histograms (as `WindowCounts.histograms()`
/// returns them); NaN without windows. The sums are exactly rounded.
#[pyfunction]
fn histogram_entropy(
    py: Python<'_>,
    joint_counts: PyReadonlyArray1<'_, u64>,
    joint_windows: PyReadonlyArray1<'_, u64>,
    prefix_counts: PyReadonlyArray1<'_, u64>,
    prefix_windows: PyReadonlyArray1<'_, u64>,
) -> PyResult<f64> {
    guard("histogram_entropy", || {
        let pairs = |counts: &[u64], windows: &[u64], name: &str| -> PyResult<Vec<(u64, u64)>> {
            if counts.len() != windows.len() {
                return Err(KernelError::BadShape(format!(
                    "{name} histogram: {} counts but {} window numbers",
                    counts.len(),
                    windows.len()
                ))
                .into());
            }
            Ok(counts
                .iter()
                .copied()
                .zip(windows.iter().copied())
                .collect())
        };
        let joint = pairs(joint_counts.as_slice()?, joint_windows.as_slice()?, "joint")?;
        let prefix = pairs(
            prefix_counts.as_slice()?,
            prefix_windows.as_slice()?,
            "prefix",
        )?;
        Ok(py.detach(|| blocks::entropy_from_histograms(&joint, &prefix)))
    })
}

/// The partition in 0..partitions of every int64 key (a user id), by a stable hash.
#[pyfunction]
fn partition_keys<'py>(
    py: Python<'py>,
    keys: PyReadonlyArray1<'py, i64>,
    partitions: usize,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    guard("partition_keys", || {
        let keys = keys.as_slice()?;
        let parts = py.detach(|| partition::partition_keys(keys, partitions))?;
        Ok(parts.into_pyarray(py))
    })
}

/// The partition in 0..partitions of every string of an Arrow-style string
/// array (string i is data[offsets[i]..offsets[i + 1]], UTF-8), by a stable hash.
#[pyfunction]
fn partition_strings<'py>(
    py: Python<'py>,
    offsets: PyReadonlyArray1<'py, i64>,
    data: PyReadonlyArray1<'py, u8>,
    partitions: usize,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    guard("partition_strings", || {
        let (offsets, data) = (offsets.as_slice()?, data.as_slice()?);
        let parts = py.detach(|| partition::partition_strings(offsets, data, partitions))?;
        Ok(parts.into_pyarray(py))
    })
}

fn histogram_arrays<'py>(
    py: Python<'py>,
    joint: std::collections::BTreeMap<u64, u64>,
    prefix: std::collections::BTreeMap<u64, u64>,
) -> Histograms<'py> {
    let split =
        |h: std::collections::BTreeMap<u64, u64>| -> (Vec<u64>, Vec<u64>) { h.into_iter().unzip() };
    let ((jc, jn), (pc, pn)) = (split(joint), split(prefix));
    (
        jc.into_pyarray(py),
        jn.into_pyarray(py),
        pc.into_pyarray(py),
        pn.into_pyarray(py),
    )
}

/// Count histograms of windows and prefixes as numpy arrays.
type Histograms<'py> = (
    Bound<'py, PyArray1<u64>>,
    Bound<'py, PyArray1<u64>>,
    Bound<'py, PyArray1<u64>>,
    Bound<'py, PyArray1<u64>>,
);

/// Windows of m + 1 items appended to one file per prefix partition (see `spill.rs`).
#[pyclass(module = "perflaw._core")]
struct WindowWriter {
    inner: Option<spill::WindowWriter>,
}

impl WindowWriter {
    fn open(&mut self) -> PyResult<&mut spill::WindowWriter> {
        self.inner
            .as_mut()
            .ok_or_else(|| PyValueError::new_err("the window spill is closed"))
    }
}

fn os_error(err: std::io::Error) -> PyErr {
    pyo3::exceptions::PyOSError::new_err(format!("window spill: {err}"))
}

#[pymethods]
impl WindowWriter {
    /// Creates one file per path (a window's partition is the index of its
    /// path); windows stay in memory up to `memory` bytes, then go to the files.
    #[new]
    #[pyo3(signature = (paths, m, memory=0))]
    fn new(paths: Vec<std::path::PathBuf>, m: usize, memory: usize) -> PyResult<Self> {
        guard("WindowWriter", || {
            let m = error::check_m(m)?;
            partition::check_parts(paths.len())?;
            let inner = spill::WindowWriter::create(&paths, m, memory).map_err(os_error)?;
            Ok(Self { inner: Some(inner) })
        })
    }

    /// Spills every window of a CSR batch, its partitions hashed on `threads` threads.
    #[pyo3(signature = (offsets, items, max_len=None, threads=0))]
    fn add(
        &mut self,
        py: Python<'_>,
        offsets: PyReadonlyArray1<'_, i64>,
        items: PyReadonlyArray1<'_, i64>,
        max_len: Option<usize>,
        threads: usize,
    ) -> PyResult<()> {
        guard("WindowWriter.add", || {
            let batch = Batch::new(offsets.as_slice()?, items.as_slice()?)?;
            let pool = pool(threads)?;
            let writer = self.open()?;
            py.detach(|| writer.add(&batch, max_len, &pool))
                .map_err(os_error)
        })
    }

    /// Writes out the buffers, then counts every partition file on its own
    /// (`threads` at a time): (joint_counts, joint_windows, prefix_counts, prefix_windows).
    #[pyo3(signature = (threads=0))]
    fn histograms<'py>(&mut self, py: Python<'py>, threads: usize) -> PyResult<Histograms<'py>> {
        guard("WindowWriter.histograms", || {
            let pool = pool(threads)?;
            let writer = self.open()?;
            let (joint, prefix) = py.detach(|| writer.histograms(&pool)).map_err(os_error)?;
            Ok(histogram_arrays(py, joint, prefix))
        })
    }

    /// Closes the files (what is buffered is dropped); later calls raise ValueError.
    fn close(&mut self) {
        self.inner = None;
    }
}

/// Exact counts of all windows of m + 1 items, mergeable across shards.
#[pyclass(module = "perflaw._core")]
#[derive(Clone)]
struct WindowCounts {
    inner: blocks::WindowCounts,
}

#[pymethods]
impl WindowCounts {
    #[new]
    fn new(m: usize) -> PyResult<Self> {
        guard("WindowCounts", || {
            Ok(Self {
                inner: blocks::WindowCounts::new(m)?,
            })
        })
    }

    #[getter]
    fn m(&self) -> usize {
        self.inner.m()
    }

    #[getter]
    fn total(&self) -> u64 {
        self.inner.total()
    }

    #[getter]
    fn distinct(&self) -> usize {
        self.inner.distinct()
    }

    /// Counts the windows of every sequence of a CSR batch.
    #[pyo3(signature = (offsets, items, max_len=None, threads=0))]
    fn update(
        &mut self,
        py: Python<'_>,
        offsets: PyReadonlyArray1<'_, i64>,
        items: PyReadonlyArray1<'_, i64>,
        max_len: Option<usize>,
        threads: usize,
    ) -> PyResult<()> {
        guard("WindowCounts.update", || {
            let batch = Batch::new(offsets.as_slice()?, items.as_slice()?)?;
            let pool = pool(threads)?;
            let inner = &mut self.inner;
            py.detach(|| inner.update(&batch, max_len, &pool));
            Ok(())
        })
    }

    /// Adds another table's counts to this one.
    fn merge(&mut self, py: Python<'_>, other: &Self) -> PyResult<()> {
        guard("WindowCounts.merge", || {
            let inner = &mut self.inner;
            py.detach(|| inner.merge(&other.inner))?;
            Ok(())
        })
    }

    /// H(X_{m+1} | X_1..X_m) in nats; NaN when no window was counted.
    fn conditional_entropy(&self, py: Python<'_>) -> f64 {
        py.detach(|| self.inner.conditional_entropy())
    }

    /// (joint_counts, joint_windows, prefix_counts, prefix_windows): for each
    /// count value, sorted, how many distinct (m+1)-windows / m-prefixes have it.
    fn histograms<'py>(&self, py: Python<'py>) -> Histograms<'py> {
        let (joint, prefix) = py.detach(|| self.inner.histograms());
        let split = |h: std::collections::BTreeMap<u64, u64>| -> (Vec<u64>, Vec<u64>) {
            h.into_iter().unzip()
        };
        let ((jc, jn), (pc, pn)) = (split(joint), split(prefix));
        (
            jc.into_pyarray(py),
            jn.into_pyarray(py),
            pc.into_pyarray(py),
            pn.into_pyarray(py),
        )
    }

    /// (windows, counts): an int64 array of shape (distinct, m + 1) sorted by row, and uint64 counts.
    fn to_arrays<'py>(&self, py: Python<'py>) -> PyResult<WindowArrays<'py>> {
        guard("WindowCounts.to_arrays", || {
            let (windows, counts) = py.detach(|| self.inner.to_arrays());
            let rows = counts.len();
            let windows = windows
                .into_pyarray(py)
                .reshape([rows, self.inner.m() + 1])?;
            Ok((windows, counts.into_pyarray(py)))
        })
    }

    /// Rebuilds a table from `to_arrays` output; repeated rows add up.
    #[staticmethod]
    fn from_arrays(
        py: Python<'_>,
        m: usize,
        windows: PyReadonlyArray1<'_, i64>,
        counts: PyReadonlyArray1<'_, u64>,
    ) -> PyResult<Self> {
        guard("WindowCounts.from_arrays", || {
            let (windows, counts) = (windows.as_slice()?, counts.as_slice()?);
            let inner = py.detach(|| blocks::WindowCounts::from_arrays(m, windows, counts))?;
            Ok(Self { inner })
        })
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let (windows, counts) = self.to_arrays(py)?;
        let flat = windows.reshape([self.inner.distinct() * (self.inner.m() + 1)])?;
        let rebuild = py.get_type::<Self>().getattr("from_arrays")?;
        let args = (self.inner.m(), flat, counts).into_pyobject(py)?.into_any();
        Ok((rebuild, args))
    }

    fn __repr__(&self) -> String {
        format!(
            "WindowCounts(m={}, windows={}, distinct={})",
            self.inner.m(),
            self.inner.total(),
            self.inner.distinct()
        )
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(apen_batch, m)?)?;
    m.add_function(wrap_pyfunction!(median, m)?)?;
    m.add_function(wrap_pyfunction!(lz_batch, m)?)?;
    m.add_function(wrap_pyfunction!(hashes_batch, m)?)?;
    m.add_function(wrap_pyfunction!(user_stats_batch, m)?)?;
    m.add_function(wrap_pyfunction!(exact_sum, m)?)?;
    m.add_function(wrap_pyfunction!(exact_partials, m)?)?;
    m.add_class::<WindowWriter>()?;
    m.add_function(wrap_pyfunction!(partition_windows, m)?)?;
    m.add_function(wrap_pyfunction!(window_histograms, m)?)?;
    m.add_function(wrap_pyfunction!(histogram_entropy, m)?)?;
    m.add_function(wrap_pyfunction!(partition_keys, m)?)?;
    m.add_function(wrap_pyfunction!(partition_strings, m)?)?;
    m.add_class::<WindowCounts>()?;
    m.add("MAX_M", error::MAX_M)?;
    m.add("MAX_THREADS", error::MAX_THREADS)?;
    m.add("MAX_PARTITIONS", partition::MAX_PARTITIONS)?;
    Ok(())
}
