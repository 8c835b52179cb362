//! [`Session`]: invocations on state kept in a [`crate::Store`] (or any [`StoreBackend`]), durable by
//! default, with no lost updates.
//!
//! A session runs a [`Kernel`] on the state a store head (or a stored
//! instance hash) names. Nothing is loaded up front: the kernel's
//! `fetch_blob` is served from the store ([`Kernel::set_blob_fallback`]),
//! so only the blobs an invocation touches are read.
//!
//! **Durable mode** (the default): after every invocation that returns an
//! outcome (any exit: halt, panic, out of gas, page fault, timeout; the
//! kernel decides what the state becomes), the blobs of the new state the
//! store lacks are exported from the kernel and stored, fsynced, *before*
//! the head moves (a Data the store keeps as pages moves only the pages
//! and tree nodes the store lacks, [`crate::export_data_caps`]); then the head moves by compare-and-swap
//! ([`StoreBackend::save_graph_if`]), appending a history record (time, previous
//! and new hash, endpoint, outcome summary, gas) first. An invocation is
//! *committed* when [`Session::invoke`] returns `Ok`. A crash or guest
//! fault can cost at most the invocation in flight: everything committed
//! is in the store and in the history. An invocation that fails (a
//! [`KernelError`], e.g. a guest fault) commits nothing and leaves the
//! session on the state it had.
//!
//! **Concurrency**: the head is read when the session opens and after
//! every commit; a commit expects the head to be where the session last
//! saw it. If another process moved it meanwhile (a lost race), the
//! default ([`OnConflict::Retry`]) re-runs the invocation on the head's new
//! state, after a short random pause, up to a bound (64 attempts), then
//! fails with [`SessionError::Conflict`]; with [`OnConflict::Fail`] the
//! first lost race is that error. Either way no update is lost silently:
//! two sessions invoking one head both commit, one after the other, or
//! the loser gets the error (and its result is not recorded). A session
//! opened on a hash ([`Session::at`]) with a head to move never retries:
//! re-running on the head's state is not what it was asked.
//!
//! **Deferred mode** (`durable: false`): invocations advance the session's
//! state in memory only; [`Session::commit`] stores the state and moves the
//! head once, writing one history record per invocation. A lost race there
//! is always [`SessionError::Conflict`] (the results were already handed
//! out, so re-running them would be a different history).

use std::borrow::BorrowMut;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use capbox_shared::cap::{Cap, Image};
use capbox_shared::hash::CapHash;
use capbox_shared::kernel::{ExitReason, Outcome};

use crate::error::KernelError;
use crate::kernel::{Invocation, Kernel};
use crate::store::{HeadChange, SharedStore, StoreBackend, StoreError};

/// What a session does when a commit finds the head moved by somebody else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Re-run the invocation on the head's new state, up to `max_attempts`
    /// runs in all, then [`SessionError::Conflict`].
    Retry {
        /// Runs in all (at least 1).
        max_attempts: u32,
    },
    /// [`SessionError::Conflict`] at the first lost race.
    Fail,
}

/// How a [`Session`] commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// Store the new state and move the head after every invocation (the
    /// default); `false`: only at [`Session::commit`].
    pub durable: bool,
    /// What a lost race does (durable mode on a head).
    pub on_conflict: OnConflict,
}

/// The default bound of [`OnConflict::Retry`].
pub const DEFAULT_MAX_ATTEMPTS: u32 = 64;

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            durable: true,
            on_conflict: OnConflict::Retry {
                max_attempts: DEFAULT_MAX_ATTEMPTS,
            },
        }
    }
}

/// Why a [`Session`] operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The kernel failed (nothing was committed).
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// [`Session::open`] of a head that does not exist.
    #[error("no head {name:?} in the store (`capbox new PROGRAM --head {name}` creates one)")]
    NoSuchHead {
        /// The head.
        name: String,
    },
    /// [`Session::create`] of a head that exists.
    #[error("head {name:?} already exists (at {hash})")]
    HeadExists {
        /// The head.
        name: String,
        /// What it points at.
        hash: CapHash,
    },
    /// [`Session::at`] of a hash the store does not hold.
    #[error("{hash} is not in the store")]
    NotStored {
        /// The hash.
        hash: CapHash,
    },
    /// [`Session::at`] of a hash that is not an Instance.
    #[error("{hash} is a {kind} cap, not an Instance")]
    NotAnInstance {
        /// The hash.
        hash: CapHash,
        /// Its kind.
        kind: capbox_shared::CapKind,
    },
    /// The head was moved by somebody else and the session did not (or no
    /// longer) retry: this session's result was not recorded.
    #[error(
        "head {name:?} was moved by another writer (now {found}); gave up after {attempts} \
         attempt(s), nothing of this invocation was recorded"
    )]
    Conflict {
        /// The head.
        name: String,
        /// Runs made.
        attempts: u32,
        /// Where the head is now.
        found: CapHash,
    },
    /// The head was removed while the session used it.
    #[error("head {name:?} was removed by another writer; nothing was recorded")]
    HeadRemoved {
        /// The head.
        name: String,
    },
}

