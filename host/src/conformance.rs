//! Runs the w3f PVM test vectors (JSON, schema v0.4, plus the `out-of-gas`
//! and `host` statuses of newer sets) against the interpreter and reports
//! every difference.
//!
//! A vector that cannot be read, parsed or set up is a failure with its
//! reason ([`VectorError`]); only a directory that cannot be listed (or
//! holds no `*.json`) stops a run ([`ConformanceError`]). `--time` measures
//! the interpretation alone ([`time_vector`]): the JSON is parsed, the blob
//! decoded and each run's memory built before the clock starts.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use capbox_shared::pvm::{Access, Exit, Machine, Memory, MemoryError, PageMapEntry, Program};
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

/// A vector's expected exit status. The v0.4 set uses the first three;
/// newer sets add `out-of-gas` and `host` (an `ecalli`), and v0.3 called a
/// panic `trap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Panic (`trap`, invalid jump, …).
    #[serde(alias = "trap")]
    Panic,
    /// Regular halt.
    Halt,
    /// Page fault.
    PageFault,
    /// The gas ran out ([`Exit::OutOfGas`]).
    OutOfGas,
    /// A host call (`ecalli`, [`Exit::HostCall`]); the expected `pc` is the
    /// `ecalli`'s own, as in the Graypaper's `Ψ` (capbox's `run` returns
    /// with `pc` past it, departure 5: the tool compares the `ecalli`'s).
    Host,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Panic => "panic",
            Status::Halt => "halt",
            Status::PageFault => "page-fault",
            Status::OutOfGas => "out-of-gas",
            Status::Host => "host",
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

/// Why one vector could not be run: counted as a failure, the run goes on.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// The file cannot be read.
    #[error("cannot read: {0}")]
    ReadFile(#[source] std::io::Error),
    /// Not valid JSON for the schema (truncated, a missing field, an
    /// unknown `expected-status`, …).
    #[error("invalid vector: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The vector's initial page map or memory cannot be set up.
    #[error("invalid initial state: {0}")]
    InvalidState(#[source] MemoryError),
}

/// The outcome of one vector file.
#[derive(Debug)]
pub struct VectorResult {
    /// The vector file.
    pub file: PathBuf,
    /// The vector's name (the file stem when it could not be read).
    pub name: String,
    /// Why the vector could not be run (a failure), if so.
    pub error: Option<VectorError>,
    /// The fields that differ (empty when it passed or could not be run).
    pub mismatches: Vec<Mismatch>,
    /// With [`RunOptions::timing_runs`]: the median interpretation time.
    pub time: Option<Duration>,
}

impl VectorResult {
    /// Whether the vector was run and matched.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.mismatches.is_empty()
    }
}

/// The outcome of a whole directory.
#[derive(Debug, Default)]
pub struct Report {
    /// One entry per vector, in file-name order.
    pub results: Vec<VectorResult>,
}

impl Report {
    /// Vectors that passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed()).count()
    }

    /// Vectors that failed (mismatched or could not be run).
    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
}

/// Why no vector could be run at all.
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
}

/// How to run each vector.
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    /// Run in slices of this much gas ([`Machine::run_sliced`], resumed
    /// after each [`Exit::Slice`]); `u64::MAX`: unsliced.
    pub slice: u64,
    /// When non-zero, also time the interpretation this many times and
    /// report the median ([`VectorResult::time`]).
    pub timing_runs: u32,
    /// Run the program compiled to machine code
    /// ([`Program::compile_native`], x86-64 Linux) instead of interpreted.
    pub native: bool,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            slice: u64::MAX,
            timing_runs: 0,
            native: false,
        }
    }
}

/// The `*.json` files in `dir`, sorted by name.
pub fn list_vectors(dir: &Path) -> Result<Vec<PathBuf>, ConformanceError> {
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
    Ok(files)
}

/// Runs every `*.json` vector in `dir` (sorted by file name).
pub fn run_dir(dir: &Path) -> Result<Report, ConformanceError> {
    run_dir_sliced(dir, u64::MAX)
}

/// [`run_dir`] with every run sliced into `slice`-gas pieces: the results
/// must be the same as unsliced.
pub fn run_dir_sliced(dir: &Path, slice: u64) -> Result<Report, ConformanceError> {
    run_dir_with(
        dir,
        &RunOptions {
            slice,
            ..RunOptions::default()
        },
    )
}

/// [`run_dir`] with `options`.
pub fn run_dir_with(dir: &Path, options: &RunOptions) -> Result<Report, ConformanceError> {
    let results = list_vectors(dir)?
        .into_iter()
        .map(|file| run_file(&file, options))
        .collect();
    Ok(Report { results })
}

/// Reads and parses one vector file.
pub fn load_vector(file: &Path) -> Result<Vector, VectorError> {
    let text = fs::read_to_string(file).map_err(VectorError::ReadFile)?;
    serde_json::from_str(&text).map_err(VectorError::InvalidJson)
}

