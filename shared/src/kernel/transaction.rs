//! One top-level invocation's working set (DESIGN §5, "Transactions").
//!
//! A [`Txn`] is shared by every frame of the call stack (the top-level
//! invocation and the children it `call`s): the directory, the host (for
//! `fetch_blob` and logs), the input, and the budgets. A [`Frame`] is one
//! running instance: its root CNode, loaded lazily and changed only in the
//! frame's own copy, so nothing a frame does is visible anywhere until it
//! halts and commits (and a child's commit is visible only in its parent's
//! copy, and so on up to the top).
//!
//! Working caps (a Data written to, a child given caps) live as working
//! entries of the directory, linked by `Ref` from the frame's CNode copy;
//! commit settles them bottom-up into blobs, and the top-level invocation
//! sweeps whatever nobody links to any more, whatever the outcome.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::hash::BuildHasher;

use super::error::KernelError;
use super::invoke::{as_data, instance_memory_hash, layout_for};
use super::ops::{self, MAX_NEW_BYTES};
use super::programs::{Prepared, ProgramCache};
use super::service::KernelHost;
use crate::cap::{CNode, Cap, CapHashOrRef, CapRef, Data, InstanceCap, MAX_CNODE_SLOTS};
use crate::hash::CapHash;
use crate::{CacheDirectory, CacheError};

/// Most blobs one invocation fetches from the host while it runs (each is
/// a guest → host call).
pub const MAX_FETCHES_PER_INVOCATION: usize = 4096;

/// Why an op did not return a value: an error code for the program, or a
/// kernel error that ends the whole invocation (nothing committed).
#[derive(Debug)]
pub(crate) enum OpError {
    /// Returned to the program in φ7; it continues.
    Code(u64),
    /// The invocation cannot go on (e.g. a blob nobody has).
    Kernel(KernelError),
    /// The op's gas could not be paid: the invocation ends out of gas.
    OutOfGas,
    /// The invocation's deadline passed (seen at a `call`, or in a child):
    /// it ends as a timeout, nothing committed.
    Timeout,
}

impl From<KernelError> for OpError {
    fn from(e: KernelError) -> Self {
        OpError::Kernel(e)
    }
}

impl From<crate::CacheError> for OpError {
    fn from(e: crate::CacheError) -> Self {
        OpError::Kernel(e.into())
    }
}

/// An op's φ7, or why there is none.
pub(crate) type OpResult = Result<u64, OpError>;

/// The error code `code` as an `Err`.
pub(crate) fn code<T>(code: u64) -> Result<T, OpError> {
    Err(OpError::Code(code))
}

/// A slot argument, checked.
pub(crate) fn slot_arg(value: u64) -> Result<u32, OpError> {
    match u32::try_from(value) {
        Ok(slot) if slot < MAX_CNODE_SLOTS => Ok(slot),
        _ => code(ops::ERR_SLOT),
    }
}

/// What every frame of one top-level invocation shares.
pub(crate) struct Txn<'a, S> {
    pub dir: &'a CacheDirectory<S>,
    pub programs: &'a ProgramCache,
    pub host: &'a mut dyn KernelHost,
    /// The top-level invocation's input (children get none).
    pub input: &'a [u8],
    /// Bytes of new Data made so far (bounded by [`MAX_NEW_BYTES`]).
    new_bytes: u64,
    /// Memory the frames on the call stack map (bounded by
    /// [`super::MAX_MAPPED_BYTES`]).
    pub mapped: u64,
    /// Whether a working entry was made (then the end sweeps).
    pub made_working: bool,
    fetches: usize,
    /// When the invocation's time is up, on the host's clock (`None`: no
    /// deadline).
    deadline: Option<u64>,
    /// Gas the frames may still use before the next look at the clock
    /// (`i64::MAX` without a deadline: never reached).
    slice_left: i64,
}

