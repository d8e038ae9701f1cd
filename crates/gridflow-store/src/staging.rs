//! Local outputs put in place only when complete.
//!
//! A store (or a file) is written to a hidden temporary sibling of its target, flushed to
//! disk, and then moved in place with one rename: for a new target a rename that never
//! replaces, for an existing one an atomic exchange (Linux `renameat2(RENAME_EXCHANGE)`), after
//! which the old tree is deleted. Readers, and a process killed at any moment, see either
//! the complete old content or the complete new one.
//!
//! Temporary siblings are named `.<name>.gridflow-tmp-<pid>-<random>` and each has an owner
//! file beside it (the same name plus `.gridflow-owner`), created first and removed last. A
//! later write to the same target deletes the leftovers of dead processes, recognised by
//! their owner file only, and nothing else.

use crate::error::{Result, StoreError};
use crate::write::WriteMode;
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const TMP_TAG: &str = ".gridflow-tmp-";
const OWNER_EXT: &str = ".gridflow-owner";
/// Files whose presence at a directory's root makes it a Zarr store (or group).
const ZARR_ROOT_KEYS: [&str; 4] = [".zgroup", ".zarray", ".zmetadata", "zarr.json"];

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}

/// The absolute form of an output path with symlinks resolved: the path itself when
/// something is there (so writing through a symlink replaces what it points to), else its
/// parent directory, which must exist.
pub fn resolve_output(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(io_err("resolving", path))?;
    if fs::symlink_metadata(&abs).is_ok() {
        return fs::canonicalize(&abs)
            .map_err(io_err("resolving (is it a dangling symlink?)", &abs));
    }
    let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) else {
        return Err(StoreError::Io {
            op: "writing",
            path: abs,
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        });
    };
    let parent = fs::canonicalize(parent).map_err(io_err(
        "the output's parent directory cannot be used:",
        parent,
    ))?;
    if !parent.is_dir() {
        return Err(StoreError::Io {
            op: "the output's parent is not a directory:",
            path: parent,
            source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
        });
    }
    Ok(parent.join(name))
}

/// What an output path holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Existing {
    Nothing,
    EmptyDir,
    ZarrStore,
    File,
    /// A directory that is not a Zarr store, a FIFO, a socket, a device...
    Other(&'static str),
}

impl Existing {
    fn what(self) -> &'static str {
        match self {
            Existing::Nothing => "nothing",
            Existing::EmptyDir => "an empty directory",
            Existing::ZarrStore => "a Zarr store",
            Existing::File => "a file",
            Existing::Other(w) => w,
        }
    }
}

fn classify(path: &Path) -> Result<Existing> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Nothing),
        Err(e) => return Err(io_err("inspecting", path)(e)),
    };
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(Existing::File);
    }
    if !ft.is_dir() {
        return Ok(Existing::Other("a special file or a symlink"));
    }
    let mut entries = fs::read_dir(path).map_err(io_err("listing", path))?;
    if entries.next().is_none() {
        return Ok(Existing::EmptyDir);
    }
    // metadata files only count when they are files (a FIFO named .zgroup is not a store)
    if ZARR_ROOT_KEYS.iter().any(|k| path.join(k).is_file()) {
        Ok(Existing::ZarrStore)
    } else {
        Ok(Existing::Other("a directory that is not a Zarr store"))
    }
}

/// Checks that a Zarr store may be written at `path` in `mode`, touching nothing, and
/// returns the path with symlinks resolved.
///
/// Nothing there, or an empty directory, may always be used. In [`WriteMode::Overwrite`] an
/// existing Zarr store (a directory with `.zgroup`, `.zarray`, `.zmetadata` or `zarr.json` at
/// its root) may be replaced; anything else (files, other directories) never is.
pub fn check_output_dir(path: &Path, mode: WriteMode) -> Result<PathBuf> {
    let resolved = resolve_output(path)?;
    check_existing_dir(&resolved, classify(&resolved)?, mode)?;
    Ok(resolved)
}

