//! Reading a data file into records: JSONL, a JSON array, CSV/TSV with a header, or plain text.
//! The file kind comes from the name and the first bytes, the record format from the fields of
//! the first record; either can be chosen explicitly.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::error::{DataError, Location, SkippedLine};
use super::record::{Record, RecordFormat, RecordReader};

/// How the file is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// One JSON object a line (`.jsonl`, `.ndjson`); blank lines are ignored.
    Jsonl,
    /// A JSON array of objects, or one object.
    Json,
    /// Comma-separated, with a header row naming the fields.
    Csv,
    /// Tab-separated, with a header row naming the fields.
    Tsv,
    /// Plain text; see [`TextMode`].
    Text,
}

/// How plain text becomes examples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextMode {
    /// One example per block of lines; blocks are separated by blank lines.
    #[default]
    Blocks,
    /// The whole file is one token stream, cut into windows of the sequence length.
    Windows,
}

/// How to read a file. `None` fields are detected.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ParseOptions {
    pub kind: Option<FileKind>,
    pub format: Option<RecordFormat>,
    pub text_mode: TextMode,
    /// Leave out records that fail to read (counted and listed) instead of stopping.
    pub skip_bad_lines: bool,
}

/// The records of one file, each with its 1-based line.
#[derive(Clone, Debug)]
pub struct ParsedFile {
    pub file: String,
    pub kind: FileKind,
    pub format: RecordFormat,
    pub text_mode: TextMode,
    pub records: Vec<(usize, Record)>,
    pub skipped: Vec<SkippedLine>,
}

/// Reads `bytes`, the contents of the file named `file`, into records.
pub fn parse_file(file: &str, bytes: &[u8], opts: &ParseOptions) -> Result<ParsedFile, DataError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(DataError::Empty(file.into()));
    }
    let kind = opts.kind.unwrap_or_else(|| detect_kind(file, bytes));
    let mut out =
        Collector { file, skip: opts.skip_bad_lines, format: opts.format, records: Vec::new(), skipped: Vec::new() };
    match kind {
        FileKind::Jsonl => read_jsonl(&mut out, bytes)?,
        FileKind::Json => read_json(&mut out, bytes)?,
        FileKind::Csv => read_csv(&mut out, bytes, b',')?,
        FileKind::Tsv => read_csv(&mut out, bytes, b'\t')?,
        FileKind::Text => read_text(&mut out, bytes, opts.text_mode)?,
    }
    let format = match kind {
        FileKind::Text => RecordFormat::Text,
        _ => out.format.unwrap_or(RecordFormat::Text),
    };
    if out.records.is_empty() {
        return Err(DataError::NoExamples(file.into()));
    }
    Ok(ParsedFile {
        file: file.into(),
        kind,
        format,
        text_mode: opts.text_mode,
        records: out.records,
        skipped: out.skipped,
    })
}

/// The file kind from the extension, else from the first bytes.
pub fn detect_kind(file: &str, bytes: &[u8]) -> FileKind {
    let first = bytes.iter().copied().find(|b| !b.is_ascii_whitespace());
    let ext = file.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("jsonl" | "ndjson") => return FileKind::Jsonl,
        Some("json") => {
            return if first == Some(b'[') { FileKind::Json } else { FileKind::Jsonl };
        }
        Some("csv") => return FileKind::Csv,
        Some("tsv" | "tab") => return FileKind::Tsv,
        Some("txt" | "text" | "md") => return FileKind::Text,
        _ => {}
    }
    match first {
        Some(b'[') => FileKind::Json,
        Some(b'{') => FileKind::Jsonl,
        _ => {
            let header = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
            let header = String::from_utf8_lossy(header).to_ascii_lowercase();
            for (sep, kind) in [('\t', FileKind::Tsv), (',', FileKind::Csv)] {
                let names = header.split(sep).map(|s| s.trim().trim_matches('"'));
                if header.contains(sep) && RecordFormat::detect(names).is_some() {
                    return kind;
                }
            }
            FileKind::Text
        }
    }
}

/// Gathers records; decides the format from the first object; skips or stops on errors.
struct Collector<'a> {
    file: &'a str,
    skip: bool,
    format: Option<RecordFormat>,
    records: Vec<(usize, Record)>,
    skipped: Vec<SkippedLine>,
}

impl Collector<'_> {
    fn at(&self, line: usize) -> Location {
        Location { file: self.file.into(), line, field: None }
    }

    /// Keeps going past a record error when skipping; otherwise returns it.
    fn fail(&mut self, e: DataError) -> Result<(), DataError> {
        if self.skip && e.is_record_error() {
            self.skipped.push(SkippedLine::from_error(&e));
            Ok(())
        } else {
            Err(e)
        }
    }

    fn object(&mut self, line: usize, v: &Value) -> Result<(), DataError> {
        let format = match self.format {
            Some(f) => f,
            None => {
                let detected = match v {
                    Value::Object(o) => RecordFormat::detect(o.keys().map(String::as_str)),
                    _ => None,
                };
                match detected {
                    Some(f) => *self.format.insert(f),
                    None => {
                        let found = match v {
                            Value::Object(o) => o.keys().cloned().collect(),
                            _ => Vec::new(),
                        };
                        return self.fail(match v {
                            Value::Object(_) => DataError::UnknownFormat { at: self.at(line), found },
                            _ => RecordReader { file: self.file, format: RecordFormat::Text }
                                .read(line, v)
                                .err()
                                .unwrap_or(DataError::UnknownFormat { at: self.at(line), found }),
                        });
                    }
                }
            }
        };
        match (RecordReader { file: self.file, format }).read(line, v) {
            Ok(r) => {
                self.records.push((line, r));
                Ok(())
            }
            Err(e) => self.fail(e),
        }
    }
}

