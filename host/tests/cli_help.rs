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
