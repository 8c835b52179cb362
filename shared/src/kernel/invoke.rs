//! One invocation (DESIGN §5): resolve, promote, run, commit or drop.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::hash::BuildHasher;

use super::error::KernelError;
use super::ops::{self, KernelOp};
use super::programs::{EntryIndexes, Prepared, ProgramCache};
use super::service::KernelHost;
use super::transaction::{Frame, OpError, Txn, carry_prepared, commit};
use crate::CacheDirectory;
use crate::cap::{Cap, CapHashOrRef, CapKind, Data, Image, InstanceCap, PAGE_SIZE};
use crate::hash::CapHash;
use crate::pvm::{Exit, Machine, Memory, MemoryError, StandardLayout};

/// Most memory (read-only data + read-write data and heap + stack) one
/// invocation may map. Both backends refuse larger layouts the same way,
/// instead of the guest running out of memory.
pub const MAX_MAPPED_BYTES: u64 = 32 << 20;

/// How much gas an invocation may use between two looks at the clock
/// (when it has a deadline): the machine stops at the next block boundary
/// ([`crate::pvm::Exit::Slice`]) and the kernel asks
/// [`KernelHost::now`]. Small because the sandbox on nested KVM runs only
/// ~65k gas/s (this is ~0.25 s there, ~50 µs on the local backend).
pub const SLICE_GAS: u64 = 1 << 14;

/// [`Call::timeout`] for an invocation without a deadline.
pub const NO_TIMEOUT: u64 = u64::MAX;

/// How an invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitReason {
    /// The program jumped to the halt address: its state was committed.
    Halt,
    /// `trap`, an invalid instruction or an unknown kernel op.
    Panic,
    /// The gas ran out.
    OutOfGas,
    /// The program touched an inaccessible page (its address).
    PageFault(u32),
    /// The invocation's deadline passed (at any depth): nothing was
    /// committed, the hash is unchanged.
    Timeout,
}

impl ExitReason {
    /// The wire form: `ExitKind` number and argument.
    pub fn to_wire(self) -> (u8, u64) {
        match self {
            ExitReason::Halt => (0, 0),
            ExitReason::Panic => (1, 0),
            ExitReason::OutOfGas => (2, 0),
            ExitReason::PageFault(addr) => (3, u64::from(addr)),
            ExitReason::Timeout => (4, 0),
        }
    }

    /// Reads the wire form back; `None` for anything else.
    pub fn from_wire(kind: u8, arg: u64) -> Option<Self> {
        Some(match kind {
            0 => ExitReason::Halt,
            1 => ExitReason::Panic,
            2 => ExitReason::OutOfGas,
            3 => ExitReason::PageFault(u32::try_from(arg).ok()?),
            4 => ExitReason::Timeout,
            _ => return None,
        })
    }
}

/// The result of an invocation that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// How it ended.
    pub exit: ExitReason,
    /// φ7 at the end.
    pub r7: u64,
    /// φ8 at the end.
    pub r8: u64,
    /// Bytes the program gave `set_output` (last call wins).
    pub output: Vec<u8>,
    /// Gas consumed (at most the limit).
    pub gas_used: u64,
    /// The instance hash afterwards: new on halt, else the old one.
    pub instance: CapHash,
}

/// Where `log` messages go.
pub trait LogSink {
    /// One message from the running program.
    fn log(&mut self, message: &[u8]);
}

/// Discards logs.
pub struct NoLog;

impl LogSink for NoLog {
    fn log(&mut self, _message: &[u8]) {}
}

/// What an invocation reads from the directory, all resolved up front so a
/// missing blob is reported before anything runs.
struct Resolved {
    instance: InstanceCap,
    /// The instance's blob (a prepared entry holds it, so it is not
    /// evicted while cached: commit promotes it).
    instance_cap: Arc<Cap>,
    image: Arc<Cap>,
    memory: Arc<Cap>,
}

