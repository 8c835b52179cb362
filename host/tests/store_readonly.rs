//! Commands that only read a store create nothing and need no write
//! access.

use std::path::Path;
use std::process::{Command, Output};

fn capbox_in(dir: &Path, store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capbox"))
        .args(args)
        .current_dir(dir)
        .env("CAPBOX_STORE", store)
        .output()
        .unwrap()
}

const READERS: &[&[&str]] = &[
    &["store", "stats"],
    &["store", "list"],
    &["store", "heads"],
    &["store", "verify"],
    &["heads"],
    &["log", "kv"],
];

#[test]
fn reading_a_missing_store_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("nowhere");
    for args in READERS {
        let out = capbox_in(dir.path(), &store, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains("no capbox store at"), "{args:?}: {stderr}");
    }
    let hash = "00".repeat(32);
    let out = capbox_in(dir.path(), &store, &["inspect", &hash]);
    assert!(!out.status.success());
    // `kv get` on no store reads an empty kv.
    let out = capbox_in(
        dir.path(),
        &store,
        &["kv", "get", "1", "--backend", "local"],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ERR_EMPTY"),
        "{out:?}"
    );
    assert!(!store.exists(), "a read created the store");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Run as an unprivileged user (root ignores file permissions, so the test
/// switches to `nobody` with setpriv; it is skipped, saying so, when it
/// cannot).
#[test]
fn a_store_the_user_can_only_read_can_be_read() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc_geteuid() } == 0;
    let setpriv = Path::new("/usr/bin/setpriv");
    if !root || !setpriv.exists() {
        eprintln!(
            "\n*** SKIPPED a_store_the_user_can_only_read_can_be_read: needs root and setpriv \
             to run as another user ***\n"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let out = capbox_in(
        dir.path(),
        &store,
        &["kv", "put", "1", "--value", "hi", "--backend", "local"],
    );
    assert!(out.status.success(), "{out:?}");
    let chmod = Command::new("chmod")
        .args(["-R", "a+rX,a-w"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(chmod.success());
    let as_nobody = |args: &[&str]| {
        Command::new(setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_capbox"))
            .args(args)
            .current_dir(dir.path())
            .env("CAPBOX_STORE", &store)
            .output()
            .unwrap()
    };
    for args in READERS {
        let out = as_nobody(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let out = as_nobody(&["kv", "get", "1", "--backend", "local", "--json"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"value\": \"hi\""),
        "{out:?}"
    );
    // Writing is refused by the file system, with the path named.
    let out = as_nobody(&["kv", "put", "2", "--value", "x", "--backend", "local"]);
    assert!(!out.status.success());
    let _ = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(dir.path())
        .status();
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
