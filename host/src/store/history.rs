//! Head history: `history/<name>` is an append-only log of every move of
//! head `name`, one text line per move (see "Head history" in the module
//! docs for the format and why the log and the head never disagree).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use capbox_shared::CapHash;

use super::error::{IoContext, StoreError};

/// The first token of every record line (the record format's version).
const RECORD_TAG: &str = "h1";
/// Longest `action` or `outcome` text kept in a record, in bytes.
pub const MAX_RECORD_TEXT: usize = 200;
/// How much of a log's end [`repair_tail`] reads first: far more than the
/// at most one record a crash can leave beyond the head.
const TAIL_WINDOW: u64 = 64 << 10;

/// What a head move records besides the hashes (see [`HistoryEntry`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeadChange {
    /// What moved the head: `"invoke"`, `"new"`, `"set"`, `"save"`, …
    /// Stored as a token: characters other than ASCII letters, digits and
    /// `=,._:+-` become `_`; cut at [`MAX_RECORD_TEXT`] bytes.
    pub action: String,
    /// The endpoint invoked, for an invocation.
    pub endpoint: Option<u32>,
    /// A one-line summary of the outcome (e.g. `exit=Halt,r7=1,r8=0`),
    /// stored as a token like `action`.
    pub outcome: Option<String>,
    /// Gas used, for an invocation.
    pub gas_used: Option<u64>,
}

impl HeadChange {
    /// A change with only an action (`"set"`, `"save"`, `"new"`).
    pub fn action(action: &str) -> HeadChange {
        HeadChange {
            action: action.to_owned(),
            ..HeadChange::default()
        }
    }
}

/// One record of a head's history: the head moved from `prev` to `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Its position: the head's first move is 1, each later one adds 1.
    pub seq: u64,
    /// When it was written (millisecond precision).
    pub time: SystemTime,
    /// The head before the move (`None`: the head did not exist).
    pub prev: Option<CapHash>,
    /// The head after the move.
    pub new: CapHash,
    /// What was done.
    pub change: HeadChange,
}

/// Makes `text` a record token: no spaces or control characters, bounded.
pub(crate) fn token(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "=,._:+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.truncate(MAX_RECORD_TEXT);
    if out.is_empty() { "_".to_owned() } else { out }
}

/// FNV-1a, 64 bits: detects a torn or damaged line (not an adversary).
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn opt_text<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map_or_else(|| "-".to_owned(), T::to_string)
}

impl HistoryEntry {
    /// The record line, `\n` included.
    pub(super) fn encode(&self) -> String {
        let millis = self
            .time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let body = format!(
            "{RECORD_TAG} {} {millis} {} {} {} {} {} {}",
            self.seq,
            opt_text(&self.prev),
            self.new,
            token(&self.change.action),
            opt_text(&self.change.endpoint),
            opt_text(&self.change.gas_used),
            self.change.outcome.as_deref().map_or("-".to_owned(), token),
        );
        format!("{body} {:016x}\n", checksum(body.as_bytes()))
    }

    /// Parses one line (without its `\n`); `None` if it is not a whole,
    /// intact record.
    fn decode(line: &[u8]) -> Option<HistoryEntry> {
        let line = std::str::from_utf8(line).ok()?;
        let (body, sum) = line.rsplit_once(' ')?;
        if sum.len() != 16 || u64::from_str_radix(sum, 16).ok()? != checksum(body.as_bytes()) {
            return None;
        }
        let fields: Vec<&str> = body.split(' ').collect();
        let [tag, seq, millis, prev, new, action, endpoint, gas, outcome] = fields[..] else {
            return None;
        };
        if tag != RECORD_TAG {
            return None;
        }
        fn opt(text: &str) -> Option<&str> {
            (text != "-").then_some(text)
        }
        let hash = |text: &str| CapHash::from_hex(text).ok();
        Some(HistoryEntry {
            seq: seq.parse().ok()?,
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(millis.parse().ok()?),
            prev: match opt(prev) {
                Some(text) => Some(hash(text)?),
                None => None,
            },
            new: hash(new)?,
            change: HeadChange {
                action: action.to_owned(),
                endpoint: match opt(endpoint) {
                    Some(text) => Some(text.parse().ok()?),
                    None => None,
                },
                gas_used: match opt(gas) {
                    Some(text) => Some(text.parse().ok()?),
                    None => None,
                },
                outcome: opt(outcome).map(str::to_owned),
            },
        })
    }
}

/// A parsed log: every intact line with where it ends, and whether a
/// damaged line (torn, or not a record) was met, and where.
struct Parsed {
    records: Vec<(HistoryEntry, u64)>,
    damaged_at: Option<u64>,
}

/// Parses `bytes` (which start at file offset `base`, at a line start).
fn parse(bytes: &[u8], base: u64) -> Parsed {
    let mut parsed = Parsed {
        records: Vec::new(),
        damaged_at: None,
    };
    let mut start = 0;
    while start < bytes.len() {
        let Some(len) = bytes[start..].iter().position(|b| *b == b'\n') else {
            // A last line without its newline: a torn append.
            parsed.damaged_at.get_or_insert(base + start as u64);
            break;
        };
        let end = start + len + 1;
        match HistoryEntry::decode(&bytes[start..start + len]) {
            Some(entry) => parsed.records.push((entry, base + end as u64)),
            None => {
                parsed.damaged_at.get_or_insert(base + start as u64);
            }
        }
        start = end;
    }
    parsed
}