fn resolve<S: BuildHasher>(
    dir: &CacheDirectory<S>,
    instance_hash: &CapHash,
) -> Result<Resolved, KernelError> {
    let get = |hash: &CapHash, expected: CapKind| -> Result<Arc<Cap>, KernelError> {
        let cap = dir.get_blob(hash).ok_or(KernelError::MissingCap(*hash))?;
        if cap.kind() != expected {
            return Err(KernelError::WrongKind {
                hash: *hash,
                expected,
                found: cap.kind(),
            });
        }
        Ok(cap)
    };
    let instance_cap = get(instance_hash, CapKind::Instance)?;
    let instance = match &*instance_cap {
        Cap::Instance(i) => i.clone(),
        _ => unreachable!("kind checked above"),
    };
    let image = get(&instance.image, CapKind::Image)?;
    // A published blob never holds a Ref (the codec cannot express one).
    let memory = get(&instance_memory_hash(&instance)?, CapKind::Data)?;
    Ok(Resolved {
        instance,
        instance_cap,
        image,
        memory,
    })
}

fn as_image(cap: &Cap) -> &Image {
    match cap {
        Cap::Image(i) => i,
        _ => unreachable!("kind checked in resolve"),
    }
}

pub(super) fn as_data(cap: &Cap) -> &Data {
    match cap {
        Cap::Data(d) => d,
        _ => unreachable!("kind checked in resolve"),
    }
}

/// The memory layout for an image whose read-write section is replaced by
/// the instance's memory (`mem_len` bytes). Heap pages the image declares
/// beyond its rw data stay mapped; memory that grew past them keeps its
/// length.
pub(super) fn layout_for(
    image: &Image,
    mem_len: u64,
    instance_hash: &CapHash,
) -> Result<StandardLayout, KernelError> {
    let bad = |reason| KernelError::BadLayout {
        instance: *instance_hash,
        reason,
    };
    let page = PAGE_SIZE as u64;
    let declared =
        (image.rw_data.len() as u64).next_multiple_of(page) + u64::from(image.heap_pages) * page;
    let mem_mapped = mem_len.next_multiple_of(page);
    let heap_pages = declared.saturating_sub(mem_mapped) / page;
    let heap_pages = u16::try_from(heap_pages).map_err(|_| bad("more than 65535 heap pages"))?;
    let ro_len =
        u32::try_from(image.ro_data.len()).map_err(|_| bad("read-only data over 4 GiB"))?;
    let rw_len = u32::try_from(mem_len).map_err(|_| bad("memory over 4 GiB"))?;
    let layout = StandardLayout::new(ro_len, rw_len, heap_pages, image.stack_size, 0)
        .map_err(|_| bad("sections exceed the 32-bit address space"))?;
    if layout.mapped_bytes() > MAX_MAPPED_BYTES {
        return Err(bad("maps more than MAX_MAPPED_BYTES of memory"));
    }
    Ok(layout)
}

/// One top-level invocation request (DESIGN §5).
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The instance to run.
    pub instance: CapHash,
    /// Endpoint index.
    pub endpoint: u32,
    /// φ7..φ10.
    pub args: [u64; 4],
    /// Gas limit.
    pub gas: u64,
    /// The input the program reads with `input_len` / `input_read` (at
    /// most [`ops::MAX_INPUT_LEN`] bytes; the ABI refuses longer).
    pub input: &'a [u8],
    /// The wall-clock budget, in ticks of the host's clock
    /// ([`KernelHost::now`]), counted from the start of the invocation;
    /// [`NO_TIMEOUT`] (or a host without a clock): none. Reaching it ends
    /// the invocation as [`ExitReason::Timeout`].
    pub timeout: u64,
}

/// A [`LogSink`] as a [`KernelHost`] that has no blobs to give.
struct LogOnly<'a>(&'a mut dyn LogSink);

impl LogSink for LogOnly<'_> {
    fn log(&mut self, message: &[u8]) {
        self.0.log(message);
    }
}

impl KernelHost for LogOnly<'_> {
    fn fetch_blob(&mut self, _hash: &CapHash) -> Option<Vec<u8>> {
        None
    }
}

/// Runs endpoint `endpoint` of the instance `instance_hash` with φ7..φ10 =
/// `args`, `gas` gas and no input: [`invoke_call`] without a host to fetch
/// blobs from.
#[allow(clippy::too_many_arguments)]
pub fn invoke<S: BuildHasher>(
    dir: &CacheDirectory<S>,
    programs: &ProgramCache,
    log: &mut dyn LogSink,
    instance_hash: &CapHash,
    endpoint: u32,
    args: [u64; 4],
    gas: u64,
) -> Result<Outcome, KernelError> {
    let call = Call {
        instance: *instance_hash,
        endpoint,
        args,
        gas,
        input: &[],
        timeout: NO_TIMEOUT,
    };
    invoke_call(dir, programs, &mut LogOnly(log), &call)
}