/// Runs one vector file; a file that cannot be read or parsed is a failed
/// result with its reason, never an error.
pub fn run_file(file: &Path, options: &RunOptions) -> VectorResult {
    let mut result = VectorResult {
        file: file.to_path_buf(),
        name: file
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
        error: None,
        mismatches: Vec::new(),
        time: None,
    };
    let vector = match load_vector(file) {
        Ok(vector) => vector,
        Err(error) => {
            result.error = Some(error);
            return result;
        }
    };
    result.name.clone_from(&vector.name);
    match run_vector_with(&vector, options.slice, options.native) {
        Ok(mismatches) => result.mismatches = mismatches,
        Err(error) => {
            result.error = Some(VectorError::InvalidState(error));
            return result;
        }
    }
    if options.timing_runs > 0 {
        result.time = time_vector(&vector, options.slice, options.timing_runs, options.native);
    }
    result
}

/// The median of `runs` timings of the interpretation alone: the blob is
/// decoded and each run's memory built before its clock starts. `None`
/// when the initial state is invalid.
pub fn time_vector(vector: &Vector, slice: u64, runs: u32, native: bool) -> Option<Duration> {
    let program = decode(vector, native);
    let mut times = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let mut machine = initial_machine(vector).ok()?;
        let start = Instant::now();
        if let Some(program) = &program {
            std::hint::black_box(run_to_end(&mut machine, program, slice));
        }
        times.push(start.elapsed());
    }
    times.sort();
    times.get(times.len() / 2).copied()
}

fn run_to_end(machine: &mut Machine, program: &Program, slice: u64) -> Exit {
    loop {
        match machine.run_sliced(program, slice) {
            Exit::Slice => continue,
            exit => break exit,
        }
    }
}

fn initial_machine(vector: &Vector) -> Result<Machine, MemoryError> {
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
    let mut memory = Memory::from_page_map(&entries)?;
    for chunk in &vector.initial_memory {
        memory.initialize(chunk.address, &chunk.contents)?;
    }
    Ok(Machine::new(
        vector.initial_regs,
        vector.initial_pc,
        vector.initial_gas,
        memory,
    ))
}

/// Runs one vector; returns the differences, or why its initial state is
/// invalid.
pub fn run_vector(vector: &Vector) -> Result<Vec<Mismatch>, MemoryError> {
    run_vector_sliced(vector, u64::MAX)
}

/// [`run_vector`], run in slices of `slice` gas.
pub fn run_vector_sliced(vector: &Vector, slice: u64) -> Result<Vec<Mismatch>, MemoryError> {
    run_vector_with(vector, slice, false)
}

/// The vector's program decoded (`None`: `deblob` fails) and, if `native`,
/// compiled to machine code where this build can (x86-64 Linux; a program
/// that cannot be compiled runs interpreted, which only a wrong report of
/// the speed could tell).
fn decode(vector: &Vector, native: bool) -> Option<Program> {
    let program = Program::from_blob(&vector.program).ok()?;
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    if native {
        let _ = program.compile_native();
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    let _ = native;
    Some(program)
}

/// [`run_vector_sliced`], the program compiled to machine code if
/// `native` ([`RunOptions::native`]).
pub fn run_vector_with(
    vector: &Vector,
    slice: u64,
    native: bool,
) -> Result<Vec<Mismatch>, MemoryError> {
    let mut machine = initial_machine(vector)?;
    // The Graypaper's Ψ panics without running when `deblob` fails.
    let program = decode(vector, native);
    let exit = match &program {
        Some(program) => run_to_end(&mut machine, program, slice),
        None => Exit::Panic,
    };
    // `Ψ` leaves `pc` on the `ecalli`; `run` returns past it.
    let pc = match (exit, &program) {
        (Exit::HostCall(_), Some(program)) => {
            program.instruction_before(machine.pc).unwrap_or(machine.pc)
        }
        _ => machine.pc,
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
        Exit::Halt => (Status::Halt.to_string(), None),
        Exit::Panic => (Status::Panic.to_string(), None),
        Exit::PageFault(page) => (Status::PageFault.to_string(), Some(page)),
        Exit::OutOfGas => (Status::OutOfGas.to_string(), None),
        Exit::HostCall(_) => (Status::Host.to_string(), None),
        // Resumed in `run_to_end`: never the final exit.
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
    check("pc", vector.expected_pc.to_string(), pc.to_string());
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

/// One result as human-readable `FAIL` lines (none when it passed).
pub fn failure_lines(result: &VectorResult) -> Vec<String> {
    let file = result
        .file
        .file_name()
        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    let mut lines = Vec::new();
    if let Some(error) = &result.error {
        lines.push(format!("FAIL {file}: {error}"));
    }
    for m in &result.mismatches {
        lines.push(format!(
            "FAIL {}: {}: expected {}, got {}",
            result.name, m.field, m.expected, m.got
        ));
    }
    lines
}

/// Prints each failure and a summary line; returns whether all passed.
pub fn print_report(report: &Report) -> bool {
    for result in &report.results {
        for line in failure_lines(result) {
            println!("{line}");
        }
    }
    println!("{} passed, {} failed", report.passed(), report.failed());
    report.failed() == 0
}
