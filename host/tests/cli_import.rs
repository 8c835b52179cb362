//! `capbox import` and `capbox run --program X.polkavm`: the example
//! programs end to end, and one clear error line for each bad file.

use std::path::PathBuf;
use std::process::{Command, Output};

fn capbox(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capbox"))
        .args(args)
        .env("CAPBOX_STORE", dir.join("store"))
        .output()
        .expect("the capbox binary runs")
}

fn program(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../programs"))
        .join(format!("{name}.polkavm"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn import_writes_an_image_that_publish_and_run_take() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("counter.image");
    let counter = program("counter");
    let o = capbox(
        &[
            "import",
            counter.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    for line in ["endpoint", "increment", "image: ", "wrote"] {
        assert!(stdout.contains(line), "{stdout}");
    }
    let hash = stdout
        .lines()
        .find_map(|l| l.strip_prefix("image: "))
        .unwrap()
        .to_string();
    let o = capbox(&["publish", out.to_str().unwrap()], dir.path());
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains(&hash), "{}", text(&o.stdout));
    // `run --program` takes the blob and the encoding alike, and the
    // endpoint by name or number: increment(5) twice from a fresh instance.
    let increment = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("endpoint ")
                .filter(|l| l.contains(": increment "))
        })
        .and_then(|l| l.split(':').next())
        .unwrap()
        .to_string();
    for (file, endpoint) in [
        (counter.to_str().unwrap(), "increment"),
        (out.to_str().unwrap(), increment.as_str()),
    ] {
        let o = capbox(
            &[
                "run",
                "--backend",
                "local",
                "--program",
                file,
                "--endpoint",
                endpoint,
                "--times",
                "2",
                "5",
            ],
            dir.path(),
        );
        let stdout = text(&o.stdout);
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(stdout.contains("call 1: exit Halt r7=10 "), "{stdout}");
    }
    // An unknown name lists the program's names.
    let o = capbox(
        &[
            "run",
            "--backend",
            "local",
            "--program",
            counter.to_str().unwrap(),
            "--endpoint",
            "decrement",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    let stderr = text(&o.stderr);
    assert!(
        stderr.contains("no endpoint named `decrement`") && stderr.contains("increment"),
        "{stderr}"
    );
}

#[test]
fn bad_files_give_one_error_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let counter = std::fs::read(program("counter")).unwrap();
    let mut latest = counter.clone();
    latest[4] = 2;
    let mut unknown = std::fs::read(program("kv")).unwrap();
    let at = unknown
        .windows(16)
        .position(|w| w == b"capbox_slot_copy")
        .unwrap();
    unknown[at..at + 16].copy_from_slice(b"capbox_slot_cpy_");
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("latest.polkavm", latest, "Latest64"),
        ("unknown.polkavm", unknown, "capbox_slot_cpy_"),
        (
            "cut.polkavm",
            counter[..counter.len() / 2].to_vec(),
            "truncated",
        ),
        (
            "random.polkavm",
            (0..999u32).map(|i| (i * 37 % 251) as u8).collect(),
            "not a PolkaVM",
        ),
    ];
    for (name, bytes, says) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let o = capbox(&["import", path.to_str().unwrap()], dir.path());
        assert_eq!(o.status.code(), Some(2), "{name}");
        let stderr = text(&o.stderr);
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(
            stderr.starts_with("error: cannot import") && stderr.contains(says),
            "{name}: {stderr}"
        );
        assert!(o.stdout.is_empty(), "{name}");
    }
}

/// A Rust program kept on a head: `capbox new X.polkavm`, then `capbox
/// invoke HEAD --endpoint NAME` by its export names, the count carried
/// across processes; an unknown name lists the real ones.
#[test]
fn rust_program_on_a_head_by_endpoint_name() {
    let dir = tempfile::tempdir().unwrap();
    let counter = program("counter");
    let o = capbox(
        &[
            "new",
            counter.to_str().unwrap(),
            "--head",
            "c",
            "--backend",
            "local",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let invoke = |endpoint: &str, arg: &str| {
        let args = [
            "invoke",
            "c",
            "--backend",
            "local",
            "--json",
            "--endpoint",
            endpoint,
            arg,
        ];
        capbox(&args, dir.path())
    };
    for expected in ["\"r7\":5,", "\"r7\":10,"] {
        let o = invoke("increment", "5");
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(text(&o.stdout).contains(expected), "{}", text(&o.stdout));
    }
    let o = invoke("get", "0");
    assert!(
        text(&o.stdout).contains("\"r7\":10,"),
        "{}",
        text(&o.stdout)
    );
    let o = invoke("nosuch", "0");
    assert!(!o.status.success());
    let stderr = text(&o.stderr);
    assert!(stderr.contains("no endpoint named `nosuch`"), "{stderr}");
    assert!(stderr.contains("increment"), "{stderr}");
}
