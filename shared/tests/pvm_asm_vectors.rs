//! Disassembling every w3f vector program (when `CAPBOX_PVM_VECTORS` names
//! the vectors' `programs` directory, as CI sets it, or the directory above
//! it) gives text that assembles back to the same blob.

use capbox_shared::pvm::asm::{assemble, disassemble};

/// The `"program": [..]` array of a vector file (the files are plain JSON
/// with that one array of octets; no JSON library is needed for it).
fn program_octets(json: &str) -> Option<Vec<u8>> {
    let start = json.find("\"program\"")?;
    let open = start + json[start..].find('[')?;
    let close = open + json[open..].find(']')?;
    json[open + 1..close]
        .split(',')
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .map(|n| n.parse().ok())
        .collect()
}

#[test]
fn every_vector_program_round_trips() {
    let Ok(dir) = std::env::var("CAPBOX_PVM_VECTORS") else {
        eprintln!("CAPBOX_PVM_VECTORS not set: skipping");
        return;
    };
    let dir = std::path::Path::new(&dir);
    let programs = if dir.join("programs").is_dir() {
        dir.join("programs")
    } else {
        dir.to_path_buf()
    };
    let mut files: Vec<_> = std::fs::read_dir(&programs)
        .expect("vector directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no vectors in {}", programs.display());
    let mut raw_lines = Vec::new();
    for file in &files {
        let json = std::fs::read_to_string(file).expect("read vector");
        let blob =
            program_octets(&json).unwrap_or_else(|| panic!("{}: no program", file.display()));
        let text = disassemble(&blob).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let back = assemble(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", file.display()));
        assert_eq!(back, blob, "{}:\n{text}", file.display());
        for line in text.lines().filter(|l| l.trim_start().starts_with(".insn")) {
            raw_lines.push(format!(
                "{}: {}",
                file.file_name().unwrap().to_string_lossy(),
                line.trim()
            ));
        }
    }
    eprintln!(
        "{} vector programs round-trip; {} raw `.insn` lines:",
        files.len(),
        raw_lines.len()
    );
    for line in &raw_lines {
        eprintln!("  {line}");
    }
}
