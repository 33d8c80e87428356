//! The rendered config file: where it goes and how it is replaced.
//!
//! Owns the one way mcw writes the output: only when the bytes differ, through a temp file
//! created exclusively in the same directory, mode and owner set before anything is written,
//! fsync'd, renamed over the path, and the directory fsync'd. The path never goes missing and
//! never holds a partial file. It does not decide *what* to write.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::OFlag;

use crate::fsx::{Regular, parent_dir, read_regular};

/// Mode of the output when `?mode=` does not say: mcrouter may run as another user.
pub const DEFAULT_MODE: u32 = 0o644;

/// Where and how to write the output: a plain path, or the compatible
/// `file:///abs/path?mode=0640&uid=N&gid=N` form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputSpec {
    pub path: PathBuf,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// A bad `--output` value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("output {0:?}: a file:// URL needs an absolute path (file:///dir/name)")]
    NotAbsolute(String),
    #[error("output {0:?}: only file:// URLs are supported")]
    Scheme(String),
    #[error("output {url:?}: bad {key} {value:?} ({expect})")]
    BadValue {
        url: String,
        key: &'static str,
        value: String,
        expect: &'static str,
    },
    #[error("output {url:?}: unknown option {key:?} (known: mode, uid, gid)")]
    UnknownKey { url: String, key: String },
    #[error("output is empty")]
    Empty,
    #[error("output {0:?} names a directory; give the file's path (e.g. /run/mcw/mcrouter.json)")]
    Directory(String),
}

impl FromStr for OutputSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let mut spec = OutputSpec {
            path: PathBuf::new(),
            mode: DEFAULT_MODE,
            uid: None,
            gid: None,
        };
        if s.is_empty() {
            return Err(SpecError::Empty);
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            spec.path = file_path(s, s)?;
            return Ok(spec);
        };
        if scheme != "file" {
            return Err(SpecError::Scheme(s.to_string()));
        }
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if !path.starts_with('/') {
            return Err(SpecError::NotAbsolute(s.to_string()));
        }
        spec.path = file_path(path, s)?;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = |key, expect| SpecError::BadValue {
                url: s.to_string(),
                key,
                value: value.to_string(),
                expect,
            };
            match key {
                "mode" => {
                    spec.mode = u32::from_str_radix(value, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| bad("mode", "octal, e.g. 0640"))?;
                }
                "uid" => spec.uid = Some(value.parse().map_err(|_| bad("uid", "a number"))?),
                "gid" => spec.gid = Some(value.parse().map_err(|_| bad("gid", "a number"))?),
                other => {
                    return Err(SpecError::UnknownKey {
                        url: s.to_string(),
                        key: other.to_string(),
                    });
                }
            }
        }
        Ok(spec)
    }
}

/// `path` as the output file, refused when it can only be a directory (`/run/mcw/`, `..`).
fn file_path(path: &str, given: &str) -> Result<PathBuf, SpecError> {
    let last = path.rsplit('/').next().unwrap_or_default();
    if matches!(last, "" | "." | "..") {
        return Err(SpecError::Directory(given.to_string()));
    }
    Ok(PathBuf::from(path))
}

/// A write that worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The file already held the bytes.
    Unchanged,
    /// The bytes were renamed into place and the directory fsync'd.
    Replaced,
    /// The bytes were renamed into place (readers see them) but the directory's fsync
    /// failed, for this reason: a power loss may take them back.
    Unsynced(String),
}

/// Writing the output failed; the file on disk is untouched.
#[derive(Debug, thiserror::Error)]
#[error("output {path}: {action}: {source}", path = .path.display())]
pub struct WriteError {
    pub path: PathBuf,
    pub action: &'static str,
    #[source]
    pub source: io::Error,
}

impl OutputSpec {
    /// Replace the output with `bytes` unless it already holds exactly them.
    pub fn write_if_changed(&self, bytes: &[u8]) -> Result<Written, WriteError> {
        if self.holds(bytes)? {
            return Ok(Written::Unchanged);
        }
        self.replace(bytes)
    }

    /// Whether the output is a regular file holding exactly `bytes`. Whatever else is at the
    /// path — a symlink someone planted (never followed), a FIFO (never waited on), a
    /// directory — does not hold them, and is replaced (or the rename fails and says why).
    fn holds(&self, bytes: &[u8]) -> Result<bool, WriteError> {
        match read_regular(&self.path, OFlag::O_NOFOLLOW, bytes.len() as u64) {
            Ok(Regular::Bytes(current)) => Ok(current == bytes),
            Ok(Regular::NotRegular | Regular::TooBig) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            // ELOOP: the path is a symlink.
            Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => Ok(false),
            Err(source) => Err(self.error("cannot read the current file", source)),
        }
    }

    /// Atomically replace the output with `bytes`, whatever it holds now (a rename even when
    /// the bytes are the same: mcrouter sees a new file).
    pub fn replace(&self, bytes: &[u8]) -> Result<Written, WriteError> {
        let candidate = self.prepare(bytes)?;
        self.install(candidate)
    }

