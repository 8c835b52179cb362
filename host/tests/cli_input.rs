//! `capbox run --input FILE` (and `-` for standard input), end to end
//! through the binary on the local backend.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use capbox::shared::kernel::ops::{KernelOp, MAX_INPUT_LEN};
use capbox::shared::pvm::asm::{ProgramBuilder, Reg};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capbox-cli-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `capbox ARGS…` with `stdin` on its standard input.
fn capbox(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_capbox"))
        .args(args)
        .env("CAPBOX_STORE", scratch("store"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the capbox binary runs");
    // The binary may refuse before reading all of it.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

/// A program blob (`run --program`: endpoint pc 0, a 64 KiB stack) that
/// outputs its input as it is (up to 32 KiB); φ7 = the input's length.
/// Each test writes its own copy (`name`): the tests run in parallel.
fn echo_program(name: &str) -> PathBuf {
    let buf = -0x8000i32;
    let mut b = ProgramBuilder::new();
    b.ecalli(KernelOp::InputLen.number())
        .move_reg(Reg::R10, Reg::R7)
        .load_imm(Reg::R7, 0u32)
        .add_imm_64(Reg::R8, Reg::R1, buf)
        .move_reg(Reg::R9, Reg::R10)
        .ecalli(KernelOp::InputRead.number())
        .add_imm_64(Reg::R7, Reg::R1, buf)
        .move_reg(Reg::R8, Reg::R10)
        .ecalli(KernelOp::SetOutput.number())
        .move_reg(Reg::R7, Reg::R10)
        .jump_ind(Reg::R0, 0u32);
    let path = scratch(&format!("{name}.blob"));
    std::fs::write(&path, b.build().unwrap()).unwrap();
    path
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `capbox run --backend local --json --program echo --input INPUT`.
fn run_echo(test: &str, input: &str, stdin: &[u8]) -> Output {
    let program = echo_program(test);
    capbox(
        &[
            "run",
            "--backend",
            "local",
            "--json",
            "--program",
            program.to_str().unwrap(),
            "--input",
            input,
        ],
        stdin,
    )
}

fn stdout_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn input_from_a_file_reaches_the_program() {
    let file = scratch("hello.txt");
    std::fs::write(&file, b"hello, input").unwrap();
    let json = stdout_of(&run_echo("file", file.to_str().unwrap(), b""));
    assert!(json.contains("\"exit\":\"Halt\""), "{json}");
    assert!(json.contains("\"r7\":12,"), "{json}");
    assert!(
        json.contains(&format!("\"output\":\"{}\"", hex(b"hello, input"))),
        "{json}"
    );
}

#[test]
fn input_from_stdin_and_empty_input() {
    let json = stdout_of(&run_echo("stdin", "-", b"from stdin"));
    assert!(
        json.contains(&format!("\"output\":\"{}\"", hex(b"from stdin"))),
        "{json}"
    );
    let json = stdout_of(&run_echo("stdin", "-", b""));
    assert!(json.contains("\"r7\":0,"), "{json}");
    assert!(json.contains("\"output\":\"\""), "{json}");
}

#[test]
fn missing_or_oversize_input_is_a_clear_error() {
    let missing = scratch("no-such-file");
    let out = run_echo("limits", missing.to_str().unwrap(), b"");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open the input file"), "{err}");
    assert!(err.contains("no-such-file"), "{err}");

    let big = scratch("big.bin");
    std::fs::write(&big, vec![0u8; MAX_INPUT_LEN as usize + 1]).unwrap();
    for (input, stdin) in [
        (big.to_str().unwrap(), Vec::new()),
        ("-", vec![0u8; MAX_INPUT_LEN as usize + 1]),
    ] {
        let out = run_echo("limits", input, &stdin);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("longer than 1048576 bytes"), "{err}");
    }
    // Exactly 1 MiB is fine (the program echoes only its length here).
    let max = scratch("max.bin");
    std::fs::write(&max, vec![1u8; MAX_INPUT_LEN as usize]).unwrap();
    let program = echo_program("limits");
    let out = capbox(
        &[
            "run",
            "--backend",
            "local",
            "--json",
            "--program",
            program.to_str().unwrap(),
            "--input",
            max.to_str().unwrap(),
        ],
        b"",
    );
    // The echo program's 32 KiB buffer cannot take it (its input_read
    // fails), but the input was accepted and its length is φ7.
    let json = stdout_of(&out);
    assert!(json.contains("\"r7\":1048576,"), "{json}");
}

#[test]
fn help_describes_input() {
    let out = capbox(&["run", "--help"], b"");
    let help = stdout_of(&out);
    assert!(help.contains("--input <FILE>"), "{help}");
    assert!(help.contains("standard input"), "{help}");
    assert!(help.contains("1 MiB"), "{help}");
}
