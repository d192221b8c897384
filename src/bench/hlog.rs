//! `--hlog FILE`: the measured intervals in the HdrHistogram interval log format (version 1.3,
//! as Java's `HistogramLogWriter` writes it), readable by `HistogramLogProcessor`,
//! HdrHistogram's plotters, and the hdrhistogram crate's `IntervalLogIterator`.
//!
//! Values are nanoseconds. Each interval is written once untagged (all operations merged) and
//! once per operation, tagged with its name (`Tag=getattr`). Timestamps are seconds from the
//! `BaseTime`, which is the wall-clock end of the warmup; warmup intervals are not written, so
//! the log's total count is the report's count of measured replies. The max column is in
//! milliseconds, like the Java writer's default.

use super::engine::IntervalSpan;
use super::load::{latency_histogram, IntervalSet};
use super::ops::BenchOp;
use base64::Engine as _;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Divides the max column (ns) into milliseconds.
const MAX_VALUE_UNIT_RATIO: f64 = 1e6;

/// Writes an interval log.
pub struct HlogWriter<W: Write> {
    out: W,
    ops: Vec<BenchOp>,
    serializer: V2DeflateSerializer,
    encoded: Vec<u8>,
    text: String,
    merged: Histogram<u64>,
    header_written: bool,
    comment: String,
}

impl HlogWriter<BufWriter<File>> {
    /// Creates `path`; the header is written when the run starts.
    pub fn create(path: &Path, ops: &[BenchOp], comment: &str) -> io::Result<Self> {
        let file = File::create(path)?;
        Ok(HlogWriter::new(BufWriter::new(file), ops, comment))
    }
}

impl<W: Write> HlogWriter<W> {
    pub fn new(out: W, ops: &[BenchOp], comment: &str) -> Self {
        HlogWriter {
            out,
            ops: ops.to_vec(),
            serializer: V2DeflateSerializer::new(),
            encoded: Vec::new(),
            text: String::new(),
            merged: latency_histogram(),
            header_written: false,
            comment: comment.replace('\n', " "),
        }
    }

    /// Writes the header; `warmup_end` becomes the log's StartTime and BaseTime.
    pub fn start(&mut self, warmup_end: SystemTime) -> io::Result<()> {
        let secs = warmup_end
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        writeln!(self.out, "#[{}]", self.comment)?;
        writeln!(self.out, "#[Histogram log format version 1.3]")?;
        writeln!(self.out, "#[StartTime: {secs:.3} (seconds since epoch)]")?;
        writeln!(self.out, "#[BaseTime: {secs:.3} (seconds since epoch)]")?;
        writeln!(
            self.out,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        )?;
        self.header_written = true;
        Ok(())
    }

    /// Writes a measured interval (warmup intervals are skipped).
    pub fn write_interval(&mut self, span: IntervalSpan, set: &IntervalSet) -> io::Result<()> {
        if span.index < 0 {
            return Ok(());
        }
        if !self.header_written {
            self.start(SystemTime::now())?;
        }
        self.merged.reset();
        for h in &set.measured {
            let _ = self.merged.add(h);
        }
        let merged = std::mem::replace(&mut self.merged, latency_histogram());
        let result = self.write_line(None, span, &merged);
        self.merged = merged;
        result?;
        for (i, op) in self.ops.clone().into_iter().enumerate() {
            if let Some(h) = set.measured.get(i) {
                self.write_line(Some(op.name()), span, h)?;
            }
        }
        Ok(())
    }

    fn write_line(
        &mut self,
        tag: Option<&str>,
        span: IntervalSpan,
        h: &Histogram<u64>,
    ) -> io::Result<()> {
        self.encoded.clear();
        self.serializer
            .serialize(h, &mut self.encoded)
            .map_err(|e| io::Error::other(format!("histogram serialization: {e:?}")))?;
        self.text.clear();
        base64::engine::general_purpose::STANDARD.encode_string(&self.encoded, &mut self.text);
        if let Some(tag) = tag {
            write!(self.out, "Tag={tag},")?;
        }
        let max_ms = if h.is_empty() {
            0.0
        } else {
            h.max() as f64 / MAX_VALUE_UNIT_RATIO
        };
        writeln!(
            self.out,
            "{:.3},{:.3},{:.3},{}",
            span.start_secs(),
            span.length.as_secs_f64(),
            max_ms,
            self.text
        )
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    use std::time::Duration;

    #[test]
    fn log_reads_back_with_tags_and_counts() {
        let mut w = HlogWriter::new(Vec::new(), &[BenchOp::Getattr, BenchOp::Lookup], "test");
        w.start(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .unwrap();
        let mut set = IntervalSet::new(2);
        for k in 0..3i64 {
            set.reset(k);
            for v in 1..=100u64 {
                set.measured[0].record(v * 1000).unwrap();
            }
            set.measured[1].record(5_000_000).unwrap();
            set.warmup[0].record(1).unwrap();
            let span = IntervalSpan {
                index: k,
                length: Duration::from_secs(1),
            };
            w.write_interval(span, &set).unwrap();
        }
        // A warmup interval is not logged.
        set.reset(-1);
        set.measured[0].record(1).unwrap();
        w.write_interval(
            IntervalSpan {
                index: -1,
                length: Duration::from_secs(1),
            },
            &set,
        )
        .unwrap();
        let log = w.finish().unwrap();
        let text = String::from_utf8(log.clone()).unwrap();
        assert!(
            text.contains("#[BaseTime: 1700000000.000 (seconds since epoch)]"),
            "{text}"
        );
        assert!(text.contains("Tag=lookup,2.000,1.000,5.001,"), "{text}");

        let mut d = Deserializer::new();
        let (mut untagged, mut getattr, mut lookup) = (0u64, 0u64, 0u64);
        let mut base = None;
        for e in IntervalLogIterator::new(&log) {
            match e.unwrap() {
                LogEntry::BaseTime(t) => base = Some(t),
                LogEntry::StartTime(_) => {}
                LogEntry::Interval(i) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(i.encoded_histogram())
                        .unwrap();
                    let h: Histogram<u64> = d.deserialize(&mut &bytes[..]).unwrap();
                    match i.tag().map(|t| t.as_str()) {
                        None => untagged += h.len(),
                        Some("getattr") => getattr += h.len(),
                        Some("lookup") => lookup += h.len(),
                        Some(other) => panic!("unexpected tag {other}"),
                    }
                }
            }
        }
        assert_eq!(base, Some(Duration::from_secs(1_700_000_000)));
        assert_eq!((untagged, getattr, lookup), (303, 300, 3));
    }
}