fn check_existing_dir(path: &Path, existing: Existing, mode: WriteMode) -> Result<()> {
    match (existing, mode) {
        (Existing::Nothing | Existing::EmptyDir, _)
        | (Existing::ZarrStore, WriteMode::Overwrite) => Ok(()),
        (Existing::ZarrStore, WriteMode::Create) => Err(StoreError::OutputExists {
            path: path.to_path_buf(),
            what: existing.what(),
            hint: " (replace it with --overwrite, or WriteMode::Overwrite)",
        }),
        _ => Err(StoreError::OutputExists {
            path: path.to_path_buf(),
            what: existing.what(),
            hint: "; gridflow replaces only Zarr stores, even in overwrite mode",
        }),
    }
}

/// Checks that a file may be written at `path` (replacing an existing regular file only
/// when `overwrite`), touching nothing, and returns the path with symlinks resolved.
pub fn check_output_file(path: &Path, overwrite: bool) -> Result<PathBuf> {
    let resolved = resolve_output(path)?;
    match classify(&resolved)? {
        Existing::Nothing => Ok(resolved),
        Existing::File if overwrite => Ok(resolved),
        Existing::File => Err(StoreError::OutputExists {
            path: resolved,
            what: "a file",
            hint: " (--overwrite replaces it)",
        }),
        other => Err(StoreError::OutputExists {
            path: resolved,
            what: other.what(),
            hint: "; only a file may be replaced",
        }),
    }
}

/// Writes `bytes` to the file at `path` through a temporary sibling renamed in place: a
/// reader never sees a partial file. Replaces an existing file only when `overwrite`.
pub fn write_file(path: &Path, bytes: &[u8], overwrite: bool) -> Result<()> {
    let target = check_output_file(path, overwrite)?;
    let tmp = Temp::create(&target)?;
    let write = || -> std::io::Result<()> {
        let mut f = File::create_new(&tmp.path)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(io_err("writing", &tmp.path))?;
    if overwrite {
        fs::rename(&tmp.path, &target).map_err(io_err("renaming into place", &target))?;
    } else {
        rename_noreplace(&tmp.path, &target)?;
    }
    sync_parent(&target);
    tmp.finish();
    Ok(())
}

/// A temporary sibling of a target (not yet created) and its owner file (created).
struct Temp {
    path: PathBuf,
    owner: PathBuf,
    done: bool,
}

impl Temp {
    fn create(target: &Path) -> Result<Temp> {
        let (dir, name) = split(target)?;
        clean_stale(&dir, &name);
        let path = dir.join(format!(
            "{}{}-{:016x}",
            tmp_prefix(&name),
            std::process::id(),
            random()
        ));
        let mut owner = path.clone().into_os_string();
        owner.push(OWNER_EXT);
        let owner = PathBuf::from(owner);
        File::create_new(&owner)
            .and_then(|mut f| writeln!(f, "{}", std::process::id()))
            .map_err(io_err("creating", &owner))?;
        Ok(Temp {
            path,
            owner,
            done: false,
        })
    }

    /// The temporary path was renamed away (or its content deleted): drop the owner file.
    fn finish(mut self) {
        self.done = true;
        let _ = fs::remove_file(&self.owner);
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.done {
            remove_any(&self.path);
            let _ = fs::remove_file(&self.owner);
        }
    }
}

fn remove_any(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

fn split(target: &Path) -> Result<(PathBuf, String)> {
    match (target.parent(), target.file_name().and_then(|n| n.to_str())) {
        (Some(d), Some(n)) => Ok((d.to_path_buf(), n.to_owned())),
        _ => Err(StoreError::Io {
            op: "writing",
            path: target.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the output needs a UTF-8 file name",
            ),
        }),
    }
}

/// `.<name>.gridflow-tmp-`, the name cut short so that the whole stays under NAME_MAX.
fn tmp_prefix(name: &str) -> String {
    let mut end = name.len().min(120);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!(".{}{TMP_TAG}", &name[..end])
}

fn random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded randomly per process; the counter separates calls in one.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Deletes temporary siblings of `dir/name` left by processes that no longer run (killed
/// mid-write): only those with an owner file, whose pid is gone. Best effort.
fn clean_stale(dir: &Path, name: &str) {
    // Without /proc we cannot tell a dead writer from a live one: leave everything.
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = tmp_prefix(name);
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let Some(stem) = rest.strip_suffix(OWNER_EXT) else {
            continue;
        };
        let Some(pid) = stem.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let owner = e.path();
        remove_any(&dir.join(format!("{prefix}{stem}")));
        let _ = fs::remove_file(owner);
    }
}

/// Flushes every file and directory under `root` to disk: on Linux with one `syncfs` of
/// its filesystem (thousands of chunk files make per-file `fsync`s slow), elsewhere file by
/// file.
fn sync_tree(root: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        let dir = File::open(root).map_err(io_err("opening", root))?;
        if rustix::fs::syncfs(&dir).is_ok() {
            return Ok(());
        }
    }
    sync_each(root)
}