/// A committed (or, in deferred mode, pending) invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The invocation's outcome; `outcome.instance` is the new state.
    pub outcome: Outcome,
    /// The state it ran on.
    pub prev: CapHash,
    /// The head's move number after the commit (its history record), when
    /// a head moved.
    pub seq: Option<u64>,
    /// Runs it took (more than 1 after lost races).
    pub attempts: u32,
    /// The program's `log` messages of the run that counted.
    pub logs: Vec<Vec<u8>>,
}

/// Invocations on stored state (see the module docs). `K` is the kernel,
/// owned or borrowed (`&mut Kernel`).
pub struct Session<K: BorrowMut<Kernel> = Kernel> {
    kernel: K,
    store: SharedStore,
    head: Option<String>,
    /// Where the head was when last read or written (what a commit expects).
    base: Option<CapHash>,
    state: CapHash,
    /// Whether a lost race re-runs on the head's state.
    follows_head: bool,
    /// Deferred mode: the history records of invocations not committed yet.
    pending: Vec<HeadChange>,
    options: SessionOptions,
    /// Data caps the last commit stored from the kernel: at the next
    /// commit the store serves them, so the kernel is told it may drop
    /// them (`Kernel::host_keeps`; see `release_to_store`).
    stored_last: Vec<CapHash>,
    /// Whether the kernel was told the store serves blobs (the fallback
    /// then stays when the session ends).
    released: bool,
}

/// The history record of an invocation.
pub fn change_for(call: &Invocation, outcome: &Outcome) -> HeadChange {
    HeadChange {
        action: "invoke".to_owned(),
        endpoint: Some(call.endpoint),
        outcome: Some(outcome_summary(outcome)),
        gas_used: Some(outcome.gas_used),
    }
}

/// An outcome in a history record: `exit=Halt,r7=1,r8=0,out=0`
/// (`out`: output bytes).
pub fn outcome_summary(o: &Outcome) -> String {
    let exit = match o.exit {
        ExitReason::PageFault(address) => format!("PageFault:{address:#x}"),
        other => format!("{other:?}"),
    };
    format!("exit={exit},r7={},r8={},out={}", o.r7, o.r8, o.output.len())
}

impl<K: BorrowMut<Kernel>> Session<K> {
    fn new(kernel: K, store: SharedStore, options: SessionOptions, state: CapHash) -> Self {
        let mut session = Session {
            kernel,
            store,
            head: None,
            base: None,
            state,
            follows_head: false,
            pending: Vec::new(),
            options,
            stored_last: Vec::new(),
            released: false,
        };
        let store = session.store.clone();
        let fallback: crate::kernel::BlobFallback =
            Arc::new(move |hash| store.get_encoded(hash).ok().flatten());
        session
            .kernel
            .borrow_mut()
            .set_blob_fallback(Some(fallback));
        session
    }

    /// A session on head `name` ([`SessionError::NoSuchHead`] if absent).
    pub fn open(
        kernel: K,
        store: impl Into<SharedStore>,
        name: &str,
        options: SessionOptions,
    ) -> Result<Self, SessionError> {
        let store = store.into();
        let Some(hash) = store.head(name)? else {
            return Err(SessionError::NoSuchHead {
                name: name.to_owned(),
            });
        };
        let mut session = Session::new(kernel, store, options, hash);
        session.head = Some(name.to_owned());
        session.base = Some(hash);
        session.follows_head = true;
        Ok(session)
    }