impl<'a, S: BuildHasher> Txn<'a, S> {
    pub fn new(
        dir: &'a CacheDirectory<S>,
        programs: &'a ProgramCache,
        host: &'a mut dyn KernelHost,
        input: &'a [u8],
    ) -> Self {
        Txn {
            dir,
            programs,
            host,
            input,
            new_bytes: 0,
            mapped: 0,
            made_working: false,
            fetches: 0,
            deadline: None,
            slice_left: i64::MAX,
        }
    }

    /// Starts the clock: the deadline is `timeout` ticks from now
    /// ([`super::NO_TIMEOUT`], or a host without a clock: none).
    pub fn start_deadline(&mut self, timeout: u64) {
        if timeout == super::NO_TIMEOUT {
            return;
        }
        if let Some(now) = self.host.now() {
            self.deadline = Some(now.saturating_add(timeout));
            self.slice_left = super::SLICE_GAS as i64;
        }
    }

    /// The slice for the next run of a machine: the gas left before the
    /// next look at the clock.
    pub fn slice(&self) -> u64 {
        self.slice_left.max(0) as u64
    }

    /// Counts `gas` used (by a machine or an op) against the slice.
    pub fn spend(&mut self, gas: i64) {
        self.slice_left = self.slice_left.saturating_sub(gas);
    }

    /// Whether the slice is used up (time for a look at the clock).
    pub fn slice_used(&self) -> bool {
        self.slice_left <= 0
    }

    /// Looks at the clock: whether the deadline has passed. If not, a new
    /// slice starts.
    pub fn deadline_passed(&mut self) -> bool {
        let Some(deadline) = self.deadline else {
            return false;
        };
        // A clock that stopped answering cannot end the invocation.
        if self.host.now().is_some_and(|now| now >= deadline) {
            return true;
        }
        self.slice_left = super::SLICE_GAS as i64;
        false
    }

    /// Counts `bytes` of new Data against [`MAX_NEW_BYTES`].
    pub fn charge_new_bytes(&mut self, bytes: u64) -> Result<(), OpError> {
        match self.new_bytes.checked_add(bytes) {
            Some(total) if total <= MAX_NEW_BYTES => {
                self.new_bytes = total;
                Ok(())
            }
            _ => code(ops::ERR_LIMIT),
        }
    }

    /// The blob `hash`, fetched from the host (and checked against its
    /// hash) if the directory lacks it.
    pub fn blob(&mut self, hash: &CapHash) -> Result<Arc<Cap>, KernelError> {
        if let Some(cap) = self.dir.get_blob(hash) {
            return Ok(cap);
        }
        if self.fetches >= MAX_FETCHES_PER_INVOCATION {
            return Err(KernelError::MissingCap(*hash));
        }
        self.fetches += 1;
        let bytes = self
            .host
            .fetch_blob(hash)
            .ok_or(KernelError::MissingCap(*hash))?;
        // A wrong or undecodable answer (or a Data delta whose base is
        // gone) counts as missing.
        let dir = self.dir;
        let (cap, _) =
            super::from_host::cap_from_host(&bytes, Some(hash), |base| dir.get_blob(base))
                .map_err(|_| KernelError::MissingCap(*hash))?;
        let cap = Arc::new(cap);
        self.dir.put_fetched_blob(*hash, cap.clone());
        Ok(self.dir.get_blob(hash).unwrap_or(cap))
    }

    /// The cap behind a link.
    pub fn load(&mut self, link: &CapHashOrRef) -> Result<Arc<Cap>, KernelError> {
        match link {
            CapHashOrRef::Hash(hash) => self.blob(hash),
            CapHashOrRef::Ref(r) => self.dir.get_instance(r).ok_or(KernelError::Directory(
                crate::CacheError::InstanceMissing(r.id()),
            )),
        }
    }

    /// A new working entry holding `cap`.
    pub fn working(&mut self, cap: Arc<Cap>) -> CapRef {
        self.made_working = true;
        self.dir.put_instance_arc(cap)
    }