/// Runs one invocation (DESIGN §5). On halt, everything the program (and
/// the children it called, at any depth) changed is committed into the
/// new instance hash: new memory and root published as blobs, then the new
/// instance (or, when the root links working entries, the instance
/// promoted to a working entry and the graph settled bottom-up; see
/// `transaction::commit`). On any other exit nothing is committed and the
/// hash is unchanged; either way the working entries the invocation made
/// are swept. When `call.timeout` ticks of the host's clock pass first
/// (looked at every [`SLICE_GAS`] gas, at a block boundary or before a
/// `call`), the invocation ends as [`ExitReason::Timeout`], nothing
/// committed. An `Err` means the invocation did not run to an outcome
/// (e.g. a blob neither the directory nor `host` has).
#[inline(always)]
pub fn invoke_call<S: BuildHasher>(
    dir: &CacheDirectory<S>,
    programs: &ProgramCache,
    host: &mut dyn KernelHost,
    call: &Call<'_>,
) -> Result<Outcome, KernelError> {
    let input = if call.input.len() as u64 > ops::MAX_INPUT_LEN {
        return Err(KernelError::InputTooLong(call.input.len() as u64));
    } else {
        call.input
    };
    let gas_limit = i64::try_from(call.gas).unwrap_or(i64::MAX);
    // A run that ran short of page storage depended on what else the
    // allocator holds: free the caches (as an empty arena would be) and run
    // once more; still short, it is refused, never a different outcome.
    let mut freed = false;
    let result = loop {
        let mut txn = Txn::new(dir, programs, &mut *host, input);
        txn.start_deadline(call.timeout);
        let result = run_frame(
            &mut txn,
            None,
            &call.instance,
            call.endpoint,
            call.args,
            gas_limit,
            0,
        );
        if txn.made_working {
            dir.sweep_instances();
        }
        match result {
            Err(KernelError::OutOfMemory { .. }) if !freed => {
                freed = true;
                programs.drop_warm_memories();
            }
            other => break other?,
        }
    };
    // Gas only decreases, so 0 <= gas_left <= gas_limit.
    let gas_used = gas_limit
        .saturating_sub(result.gas_left.max(0))
        .unsigned_abs();
    Ok(Outcome {
        exit: result.exit,
        r7: result.r7,
        r8: result.r8,
        output: result.output,
        gas_used,
        instance: result.instance,
    })
}

/// How one frame (a top-level invocation or a `call`ed child) ended.
pub(crate) struct FrameResult {
    pub exit: ExitReason,
    pub r7: u64,
    pub r8: u64,
    /// `set_output`'s bytes (empty unless halted).
    pub output: Vec<u8>,
    pub gas_left: i64,
    /// The instance afterwards: committed on halt, else the old hash.
    pub instance: CapHash,
}

/// Most blobs [`run_frame`] fetches to resolve one instance (itself, its
/// image, its memory).
const RESOLVE_FETCHES: usize = 4;

