//! [`Pool`]: N kernels on N threads behind one API (docs/kernel.md
//! "Pool").
//!
//! Each worker thread owns one [`Kernel`] and runs the jobs its channel
//! brings in order. An invocation goes to the worker that holds its
//! instance (the one that created it or produced it as a result, so its
//! blobs are already in that kernel); an instance the pool has not seen
//! goes to the least-loaded worker. A worker's kernel that misses a blob
//! asks, through its blob fallback, the other workers' host copies and
//! then the pool's own fallback ([`Pool::set_blob_fallback`]). A guest
//! fault is that worker's alone: its kernel rebuilds the sandbox, and a
//! kernel whose rebuild failed is replaced; the other workers go on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use capbox_shared::abi::{ErrorKind, GuestFunction, StatsMsg};
use capbox_shared::cap::{Cap, CapHashOrRef, Image};
use capbox_shared::hash::CapHash;
use capbox_shared::kernel::Outcome;

use crate::backend::{BackendKind, SandboxConfig};
use crate::error::KernelError;
use crate::kernel::{BackendChoice, BlobFallback, DEFAULT_TIMEOUT, Invocation, Kernel, ReportMode};

mod worker;

use worker::{Health, Job, Readers, Recipe};

/// The most workers a pool runs.
pub const MAX_JOBS: usize = 256;

/// Instance → worker entries kept per generation (two generations: a
/// state not used for two generations is forgotten, and invoking it later
/// goes to the least-loaded worker, which fetches what it can).
const AFFINITY_GENERATION: usize = 1 << 18;

/// How to build a [`Pool`].
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Workers (one kernel and thread each); 0: the number of cores
    /// (`std::thread::available_parallelism`).
    pub jobs: usize,
    /// Which backend every worker's kernel uses (`Auto` is decided once,
    /// by the first worker, for all).
    pub backend: BackendChoice,
    /// Each worker's sandbox settings (its blob budget applies to the
    /// local backend too).
    pub sandbox: SandboxConfig,
    /// The deadline of invocations that name none.
    pub default_timeout: Duration,
    /// What batches report while they run (`None`: the kernel's default).
    pub batch_reports: Option<ReportMode>,
    /// Each kernel's host blob cache, bytes and blobs
    /// ([`Kernel::set_host_cache`]; `None`: the kernel's default).
    pub host_cache: Option<(usize, usize)>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            jobs: 0,
            backend: BackendChoice::Auto,
            sandbox: SandboxConfig::default(),
            default_timeout: DEFAULT_TIMEOUT,
            batch_reports: None,
            host_cache: None,
        }
    }
}

