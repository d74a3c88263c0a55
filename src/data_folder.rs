//! The Keboola data folder: where config.json is read and every output goes.
//!
//! Keboola uploads every file under `out/tables`, `out/files` and `artifacts/out`, so nothing may
//! ever be half-written there. Every output is written to a scratch file first and renamed into
//! place when complete. The scratch folder sits inside the data folder, outside `out/`, because a
//! rename is atomic only within one file system and Keboola mounts `/tmp` separately.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::Result;
use log::warn;
use tempfile::NamedTempFile;

use crate::error::UserError;

pub struct DataFolder {
    root: PathBuf,
    /// This process's own: two instances on one data folder never touch each other's.
    scratch: PathBuf,
}

impl DataFolder {
    pub fn new(root: PathBuf) -> DataFolder {
        let scratch = root.join(format!(
            ".dbt-cloud-job-trigger.{}-{:08x}.tmp",
            std::process::id(),
            fastrand::u32(..)
        ));
        DataFolder { root, scratch }
    }

    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.json")
    }

    pub fn tables_dir(&self) -> PathBuf {
        self.root.join("out").join("tables")
    }

    /// Files here are uploaded to File Storage, each with its `.manifest`.
    pub fn files_dir(&self) -> PathBuf {
        self.root.join("out").join("files")
    }

    /// Files here are kept by Keboola's artifacts feature after a successful job.
    pub fn artifacts_dir(&self) -> PathBuf {
        self.root.join("artifacts").join("out").join("current")
    }

    /// The scratch folder, for the signal watchdog to remove when it cannot wait for `Drop`.
    pub fn scratch_dir(&self) -> &Path {
        &self.scratch
    }

    /// An empty scratch file, removed unless [`Self::persist`] moves it into place.
    pub fn scratch_file(&self) -> Result<NamedTempFile> {
        match fs::create_dir(&self.scratch) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && self.scratch.is_dir() => {}
            Err(e) => return Err(local_failure("could not create", &self.scratch, &e)),
        }
        NamedTempFile::new_in(&self.scratch)
            .map_err(|e| local_failure("could not create a file in", &self.scratch, &e))
    }

    /// Moves a complete scratch file to `destination`, creating its folders. A symbolic link on
    /// the way is replaced by a folder, never followed: nothing lands outside the data folder.
    pub fn persist(&self, file: NamedTempFile, destination: &Path) -> Result<()> {
        if let Some(parent) = destination.parent() {
            self.real_folder(parent)?;
        }
        // No fsync: Keboola uploads outputs only after the process exits, and a crash of the
        // machine fails the job anyway. The rename is what keeps half-written files out of sight,
        // and thousands of fsyncs would cost seconds on a large dbt project. A rename over a
        // symbolic link replaces the link, not its target.
        file.persist(destination)
            .map_err(|e| local_failure("could not write", destination, &e.error))?;
        Ok(())
    }

    /// Writes `destination` whole or not at all.
    pub fn write_atomically(
        &self,
        destination: &Path,
        write: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        let file = self.scratch_file()?;
        {
            let mut writer = BufWriter::new(Labelled::new(file.as_file(), destination));
            let written = write(&mut writer).and_then(|()| Ok(writer.flush()?));
            if let Err(error) = written {
                // A failure of the disk is the user's to see; anything else is ours.
                return Err(
                    match error.chain().find_map(|c| c.downcast_ref::<io::Error>()) {
                        Some(io) => UserError::new(format!("could not write {io}")).into(),
                        None => error.context(format!("could not write {}", destination.display())),
                    },
                );
            }
        }
        self.persist(file, destination)
    }

    /// Checks, before anything is sent to dbt Cloud, that every place the job will write to is
    /// there and writable (this process's scratch folder, and `places`, each below the data
    /// folder with what to call it): a run triggered and then not recorded would be an orphan. A
    /// folder is made when missing and a probe file made and removed in it; a file must be
    /// replaceable; a folder of folders must have nothing but folders where the job writes one.
    pub fn check_writable(&self, places: &[(&str, Place)]) -> Result<()> {
        let unwritable = |what: &str, path: &Path, error: &dyn std::fmt::Display| {
            UserError::new(format!(
                "The data folder cannot be written where the job writes {what} ({}): {error}. \
                 Nothing was triggered. Keboola runs the container as the data folder's owner; \
                 locally, run it as the folder's owner (docker run --user \"$(id -u):$(id -g)\") \
                 or make the folder writable.",
                path.display()
            ))
        };
        let scratch = self
            .scratch_file()
            .map_err(|e| unwritable("its scratch files", &self.root, &format!("{e:#}")))?;
        // Who this process is, as the file system sees it: the owner of what it makes.
        let me = fs::metadata(scratch.path())
            .map_err(|e| unwritable("its scratch files", &self.root, &e))?
            .uid();
        drop(scratch);
        for (what, place) in places {
            match place {
                Place::Folder(folder) => {
                    self.real_folder(folder)
                        .map_err(|e| unwritable(what, folder, &format!("{e:#}")))?;
                    tempfile::Builder::new()
                        .prefix(".dbt-cloud-job-trigger-probe")
                        .tempfile_in(folder)
                        .map_err(|e| unwritable(what, folder, &e))?;
                }
                Place::File(file) => {
                    replaceable(file, me).map_err(|e| unwritable(what, file, &e))?;
                }
                Place::Folders(folder) => {
                    only_folders_in(folder).map_err(|(path, e)| unwritable(what, &path, &e))?;
                }
            }
        }
        Ok(())
    }

    /// Makes `folder` (below the data folder) a real folder, component by component.
    fn real_folder(&self, folder: &Path) -> Result<()> {
        let relative = folder.strip_prefix(&self.root).map_err(|_| {
            UserError::new(format!(
                "refusing to write {} outside the data folder {}",
                folder.display(),
                self.root.display()
            ))
        })?;
        let mut path = self.root.clone();
        for component in relative.components() {
            let Component::Normal(name) = component else {
                return Err(UserError::new(format!(
                    "refusing to write to {}: it is not a plain path below the data folder",
                    folder.display()
                ))
                .into());
            };
            path.push(name);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => continue,
                Ok(meta) if meta.file_type().is_symlink() => {
                    warn!(
                        "{} is a symbolic link; replacing it with a folder rather than writing through it",
                        path.display()
                    );
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        // Another download removed it meanwhile, or has made the folder in its
                        // place already.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(_) if fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir()) => {
                            continue
                        }
                        Err(e) => {
                            return Err(local_failure("could not remove the link", &path, &e))
                        }
                    }
                }
                Ok(_) => {
                    return Err(UserError::new(format!(
                        "could not write below {}: it is a file, not a folder",
                        path.display()
                    ))
                    .into())
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(local_failure("could not read", &path, &e)),
            }
            match fs::create_dir(&path) {
                Ok(()) => {}
                // Another download made it meanwhile.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
                Err(e) => return Err(local_failure("could not create the folder", &path, &e)),
            }
        }
        Ok(())
    }
}

