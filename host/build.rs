//! Builds the guest kernel (`../guest`, target x86_64-unknown-none) so a
//! plain `cargo run` / `cargo test` works on a fresh machine, and tells the
//! host crate where the ELF is (`CAPBOX_GUEST_ELF`).
//!
//! `CAPBOX_GUEST=/path/to/elf` skips the build and uses that file instead.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const GUEST_TARGET: &str = "x86_64-unknown-none";
/// Hyperlight's entry symbol; keep linkme's sections (guest function table).
const GUEST_RUSTFLAGS: [&str; 4] = [
    "-C",
    "link-arg=-eentrypoint",
    "-C",
    "link-arg=-znostart-stop-gc",
];

fn main() {
    println!("cargo:rerun-if-env-changed=CAPBOX_GUEST");
    println!("cargo:rerun-if-env-changed=CAPBOX_GUEST_TARGET_DIR");
    println!("cargo:rerun-if-env-changed=CAPBOX_GUEST_SIMD");
    if let Some(prebuilt) = env::var_os("CAPBOX_GUEST").filter(|p| !p.is_empty()) {
        let prebuilt = PathBuf::from(prebuilt);
        if !prebuilt.is_file() {
            panic!("CAPBOX_GUEST={} is not a file", prebuilt.display());
        }
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        println!("cargo:rustc-env=CAPBOX_GUEST_ELF={}", prebuilt.display());
        return;
    }

    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let root = manifest_dir
        .parent()
        .expect("host/ has a parent")
        .to_path_buf();
    let guest_dir = root.join("guest");
    for watched in [
        "guest/src",
        "guest/Cargo.toml",
        "guest/Cargo.lock",
        "guest/.cargo",
        "shared/src",
        "shared/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    ensure_target();

    let target_dir = env::var_os("CAPBOX_GUEST_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("guest"));
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&guest_dir)
        .args(["build", "--release", "--target", GUEST_TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    // Opt-in SIMD guest (BLAKE3's SSE4.1 code for Data pages); the host
    // refuses it on a CPU without SSE4.1 (guest_elf.rs).
    if env::var_os("CAPBOX_GUEST_SIMD").is_some_and(|v| v == "1") {
        cmd.args(["--features", "simd"]);
    }
    clear_outer_cargo_env(&mut cmd);
    cmd.env("CARGO_ENCODED_RUSTFLAGS", GUEST_RUSTFLAGS.join("\x1f"));
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the guest: {e}"));
    if !status.success() {
        panic!(
            "building the guest kernel failed ({status}); \
             try `scripts/build-guest.sh` to see the error on its own"
        );
    }
    let elf = target_dir
        .join(GUEST_TARGET)
        .join("release")
        .join("capbox-guest");
    if !elf.is_file() {
        panic!("the guest build did not produce {}", elf.display());
    }
    println!("cargo:rustc-env=CAPBOX_GUEST_ELF={}", elf.display());
}

/// The outer cargo's settings must not leak into the guest build: its
/// rustflags, target, target dir, profile and the variables cargo sets for
/// build scripts.
fn clear_outer_cargo_env(cmd: &mut Command) {
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let leaks = (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || matches!(
                key,
                "RUSTFLAGS"
                    | "RUSTDOCFLAGS"
                    | "RUSTC"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "RUSTC_LINKER"
                    | "RUSTDOC"
                    | "TARGET"
                    | "HOST"
                    | "OUT_DIR"
                    | "PROFILE"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "NUM_JOBS"
                    | "DEP_TARGET"
            );
        if leaks {
            cmd.env_remove(key);
        }
    }
}

/// Installs the guest's target when missing (RUSTUP_AUTO_INSTALL=0 machines
/// do not add it implicitly).
fn ensure_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = sysroot
        .as_deref()
        .map(|s| target_libs(s).is_dir())
        .unwrap_or(false);
    if installed {
        return;
    }
    println!(
        "cargo:warning=capbox: the Rust target {GUEST_TARGET} is missing; running `rustup target add {GUEST_TARGET}`"
    );
    let ok = Command::new("rustup")
        .args(["target", "add", GUEST_TARGET])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        panic!(
            "the guest needs the Rust target {GUEST_TARGET}; install it with `rustup target add {GUEST_TARGET}`"
        );
    }
}

fn target_libs(sysroot: &Path) -> PathBuf {
    sysroot.join("lib").join("rustlib").join(GUEST_TARGET)
}
