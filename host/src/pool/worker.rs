//! A pool worker: one thread owning one [`Kernel`], running the jobs its
//! channel brings, in order.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use capbox_shared::hash::CapHash;

use crate::backend::{BackendKind, SandboxConfig};
use crate::error::KernelError;
use crate::kernel::{BackendChoice, BlobFallback, Kernel, ReportMode};

/// What a job leaves its worker's kernel as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Health {
    /// Usable (a guest fault the kernel recovered from included).
    Fine,
    /// A rebuild failed: the worker replaces its kernel.
    Broken,
}

/// Work for a worker's kernel.
pub(super) type Job = Box<dyn FnOnce(&mut Kernel) -> Health + Send>;

/// Every worker's reader of its host copy (slot = worker), for the
/// workers' blob fallbacks.
pub(super) type Readers = Arc<RwLock<Vec<Option<BlobFallback>>>>;

/// The pool's own second source (e.g. a store), after the workers.
pub(super) type External = Arc<RwLock<Option<BlobFallback>>>;

pub(super) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // The guarded values are replaced whole; a panic cannot leave one
    // half-written, so poisoning is ignored.
    lock.read().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// What every worker's kernel is made with.
#[derive(Clone)]
pub(super) struct Recipe {
    pub(super) choice: BackendChoice,
    pub(super) config: SandboxConfig,
    pub(super) default_timeout: Duration,
    pub(super) batch_reports: Option<ReportMode>,
    pub(super) host_cache: Option<(usize, usize)>,
    pub(super) readers: Readers,
    pub(super) external: External,
}

impl Recipe {
    /// A kernel for worker `index`: its settings, its reader registered,
    /// and a blob fallback that looks in the other workers' host copies,
    /// then in the pool's external source.
    pub(super) fn kernel(&self, index: usize) -> Result<Kernel, KernelError> {
        let mut kernel = Kernel::with_config(self.choice, self.config.clone())?;
        kernel.set_default_timeout(self.default_timeout);
        if let Some(mode) = self.batch_reports {
            kernel.set_batch_reports(mode);
        }
        if let Some((bytes, blobs)) = self.host_cache {
            kernel.set_host_cache(bytes, blobs);
        }
        if let Some(slot) = write(&self.readers).get_mut(index) {
            *slot = Some(kernel.host_blob_reader());
        }
        let readers = self.readers.clone();
        let external = self.external.clone();
        let kept_by = self.external.clone();
        // Only the pool's external source keeps blobs: a blob another
        // worker's cache holds may leave that cache at any time.
        let keeper: BlobFallback = Arc::new(move |hash: &CapHash| {
            let external = read(&kept_by).clone();
            external.and_then(|f| f(hash))
        });
        let fallback: BlobFallback = Arc::new(move |hash: &CapHash| {
            // Clone the readers out: no lock is held while one runs (each
            // locks its own worker's copy briefly, never two at once, so
            // two workers serving each other cannot deadlock).
            let others: Vec<BlobFallback> = read(&readers)
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != index)
                .filter_map(|(_, r)| r.clone())
                .collect();
            if let Some(bytes) = others.iter().find_map(|reader| reader(hash)) {
                return Some(bytes);
            }
            let external = read(&external).clone();
            external.and_then(|f| f(hash))
        });
        kernel.set_blob_sources(Some(fallback), Some(keeper));
        Ok(kernel)
    }
}

/// A worker thread's body: make the kernel (its backend or error goes to
/// `started`), then run jobs until the channel closes.
pub(super) fn run(
    index: usize,
    recipe: Recipe,
    started: Sender<Result<BackendKind, KernelError>>,
    jobs: Receiver<Job>,
    load: Arc<AtomicUsize>,
) {
    let mut kernel = match recipe.kernel(index) {
        Ok(kernel) => {
            let _ = started.send(Ok(kernel.backend()));
            kernel
        }
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    drop(started);
    for job in jobs {
        // A panicking job (a bug) drops its reply channel, so its caller
        // gets `PoolError::WorkerFailed`; the kernel is replaced since the
        // panic may have left it mid-call.
        let health = catch_unwind(AssertUnwindSafe(|| job(&mut kernel))).unwrap_or(Health::Broken);
        if health == Health::Broken {
            match recipe.kernel(index) {
                Ok(fresh) => kernel = fresh,
                Err(e) => eprintln!("capbox pool: worker {index} cannot replace its kernel: {e}"),
            }
        }
        load.fetch_sub(1, Ordering::AcqRel);
    }
}
