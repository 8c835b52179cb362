//! Heads and their history in PostgreSQL: one transaction per move
//! (row lock on the head, graph stored and checked, history rows
//! inserted, head row updated, commit).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use capbox_shared::{CapHash, CapKind};
use postgres::Row;

use super::walk::{self, Policy};
use super::{PgStore, TxnMode, hash_from};
use crate::store::history_token as token;
use crate::store::{
    CapSource, HeadChange, HeadsListing, HistoryEntry, SaveReport, StoreError, validate_head_name,
};

/// u64 ↔ bigint by bits (gas and endpoints never exceed what a row holds).
fn to_i64(value: u64) -> i64 {
    value as i64
}

impl PgStore {
    pub(super) fn head_state_impl(&self, name: &str) -> Result<Option<(CapHash, u64)>, StoreError> {
        validate_head_name(name)?;
        let rows = self.run("read a head", |c| {
            c.query(
                "SELECT hash, seq FROM capbox_heads WHERE name = $1",
                &[&name],
            )
        })?;
        rows.first()
            .map(|row| self.head_row(name, row, 0))
            .transpose()
    }

    /// (hash, seq) from columns `at` and `at + 1`.
    fn head_row(&self, name: &str, row: &Row, at: usize) -> Result<(CapHash, u64), StoreError> {
        let get = |e| self.query_error("read a head", e);
        let hash: Vec<u8> = row.try_get(at).map_err(get)?;
        let seq: i64 = row.try_get(at + 1).map_err(get)?;
        let hash = hash_from(&hash).ok_or_else(|| StoreError::CorruptHead {
            name: name.to_owned(),
            path: self.heads_table(),
            reason: "its hash is not 32 bytes".to_owned(),
        })?;
        Ok((hash, seq.max(0) as u64))
    }

    fn heads_table(&self) -> PathBuf {
        PathBuf::from(format!("{} (table capbox_heads)", self.target))
    }

