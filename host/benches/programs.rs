//! The PVM benchmark suite: capbox's interpreter against PolkaVM 0.37's
//! interpreter (and, where this machine allows, PolkaVM's recompiler as a
//! reference line) on
//!
//! * the example Rust programs (programs/*.polkavm, built with the SDK and
//!   the standard PolkaVM toolchain): capbox runs the imported image, and
//! * the builder workloads (shared/tests/pvm_programs/workloads.rs): the
//!   same raw code blob on both sides.
//!
//! `cargo bench -p capbox --bench programs` (`just bench-programs`). Each
//! iteration runs one whole call from a fresh memory (capbox: the standard
//! memory built from the image; PolkaVM: `reset_memory`); decoding and
//! compiling happen once, outside the timing. All engines meter gas, one
//! per instruction; the I/O ops the Rust programs use (`input_len`,
//! `input_read`, `set_output`) are served on every side with the kernel's
//! gas, so exit, φ7, output and gas are asserted equal before timing. The
//! criterion throughput is the gas used, so "elements/s" is PVM
//! instructions per second (plus a few hundred op gas per call).
//!
//! The recompiler needs PolkaVM's Linux sandbox, which needs
//! `vm.unprivileged_userfaultfd=1`; when it cannot start, the suite says so
//! and runs without that line.

#[path = "../../shared/tests/pvm_programs/workloads.rs"]
mod workloads;

use std::hint::black_box;
use std::time::Duration;

use capbox::import::image_from_polkavm;
use capbox::shared::cap::Image;
use capbox::shared::kernel::ops::KernelOp;
use capbox::shared::pvm::layout::StandardLayout;
use capbox::shared::pvm::{Exit, Machine, Memory, Program};
use criterion::{Criterion, Throughput, criterion_group};
use polkavm::{
    BackendKind, Config, CostModel, CostModelKind, Engine, GasMeteringKind, InterruptKind, Module,
    ModuleConfig, ProgramBlob, ProgramCounter, ProgramParts, RawInstance, Reg,
};

const GAS: i64 = 1 << 40;

/// What a call gives: φ7 (φ9 for the builder workloads), the output and
/// the gas used.
type Outcome = (u64, Vec<u8>, i64);

/// Serves one kernel I/O op for a workload: returns the φ7 result and the
/// gas it costs. `read`/`write` access the engine's memory.
fn serve(
    n: u32,
    [a0, a1, a2]: [u64; 3],
    input: &[u8],
    output: &mut Vec<u8>,
    write: &mut dyn FnMut(u32, &[u8]),
    read: &mut dyn FnMut(u32, u32) -> Vec<u8>,
) -> (u64, i64) {
    let op = KernelOp::from_number(n).expect("a kernel op");
    let mut gas = op.gas_cost();
    let result = match op {
        KernelOp::InputLen => input.len() as u64,
        KernelOp::InputRead => {
            let n = a2.min(input.len() as u64 - a0);
            gas += n.div_ceil(4096) as i64 * op.gas_per_page();
            write(a1 as u32, &input[a0 as usize..(a0 + n) as usize]);
            n
        }
        KernelOp::SetOutput => {
            gas += a1.div_ceil(4096) as i64 * op.gas_per_page();
            *output = read(a0 as u32, a1 as u32);
            0
        }
        other => panic!("unserved op {}", other.name()),
    };
    (result, gas)
}

/// capbox's side: a decoded program and what builds its memory.
struct Ours {
    program: Program,
    layout: StandardLayout,
    ro: Vec<u8>,
    rw: Vec<u8>,
    /// Register that holds the result (7 for Rust programs, 9 for the
    /// builder workloads).
    result_reg: usize,
}

impl Ours {
    fn from_image(image: &Image) -> Ours {
        let layout = StandardLayout::new(
            image.ro_data.len() as u32,
            image.rw_data.len() as u32,
            image.heap_pages as u16,
            image.stack_size,
            0,
        )
        .expect("layout");
        Ours {
            program: Program::from_blob(&image.code).expect("code decodes"),
            layout,
            ro: image.ro_data.clone(),
            rw: image.rw_data.clone(),
            result_reg: 7,
        }
    }

