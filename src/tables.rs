//! The output tables as written: each CSV and its manifest, whole or not at all, by one
//! [`Writer`]; every cell masked and bounded on its way out. Their columns are in
//! [`columns`].

use std::io::{BufWriter, Seek, SeekFrom, Write};

use anyhow::Result;
use log::info;
use serde_json::{json, Value};
use tempfile::NamedTempFile;

use crate::chain::Chain;
use crate::data_folder::DataFolder;
use crate::dbt_cloud::Run;
use crate::error::Bug;
use crate::text::{counted, plural};

mod columns;

pub use columns::{cell, freshness_row, result_row, Column, StepCells, Table};
use columns::{link_row, step_row, Base};

impl Table {
    /// Incremental on its key, and `write_always`, so that a failed job still records its run.
    fn manifest(self, bucket: &str, typed: bool) -> Value {
        let mut manifest = json!({
            "destination": format!("{bucket}.{}", self.name()),
            "incremental": true,
            "write_always": true,
            "delimiter": ",",
            "enclosure": "\"",
        });
        let columns = self.columns();
        let key = |column: &Column| self.primary_key().contains(&column.name);
        if typed {
            manifest["manifest_type"] = json!("output");
            manifest["has_header"] = json!(true);
            manifest["description"] = json!(self.description());
            manifest["schema"] = columns
                .iter()
                .map(|column| {
                    json!({
                        "name": column.name,
                        "data_type": {"base": {"type": column.base.name()}},
                        "nullable": !key(column),
                        "primary_key": key(column),
                        "description": column.description,
                    })
                })
                .collect();
        } else {
            manifest["primary_key"] = json!(self.primary_key());
            manifest["metadata"] = json!([{"key": "KBC.description", "value": self.description()}]);
            manifest["column_metadata"] = columns
                .iter()
                .map(|column| {
                    let metadata = json!([
                        {"key": "KBC.datatype.basetype", "value": column.base.name()},
                        {"key": "KBC.datatype.nullable", "value": if key(column) { "0" } else { "1" }},
                        {"key": "KBC.description", "value": column.description},
                    ]);
                    (column.name.to_owned(), metadata)
                })
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        manifest
    }
}

/// The Storage bucket the earlier component wrote to, which downstream SQL reads.
pub fn bucket_for(config_id: Option<&str>) -> String {
    let id = config_id
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .unwrap_or("000000000");
    let id: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("in.c-dbt-cloud-job-trigger-{id}")
}

/// Rows of one table, checked against its columns.
pub struct Rows<'a> {
    table: Table,
    /// The base type of each column when the table is typed; empty when it is not.
    typed: Vec<Base>,
    width: usize,
    writer: csv::Writer<&'a mut dyn Write>,
    count: usize,
    /// Cells left empty because they are not of their typed column's type: per column, how many
    /// and the first.
    blanked: Vec<(&'static str, usize, String)>,
}

impl<'a> Rows<'a> {
    fn new(table: Table, typed: bool, out: &'a mut dyn Write) -> Rows<'a> {
        let columns = table.columns();
        Rows {
            table,
            typed: match typed {
                true => columns.iter().map(|column| column.base).collect(),
                false => Vec::new(),
            },
            width: columns.len(),
            writer: csv::WriterBuilder::new()
                .terminator(csv::Terminator::Any(b'\n'))
                .from_writer(out),
            count: 0,
            blanked: Vec::new(),
        }
    }

    /// In a typed table, a cell that is not of its column's type would make Storage refuse the
    /// whole table (a `failures` of "Test failure" in an INTEGER column): it is left empty, and
    /// counted for a warning.
    fn fitted(&mut self, index: usize, cell: Vec<u8>) -> Vec<u8> {
        let Some(base) = self.typed.get(index) else {
            return cell;
        };
        if cell.is_empty() || fits(*base, &cell) {
            return cell;
        }
        let column = self.table.columns()[index].name;
        let shown = crate::text::cut(&String::from_utf8_lossy(&cell));
        match self.blanked.iter_mut().find(|(name, ..)| *name == column) {
            Some((_, count, _)) => *count += 1,
            None => self.blanked.push((column, 1, shown)),
        }
        Vec::new()
    }

    pub fn row<I, S>(&mut self, cells: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        // The sink of every cell: the token masked where a server echoed it, and no cell past
        // Keboola's limit.
        let record: csv::ByteRecord = cells
            .into_iter()
            .enumerate()
            .map(|(index, cell)| {
                let cell = kept(cell.as_ref());
                self.fitted(index, cell)
            })
            .collect();
        if record.len() != self.width {
            return Err(Bug(format!(
                "a row of {} has {} cells for {} columns",
                self.table.name(),
                record.len(),
                self.width
            ))
            .into());
        }
        self.writer.write_byte_record(&record)?;
        self.count += 1;
        Ok(())
    }
}

/// One warning per column of a typed table whose cells were left empty, as they were not of its
/// type.
fn warn_of_blanked(table: Table, blanked: Vec<(&'static str, usize, String)>) {
    let mut columns: Vec<(&'static str, usize, String)> = Vec::new();
    for (column, count, first) in blanked {
        match columns.iter_mut().find(|(name, ..)| *name == column) {
            Some((_, total, _)) => *total += count,
            None => columns.push((column, count, first)),
        }
    }
    for (column, count, first) in columns {
        let base = table
            .columns()
            .into_iter()
            .find(|c| c.name == column)
            .map_or("typed", |c| c.base.name());
        log::warn!(
            "{}.{column}: {} that {} not {base} left empty (the first: {first:?}), \
             as the table is typed and Storage would refuse it whole",
            table.name(),
            counted(count, "value", "values"),
            plural(count, "is", "are"),
        );
    }
}

/// Whether `cell` is a value of the Storage type `base`, as Storage reads one from CSV.
fn fits(base: Base, cell: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(cell) else {
        return base == Base::String;
    };
    match base {
        Base::String => true,
        Base::Integer => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        }
        Base::Float => text.parse::<f64>().is_ok_and(f64::is_finite),
        Base::Boolean => matches!(text, "true" | "false"),
        // A date first, as every timestamp dbt and dbt Cloud write begins.
        Base::Timestamp => {
            let bytes = text.as_bytes();
            bytes.len() >= 10
                && bytes[..10].iter().enumerate().all(|(i, b)| match i {
                    4 | 7 => *b == b'-',
                    _ => b.is_ascii_digit(),
                })
        }
    }
}

/// Keboola refuses a cell larger than 16 MB; the fields are bounded far below that already
/// (`FIELD_BUDGET` of a run), so this only guards what nothing else bounds.
const CELL_LIMIT: usize = 4_000_000;

/// A cell as written: the token masked, and cut when longer than [`CELL_LIMIT`].
fn kept(cell: &[u8]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(cell) else {
        return cell.to_vec();
    };
    let text = crate::secret::mask(text);
    if text.len() <= CELL_LIMIT {
        return text.into_owned().into_bytes();
    }
    let mut end = CELL_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text[end..].chars().count();
    format!("{}{}", &text[..end], crate::long_strings::mark(cut as u64)).into_bytes()
}

/// A table's CSV (`csv`) or its manifest (`csv.manifest`).
fn file_of(folder: &DataFolder, table: Table, kind: &str) -> std::path::PathBuf {
    folder.tables_dir().join(format!("{}.{kind}", table.name()))
}

/// Every file the tables may be written to: each table's CSV and manifest.
pub fn files(folder: &DataFolder) -> Vec<std::path::PathBuf> {
    Table::ALL
        .iter()
        .flat_map(|table| ["csv", "csv.manifest"].map(|kind| file_of(folder, *table, kind)))
        .collect()
}

/// Writes the tables of one job into `out/tables`: each CSV and its manifest whole or not at all,
/// into the job's bucket, with native-types manifests when the project uses them (else legacy
/// ones with the base types as column metadata).
pub struct Writer<'a> {
    folder: &'a DataFolder,
    bucket: String,
    typed: bool,
}

impl<'a> Writer<'a> {
    pub fn new(folder: &'a DataFolder, bucket: String, typed: bool) -> Writer<'a> {
        Writer {
            folder,
            bucket,
            typed,
        }
    }

    pub fn folder(&self) -> &'a DataFolder {
        self.folder
    }

