//! Where mtkit keeps its cache, and writing files so that nothing is ever half-written.

use std::io::Write;
use std::path::{Path, PathBuf};

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};

/// The cache folder: `$MTKIT_CACHE`, else `$XDG_CACHE_HOME/mtkit`, else `~/.cache/mtkit`.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("MTKIT_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("mtkit");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("mtkit")
}

/// Writes a file atomically: the content goes to a temporary file in the same folder, which is
/// renamed over `path` only once it is complete and flushed.
///
/// A link at `path` (say, to a scratch disk) is kept and the file written where it points; a
/// folder at `path` is an error, never replaced.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let path = &file_destination(path)?;
    let mut tmp = temp_file_for(path)?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        // A full disk or a failing device is named with the file (the temporary file is
        // removed when `tmp` is dropped).
        write(&mut w)
            .and_then(|()| Ok(w.flush()?))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    tmp.as_file().sync_all().ok();
    make_readable(tmp.path());
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Puts a copy of the finished file `from` at `to`, atomically: a hard link where both are on
/// one file system (no second copy of a profile that can be gigabytes, nor a second sync of
/// it to disk), else a copied file. A link is safe for mtkit's cache entries: the cache
/// replaces an entry by renaming a new file over it, which leaves the linked file as it was,
/// and checks an entry's checksum before using it, so an edit through the link is caught.
pub fn link_or_copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let to = &file_destination(to)?;
    // A temporary name beside `to` (removed on every path out, and by the stale-parts sweep
    // after a crash), taken over by the link.
    let tmp = temp_file_for(to)?.into_temp_path();
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(from, &tmp).is_ok() {
        return std::fs::rename(&tmp, to).with_context(|| format!("cannot write {}", to.display()));
    }
    drop(tmp);
    let mut src =
        std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    write_atomic(to, |out| {
        std::io::copy(&mut src, out)?;
        Ok(())
    })
}

/// Where a file written at `path` goes: `path` itself, or, where it is a link (or a chain of
/// them), the file the link points to, so that writing keeps a user's link instead of
/// replacing it with a file. A folder there (directly or through a link) is an error: mtkit
/// never puts a file in place of one.
pub fn file_destination(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&p)
                    .with_context(|| format!("cannot read the link {}", p.display()))?;
                p = match p.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            Ok(m) if m.is_dir() => bail!(
                "{} is a folder; mtkit writes a file there and never replaces a folder: give a file name, or move the folder",
                if p == path { p.display().to_string() } else { format!("{} (where the link {} points)", p.display(), path.display()) }
            ),
            _ => return Ok(p),
        }
    }
    bail!("{}: too many levels of links", path.display())
}

/// Where a folder mtkit writes whole at `target` goes ([`install_dir_over_folder`]): `target`
/// itself when absent or a folder; where it is a link to a folder (a scratch disk, say), that
/// folder, so the link stays. Anything else there is refused with what it is: mtkit never
/// removes or replaces a file, a dangling link or a link to a file it did not write.
pub fn folder_destination(target: &Path) -> Result<PathBuf> {
    let meta = match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(target.to_path_buf()),
        Err(e) => return Err(e).with_context(|| format!("cannot look at {}", target.display())),
        Ok(m) => m,
    };
    if meta.file_type().is_symlink() {
        return match std::fs::metadata(target) {
            Ok(m) if m.is_dir() => target
                .canonicalize()
                .with_context(|| format!("cannot follow the link {}", target.display())),
            Ok(_) => bail!(
                "{} is a link to a file ({}), not a folder: mtkit will not replace it; remove the link or choose another -o",
                target.display(),
                std::fs::read_link(target).unwrap_or_default().display()
            ),
            Err(_) => bail!(
                "{} is a link to {}, which does not exist: create that folder (mtkit then writes there), remove the link, or choose another -o",
                target.display(),
                std::fs::read_link(target).unwrap_or_default().display()
            ),
        };
    }
    if meta.is_dir() {
        return Ok(target.to_path_buf());
    }
    bail!(
        "{} is a file, not a folder mtkit wrote: mtkit will not replace it; move it or choose another -o",
        target.display()
    )
}