    /// A working entry for `link`: the same `Ref`, or a new entry sharing
    /// the blob's value (copy-on-write).
    pub fn make_working(&mut self, link: &CapHashOrRef) -> Result<CapRef, KernelError> {
        match link {
            CapHashOrRef::Ref(r) => Ok(r.clone()),
            CapHashOrRef::Hash(_) => {
                let cap = self.load(link)?;
                Ok(self.working(cap))
            }
        }
    }

    /// Changes the working entry `r` in place (copy-on-write of its value).
    pub fn update<T>(
        &mut self,
        r: &CapRef,
        change: impl FnOnce(&mut Cap) -> T,
    ) -> Result<T, KernelError> {
        let mut cap = self.load(&CapHashOrRef::Ref(r.clone()))?;
        let result = change(Arc::make_mut(&mut cap));
        self.dir.set_instance(r, cap)?;
        Ok(result)
    }

    /// The hash of a link: a working entry is settled bottom-up and every
    /// cap of it (Instances included) published as a blob.
    pub fn settle(&mut self, link: &CapHashOrRef) -> Result<CapHash, KernelError> {
        Ok(self.dir.settle_and_publish(link)?)
    }
}

/// One running instance of the call stack.
pub(crate) struct Frame<'p> {
    /// 0 for the top-level invocation, +1 per `call`.
    pub depth: u32,
    /// The instance's type chain (what `spawn` derives children's from).
    pub chain: &'p CapHash,
    /// Its root CNode as it was at the start.
    root_hash: &'p CapHash,
    /// That CNode's blob, if already at hand.
    root_blob: Option<&'p Arc<Cap>>,
    /// Its root CNode as the frame sees it (loaded on first use).
    root: Option<CNode>,
    /// Whether `root` differs from `root_hash`.
    root_changed: bool,
    /// The frame's own output (`set_output`; kept only on halt).
    pub output: Vec<u8>,
    /// The last `call`'s output (for `output_read`).
    pub child_output: Vec<u8>,
}

impl<'p> Frame<'p> {
    /// Borrows the hashes and the root blob from the caller's prepared
    /// entry (which outlives the frame) instead of copying them.
    pub fn new(
        depth: u32,
        chain: &'p CapHash,
        root_hash: &'p CapHash,
        root_blob: Option<&'p Arc<Cap>>,
    ) -> Self {
        Frame {
            depth,
            chain,
            root_hash,
            root_blob,
            root: None,
            root_changed: false,
            output: Vec::new(),
            child_output: Vec::new(),
        }
    }

    fn loaded<S: BuildHasher>(&mut self, txn: &mut Txn<'_, S>) -> Result<&mut CNode, KernelError> {
        if self.root.is_none() {
            let cap = match self.root_blob.take() {
                Some(cap) => cap.clone(),
                None => txn.blob(self.root_hash)?,
            };
            let Cap::CNode(cnode) = &*cap else {
                return Err(KernelError::WrongKind {
                    hash: *self.root_hash,
                    expected: crate::cap::CapKind::CNode,
                    found: cap.kind(),
                });
            };
            self.root = Some(cnode.clone());
        }
        // Just filled if it was empty.
        self.root
            .as_mut()
            .ok_or(KernelError::MissingCap(*self.root_hash))
    }

    /// The root CNode, to read.
    pub fn root<S: BuildHasher>(&mut self, txn: &mut Txn<'_, S>) -> Result<&CNode, KernelError> {
        Ok(&*self.loaded(txn)?)
    }

    /// The root CNode, to change.
    pub fn root_mut<S: BuildHasher>(
        &mut self,
        txn: &mut Txn<'_, S>,
    ) -> Result<&mut CNode, KernelError> {
        self.root_changed = true;
        self.loaded(txn)
    }

    /// The link in `slot` (a checked slot number), if any.
    pub fn get<S: BuildHasher>(
        &mut self,
        txn: &mut Txn<'_, S>,
        slot: u32,
    ) -> Result<Option<CapHashOrRef>, KernelError> {
        Ok(self.root(txn)?.get(slot).cloned())
    }