fn open_log(path: &Path) -> Result<Option<File>, StoreError> {
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("open history", path, e)),
    }
}

/// Reads `path` from `from` to its end.
fn read_from(file: &mut File, path: &Path, from: u64) -> Result<Vec<u8>, StoreError> {
    file.seek(SeekFrom::Start(from)).at("seek history", path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).at("read history", path)?;
    Ok(bytes)
}

/// Cuts from the log everything after the record numbered `head_seq`
/// (the head's own): a record appended by a writer that died before it
/// moved the head, and a torn last line. The caller holds the exclusive
/// lock, and every append goes through here first, so whatever does not
/// belong to the head's chain is always at the end. Returns the log's
/// length afterwards.
pub(super) fn repair_tail(path: &Path, head_seq: u64) -> Result<u64, StoreError> {
    let Some(mut file) = open_log(path)? else {
        return Ok(0);
    };
    let len = file.metadata().at("stat history", path)?.len();
    let keep = if head_seq == 0 {
        // No move is recorded in the head: whatever is here is stale (a
        // head removed by a process that died before removing its log).
        0
    } else {
        let mut window = TAIL_WINDOW.min(len);
        loop {
            let mut from = len - window;
            let mut bytes = read_from(&mut file, path, from)?;
            if from > 0 {
                // Start at a line start.
                let skip = bytes
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(bytes.len(), |p| p + 1);
                bytes.drain(..skip);
                from += skip as u64;
            }
            let parsed = parse(&bytes, from);
            let last_kept = parsed
                .records
                .iter()
                .rev()
                .find(|(entry, _)| entry.seq <= head_seq)
                .map(|(_, end)| *end);
            match last_kept {
                Some(end) => break end,
                None if from == 0 => break 0,
                None => window = len,
            }
        }
    };
    if keep < len {
        file.set_len(keep).at("truncate history", path)?;
        file.sync_all().at("fsync history", path)?;
    }
    Ok(keep)
}

/// Appends `entries` to the log at `path` and fsyncs it (and its directory
/// when the log is new). The caller holds the exclusive lock and has
/// called [`repair_tail`].
pub(super) fn append(path: &Path, entries: &[HistoryEntry]) -> Result<(), StoreError> {
    let created = !path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .at("open history", path)?;
    let text: String = entries.iter().map(HistoryEntry::encode).collect();
    file.write_all(text.as_bytes())
        .at("append to history", path)?;
    file.sync_all().at("fsync history", path)?;
    if created {
        super::fsio::sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

/// Every readable record of the log at `path` (none if it is missing),
/// whatever head it belongs to.
pub(super) fn read_all(path: &Path) -> Result<Vec<HistoryEntry>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(StoreError::io("read history", path, e)),
    };
    Ok(parse(&bytes, 0)
        .records
        .into_iter()
        .map(|(entry, _)| entry)
        .collect())
}

/// What [`read`] found.
pub(super) struct ReadLog {
    /// The records numbered 1..=head_seq, in order (the head's chain).
    pub entries: Vec<HistoryEntry>,
    /// Why the log does not agree with the head, if it does not.
    pub problem: Option<String>,
}

/// The records of the log at `path` that belong to a head at `head`
/// (hash, seq): those numbered up to its seq. Records past it (a writer
/// died between the append and the head move) and a torn last line are
/// not part of the history. Checks that the rest is the head's chain:
/// numbered 1, 2, …, seq, each starting where the previous ended, the
/// last ending at the head.
pub(super) fn read(
    path: &Path,
    head: Option<(CapHash, u64)>,
    name: &str,
) -> Result<ReadLog, StoreError> {
    let head_seq = head.map_or(0, |(_, seq)| seq);
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(StoreError::io("read history", path, e)),
    };
    let parsed = parse(&bytes, 0);
    let mut problem = None;
    let mut entries = Vec::new();
    for (entry, end) in parsed.records {
        if entry.seq > head_seq {
            break;
        }
        if let Some(at) = parsed.damaged_at.filter(|at| *at < end) {
            problem.get_or_insert(format!("damaged record at byte {at} of {}", path.display()));
        }
        entries.push(entry);
    }
    if problem.is_none() {
        problem = chain_problem(&entries, head, name);
    }
    Ok(ReadLog { entries, problem })
}

fn chain_problem(
    entries: &[HistoryEntry],
    head: Option<(CapHash, u64)>,
    name: &str,
) -> Option<String> {
    for (i, entry) in entries.iter().enumerate() {
        let want = i as u64 + 1;
        if entry.seq != want {
            return Some(format!(
                "record {want} of head {name:?} is missing (found {})",
                entry.seq
            ));
        }
        if i > 0 && entry.prev != Some(entries[i - 1].new) {
            return Some(format!(
                "record {} of head {name:?} starts at {} but record {} ended at {}",
                entry.seq,
                opt_text(&entry.prev),
                i,
                entries[i - 1].new
            ));
        }
    }
    match (head, entries.last()) {
        (None, _) | (Some((_, 0)), None) => None,
        (Some((_, seq)), None) => Some(format!(
            "head {name:?} is at move {seq} but its history is empty"
        )),
        (Some((hash, seq)), Some(last)) if last.seq != seq || last.new != hash => Some(format!(
            "head {name:?} is at move {seq} ({hash}) but its history ends at move {} ({})",
            last.seq, last.new
        )),
        _ => None,
    }
}