/// A place the job writes, as [`DataFolder::check_writable`] checks it.
pub enum Place {
    /// A folder the job writes files into.
    Folder(PathBuf),
    /// A file the job writes, in a folder checked as a [`Place::Folder`]: replaced by a rename.
    File(PathBuf),
    /// A folder, in a folder checked as a [`Place::Folder`], whose entries the job makes
    /// folders (`steps/<N>/`): none of them may be something else.
    Folders(PathBuf),
}

/// Whether a rename can replace `file` (when it exists), for the user `me`: not when it is a
/// folder or anything else than a file or a link, nor in a folder with the sticky bit (as
/// `/tmp`) when neither it nor its folder is `me`'s.
fn replaceable(file: &Path, me: u32) -> io::Result<()> {
    let meta = match fs::symlink_metadata(file) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    if meta.is_dir() {
        return Err(io::Error::other(
            "it is a folder, where the job writes a file",
        ));
    }
    if !meta.is_file() && !meta.file_type().is_symlink() {
        return Err(io::Error::other(
            "it is not a file, where the job writes one",
        ));
    }
    let folder = fs::metadata(file.parent().unwrap_or(Path::new(".")))?;
    const STICKY: u32 = 0o1000;
    if me != 0 && folder.mode() & STICKY != 0 && meta.uid() != me && folder.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "it belongs to another user, in a folder where only a file's owner may replace it",
        ));
    }
    Ok(())
}

/// `folder`'s entries, when it exists, are folders (or links, which are replaced by folders):
/// else the path that is not one, and why.
fn only_folders_in(folder: &Path) -> Result<(), (PathBuf, io::Error)> {
    let not_a_folder = |path: &Path| {
        (
            path.to_owned(),
            io::Error::other("it is a file, where the job writes a folder"),
        )
    };
    match fs::symlink_metadata(folder) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err((folder.to_owned(), e)),
        Ok(meta) if meta.file_type().is_symlink() => return Ok(()),
        Ok(meta) if !meta.is_dir() => return Err(not_a_folder(folder)),
        Ok(_) => {}
    }
    let entries = fs::read_dir(folder).map_err(|e| (folder.to_owned(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| (folder.to_owned(), e))?;
        let kind = entry.file_type().map_err(|e| (entry.path(), e))?;
        if !kind.is_dir() && !kind.is_symlink() {
            return Err(not_a_folder(&entry.path()));
        }
    }
    Ok(())
}

