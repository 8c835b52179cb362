//! Links a PolkaVM ELF (built for riscv64emac-unknown-none-polkavm) into a
//! program blob of the JAM instruction set (JamV1), which `capbox import`
//! reads. `polkatool link` can only write the Latest64 set.
//!
//! Usage: `capbox-program-linker IN.elf OUT.polkavm`

use std::process::ExitCode;

use polkavm_linker::{program_from_elf, Config, TargetInstructionSet};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = args.as_slice() else {
        eprintln!("usage: capbox-program-linker IN.elf OUT.polkavm");
        return ExitCode::from(2);
    };
    let elf = match std::fs::read(input) {
        Ok(elf) => elf,
        Err(e) => {
            eprintln!("error: reading {input}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut config = Config::default();
    // No debug sections: the blob is checked in and compared byte for byte.
    config.set_strip(true);
    let blob = match program_from_elf(config, TargetInstructionSet::JamV1, &elf) {
        Ok(blob) => blob,
        Err(e) => {
            eprintln!("error: linking {input}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::write(output, &blob) {
        eprintln!("error: writing {output}: {e}");
        return ExitCode::FAILURE;
    }
    println!("{output}: {} bytes", blob.len());
    ExitCode::SUCCESS
}
