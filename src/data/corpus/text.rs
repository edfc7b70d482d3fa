//! The plain-text reader: a whole file, each line or each paragraph as a document
//! (`text_split` of the card).

use super::*;

pub(super) fn walk_text(
    path: &Path,
    split: TextSplit,
    index: &mut u64,
    visit: &mut Visit<'_>,
) -> Result<()> {
    let mut bytes = Vec::new();
    if let Err(e) = open_decompressed(path)?.read_to_end(&mut bytes) {
        visit(Item::FileProblem(stream_problem(path, 0, &e), 1))?;
        return Ok(());
    }
    if bytes.starts_with(BOM) {
        bytes.drain(..BOM.len());
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let off = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..off].iter().filter(|&&b| b == b'\n').count() + 1;
            visit(Item::FileProblem(
                Problem {
                    kind: ProblemKind::InvalidUtf8,
                    message: format!("{}: line {line}: invalid UTF-8 at byte {off} of the file; the file is skipped", path.display()),
                },
                1,
            ))?;
            return Ok(());
        }
    };
    let docs: Vec<&str> = match split {
        TextSplit::File => vec![text.as_str()],
        TextSplit::Line => text.lines().filter(|l| !l.trim().is_empty()).collect(),
        TextSplit::Paragraph => split_paragraphs(&text),
    };
    for (i, d) in docs.into_iter().enumerate() {
        let mut m = Map::new();
        m.insert("text".into(), Value::String(d.to_string()));
        visit(Item::Record(Raw {
            index: *index,
            file: path,
            pos: i as u64 + 1,
            unit: "document",
            body: Body::Object(&m),
        }))?;
        *index += 1;
    }
    Ok(())
}

/// Splits text at runs of blank lines, dropping empty pieces.
pub(super) fn split_paragraphs(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut end = 0;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            if let Some(s) = start.take() {
                out.push(&text[s..end]);
            }
        } else {
            if start.is_none() {
                start = Some(pos);
            }
            end = pos + line.trim_end_matches(['\n', '\r']).len();
        }
        pos += line.len();
    }
    if let Some(s) = start {
        out.push(&text[s..end]);
    }
    out
}
