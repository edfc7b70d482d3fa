//! The jsonl reader: one JSON object per line (plain, .gz, .zst), or a `.json` file holding
//! one array of objects; each line or element a record, a malformed one a counted problem.

use super::*;

pub(super) fn walk_jsonl(path: &Path, index: &mut u64, visit: &mut Visit<'_>) -> Result<()> {
    let mut r = BufReader::with_capacity(1 << 20, open_decompressed(path)?);
    match r.fill_buf() {
        Ok(b) if b.starts_with(BOM) => r.consume(BOM.len()),
        _ => {}
    }
    // A `.json` file may hold one array of records instead of lines.
    let first = loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) => {
                visit(Item::FileProblem(stream_problem(path, 0, &e), 1))?;
                return Ok(());
            }
        };
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(p) => break Some(buf[p]),
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                r.consume(n);
            }
        }
    };
    if first == Some(b'[') && Format::may_be_json_array(path) {
        let mut all = Vec::new();
        if let Err(e) = r.read_to_end(&mut all) {
            visit(Item::FileProblem(stream_problem(path, 0, &e), 1))?;
            return Ok(());
        }
        let v: Vec<Value> = serde_json::from_slice(&all)
            .with_context(|| format!("{}: not a JSON array of records", path.display()))?;
        for (i, rec) in v.iter().enumerate() {
            match rec {
                Value::Object(m) => visit(Item::Record(Raw {
                    index: *index,
                    file: path,
                    pos: i as u64 + 1,
                    unit: "element",
                    body: Body::Object(m),
                }))?,
                other => visit(Item::FileProblem(
                    Problem {
                        kind: ProblemKind::NotAnObject,
                        message: format!(
                            "{}: element {}: expected a JSON object, found {}",
                            path.display(),
                            i + 1,
                            json_kind(other)
                        ),
                    },
                    1,
                ))?,
            }
            *index += 1;
        }
        return Ok(());
    }
    let mut line = Vec::with_capacity(8192);
    let mut lineno = 0u64;
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                visit(Item::FileProblem(stream_problem(path, lineno, &e), 1))?;
                break;
            }
        }
        lineno += 1;
        let trimmed = trim_ascii(&line);
        if trimmed.is_empty() {
            continue;
        }
        visit(Item::Record(Raw {
            index: *index,
            file: path,
            pos: lineno,
            unit: "line",
            body: Body::JsonLine(trimmed),
        }))?;
        *index += 1;
    }
    Ok(())
}

pub(super) fn trim_ascii(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if first.is_ascii_whitespace() {
            b = rest
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() {
            b = rest
        } else {
            break;
        }
    }
    b
}