    /// Every head (name, hash, seq), sorted by name; rows whose names are
    /// not head names (written by hand) are skipped, as the filesystem
    /// store skips such files.
    pub(super) fn heads_with_seq(&self) -> Result<Vec<(String, CapHash, u64)>, StoreError> {
        let rows = self.run("list heads", |c| {
            c.query(
                "SELECT name, hash, seq FROM capbox_heads ORDER BY name",
                &[],
            )
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let name: String = row
                .try_get(0)
                .map_err(|e| self.query_error("list heads", e))?;
            if validate_head_name(&name).is_err() {
                continue;
            }
            let (hash, seq) = self.head_row(&name, &row, 1)?;
            out.push((name, hash, seq));
        }
        Ok(out)
    }

    pub(super) fn heads_impl(&self) -> Result<HeadsListing, StoreError> {
        let heads = self
            .heads_with_seq()?
            .into_iter()
            .map(|(name, hash, _)| (name, hash))
            .collect();
        // The table's constraints keep every row readable as a head.
        Ok((heads, Vec::new()))
    }

    /// Head `name`'s records 1..=seq (one snapshot: one statement) and
    /// whether they form its chain.
    pub(super) fn read_history(
        &self,
        name: &str,
    ) -> Result<(Vec<HistoryEntry>, Option<String>), StoreError> {
        let rows = self.run("read a head's history", |c| {
            c.query(
                "SELECT hd.hash, hd.seq, h.seq, h.time_ms, h.prev, h.new, h.action,
                        h.endpoint, h.gas_used, h.outcome
                 FROM capbox_heads hd
                 LEFT JOIN capbox_history h ON h.head = hd.name AND h.seq <= hd.seq
                 WHERE hd.name = $1 ORDER BY h.seq",
                &[&name],
            )
        })?;
        let Some(first) = rows.first() else {
            return Ok((Vec::new(), None));
        };
        let head = self.head_row(name, first, 0)?;
        let mut entries = Vec::new();
        for row in &rows {
            let seq: Option<i64> = row
                .try_get(2)
                .map_err(|e| self.query_error("read a head's history", e))?;
            if seq.is_some() {
                entries.push(self.history_row(name, row)?);
            }
        }
        let problem = chain_problem(&entries, head, name);
        Ok((entries, problem))
    }

    fn history_row(&self, name: &str, row: &Row) -> Result<HistoryEntry, StoreError> {
        let get = |e| self.query_error("read a head's history", e);
        let seq: i64 = row.try_get(2).map_err(get)?;
        let time_ms: i64 = row.try_get(3).map_err(get)?;
        let prev: Option<Vec<u8>> = row.try_get(4).map_err(get)?;
        let new: Vec<u8> = row.try_get(5).map_err(get)?;
        let action: String = row.try_get(6).map_err(get)?;
        let endpoint: Option<i64> = row.try_get(7).map_err(get)?;
        let gas_used: Option<i64> = row.try_get(8).map_err(get)?;
        let outcome: Option<String> = row.try_get(9).map_err(get)?;
        let bad = || {
            self.bad_row(format!(
                "history record {seq} of head {name:?} is malformed"
            ))
        };
        let prev = match prev {
            Some(bytes) => Some(hash_from(&bytes).ok_or_else(bad)?),
            None => None,
        };
        Ok(HistoryEntry {
            seq: seq.max(0) as u64,
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(time_ms.max(0) as u64),
            prev,
            new: hash_from(&new).ok_or_else(bad)?,
            change: HeadChange {
                action,
                endpoint: endpoint
                    .map(|e| u32::try_from(e).map_err(|_| bad()))
                    .transpose()?,
                outcome,
                gas_used: gas_used.map(|g| g as u64),
            },
        })
    }

    pub(super) fn history_impl(&self, name: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        validate_head_name(name)?;
        let (entries, problem) = self.read_history(name)?;
        match problem {
            Some(reason) => Err(StoreError::CorruptHistory {
                name: name.to_owned(),
                path: PathBuf::from(format!("{} (table capbox_history)", self.target)),
                reason,
            }),
            None => Ok(entries),
        }
    }

    /// Moves head `name` to `new` in one transaction: locks the head row,
    /// compares it with `expected` (`None`: any), stores `new`'s graph from
    /// `source` (if given) and checks it (storing again from `source`
    /// what is missing), inserts one history row per change and updates
    /// the head row. Returns the save report and the new move number.
    pub(super) fn move_head(
        &self,
        name: &str,
        expected: Option<Option<&CapHash>>,
        new: &CapHash,
        source: Option<CapSource<'_>>,
        changes: &[HeadChange],
    ) -> Result<(SaveReport, u64), StoreError> {
        validate_head_name(name)?;
        if changes.is_empty() {
            return Err(StoreError::NoChange {
                name: name.to_owned(),
            });
        }
        let txn = self.begin(TxnMode::HeadMove)?;
        let rows = self.run("lock a head", |c| {
            c.query(
                "SELECT hash, seq FROM capbox_heads WHERE name = $1 FOR UPDATE",
                &[&name],
            )
        })?;
        let current = rows
            .first()
            .map(|row| self.head_row(name, row, 0))
            .transpose()?;
        if let Some(expected) = expected
            && current.map(|(hash, _)| hash) != expected.copied()
        {
            return Err(StoreError::HeadMoved {
                name: name.to_owned(),
                expected: expected.copied(),
                found: current.map(|(hash, _)| hash),
            });
        }
        let mut report = SaveReport::default();
        let mut visited = HashSet::new();
        let root_kind = match source {
            Some(source) => {
                let mut blobs = walk::collect(new, &mut *source)?;
                report.blobs = blobs.len() as u64;
                self.insert_blobs(&mut blobs)?;
                let policy = Policy::Repair {
                    head: name,
                    root: *new,
                    source,
                    repaired: &mut report.repaired,
                };
                self.walk(new, policy, &mut visited)?
            }
            None => {
                let policy = Policy::Refuse {
                    head: name,
                    root: *new,
                };
                self.walk(new, policy, &mut visited)?
            }
        };
        match root_kind {
            Some(CapKind::Instance) => {}
            Some(found) => {
                return Err(StoreError::HeadNotInstance {
                    name: name.to_owned(),
                    hash: *new,
                    found,
                });
            }
            None => {
                return Err(StoreError::IncompleteGraph {
                    name: name.to_owned(),
                    root: *new,
                    missing: *new,
                });
            }
        }
        let (prev, seq) = match current {
            Some((hash, seq)) => (Some(hash), seq),
            None => (None, 0),
        };
        let new_seq = seq + changes.len() as u64;
        let key = new.as_bytes().as_slice();
        let moved = self.run("move a head", |c| match current {
            Some(_) => c.execute(
                "UPDATE capbox_heads SET hash = $2, seq = $3, moved_at = now() WHERE name = $1",
                &[&name, &key, &to_i64(new_seq)],
            ),
            None => c.execute(
                "INSERT INTO capbox_heads (name, hash, seq) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &key, &to_i64(new_seq)],
            ),
        })?;
        if moved != 1 {
            // Created by another writer since we looked (its transaction
            // committed while ours waited on the insert).
            drop(txn);
            return Err(StoreError::HeadMoved {
                name: name.to_owned(),
                expected: expected.flatten().copied(),
                found: self.head_state_impl(name)?.map(|(hash, _)| hash),
            });
        }
        self.insert_history(name, prev, new, seq, changes)?;
        txn.commit()?;
        Ok((report, new_seq))
    }

    /// Inserts records seq+1..=seq+n, the first starting at `prev`, every
    /// one ending at `new`.
    fn insert_history(
        &self,
        name: &str,
        mut prev: Option<CapHash>,
        new: &CapHash,
        seq: u64,
        changes: &[HeadChange],
    ) -> Result<(), StoreError> {
        let millis = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut seqs = Vec::new();
        let mut prevs: Vec<Option<Vec<u8>>> = Vec::new();
        let mut actions = Vec::new();
        let mut endpoints = Vec::new();
        let mut gas = Vec::new();
        let mut outcomes = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            seqs.push(to_i64(seq + 1 + i as u64));
            prevs.push(prev.map(|h| h.as_bytes().to_vec()));
            actions.push(token(&change.action));
            endpoints.push(change.endpoint.map(i64::from));
            gas.push(change.gas_used.map(to_i64));
            outcomes.push(change.outcome.as_deref().map(token));
            prev = Some(*new);
        }
        let key = new.as_bytes().as_slice();
        self.run("append to a head's history", |c| {
            c.execute(
                "INSERT INTO capbox_history
                   (head, seq, time_ms, prev, new, action, endpoint, gas_used, outcome)
                 SELECT $1, s, $2, p, $3, a, e, g, o
                 FROM unnest($4::int8[], $5::bytea[], $6::text[], $7::int8[], $8::int8[],
                             $9::text[]) AS t(s, p, a, e, g, o)",
                &[
                    &name, &millis, &key, &seqs, &prevs, &actions, &endpoints, &gas, &outcomes,
                ],
            )
        })?;
        Ok(())
    }

