//! One error type for every kernel. The binding maps it to a Python
//! `ValueError` once, so no kernel ever panics across the FFI boundary.

use std::fmt;

/// Largest embedding dimension accepted (windows of m + 1 items; the paper uses m = 2).
pub const MAX_M: usize = 1 << 16;
/// Most worker threads one kernel call may ask for.
pub const MAX_THREADS: usize = 1024;

/// `m` in 1..=MAX_M, or the error that says so (m + 1 can then never overflow).
pub fn check_m(m: usize) -> Result<usize> {
    if (1..=MAX_M).contains(&m) {
        Ok(m)
    } else {
        Err(KernelError::BadM(m))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// `offsets` was empty, did not start at 0 or did not end at `items.len()`.
    OffsetsBounds {
        first: i64,
        last: i64,
        n_items: usize,
    },
    /// `offsets[index] < offsets[index - 1]`.
    OffsetsNotMonotone {
        index: usize,
        value: i64,
        previous: i64,
    },
    /// The embedding dimension `m` must be at least 1.
    BadM(usize),
    /// A sequence is too long for the 32-bit window ids used internally.
    SequenceTooLong { user: usize, length: usize },
    /// Two window tables with different `m` cannot be merged.
    MismatchedM { left: usize, right: usize },
    /// Arrays handed to `from_arrays` have inconsistent shapes.
    BadShape(String),
    /// The thread pool could not be built.
    ThreadPool(String),
    /// More threads than `MAX_THREADS` were asked for.
    TooManyThreads(usize),
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OffsetsBounds { first, last, n_items } => write!(
                f,
                "offsets must start at 0 and end at len(items)={n_items}, got first={first}, last={last}"
            ),
            Self::OffsetsNotMonotone { index, value, previous } => write!(
                f,
                "offsets must be non-decreasing: offsets[{index}]={value} < offsets[{}]={previous}",
                index - 1
            ),
            Self::BadM(m) => write!(f, "m must be between 1 and {MAX_M}, got {m}"),
            Self::SequenceTooLong { user, length } => {
                write!(f, "sequence {user} has {length} items; at most 2**32 - 1 are supported")
            }
            Self::MismatchedM { left, right } => {
                write!(f, "cannot merge window counts with m={left} and m={right}")
            }
            Self::BadShape(msg) => write!(f, "{msg}"),
            Self::ThreadPool(msg) => write!(f, "could not build the thread pool: {msg}"),
            Self::TooManyThreads(n) => {
                write!(f, "threads must be between 0 (all cores) and {MAX_THREADS}, got {n}")
            }
        }
    }
}

impl std::error::Error for KernelError {}

pub type Result<T> = std::result::Result<T, KernelError>;
