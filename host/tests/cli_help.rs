//! Every subcommand's `--help` shows at least one example.

use std::process::Command;

#[test]
fn every_subcommand_help_has_an_example() {
    let top = Command::new(env!("CARGO_BIN_EXE_capbox"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&top.stdout).into_owned();
    // The subcommands, as `--help` lists them ("  name  description").
    let commands: Vec<&str> = text
        .split("Commands:")
        .nth(1)
        .expect("a Commands section")
        .lines()
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .collect();
    assert!(commands.len() >= 14, "{commands:?}");
    for command in commands {
        let out = Command::new(env!("CARGO_BIN_EXE_capbox"))
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}: {out:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Example"),
            "`capbox {command} --help` has no example:\n{help}"
        );
    }
}

/// `run --help` lists the kernel ops with their numbers and arguments
/// (from the op table) and the memory layout.
#[test]
fn run_help_shows_the_kernel_ops_and_the_memory_layout() {
    let out = Command::new(env!("CARGO_BIN_EXE_capbox"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for op in capbox::shared::kernel::KernelOp::ALL {
        let line = format!(
            "{:>2} {:<12} {}",
            op.number(),
            op.name(),
            op.args().join(", ")
        );
        assert!(help.contains(line.trim_end()), "no `{line}` in:\n{help}");
    }
    assert!(help.contains("0x20000"), "{help}");
}