    /// The link in `slot`, or `ERR_EMPTY`.
    pub fn occupied<S: BuildHasher>(
        &mut self,
        txn: &mut Txn<'_, S>,
        slot: u32,
    ) -> Result<CapHashOrRef, OpError> {
        match self.get(txn, slot)? {
            Some(link) => Ok(link),
            None => code(ops::ERR_EMPTY),
        }
    }

    /// `ERR_OCCUPIED` unless `slot` is empty.
    pub fn require_empty<S: BuildHasher>(
        &mut self,
        txn: &mut Txn<'_, S>,
        slot: u32,
    ) -> Result<(), OpError> {
        if self.root(txn)?.get(slot).is_some() {
            return code(ops::ERR_OCCUPIED);
        }
        Ok(())
    }

    /// Puts `link` in `slot`, returning what was there.
    pub fn set<S: BuildHasher>(
        &mut self,
        txn: &mut Txn<'_, S>,
        slot: u32,
        link: CapHashOrRef,
    ) -> Result<Option<CapHashOrRef>, KernelError> {
        Ok(self.root_mut(txn)?.set(slot, link)?)
    }

    /// Empties `slot`, returning what was there.
    pub fn remove<S: BuildHasher>(
        &mut self,
        txn: &mut Txn<'_, S>,
        slot: u32,
    ) -> Result<Option<CapHashOrRef>, KernelError> {
        if self.root(txn)?.get(slot).is_none() {
            return Ok(None);
        }
        Ok(self.root_mut(txn)?.remove(slot))
    }

    /// The changed root CNode, if the frame changed it (for commit).
    pub fn take_changed_root(&mut self) -> Option<CNode> {
        if self.root_changed {
            self.root.take()
        } else {
            None
        }
    }
}

/// What a commit made.
pub(crate) struct Committed {
    /// The new instance's hash.
    pub hash: CapHash,
    /// Its memory's hash.
    pub memory_hash: CapHash,
    /// Its caps, when the commit had them at hand (see [`commit_direct`]).
    pub carry: Option<Carry>,
}

/// The caps of a committed instance, for its prepared entry.
pub(crate) struct Carry {
    instance: InstanceCap,
    instance_cap: Arc<Cap>,
    /// The new memory (`None`: unchanged).
    memory: Option<Arc<Cap>>,
    /// The new root CNode (`None`: unchanged).
    root: Option<Arc<Cap>>,
}

/// Commits the frame's changes: [`commit_direct`] when nothing of them is
/// a working entry (the new root, if any, links only blobs), else the
/// working-graph path ([`commit_settled`]). Both publish the same blobs
/// and give the same hashes.
#[inline(never)]
pub(crate) fn commit<S: BuildHasher>(
    txn: &mut Txn<'_, S>,
    instance_hash: &CapHash,
    instance: &InstanceCap,
    new_memory: Option<Data>,
    new_root: Option<CNode>,
) -> Result<Committed, KernelError> {
    if new_root.as_ref().is_none_or(|root| !root.has_refs()) {
        return commit_direct(txn, instance, new_memory, new_root);
    }
    let (hash, memory_hash) = commit_settled(txn, instance_hash, instance, new_memory, new_root)?;
    Ok(Committed {
        hash,
        memory_hash,
        carry: None,
    })
}

