//! `capbox asm`, `capbox disasm` and `capbox run --program` with assembly
//! text, end to end through the binary.

use std::path::PathBuf;
use std::process::{Command, Output};

fn capbox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capbox"))
        .args(args)
        .env("CAPBOX_STORE", scratch("store"))
        .output()
        .expect("the capbox binary runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capbox-cli-asm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `capbox run --backend local --json --program SRC ARGS…`: its stdout, after
/// asserting success.
fn run_local_json(src: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["run", "--backend", "local", "--json", "--program"];
    all.push(src.to_str().unwrap());
    all.extend_from_slice(args);
    let out = capbox(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const ADD: &str = "// r7 = r7 + r8, then halt\nr9 = r7 + r8\nr7 = r9\njump [r0 + 0]\n";

#[test]
fn asm_then_disasm_round_trips() {
    let src = scratch("add.pvmasm");
    let blob = scratch("add.blob");
    std::fs::write(&src, ADD).unwrap();
    let out = capbox(&["asm", src.to_str().unwrap(), "-o", blob.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = capbox(&["disasm", blob.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("r9 = r7 + r8"), "{text}");
    assert!(text.contains("jump [r0 + 0]"), "{text}");
    // The disassembly assembles back to the same bytes.
    let again = scratch("again.pvmasm");
    std::fs::write(&again, &text).unwrap();
    let out = capbox(&["asm", again.to_str().unwrap()]);
    let hex: String = std::fs::read(&blob)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), hex);
}

#[test]
fn run_accepts_assembly_text() {
    let src = scratch("run.pvmasm");
    std::fs::write(&src, ADD).unwrap();
    let stdout = run_local_json(&src, &["30", "12"]);
    assert!(stdout.contains("\"r7\":42"), "{stdout}");
}

#[test]
fn bad_assembly_names_the_line() {
    let src = scratch("bad.s");
    std::fs::write(&src, "r7 = r7\nr9 = r7 +\n").unwrap();
    let out = capbox(&[
        "run",
        "--backend",
        "local",
        "--program",
        src.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("line 2"), "{stderr}");
}

#[test]
fn bad_blob_is_refused_before_running() {
    let blob = scratch("garbage.blob");
    std::fs::write(&blob, b"garbage").unwrap();
    for args in [
        vec!["disasm", blob.to_str().unwrap()],
        vec![
            "run",
            "--backend",
            "local",
            "--program",
            blob.to_str().unwrap(),
        ],
    ] {
        let out = capbox(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("program blob"), "{stderr}");
    }
}

#[test]
fn a_huge_sbrk_is_refused_not_allocated() {
    // One instruction asks for 3.75 GiB of heap: the kernel's per-invocation
    // budget refuses it (sbrk returns 0) instead of mapping it.
    let src = scratch("sbrk.pvmasm");
    std::fs::write(
        &src,
        "r7 = 0xF0000000\nr8 = sbrk(r7)\nr7 = r8\njump [r0 + 0]\n",
    )
    .unwrap();
    let stdout = run_local_json(&src, &[]);
    assert!(stdout.contains("\"r7\":0"), "{stdout}");
}

/// The loop a new user writes first (a label right after a non-terminator)
/// runs and halts: the assembler starts a basic block there and says so.
/// An empty file is refused with a reason.
#[test]
fn first_programs_run_as_written_and_empty_ones_are_refused() {
    let src = scratch("countdown.pvmasm");
    std::fs::write(
        &src,
        "r7 = 5\nr8 = 0\n@loop:\nr8 = r8 + r7\nr7 = r7 - 1\njump @loop if r7 != 0\nr7 = r8\nhalt\n",
    )
    .unwrap();
    let mut all = vec!["run", "--backend", "local", "--json", "--program"];
    all.push(src.to_str().unwrap());
    let out = capbox(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("inserted `fallthrough` before @loop"),
        "{stderr}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("\"exit\":\"Halt\""), "{stdout}");
    assert!(stdout.contains("\"r7\":15"), "{stdout}");

    for (name, text) in [("empty.pvmasm", ""), ("comments.pvmasm", "// nothing\n\n")] {
        let src = scratch(name);
        std::fs::write(&src, text).unwrap();
        let out = capbox(&["asm", src.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("has no instructions"), "{stderr}");
    }
}

/// `--gas -1` gets a reason (not clap's `-- -1` tip, which then fails),
/// `--gas max` works, register arguments may be negative or hex, and a
/// program that runs off the end of its code is called out.
#[test]
fn numbers_as_people_write_them_and_running_off_the_end() {
    let out = capbox(&["run", "--backend", "local", "--gas", "-1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("gas cannot be negative"), "{stderr}");
    assert!(!stderr.contains("'-- -1'"), "{stderr}");

    let src = scratch("regs.pvmasm");
    std::fs::write(&src, "r7 = r7 + r8\nhalt\n").unwrap();
    let mut all = vec!["run", "--backend", "local", "--json", "--gas", "max"];
    all.extend(["--program", src.to_str().unwrap(), "-1", "0x10"]);
    let out = capbox(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"r7\":15,"), "{stdout}");

    let src = scratch("off_end.pvmasm");
    std::fs::write(&src, "r7 = 1\n").unwrap();
    let out = capbox(&[
        "run",
        "--backend",
        "local",
        "--program",
        src.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("exit Panic"), "{stdout}");
    assert!(
        stdout.contains("continue past the end of the code"),
        "{stdout}"
    );
    // A program that ends properly gets no such note.
    std::fs::write(&src, "r7 = 1\ntrap\n").unwrap();
    let out = capbox(&[
        "run",
        "--backend",
        "local",
        "--program",
        src.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("exit Panic") && !stdout.contains("past the end"),
        "{stdout}"
    );
}

/// `capbox demo --store DIR` keeps the demo's state there.
#[test]
fn demo_takes_a_store_directory() {
    let dir = scratch("demo-store-dir");
    let out = capbox(&[
        "demo",
        "--backend",
        "local",
        "--store",
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("heads").join("demo").exists(), "{}", dir.display());
}