/// Runs one frame at `depth` on `gas` gas; commits on halt (see
/// [`invoke_call`]). `known`: the instance's prepared entry, if the caller
/// already looked it up.
pub(crate) fn run_frame<S: BuildHasher>(
    txn: &mut Txn<'_, S>,
    known: Option<Arc<Prepared>>,
    instance_hash: &CapHash,
    endpoint: u32,
    args: [u64; 4],
    gas: i64,
    depth: u32,
) -> Result<FrameResult, KernelError> {
    // 1. Resolve the instance, its image and memory; decode (or reuse) code.
    let mut fetched = 0;
    let mut known = known;
    let prepared = loop {
        let attempt = match known
            .take()
            .or_else(|| txn.programs.prepared(instance_hash))
        {
            Some(p) => Ok(p),
            None => prepare(txn.dir, txn.programs, instance_hash, endpoint),
        };
        match attempt {
            Err(KernelError::MissingCap(missing)) if fetched < RESOLVE_FETCHES => {
                fetched += 1;
                txn.blob(&missing)?;
            }
            other => break other?,
        }
    };
    let Prepared {
        instance,
        image: image_cap,
        memory: memory_cap,
        memory_hash,
        root,
        cached,
        layout,
        entry_indexes,
        ..
    } = &*prepared;
    // Borrowed from the prepared entry (held to the end), not copied.
    let image = as_image(image_cap);
    let memory_data = as_data(memory_cap);
    let entry_pc = *image
        .endpoints
        .get(endpoint as usize)
        .ok_or(KernelError::BadEndpoint {
            image: instance.image,
            endpoint,
            count: image.endpoints.len(),
        })?;
    let root_hash = settled_link_ref(&instance.root_cnode)?;
    // The memory of every frame on the call stack counts against one budget.
    let mapped = layout.mapped_bytes();
    if depth > 0 && txn.mapped + mapped > MAX_MAPPED_BYTES {
        return Err(KernelError::CallStackMemory);
    }
    let memory = match cached.take_warm(memory_hash) {
        Some(warm) => warm,
        // A full page arena may be full of other images' warm memories:
        // drop them and try once more.
        None => match fresh_memory(layout, image, memory_data, instance_hash) {
            Err(KernelError::OutOfMemory { .. }) => {
                txn.programs.drop_warm_memories();
                fresh_memory(layout, image, memory_data, instance_hash)?
            }
            other => other?,
        },
    };

    // 2. Fresh registers. (Working entries are made lazily: when an op
    // changes a cap, or at commit if the program changed something.)
    let mut regs = layout.initial_registers();
    regs[7..11].copy_from_slice(&args);
    let mut machine = Machine::new(regs, entry_pc, gas, memory);
    let mut frame = Frame::new(depth, &instance.image_hash_chain, root_hash, root.as_ref());

    // 3. Run, serving kernel ops.
    txn.mapped += mapped;
    let mut entry_index = Some(entry_indexes.get(endpoint, &cached.program, entry_pc));
    let exit = loop {
        // Without a deadline the slice is never reached.
        let slice = txn.slice();
        let before = machine.gas;
        let stopped = match entry_index.take() {
            Some(index) => machine.run_at(&cached.program, index, slice),
            None => machine.run_sliced(&cached.program, slice),
        };
        txn.spend(before.saturating_sub(machine.gas));
        #[cfg(feature = "jit")]
        txn.programs
            .note_run(cached, before.saturating_sub(machine.gas).unsigned_abs());
        match stopped {
            Exit::Halt => break Ok(ExitReason::Halt),
            Exit::Panic => break Ok(ExitReason::Panic),
            Exit::OutOfGas => break Ok(ExitReason::OutOfGas),
            Exit::PageFault(addr) => break Ok(ExitReason::PageFault(addr)),
            Exit::Slice => {
                if txn.deadline_passed() {
                    break Ok(ExitReason::Timeout);
                }
            }
            Exit::HostCall(n) => {
                let Some(op) = KernelOp::from_number(n) else {
                    break Ok(ExitReason::Panic);
                };
                machine.gas = machine.gas.saturating_sub(op.gas_cost());
                if machine.gas < 0 {
                    break Ok(ExitReason::OutOfGas);
                }
                let before_op = machine.gas;
                let done = ops::dispatch(op, &mut machine, &mut frame, txn);
                // A child's gas was counted by its own frame.
                if op != KernelOp::Call {
                    txn.spend(op.gas_cost().saturating_add(before_op - machine.gas));
                }
                match done {
                    Ok(()) => {}
                    Err(OpError::OutOfGas) => break Ok(ExitReason::OutOfGas),
                    Err(OpError::Timeout) => break Ok(ExitReason::Timeout),
                    Err(OpError::Kernel(e)) => break Err(e),
                    // `dispatch` returns codes in φ7.
                    Err(OpError::Code(_)) => {}
                }
            }
        }
    };
    txn.mapped -= mapped;
    let (r7, r8) = (machine.regs[7], machine.regs[8]);
    let exit = if machine.memory.storage_exhausted() {
        Err(KernelError::OutOfMemory {
            instance: *instance_hash,
        })
    } else {
        exit
    };

    // 4. Commit on halt. One scan for written pages serves both the commit
    // and the memory reset.
    let mut dirty: Vec<u32> = Vec::new();
    if machine.memory.has_dirty_pages() {
        machine.memory.dirty_page_addresses(&mut dirty);
    }
    let halted = matches!(exit, Ok(ExitReason::Halt));
    let committed = if halted {
        let new_root = frame.take_changed_root();
        let new_memory = if dirty.is_empty() {
            None
        } else {
            memory_after(memory_data, &machine.memory, layout, &dirty)?
        };
        if new_memory.is_some() || new_root.is_some() {
            Some(commit(txn, instance_hash, instance, new_memory, new_root)?)
        } else {
            None
        }
    } else {
        None
    };
    let (new_hash, new_memory_hash) = match committed {
        Some(committed) => {
            let hashes = (committed.hash, committed.memory_hash);
            if let Some(carry) = committed.carry {
                carry_prepared(txn.programs, &prepared, committed.hash, carry);
            }
            hashes
        }
        None => (*instance_hash, *memory_hash),
    };
    // 5. Keep the memory warm for the next call on the resulting state.
    let mut memory = machine.memory;
    if reset_memory(&mut memory, layout, halted, memory_data, &dirty) {
        cached.put_warm(new_memory_hash, memory);
    }
    let exit = exit?;
    Ok(FrameResult {
        exit,
        r7,
        r8,
        output: if halted { frame.output } else { Vec::new() },
        gas_left: machine.gas,
        instance: new_hash,
    })
}

