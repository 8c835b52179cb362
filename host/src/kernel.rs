//! [`Kernel`]: the host's handle on a kernel, whichever backend runs it.
//!
//! The host keeps its own copy of every blob it published, exported or
//! was spilled (hash → encoding; a bounded cache in memory, the rest in
//! an overflow store on disk unless the fallback has it: see
//! `kernel_host_blobs.rs`) and the set of hashes the kernel already has,
//! so it does not send a blob twice. When the kernel misses a blob during
//! an invocation it asks for it (`fetch_blob`) and the host serves it from
//! that copy; after a guest fault the set is cleared and the new sandbox
//! is re-supplied the same way.

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use capbox_shared::abi::ReportMode;
use capbox_shared::abi::{self, BenchReplyMsg, CapBlobMsg, GuestFunction, InvocationMsg, StatsMsg};
use capbox_shared::cap::{Cap, CapHashOrRef, Image};
use capbox_shared::hash::CapHash;
use capbox_shared::kernel::ops::MAX_LOG_LEN;
use capbox_shared::kernel::{NO_TIMEOUT, Outcome, new_instance, new_instance_with_slots};

use crate::backend::{
    Backend, BackendKind, BlobSource, HostServices, LocalBackend, LogTarget, SandboxBackend,
    SandboxConfig, SpillTarget, hypervisor_present,
};
use crate::error::KernelError;
use crate::store::{OverflowStore, Store};

#[path = "kernel_progress.rs"]
mod progress;

#[path = "kernel_batch.rs"]
mod batch;

#[path = "kernel_stream.rs"]
mod stream;

#[path = "kernel_host_blobs.rs"]
mod host_blobs;

#[path = "kernel_delta.rs"]
mod delta;

use batch::lock_progress;
pub use host_blobs::{BlobFallback, HostCacheStats};
use host_blobs::{HostBlobs, accept_spill, host_copy, lock, own_copy};
pub use progress::MAX_REPORTED_BLOB_BYTES;
use progress::Progress;

/// Caps per `put_cap` call are batched up to about this many bytes.
const PUT_BATCH_BYTES: usize = 1 << 20;

/// Which backend [`Kernel::new`] should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// The sandbox when a hypervisor is usable, else local (with a notice).
    #[default]
    Auto,
    /// The sandbox, or an error.
    Sandbox,
    /// The local backend.
    Local,
}

/// One invocation request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invocation {
    /// The instance to run; `None` = the instance the previous invocation
    /// of the same batch produced.
    pub instance: Option<CapHash>,
    /// Endpoint index.
    pub endpoint: u32,
    /// φ7..φ10.
    pub args: [u64; 4],
    /// Gas limit.
    pub gas: u64,
    /// The input the program reads with `input_len` / `input_read`
    /// (empty: none; at most `kernel::ops::MAX_INPUT_LEN` bytes, else the
    /// kernel refuses the request).
    pub input: Vec<u8>,
    /// The wall-clock deadline, from when the kernel starts the
    /// invocation; reaching it ends the invocation as
    /// [`ExitReason::Timeout`] (state unchanged). `None`: the kernel's
    /// default ([`Kernel::default_timeout`]).
    pub timeout: Option<Duration>,
}

/// The deadline of an invocation that names none
/// ([`Kernel::set_default_timeout`] changes it).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What a batch reports while it runs unless changed
/// ([`Kernel::set_batch_reports`], or `CAPBOX_BATCH_REPORTS` = `off`,
/// `outcomes` or `state` for a new kernel); see docs/kernel.md "Partial
/// batches".
pub const DEFAULT_BATCH_REPORTS: ReportMode = ReportMode::Off;

/// The batch reports a new kernel uses: `CAPBOX_BATCH_REPORTS` if it
/// names a mode, else [`DEFAULT_BATCH_REPORTS`].
fn batch_reports_from_env() -> ReportMode {
    match std::env::var("CAPBOX_BATCH_REPORTS").as_deref() {
        Ok("off") => ReportMode::Off,
        Ok("outcomes") => ReportMode::Outcomes,
        Ok("state") => ReportMode::OutcomesAndState,
        _ => DEFAULT_BATCH_REPORTS,
    }
}