fn sync_each(root: &Path) -> Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(io_err("listing", &d))? {
            let e = e.map_err(io_err("listing", &d))?;
            let p = e.path();
            let ft = e.file_type().map_err(io_err("inspecting", &p))?;
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                File::open(&p)
                    .and_then(|f| f.sync_all())
                    .map_err(io_err("flushing", &p))?;
            }
        }
        sync_dir(&d)?;
    }
    Ok(())
}

fn sync_dir(d: &Path) -> Result<()> {
    File::open(d)
        .and_then(|f| f.sync_all())
        .map_err(io_err("flushing", d))
}

/// Flushes the directory entry of a rename (best effort: not every filesystem allows it).
fn sync_parent(p: &Path) {
    if let Some(parent) = p.parent() {
        let _ = sync_dir(parent);
    }
}

/// True for the errors a filesystem or kernel gives when it does not support a rename flag.
#[cfg(target_os = "linux")]
fn unsupported(e: rustix::io::Errno) -> bool {
    e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::NOTSUP
}

/// Renames `from` to `to`, failing if `to` exists (or, where the filesystem cannot say so
/// atomically, if it exists just before).
fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(e) if unsupported(e) => {}
            Err(e) => return Err(io_err("renaming into place", to)(e.into())),
        }
    }
    if fs::symlink_metadata(to).is_ok() {
        return Err(StoreError::OutputExists {
            path: to.to_path_buf(),
            what: "something written meanwhile",
            hint: "",
        });
    }
    fs::rename(from, to).map_err(io_err("renaming into place", to))
}

/// Swaps `a` and `b` atomically when the platform can; otherwise moves `b` aside to `aside`,
/// `a` to `b`, and `aside` to `a` (restoring `b` if the second step fails).
fn exchange(a: &Path, b: &Path, aside: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(()),
            Err(e) if unsupported(e) => {}
            Err(e) => return Err(io_err("swapping into place", b)(e.into())),
        }
    }
    fs::rename(b, aside).map_err(io_err("moving the old content aside", b))?;
    if let Err(e) = fs::rename(a, b) {
        let _ = fs::rename(aside, b);
        return Err(io_err("renaming into place", b)(e));
    }
    fs::rename(aside, a).map_err(io_err("moving the old content", aside))
}

/// A directory being written beside its target, put in place by [`StagedDir::commit`].
/// Dropped without a commit, it deletes what was written and leaves the target untouched.
#[derive(Debug)]
pub struct StagedDir {
    target: PathBuf,
    mode: WriteMode,
    tmp: PathBuf,
    owner: PathBuf,
    committed: bool,
}

impl StagedDir {
    /// Checks the target as [`check_output_dir`] does, deletes stale temporary siblings of
    /// earlier killed writes, and creates the (empty) temporary directory.
    pub fn begin(target: &Path, mode: WriteMode) -> Result<StagedDir> {
        let target = check_output_dir(target, mode)?;
        let mut t = Temp::create(&target)?;
        fs::create_dir(&t.path).map_err(io_err("creating", &t.path))?;
        t.done = true; // the StagedDir owns the cleanup now
        Ok(StagedDir {
            target,
            mode,
            tmp: t.path.clone(),
            owner: t.owner.clone(),
            committed: false,
        })
    }