    /// A session on the stored Instance `hash`. With `head`, commits move
    /// that head (from wherever it is now, by compare-and-swap, never
    /// retried); without, they only store the new state (unpinned: a prune
    /// may remove it unless a head reaches it).
    pub fn at(
        kernel: K,
        store: impl Into<SharedStore>,
        hash: &CapHash,
        head: Option<&str>,
        options: SessionOptions,
    ) -> Result<Self, SessionError> {
        let store = store.into();
        match store.get(hash)? {
            None => return Err(SessionError::NotStored { hash: *hash }),
            Some(Cap::Instance(_)) => {}
            Some(other) => {
                return Err(SessionError::NotAnInstance {
                    hash: *hash,
                    kind: other.kind(),
                });
            }
        }
        let base = match head {
            Some(name) => store.head(name)?,
            None => None,
        };
        let mut session = Session::new(kernel, store, options, *hash);
        session.head = head.map(str::to_owned);
        session.base = base;
        Ok(session)
    }

    /// Publishes `image` and a fresh instance of it, stores them and
    /// creates head `name` on it (history action `"new"`); a session on it.
    /// [`SessionError::HeadExists`] if the head exists.
    pub fn create(
        mut kernel: K,
        store: impl Into<SharedStore>,
        name: &str,
        image: &Image,
        options: SessionOptions,
    ) -> Result<Self, SessionError> {
        let store = store.into();
        if let Some(hash) = store.head(name)? {
            return Err(SessionError::HeadExists {
                name: name.to_owned(),
                hash,
            });
        }
        let instance = kernel.borrow_mut().create_instance(image)?;
        let mut session = Session::new(kernel, store, options, instance);
        session.head = Some(name.to_owned());
        session.follows_head = true;
        match session.store_state(instance, vec![HeadChange::action("new")]) {
            Ok(_) => Ok(session),
            Err(SessionError::Conflict { found, .. }) => Err(SessionError::HeadExists {
                name: name.to_owned(),
                hash: found,
            }),
            Err(e) => Err(e),
        }
    }

    /// The state the session is on (after its last invocation).
    pub fn state(&self) -> CapHash {
        self.state
    }

    /// The head the session moves, if any.
    pub fn head(&self) -> Option<&str> {
        self.head.as_deref()
    }

    /// The store.
    pub fn store(&self) -> &dyn StoreBackend {
        &*self.store
    }

    /// The kernel (e.g. to read its backend or stats).
    pub fn kernel_mut(&mut self) -> &mut Kernel {
        self.kernel.borrow_mut()
    }

