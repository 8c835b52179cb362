//! The sandbox backend: the guest kernel in a Hyperlight micro-VM.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use capbox_shared::BlobBudget;
use capbox_shared::abi::{self, GuestFunction, HostFunction};
use hyperlight_host::sandbox::snapshot::Snapshot;
use hyperlight_host::{Sandbox, SandboxBuilder};

use super::clock::{ticks_at, tsc_hz};
use super::{Backend, BackendKind, HostServices};
use crate::error::KernelError;
use crate::guest_elf::GuestImage;

/// Size of one transport buffer between host and guest.
const TRANSPORT_BUFFER: usize = 64 << 10;

/// Whether a hypervisor (KVM or MSHV) is usable on this machine.
pub fn hypervisor_present() -> bool {
    hyperlight_host::is_hypervisor_present()
}

/// Memory sizes for the micro-VM.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The guest kernel (checked for the ABI note before loading): the one
    /// embedded in this binary unless `CAPBOX_GUEST` names a file.
    pub guest: GuestImage,
    /// Guest heap: the directory, decoded programs and the page arena.
    pub heap_bytes: u64,
    /// Largest single message in either direction.
    pub message_bytes: usize,
    /// A guest call running longer than this is killed (a guest fault:
    /// the sandbox is rebuilt). A call whose invocations carry longer
    /// deadlines gets a watchdog longer than those (the deadlines end
    /// them as outcomes; the watchdog is the last resort); invocations
    /// without a deadline add nothing, so this bounds them.
    pub call_timeout: Duration,
    /// The guest directory's blob budget; `None`: a share of the page
    /// arena ([`BlobBudget::share_of_arena`] of 75 % of `heap_bytes`).
    /// `CAPBOX_GUEST_BLOB_MIB` (bytes) and `CAPBOX_GUEST_BLOBS` (count)
    /// set it. The local backend uses the same budget.
    pub blob_budget: Option<BlobBudget>,
}

impl SandboxConfig {
    /// The blob budget in force: [`Self::blob_budget`] or the default share
    /// of the arena.
    pub fn blob_budget(&self) -> BlobBudget {
        self.blob_budget
            .unwrap_or_else(|| BlobBudget::share_of_arena(self.heap_bytes / 4 * 3))
    }
}

/// The budget `CAPBOX_GUEST_BLOB_MIB` / `CAPBOX_GUEST_BLOBS` ask for, if
/// either is set (the other limit follows the default ratio: one blob per
/// 2 KiB, or 2 KiB per blob).
pub(crate) fn budget_from_env() -> Option<BlobBudget> {
    let read = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    match (read("CAPBOX_GUEST_BLOB_MIB"), read("CAPBOX_GUEST_BLOBS")) {
        (None, None) => None,
        (Some(mib), blobs) => Some(BlobBudget {
            max_bytes: mib.saturating_mul(1 << 20),
            max_blobs: blobs.unwrap_or(mib.saturating_mul(512)),
        }),
        (None, Some(blobs)) => Some(BlobBudget {
            max_bytes: blobs.saturating_mul(2048),
            max_blobs: blobs,
        }),
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        let env_mib = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(default)
                << 20
        };
        SandboxConfig {
            guest: GuestImage::from_env(),
            heap_bytes: env_mib("CAPBOX_GUEST_HEAP_MIB", 128),
            message_bytes: usize::try_from(env_mib("CAPBOX_MESSAGE_MIB", 4)).unwrap_or(4 << 20),
            call_timeout: Duration::from_secs(
                std::env::var("CAPBOX_CALL_TIMEOUT_SECS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(600),
            ),
            blob_budget: budget_from_env(),
        }
    }
}

/// The guest kernel in a Hyperlight sandbox.
pub struct SandboxBackend {
    sandbox: Sandbox,
    /// The state right after start-up; restoring it is the cheap rebuild.
    fresh: Arc<Snapshot>,
    elf: Vec<u8>,
    config: SandboxConfig,
    services: HostServices,
    /// The guest's clock (its TSC) in ticks per second.
    tsc_hz: u64,
}

/// Slack the watchdog gives a call beyond the deadlines it carries: the
/// guest looks at its clock every `SLICE_GAS` gas (~0.25 s here), and
/// encoding, transport and the TSC calibration add a little.
const WATCHDOG_GRACE: Duration = Duration::from_secs(10);

impl SandboxBackend {
    /// Loads the guest ELF (refusing an ABI mismatch) and starts the VM.
    /// `services` answers the guest's host-function calls.
    pub fn new(config: SandboxConfig, services: HostServices) -> Result<Self, KernelError> {
        if !hypervisor_present() {
            return Err(KernelError::NoHypervisor);
        }
        let elf = config.guest.load_checked()?;
        let mut sandbox = build(&elf, &config, services.clone())?;
        set_budget(&mut sandbox, config.blob_budget())?;
        let fresh = sandbox
            .snapshot()
            .map_err(|e| KernelError::SandboxCreate(format!("snapshot after start-up: {e}")))?;
        Ok(SandboxBackend {
            sandbox,
            fresh,
            elf,
            config,
            services,
            tsc_hz: tsc_hz(),
        })
    }

    /// The guest kernel in use.
    pub fn guest(&self) -> &GuestImage {
        &self.config.guest
    }

    /// Brings the VM back to its just-started state: restore the start-up
    /// snapshot, or build a new VM if that fails.
    fn rebuild(&mut self) -> Result<(), String> {
        if self.sandbox.restore(self.fresh.clone()).is_ok() {
            return Ok(());
        }
        let mut sandbox =
            build(&self.elf, &self.config, self.services.clone()).map_err(|e| e.to_string())?;
        set_budget(&mut sandbox, self.config.blob_budget()).map_err(|e| e.to_string())?;
        self.fresh = sandbox.snapshot().map_err(|e| e.to_string())?;
        self.sandbox = sandbox;
        Ok(())
    }
}