    pub(super) fn remove_head_impl(&self, name: &str) -> Result<Option<CapHash>, StoreError> {
        validate_head_name(name)?;
        let txn = self.begin(TxnMode::HeadMove)?;
        let rows = self.run("remove a head", |c| {
            c.query(
                "DELETE FROM capbox_heads WHERE name = $1 RETURNING hash, seq",
                &[&name],
            )
        })?;
        self.run("remove a head's history", |c| {
            c.execute("DELETE FROM capbox_history WHERE head = $1", &[&name])
        })?;
        let previous = rows
            .first()
            .map(|row| self.head_row(name, row, 0))
            .transpose()?;
        txn.commit()?;
        Ok(previous.map(|(hash, _)| hash))
    }
}

/// Why `entries` (records up to the head's seq, in order) are not head
/// `name`'s chain: numbered 1..=seq, each starting where the previous
/// ended, the last ending at the head.
pub(super) fn chain_problem(
    entries: &[HistoryEntry],
    head: (CapHash, u64),
    name: &str,
) -> Option<String> {
    let show = |h: &Option<CapHash>| h.map_or_else(|| "-".to_owned(), |h| h.to_string());
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
                "record {} of head {name:?} starts at {} but record {i} ended at {}",
                entry.seq,
                show(&entry.prev),
                entries[i - 1].new
            ));
        }
    }
    let (hash, seq) = head;
    match entries.last() {
        None if seq == 0 => None,
        None => Some(format!(
            "head {name:?} is at move {seq} but its history is empty"
        )),
        Some(last) if last.seq != seq || last.new != hash => Some(format!(
            "head {name:?} is at move {seq} ({hash}) but its history ends at move {} ({})",
            last.seq, last.new
        )),
        Some(_) => None,
    }
}