/// Fails, saying why, when no file can be created in `dir` (absent folders are made first,
/// as a write would): an unwritable output is found before the work, not after it. Creates
/// and removes one temporary file named as mtkit's others are.
pub fn check_writable_folder(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create folder {}", dir.display()))?;
    let probe = temp_file_for(&dir.join("write-check"))
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    drop(probe);
    Ok(())
}

/// What a path is now, to notice another writer replacing it: (device, inode, size,
/// modification time in ns), following links; `None` when absent.
pub fn identity(path: &Path) -> Option<(u64, u64, u64, i128)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
    ))
}

/// Temporary files are created private (0600); outputs are ordinary files (0644).
pub fn make_readable(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
    }
}

/// This process's umask (from /proc/self/status; 022 where that cannot be read).
pub fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("Umask:"))?;
            u32::from_str_radix(line.split_whitespace().nth(1)?, 8).ok()
        })
        .unwrap_or(0o022)
}

/// Gives a folder made by a temporary-folder helper (mode 0700) the mode a new folder gets:
/// 0777 minus the umask (0755 with the usual 022), so that others can open what is in it.
pub fn make_dir_readable(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777 & !umask()));
    }
}

/// [`write_atomic`] for a whole byte string.
pub fn write_atomic_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| Ok(w.write_all(bytes)?))
}

/// Marker between a target's name and the writer's identity in our temporary files:
/// `.NAME.mtkit-PID@HOST.XXXXXX.part`.
const TEMP_MARK: &str = ".mtkit-";

/// Temporary files of other hosts (a shared file system) or of older mtkit versions, whose
/// writer cannot be asked whether it still runs, count as stale after this long.
const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// This host's name as it appears in mtkit's temporary file names (characters other than
/// ASCII letters, digits and `-` replaced by `_`).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and we stop at the first NUL either way.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    // Keep the file name parseable and portable.
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "localhost".into()
    } else {
        clean
    }
}

/// A temporary file beside `path` that [`write_atomic`] (or a caller writing through another
/// library, such as a checkpoint writer) persists over `path` once complete. Its name says
/// which process on which host writes it, so that the first write into a folder can remove
/// the leftovers of interrupted writes there ([`remove_stale_parts`]) without touching the
/// files of a writer that is still running.
pub fn temp_file_for(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create folder {}", dir.display()))?;
    remove_stale_parts_once(&dir);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(
            ".{name}{TEMP_MARK}{}@{}.",
            std::process::id(),
            host_name()
        ))
        .suffix(".part")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))
}

/// A temporary folder beside `target` (same file system), named as [`temp_file_for`] names
/// files, so that an interrupted write is swept like one; fill it, then [`install_dir`] it.
pub fn temp_dir_for(target: &Path) -> Result<tempfile::TempDir> {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create folder {}", dir.display()))?;
    remove_stale_parts_once(&dir);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(
            ".{name}{TEMP_MARK}{}@{}.",
            std::process::id(),
            host_name()
        ))
        .suffix(".part")
        .tempdir_in(&dir)
        .with_context(|| format!("cannot create a temporary folder in {}", dir.display()))
}

/// Puts the complete folder `tmp` at `target` in one step, replacing whatever is there (a
/// folder, a file): renamed into place, or, where `target` exists, swapped with it atomically
/// (`renameat2(RENAME_EXCHANGE)`) and the old one removed after. A reader, or another writer
/// doing the same at the same time, sees the old whole or a new whole, never a mix. Gives the
/// folder the mode a new folder gets (0777 minus the umask).
pub fn install_dir(tmp: tempfile::TempDir, target: &Path) -> Result<()> {
    install(tmp, target, false)
}

/// [`install_dir`] where only a folder may be replaced: a file or a link that appeared at
/// `target` while the folder was written (checked first with [`folder_destination`]) is put
/// back and the write refused, so that nothing of the user's is removed.
pub fn install_dir_over_folder(tmp: tempfile::TempDir, target: &Path) -> Result<()> {
    install(tmp, target, true)
}