    /// Write `bytes` to a complete, fsync'd temp file beside the output (mode and owner
    /// already set), to be validated and then [installed](OutputSpec::install) or
    /// [discarded](Candidate::discard).
    pub fn prepare(&self, bytes: &[u8]) -> Result<Candidate, WriteError> {
        let dir = parent_dir(&self.path);
        let (path, file) = match self.create_temp(dir) {
            // The directory was removed under mcw (a cleaned /run, say): make it again.
            Err(e) if e.source.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dir)
                    .map_err(|e| self.error("cannot create its directory", e))?;
                self.create_temp(dir)?
            }
            other => other?,
        };
        let candidate = Candidate { path };
        match self.fill(file, bytes) {
            Ok(()) => Ok(candidate),
            Err(e) => {
                candidate.discard();
                Err(e)
            }
        }
    }

    /// Rename a prepared candidate over the output and fsync the directory. Once the rename
    /// is done the new bytes are in place, whatever the fsync says: its failure is
    /// [`Written::Unsynced`], not an error.
    pub fn install(&self, candidate: Candidate) -> Result<Written, WriteError> {
        if let Err(e) = fs::rename(&candidate.path, &self.path) {
            candidate.discard();
            return Err(self.error("cannot rename into place", e));
        }
        match File::open(parent_dir(&self.path)).and_then(|d| d.sync_all()) {
            Ok(()) => Ok(Written::Replaced),
            Err(e) => Ok(Written::Unsynced(format!(
                "cannot fsync the directory: {e}"
            ))),
        }
    }

    /// Remove the temp files and candidates that a crashed run left beside the output: those
    /// named `.NAME.mcw-PID-N.tmp` whose process PID is gone. Another mcw writing the same
    /// output now (a `mcw render` beside a `watch`) keeps its own. Returns what was removed.
    pub fn remove_leftovers(&self) -> Vec<PathBuf> {
        let dir = parent_dir(&self.path);
        let mut prefix = OsString::from(".");
        prefix.push(self.path.file_name().unwrap_or_default());
        prefix.push(".mcw-");
        let prefix = prefix.to_string_lossy().into_owned();
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(rest) = name.strip_prefix(&prefix) else {
                    return false;
                };
                let Some((pid, n)) = rest.strip_suffix(".tmp").and_then(|r| r.split_once('-'))
                else {
                    return false;
                };
                let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                digits(pid) && digits(n) && pid.parse().is_ok_and(|pid: i32| !alive(pid))
            })
            .map(|e| e.path())
            .filter(|p| fs::remove_file(p).is_ok())
            .collect()
    }

    fn create_temp(&self, dir: &Path) -> Result<(PathBuf, File), WriteError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut name = OsString::from(".");
        name.push(self.path.file_name().unwrap_or_default());
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut candidate = name.clone();
            candidate.push(format!(".mcw-{}-{n}.tmp", std::process::id()));
            let tmp_path = dir.join(candidate);
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp_path)
            {
                Ok(file) => return Ok((tmp_path, file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(self.error("cannot create a temp file beside it", source));
                }
            }
        }
    }

    fn fill(&self, mut file: File, bytes: &[u8]) -> Result<(), WriteError> {
        if self.uid.is_some() || self.gid.is_some() {
            std::os::unix::fs::fchown(&file, self.uid, self.gid)
                .map_err(|e| self.error("cannot set the owner (is mcw root?)", e))?;
        }
        file.set_permissions(fs::Permissions::from_mode(self.mode))
            .map_err(|e| self.error("cannot set the mode", e))?;
        file.write_all(bytes)
            .map_err(|e| self.error("cannot write", e))?;
        file.sync_all().map_err(|e| self.error("cannot fsync", e))
    }

    fn error(&self, action: &'static str, source: io::Error) -> WriteError {
        WriteError {
            path: self.path.clone(),
            action,
            source,
        }
    }
}

/// A complete temp file beside the output, not yet installed.
#[derive(Debug)]
pub struct Candidate {
    pub path: PathBuf,
}