impl PoolConfig {
    /// The number of workers `jobs` asks for (0: the number of cores).
    pub fn workers(&self) -> usize {
        match self.jobs {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Errors from a [`Pool`].
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// More workers than [`MAX_JOBS`] were asked for.
    #[error("a pool runs at most {max} workers, not {jobs}")]
    TooManyJobs {
        /// Asked for.
        jobs: usize,
        /// [`MAX_JOBS`].
        max: usize,
    },
    /// A worker's kernel could not be made.
    #[error("pool worker {worker} cannot start its kernel: {source}")]
    Start {
        /// The worker.
        worker: usize,
        /// Why.
        #[source]
        source: KernelError,
    },
    /// A worker thread could not be spawned.
    #[error("cannot spawn pool worker {worker}: {source}")]
    Spawn {
        /// The worker.
        worker: usize,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Item `index` of a request (an invocation, or a chain of
    /// [`Pool::invoke_chains`]) failed in worker `worker`'s kernel, e.g. a
    /// guest fault (`KernelError::GuestFault`: that sandbox was rebuilt).
    #[error("item {index} failed on pool worker {worker}: {source}")]
    Kernel {
        /// The item's position in the request.
        index: usize,
        /// The worker that ran it.
        worker: usize,
        /// The kernel's error.
        #[source]
        source: KernelError,
    },
    /// Item `index` names no instance (only later calls of a chain may
    /// leave it out).
    #[error("item {index} names no instance; only later calls of a chain may leave it out")]
    NoInstance {
        /// The item's position in the request.
        index: usize,
    },
    /// No such worker.
    #[error("no pool worker {worker}; the pool has {jobs}")]
    NoWorker {
        /// Asked for.
        worker: usize,
        /// Workers in the pool.
        jobs: usize,
    },
    /// A worker thread stopped or its job panicked (a bug); the job's
    /// result is lost. A panicked job's kernel is replaced.
    #[error("pool worker {worker} failed while running a job (thread stopped or panicked)")]
    WorkerFailed {
        /// The worker.
        worker: usize,
    },
}

/// A chain's results: per invocation, as [`Kernel::invoke_batch`] gives
/// them; the outer error is for the chain as a whole.
pub type ChainResult = Result<Vec<Result<Outcome, KernelError>>, PoolError>;

struct Worker {
    jobs: Option<mpsc::Sender<Job>>,
    load: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

/// Which worker holds which instance: two generations of a bounded map.
#[derive(Default)]
struct Affinity {
    current: HashMap<CapHash, usize>,
    previous: HashMap<CapHash, usize>,
}

impl Affinity {
    fn get(&self, instance: &CapHash) -> Option<usize> {
        self.current
            .get(instance)
            .or_else(|| self.previous.get(instance))
            .copied()
    }

    fn insert(&mut self, instance: CapHash, worker: usize) {
        if self.current.len() >= AFFINITY_GENERATION {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(instance, worker);
    }
}

/// N kernels on N threads; see the module documentation.
pub struct Pool {
    workers: Vec<Worker>,
    affinity: Mutex<Affinity>,
    /// Where the least-loaded search starts (rotates, so ties spread).
    next: AtomicUsize,
    external: worker::External,
    readers: Readers,
    backend: BackendKind,
}

impl Pool {
    /// Starts `config.workers()` workers, each making its kernel (in
    /// parallel: making a sandbox is slow); the first error stops the
    /// pool.
    pub fn new(config: PoolConfig) -> Result<Self, PoolError> {
        let n = config.workers();
        if n > MAX_JOBS {
            return Err(PoolError::TooManyJobs {
                jobs: n,
                max: MAX_JOBS,
            });
        }
        let readers: Readers = Arc::new(RwLock::new(vec![None; n]));
        let external: worker::External = Arc::new(RwLock::new(None));
        let mut recipe = Recipe {
            choice: config.backend,
            config: config.sandbox,
            default_timeout: config.default_timeout,
            batch_reports: config.batch_reports,
            host_cache: config.host_cache,
            readers: readers.clone(),
            external: external.clone(),
        };
        let mut pool = Pool {
            workers: Vec::with_capacity(n),
            affinity: Mutex::new(Affinity::default()),
            next: AtomicUsize::new(0),
            external,
            readers,
            backend: BackendKind::Local,
        };
        // The first worker decides `Auto`; the others follow it.
        let first = pool.spawn(0, &recipe)?;
        pool.backend = wait_started(0, first)?;
        recipe.choice = match pool.backend {
            BackendKind::Sandbox => BackendChoice::Sandbox,
            BackendKind::Local => BackendChoice::Local,
        };
        let started: Vec<_> = (1..n)
            .map(|i| pool.spawn(i, &recipe).map(|rx| (i, rx)))
            .collect::<Result<_, _>>()?;
        for (i, rx) in started {
            wait_started(i, rx)?;
        }
        Ok(pool)
    }

    fn spawn(
        &mut self,
        index: usize,
        recipe: &Recipe,
    ) -> Result<Receiver<Result<BackendKind, KernelError>>, PoolError> {
        let (started_tx, started_rx) = mpsc::channel();
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let load = Arc::new(AtomicUsize::new(0));
        let thread = {
            let recipe = recipe.clone();
            let load = load.clone();
            std::thread::Builder::new()
                .name(format!("capbox-pool-{index}"))
                .spawn(move || worker::run(index, recipe, started_tx, jobs_rx, load))
                .map_err(|source| PoolError::Spawn {
                    worker: index,
                    source,
                })?
        };
        self.workers.push(Worker {
            jobs: Some(jobs_tx),
            load,
            thread: Some(thread),
        });
        Ok(started_rx)
    }

    /// How many workers the pool runs.
    pub fn jobs(&self) -> usize {
        self.workers.len()
    }

    /// Which backend the workers' kernels use.
    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    /// The pool's second source for blobs no worker holds (e.g. a store);
    /// `None`: none.
    pub fn set_blob_fallback(&self, fallback: Option<BlobFallback>) {
        *worker::write(&self.external) = fallback;
    }

    /// The worker that holds `instance`, if the pool knows one.
    pub fn worker_of(&self, instance: &CapHash) -> Option<usize> {
        self.affinity().get(instance)
    }

    fn affinity(&self) -> MutexGuard<'_, Affinity> {
        // A map of hints: a panic cannot make it wrong in a harmful way.
        self.affinity.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Workers for `instances` in order: the one holding each, else the
    /// least loaded counting what this request already gave each (the
    /// same unknown instance twice goes to one worker).
    fn assign(&self, instances: &[Option<CapHash>]) -> Vec<usize> {
        let n = self.workers.len();
        let mut loads: Vec<usize> = self
            .workers
            .iter()
            .map(|w| w.load.load(Ordering::Acquire))
            .collect();
        let mut placed: HashMap<CapHash, usize> = HashMap::new();
        let affinity = self.affinity();
        instances
            .iter()
            .map(|instance| {
                let known = instance.and_then(|h| affinity.get(&h).or(placed.get(&h).copied()));
                let w = known.unwrap_or_else(|| {
                    let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
                    (0..n)
                        .map(|k| (start + k) % n)
                        .min_by_key(|&i| loads[i])
                        .unwrap_or(0)
                });
                if let Some(h) = instance {
                    placed.insert(*h, w);
                }
                loads[w] += 1;
                w
            })
            .collect()
    }

    /// Sends `job` to `worker`; its result arrives on the receiver.
    fn submit<R: Send + 'static>(
        &self,
        worker: usize,
        job: impl FnOnce(&mut Kernel) -> (R, Health) + Send + 'static,
    ) -> Result<Receiver<R>, PoolError> {
        let w = self.workers.get(worker).ok_or(PoolError::NoWorker {
            worker,
            jobs: self.workers.len(),
        })?;
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |kernel: &mut Kernel| {
            let (result, health) = job(kernel);
            let _ = tx.send(result);
            health
        });
        w.load.fetch_add(1, Ordering::AcqRel);
        let sent = w.jobs.as_ref().map(|jobs| jobs.send(job));
        if !matches!(sent, Some(Ok(()))) {
            w.load.fetch_sub(1, Ordering::AcqRel);
            return Err(PoolError::WorkerFailed { worker });
        }
        Ok(rx)
    }

    /// Runs `job` on `worker` and waits for its result.
    fn run_on<R: Send + 'static>(
        &self,
        worker: usize,
        job: impl FnOnce(&mut Kernel) -> (R, Health) + Send + 'static,
    ) -> Result<R, PoolError> {
        self.submit(worker, job)?
            .recv()
            .map_err(|_| PoolError::WorkerFailed { worker })
    }

    /// Runs a kernel call on `worker` (item 0 of the request for errors).
    fn kernel_on<R: Send + 'static>(
        &self,
        worker: usize,
        call: impl FnOnce(&mut Kernel) -> Result<R, KernelError> + Send + 'static,
    ) -> Result<R, PoolError> {
        self.run_on(worker, move |kernel| {
            let result = call(kernel);
            let health = health_of(result.as_ref().err());
            (result, health)
        })?
        .map_err(|source| PoolError::Kernel {
            index: 0,
            worker,
            source,
        })
    }

    /// Publishes `image` and a fresh instance of it on the least-loaded
    /// worker; the instance's hash (invocations on it go to that worker).
    pub fn create_instance(&self, image: &Image) -> Result<CapHash, PoolError> {
        let worker = self.assign(&[None])[0];
        let image = image.clone();
        let hash = self.kernel_on(worker, move |k| k.create_instance(&image))?;
        self.affinity().insert(hash, worker);
        Ok(hash)
    }

    /// [`Kernel::create_instance_with_caps`] on the least-loaded worker.
    pub fn create_instance_with_caps(
        &self,
        image: &Image,
        caps: &[(u32, Cap)],
    ) -> Result<CapHash, PoolError> {
        let worker = self.assign(&[None])[0];
        let (image, caps) = (image.clone(), caps.to_vec());
        let hash = self.kernel_on(worker, move |k| k.create_instance_with_caps(&image, &caps))?;
        self.affinity().insert(hash, worker);
        Ok(hash)
    }

    /// Runs one invocation on the worker holding its instance.
    pub fn invoke_one(&self, call: &Invocation) -> Result<Outcome, PoolError> {
        let instance = call.instance.ok_or(PoolError::NoInstance { index: 0 })?;
        let worker = self.assign(&[Some(instance)])[0];
        self.invoke_one_on(worker, call)
    }

    /// Runs one invocation (no input) on the worker holding `instance`.
    pub fn invoke(
        &self,
        instance: &CapHash,
        endpoint: u32,
        args: [u64; 4],
        gas: u64,
    ) -> Result<Outcome, PoolError> {
        self.invoke_one(&Invocation {
            instance: Some(*instance),
            endpoint,
            args,
            gas,
            ..Invocation::default()
        })
    }

    /// Runs one invocation on `worker`, wherever its instance is (its
    /// blobs are fetched from the other workers' host copies): for tools
    /// and tests of re-supply.
    pub fn invoke_one_on(&self, worker: usize, call: &Invocation) -> Result<Outcome, PoolError> {
        let call = call.clone();
        let outcome = self.kernel_on(worker, move |k| k.invoke_one(&call))?;
        self.affinity().insert(outcome.instance, worker);
        Ok(outcome)
    }

    /// [`Kernel::invoke_batch`] (a chain in one kernel call) on the worker
    /// holding its first instance.
    pub fn invoke_batch(&self, calls: &[Invocation]) -> ChainResult {
        self.invoke_chains(vec![calls.to_vec()])
            .pop()
            .unwrap_or(Err(PoolError::NoInstance { index: 0 }))
    }

    /// Runs independent chains in parallel, each on the worker holding its
    /// first instance (each chain is one [`Kernel::invoke_batch`]); the
    /// results in input order. A chain that fails (e.g. its guest faulted)
    /// fails alone.
    pub fn invoke_chains(&self, chains: Vec<Vec<Invocation>>) -> Vec<ChainResult> {
        self.chains_placed(chains)
            .into_iter()
            .map(|(_, result)| result)
            .collect()
    }

    /// [`Self::invoke_chains`], with the worker that ran each chain.
    fn chains_placed(&self, chains: Vec<Vec<Invocation>>) -> Vec<(usize, ChainResult)> {
        let firsts: Vec<Option<CapHash>> = chains
            .iter()
            .map(|c| c.first().and_then(|call| call.instance))
            .collect();
        let workers = self.assign(&firsts);
        let mut per_worker: Vec<Vec<(usize, Vec<Invocation>)>> = vec![Vec::new(); self.jobs()];
        let mut out: Vec<Option<(usize, ChainResult)>> = (0..chains.len()).map(|_| None).collect();
        for (index, chain) in chains.into_iter().enumerate() {
            if chain.is_empty() {
                // As `Kernel::invoke_batch`: nothing to run.
                out[index] = Some((0, Ok(Vec::new())));
            } else if firsts[index].is_none() {
                out[index] = Some((0, Err(PoolError::NoInstance { index })));
            } else {
                per_worker[workers[index]].push((index, chain));
            }
        }
        let pending: Vec<_> = per_worker
            .into_iter()
            .enumerate()
            .filter(|(_, chains)| !chains.is_empty())
            .map(|(worker, chains)| {
                let indices: Vec<usize> = chains.iter().map(|(i, _)| *i).collect();
                let rx = self.submit(worker, move |kernel| run_chains(kernel, chains));
                (worker, indices, rx)
            })
            .collect();
        for (worker, indices, rx) in pending {
            let results =
                rx.and_then(|rx| rx.recv().map_err(|_| PoolError::WorkerFailed { worker }));
            match results {
                Ok(results) => {
                    let mut affinity = self.affinity();
                    for (index, result) in indices.into_iter().zip(results) {
                        if let Ok(outcomes) = &result {
                            for o in outcomes.iter().flatten() {
                                affinity.insert(o.instance, worker);
                            }
                        }
                        let result = result.map_err(|source| PoolError::Kernel {
                            index,
                            worker,
                            source,
                        });
                        out[index] = Some((worker, result));
                    }
                }
                Err(_) => {
                    for index in indices {
                        out[index] = Some((worker, Err(PoolError::WorkerFailed { worker })));
                    }
                }
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or((0, Err(PoolError::WorkerFailed { worker: 0 }))))
            .collect()
    }

    /// Runs independent invocations (each naming its instance) in
    /// parallel; one result per invocation, in input order. One that
    /// fails (a refusal, a guest fault) fails alone, as
    /// [`PoolError::Kernel`] naming it.
    pub fn invoke_each(&self, calls: Vec<Invocation>) -> Vec<Result<Outcome, PoolError>> {
        let chains = calls.into_iter().map(|c| vec![c]).collect();
        self.chains_placed(chains)
            .into_iter()
            .enumerate()
            .map(|(index, (worker, chain))| {
                let mut results = chain?;
                let one = match (results.pop(), results.is_empty()) {
                    (Some(one), true) => one,
                    _ => Err(KernelError::Protocol(
                        "a chain of one invocation gave another count of results".into(),
                    )),
                };
                one.map_err(|source| PoolError::Kernel {
                    index,
                    worker,
                    source,
                })
            })
            .collect()
    }

    /// Copies an instance's state (the instance, its memory and root
    /// CNode) into its worker's host copy, so any worker can run it and it
    /// survives that worker's faults. A part the worker's kernel never
    /// loaded (it came from another worker and was not needed) is left
    /// where it is, if another worker's host copy holds it.
    pub fn export_instance(&self, instance: &CapHash) -> Result<(), PoolError> {
        let worker = self.assign(&[Some(*instance)])[0];
        let instance = *instance;
        let readers = self.readers.clone();
        self.kernel_on(worker, move |k| {
            let Cap::Instance(inst) = k.get_cap(&instance)? else {
                return Err(KernelError::Protocol(format!(
                    "{instance} is not an instance"
                )));
            };
            for link in [&inst.memory, &inst.root_cnode] {
                let CapHashOrRef::Hash(h) = link else {
                    continue;
                };
                match k.get_cap(h) {
                    Ok(_) => {}
                    Err(KernelError::Refused(e))
                        if e.kind == ErrorKind::MissingCap
                            && worker::read(&readers)
                                .iter()
                                .flatten()
                                .any(|reader| reader(h).is_some()) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }

    /// A cap, from the worker holding it (an instance: its worker).
    pub fn get_cap(&self, hash: &CapHash) -> Result<Cap, PoolError> {
        let worker = self.assign(&[Some(*hash)])[0];
        let hash = *hash;
        self.kernel_on(worker, move |k| k.get_cap(&hash))
    }

    /// Every worker's kernel statistics, in worker order.
    pub fn stats(&self) -> Vec<Result<StatsMsg, PoolError>> {
        let pending: Vec<_> = (0..self.jobs())
            .map(|w| {
                let rx = self.submit(w, |k| {
                    let r = k.stats();
                    let health = health_of(r.as_ref().err());
                    (r, health)
                });
                (w, rx)
            })
            .collect();
        pending
            .into_iter()
            .map(|(worker, rx)| {
                rx?.recv()
                    .map_err(|_| PoolError::WorkerFailed { worker })?
                    .map_err(|source| PoolError::Kernel {
                        index: 0,
                        worker,
                        source,
                    })
            })
            .collect()
    }

    /// A raw guest call on one worker (for tools and tests, e.g.
    /// `GuestFunction::Crash` to fault that worker's sandbox).
    pub fn call_raw_on(
        &self,
        worker: usize,
        function: GuestFunction,
        request: &[u8],
    ) -> Result<Vec<u8>, PoolError> {
        let request = request.to_vec();
        self.kernel_on(worker, move |k| k.call_raw(function, &request))
    }
}

impl Drop for Pool {
    /// Closes every worker's channel, then joins the threads (each ends
    /// after its queued jobs).
    fn drop(&mut self) {
        for w in &mut self.workers {
            w.jobs = None;
        }
        for w in &mut self.workers {
            if let Some(thread) = w.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// Waits for a worker's kernel; its backend.
fn wait_started(
    worker: usize,
    started: Receiver<Result<BackendKind, KernelError>>,
) -> Result<BackendKind, PoolError> {
    match started.recv() {
        Ok(Ok(kind)) => Ok(kind),
        Ok(Err(source)) => Err(PoolError::Start { worker, source }),
        Err(_) => Err(PoolError::WorkerFailed { worker }),
    }
}

/// Whether an error leaves the kernel unusable (its rebuild failed).
fn health_of(error: Option<&KernelError>) -> Health {
    match error {
        Some(KernelError::RebuildFailed { .. }) => Health::Broken,
        _ => Health::Fine,
    }
}

/// A worker's share of [`Pool::invoke_chains`]: each chain as one batch.
type ChainOutcomes = Vec<Result<Vec<Result<Outcome, KernelError>>, KernelError>>;

fn run_chains(
    kernel: &mut Kernel,
    chains: Vec<(usize, Vec<Invocation>)>,
) -> (ChainOutcomes, Health) {
    let mut health = Health::Fine;
    let results = chains
        .into_iter()
        .map(|(_, chain)| {
            let result = kernel.invoke_batch(&chain);
            let broken = match &result {
                Err(e) => health_of(Some(e)) == Health::Broken,
                Ok(results) => results
                    .iter()
                    .any(|r| health_of(r.as_ref().err()) == Health::Broken),
            };
            if broken {
                health = Health::Broken;
            }
            result
        })
        .collect();
    (results, health)
}