fn install(tmp: tempfile::TempDir, target: &Path, folders_only: bool) -> Result<()> {
    let tmp = tmp.keep();
    make_dir_readable(&tmp);
    let fail = |e: std::io::Error, tmp: &Path| {
        let _ = std::fs::remove_dir_all(tmp);
        Err(e).with_context(|| format!("cannot put {} in place", target.display()))
    };
    for _ in 0..100 {
        match std::fs::rename(&tmp, target) {
            Ok(()) => return Ok(()),
            Err(e) if std::fs::symlink_metadata(target).is_err() => {
                if e.kind() == std::io::ErrorKind::NotFound {
                    continue;
                }
                return fail(e, &tmp);
            }
            Err(_) => {}
        }
        // `target` exists and is not an empty folder: swap.
        let c = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("no NUL in a path")
        };
        let (a, b) = (c(&tmp), c(target));
        // SAFETY: two NUL-terminated paths; renameat2 only reads them.
        let exchange = || unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        let rc = exchange();
        if rc == 0 {
            // `tmp` now holds what was there.
            let old = std::fs::symlink_metadata(&tmp);
            if folders_only && !old.as_ref().is_ok_and(|m| m.is_dir()) {
                // Not a folder: swap back, and leave it as it was.
                exchange();
                return fail(
                    std::io::Error::other(
                        "a file or link appeared there while mtkit wrote; it is left as it was",
                    ),
                    &tmp,
                );
            }
            let removed = match old {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&tmp),
                _ => std::fs::remove_file(&tmp),
            };
            return removed.with_context(|| format!("cannot remove the old {}", target.display()));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            // Gone between the two calls: rename again.
            Some(libc::ENOENT) => continue,
            // A file system without the exchange: move the old aside first.
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => {
                if folders_only && !std::fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
                    return fail(
                        std::io::Error::other(
                            "a file or link appeared there while mtkit wrote; it is left as it was",
                        ),
                        &tmp,
                    );
                }
                let aside = tmp.with_extension("old");
                if let Err(e) = std::fs::rename(target, &aside) {
                    return fail(e, &tmp);
                }
                if let Err(e) = std::fs::rename(&tmp, target) {
                    let _ = std::fs::rename(&aside, target);
                    return fail(e, &tmp);
                }
                let removed = if aside.is_dir() {
                    std::fs::remove_dir_all(&aside)
                } else {
                    std::fs::remove_file(&aside)
                };
                return removed
                    .with_context(|| format!("cannot remove the old {}", target.display()));
            }
            _ => return fail(e, &tmp),
        }
    }
    fail(
        std::io::Error::other("it kept changing under another writer"),
        &tmp,
    )
}

/// [`remove_stale_parts`] at most once per folder and process: the first write into a folder
/// pays for one directory listing.
fn remove_stale_parts_once(dir: &Path) {
    static SWEPT: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    {
        let mut swept = SWEPT.lock().unwrap_or_else(|e| e.into_inner());
        if !swept.get_or_insert_with(HashSet::new).insert(key) {
            return;
        }
    }
    let _ = remove_stale_parts(dir);
}

/// Who wrote a temporary file, read from its name.
#[derive(Debug, PartialEq, Eq)]
enum PartWriter {
    /// `.NAME.mtkit-PID@HOST.XXXXXX.part`.
    Process { pid: u32, host: String },
    /// `.NAME.XXXXXX.part` or `.ckptXXXXXX.part`: written by mtkit before writers were named.
    Unnamed,
}