    fn from_code(code: &[u8], buffer: u32) -> Ours {
        Ours {
            program: Program::from_blob(code).expect("blob decodes"),
            layout: StandardLayout::new(0, buffer, 0, 0x1000, 0).expect("layout"),
            ro: Vec::new(),
            rw: vec![0; buffer as usize],
            result_reg: 9,
        }
    }

    /// The same, the program compiled to machine code (`pvm::jit`).
    fn native(&self) -> Ours {
        let program = self.program.clone();
        program.compile_native().expect("compiles to machine code");
        Ours {
            program,
            layout: self.layout,
            ro: self.ro.clone(),
            rw: self.rw.clone(),
            result_reg: self.result_reg,
        }
    }

    fn call(&self, pc: u32, args: [u64; 4], input: &[u8]) -> Outcome {
        let memory = Memory::standard(&self.layout, &self.ro, &self.rw, &[]).expect("memory");
        let mut regs = self.layout.initial_registers();
        regs[7..11].copy_from_slice(&args);
        let mut m = Machine::new(regs, pc, GAS, memory);
        let mut output = Vec::new();
        loop {
            match m.run(&self.program) {
                Exit::Halt => break,
                Exit::HostCall(n) => {
                    let args = [m.regs[7], m.regs[8], m.regs[9]];
                    let memory = std::cell::RefCell::new(&mut m.memory);
                    let (result, gas) = serve(
                        n,
                        args,
                        input,
                        &mut output,
                        &mut |a, bytes| memory.borrow_mut().write(a, bytes).expect("writable"),
                        &mut |a, len| {
                            let mut out = vec![0; len as usize];
                            memory.borrow().read(a, &mut out).expect("readable");
                            out
                        },
                    );
                    m.gas -= gas;
                    m.regs[7] = result;
                }
                other => panic!("capbox: {other:?}"),
            }
        }
        (m.regs[self.result_reg], output, GAS - m.gas)
    }
}

/// PolkaVM's side (interpreter or recompiler): one instance.
struct Theirs {
    instance: RawInstance,
    result_reg: Reg,
}

impl Theirs {
    fn new(engine: &Engine, blob: ProgramBlob, result_reg: Reg) -> Option<Theirs> {
        let mut config = ModuleConfig::new();
        config.set_page_size(0x1000);
        config.set_aux_data_size(1 << 24);
        config.set_gas_metering(Some(GasMeteringKind::Sync));
        config.set_cost_model(Some(CostModelKind::Simple(CostModel::naive_ref())));
        let module = Module::from_blob(engine, &config, blob)
            .map_err(|e| eprintln!("PolkaVM refuses the module: {e}"))
            .ok()?;
        let instance = module
            .instantiate()
            .map_err(|e| eprintln!("PolkaVM cannot instantiate: {e}"))
            .ok()?;
        Some(Theirs {
            instance,
            result_reg,
        })
    }

    fn call(&mut self, pc: u32, args: [u64; 4], input: &[u8]) -> Outcome {
        let i = &mut self.instance;
        i.reset_memory().expect("reset");
        i.prepare_call_untyped(ProgramCounter(pc), &args);
        i.set_gas(GAS);
        let mut output = Vec::new();
        loop {
            match i.run().expect("run") {
                InterruptKind::Finished => break,
                InterruptKind::Ecalli(n) => {
                    let args = [Reg::A0, Reg::A1, Reg::A2].map(|r| i.reg(r));
                    let instance = std::cell::RefCell::new(&mut *i);
                    let (result, gas) = serve(
                        n,
                        args,
                        input,
                        &mut output,
                        &mut |a, bytes| {
                            instance
                                .borrow_mut()
                                .write_memory(a, bytes)
                                .expect("writable")
                        },
                        &mut |a, len| instance.borrow_mut().read_memory(a, len).expect("readable"),
                    );
                    i.set_gas(i.gas() - gas);
                    i.set_reg(Reg::A0, result);
                }
                other => panic!("PolkaVM: {other:?}"),
            }
        }
        (i.reg(self.result_reg), output, GAS - i.gas())
    }
}