    /// A run table (trigger or run): the one row of `run`.
    pub fn run(&self, table: Table, run: &Run) -> Result<()> {
        let columns = table.columns();
        self.write(table, |rows| {
            rows.row(
                columns
                    .iter()
                    .map(|column| cell(run.cell(column.name).as_deref())),
            )
        })?;
        info!(
            "Wrote table {} (run {}, {})",
            table.name(),
            run.id,
            run.status
        );
        Ok(())
    }

    /// The run as last seen and its steps, with the runs of its chain and their steps and
    /// which run started which (when the chain is waited for): the run tables, written whole
    /// after each change.
    pub fn run_tables(&self, run: &Run, chain: Option<&Chain>) -> Result<()> {
        let Some(chain) = chain else {
            self.run(Table::Run, run)?;
            let steps = self.run_steps(&[run])?;
            info!(
                "Wrote table {} ({})",
                Table::RunSteps.name(),
                counted(steps, "step", "steps")
            );
            return Ok(());
        };
        let runs: Vec<&Run> = std::iter::once(run).chain(chain.runs()).collect();
        let columns = Table::Run.columns();
        self.write(Table::Run, |rows| {
            runs.iter().try_for_each(|run| {
                rows.row(
                    columns
                        .iter()
                        .map(|column| cell(run.cell(column.name).as_deref())),
                )
            })
        })?;
        let steps = self.run_steps(&runs)?;
        let links = self.write(Table::RunChain, |rows| {
            chain
                .links
                .iter()
                .try_for_each(|link| rows.row(link_row(link)))
        })?;
        // Written again at each change of the chain, which its own lines tell: said once it ended.
        let level = match chain.unfinished().next() {
            None => log::Level::Info,
            Some(_) => log::Level::Debug,
        };
        log::log!(
            level,
            "Wrote tables {} (run {}, {}, and {} chained), {} ({}) and {} ({})",
            Table::Run.name(),
            run.id,
            run.status,
            runs.len() - 1,
            Table::RunSteps.name(),
            counted(steps, "step", "steps"),
            Table::RunChain.name(),
            counted(links, "chained job", "chained jobs")
        );
        Ok(())
    }