    /// Where to write (the temporary directory).
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The target, symlinks resolved.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes the written tree to disk and puts it in place: renamed to a new target, or
    /// swapped with the existing one, whose old content is then deleted.
    pub fn commit(mut self) -> Result<()> {
        sync_tree(&self.tmp)?;
        // look again: the target may have changed since `begin`
        let existing = classify(&self.target)?;
        check_existing_dir(&self.target, existing, self.mode)?;
        if existing == Existing::Nothing {
            rename_noreplace(&self.tmp, &self.target)?;
        } else {
            let aside = Temp::create(&self.target)?;
            exchange(&self.tmp, &self.target, &aside.path)?;
            drop(aside);
            // the temporary path now holds the old content; the owner file still covers it
            remove_any(&self.tmp);
        }
        sync_parent(&self.target);
        self.committed = true;
        let _ = fs::remove_file(&self.owner);
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        if !self.committed {
            remove_any(&self.tmp);
            let _ = fs::remove_file(&self.owner);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("gridflow-staging-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn stale_temporaries_of_dead_writers_are_removed_and_nothing_else() {
        let d = tmp("stale");
        // pid 4294967295 is above any pid_max: that writer is certainly gone
        let dead = d.join(".out.zarr.gridflow-tmp-4294967295-00ff");
        fs::create_dir(&dead).unwrap();
        fs::write(dead.join(".zgroup"), b"{}").unwrap();
        fs::write(
            d.join(".out.zarr.gridflow-tmp-4294967295-00ff.gridflow-owner"),
            b"",
        )
        .unwrap();
        // the same name pattern without an owner file: not ours to delete
        let unowned = d.join(".out.zarr.gridflow-tmp-4294967295-0abc");
        fs::create_dir(&unowned).unwrap();
        // another target's temporary
        let other = d.join(".other.zarr.gridflow-tmp-4294967295-00ff");
        fs::create_dir(&other).unwrap();
        fs::write(
            d.join(".other.zarr.gridflow-tmp-4294967295-00ff.gridflow-owner"),
            b"",
        )
        .unwrap();

        let staged = StagedDir::begin(&d.join("out.zarr"), WriteMode::Create).unwrap();
        fs::write(staged.path().join(".zgroup"), b"{\"zarr_format\": 2}").unwrap();
        staged.commit().unwrap();

        assert!(!dead.exists());
        assert!(unowned.exists() && other.exists());
        assert!(d.join("out.zarr/.zgroup").is_file());
        let mut left: Vec<String> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".other.zarr.gridflow-tmp-4294967295-00ff",
                ".other.zarr.gridflow-tmp-4294967295-00ff.gridflow-owner",
                ".out.zarr.gridflow-tmp-4294967295-0abc",
                "out.zarr"
            ]
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_dropped_staging_leaves_the_target_untouched_and_a_commit_swaps_it_whole() {
        let d = tmp("swap");
        let target = d.join("s.zarr");
        fs::create_dir(&target).unwrap();
        fs::write(target.join(".zgroup"), b"old").unwrap();
        fs::write(target.join("old-array"), b"old").unwrap();
        let staged = StagedDir::begin(&target, WriteMode::Overwrite).unwrap();
        fs::write(staged.path().join(".zgroup"), b"new").unwrap();
        drop(staged);
        assert_eq!(fs::read(target.join(".zgroup")).unwrap(), b"old");
        assert_eq!(
            fs::read_dir(&d).unwrap().count(),
            1,
            "the temporary is gone"
        );
        // create mode refuses the store; overwrite swaps it for exactly the new content
        assert!(matches!(
            StagedDir::begin(&target, WriteMode::Create),
            Err(StoreError::OutputExists { .. })
        ));
        let staged = StagedDir::begin(&target, WriteMode::Overwrite).unwrap();
        fs::write(staged.path().join(".zgroup"), b"new").unwrap();
        staged.commit().unwrap();
        assert_eq!(fs::read(target.join(".zgroup")).unwrap(), b"new");
        assert!(!target.join("old-array").exists());
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::remove_dir_all(&d).unwrap();
    }
}
