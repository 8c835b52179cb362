//! `examples/counter.pvmasm`: a whole image in assembly (image directives)
//! through `capbox run --program` and `capbox asm --image`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn capbox(args: &[&str], dir: &Path) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_capbox"))
        .args(args)
        .env("CAPBOX_STORE", dir.join("store"))
        .output()
        .expect("the capbox binary runs");
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn r7s(o: &Output) -> Vec<u64> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["r7"].as_u64())
        .collect()
}

#[test]
fn the_counter_example_keeps_its_state_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let source = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/counter.pvmasm"
    ));
    let source = source.to_str().unwrap();
    let run = |program: &str, endpoint: &str, args: &[&str]| {
        let mut all = vec![
            "run",
            "--backend",
            "local",
            "--json",
            "--program",
            program,
            "--endpoint",
            endpoint,
            "--times",
            "2",
        ];
        all.extend_from_slice(args);
        r7s(&capbox(&all, dir.path()))
    };
    assert_eq!(run(source, "0", &["5"]), [5, 10]);
    assert_eq!(
        run(source, "2", &[]),
        [100, 200],
        "the step comes from ro data"
    );
    let image = dir.path().join("counter.image");
    capbox(
        &["asm", "--image", source, "-o", image.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(run(image.to_str().unwrap(), "0", &["7"]), [7, 14]);
    let o = capbox(&["publish", image.to_str().unwrap()], dir.path());
    assert!(!o.stdout.is_empty());
}
