//! File helpers that several modules share, each with one job.
//!
//! Owns reading a path only when it is a regular file of bounded size, without ever blocking on
//! a FIFO (the template, and the output mcw compares with), and naming the directory that holds
//! a path. It writes nothing: writing the output is `output`'s alone.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::OFlag;

/// What [`read_regular`] found at a path.
#[derive(Debug, PartialEq, Eq)]
pub enum Regular {
    Bytes(Vec<u8>),
    /// A directory, FIFO, device or socket.
    NotRegular,
    /// A regular file longer than the limit.
    TooBig,
}

/// Read `path` if it is a regular file of at most `limit` bytes, opened with `flags` added
/// and `O_NONBLOCK`, so a FIFO put in its place is reported, never waited on.
pub fn read_regular(path: &Path, flags: OFlag, limit: u64) -> io::Result<Regular> {
    use io::Read;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((flags | OFlag::O_NONBLOCK).bits())
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Regular::NotRegular);
    }
    if meta.len() > limit {
        return Ok(Regular::TooBig);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    // It may have grown while being read.
    match bytes.len() as u64 > limit {
        true => Ok(Regular::TooBig),
        false => Ok(Regular::Bytes(bytes)),
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