impl Candidate {
    pub fn discard(self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether process `pid` exists (it may belong to another user): signal 0 reaches it, or
/// is refused for want of permission.
fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e != nix::errno::Errno::ESRCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn parses_plain_paths_and_file_urls() {
        let plain: OutputSpec = "out/cfg.json".parse().unwrap();
        assert_eq!(plain.path, PathBuf::from("out/cfg.json"));
        assert_eq!(plain.mode, DEFAULT_MODE);
        let url: OutputSpec = "file:///run/mcw/c.json?mode=0640&uid=10&gid=20"
            .parse()
            .unwrap();
        assert_eq!(
            url,
            OutputSpec {
                path: "/run/mcw/c.json".into(),
                mode: 0o640,
                uid: Some(10),
                gid: Some(20)
            }
        );
        for (bad, want) in [
            ("file://rel/c.json", "absolute path"),
            ("http:///x", "only file://"),
            ("file:///x?mode=999", "bad mode"),
            ("file:///x?uid=root", "bad uid"),
            ("file:///x?owner=1", "unknown option"),
            ("/run/mcw/", "names a directory"),
            ("file:///run/mcw/?mode=0640", "names a directory"),
            ("out/..", "names a directory"),
        ] {
            let err = bad.parse::<OutputSpec>().unwrap_err().to_string();
            assert!(err.contains(want), "{bad}: {err}");
        }
    }

    #[test]
    fn writes_only_when_bytes_differ_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let spec: OutputSpec = format!("file://{}/c.json?mode=0640", dir.path().display())
            .parse()
            .unwrap();
        assert_eq!(spec.write_if_changed(b"one\n").unwrap(), Written::Replaced);
        let first = fs::metadata(&spec.path).unwrap();
        assert_eq!(first.mode() & 0o7777, 0o640);
        assert_eq!(spec.write_if_changed(b"one\n").unwrap(), Written::Unchanged);
        assert_eq!(fs::metadata(&spec.path).unwrap().ino(), first.ino());
        assert_eq!(spec.write_if_changed(b"two\n").unwrap(), Written::Replaced);
        assert_ne!(fs::metadata(&spec.path).unwrap().ino(), first.ino());
        assert_eq!(fs::read(&spec.path).unwrap(), b"two\n");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temp files left behind: {names:?}");
    }

    #[test]
    fn leftovers_of_a_crashed_run_are_removed_and_nothing_else_not_even_a_live_runs() {
        let dir = tempfile::tempdir().unwrap();
        let spec: OutputSpec = dir.path().join("c.json").to_str().unwrap().parse().unwrap();
        spec.replace(b"live\n").unwrap();
        // A pid no process has (above the kernel's largest), and one that runs: this test's.
        let (gone, live) = (i32::MAX, std::process::id());
        let live_temp = format!(".c.json.mcw-{live}-0.tmp");
        let keep = [
            ".other.json.mcw-1-0.tmp",
            "c.json.bak",
            ".c.json.mcw-notes",
            ".c.json.mcw-x-1.tmp",
            live_temp.as_str(),
        ];
        let stale = [
            format!(".c.json.mcw-{gone}-0.tmp"),
            format!(".c.json.mcw-{gone}-7.tmp"),
        ];
        for name in keep.iter().copied().chain(stale.iter().map(String::as_str)) {
            fs::write(dir.path().join(name), "x").unwrap();
        }
        assert_eq!(spec.remove_leftovers().len(), 2);
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut want = vec![
            ".c.json.mcw-notes".to_string(),
            ".c.json.mcw-x-1.tmp".to_string(),
            live_temp.clone(),
            ".other.json.mcw-1-0.tmp".to_string(),
            "c.json".to_string(),
            "c.json.bak".to_string(),
        ];
        want.sort();
        assert_eq!(left, want);
    }

    /// A symlink planted at the output path is replaced by a regular file, and the file it
    /// pointed to is neither read for comparison nor written; a FIFO there is not waited on.
    #[test]
    fn a_planted_symlink_or_fifo_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "good\n").unwrap();
        let spec: OutputSpec = dir.path().join("c.json").to_str().unwrap().parse().unwrap();
        std::os::unix::fs::symlink(&victim, &spec.path).unwrap();
        // The link's target holds exactly these bytes: following it would skip the write.
        assert_eq!(spec.write_if_changed(b"good\n").unwrap(), Written::Replaced);
        assert!(fs::symlink_metadata(&spec.path).unwrap().is_file());
        assert_eq!(fs::read(&victim).unwrap(), b"good\n");

        fs::remove_file(&spec.path).unwrap();
        nix::unistd::mkfifo(&spec.path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(spec.write_if_changed(b"new\n").unwrap(), Written::Replaced);
        assert_eq!(fs::read(&spec.path).unwrap(), b"new\n");
    }

    #[test]
    fn a_removed_directory_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("run");
        let spec: OutputSpec = sub.join("c.json").to_str().unwrap().parse().unwrap();
        assert_eq!(spec.write_if_changed(b"x\n").unwrap(), Written::Replaced);
        assert_eq!(fs::read(&spec.path).unwrap(), b"x\n");
    }

    /// Disk full, on a real 12 KiB tmpfs (tests run as root, as CI does).
    #[test]
    fn a_full_disk_leaves_the_old_file_intact_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=12k", "mcw-test"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(mounted.success(), "mounting a tmpfs needs root");
        let spec: OutputSpec = dir.path().join("c.json").to_str().unwrap().parse().unwrap();
        spec.replace(b"good\n").unwrap();
        let result = spec.write_if_changed(&vec![b'x'; 64 * 1024]);
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let after = fs::read(&spec.path).unwrap();
        std::process::Command::new("umount")
            .arg(dir.path())
            .status()
            .unwrap();
        let err = result.expect_err("64 KiB cannot fit in 12 KiB");
        assert!(err.to_string().contains("c.json"), "{err}");
        assert_eq!(after, b"good\n");
        assert_eq!(left, vec![std::ffi::OsString::from("c.json")]);
    }
}