/// A kernel, sandboxed or local, behind one API.
pub struct Kernel {
    backend: Box<dyn Backend>,
    blobs: Arc<Mutex<HostBlobs>>,
    logs: Arc<Mutex<Vec<Vec<u8>>>>,
    default_timeout: Duration,
    progress: Arc<Mutex<Progress>>,
    batch_reports: ReportMode,
    /// The backend's message limit (transfer chunks are a quarter).
    message_bytes: usize,
    /// Reply bytes received per guest function number (index 0 unused).
    reply_bytes: [u64; 32],
}

/// Why auto mode fell back to the local backend, with what to do when the
/// device is there but cannot be opened (a permission problem, not a
/// missing hypervisor).
fn no_hypervisor_reason() -> String {
    let local = "using the local backend (same kernel, in-process)";
    for device in ["/dev/kvm", "/dev/mshv"] {
        if std::path::Path::new(device).exists()
            && let Err(e) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(device)
        {
            return format!(
                "{device} exists but cannot be opened ({e}); add your user to its group \
                 (e.g. `sudo usermod -aG kvm $USER`, then log in again) to use the sandbox; {local}"
            );
        }
    }
    format!("no hypervisor found; {local}")
}

/// A program's bytes as text that is safe to print: control characters
/// (escape sequences could retitle or clear a terminal) are shown escaped,
/// invalid UTF-8 as U+FFFD.
pub fn escape_for_terminal(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Program log messages kept for [`Kernel::take_logs`]; older ones are
/// dropped beyond this.
const MAX_KEPT_LOGS: usize = 1024;

impl Kernel {
    /// A kernel on the chosen backend with the default sandbox settings.
    pub fn new(choice: BackendChoice) -> Result<Self, KernelError> {
        Self::with_config(choice, SandboxConfig::default())
    }

    /// A kernel on the chosen backend. `Auto` prints a one-line notice on
    /// stderr when it falls back to the local backend.
    pub fn with_config(choice: BackendChoice, config: SandboxConfig) -> Result<Self, KernelError> {
        let blobs = Arc::new(Mutex::new(HostBlobs::new()));
        let source: BlobSource = {
            let blobs = blobs.clone();
            Arc::new(move |hash: &[u8; 32]| host_blobs::serve(&blobs, CapHash(*hash)))
        };
        let logs = Arc::new(Mutex::new(Vec::new()));
        let log: LogTarget = {
            let logs = logs.clone();
            Arc::new(move |message: &[u8]| {
                // The kernel never logs more than MAX_LOG_LEN bytes; a
                // longer message comes from a compromised guest and is cut.
                let message = &message[..message.len().min(MAX_LOG_LEN as usize)];
                if std::env::var_os("CAPBOX_LOG").is_some() {
                    eprintln!("capbox log: {}", escape_for_terminal(message));
                }
                let mut logs = logs.lock().unwrap_or_else(|e| e.into_inner());
                if logs.len() >= MAX_KEPT_LOGS {
                    logs.remove(0);
                }
                logs.push(message.to_vec());
            })
        };
        let progress = Arc::new(Mutex::new(Progress::default()));
        let report: crate::backend::ProgressTarget = {
            let progress = progress.clone();
            let blobs = blobs.clone();
            Arc::new(move |report: &[u8]| {
                lock_progress(&progress).accept(report, &mut |hash, bytes| {
                    let mut b = lock(&blobs);
                    b.keep(hash, bytes);
                    b.mark_published(hash);
                });
            })
        };
        let spill: SpillTarget = {
            let blobs = blobs.clone();
            let limit = config.message_bytes;
            Arc::new(move |message: &[u8]| accept_spill(&blobs, message, limit))
        };
        let services = HostServices {
            blobs: source,
            log,
            progress: report,
            spill,
        };
        let budget = config.blob_budget();
        let message_bytes = config.message_bytes;
        let backend: Box<dyn Backend> = match choice {
            BackendChoice::Local => Box::new(LocalBackend::with_budget(services, budget)),
            BackendChoice::Sandbox => Box::new(SandboxBackend::new(config, services)?),
            BackendChoice::Auto if !hypervisor_present() => {
                eprintln!("capbox: {}", no_hypervisor_reason());
                Box::new(LocalBackend::with_budget(services, budget))
            }
            BackendChoice::Auto => match SandboxBackend::new(config, services.clone()) {
                Ok(sandbox) => Box::new(sandbox),
                Err(e @ KernelError::GuestElf(_)) => return Err(e),
                Err(e) => {
                    eprintln!("capbox: sandbox unavailable ({e}); using the local backend");
                    Box::new(LocalBackend::with_budget(services, budget))
                }
            },
        };
        let mut backend = backend;
        if std::env::var("CAPBOX_JIT").is_ok_and(|v| v == "1") {
            backend.set_native_code(true);
        }
        Ok(Kernel {
            backend,
            blobs,
            logs,
            default_timeout: DEFAULT_TIMEOUT,
            progress,
            batch_reports: batch_reports_from_env(),
            message_bytes,
            reply_bytes: [0; 32],
        })
    }

    /// Reply bytes received from `function` so far (what crossed the ABI
    /// towards the host, e.g. to measure an export).
    pub fn reply_bytes(&self, function: GuestFunction) -> u64 {
        self.reply_bytes
            .get(function.number() as usize)
            .copied()
            .unwrap_or(0)
    }

    /// What batches report while they run ([`DEFAULT_BATCH_REPORTS`]
    /// unless changed).
    pub fn batch_reports(&self) -> ReportMode {
        self.batch_reports
    }

    /// Sets what [`Self::invoke_batch`] asks the kernel to report while a
    /// batch runs: `Off` (a guest fault fails the whole batch),
    /// `Outcomes` (a fault keeps the completed invocations' outcomes) or
    /// `OutcomesAndState` (and the blobs they committed, so their states
    /// survive the sandbox's rebuild). Each report costs one host call
    /// per invocation.
    pub fn set_batch_reports(&mut self, mode: ReportMode) {
        self.batch_reports = mode;
    }

    /// The watchdog time an invocation's deadline adds to its call (none
    /// when it has no deadline: the sandbox's `call_timeout` bounds it).
    fn watchdog_share(&self, timeout: Duration) -> Duration {
        if self.backend.clock_ticks(timeout) == NO_TIMEOUT {
            Duration::ZERO
        } else {
            timeout
        }
    }

    /// The deadline of invocations that name none ([`DEFAULT_TIMEOUT`]
    /// unless changed).
    pub fn default_timeout(&self) -> Duration {
        self.default_timeout
    }

    /// Sets the deadline of invocations that name none (`invoke`,
    /// `invoke_with_input`, an [`Invocation`] with `timeout: None`).
    /// `Duration::MAX` means none: the kernel does not end such an
    /// invocation, and on the sandbox only the watchdog
    /// (`SandboxConfig::call_timeout`) bounds it, as a guest fault.
    pub fn set_default_timeout(&mut self, timeout: Duration) {
        self.default_timeout = timeout;
    }

    /// Programs' `log` messages since the last call (at most the last
    /// 1024).
    pub fn take_logs(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.logs.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Which backend runs the kernel.
    pub fn backend(&self) -> BackendKind {
        self.backend.kind()
    }

    /// Has the local backend compile programs it decodes from now on to
    /// machine code (`capbox_shared::pvm::jit`, x86-64 Linux), or go back
    /// to interpreting them (`on` false). Every run ends in the same state
    /// either way, only faster. Returns whether this kernel can: `false`
    /// for the sandbox, which keeps the interpreter inside the micro-VM, and
    /// elsewhere than x86-64 Linux. The generated code runs in this
    /// process, unisolated, as the local backend's interpreter does.
    /// `CAPBOX_JIT=1` turns it on for every local kernel at creation.
    pub fn set_native_code(&mut self, on: bool) -> bool {
        self.backend.set_native_code(on)
    }

    /// Calls a guest function with raw request bytes (for tools and tests
    /// that exercise the ABI directly). A guest fault forgets what was
    /// published, as every other call does.
    pub fn call_raw(
        &mut self,
        function: GuestFunction,
        request: &[u8],
    ) -> Result<Vec<u8>, KernelError> {
        self.call_timed(function, request, Duration::ZERO)
    }

    /// [`Self::call_raw`] for a request carrying `deadlines` of
    /// invocation deadlines (the sandbox's watchdog waits longer).
    fn call_timed(
        &mut self,
        function: GuestFunction,
        request: &[u8],
        deadlines: Duration,
    ) -> Result<Vec<u8>, KernelError> {
        let result = self.backend.call_timed(function, request, deadlines);
        if let (Ok(reply), Some(count)) = (
            &result,
            self.reply_bytes.get_mut(function.number() as usize),
        ) {
            *count += reply.len() as u64;
        }
        if matches!(result, Err(KernelError::GuestFault { .. })) {
            lock(&self.blobs).clear_published();
        }
        result
    }

    /// Publishes one cap (unless the kernel already has it); its hash.
    pub fn put_cap(&mut self, cap: &Cap) -> Result<CapHash, KernelError> {
        let hashes = self.put_caps(std::slice::from_ref(cap))?;
        hashes
            .into_iter()
            .next()
            .ok_or_else(|| KernelError::Protocol("put_cap returned no hash".into()))
    }

    /// Publishes caps in one call, skipping those the kernel already has.
    /// Caps larger than a transfer chunk go in chunks
    /// ([`Self::put_cap_streamed`]) and are not kept in the host's copy.
    /// A large Data the kernel holds an earlier version of goes as a
    /// delta (only the pages that differ: `data_delta.rs`).
    pub fn put_caps(&mut self, caps: &[Cap]) -> Result<Vec<CapHash>, KernelError> {
        let mut as_delta = Vec::with_capacity(caps.len());
        for cap in caps {
            as_delta.push(self.put_as_delta(cap)?);
        }
        if as_delta.iter().all(Option::is_none) {
            let hashes = self.put_caps_whole(caps)?;
            self.note_published_data(caps);
            return Ok(hashes);
        }
        let rest: Vec<Cap> = caps
            .iter()
            .zip(&as_delta)
            .filter(|(_, sent)| sent.is_none())
            .map(|(cap, _)| cap.clone())
            .collect();
        let mut rest_hashes = self.put_caps_whole(&rest)?.into_iter();
        self.note_published_data(&rest);
        as_delta
            .into_iter()
            .map(|sent| {
                sent.or_else(|| rest_hashes.next())
                    .ok_or_else(|| KernelError::Protocol("put_caps returned too few hashes".into()))
            })
            .collect()
    }

    /// [`Self::put_caps`] without deltas: every cap whole.
    fn put_caps_whole(&mut self, caps: &[Cap]) -> Result<Vec<CapHash>, KernelError> {
        if caps.iter().any(|cap| self.is_large_cap(cap)) {
            return self.put_caps_mixed(caps);
        }
        let mut hashes = Vec::with_capacity(caps.len());
        let mut to_send = Vec::new();
        {
            let mut b = lock(&self.blobs);
            for cap in caps {
                let bytes = cap
                    .encode()
                    .map_err(|e| KernelError::BadCap(e.to_string()))?;
                let hash = cap.hash().map_err(|e| KernelError::BadCap(e.to_string()))?;
                hashes.push(hash);
                if !b.is_published(&hash) {
                    let bytes = Arc::new(bytes);
                    b.keep(hash, bytes.clone());
                    to_send.push((hash, bytes));
                }
            }
        }
        if to_send.is_empty() {
            return Ok(hashes);
        }
        // Several calls when the caps are large, so no message gets near
        // the sandbox's limit.
        let mut start = 0;
        while start < to_send.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < to_send.len()
                && (end == start || bytes + to_send[end].1.len() <= PUT_BATCH_BYTES)
            {
                bytes += to_send[end].1.len();
                end += 1;
            }
            let batch = &to_send[start..end];
            let msgs: Vec<CapBlobMsg<'_>> = batch
                .iter()
                .map(|(h, b)| CapBlobMsg {
                    hash: Some(h.0),
                    bytes: b,
                })
                .collect();
            let reply =
                self.call_raw(GuestFunction::PutCap, &abi::encode_put_cap_request(&msgs))?;
            let got = abi::decode_put_cap_reply(&reply)?.map_err(KernelError::Refused)?;
            if got.len() != batch.len() {
                return Err(KernelError::Protocol(format!(
                    "put_cap: sent {} caps, got {} hashes",
                    batch.len(),
                    got.len()
                )));
            }
            start = end;
        }
        let mut b = lock(&self.blobs);
        b.sent += to_send.len() as u64;
        for (hash, _) in &to_send {
            b.mark_published(*hash);
        }
        Ok(hashes)
    }

    /// Records caps in the host's copy without sending them: the kernel
    /// fetches each one (`fetch_blob`) the first time it needs it.
    pub fn stage_caps(&mut self, caps: &[Cap]) -> Result<Vec<CapHash>, KernelError> {
        let mut b = lock(&self.blobs);
        caps.iter()
            .map(|cap| {
                let bytes = cap
                    .encode()
                    .map_err(|e| KernelError::BadCap(e.to_string()))?;
                let hash = cap.hash().map_err(|e| KernelError::BadCap(e.to_string()))?;
                b.keep(hash, Arc::new(bytes));
                Ok(hash)
            })
            .collect()
    }

    /// Serves the kernel's `fetch_blob` from `fallback` for blobs the
    /// host's copy lacks (`None`: no second source), so state can be
    /// invoked without loading it up front. Its blobs are not copied into
    /// the host's copy. The fallback is trusted to keep what it has (a
    /// store): a blob it serves may leave the host's cache without an
    /// overflow write; [`Kernel::set_blob_sources`] separates the two.
    pub fn set_blob_fallback(&mut self, fallback: Option<BlobFallback>) {
        self.set_blob_sources(fallback.clone(), fallback);
    }

    /// Like [`Kernel::set_blob_fallback`], with `keeper` the part of
    /// `fallback` that keeps what it has (a blob it serves may leave the
    /// host's cache without an overflow write). `keeper` is asked under the
    /// host copy's lock: it must not wait on another kernel (a pool's
    /// workers serve each other through `fallback` only).
    pub fn set_blob_sources(
        &mut self,
        fallback: Option<BlobFallback>,
        keeper: Option<BlobFallback>,
    ) {
        let mut b = lock(&self.blobs);
        b.fallback = fallback;
        b.keeper = keeper;
    }

    /// Spill messages the host refused so far, and why the last one was
    /// (none in a healthy kernel).
    pub fn spills_refused(&self) -> (u64, Option<String>) {
        let b = lock(&self.blobs);
        (b.spills_refused, b.last_spill_error.clone())
    }

    /// Whether the host's copy holds `hash` (published, exported, or
    /// spilled by the kernel; in the cache or the overflow store).
    pub fn host_has(&self, hash: &CapHash) -> bool {
        lock(&self.blobs).holds(hash)
    }

    /// Bounds the host's cache of blob bytes (see docs/kernel.md "Host
    /// memory"): at most `max_bytes` (blob bytes plus a fixed overhead per
    /// blob) and `max_blobs` blobs; least recently used blobs beyond go to
    /// the overflow store, or are dropped when the fallback has them. A new
    /// kernel takes `CAPBOX_HOST_CACHE_MIB` / `CAPBOX_HOST_CACHE_BLOBS`,
    /// else 64 MiB and one blob per KiB.
    pub fn set_host_cache(&mut self, max_bytes: usize, max_blobs: usize) {
        lock(&self.blobs).set_limits(max_bytes, max_blobs);
    }

    /// The host cache's limits, use and traffic.
    pub fn host_cache_stats(&self) -> HostCacheStats {
        lock(&self.blobs).stats()
    }

    /// Writes blobs leaving the host cache to `store` from now on instead
    /// of the kernel's private temporary directory (created on first use
    /// under `std::env::temp_dir()`, removed when the kernel drops). Blobs
    /// already written elsewhere are still read from there.
    pub fn set_overflow_store(&mut self, store: Store) {
        lock(&self.blobs).add_overflow(OverflowStore::Store(store));
    }

    /// The kernel's private overflow directory, once a blob needed it
    /// (removed when the kernel drops).
    pub fn overflow_dir(&self) -> Option<std::path::PathBuf> {
        lock(&self.blobs).temp_overflow_path()
    }

    /// Why the overflow store last failed to take a blob (kept in memory
    /// instead), if it ever did.
    pub fn overflow_error(&self) -> Option<String> {
        lock(&self.blobs).last_overflow_error.clone()
    }

    /// How many caps `put_cap(s)` has sent to the kernel so far.
    pub fn caps_sent(&self) -> u64 {
        lock(&self.blobs).sent
    }

    /// Whether the host believes the kernel holds `hash`.
    pub fn is_published(&self, hash: &CapHash) -> bool {
        lock(&self.blobs).is_published(hash)
    }

    /// Publishes `image` and a fresh instance of it; the instance's hash.
    pub fn create_instance(&mut self, image: &Image) -> Result<CapHash, KernelError> {
        let image_cap = Cap::Image(image.clone());
        let image_hash = image_cap
            .hash()
            .map_err(|e| KernelError::BadCap(e.to_string()))?;
        let fresh =
            new_instance(image_hash, image).map_err(|e| KernelError::BadCap(e.to_string()))?;
        self.put_caps(&[image_cap, fresh.memory, fresh.root_cnode, fresh.instance])?;
        Ok(fresh.instance_hash)
    }

    /// Publishes `image`, the caps in `caps` and a fresh instance of the
    /// image whose root CNode holds each cap in its slot; the instance's
    /// hash. A slot out of range or named twice is an error.
    pub fn create_instance_with_caps(
        &mut self,
        image: &Image,
        caps: &[(u32, Cap)],
    ) -> Result<CapHash, KernelError> {
        let image_cap = Cap::Image(image.clone());
        let image_hash = image_cap
            .hash()
            .map_err(|e| KernelError::BadCap(e.to_string()))?;
        let mut slots = Vec::with_capacity(caps.len());
        for (slot, cap) in caps {
            if slots.iter().any(|(s, _)| s == slot) {
                return Err(KernelError::BadCap(format!("slot {slot} given twice")));
            }
            let hash = cap.hash().map_err(|e| KernelError::BadCap(e.to_string()))?;
            slots.push((*slot, hash));
        }
        let fresh = new_instance_with_slots(image_hash, image, &slots)
            .map_err(|e| KernelError::BadCap(e.to_string()))?;
        let mut all = Vec::with_capacity(caps.len() + 4);
        all.push(image_cap);
        all.extend(caps.iter().map(|(_, cap)| cap.clone()));
        all.extend([fresh.memory, fresh.root_cnode, fresh.instance]);
        self.put_caps(&all)?;
        Ok(fresh.instance_hash)
    }

    /// Runs one invocation (no input).
    pub fn invoke(
        &mut self,
        instance: &CapHash,
        endpoint: u32,
        args: [u64; 4],
        gas: u64,
    ) -> Result<Outcome, KernelError> {
        self.invoke_with_input(instance, endpoint, args, gas, &[])
    }

    /// Runs one invocation as described by `call` (its `instance` must be
    /// named).
    pub fn invoke_one(&mut self, call: &Invocation) -> Result<Outcome, KernelError> {
        let instance = call.instance.ok_or_else(|| {
            KernelError::Protocol("invoke_one needs an instance (None chains in a batch)".into())
        })?;
        let timeout = call.timeout.unwrap_or(self.default_timeout);
        let msg = InvocationMsg {
            instance: instance.0,
            endpoint: call.endpoint,
            args: call.args,
            gas: call.gas,
            input: &call.input,
            timeout: self.backend.clock_ticks(timeout),
        };
        let deadlines = self.watchdog_share(timeout);
        self.invoke_msgs(&[msg], true, deadlines, ReportMode::Off)?
            .pop()
            .ok_or_else(|| KernelError::Protocol("invoke returned no result".into()))?
    }

    /// Runs one invocation with `input` (what the program reads with
    /// `input_len` / `input_read`). An input over
    /// `kernel::ops::MAX_INPUT_LEN` bytes is refused by the kernel
    /// ([`KernelError::Refused`], `BadMessage`).
    pub fn invoke_with_input(
        &mut self,
        instance: &CapHash,
        endpoint: u32,
        args: [u64; 4],
        gas: u64,
        input: &[u8],
    ) -> Result<Outcome, KernelError> {
        let timeout = self.default_timeout;
        let call = InvocationMsg {
            instance: instance.0,
            endpoint,
            args,
            gas,
            input,
            timeout: self.backend.clock_ticks(timeout),
        };
        let deadlines = self.watchdog_share(timeout);
        self.invoke_msgs(&[call], true, deadlines, ReportMode::Off)?
            .pop()
            .ok_or_else(|| KernelError::Protocol("invoke returned no result".into()))?
    }

    /// A cap from the kernel (checked against its hash), remembered in the
    /// host's copy so it survives a sandbox rebuild.
    pub fn get_cap(&mut self, hash: &CapHash) -> Result<Cap, KernelError> {
        if let Some(bytes) = host_copy(&self.blobs, hash) {
            // Checked: the bytes may come from the fallback or from disk.
            let cap = Cap::decode(&bytes).map_err(|e| KernelError::BadCap(e.to_string()))?;
            let got = cap.hash().map_err(|e| KernelError::BadCap(e.to_string()))?;
            if got == *hash {
                return Ok(cap);
            }
        }
        // By ranges: one call unless it is larger than a chunk.
        let (bytes, large) = self.read_encoding(hash)?;
        let cap = Cap::decode(&bytes).map_err(|e| KernelError::BadCap(e.to_string()))?;
        let got = cap.hash().map_err(|e| KernelError::BadCap(e.to_string()))?;
        if got != *hash {
            return Err(KernelError::Protocol(format!(
                "get_cap {hash} returned a cap hashing to {got}"
            )));
        }
        let mut b = lock(&self.blobs);
        // A cap over the message limit is never kept in memory (the caller
        // stores it, e.g. with `export_to_store`).
        if !large {
            b.keep(*hash, Arc::new(bytes));
        }
        b.mark_published(*hash);
        Ok(cap)
    }

    /// Copies an instance's state (the instance, its memory and root cnode)
    /// from the kernel into the host's copy.
    pub fn export_instance(&mut self, instance: &CapHash) -> Result<(), KernelError> {
        let Cap::Instance(inst) = self.get_cap(instance)? else {
            return Err(KernelError::Protocol(format!(
                "{instance} is not an instance"
            )));
        };
        for link in [&inst.memory, &inst.root_cnode] {
            if let CapHashOrRef::Hash(h) = link {
                self.get_cap(h)?;
            }
        }
        Ok(())
    }

    /// The kernel's directory and arena usage.
    pub fn stats(&mut self) -> Result<StatsMsg, KernelError> {
        let reply = self.call_raw(GuestFunction::Stats, &[])?;
        abi::decode_stats_reply(&reply)?.map_err(KernelError::Refused)
    }

    /// Drops unreferenced working entries; the stats afterwards.
    pub fn sweep(&mut self) -> Result<StatsMsg, KernelError> {
        let reply = self.call_raw(GuestFunction::Sweep, &[])?;
        abi::decode_stats_reply(&reply)?.map_err(KernelError::Refused)
    }

    /// Runs an in-kernel micro-benchmark.
    pub fn bench(&mut self, name: &str, iters: u64) -> Result<BenchReplyMsg, KernelError> {
        let reply = self.call_raw(
            GuestFunction::Bench,
            &abi::encode_bench_request(name, iters),
        )?;
        abi::decode_bench_reply(&reply)?.map_err(KernelError::Refused)
    }

    /// A call that does nothing (the baseline for call-cost measurements).
    pub fn ping(&mut self) -> Result<(), KernelError> {
        self.call_raw(GuestFunction::Ping, &[]).map(drop)
    }

    /// A reader of the host's copy usable from other threads (a pool's
    /// workers serve each other's misses with it): the encoding of a hash
    /// the cache or the overflow store holds. It never asks the kernel's
    /// fallback (two workers' fallbacks asking each other would never
    /// end) and only locks the copy briefly.
    pub fn host_blob_reader(&self) -> BlobFallback {
        let blobs = self.blobs.clone();
        Arc::new(move |hash: &CapHash| own_copy(&blobs, hash).map(|b| b.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::escape_for_terminal;

    #[test]
    fn terminal_text_shows_control_characters_escaped() {
        assert_eq!(escape_for_terminal(b"plain text"), "plain text");
        // Set the title, clear the screen, ring the bell.
        let hostile = b"\x1b]0;owned\x07\x1b[2J\r";
        let shown = escape_for_terminal(hostile);
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(shown, "\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\r");
        assert_eq!(escape_for_terminal(&[0xff, b'a']), "\u{fffd}a");
    }
}