/// One benchmark: a label, the engines' inputs and the expected result.
struct Case {
    label: String,
    ours: Ours,
    blob: ProgramBlob,
    pc: u32,
    args: [u64; 4],
    input: Vec<u8>,
    /// The right φ7/φ9, when known independently of both engines.
    expected: Option<u64>,
}

fn rust_program(name: &str) -> (Vec<u8>, Image) {
    let path = format!("{}/../programs/{name}.polkavm", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let image = image_from_polkavm(&bytes).expect("imports").image;
    (bytes, image)
}

fn rust_case(program: &str, export: &str, label: &str, args: [u64; 4], input: &[u8]) -> Case {
    let (bytes, image) = rust_program(program);
    let pc = image.endpoints[image.endpoint_by_name(export).expect("endpoint") as usize];
    Case {
        label: label.into(),
        ours: Ours::from_image(&image),
        blob: ProgramBlob::parse(bytes.into()).expect("PolkaVM parses the blob"),
        pc,
        args,
        input: input.to_vec(),
        expected: None,
    }
}

fn builder_case(label: &str, code: Vec<u8>, buffer: u32, size: u64, expected: u64) -> Case {
    let mut parts = ProgramParts::empty(polkavm::program::InstructionSetKind::JamV1);
    parts.rw_data_size = buffer;
    parts.stack_size = 0x1000;
    parts.code_and_jump_table = code.clone().into();
    let blob = ProgramBlob::from_parts(parts).expect("PolkaVM parses the blob");
    let ours = Ours::from_code(&code, buffer);
    let rw_start = u64::from(ours.layout.rw_start());
    Case {
        label: label.into(),
        ours,
        blob,
        pc: 0,
        args: [rw_start, size, 0, 0],
        input: Vec::new(),
        expected: Some(expected),
    }
}

fn cases() -> Vec<Case> {
    let kib: Vec<u8> = (0..1024u32).map(|i| (i * 31 % 256) as u8).collect();
    let bytes_64k: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8).collect();
    vec![
        rust_case("hash", "sieve", "sieve_100k", [100_000, 0, 0, 0], &[]),
        rust_case(
            "hash",
            "blake2b_chain",
            "blake2b_chain_2000",
            [2000, 0, 0, 0],
            b"abc",
        ),
        rust_case("hash", "blake2b", "blake2b_64k", [0; 4], &[7; 65536]),
        rust_case("hash", "fnv", "fnv_1k_x200", [200, 0, 0, 0], &kib),
        rust_case(
            "counter",
            "add_input",
            "counter_add_64k",
            [0; 4],
            &bytes_64k,
        ),
        builder_case(
            "builder_sieve_100k",
            workloads::sieve(),
            100_000,
            100_000,
            workloads::expected_primes(100_000),
        ),
        builder_case(
            "builder_insertion_sort_1000",
            workloads::insertion_sort(),
            8 * 1000,
            1000,
            workloads::expected_sort_sum(1000),
        ),
    ]
}

fn engine(backend: BackendKind) -> Option<Engine> {
    let mut config = Config::from_env().expect("PolkaVM config");
    config.set_backend(Some(backend));
    Engine::new(&config)
        .map_err(|e| eprintln!("PolkaVM {backend:?} unavailable: {e}"))
        .ok()
}