/// A failure of this machine's disk: the path and the OS's reason, no retries, exit 1.
fn local_failure(what: &str, path: &Path, error: &io::Error) -> anyhow::Error {
    UserError::new(format!("{what} {}: {error}", path.display())).into()
}

/// A writer whose errors name the file they were meant for.
pub struct Labelled<'a, W> {
    inner: W,
    label: &'a Path,
}

impl<'a, W: Write> Labelled<'a, W> {
    pub fn new(inner: W, label: &'a Path) -> Labelled<'a, W> {
        Labelled { inner, label }
    }

    pub fn into_inner(self) -> W {
        self.inner
    }

    fn label(&self, error: io::Error) -> io::Error {
        io::Error::new(error.kind(), format!("{}: {error}", self.label.display()))
    }
}

impl<W: Write> Write for Labelled<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.label(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.label(e))
    }
}

impl Drop for DataFolder {
    /// Scratch files left by a failure are useless; the folder must not linger in the data folder.
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.scratch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let root = tempfile::tempdir().unwrap();
        let folder = DataFolder::new(root.path().to_owned());
        let destination = folder.tables_dir().join("t.csv");
        let result = folder.write_atomically(&destination, |w| {
            w.write_all(b"half")?;
            anyhow::bail!("boom")
        });
        assert!(result.is_err());
        assert!(!destination.exists());
        drop(folder);
        let left: Vec<_> = fs::read_dir(root.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_complete_write_lands_and_the_scratch_folder_goes() {
        let root = tempfile::tempdir().unwrap();
        let folder = DataFolder::new(root.path().to_owned());
        let destination = folder.tables_dir().join("t.csv");
        folder
            .write_atomically(&destination, |w| Ok(w.write_all(b"a,b\n")?))
            .unwrap();
        let scratch = folder.scratch_dir().to_owned();
        drop(folder);
        assert_eq!(fs::read(&destination).unwrap(), b"a,b\n");
        assert!(!scratch.exists());
    }
}

#[cfg(test)]
mod link_tests {
    use super::*;

    /// A data folder whose `artifacts/.../compiled` is a link to a folder outside it.
    fn with_a_link() -> (tempfile::TempDir, tempfile::TempDir, DataFolder) {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let folder = DataFolder::new(root.path().to_owned());
        fs::create_dir_all(folder.artifacts_dir()).unwrap();
        std::os::unix::fs::symlink(outside.path(), folder.artifacts_dir().join("compiled"))
            .unwrap();
        (root, outside, folder)
    }

    #[test]
    fn a_symbolic_link_on_the_way_is_replaced_never_followed() {
        let (_root, outside, folder) = with_a_link();
        let destination = folder.artifacts_dir().join("compiled/x.sql");
        folder
            .write_atomically(&destination, |w| Ok(w.write_all(b"select 1")?))
            .unwrap();
        assert_eq!(fs::read(&destination).unwrap(), b"select 1");
        assert!(fs::read_dir(outside.path()).unwrap().next().is_none());
        assert!(
            !fs::symlink_metadata(folder.artifacts_dir().join("compiled"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    /// Eight downloads into one folder that is a link: each replaces it or finds it replaced.
    #[test]
    fn downloads_racing_to_replace_one_link_all_succeed() {
        for _ in 0..100 {
            let (_root, outside, folder) = with_a_link();
            let start = std::sync::Barrier::new(8);
            std::thread::scope(|scope| {
                for i in 0..8 {
                    let (folder, start) = (&folder, &start);
                    scope.spawn(move || {
                        start.wait();
                        let destination = folder.artifacts_dir().join(format!("compiled/m{i}.sql"));
                        folder
                            .write_atomically(&destination, |w| Ok(w.write_all(b"select 1")?))
                            .unwrap();
                    });
                }
            });
            assert!(fs::read_dir(outside.path()).unwrap().next().is_none());
        }
    }

    #[test]
    fn two_folders_on_one_root_have_their_own_scratch() {
        let root = tempfile::tempdir().unwrap();
        let first = DataFolder::new(root.path().to_owned());
        let second = DataFolder::new(root.path().to_owned());
        let file = second.scratch_file().unwrap();
        first.scratch_file().unwrap();
        drop(first);
        second
            .persist(file, &second.tables_dir().join("t.csv"))
            .unwrap();
    }
}
