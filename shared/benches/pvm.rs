//! Our interpreter side by side with PolkaVM's interpreter (JamV1
//! instruction set) on the same blobs, written with the builder.
//!
//! `cargo bench -p capbox-shared --bench pvm`. Each iteration runs one
//! whole invocation from a fresh memory state (ours: building the standard
//! memory; PolkaVM: `reset_memory`); decoding/compiling happens once,
//! outside the timing. Both engines meter gas.

#[path = "../tests/pvm_programs/workloads.rs"]
mod workloads;

use std::hint::black_box;
use std::time::Duration;

use capbox_shared::pvm::layout::StandardLayout;
use capbox_shared::pvm::{Exit, Machine, Memory, Program};
use criterion::{Criterion, criterion_group, criterion_main};
use polkavm::{
    BackendKind, Config, Engine, GasMeteringKind, InterruptKind, Module, ModuleConfig, ProgramBlob,
    ProgramCounter, ProgramParts, RawInstance, Reg,
};

const GAS: i64 = 1 << 40;

/// One workload: a blob, the zeroed buffer it needs and its size argument.
struct Workload {
    name: &'static str,
    blob: Vec<u8>,
    buffer: u32,
    size: u64,
    expected: u64,
}

struct Ours {
    program: Program,
    layout: StandardLayout,
    rw: Vec<u8>,
}

impl Ours {
    fn new(w: &Workload) -> Ours {
        Ours {
            program: Program::from_blob(&w.blob).expect("blob decodes"),
            layout: StandardLayout::new(0, w.buffer, 0, 0x1000, 0).expect("layout"),
            rw: vec![0; w.buffer as usize],
        }
    }

    /// Runs once; returns the exit, r9 and the gas used.
    fn run(&self, size: u64) -> (Exit, u64, i64) {
        let memory = Memory::standard(&self.layout, &[], &self.rw, &[]).expect("memory");
        let mut regs = self.layout.initial_registers();
        regs[7] = u64::from(self.layout.rw_start());
        regs[8] = size;
        let mut machine = Machine::new(regs, 0, GAS, memory);
        let exit = machine.run(&self.program);
        (exit, machine.regs[9], GAS - machine.gas)
    }
}

struct Theirs {
    instance: RawInstance,
    base: u32,
}

impl Theirs {
    fn new(engine: &Engine, w: &Workload) -> Theirs {
        let mut parts = ProgramParts::empty(polkavm::program::InstructionSetKind::JamV1);
        parts.rw_data_size = w.buffer;
        parts.stack_size = 0x1000;
        parts.code_and_jump_table = w.blob.clone().into();
        let blob = ProgramBlob::from_parts(parts).expect("PolkaVM parses the blob");
        let mut config = ModuleConfig::new();
        config.set_gas_metering(Some(GasMeteringKind::Sync));
        config.set_page_size(0x1000);
        let module = Module::from_blob(engine, &config, blob).expect("PolkaVM accepts the blob");
        let base = module.memory_map().rw_data_address();
        let instance = module.instantiate().expect("instance");
        Theirs { instance, base }
    }

    fn run(&mut self, size: u64) -> (InterruptKind, u64, i64) {
        self.instance.reset_memory().expect("reset");
        self.instance
            .prepare_call_untyped(ProgramCounter(0), &[u64::from(self.base), size]);
        self.instance.set_gas(GAS);
        let exit = self.instance.run().expect("run");
        (exit, self.instance.reg(Reg::A2), GAS - self.instance.gas())
    }
}

fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            name: "sieve_100k",
            blob: workloads::sieve(),
            buffer: 100_000,
            size: 100_000,
            expected: workloads::expected_primes(100_000),
        },
        Workload {
            name: "insertion_sort_1000",
            blob: workloads::insertion_sort(),
            buffer: 8 * 1000,
            size: 1000,
            expected: workloads::expected_sort_sum(1000),
        },
    ]
}

fn bench(c: &mut Criterion) {
    let mut config = Config::from_env().expect("PolkaVM config");
    config.set_backend(Some(BackendKind::Interpreter));
    let engine = Engine::new(&config).expect("PolkaVM engine");
    for w in workloads() {
        let ours = Ours::new(&w);
        let mut theirs = Theirs::new(&engine, &w);
        // Both engines must compute the same, right answer before timing.
        let (exit, result, gas) = ours.run(w.size);
        assert_eq!((exit, result), (Exit::Halt, w.expected), "{}: ours", w.name);
        let (their_exit, their_result, their_gas) = theirs.run(w.size);
        assert!(
            matches!(their_exit, InterruptKind::Finished),
            "{}: {their_exit:?}",
            w.name
        );
        assert_eq!(their_result, w.expected, "{}: PolkaVM", w.name);
        assert_eq!(
            gas, their_gas,
            "{}: both charge one gas per instruction",
            w.name
        );
        eprintln!(
            "{}: result {result}, gas used: ours {gas}, PolkaVM {their_gas}",
            w.name
        );
        let mut group = c.benchmark_group(w.name);
        group.measurement_time(Duration::from_secs(3));
        group.warm_up_time(Duration::from_secs(1));
        group.sample_size(20);
        group.bench_function("capbox", |b| {
            b.iter(|| black_box(ours.run(black_box(w.size))))
        });
        group.bench_function("polkavm", |b| {
            b.iter(|| black_box(theirs.run(black_box(w.size))))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
