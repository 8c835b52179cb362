//! Differential run of random *raw* programs against anan-as 1.2.0 (npm
//! `@fluffylabs/anan-as`, the AssemblyScript PVM of the typeberry client),
//! with PolkaVM 0.37 as the tie-breaker. Needs Node and the npm package, so
//! it is `#[ignore]`d and does nothing unless `CAPBOX_ANAN_AS=1`; run it
//! through `scripts/diff-anan-as.sh`, which installs the package under
//! `target/anan-as` and sets the environment:
//!
//! * `ANAN_AS_MODULE` — the package's `dist/build/release.js`;
//! * `CAPBOX_ANAN_AS_SECS` — how long to run (default 60);
//! * `CAPBOX_ANAN_AS_SEED` — the generator's seed (default 1).
//!
//! Programs are made as `fuzz/fuzz_targets/diff_raw.rs` makes them (13
//! register selectors, a small jump table, code octets and their bitmask
//! straight from random octets, a `trap` appended), from a seeded
//! generator. Each runs in capbox and, in batches through one Node process
//! (`scripts/anan-as-run.mjs`), in anan-as, from pc 0 with the same
//! registers, gas and memory (a writable buffer page and a stack page,
//! where PolkaVM puts them); host calls are resumed up to four times. Every exit
//! is compared: its kind (with a page fault's address), pc, registers, gas
//! and the writable memory. A program where the two differ is run in
//! PolkaVM as well and the difference is classed by who agrees with whom.
//!
//! Not compared, as documented departures (`capbox_shared::pvm`): the pc
//! after a halt (departure 3), and anything after an exit where anan-as
//! ran out of gas (departure 2). The run fails if a program differs from
//! anan-as where anan-as and PolkaVM agree (a difference capbox alone has),
//! and prints every class of difference with its smallest example.

mod raw_program;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use capbox_shared::pvm::{Access, Exit, Machine, Memory, PageMapEntry, Program};
use polkavm::{
    BackendKind, Config, Engine, GasMeteringKind, InterruptKind, Module, ModuleConfig, ProgramBlob,
    ProgramCounter, ProgramParts,
};
use raw_program::{RW, RawProgram as Case, raw_program as generate};
use serde_json::Value;

const GAS: i64 = 2_000;
const MAX_EXITS: usize = 5;
const BATCH: usize = 500;
/// The writable buffer (one page of rw data at `RW`, where PolkaVM puts
/// it) and the stack (one page, where PolkaVM puts it; asked from PolkaVM
/// once) are this long.
const PAGE: u32 = 4096;

fn stack_address() -> u32 {
    static STACK: OnceLock<u32> = OnceLock::new();
    *STACK.get_or_init(|| {
        let mut parts = ProgramParts::empty(polkavm::program::InstructionSetKind::JamV1);
        parts.rw_data_size = PAGE;
        parts.stack_size = PAGE;
        parts.code_and_jump_table = vec![0, 1, 1, 0, 1].into();
        let blob = ProgramBlob::from_parts(parts).expect("PolkaVM blob");
        let mut config = ModuleConfig::new();
        config.set_page_size(PAGE);
        let engine = Engine::new(&Config::new()).expect("PolkaVM engine");
        let module = Module::from_blob(&engine, &config, blob).expect("PolkaVM module");
        let map = module.memory_map();
        assert_eq!(map.rw_data_range(), RW..RW + PAGE, "PolkaVM's rw data");
        map.stack_range().start
    })
}

fn regions() -> Vec<PageMapEntry> {
    vec![
        PageMapEntry {
            address: RW,
            length: PAGE,
            access: Access::Write,
        },
        PageMapEntry {
            address: stack_address(),
            length: PAGE,
            access: Access::Write,
        },
    ]
}

