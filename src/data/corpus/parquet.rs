//! The parquet reader: the footer checked before polars reads it, then rows read in slices of
//! `PARQUET_SLICE`, only the fields the template names.

use super::*;

pub(super) const PARQUET_SLICE: usize = 8192;

pub(super) fn walk_parquet(
    path: &Path,
    fields: &[&str],
    index: &mut u64,
    visit: &mut Visit<'_>,
) -> Result<()> {
    use polars::prelude::{Column, ParquetReader, PolarsResult, SerReader};
    let open = || File::open(path).with_context(|| format!("cannot open {}", path.display()));
    crate::util::polars_io::check_parquet_footer(path)?;
    let (schema, n_rows) = catch_polars(path, || {
        let mut reader = ParquetReader::new(open()?);
        let schema = reader
            .schema()
            .with_context(|| format!("{}: not a readable parquet file", path.display()))?;
        let n_rows = reader
            .num_rows()
            .with_context(|| format!("{}: not a readable parquet file", path.display()))?;
        Ok((schema, n_rows))
    })?;
    let names: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
    let missing: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|f| !names.iter().any(|n| n == f))
        .collect();
    if let Some(f) = missing.first() {
        visit(Item::FileProblem(
            Problem {
                kind: ProblemKind::MissingField,
                message: format!(
                    "{}: no column `{f}` for the text template (columns: {}); its {n_rows} rows are skipped",
                    path.display(),
                    names.join(", ")
                ),
            },
            n_rows as u64,
        ))?;
        *index += n_rows as u64;
        return Ok(());
    }
    let cols: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
    let mut offset = 0usize;
    while offset < n_rows {
        let len = PARQUET_SLICE.min(n_rows - offset);
        // polars may panic on a damaged file instead of failing: only its calls are guarded,
        // not the visitor's.
        let rows: Vec<Map<String, Value>> = catch_polars(path, || {
            let df = ParquetReader::new(open()?)
                .with_columns(Some(cols.clone()))
                .with_slice(Some((offset, len)))
                .finish()
                .with_context(|| {
                    format!(
                        "{}: cannot read rows {}..{}",
                        path.display(),
                        offset + 1,
                        offset + len
                    )
                })?;
            let series: Vec<Column> = cols
                .iter()
                .map(|c| df.column(c).cloned())
                .collect::<PolarsResult<_>>()?;
            let mut rows = Vec::with_capacity(df.height());
            for row in 0..df.height() {
                let mut m = Map::new();
                for (name, s) in cols.iter().zip(&series) {
                    m.insert(name.clone(), any_to_json(s.get(row)?));
                }
                rows.push(m);
            }
            Ok(rows)
        })?;
        for (row, m) in rows.iter().enumerate() {
            let pos = (offset + row) as u64 + 1;
            visit(Item::Record(Raw {
                index: *index,
                file: path,
                pos,
                unit: "row",
                body: Body::Object(m),
            }))?;
            *index += 1;
        }
        offset += len;
    }
    Ok(())
}
