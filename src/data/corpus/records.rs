//! In-memory records (a Python list, a polars Series or DataFrame, a Hugging Face dataset,
//! through the binding) read exactly as a file of the same records in the same order.

use super::*;

/// Records that are not files: a function that hands each record, in order, to its callback
/// (a binding's Python iterable, say). Each record is a JSON object a template renders.
pub type RecordSource<'a> =
    dyn Fn(&mut dyn FnMut(Map<String, Value>) -> Result<()>) -> Result<()> + Sync + 'a;

/// [`read_documents`] of in-memory records: the same sampling (the bottom-k sample by
/// record index), cut and bad-record rules as a file of the same records in the same order,
/// rendered by `template` (`{text}` for plain strings wrapped as `{"text": ...}`). `name` is
/// what messages call the source.
pub fn read_records(
    name: &str,
    template: &Template,
    records: &RecordSource<'_>,
    spec: &SampleSpec,
    on_doc: &mut dyn FnMut(Document) -> Result<()>,
) -> Result<ReadSummary> {
    let place = PathBuf::from(format!("<{name}>"));
    read_with(
        name,
        template,
        spec,
        &[],
        &mut |_, visit| {
            let mut index = 0u64;
            records(&mut |m| {
                let raw = Raw {
                    index,
                    file: &place,
                    pos: index + 1,
                    unit: "record",
                    body: Body::Object(&m),
                };
                index += 1;
                visit(Item::Record(raw))
            })?;
            Ok(0)
        },
        on_doc,
    )
}
