//! Reports from NDJSON scan output, read as a stream of bounded lines.

use super::model::*;
use super::stream::Aggregator;
use super::StatsError;
use crate::record::{content_of_json, EntryContent, EntryRecord, EntryRef};
use std::io::BufRead;

/// NDJSON lines longer than this are skipped as malformed (a path of 4096 components of 255
/// bytes is about 1 MiB).
pub const NDJSON_LINE_BYTES_MAX: usize = 4 << 20;

/// Reads one line of at most [`NDJSON_LINE_BYTES_MAX`] bytes into `line` (without the
/// newline). Returns `Ok(None)` at the end, `Ok(Some(false))` for a line that was too long
/// (its bytes are skipped).
pub fn read_line_bounded(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
) -> std::io::Result<Option<bool>> {
    line.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(any.then_some(!too_long));
        }
        any = true;
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !too_long {
            if line.len() + chunk.len() > NDJSON_LINE_BYTES_MAX {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let consumed = done.unwrap_or(buf.len());
        input.consume(consumed);
        if done.is_some() {
            return Ok(Some(!too_long));
        }
    }
}

/// Calls `f` with every entry record of NDJSON scan output; returns the records read and the
/// lines that were not records (the first such line that is not valid JSON is described on
/// stderr).
pub fn for_each_ndjson_entry(
    input: impl BufRead,
    source: &str,
    mut f: impl FnMut(&EntryRef<'_>),
) -> Result<(u64, u64), StatsError> {
    for_each_ndjson_entry_with_content(input, source, |e, _| f(e))
}

/// [`for_each_ndjson_entry`] with each record's content fields (`checksum`, `mime`).
pub fn for_each_ndjson_entry_with_content(
    mut input: impl BufRead,
    source: &str,
    mut f: impl FnMut(&EntryRef<'_>, &EntryContent<'_>),
) -> Result<(u64, u64), StatsError> {
    let mut malformed = 0u64;
    let mut records = 0u64;
    let mut line = Vec::new();
    let mut line_number = 0u64;
    while let Some(ok) = read_line_bounded(&mut input, &mut line).map_err(StatsError::io(source))? {
        line_number += 1;
        if !ok {
            malformed += 1;
            continue;
        }
        let text = match std::str::from_utf8(&line) {
            Ok(t) if !t.trim().is_empty() => t,
            Ok(_) => continue,
            Err(_) => {
                malformed += 1;
                continue;
            }
        };
        let parsed = serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| e.to_string())
            .and_then(|v| EntryRecord::from_json_value(&v).map(|rec| (rec, v)));
        match parsed {
            Ok((rec, v)) => {
                f(&rec.as_ref(), &content_of_json(&v));
                records += 1;
            }
            Err(e) => {
                if malformed == 0 {
                    eprintln!("nfs-walker: {source}:{line_number}: {e}");
                }
                malformed += 1;
            }
        }
    }
    Ok((records, malformed))
}

/// The report of NDJSON scan output read as a stream; lines that are not entry records are
/// counted in `malformed_lines`.
pub fn report_from_ndjson(
    input: impl BufRead,
    source: &str,
    w: &Wanted,
    now_ns: i64,
) -> Result<Report, StatsError> {
    let mut r = Report {
        source: source.to_string(),
        format: "ndjson",
        ..Report::default()
    };
    let mut agg = Aggregator::new(w, now_ns);
    let (_, malformed) = for_each_ndjson_entry(input, source, |e| agg.add(e))?;
    r.malformed_lines = malformed;
    agg.finish(&mut r);
    Ok(r)
}
