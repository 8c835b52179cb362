//! Runs the w3f PVM test vectors (JSON, schema v0.4) against the
//! interpreter and reports every difference.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use capbox_shared::pvm::{Access, Exit, Machine, Memory, PageMapEntry, Program};
use serde::Deserialize;

/// One test vector, as in the vectors' `schema.json`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Vector {
    /// Test name.
    pub name: String,
    /// Registers before.
    pub initial_regs: [u64; 13],
    /// Program counter before.
    pub initial_pc: u32,
    /// Mapped pages.
    pub initial_page_map: Vec<PageMapJson>,
    /// Initial memory contents.
    pub initial_memory: Vec<MemoryChunk>,
    /// Gas before.
    pub initial_gas: i64,
    /// The program blob (`deblob` format).
    pub program: Vec<u8>,
    /// How the run must end.
    pub expected_status: Status,
    /// Registers after.
    pub expected_regs: [u64; 13],
    /// Program counter after.
    pub expected_pc: u32,
    /// Memory contents after (everything else mapped must be zero).
    pub expected_memory: Vec<MemoryChunk>,
    /// Gas after.
    pub expected_gas: i64,
    /// Faulting page for `page-fault`.
    #[serde(default)]
    pub expected_page_fault_address: Option<u32>,
}

/// A page-map entry of a vector.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PageMapJson {
    /// Start address.
    pub address: u32,
    /// Length in octets.
    pub length: u32,
    /// Writable (else read-only).
    pub is_writable: bool,
}

/// Octets at an address.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryChunk {
    /// Start address.
    pub address: u32,
    /// The octets.
    pub contents: Vec<u8>,
}

/// A vector's expected exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Panic (`trap`, invalid jump, …).
    Panic,
    /// Regular halt.
    Halt,
    /// Page fault.
    PageFault,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Panic => "panic",
            Status::Halt => "halt",
            Status::PageFault => "page-fault",
        })
    }
}

/// One field that differs from the vector's expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Which field (`status`, `pc`, `gas`, `r7`, `memory@0x20000`, …).
    pub field: String,
    /// The vector's value.
    pub expected: String,
    /// The interpreter's value.
    pub got: String,
}

/// The outcome of one vector.
#[derive(Clone, Debug)]
pub struct VectorResult {
    /// The vector's name.
    pub name: String,
    /// Empty when the vector passed.
    pub mismatches: Vec<Mismatch>,
}

/// The outcome of a whole directory.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// One entry per vector, in file-name order.
    pub results: Vec<VectorResult>,
}

impl Report {
    /// Vectors that passed.
    pub fn passed(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.mismatches.is_empty())
            .count()
    }

    /// Vectors that failed.
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
}

