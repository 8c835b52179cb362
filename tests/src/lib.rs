//! Shared helpers for capbox's integration tests (see `tests/tests/`).
//!
//! [`backend_tests!`] writes each backend test once and stamps it out for
//! both backends: `local::<name>` runs on a fresh local kernel,
//! `sandbox::<name>` on the one sandbox shared by the whole test binary
//! (creating one is slow on nested KVM), and `local_tiny::<name>` on a
//! local kernel with [`TINY_BUDGET`] (evicting all the time: an outcome or
//! hash that eviction changed fails there), and `local_jit::<name>` on a
//! local kernel that compiles programs to machine code
//! ([`Kernel::set_native_code`]; every state must be the interpreter's).
//! Without a usable sandbox a
//! sandbox test skips with a loud message, unless `CAPBOX_REQUIRE_SANDBOX=1`
//! makes it fail.

use std::sync::{Mutex, MutexGuard, OnceLock};

use capbox::shared::BlobBudget;
use capbox::{BackendChoice, Kernel, SandboxConfig};

pub mod probe;
pub mod programs;

/// A fresh local kernel.
pub fn local_kernel() -> Kernel {
    Kernel::new(BackendChoice::Local).expect("the local backend always starts")
}

/// A blob budget so small that a kernel evicts (and spills) on almost
/// every state change: 32 blobs, 128 KiB.
pub const TINY_BUDGET: BlobBudget = BlobBudget {
    max_bytes: 128 << 10,
    max_blobs: 32,
};

/// A budget no test reaches (no eviction at all).
pub const HUGE_BUDGET: BlobBudget = BlobBudget::UNBOUNDED;

/// The default sandbox settings with the blob budget `budget` (the local
/// backend takes its budget from the same field).
pub fn config_with_budget(budget: BlobBudget) -> SandboxConfig {
    SandboxConfig {
        blob_budget: Some(budget),
        ..SandboxConfig::default()
    }
}

/// A fresh local kernel keeping its blobs within `budget`.
pub fn local_kernel_with_budget(budget: BlobBudget) -> Kernel {
    Kernel::with_config(BackendChoice::Local, config_with_budget(budget))
        .expect("the local backend always starts")
}

/// A sandbox of its own keeping its blobs within `budget`, or `None` (see
/// [`own_sandbox`]).
pub fn sandbox_with_budget(budget: BlobBudget) -> Option<Kernel> {
    own_sandbox(config_with_budget(budget))
}

fn sandbox_required() -> bool {
    std::env::var("CAPBOX_REQUIRE_SANDBOX").is_ok_and(|v| v == "1")
}

/// A sandbox of its own with `config` (for tests that need other limits
/// than the shared one), or `None` (after printing why) when there is none
/// and it is not required.
pub fn own_sandbox(config: SandboxConfig) -> Option<Kernel> {
    match Kernel::with_config(BackendChoice::Sandbox, config) {
        Ok(kernel) => Some(kernel),
        Err(e) if sandbox_required() => {
            panic!("CAPBOX_REQUIRE_SANDBOX=1 but the sandbox cannot start: {e}")
        }
        Err(e) => {
            eprintln!(
                "!!! SKIPPED: no sandbox ({e}); set CAPBOX_REQUIRE_SANDBOX=1 to fail instead"
            );
            None
        }
    }
}

static SANDBOX: OnceLock<Option<Mutex<Kernel>>> = OnceLock::new();

/// The shared sandbox kernel (locked: sandbox tests take turns), or `None`
/// (after printing why) when there is none and it is not required.
pub fn shared_sandbox() -> Option<MutexGuard<'static, Kernel>> {
    let slot = SANDBOX.get_or_init(|| match Kernel::new(BackendChoice::Sandbox) {
        Ok(kernel) => Some(Mutex::new(kernel)),
        Err(e) => {
            if sandbox_required() {
                panic!("CAPBOX_REQUIRE_SANDBOX=1 but the sandbox cannot start: {e}");
            }
            eprintln!("\n!!! SKIPPING sandbox tests: the sandbox cannot start ({e}); set CAPBOX_REQUIRE_SANDBOX=1 to fail instead\n");
            None
        }
    });
    match slot {
        // A test that panicked while holding the kernel leaves it usable
        // (every call is self-contained), so poisoning is ignored.
        Some(m) => Some(m.lock().unwrap_or_else(|e| e.into_inner())),
        None => {
            if sandbox_required() {
                panic!("CAPBOX_REQUIRE_SANDBOX=1 but the sandbox could not start");
            }
            eprintln!("!!! SKIPPED: no sandbox");
            None
        }
    }
}

/// Writes backend tests once: each `fn name(kernel: &mut Kernel) { .. }`
/// becomes `local::name`, `local_jit::name`, `local_tiny::name` and
/// `sandbox::name`.
#[macro_export]
macro_rules! backend_tests {
    ($( $(#[$meta:meta])* fn $name:ident($kernel:ident: &mut Kernel) $body:block )*) => {
        $( $(#[$meta])* fn $name($kernel: &mut ::capbox::Kernel) $body )*

        mod local {
            $(
                #[test]
                fn $name() {
                    let mut kernel = $crate::local_kernel();
                    super::$name(&mut kernel);
                }
            )*
        }

        mod local_jit {
            $(
                #[test]
                fn $name() {
                    let mut kernel = $crate::local_kernel();
                    if !kernel.set_native_code(true) {
                        eprintln!("SKIPPING local_jit: no machine code on this platform");
                        return;
                    }
                    super::$name(&mut kernel);
                }
            )*
        }

        mod local_tiny {
            $(
                #[test]
                fn $name() {
                    let mut kernel = $crate::local_kernel_with_budget($crate::TINY_BUDGET);
                    super::$name(&mut kernel);
                }
            )*
        }

        mod sandbox {
            $(
                #[test]
                fn $name() {
                    let Some(mut kernel) = $crate::shared_sandbox() else { return };
                    super::$name(&mut kernel);
                }
            )*
        }
    };
}