/// Resolves everything an invocation of `instance_hash` needs and caches
/// it. Errors come in the order they always did: a missing or wrong blob,
/// then a bad `endpoint`, then a bad program, then a bad layout; nothing
/// is cached unless all of it succeeded.
pub(super) fn prepare<S: BuildHasher>(
    dir: &CacheDirectory<S>,
    programs: &ProgramCache,
    instance_hash: &CapHash,
    endpoint: u32,
) -> Result<Arc<Prepared>, KernelError> {
    let Resolved {
        instance,
        instance_cap,
        image: image_cap,
        memory: memory_cap,
    } = resolve(dir, instance_hash)?;
    let image = as_image(&image_cap);
    if endpoint as usize >= image.endpoints.len() {
        return Err(KernelError::BadEndpoint {
            image: instance.image,
            endpoint,
            count: image.endpoints.len(),
        });
    }
    let cached = programs
        .get_or_decode(&instance.image, &image.code)
        .map_err(|reason| KernelError::BadProgram {
            image: instance.image,
            reason,
        })?;
    let layout = layout_for(image, as_data(&memory_cap).len(), instance_hash)?;
    let memory_hash = instance_memory_hash(&instance)?;
    let root = dir
        .get_blob(&instance_root_hash(&instance)?)
        .filter(|cap| matches!(**cap, Cap::CNode(_)));
    let entry_indexes = EntryIndexes::new(image.endpoints.len());
    let prepared = Arc::new(Prepared {
        instance_hash: *instance_hash,
        instance,
        instance_cap,
        image: image_cap,
        memory: memory_cap,
        memory_hash,
        root,
        cached,
        layout,
        entry_indexes,
    });
    programs.put_prepared(prepared.clone());
    Ok(prepared)
}

pub(super) fn instance_memory_hash(instance: &InstanceCap) -> Result<CapHash, KernelError> {
    settled_link(&instance.memory)
}

pub(super) fn instance_root_hash(instance: &InstanceCap) -> Result<CapHash, KernelError> {
    settled_link(&instance.root_cnode)
}

/// A published blob never holds a `Ref` (the codec cannot express one).
fn settled_link(link: &CapHashOrRef) -> Result<CapHash, KernelError> {
    settled_link_ref(link).copied()
}

/// [`settled_link`], borrowed.
fn settled_link_ref(link: &CapHashOrRef) -> Result<&CapHash, KernelError> {
    match link {
        CapHashOrRef::Hash(h) => Ok(h),
        CapHashOrRef::Ref(_) => Err(KernelError::Cap(crate::cap::CapError::UnsettledRef)),
    }
}

/// A new PVM memory: image ro data, the instance memory as rw data (plus
/// the image's remaining heap pages), the stack.
fn fresh_memory(
    layout: &StandardLayout,
    image: &Image,
    memory_data: &Data,
    instance_hash: &CapHash,
) -> Result<Memory, KernelError> {
    // A memory of at most a page is read in place (no copy into a new
    // vector, which the guest allocates and frees).
    let owned;
    let rw_bytes: &[u8] = match usize::try_from(memory_data.len()) {
        Ok(len) if len <= PAGE_SIZE => match memory_data.page(0) {
            Some(page) => &page[..len],
            None => &ZERO_PAGE[..len],
        },
        _ => {
            owned = memory_data.to_vec();
            &owned
        }
    };
    let mut memory =
        Memory::standard(layout, &image.ro_data, rw_bytes, &[]).map_err(|e| match e {
            MemoryError::OutOfMemory { .. } => KernelError::OutOfMemory {
                instance: *instance_hash,
            },
            _ => KernelError::BadLayout {
                instance: *instance_hash,
                reason: "sections do not map",
            },
        })?;
    memory.set_sbrk_budget(MAX_MAPPED_BYTES);
    Ok(memory)
}