fn not_utf8(file: &str, line: usize, e: std::str::Utf8Error) -> DataError {
    DataError::NotUtf8 { at: Location { file: file.into(), line, field: None }, offset: e.valid_up_to() }
}

/// The whole file as text, or an error naming the line of the first invalid byte.
fn whole_utf8<'b>(file: &str, bytes: &'b [u8]) -> Result<&'b str, DataError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let bad = e.valid_up_to();
        let line_start = bytes[..bad].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let line = 1 + bytes[..bad].iter().filter(|&&b| b == b'\n').count();
        DataError::NotUtf8 { at: Location { file: file.into(), line, field: None }, offset: bad - line_start }
    })
}

fn read_jsonl(out: &mut Collector, bytes: &[u8]) -> Result<(), DataError> {
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        if raw.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        let text = match std::str::from_utf8(raw) {
            Ok(t) => t,
            Err(e) => {
                out.fail(not_utf8(out.file, line, e))?;
                continue;
            }
        };
        match serde_json::from_str::<Value>(text) {
            Ok(v) => out.object(line, &v)?,
            Err(e) => out.fail(DataError::Json { at: out.at(line), reason: e.to_string() })?,
        }
    }
    Ok(())
}

fn read_json(out: &mut Collector, bytes: &[u8]) -> Result<(), DataError> {
    let text = whole_utf8(out.file, bytes)?;
    let json_err = |e: serde_json::Error| DataError::Json {
        at: Location { file: out.file.into(), line: e.line().max(1), field: None },
        reason: e.to_string(),
    };
    if text.trim_start().starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(text).map_err(json_err)?;
        // Line of each element, counted forward from the previous one.
        let (mut pos, mut line) = (0usize, 1usize);
        for raw in items {
            let start = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
            let start = start.clamp(pos, text.len());
            line += text.as_bytes()[pos..start].iter().filter(|&&b| b == b'\n').count();
            pos = start;
            match serde_json::from_str::<Value>(raw.get()) {
                Ok(v) => out.object(line, &v)?,
                Err(e) => out.fail(DataError::Json { at: out.at(line), reason: e.to_string() })?,
            }
        }
    } else {
        let v: Value = serde_json::from_str(text).map_err(json_err)?;
        let line = 1 + text.len() - text.trim_start().len();
        let line = 1 + text[..line - 1].matches('\n').count();
        out.object(line, &v)?;
    }
    Ok(())
}

fn read_csv(out: &mut Collector, bytes: &[u8], delimiter: u8) -> Result<(), DataError> {
    let mut reader =
        csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).flexible(false).from_reader(bytes);
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_ascii_lowercase()).collect(),
        Err(e) => return Err(csv_error(out.file, e)),
    };
    if out.format.is_none() {
        match RecordFormat::detect(header.iter().map(String::as_str)) {
            Some(f) => out.format = Some(f),
            None => {
                return Err(DataError::UnknownFormat { at: out.at(1), found: header });
            }
        }
    }
    for row in reader.records() {
        match row {
            Ok(row) => {
                let line = row.position().map_or(0, |p| p.line() as usize);
                let obj: Map<String, Value> =
                    header.iter().zip(row.iter()).map(|(k, v)| (k.clone(), Value::String(v.to_string()))).collect();
                out.object(line, &Value::Object(obj))?;
            }
            Err(e) => out.fail(csv_error(out.file, e))?,
        }
    }
    Ok(())
}

fn csv_error(file: &str, e: csv::Error) -> DataError {
    let line = e.position().map_or(0, |p| p.line() as usize);
    let at = Location { file: file.into(), line: line.max(1), field: None };
    match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => DataError::NotUtf8 { at, offset: err.valid_up_to() },
        _ => DataError::Csv { at, reason: e.to_string() },
    }
}

fn read_text(out: &mut Collector, bytes: &[u8], mode: TextMode) -> Result<(), DataError> {
    let text = whole_utf8(out.file, bytes)?;
    out.format = Some(RecordFormat::Text);
    if mode == TextMode::Windows {
        out.records.push((1, Record::Text(text.to_string())));
        return Ok(());
    }
    let mut block = String::new();
    let mut start = 0;
    for (i, l) in text.split('\n').enumerate() {
        let l = l.strip_suffix('\r').unwrap_or(l);
        if l.trim().is_empty() {
            if !block.is_empty() {
                out.records.push((start, Record::Text(std::mem::take(&mut block))));
            }
            continue;
        }
        if block.is_empty() {
            start = i + 1;
        } else {
            block.push('\n');
        }
        block.push_str(l);
    }
    if !block.is_empty() {
        out.records.push((start, Record::Text(block)));
    }
    Ok(())
}