/// The commit of a frame whose changes hold no `Ref`: its new memory and
/// root are hashed and published as they are, then the new instance (old
/// image and chain, new links), exactly what settling a working graph of
/// them would publish, without making (and sweeping) working entries. The
/// caps are kept for the new instance's prepared entry.
fn commit_direct<S: BuildHasher>(
    txn: &mut Txn<'_, S>,
    instance: &InstanceCap,
    new_memory: Option<Data>,
    new_root: Option<CNode>,
) -> Result<Committed, KernelError> {
    let mut updated = instance.clone();
    let mut memory_hash = instance_memory_hash(instance)?;
    let memory = match new_memory {
        Some(data) => {
            memory_hash = data.hash();
            let cap = Arc::new(Cap::Data(data));
            txn.dir.publish_arc(memory_hash, cap.clone())?;
            updated.memory = CapHashOrRef::Hash(memory_hash);
            Some(cap)
        }
        None => None,
    };
    // The blobs the new state keeps count as used, as the next call's
    // lookups would have counted them without the carried prepared entry.
    let root_hash = super::invoke::instance_root_hash(instance)?;
    match new_root {
        Some(_) => txn.dir.touch_blobs(&[instance.image]),
        None => txn.dir.touch_blobs(&[instance.image, root_hash]),
    }
    let root = match new_root {
        Some(cnode) => {
            let hash = cnode.hash()?;
            let cap = Arc::new(Cap::CNode(cnode));
            txn.dir.publish_arc(hash, cap.clone())?;
            updated.root_cnode = CapHashOrRef::Hash(hash);
            Some(cap)
        }
        None => None,
    };
    let instance_cap = Arc::new(Cap::Instance(updated.clone()));
    let hash = instance_cap.hash()?;
    txn.dir.publish_arc(hash, instance_cap.clone())?;
    Ok(Committed {
        hash,
        memory_hash,
        carry: Some(Carry {
            instance: updated,
            instance_cap,
            memory,
            root,
        }),
    })
}

/// Caches the prepared entry of the instance `hash` a commit of `old`'s
/// instance made: the same image, program and entry indexes, the new caps,
/// the layout recomputed only if the memory's length changed. A layout
/// that no longer fits caches nothing (the next call's `prepare` reports
/// it).
#[inline(never)]
pub(crate) fn carry_prepared(programs: &ProgramCache, old: &Prepared, hash: CapHash, carry: Carry) {
    let Carry {
        instance,
        instance_cap,
        memory,
        root,
    } = carry;
    let memory = memory.unwrap_or_else(|| old.memory.clone());
    let (Cap::Data(data), Cap::Image(image)) = (&*memory, &*old.image) else {
        return;
    };
    let layout = if data.len() == as_data(&old.memory).len() {
        old.layout
    } else {
        match layout_for(image, data.len(), &hash) {
            Ok(layout) => layout,
            Err(_) => return,
        }
    };
    let Ok(memory_hash) = instance_memory_hash(&instance) else {
        return;
    };
    programs.put_prepared(Arc::new(Prepared {
        instance_hash: hash,
        instance,
        instance_cap,
        image: old.image.clone(),
        memory,
        memory_hash,
        root: root.or_else(|| old.root.clone()),
        cached: old.cached.clone(),
        layout,
        entry_indexes: old.entry_indexes.clone(),
    }));
}

/// Promotes the instance to a working entry, links its new memory and/or
/// root CNode, settles the graph bottom-up (publishing every cap of it)
/// and returns (instance hash, memory hash).
pub(crate) fn commit_settled<S: BuildHasher>(
    txn: &mut Txn<'_, S>,
    instance_hash: &CapHash,
    instance: &InstanceCap,
    new_memory: Option<Data>,
    new_root: Option<CNode>,
) -> Result<(CapHash, CapHash), KernelError> {
    let working = txn.dir.promote_blob_to_instance(instance_hash)?;
    txn.made_working = true;
    let mut updated = instance.clone();
    if let Some(memory) = new_memory {
        updated.memory = CapHashOrRef::Ref(txn.working(Arc::new(Cap::Data(memory))));
    }
    if let Some(root) = new_root {
        updated.root_cnode = CapHashOrRef::Ref(txn.working(Arc::new(Cap::CNode(root))));
    }
    txn.dir
        .set_instance(&working, Arc::new(Cap::Instance(updated)))?;
    let hash = txn.settle(&CapHashOrRef::Ref(working.clone()))?;
    let settled = txn
        .dir
        .get_instance(&working)
        .ok_or(KernelError::Directory(CacheError::InstanceMissing(
            working.id(),
        )))?;
    let Cap::Instance(settled) = &*settled else {
        return Err(KernelError::Directory(CacheError::InstanceMissing(
            working.id(),
        )));
    };
    Ok((hash, instance_memory_hash(settled)?))
}