/// A seeded generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random input octets: short programs are the most telling, so lengths
/// lean small; a third of the code octets are drawn from the valid opcodes
/// so that instruction starts are mostly real instructions.
fn random_input(rng: &mut Rng) -> Vec<u8> {
    let span = if rng.below(4) == 0 { 240 } else { 40 };
    let len = 14 + rng.below(span) as usize;
    (0..len)
        .map(|_| {
            if rng.below(3) == 0 {
                let ops = capbox_shared::pvm::ALL_OPCODES;
                ops[rng.below(ops.len() as u64) as usize] as u8
            } else {
                rng.next() as u8
            }
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stop {
    Halt,
    Panic,
    Fault(u32),
    Host(u32),
    OutOfGas,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    stop: Stop,
    pc: u32,
    gas: i64,
    regs: [u64; 13],
    memory: Vec<u8>,
}

fn writable() -> Vec<PageMapEntry> {
    regions()
        .into_iter()
        .filter(|r| r.access == Access::Write)
        .collect()
}

fn capbox(case: &Case) -> Result<Vec<State>, String> {
    let program = Program::from_blob(&case.blob).map_err(|e| format!("{e:?}"))?;
    let memory = Memory::from_page_map(&regions()).map_err(|e| format!("{e:?}"))?;
    let mut machine = Machine::new(case.regs, 0, GAS, memory);
    let mut states = Vec::new();
    while states.len() < MAX_EXITS {
        let exit = machine.run(&program);
        let (stop, pc) = match exit {
            Exit::Halt => (Stop::Halt, machine.pc),
            Exit::Panic => (Stop::Panic, machine.pc),
            Exit::PageFault(a) => (Stop::Fault(a), machine.pc),
            Exit::OutOfGas => (Stop::OutOfGas, machine.pc),
            Exit::HostCall(n) => (
                Stop::Host(n),
                program
                    .instruction_before(machine.pc)
                    .ok_or("host call without an instruction before")?,
            ),
            Exit::Slice => return Err("run() stopped for a slice".into()),
        };
        let mut memory = Vec::new();
        for region in writable() {
            let mut bytes = vec![0; region.length as usize];
            machine
                .memory
                .read(region.address, &mut bytes)
                .map_err(|e| format!("{e:?}"))?;
            memory.extend(bytes);
        }
        states.push(State {
            stop,
            pc,
            gas: machine.gas,
            regs: machine.regs,
            memory,
        });
        if !matches!(stop, Stop::Host(_)) {
            break;
        }
    }
    Ok(states)
}

/// Whether an instruction starts on `sbrk` (101), whose result differs by
/// design (departure 7).
fn has_sbrk(case: &Case) -> bool {
    case.has_opcode(|op| op == 101)
}

/// PolkaVM 0.37's interpreter on the same blob, registers and memory
/// layout. `None` when it refuses the blob, lays memory out otherwise, or
/// numbers the opcodes at an instruction start differently (2, 101–111).
/// A page fault it reports as one gives the page's address, as capbox and
/// anan-as do; most it reports as traps.
fn polkavm(engine: &Engine, case: &Case) -> Option<Vec<State>> {
    if case.polkavm_renumbers() {
        return None;
    }
    let mut parts = ProgramParts::empty(polkavm::program::InstructionSetKind::JamV1);
    parts.rw_data_size = PAGE;
    parts.stack_size = PAGE;
    parts.code_and_jump_table = case.blob.clone().into();
    let blob = ProgramBlob::from_parts(parts).ok()?;
    let mut config = ModuleConfig::new();
    config.set_gas_metering(Some(GasMeteringKind::Sync));
    config.set_page_size(PAGE);
    let module = Module::from_blob(engine, &config, blob).ok()?;
    let map = module.memory_map();
    if map.rw_data_range() != (RW..RW + PAGE)
        || map.stack_range() != (stack_address()..stack_address() + PAGE)
    {
        return None;
    }
    let mut instance = module.instantiate().ok()?;
    instance.set_next_program_counter(ProgramCounter(0));
    for (reg, &value) in polkavm::Reg::ALL.iter().zip(&case.regs) {
        instance.set_reg(*reg, value);
    }
    instance.set_gas(GAS);
    let mut states = Vec::new();
    while states.len() < MAX_EXITS {
        let stop = match instance.run().ok()? {
            InterruptKind::Finished => Stop::Halt,
            InterruptKind::Trap => Stop::Panic,
            InterruptKind::Segfault(fault) => Stop::Fault(fault.page_address),
            InterruptKind::NotEnoughGas => Stop::OutOfGas,
            InterruptKind::Ecalli(n) => Stop::Host(n),
            InterruptKind::Step => return None,
        };
        let mut memory = Vec::new();
        for region in writable() {
            memory.extend(instance.read_memory(region.address, region.length).ok()?);
        }
        states.push(State {
            stop,
            pc: instance.program_counter().map_or(u32::MAX, |pc| pc.0),
            gas: instance.gas(),
            regs: core::array::from_fn(|i| instance.reg(polkavm::Reg::ALL[i])),
            memory,
        });
        if !matches!(stop, Stop::Host(_)) {
            break;
        }
    }
    Some(states)
}

/// Why the Node script's answer could not be used.
#[derive(Debug)]
enum AnanError {
    Io(std::io::Error),
    /// The script closed its output early.
    Eof,
    Json(serde_json::Error),
    /// A field is missing or out of range.
    Field(&'static str),
}

impl fmt::Display for AnanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnanError::Io(e) => write!(f, "talking to node: {e}"),
            AnanError::Eof => write!(f, "node closed its output"),
            AnanError::Json(e) => write!(f, "bad JSON from node: {e}"),
            AnanError::Field(name) => write!(f, "bad or missing field `{name}` from node"),
        }
    }
}

impl From<std::io::Error> for AnanError {
    fn from(e: std::io::Error) -> Self {
        AnanError::Io(e)
    }
}

fn request(case: &Case) -> String {
    let pages: Vec<Value> = regions()
        .iter()
        .map(|r| {
            serde_json::json!({
                "address": r.address,
                "length": r.length,
                "writable": r.access == Access::Write,
            })
        })
        .collect();
    let dump: Vec<Value> = writable()
        .iter()
        .map(|r| serde_json::json!({ "address": r.address, "length": r.length }))
        .collect();
    let hex: String = case.blob.iter().map(|b| format!("{b:02x}")).collect();
    serde_json::json!({
        "program": hex,
        "regs": case.regs.iter().map(u64::to_string).collect::<Vec<_>>(),
        "gas": GAS.to_string(),
        "pages": pages,
        "dump": dump,
        "exits": MAX_EXITS,
    })
    .to_string()
}

fn field<'a>(v: &'a Value, name: &'static str) -> Result<&'a Value, AnanError> {
    v.get(name).ok_or(AnanError::Field(name))
}

fn number<T: TryFrom<u64>>(v: &Value, name: &'static str) -> Result<T, AnanError> {
    field(v, name)?
        .as_u64()
        .and_then(|n| T::try_from(n).ok())
        .ok_or(AnanError::Field(name))
}

fn decimal<T: std::str::FromStr>(v: &Value, name: &'static str) -> Result<T, AnanError> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or(AnanError::Field(name))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// One answer line: anan-as's exits, or its refusal (`Err(reason)`).
fn parse_answer(line: &str) -> Result<Result<Vec<State>, String>, AnanError> {
    let v: Value = serde_json::from_str(line).map_err(AnanError::Json)?;
    if let Some(e) = v.get("error") {
        return Ok(Err(e
            .as_str()
            .ok_or(AnanError::Field("error"))?
            .to_string()));
    }
    let exits = field(&v, "exits")?
        .as_array()
        .ok_or(AnanError::Field("exits"))?;
    if exits.is_empty() || exits.len() > MAX_EXITS {
        return Err(AnanError::Field("exits"));
    }
    let memory_len: usize = writable().iter().map(|r| r.length as usize).sum();
    let mut states = Vec::new();
    for e in exits {
        let code: u32 = number(e, "code")?;
        let stop = match number::<u8>(e, "status")? {
            0 => Stop::Halt,
            1 => Stop::Panic,
            2 => Stop::Fault(code),
            3 => Stop::Host(code),
            4 => Stop::OutOfGas,
            _ => return Err(AnanError::Field("status")),
        };
        let regs = field(e, "regs")?
            .as_array()
            .filter(|r| r.len() == 13)
            .ok_or(AnanError::Field("regs"))?;
        let mut out = [0u64; 13];
        for (o, r) in out.iter_mut().zip(regs) {
            *o = decimal(r, "regs")?;
        }
        let memory = field(e, "memory")?
            .as_str()
            .and_then(unhex)
            .filter(|m| m.len() == memory_len)
            .ok_or(AnanError::Field("memory"))?;
        states.push(State {
            stop,
            pc: number(e, "pc")?,
            gas: decimal(field(e, "gas")?, "gas")?,
            regs: out,
            memory,
        });
    }
    Ok(Ok(states))
}

/// The Node process running `scripts/anan-as-run.mjs`.
struct Anan {
    child: Child,
    input: Option<ChildStdin>,
    output: BufReader<ChildStdout>,
}

impl Anan {
    fn start(module: &str) -> Result<Anan, AnanError> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/anan-as-run.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .env("ANAN_AS_MODULE", module)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let input = child.stdin.take().ok_or(AnanError::Eof)?;
        let output = BufReader::new(child.stdout.take().ok_or(AnanError::Eof)?);
        Ok(Anan {
            child,
            input: Some(input),
            output,
        })
    }

    /// Runs a batch: the requests are written from a second thread while
    /// the answers are read, so neither pipe can fill up and stall.
    fn run(&mut self, cases: &[Case]) -> Result<Vec<Result<Vec<State>, String>>, AnanError> {
        let mut text = String::new();
        for case in cases {
            text.push_str(&request(case));
            text.push('\n');
        }
        let input = self.input.as_mut().ok_or(AnanError::Eof)?;
        let output = &mut self.output;
        std::thread::scope(|scope| {
            let writer = scope.spawn(move || {
                input.write_all(text.as_bytes())?;
                input.flush()
            });
            let mut answers = Vec::with_capacity(cases.len());
            let mut line = String::new();
            for _ in cases {
                line.clear();
                if output.read_line(&mut line)? == 0 {
                    return Err(AnanError::Eof);
                }
                answers.push(parse_answer(&line)?);
            }
            writer.join().map_err(|_| AnanError::Eof)??;
            Ok(answers)
        })
    }
}

impl Drop for Anan {
    fn drop(&mut self) {
        drop(self.input.take());
        let _ = self.child.wait();
    }
}

/// The first point where two runs differ, as a short label; `None` when
/// they agree on everything compared. `coarse` (against PolkaVM): a halt's
/// pc is not compared (PolkaVM has none) and a page fault counts as a panic
/// (PolkaVM's interpreter reports most page faults as traps).
fn difference(ours: &[State], theirs: &[State], coarse: bool) -> Option<String> {
    for (i, (m, t)) in ours.iter().zip(theirs).enumerate() {
        let kind = |s: Stop| match s {
            Stop::Fault(_) => "fault",
            Stop::Host(_) => "host",
            Stop::Halt => "halt",
            Stop::Panic => "panic",
            Stop::OutOfGas => "out of gas",
        };
        let label = |what: &str| format!("exit {i}: {what} ({} vs {})", kind(m.stop), kind(t.stop));
        if t.stop == Stop::OutOfGas || m.stop == Stop::OutOfGas {
            // Departure 2: the state after running out of gas differs by
            // design; only a halt against an out-of-gas counts.
            if m.stop == Stop::Halt || t.stop == Stop::Halt {
                return Some(label("out of gas vs halt"));
            }
            return None;
        }
        let norm = |s: Stop| match s {
            Stop::Fault(_) if coarse => Stop::Panic,
            s => s,
        };
        if norm(m.stop) != norm(t.stop) {
            if kind(m.stop) == kind(t.stop) {
                return Some(label("fault address / host index"));
            }
            return Some(label("kind"));
        }
        if m.pc != t.pc && !(m.stop == Stop::Halt && (coarse || t.stop == Stop::Halt)) {
            return Some(label("pc"));
        }
        if m.regs != t.regs {
            return Some(label("registers"));
        }
        if m.gas != t.gas {
            return Some(label("gas"));
        }
        if m.memory != t.memory {
            return Some(label("memory"));
        }
    }
    (ours.len() != theirs.len()).then(|| "number of exits".to_string())
}

fn listing(case: &Case) -> String {
    case.code
        .iter()
        .zip(&case.starts)
        .enumerate()
        .map(|(pc, (op, &start))| format!("{}{pc}:{op:02x}", if start { " |" } else { " " }))
        .collect()
}

/// A class of differences: its count and smallest example.
struct Class {
    count: usize,
    example: String,
    size: usize,
}

#[test]
#[ignore = "needs Node and @fluffylabs/anan-as: run scripts/diff-anan-as.sh"]
fn capbox_agrees_with_anan_as() {
    if std::env::var("CAPBOX_ANAN_AS").as_deref() != Ok("1") {
        eprintln!("skipped: set CAPBOX_ANAN_AS=1 (scripts/diff-anan-as.sh does) to run");
        return;
    }
    let module = std::env::var("ANAN_AS_MODULE")
        .expect("ANAN_AS_MODULE: the path of anan-as's dist/build/release.js");
    let secs: u64 = std::env::var("CAPBOX_ANAN_AS_SECS")
        .map_or(60, |s| s.parse().expect("CAPBOX_ANAN_AS_SECS: seconds"));
    let seed: u64 = std::env::var("CAPBOX_ANAN_AS_SEED")
        .map_or(1, |s| s.parse().expect("CAPBOX_ANAN_AS_SEED: a number"));
    let engine = {
        let mut config = Config::new();
        config.set_backend(Some(BackendKind::Interpreter));
        Engine::new(&config).expect("PolkaVM engine")
    };
    let mut anan = Anan::start(&module).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut classes: BTreeMap<String, Class> = BTreeMap::new();
    let (mut programs, mut differing, mut capbox_alone) = (0usize, 0usize, 0usize);
    while Instant::now() < deadline {
        // Three programs in four avoid instruction starts PolkaVM numbers
        // differently (2, 101–111), so that it can break ties; the fourth
        // exercises those opcodes against anan-as alone.
        let cases: Vec<Case> = std::iter::from_fn(|| {
            let case = generate(&random_input(&mut rng))?;
            Some((rng.below(4) == 0 || !case.polkavm_renumbers()).then_some(case))
        })
        .flatten()
        .take(BATCH)
        .collect();
        let answers = anan.run(&cases).unwrap_or_else(|e| panic!("{e}"));
        for (case, answer) in cases.iter().zip(answers) {
            programs += 1;
            let key = match (capbox(case), answer) {
                (Err(_), Err(_)) => continue,
                (Ok(_), Err(e)) => format!("anan-as refuses the blob ({e})"),
                (Err(e), Ok(_)) => format!("capbox refuses the blob ({e})"),
                (Ok(ours), Ok(theirs)) => {
                    let Some(what) = difference(&ours, &theirs, false) else {
                        continue;
                    };
                    let before = capbox_alone;
                    let reference = polkavm(&engine, case);
                    let side = match &reference {
                        None if has_sbrk(case) => "PolkaVM n/a, sbrk in the program",
                        None if case.polkavm_renumbers() => "PolkaVM n/a (opcode 2 or 102–111)",
                        None => "PolkaVM refuses the blob",
                        Some(p) => match (
                            difference(&theirs, p, true).is_none(),
                            difference(&ours, p, true).is_none(),
                        ) {
                            (true, _) => {
                                capbox_alone += 1;
                                "anan-as = PolkaVM ≠ capbox"
                            }
                            (false, true) => "capbox = PolkaVM ≠ anan-as",
                            (false, false) => "all three differ",
                        },
                    };
                    let m = ours.iter().zip(&theirs).find(|(m, t)| m != t);
                    let index = ours.iter().zip(&theirs).take_while(|(m, t)| m == t).count();
                    let mut detail = String::new();
                    for (name, states) in [
                        ("capbox ", Some(&ours)),
                        ("anan-as", Some(&theirs)),
                        ("PolkaVM", reference.as_ref()),
                    ] {
                        if let Some(s) = states.and_then(|s| s.get(index)) {
                            detail.push_str(&format!(
                                "\n    {name} {:?} pc {} gas {} regs {:x?}",
                                s.stop, s.pc, s.gas, s.regs
                            ));
                        }
                    }
                    let op = m.map_or(0, |(m, _)| {
                        case.code.get(m.pc as usize).copied().unwrap_or(0)
                    });
                    let key = if capbox_alone > before {
                        format!("{side}: {what}, capbox stops on opcode {op}")
                    } else {
                        format!("{side}: {what}")
                    };
                    let class = classes.entry(key).or_insert(Class {
                        count: 0,
                        example: String::new(),
                        size: usize::MAX,
                    });
                    class.count += 1;
                    if case.code.len() < class.size {
                        class.size = case.code.len();
                        class.example =
                            format!("regs {:x?}\n   {}{detail}", case.regs, listing(case));
                    }
                    differing += 1;
                    continue;
                }
            };
            differing += 1;
            let class = classes.entry(key).or_insert(Class {
                count: 0,
                example: String::new(),
                size: usize::MAX,
            });
            class.count += 1;
            if case.code.len() < class.size {
                class.size = case.code.len();
                class.example = listing(case);
            }
        }
    }
    eprintln!("anan-as: {programs} programs (seed {seed}), {differing} differ");
    for (key, class) in &classes {
        eprintln!("\n[{}] {key}\n   {}", class.count, class.example);
    }
    assert_eq!(
        capbox_alone, 0,
        "capbox differs from anan-as and PolkaVM (which agree) on {capbox_alone} programs"
    );
}

/// The Node script's answers are external input: a well-formed one parses
/// to the states it names, anything else is a typed error, not a panic.
#[test]
fn answers_from_node_are_validated() {
    let regs = (0..13)
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(",");
    let memory = "00".repeat(2 * PAGE as usize);
    let exit = |status: &str, regs: &str, memory: &str| {
        format!(
            r#"{{"exits":[{{"status":{status},"code":7,"pc":3,"gas":"-1","regs":[{regs}],"memory":"{memory}"}}]}}"#
        )
    };
    let good = parse_answer(&exit("2", &regs, &memory)).unwrap().unwrap();
    assert_eq!(good.len(), 1);
    assert_eq!(good[0].stop, Stop::Fault(7));
    assert_eq!((good[0].pc, good[0].gas, good[0].regs[12]), (3, -1, 12));
    assert_eq!(
        parse_answer(r#"{"error":"bad blob"}"#).unwrap(),
        Err("bad blob".to_string())
    );
    let short_regs = (0..12)
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(",");
    for (line, field) in [
        (exit("9", &regs, &memory), "status"),
        (exit("1", &short_regs, &memory), "regs"),
        (exit("1", &regs.replace("\"5\"", "\"-5\""), &memory), "regs"),
        (exit("1", &regs, "00"), "memory"),
        (exit("1", &regs, &memory.replacen("00", "zz", 1)), "memory"),
        (r#"{"exits":[]}"#.to_string(), "exits"),
        (r#"{"nothing":1}"#.to_string(), "exits"),
    ] {
        match parse_answer(&line) {
            Err(AnanError::Field(name)) => assert_eq!(name, field, "{line}"),
            other => panic!("{line}: {other:?}"),
        }
    }
    assert!(matches!(
        parse_answer(r#"{"exits":[{"status":1"#),
        Err(AnanError::Json(_))
    ));
}