fn bench(c: &mut Criterion) {
    let interpreter = engine(BackendKind::Interpreter).expect("PolkaVM's interpreter");
    let recompiler = engine(BackendKind::Compiler);
    if recompiler.is_none() {
        eprintln!(
            "SKIPPING the PolkaVM recompiler line: its sandbox does not start here \
             (try `sysctl -w vm.unprivileged_userfaultfd=1`)"
        );
    }
    for case in cases() {
        let result_reg = if case.expected.is_some() {
            Reg::A2
        } else {
            Reg::A0
        };
        let mut theirs =
            Theirs::new(&interpreter, case.blob.clone(), result_reg).expect("interpreter module");
        let mut compiled = recompiler
            .as_ref()
            .and_then(|e| Theirs::new(e, case.blob.clone(), result_reg));
        let (pc, args, input) = (case.pc, case.args, &case.input[..]);
        // Every engine computes the same (and, where known, right) answer
        // with the same gas before anything is timed.
        let mine = case.ours.call(pc, args, input);
        assert_eq!(
            mine,
            theirs.call(pc, args, input),
            "{}: interpreter",
            case.label
        );
        if let Some(compiled) = &mut compiled {
            assert_eq!(
                mine,
                compiled.call(pc, args, input),
                "{}: recompiler",
                case.label
            );
        }
        let native = case.ours.native();
        assert_eq!(
            mine,
            native.call(pc, args, input),
            "{}: capbox_jit",
            case.label
        );
        if let Some(expected) = case.expected {
            assert_eq!(mine.0, expected, "{}: result", case.label);
        }
        eprintln!("{}: result {}, gas used {}", case.label, mine.0, mine.2);
        let mut group = c.benchmark_group(&case.label);
        group.measurement_time(Duration::from_secs(3));
        group.warm_up_time(Duration::from_secs(1));
        group.sample_size(20);
        group.throughput(Throughput::Elements(mine.2 as u64));
        group.bench_function("capbox", |b| {
            b.iter(|| black_box(case.ours.call(pc, black_box(args), input)))
        });
        group.bench_function("capbox_jit", |b| {
            b.iter(|| black_box(native.call(pc, black_box(args), input)))
        });
        group.bench_function("polkavm", |b| {
            b.iter(|| black_box(theirs.call(pc, black_box(args), input)))
        });
        if let Some(compiled) = &mut compiled {
            group.bench_function("polkavm_recompiler", |b| {
                b.iter(|| black_box(compiled.call(pc, black_box(args), input)))
            });
        }
        group.finish();
    }
}

/// `CAPBOX_SUITE_FIXED=<label>:<engine>:<n>` (engine `capbox`,
/// `capbox_jit`, `polkavm` or `polkavm_recompiler`): runs that case `n` times and nothing else, for
/// `perf stat` (cycles counted while the process runs are steadier than
/// wall time on a shared machine; subtract a run with `n` = 0).
fn fixed(spec: &str) {
    let [label, engine_name, n] = spec.splitn(3, ':').collect::<Vec<_>>()[..] else {
        panic!("CAPBOX_SUITE_FIXED: want <label>:<engine>:<n>, got {spec}");
    };
    let n: u32 = n.parse().expect("CAPBOX_SUITE_FIXED: iteration count");
    let case = cases()
        .into_iter()
        .find(|c| c.label == label)
        .unwrap_or_else(|| panic!("no case {label}"));
    let (pc, args, input) = (case.pc, case.args, &case.input[..]);
    let result_reg = if case.expected.is_some() {
        Reg::A2
    } else {
        Reg::A0
    };
    let mut run: Box<dyn FnMut() -> Outcome> = match engine_name {
        "capbox" => Box::new(|| case.ours.call(pc, args, input)),
        "capbox_jit" => {
            let native = case.ours.native();
            Box::new(move || native.call(pc, args, input))
        }
        "polkavm" | "polkavm_recompiler" => {
            let backend = if engine_name == "polkavm" {
                BackendKind::Interpreter
            } else {
                BackendKind::Compiler
            };
            let engine = engine(backend).expect("engine");
            let mut theirs = Theirs::new(&engine, case.blob.clone(), result_reg).expect("module");
            Box::new(move || theirs.call(pc, args, input))
        }
        other => panic!("unknown engine {other}"),
    };
    for _ in 0..n {
        black_box(run());
    }
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(spec) = std::env::var("CAPBOX_SUITE_FIXED") {
        fixed(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