/// What a zeroed page is reset from (no allocation, no memset per call).
static ZERO_PAGE: [u8; PAGE_SIZE] = [0; PAGE_SIZE];

/// Brings `memory` back to "fresh for the resulting state" by undoing only
/// what the run dirtied: stack pages are zeroed; read-write pages are kept
/// when the run committed (they are the new state) and restored from
/// `old_memory` otherwise. `dirty` lists the written pages. Returns false
/// when the memory cannot be reused (the program moved the heap break).
/// The checks are inlined; the page loop runs only for a dirty page.
#[inline]
fn reset_memory(
    memory: &mut Memory,
    layout: &StandardLayout,
    committed: bool,
    old_memory: &Data,
    dirty: &[u32],
) -> bool {
    let initial_top = layout.rw_start() + layout.rw_mapped();
    if memory.heap_top() != Some(initial_top) || memory.storage_exhausted() {
        return false;
    }
    dirty.is_empty() || reset_dirty_pages(memory, layout, committed, old_memory, dirty)
}

/// [`reset_memory`]'s page loop, for a run that dirtied `dirty`.
#[inline(never)]
fn reset_dirty_pages(
    memory: &mut Memory,
    layout: &StandardLayout,
    committed: bool,
    old_memory: &Data,
    dirty: &[u32],
) -> bool {
    let page_size = PAGE_SIZE as u32;
    // Old bytes go through a buffer on the heap, made only when a page is
    // restored (zeroing a 4 KiB stack buffer on every call costs more than
    // the whole empty invocation); zeroed pages come from `ZERO_PAGE`.
    let mut buffer: Option<Vec<u8>> = None;
    for &addr in dirty {
        let in_rw = addr >= layout.rw_start() && addr < layout.stack_start();
        let mut bytes: &[u8] = &ZERO_PAGE;
        if in_rw {
            if committed {
                continue;
            }
            let offset = u64::from(addr - layout.rw_start());
            let len = old_memory.len();
            if offset < len {
                let n = (len - offset).min(u64::from(page_size)) as usize;
                let page = buffer.get_or_insert_with(|| alloc::vec![0u8; PAGE_SIZE]);
                page[n..].fill(0);
                if old_memory.read(offset, &mut page[..n]).is_err() {
                    return false;
                }
                bytes = page;
            }
        }
        if memory.initialize(addr, bytes).is_err() {
            return false;
        }
    }
    memory.clear_dirty();
    true
}

/// The instance memory after a halted run: the old Data with the
/// read-write pages the program dirtied (`dirty`, from the run's one
/// dirty-page scan; not the stack), grown to cover them; `None` if it
/// dirtied none. The pages' bytes are sliced out of the memory's regions
/// (a few regions), not found by a second page-by-page scan.
fn memory_after(
    old_memory: &Data,
    memory: &Memory,
    layout: &StandardLayout,
    dirty: &[u32],
) -> Result<Option<Data>, KernelError> {
    let rw_start = layout.rw_start();
    let rw_end = layout.stack_start();
    let mut new_memory: Option<Data> = None;
    for &addr in dirty {
        if addr < rw_start || addr >= rw_end {
            continue; // stack pages are scratch, not state
        }
        let bytes = memory.regions().find_map(|(base, _, data)| {
            let start = addr.checked_sub(base)? as usize;
            data.get(start..start.checked_add(PAGE_SIZE)?)
        });
        let Some(Ok(page)) = bytes.map(<&[u8; PAGE_SIZE]>::try_from) else {
            continue;
        };
        let index = (addr - rw_start) / PAGE_SIZE as u32;
        let data = new_memory.get_or_insert_with(|| old_memory.clone());
        let needed = (u64::from(index) + 1) * PAGE_SIZE as u64;
        if data.len() < needed {
            data.set_len(needed)?;
        }
        data.write_page(index, page)?;
    }
    Ok(new_memory)
}