/// Gives a just-built guest its blob budget (before the start-up snapshot,
/// so a restore keeps it).
fn set_budget(sandbox: &mut Sandbox, budget: BlobBudget) -> Result<(), KernelError> {
    let function = GuestFunction::SetBudget.name();
    let reply = sandbox
        .call::<Vec<u8>>(function, abi::encode_set_budget_request(budget))
        .map_err(|e| KernelError::SandboxCreate(format!("{function}: {e}")))?;
    let stats = abi::decode_stats_reply(&reply)
        .map_err(|e| KernelError::SandboxCreate(format!("{function}: {e}")))?
        .map_err(KernelError::Refused)?;
    if stats.budget_bytes != budget.max_bytes || stats.budget_blobs != budget.max_blobs {
        return Err(KernelError::SandboxCreate(format!(
            "{function}: the guest reports a budget of {} bytes / {} blobs, not {budget:?}",
            stats.budget_bytes, stats.budget_blobs
        )));
    }
    Ok(())
}

fn build(
    elf: &[u8],
    config: &SandboxConfig,
    services: HostServices,
) -> Result<Sandbox, KernelError> {
    let create = |e: hyperlight_host::HyperlightError| KernelError::SandboxCreate(e.to_string());
    let pool_buffers = config.message_bytes.div_ceil(TRANSPORT_BUFFER) + 2;
    let pool_pages = pool_buffers * TRANSPORT_BUFFER / 4096 + 1;
    let scratch = usize::try_from(config.heap_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(4 * config.message_bytes)
        .saturating_add(4 << 20);
    SandboxBuilder::from_bytes(elf.to_vec())
        .heap_size(config.heap_bytes)
        .scratch_size(scratch.next_multiple_of(16 << 10))
        // A message spans several transport buffers; the pools bound its
        // size (plus one spare buffer the transport keeps in reserve).
        .h2g_buffer_size(TRANSPORT_BUFFER)
        .g2h_buffer_size(TRANSPORT_BUFFER)
        .h2g_queue_size(pool_buffers * 2)
        .g2h_queue_size(pool_buffers * 2)
        .h2g_pool_pages(pool_pages)
        .g2h_pool_pages(pool_pages)
        .host_function(HostFunction::FetchBlob.name(), {
            let blobs = services.blobs;
            move |hash: Vec<u8>| {
                let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) else {
                    return Ok(Vec::new());
                };
                Ok(blobs(&hash).unwrap_or_default())
            }
        })
        .host_function(HostFunction::SpillBlobs.name(), {
            let spill = services.spill;
            move |message: Vec<u8>| Ok(spill(&message))
        })
        .host_function(HostFunction::Log.name(), {
            let log = services.log;
            move |message: Vec<u8>| {
                log(&message);
                Ok(())
            }
        })
        .host_function(HostFunction::ReportProgress.name(), {
            let progress = services.progress;
            move |report: Vec<u8>| {
                progress(&report);
                Ok(())
            }
        })
        .build()
        .map_err(create)
}

impl Backend for SandboxBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Sandbox
    }

    fn clock_ticks(&self, timeout: Duration) -> u64 {
        ticks_at(self.tsc_hz, timeout)
    }

    fn call_timed(
        &mut self,
        function: GuestFunction,
        request: &[u8],
        deadlines: Duration,
    ) -> Result<Vec<u8>, KernelError> {
        if request.len() > self.config.message_bytes {
            return Err(KernelError::MessageTooLarge {
                function: function.name(),
                len: request.len(),
                limit: self.config.message_bytes,
            });
        }
        // A watchdog kills the call if it overruns. Every invocation ends
        // at its deadline (an outcome), so this only catches a kernel bug
        // or a runaway bench: it waits longer than the deadlines carried.
        let interrupt = self.sandbox.interrupt_handle();
        let timeout = if deadlines.is_zero() {
            self.config.call_timeout
        } else {
            let carried = deadlines.saturating_add(deadlines / 4);
            self.config
                .call_timeout
                .max(carried.saturating_add(WATCHDOG_GRACE))
        };
        let (done, finished) = mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            matches!(
                finished.recv_timeout(timeout),
                Err(RecvTimeoutError::Timeout)
            ) && interrupt.kill()
        });
        let result = self
            .sandbox
            .call::<Vec<u8>>(function.name(), request.to_vec());
        let _ = done.send(());
        let timed_out = watchdog.join().unwrap_or(false);
        let result = result.map_err(|e| {
            if timed_out && deadlines.is_zero() {
                format!("timed out: the watchdog killed the call after {timeout:?} ({e})")
            } else if timed_out {
                format!(
                    "timed out: the watchdog killed the call after {timeout:?}, past the \
                     {deadlines:?} of invocation deadlines it carried (the kernel should have \
                     ended them as timeouts: a kernel bug or a runaway call) ({e})"
                )
            } else {
                e.to_string()
            }
        });
        match result {
            Ok(reply) => Ok(reply),
            // The guest function returned an error without harming the VM
            // (e.g. a parameter type mismatch): nothing to rebuild.
            Err(detail) if !self.sandbox.status().is_poisoned() => Err(KernelError::GuestCall {
                function: function.name(),
                detail,
            }),
            Err(detail) => match self.rebuild() {
                Ok(()) => Err(KernelError::GuestFault {
                    function: function.name(),
                    detail,
                }),
                Err(rebuild) => Err(KernelError::RebuildFailed {
                    function: function.name(),
                    detail,
                    rebuild,
                }),
            },
        }
    }
}