/// Why vectors could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    /// The directory does not exist or cannot be listed.
    #[error("cannot read test-vector directory {path}: {source}")]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The directory holds no `*.json` file.
    #[error("test-vector directory {0} contains no .json files")]
    Empty(PathBuf),
    /// A vector file cannot be read.
    #[error("cannot read test vector {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A vector file is not valid JSON for the schema.
    #[error("invalid test vector {path}: {source}")]
    InvalidJson {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A vector's initial memory cannot be set up.
    #[error("invalid test vector {path}: {reason}")]
    InvalidVector {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Runs every `*.json` vector in `dir` (sorted by file name).
pub fn run_dir(dir: &Path) -> Result<Report, ConformanceError> {
    run_dir_sliced(dir, u64::MAX)
}

/// [`run_dir`] with every run sliced into `slice`-gas pieces
/// ([`Machine::run_sliced`], resumed after each [`Exit::Slice`]): the
/// results must be the same as unsliced.
pub fn run_dir_sliced(dir: &Path, slice: u64) -> Result<Report, ConformanceError> {
    let read_dir = |source| ConformanceError::ReadDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir)? {
        let path = entry.map_err(read_dir)?.path();
        if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(ConformanceError::Empty(dir.to_path_buf()));
    }
    files.sort();
    let mut report = Report::default();
    for path in files {
        let text = fs::read_to_string(&path).map_err(|source| ConformanceError::ReadFile {
            path: path.clone(),
            source,
        })?;
        let vector: Vector =
            serde_json::from_str(&text).map_err(|source| ConformanceError::InvalidJson {
                path: path.clone(),
                source,
            })?;
        let mismatches = run_vector_sliced(&vector, slice)
            .map_err(|reason| ConformanceError::InvalidVector { path, reason })?;
        report.results.push(VectorResult {
            name: vector.name,
            mismatches,
        });
    }
    Ok(report)
}

/// Runs one vector; returns the differences, or why its initial state is
/// invalid.
pub fn run_vector(vector: &Vector) -> Result<Vec<Mismatch>, String> {
    run_vector_sliced(vector, u64::MAX)
}

/// [`run_vector`], run in slices of `slice` gas.
pub fn run_vector_sliced(vector: &Vector, slice: u64) -> Result<Vec<Mismatch>, String> {
    let entries: Vec<PageMapEntry> = vector
        .initial_page_map
        .iter()
        .map(|e| PageMapEntry {
            address: e.address,
            length: e.length,
            access: if e.is_writable {
                Access::Write
            } else {
                Access::Read
            },
        })
        .collect();
    let mut memory = Memory::from_page_map(&entries).map_err(|e| e.to_string())?;
    for chunk in &vector.initial_memory {
        memory
            .initialize(chunk.address, &chunk.contents)
            .map_err(|e| e.to_string())?;
    }
    let mut machine = Machine::new(
        vector.initial_regs,
        vector.initial_pc,
        vector.initial_gas,
        memory,
    );
    // The Graypaper's Ψ panics without running when `deblob` fails.
    let exit = match Program::from_blob(&vector.program) {
        Ok(program) => loop {
            match machine.run_sliced(&program, slice) {
                Exit::Slice => continue,
                exit => break exit,
            }
        },
        Err(_) => Exit::Panic,
    };

    let mut mismatches = Vec::new();
    let mut check = |field: &str, expected: String, got: String| {
        if expected != got {
            mismatches.push(Mismatch {
                field: field.to_owned(),
                expected,
                got,
            });
        }
    };
    let (status, fault) = match exit {
        Exit::Halt => ("halt".to_owned(), None),
        Exit::Panic => ("panic".to_owned(), None),
        Exit::PageFault(page) => ("page-fault".to_owned(), Some(page)),
        Exit::OutOfGas => ("out-of-gas".to_owned(), None),
        Exit::HostCall(n) => (format!("host-call {n}"), None),
        // Resumed above: never the final exit.
        Exit::Slice => ("slice".to_owned(), None),
    };
    check("status", vector.expected_status.to_string(), status);
    if vector.expected_status == Status::PageFault {
        check(
            "page-fault address",
            hex_opt(vector.expected_page_fault_address),
            hex_opt(fault),
        );
    }
    check("pc", vector.expected_pc.to_string(), machine.pc.to_string());
    check(
        "gas",
        vector.expected_gas.to_string(),
        machine.gas.to_string(),
    );
    for (i, (want, got)) in vector.expected_regs.iter().zip(machine.regs).enumerate() {
        check(&format!("r{i}"), format!("{want:#x}"), format!("{got:#x}"));
    }
    mismatches.extend(compare_memory(&machine.memory, &vector.expected_memory));
    Ok(mismatches)
}

fn hex_opt(value: Option<u32>) -> String {
    value.map_or_else(|| "none".to_owned(), |v| format!("{v:#x}"))
}

/// Every mapped octet must equal the expected chunks laid over zeros, and
/// every expected chunk must be mapped.
fn compare_memory(memory: &Memory, expected: &[MemoryChunk]) -> Vec<Mismatch> {
    let mut mismatches = Vec::new();
    for (base, _, actual) in memory.regions() {
        let mut want = vec![0u8; actual.len()];
        let end = u64::from(base) + actual.len() as u64;
        for chunk in expected {
            for (i, &byte) in chunk.contents.iter().enumerate() {
                let address = u64::from(chunk.address) + i as u64;
                if address >= u64::from(base) && address < end {
                    want[(address - u64::from(base)) as usize] = byte;
                }
            }
        }
        let differing: Vec<usize> = (0..want.len()).filter(|&i| want[i] != actual[i]).collect();
        if let Some(&first) = differing.first() {
            mismatches.push(Mismatch {
                field: format!(
                    "memory@{:#x} ({} octets differ)",
                    u64::from(base) + first as u64,
                    differing.len()
                ),
                expected: format!("{:#04x}", want[first]),
                got: format!("{:#04x}", actual[first]),
            });
        }
    }
    for chunk in expected {
        if !chunk.contents.is_empty() && !memory.is_readable(chunk.address, chunk.contents.len()) {
            mismatches.push(Mismatch {
                field: format!("memory@{:#x}", chunk.address),
                expected: format!("{} octets", chunk.contents.len()),
                got: "unmapped".to_owned(),
            });
        }
    }
    mismatches
}

/// Prints each failure and a summary line; returns whether all passed.
pub fn print_report(report: &Report) -> bool {
    for result in &report.results {
        for m in &result.mismatches {
            println!(
                "FAIL {}: {}: expected {}, got {}",
                result.name, m.field, m.expected, m.got
            );
        }
    }
    println!("{} passed, {} failed", report.passed(), report.failed());
    report.failed() == 0
}
