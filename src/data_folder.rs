//! The Keboola data folder: where config.json is read and every output goes.
//!
//! Keboola uploads every file under `out/tables`, `out/files` and `artifacts/out`, so nothing may
//! ever be half-written there. Every output is written to a scratch file first and renamed into
//! place when complete. The scratch folder sits inside the data folder, outside `out/`, because a
//! rename is atomic only within one file system and Keboola mounts `/tmp` separately.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

const SCRATCH_DIR: &str = ".dbt-cloud-job-trigger.tmp";

pub struct DataFolder {
    root: PathBuf,
}

impl DataFolder {
    pub fn new(root: PathBuf) -> DataFolder {
        DataFolder { root }
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

    /// An empty scratch file, removed unless [`Self::persist`] moves it into place.
    pub fn scratch_file(&self) -> Result<NamedTempFile> {
        let dir = self.root.join(SCRATCH_DIR);
        fs::create_dir_all(&dir)
            .with_context(|| format!("could not create the scratch folder {}", dir.display()))?;
        NamedTempFile::new_in(&dir)
            .with_context(|| format!("could not create a scratch file in {}", dir.display()))
    }

    /// Moves a complete scratch file to `destination`, creating its folders.
    pub fn persist(&self, file: NamedTempFile, destination: &Path) -> Result<()> {
        if let Some(parent) = destination.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("could not create the folder {}", parent.display()))?;
        }
        // No fsync: Keboola uploads outputs only after the process exits, and a crash of the
        // machine fails the job anyway. The rename is what keeps half-written files out of sight,
        // and thousands of fsyncs would cost seconds on a large dbt project.
        file.persist(destination)
            .with_context(|| format!("could not move the output into {}", destination.display()))?;
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
            let mut writer = BufWriter::new(file.as_file());
            write(&mut writer)
                .with_context(|| format!("could not write {}", destination.display()))?;
            writer
                .flush()
                .with_context(|| format!("could not write {}", destination.display()))?;
        }
        self.persist(file, destination)
    }
}

impl Drop for DataFolder {
    /// Scratch files left by a failure are useless; the folder must not linger in the data folder.
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(self.root.join(SCRATCH_DIR));
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
        drop(folder);
        assert_eq!(fs::read(&destination).unwrap(), b"a,b\n");
        assert!(!root.path().join(SCRATCH_DIR).exists());
    }
}
