//! Named heads: `heads/<name>` holds one Instance hash (and its move
//! number); every move appends to `history/<name>` first. Heads pin their
//! graphs against pruning.

use std::collections::HashSet;
use std::fs;
use std::io;

use capbox_shared::{Cap, CapHash};

use super::error::{IoContext, StoreError};
use super::fsio::{self, LockMode};
use super::history::{self, HeadChange, HistoryEntry};
use super::{Store, blobs, graph};

/// The head file's optional second line: `history <n>`, the head's move
/// number (format 3).
const HISTORY_LINE: &str = "history ";

/// What a head move expects the head to be.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Anything (a plain set).
    Any,
    /// Exactly this (`None`: absent).
    Is(Option<CapHash>),
}

fn truncated(line: &str) -> String {
    line.chars().take(80).collect()
}

/// What [`Store::save_graph`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SaveReport {
    /// Caps the source supplied and the store now holds.
    pub blobs: u64,
    /// Of those, blobs that a concurrent prune had removed before the head
    /// was set, and that were stored again.
    pub repaired: u64,
}

/// Longest head name, in bytes.
pub const MAX_HEAD_NAME_LEN: usize = 128;

/// Checks a head name: 1 to [`MAX_HEAD_NAME_LEN`] ASCII letters, digits,
/// `.`, `_` or `-`, starting with a letter or digit. So a name is always a
/// single plain file name: no separators, no `.`/`..`, no hidden files, and
/// nothing a shell or CLI would read as an option.
pub fn validate_head_name(name: &str) -> Result<(), StoreError> {
    let invalid = |reason| {
        Err(StoreError::InvalidHeadName {
            name: name.chars().take(MAX_HEAD_NAME_LEN + 8).collect(),
            reason,
        })
    };
    let Some(first) = name.chars().next() else {
        return invalid("it is empty");
    };
    if name.len() > MAX_HEAD_NAME_LEN {
        return invalid("it is longer than 128 bytes");
    }
    if !first.is_ascii_alphanumeric() {
        return invalid("it must start with an ASCII letter or digit");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !name.chars().all(allowed) {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

impl Store {
    /// Points head `name` at the Instance `hash`, atomically (a reader sees
    /// the old value or the new one, never a mix, even across a crash),
    /// and records the move (action `"set"`) in the head's history.
    ///
    /// Refused unless the Instance and its whole graph are in the store:
    /// Instance → image, memory, root CNode; CNode → every slot, recursively.
    /// Structural blobs (Instances, CNodes) are read and verified on the way;
    /// leaves (Data, Image, Type) are checked for presence and kind only.
    pub fn set_head(&self, name: &str, hash: &CapHash) -> Result<(), StoreError> {
        validate_head_name(name)?;
        let _alone = self.lock(LockMode::Exclusive)?;
        graph::check_head_graph(self, name, hash, None, &mut 0)?;
        self.move_head_locked(name, Expect::Any, hash, &[HeadChange::action("set")])?;
        Ok(())
    }

    /// Compare-and-swap: points head `name` at `new` only if it now points
    /// at `expected` (`None`: only if it does not exist), under the
    /// exclusive lock, so no other move can come between the check and
    /// the write. Otherwise fails with [`StoreError::HeadMoved`], naming
    /// what the head holds, and changes nothing. The graph is checked as
    /// by [`Store::set_head`]; the move is recorded in the history with
    /// `change`.
    pub fn set_head_if(
        &self,
        name: &str,
        expected: Option<&CapHash>,
        new: &CapHash,
        change: &HeadChange,
    ) -> Result<u64, StoreError> {
        validate_head_name(name)?;
        let _alone = self.lock(LockMode::Exclusive)?;
        self.expect_head(name, Expect::Is(expected.copied()))?;
        graph::check_head_graph(self, name, new, None, &mut 0)?;
        self.move_head_locked(
            name,
            Expect::Is(expected.copied()),
            new,
            std::slice::from_ref(change),
        )
    }

    /// Fails with [`StoreError::HeadMoved`] unless head `name` is as
    /// `expect` says; returns it (hash and move number).
    fn expect_head(
        &self,
        name: &str,
        expect: Expect,
    ) -> Result<Option<(CapHash, u64)>, StoreError> {
        let current = self.head_state(name)?;
        if let Expect::Is(expected) = expect
            && current.map(|(hash, _)| hash) != expected
        {
            return Err(StoreError::HeadMoved {
                name: name.to_owned(),
                expected,
                found: current.map(|(hash, _)| hash),
            });
        }
        Ok(current)
    }

    /// Moves head `name` to `new` (the caller holds the exclusive lock and
    /// has checked the graph): repairs the history's tail, appends one
    /// record per change (each starting where the previous ended, the
    /// last ending at `new`) and fsyncs them, then writes the head with
    /// its new move number. Returns that number.
    fn move_head_locked(
        &self,
        name: &str,
        expect: Expect,
        new: &CapHash,
        changes: &[HeadChange],
    ) -> Result<u64, StoreError> {
        let current = self.expect_head(name, expect)?;
        let (mut prev, seq) = match current {
            Some((hash, seq)) => (Some(hash), seq),
            None => (None, 0),
        };
        let path = self.history.join(name);
        history::repair_tail(&path, seq)?;
        let time = std::time::SystemTime::now();
        let mut entries = Vec::with_capacity(changes.len());
        for (i, change) in changes.iter().enumerate() {
            entries.push(HistoryEntry {
                seq: seq + 1 + i as u64,
                time,
                prev,
                new: *new,
                change: change.clone(),
            });
            prev = Some(*new);
        }
        history::append(&path, &entries)?;
        let seq = seq + changes.len() as u64;
        self.write_head(name, new, seq)?;
        Ok(seq)
    }

    fn write_head(&self, name: &str, hash: &CapHash, seq: u64) -> Result<(), StoreError> {
        let line = if seq == 0 {
            format!("{hash}\n")
        } else {
            format!("{hash}\n{HISTORY_LINE}{seq}\n")
        };
        fsio::write_atomically(&self.tmp, &self.heads.join(name), line.as_bytes())
    }

    /// Stores the graph of the Instance `root` and points head `name` at
    /// it: the way to save state, safe against a concurrent prune or gc.
    /// The move is recorded in the history as action `"save"`.
    ///
    /// `source` supplies the graph's caps by hash (e.g. the kernel's
    /// `get_cap`); `None` means "not mine: it should already be stored".
    /// First every cap the source has is stored (under the shared lock,
    /// like [`Store::put`]), from `root` down its links. Then, holding the
    /// exclusive lock, the graph is checked as by [`Store::set_head`], and
    /// any blob a concurrent prune removed meanwhile (it was unreachable
    /// until now) is stored again from `source` before the head moves.
    /// Nothing can remove it again under that lock, so there is no retry
    /// loop to lose: the save fails only if the source lacks a blob that
    /// is not stored ([`StoreError::IncompleteGraph`]), if a cap the source
    /// gives does not hash to the name asked for
    /// ([`StoreError::HashMismatch`]), or on I/O errors.
    pub fn save_graph(
        &self,
        name: &str,
        root: &CapHash,
        source: impl FnMut(&CapHash) -> Option<Cap>,
    ) -> Result<SaveReport, StoreError> {
        self.save_graph_if(name, None, root, source, &[HeadChange::action("save")])
            .map(|(report, _)| report)
    }

    /// [`Store::save_graph`] with compare-and-swap and history: the head
    /// moves only if it is `expected` (`Some(None)`: absent; `None`: any
    /// value), else [`StoreError::HeadMoved`] and the head is unchanged
    /// (the blobs stored stay, unpinned, until a prune). One history
    /// record is appended per entry of `changes` (at least one), before
    /// the head moves. Returns the report and the head's move number.
    pub fn save_graph_if(
        &self,
        name: &str,
        expected: Option<Option<&CapHash>>,
        root: &CapHash,
        mut source: impl FnMut(&CapHash) -> Option<Cap>,
        changes: &[HeadChange],
    ) -> Result<(SaveReport, u64), StoreError> {
        validate_head_name(name)?;
        if changes.is_empty() {
            return Err(StoreError::NoChange {
                name: name.to_owned(),
            });
        }
        let expect = expected.map_or(Expect::Any, |e| Expect::Is(e.copied()));
        let mut report = self.put_graph(root, &mut source)?;
        let _alone = self.lock(LockMode::Exclusive)?;
        // Refuse a lost race before any work under the lock.
        self.expect_head(name, expect)?;
        graph::check_head_graph(self, name, root, Some(&mut source), &mut report.repaired)?;
        let seq = self.move_head_locked(name, expect, root, changes)?;
        Ok((report, seq))
    }

    /// Stores every cap `source` has of the graph of `root` (from `root`
    /// down its links; a cap the source does not have is not descended
    /// into), under the shared lock. No head moves: what is stored is
    /// unpinned (a prune may remove it) until a head reaches it.
    pub fn put_graph(
        &self,
        root: &CapHash,
        mut source: impl FnMut(&CapHash) -> Option<Cap>,
    ) -> Result<SaveReport, StoreError> {
        let mut report = SaveReport::default();
        let _shared = self.lock(LockMode::Shared)?;
        let mut seen = HashSet::new();
        let mut todo = vec![*root];
        while let Some(hash) = todo.pop() {
            if !seen.insert(hash) {
                continue;
            }
            let Some(cap) = source(&hash) else {
                continue;
            };
            let bytes = blobs::encode_as(&cap, &hash)?;
            self.write_blob_locked(&hash, &bytes)?;
            report.blobs += 1;
            todo.extend(graph::link_hashes(&cap));
        }
        Ok(report)
    }

    /// Head `name`'s history: every recorded move, oldest first (see
    /// "Head history" in the module docs). Records a crash left beyond
    /// the head are not part of it. Fails with
    /// [`StoreError::CorruptHistory`] when the log does not agree with the
    /// head (a damaged or missing record); [`Store::verify`] reports that
    /// too. A head that never moved since history was kept (or a format-2
    /// head not moved since) has an empty history.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        validate_head_name(name)?;
        // Shared: no head moves or log repair meanwhile.
        let _shared = self.lock(LockMode::Shared)?;
        let head = self.head_state(name)?;
        let log = history::read(&self.history.join(name), head, name)?;
        match log.problem {
            Some(reason) => Err(StoreError::CorruptHistory {
                name: name.to_owned(),
                path: self.history.join(name),
                reason,
            }),
            None => Ok(log.entries),
        }
    }

    /// Why head `name`'s history disagrees with the head, if it does (the
    /// caller holds the lock).
    pub(super) fn history_problem(&self, name: &str) -> Result<Option<String>, StoreError> {
        let head = self.head_state(name)?;
        Ok(history::read(&self.history.join(name), head, name)?.problem)
    }

    /// The hash head `name` points at, if it exists.
    pub fn head(&self, name: &str) -> Result<Option<CapHash>, StoreError> {
        Ok(self.head_state(name)?.map(|(hash, _)| hash))
    }

    /// The hash head `name` points at and its move number (the number of
    /// its last history record; 0 if none was ever written), if it exists.
    pub fn head_state(&self, name: &str) -> Result<Option<(CapHash, u64)>, StoreError> {
        validate_head_name(name)?;
        let path = self.heads.join(name);
        let corrupt = |reason: String| StoreError::CorruptHead {
            name: name.to_owned(),
            path: path.clone(),
            reason,
        };
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(corrupt("not UTF-8".to_owned()));
            }
            Err(e) => return Err(StoreError::io("read", path, e)),
        };
        let mut lines = text.split_terminator('\n');
        let hash =
            CapHash::from_hex(lines.next().unwrap_or("")).map_err(|e| corrupt(e.to_string()))?;
        let seq = match lines.next() {
            None => 0,
            Some(line) => line
                .strip_prefix(HISTORY_LINE)
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| corrupt(format!("unexpected line {:?}", truncated(line))))?,
        };
        if let Some(line) = lines.next() {
            return Err(corrupt(format!("unexpected line {:?}", truncated(line))));
        }
        Ok(Some((hash, seq)))
    }

    /// Every head, sorted by name. Files in `heads/` whose names are not
    /// valid head names were not written by a store and are skipped.
    pub fn heads(&self) -> Result<Vec<(String, CapHash)>, StoreError> {
        let (heads, mut corrupt) = self.heads_and_corrupt()?;
        match corrupt.pop() {
            Some(error) => Err(error),
            None => Ok(heads),
        }
    }

    /// Every readable head, and a [`StoreError::CorruptHead`] for each head
    /// file that cannot be read as one (so a listing can show the others
    /// and name the broken ones).
    pub fn heads_and_corrupt(&self) -> Result<HeadsListing, StoreError> {
        let mut heads = Vec::new();
        let mut corrupt = Vec::new();
        for name in self.head_names()? {
            match self.head(&name) {
                Ok(Some(hash)) => heads.push((name, hash)),
                // Removed since we listed it: not a head any more.
                Ok(None) => {}
                Err(e @ StoreError::CorruptHead { .. }) => corrupt.push(e),
                Err(e) => return Err(e),
            }
        }
        Ok((heads, corrupt))
    }

    /// Every hash the history of head `name` names (before and after each
    /// move), whatever the head file says: what a corrupt head may have
    /// pointed at.
    pub(super) fn hashes_in_history(&self, name: &str) -> Result<Vec<CapHash>, StoreError> {
        let log = history::read_all(&self.history.join(name))?;
        Ok(log
            .iter()
            .flat_map(|entry| entry.prev.into_iter().chain([entry.new]))
            .collect())
    }

    /// Removes head `name`; returns what it pointed at (`None` if there was
    /// no such head, or its file was corrupt: it is removed then too). Its
    /// graph is no longer pinned.
    pub fn remove_head(&self, name: &str) -> Result<Option<CapHash>, StoreError> {
        validate_head_name(name)?;
        let _alone = self.lock(LockMode::Exclusive)?;
        // A corrupt head file is removed all the same (it pinned nothing
        // anyone can name); the caller learns that from `head` beforehand.
        let previous = match self.head(name) {
            Ok(Some(hash)) => Some(hash),
            Ok(None) => return Ok(None),
            Err(StoreError::CorruptHead { .. }) => None,
            Err(e) => return Err(e),
        };
        let path = self.heads.join(name);
        fs::remove_file(&path).at("remove head", &path)?;
        fsio::sync_dir(&self.heads)?;
        // After the head: a log left by a crash here is stale, and the
        // next move of a head of this name cuts it (its move number is 0).
        let log = self.history.join(name);
        match fs::remove_file(&log) {
            Ok(()) => fsio::sync_dir(&self.history)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("remove history", log, e)),
        }
        Ok(previous)
    }

    /// Removes every history log whose head does not exist (the caller
    /// holds the exclusive lock).
    pub(super) fn remove_stale_histories(&self) -> Result<(), StoreError> {
        let mut removed = false;
        for entry in fs::read_dir(&self.history).at("list", &self.history)? {
            let entry = entry.at("list", &self.history)?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if validate_head_name(&name).is_err() || self.heads.join(&name).exists() {
                continue;
            }
            match fs::remove_file(entry.path()) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("remove history", entry.path(), e)),
            }
        }
        if removed {
            fsio::sync_dir(&self.history)?;
        }
        Ok(())
    }

    /// Valid head names present in `heads/`, sorted.
    pub(super) fn head_names(&self) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.heads).at("list", &self.heads)? {
            let entry = entry.at("list", &self.heads)?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if validate_head_name(&name).is_ok() && entry.path().is_file() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}

/// [`Store::heads_and_corrupt`]: the readable heads (name, hash) and an
/// error for each corrupt one.
pub type HeadsListing = (Vec<(String, CapHash)>, Vec<StoreError>);
