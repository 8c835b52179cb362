//! Verification: re-hash every blob, check every head's graph.

use std::collections::HashSet;
use std::fmt;

use capbox_shared::CapHash;

use super::error::StoreError;
use super::fsio::LockMode;
use super::{Store, graph, pages};

/// What [`Store::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Blobs read and re-hashed.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Heads whose graphs were walked.
    pub heads: u64,
    /// Everything wrong, in the order found (blobs by hash, then heads by name).
    pub problems: Vec<VerifyProblem>,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One problem [`Store::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyProblem {
    /// A blob that does not decode, or whose bytes do not hash to its name,
    /// or that cannot be read.
    CorruptBlob {
        /// The blob's name.
        hash: CapHash,
        /// What is wrong.
        reason: String,
    },
    /// A blob reachable from a head is not stored.
    MissingBlob {
        /// The head.
        head: String,
        /// The missing blob.
        hash: CapHash,
    },
    /// A head that cannot be read, does not point at an Instance, or whose
    /// graph cannot be walked (a corrupt structural blob) or links a cap of
    /// the wrong kind.
    BadHead {
        /// The head.
        head: String,
        /// What is wrong.
        reason: String,
    },
    /// A head's history does not agree with the head (a damaged or
    /// missing record).
    BadHistory {
        /// The head.
        head: String,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for VerifyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyProblem::CorruptBlob { hash, reason } => {
                write!(f, "corrupt blob {hash}: {reason}")
            }
            VerifyProblem::MissingBlob { head, hash } => {
                write!(f, "head {head:?}: blob {hash} of its graph is missing")
            }
            VerifyProblem::BadHead { head, reason } => write!(f, "head {head:?}: {reason}"),
            VerifyProblem::BadHistory { head, reason } => {
                write!(f, "history of head {head:?}: {reason}")
            }
        }
    }
}

/// An error and its causes, each once: "a: b: c".
pub(crate) fn chain(error: &StoreError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Store {
    /// Reads and re-hashes every blob (decoding it), checks that every
    /// head's history agrees with it, and walks every head's
    /// graph checking that each reachable blob is stored and of the kind
    /// its link requires. Problems are reported, not returned as errors:
    /// `Err` means the store could not be read at all (e.g. `blobs/` is
    /// unreadable) or its lock not taken.
    ///
    /// Holds the lock shared, so heads and their graphs do not change
    /// meanwhile (blob writers still run; prune and head updates wait).
    /// Does not touch access times.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let _shared = self.lock(LockMode::Shared)?;
        let mut report = VerifyReport::default();
        let mut blobs = Vec::new();
        self.scan_blobs(|hash, _, meta| {
            blobs.push((hash, meta.len()));
            Ok(())
        })?;
        blobs.sort();
        // Data trees share parts: each is checked once.
        let mut verified_parts = HashSet::new();
        for (hash, len) in blobs {
            if len == pages::ROOT_RECORD_LEN as u64
                && let Ok(record) = std::fs::read(self.blob_path(&hash))
                && pages::is_root_record(&record)
            {
                match self.verify_data_tree(&hash, &record, &mut verified_parts) {
                    Ok(()) => {
                        report.blobs += 1;
                        report.bytes += len;
                    }
                    Err(reason) => report
                        .problems
                        .push(VerifyProblem::CorruptBlob { hash, reason }),
                }
                continue;
            }
            match self.read_verified(&hash, false) {
                Ok(Some(_)) => {
                    report.blobs += 1;
                    report.bytes += len;
                }
                // Removed by hand meanwhile.
                Ok(None) => {}
                Err(StoreError::CorruptBlob { reason, .. }) => {
                    report
                        .problems
                        .push(VerifyProblem::CorruptBlob { hash, reason });
                }
                Err(e) => report.problems.push(VerifyProblem::CorruptBlob {
                    hash,
                    reason: chain(&e),
                }),
            }
        }
        for name in self.head_names()? {
            let bad = |reason: String| VerifyProblem::BadHead {
                head: name.clone(),
                reason,
            };
            let root = match self.head(&name) {
                Ok(Some(root)) => root,
                Ok(None) => continue,
                Err(e) => {
                    report.problems.push(bad(chain(&e)));
                    continue;
                }
            };
            report.heads += 1;
            match graph::read_kind(&self.blob_path(&root)) {
                Ok(Some(capbox_shared::CapKind::Instance)) => {}
                Ok(Some(kind)) => {
                    report.problems.push(bad(format!(
                        "points at {root}, a {kind} cap, not an Instance"
                    )));
                    continue;
                }
                // Missing or corrupt: the walk below reports it.
                _ => {}
            }
            match self.history_problem(&name) {
                Ok(None) => {}
                Ok(Some(reason)) => report.problems.push(VerifyProblem::BadHistory {
                    head: name.clone(),
                    reason,
                }),
                Err(e) => report.problems.push(VerifyProblem::BadHistory {
                    head: name.clone(),
                    reason: chain(&e),
                }),
            }
            let (mut missing, mut wrong_kinds) = (Vec::new(), Vec::new());
            let walked = graph::audit_graph(self, &root, &mut missing, &mut wrong_kinds);
            report
                .problems
                .extend(missing.into_iter().map(|hash| VerifyProblem::MissingBlob {
                    head: name.clone(),
                    hash,
                }));
            report
                .problems
                .extend(wrong_kinds.iter().map(|e| bad(chain(e))));
            if let Err(e) = walked {
                report
                    .problems
                    .push(bad(format!("cannot walk its graph: {}", chain(&e))));
            }
        }
        Ok(report)
    }
}