    /// Invocations run but not committed yet (deferred mode).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Runs `call` on the session's state (`call.instance` is ignored) and,
    /// in durable mode, commits it (see the module docs). On `Err` nothing
    /// was committed; the session stays on its state, except that after a
    /// lost race a session on a head moves to the head's new state (so the
    /// next invocation starts there).
    pub fn invoke(&mut self, call: &Invocation) -> Result<Committed, SessionError> {
        let max_attempts = match (self.options.on_conflict, self.follows_head) {
            (OnConflict::Retry { max_attempts }, true) => max_attempts.max(1),
            _ => 1,
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let run = Invocation {
                instance: Some(self.state),
                ..call.clone()
            };
            let kernel = self.kernel.borrow_mut();
            kernel.take_logs();
            let outcome = kernel.invoke_one(&run)?;
            let logs = kernel.take_logs();
            let prev = self.state;
            let change = change_for(call, &outcome);
            if !self.options.durable {
                self.state = outcome.instance;
                self.pending.push(change);
                return Ok(Committed {
                    outcome,
                    prev,
                    seq: None,
                    attempts,
                    logs,
                });
            }
            match self.store_state(outcome.instance, vec![change]) {
                Ok(seq) => {
                    return Ok(Committed {
                        outcome,
                        prev,
                        seq,
                        attempts,
                        logs,
                    });
                }
                Err(SessionError::Conflict { found, .. }) if attempts < max_attempts => {
                    self.state = found;
                    self.base = Some(found);
                    pause_after_lost_race(attempts);
                }
                Err(SessionError::Conflict { name, found, .. }) => {
                    if self.follows_head {
                        // The next invocation starts from the head's state.
                        self.state = found;
                        self.base = Some(found);
                    }
                    return Err(SessionError::Conflict {
                        name,
                        attempts,
                        found,
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs `calls` in order, each on the state the previous left, each
    /// committed as by [`Session::invoke`]; stops at the first error
    /// (everything before it stays committed).
    pub fn invoke_all(&mut self, calls: &[Invocation]) -> Result<Vec<Committed>, SessionError> {
        calls.iter().map(|call| self.invoke(call)).collect()
    }

    /// Deferred mode: stores the session's state and moves the head, one
    /// history record per pending invocation. Returns the head's move
    /// number (`None` without a head or pending invocations). A lost race
    /// is [`SessionError::Conflict`], and the pending invocations stay
    /// pending.
    pub fn commit(&mut self) -> Result<Option<u64>, SessionError> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let changes = self.pending.clone();
        let seq = self.store_state(self.state, changes)?;
        self.pending.clear();
        Ok(seq)
    }

    /// Stores `new`'s graph (the blobs the store lacks, from the kernel)
    /// and, with a head, moves it from `base` to `new` recording
    /// `changes`. A lost race is [`SessionError::Conflict`] (attempts 1).
    fn store_state(
        &mut self,
        new: CapHash,
        changes: Vec<HeadChange>,
    ) -> Result<Option<u64>, SessionError> {
        let store = self.store.clone();
        let kernel = self.kernel.borrow_mut();
        // Data caps go first, page-granular on a store that keeps pages:
        // only the pages and tree nodes the store lacks cross the ABI
        // (docs/store.md "Data pages"); the graph save below then finds
        // them stored.
        let (_, exported) = crate::export_pages::export_data_caps_listed(kernel, &*store, &new)?;
        // Only what the store lacks comes from the kernel (a blob it
        // holds was stored with its whole graph, or is repaired from the
        // kernel under the lock if a prune took part of it).
        let mut source = |hash: &CapHash| {
            if store.contains(hash).unwrap_or(false) {
                None
            } else {
                kernel.get_cap(hash).ok()
            }
        };
        let Some(name) = self.head.clone() else {
            store.put_graph(&new, &mut source)?;
            self.state = new;
            self.release_to_store(exported);
            return Ok(None);
        };
        match store.save_graph_if(&name, Some(self.base.as_ref()), &new, &mut source, &changes) {
            Ok((_, seq)) => {
                self.base = Some(new);
                self.state = new;
                self.release_to_store(exported);
                Ok(Some(seq))
            }
            Err(StoreError::HeadMoved {
                found: Some(found), ..
            }) => {
                // The losing state is garbage: whatever of it the export
                // stored, the kernel need not keep.
                self.release(exported.stored);
                Err(SessionError::Conflict {
                    name,
                    attempts: 1,
                    found,
                })
            }
            Err(StoreError::HeadMoved { found: None, .. }) if self.base.is_some() => {
                Err(SessionError::HeadRemoved { name })
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl<K: BorrowMut<Kernel>> Session<K> {
    /// After a commit that stored `exported`: the Data caps the previous
    /// commit stored are served by the store now, so the kernel may drop
    /// them on eviction instead of keeping them (a kernel-made Data larger
    /// than a spill message could not leave the kernel otherwise, and a
    /// smaller one would be spilled to the host although the store has
    /// it). Those the new state still reaches are kept back; the new
    /// state's own Data stay the kernel's until the next commit, so the
    /// kernel always holds the session's state.
    fn release_to_store(&mut self, exported: crate::export_pages::ExportedData) {
        let previous = std::mem::replace(&mut self.stored_last, exported.stored);
        let release: Vec<CapHash> = previous
            .into_iter()
            .filter(|h| !exported.reached.contains(h))
            .collect();
        self.release(release);
    }

    fn release(&mut self, hashes: Vec<CapHash>) {
        if hashes.is_empty() {
            return;
        }
        self.released = true;
        // A failure (a faulted kernel) only means the kernel keeps them.
        let _ = self.kernel.borrow_mut().host_keeps(&hashes);
    }
}

impl<K: BorrowMut<Kernel>> Drop for Session<K> {
    fn drop(&mut self) {
        // The kernel may outlive the session (a borrowed one). Once it was
        // told the store serves some blobs, the store stays its fallback
        // (it may have dropped them); otherwise nothing is left behind.
        if !self.released {
            self.kernel.borrow_mut().set_blob_fallback(None);
        }
    }
}

/// After the `attempt`-th lost race: a random pause of up to 2^attempt ms
/// (at most 50 ms), so racing writers spread out.
fn pause_after_lost_race(attempt: u32) {
    let cap_ms = 1u64 << attempt.min(6);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(attempt);
    let ms = hasher.finish() % cap_ms.clamp(1, 50);
    std::thread::sleep(Duration::from_millis(ms));
}