/// Parses the name of one of our temporary files; `None` for any other file.
fn part_writer(file_name: &str) -> Option<PartWriter> {
    // The runs folders of `profile --memory` before they were named by process were
    // `.mtkit-runs-` + 6 random alphanumerics (no `.part`).
    if let Some(r) = file_name.strip_prefix(".mtkit-runs-") {
        return (r.len() == 6 && r.chars().all(|c| c.is_ascii_alphanumeric()))
            .then_some(PartWriter::Unnamed);
    }
    let inner = file_name.strip_prefix('.')?.strip_suffix(".part")?;
    if let Some(at) = inner.rfind(TEMP_MARK) {
        let rest = &inner[at + TEMP_MARK.len()..];
        let (who, random) = rest.rsplit_once('.')?;
        let (pid, host) = who.split_once('@')?;
        if random.is_empty() || host.is_empty() {
            return None;
        }
        return Some(PartWriter::Process {
            pid: pid.parse().ok()?,
            host: host.to_string(),
        });
    }
    // Older names: `.ckpt` + random, or `.NAME.` + 6 random alphanumerics.
    let random = match inner.strip_prefix("ckpt") {
        Some(r) if !r.contains('.') => r,
        _ => inner.rsplit_once('.')?.1,
    };
    (random.len() == 6 && random.chars().all(|c| c.is_ascii_alphanumeric()))
        .then_some(PartWriter::Unnamed)
}

fn process_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Removes the temporary files of interrupted writes in `dir`: ours by name (see
/// [`temp_file_for`]) whose writer process on this host no longer runs, or which are older
/// than a day (other hosts, older mtkit versions). Returns the files removed.
pub fn remove_stale_parts(dir: &Path) -> Result<Vec<PathBuf>> {
    let host = host_name();
    let me = std::process::id();
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(writer) = part_writer(&name) else {
            continue;
        };
        let old = || {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > STALE_AFTER)
        };
        let stale = match writer {
            PartWriter::Process { pid, host: h } if h == host => pid != me && !process_alive(pid),
            _ => old(),
        };
        if !stale {
            continue;
        }
        let gone = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(entry.path())
        } else {
            std::fs::remove_file(entry.path())
        };
        if gone.is_ok() {
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_recognised() {
        assert_eq!(
            part_writer(".runs.csv.mtkit-4242@node-7.Ab3xYz.part"),
            Some(PartWriter::Process {
                pid: 4242,
                host: "node-7".into()
            })
        );
        assert_eq!(
            part_writer(".c4.parquet.Ab3xYz.part"),
            Some(PartWriter::Unnamed)
        );
        assert_eq!(part_writer(".ckptAb3xYz.part"), Some(PartWriter::Unnamed));
        assert_eq!(part_writer(".mtkit-runs-Ab3xYz"), Some(PartWriter::Unnamed));
        assert_eq!(
            part_writer(".mtkit-runs.mtkit-17@n1.Ab3xYz.part"),
            Some(PartWriter::Process {
                pid: 17,
                host: "n1".into()
            })
        );
        // Not ours: a user's file, a visible file, a different suffix.
        assert_eq!(part_writer(".notes.part"), None);
        assert_eq!(part_writer("data.csv.Ab3xYz.part"), None);
        assert_eq!(part_writer(".c4.parquet.Ab3xYz.tmp"), None);
    }

    #[test]
    fn stale_parts_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_name();
        // A process id that cannot exist (above Linux's pid_max limit of 2^22).
        let dead = dir
            .path()
            .join(format!(".a.csv.mtkit-99999999@{host}.Ab3xYz.part"));
        let live = dir.path().join(format!(
            ".b.csv.mtkit-{}@{host}.Cd4xYz.part",
            std::process::id()
        ));
        let other_host = dir.path().join(".c.csv.mtkit-1@elsewhere.Ef5xYz.part");
        let young_legacy = dir.path().join(".d.csv.Gh6xYz.part");
        let old_legacy = dir.path().join(".ckptIj7xYz.part");
        let users = dir.path().join(".notes.part");
        for p in [
            &dead,
            &live,
            &other_host,
            &young_legacy,
            &old_legacy,
            &users,
        ] {
            std::fs::write(p, b"x").unwrap();
        }
        let two_days_ago = SystemTime::now() - Duration::from_secs(48 * 3600);
        std::fs::File::options()
            .write(true)
            .open(&old_legacy)
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();
        let mut removed = remove_stale_parts(dir.path()).unwrap();
        removed.sort();
        let mut expected = vec![dead.clone(), old_legacy.clone()];
        expected.sort();
        assert_eq!(removed, expected);
        for p in [&live, &other_host, &young_legacy, &users] {
            assert!(p.exists(), "{}", p.display());
        }
    }
}
