//! The example programs in `examples/` run as their header comments (and
//! the README) say, through the binary on the local backend.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// `capbox run --backend local --json --program examples/NAME ARGS…` with
/// `input` on stdin (`--input -`) when given; the JSON outcome line.
fn run(name: &str, args: &[&str], input: Option<&[u8]>) -> serde_json::Value {
    let path = example(name);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_capbox"));
    cmd.args(["run", "--backend", "local", "--json", "--program"])
        .arg(&path)
        .args(args)
        .env(
            "CAPBOX_STORE",
            std::env::temp_dir().join("capbox-examples-store"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if input.is_some() {
        cmd.args(["--input", "-"]).stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("the capbox binary runs");
    if let Some(bytes) = input {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(line.lines().next().expect("an outcome line")).unwrap()
}

/// An example's name, arguments, stdin and expected outcome fields.
type Case = (
    &'static str,
    &'static [&'static str],
    Option<&'static [u8]>,
    Vec<(&'static str, serde_json::Value)>,
);

#[test]
fn every_example_does_what_it_says() {
    let cases: Vec<Case> = vec![
        ("add.pvmasm", &["30", "12"], None, vec![("r7", 42.into())]),
        ("loop.pvmasm", &["10"], None, vec![("r7", 55.into())]),
        ("memory.pvmasm", &["40", "2"], None, vec![("r7", 42.into())]),
        (
            "output.pvmasm",
            &[],
            None,
            vec![("r7", 0.into()), ("output", "68656c6c6f".into())],
        ),
        (
            "echo.pvmasm",
            &[],
            Some(b"hi"),
            vec![("output", "6869".into())],
        ),
        (
            "caps.pvmasm",
            &[],
            None,
            vec![("r7", 0.into()), ("r8", 16.into())],
        ),
        // Endpoint 0 (increment) by default; the rest in cli_asm_image.rs.
        ("counter.pvmasm", &["5"], None, vec![("r7", 5.into())]),
    ];
    let count = cases.len();
    for (name, args, input, expected) in cases {
        let outcome = run(name, args, input);
        assert_eq!(outcome["exit"], "Halt", "{name}: {outcome}");
        for (key, value) in &expected {
            assert_eq!(&outcome[*key], value, "{name}: {key} in {outcome}");
        }
    }
    // Every example is in the table above.
    let shipped = std::fs::read_dir(example(""))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "pvmasm")
        })
        .count();
    assert_eq!(shipped, count);
}
