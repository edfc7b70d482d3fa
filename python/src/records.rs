//! A Python iterable of records pulled in batches by the library's reader thread (the GIL
//! taken only for each batch): str, dict, polars rows, and what a template needs of them,
//! as JSON values, with each bad record named by its index and field.

use anyhow::{anyhow, bail, Result};
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Value};

use crate::released::*;

/// The next batch of records from `iterator` (None at its end), the template's `fields` of
/// each as JSON values. `first` is the index of the batch's first record, for messages.
pub(crate) fn next_batch(
    py: Python<'_>,
    iterator: &Py<PyAny>,
    fields: &[String],
    first: u64,
) -> Result<Option<Vec<Map<String, Value>>>> {
    let batch = match iterator.bind(py).call_method0("__next__") {
        Ok(b) => b,
        Err(e) if e.is_instance_of::<PyStopIteration>(py) => return Ok(None),
        Err(e) => return Err(FromPython(e).into()),
    };
    let mut out = Vec::new();
    if let Ok(columns) = batch.cast::<PyDict>() {
        // Columnar: {field: [values...]}, as datasets' `iter(batch_size=...)` yields.
        let mut picked = Vec::new();
        let mut rows: Option<usize> = None;
        for f in fields {
            let Some(col) = columns.get_item(f).map_err(FromPython)? else {
                bail!(
                    "record {}: no field `{f}` (the batch has {})",
                    first + 1,
                    column_names(columns)
                );
            };
            let n = col.len().map_err(FromPython)?;
            if rows.is_some_and(|r| r != n) {
                bail!(
                    "a batch's columns differ in length ({} and {n})",
                    rows.unwrap()
                );
            }
            rows = Some(n);
            picked.push((f.clone(), col));
        }
        let rows = rows.unwrap_or(0);
        for i in 0..rows {
            let mut m = Map::new();
            for (f, col) in &picked {
                let v = col.get_item(i).map_err(FromPython)?;
                m.insert(
                    f.clone(),
                    to_json(&v).map_err(|e| located(e, first + i as u64, f))?,
                );
            }
            out.push(m);
        }
        return Ok(Some(out));
    }
    let list = batch.cast::<PyList>().map_err(|_| {
        anyhow!(
            "a batch must be a list or a dict of columns (got {})",
            type_name(&batch)
        )
    })?;
    for (i, item) in list.iter().enumerate() {
        let index = first + i as u64;
        let mut m = Map::new();
        if let Ok(s) = item.cast::<PyString>() {
            let text = s.to_str().map_err(FromPython)?;
            m.insert("text".into(), Value::String(text.to_string()));
        } else if item.is_none() {
            // A None (a null of a polars Series) is a record without its text, skipped and
            // counted as missing_field as the CLI skips a null, or an error with strict.
        } else if let Ok(d) = item.cast::<PyDict>() {
            for f in fields {
                // An absent field stays absent: the reader reports it as a file's would.
                if let Some(v) = d.get_item(f).map_err(FromPython)? {
                    m.insert(f.clone(), to_json(&v).map_err(|e| located(e, index, f))?);
                }
            }
        } else {
            bail!(
                "record {}: expected a str or a dict, got {}",
                index + 1,
                type_name(&item)
            );
        }
        out.push(m);
    }
    Ok(Some(out))
}

pub(crate) fn located(e: anyhow::Error, index: u64, field: &str) -> anyhow::Error {
    anyhow!("record {}: field `{field}`: {e}", index + 1)
}

pub(crate) fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

pub(crate) fn column_names(d: &Bound<'_, PyDict>) -> String {
    let names: Vec<String> = d.keys().iter().map(|k| k.to_string()).collect();
    format!("columns {}", names.join(", "))
}

/// A Python value as the JSON value a JSONL record of it would hold (`json.dumps`'s mapping);
/// NaN and infinities, which JSON cannot hold, become null, and other types are refused.
pub(crate) fn to_json(v: &Bound<'_, PyAny>) -> Result<Value> {
    if v.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Value::String(s.to_str().map_err(FromPython)?.to_string()));
    }
    if v.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(v.extract::<bool>().map_err(FromPython)?));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = v.extract::<u64>() {
            return Ok(Value::from(u));
        }
        bail!("an integer too large for JSON's 64 bits");
    }
    if v.is_instance_of::<PyFloat>() {
        let x: f64 = v.extract().map_err(FromPython)?;
        return Ok(serde_json::Number::from_f64(x)
            .map(Value::Number)
            .unwrap_or(Value::Null));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut m = Map::new();
        for (k, x) in d.iter() {
            let key = k
                .cast::<PyString>()
                .map_err(|_| anyhow!("a dict key that is not a str"))?
                .to_str()
                .map_err(FromPython)?
                .to_string();
            m.insert(key, to_json(&x)?);
        }
        return Ok(Value::Object(m));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let mut a = Vec::new();
        for x in v.try_iter().map_err(FromPython)? {
            a.push(to_json(&x.map_err(FromPython)?)?);
        }
        return Ok(Value::Array(a));
    }
    bail!(
        "a {} value, which has no JSON form (convert it to str first)",
        type_name(v)
    )
}