    /// A row per step of each run (none for a run that has not started).
    fn run_steps(&self, runs: &[&Run]) -> Result<usize> {
        self.write(Table::RunSteps, |rows| {
            runs.iter().try_for_each(|run| {
                let run_id = run.id.to_string();
                run.steps
                    .iter()
                    .try_for_each(|step| rows.row(step_row(&run_id, step)))
            })
        })
    }

    /// A table whose rows come in parts (a run step's file each), every part kept whole or left
    /// out: `fill` writes a part's rows and says whether to keep them (`None`: a part already
    /// written under another name); a part whose `fill` fails (a file that is not what it should
    /// be) is left out, its error returned in its place. Each part goes to a scratch file first,
    /// so that memory stays flat however many rows it has. Returns the rows written and each
    /// part's outcome; no table when no part was kept; `Err` when the table itself could not be
    /// written.
    #[allow(clippy::type_complexity)]
    pub fn parts<P, T>(
        &self,
        table: Table,
        parts: &[P],
        mut fill: impl FnMut(&P, &mut Rows) -> Result<Option<T>>,
    ) -> Result<(usize, Vec<Result<Option<T>>>)> {
        let mut kept: Vec<(NamedTempFile, usize)> = Vec::new();
        let mut outcomes = Vec::with_capacity(parts.len());
        let mut blanked = Vec::new();
        for part in parts {
            let scratch = self.folder.scratch_file()?;
            let filled = {
                let mut out = BufWriter::new(scratch.as_file());
                let mut rows = Rows::new(table, self.typed, &mut out);
                fill(part, &mut rows).and_then(|value| {
                    rows.writer.flush()?;
                    Ok((value, rows.count, rows.blanked))
                })
            };
            outcomes.push(filled.map(|(value, count, blanked_here)| {
                if value.is_some() {
                    kept.push((scratch, count));
                    blanked.extend(blanked_here);
                }
                value
            }));
        }
        if kept.is_empty() {
            return Ok((0, outcomes));
        }
        warn_of_blanked(table, blanked);
        let count = self.write_csv(table, |out| {
            let mut count = 0;
            for (part, rows) in &mut kept {
                let part = part.as_file_mut();
                part.seek(SeekFrom::Start(0))?;
                std::io::copy(part, out)?;
                count += *rows;
            }
            Ok(count)
        })?;
        Ok((count, outcomes))
    }

    /// `<table>.csv`, its rows given by `rows`, and its manifest. Returns the number of rows.
    fn write(&self, table: Table, rows: impl FnOnce(&mut Rows) -> Result<()>) -> Result<usize> {
        let mut blanked = Vec::new();
        let count = self.write_csv(table, |out| {
            let mut written = Rows::new(table, self.typed, out);
            rows(&mut written)?;
            written.writer.flush()?;
            blanked = std::mem::take(&mut written.blanked);
            Ok(written.count)
        })?;
        warn_of_blanked(table, blanked);
        Ok(count)
    }

    /// `<table>.csv`: its header, then what `body` writes (returning how many rows), and its
    /// manifest.
    fn write_csv(
        &self,
        table: Table,
        body: impl FnOnce(&mut dyn Write) -> Result<usize>,
    ) -> Result<usize> {
        let columns = table.columns();
        let mut count = 0;
        self.folder
            .write_atomically(&file_of(self.folder, table, "csv"), |out| {
                {
                    let mut header = Rows::new(table, false, &mut *out);
                    header
                        .writer
                        .write_record(columns.iter().map(|column| column.name))?;
                    header.writer.flush()?;
                }
                count = body(out)?;
                Ok(())
            })?;
        let manifest = table.manifest(&self.bucket, self.typed);
        self.folder
            .write_atomically(&file_of(self.folder, table, "csv.manifest"), |out| {
                serde_json::to_writer_pretty(&mut *out, &manifest)?;
                Ok(out.write_all(b"\n")?)
            })?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells() {
        assert_eq!(cell(None), "");
        assert_eq!(cell(Some(&Value::Null)), "");
        assert_eq!(cell(Some(&json!("a \"b\""))), "a \"b\"");
        assert_eq!(cell(Some(&json!(70403103931_u64))), "70403103931");
        assert_eq!(cell(Some(&json!(1.5))), "1.5");
        assert_eq!(cell(Some(&json!(false))), "false");
        assert_eq!(
            cell(Some(&json!({"cause": "x", "n": [1, null]}))),
            r#"{"cause":"x","n":[1,null]}"#
        );
    }

    #[test]
    fn bucket_names() {
        assert_eq!(bucket_for(None), "in.c-dbt-cloud-job-trigger-000000000");
        assert_eq!(bucket_for(Some("")), "in.c-dbt-cloud-job-trigger-000000000");
        assert_eq!(
            bucket_for(Some("12345")),
            "in.c-dbt-cloud-job-trigger-12345"
        );
        assert_eq!(
            bucket_for(Some("a b/c")),
            "in.c-dbt-cloud-job-trigger-a-b-c"
        );
    }

    #[test]
    fn a_typed_column_takes_only_values_of_its_type() {
        for (base, fitting, not) in [
            (
                Base::Integer,
                &["0", "-12", "70403103000"][..],
                &["1.0", "Test failure", "-", "1e3"][..],
            ),
            (
                Base::Float,
                &["1.5", "-0.0", "3", "1e-7"],
                &["NaN", "inf", "fast", ""],
            ),
            (Base::Boolean, &["true", "false"], &["True", "1"]),
            (
                Base::Timestamp,
                &["2026-11-28 10:38:38.123456+00:00", "2023-08-30T19:56:21Z"],
                &["17", "yesterday", "2026/11/28"],
            ),
            (Base::String, &["anything", "", "{\"a\":1}"], &[]),
        ] {
            for cell in fitting {
                assert!(fits(base, cell.as_bytes()), "{cell} is {base:?}");
            }
            for cell in not {
                assert!(!fits(base, cell.as_bytes()), "{cell} is not {base:?}");
            }
        }
    }
}
