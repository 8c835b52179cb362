//! capbox's interpreter against PolkaVM 0.37's interpreter on the example
//! Rust programs (programs/*.polkavm, built with the SDK and the standard
//! PolkaVM toolchain): the same blob, capbox running the imported image.
//!
//! `cargo bench -p capbox --bench programs` (`just bench-programs`). Each
//! iteration runs one whole call of an export from a fresh memory (capbox:
//! the standard memory built from the image; PolkaVM: `reset_memory`);
//! decoding happens once, outside the timing. Both meter gas, one per
//! instruction; the I/O ops the workloads use (`input_len`, `input_read`,
//! `set_output`) are served on both sides with the kernel's gas, so gas
//! and results are asserted equal before timing. Per instruction = time /
//! gas used.

use std::hint::black_box;
use std::time::Duration;

use capbox::import::image_from_polkavm;
use capbox::shared::cap::Image;
use capbox::shared::kernel::ops::KernelOp;
use capbox::shared::pvm::layout::StandardLayout;
use capbox::shared::pvm::{Exit, Machine, Memory, Program};
use criterion::{Criterion, criterion_group, criterion_main};
use polkavm::{
    BackendKind, Config, CostModel, CostModelKind, Engine, GasMeteringKind, InterruptKind, Module,
    ModuleConfig, ProgramBlob, RawInstance, Reg,
};

const GAS: i64 = 1 << 40;

/// What a call gives: φ7, the output and the gas used.
type Result = (u64, Vec<u8>, i64);

/// A workload: label, program, export, arguments, input.
type Workload<'a> = (&'a str, &'a str, &'a str, [u64; 4], &'a [u8]);

struct Ours {
    image: Image,
    program: Program,
    layout: StandardLayout,
}

impl Ours {
    fn new(image: Image) -> Ours {
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
            image,
            layout,
        }
    }

    fn call(&self, name: &str, args: [u64; 4], input: &[u8]) -> Result {
        let memory = Memory::standard(&self.layout, &self.image.ro_data, &self.image.rw_data, &[])
            .expect("memory");
        let mut regs = self.layout.initial_registers();
        regs[7..11].copy_from_slice(&args);
        let pc =
            self.image.endpoints[self.image.endpoint_by_name(name).expect("endpoint") as usize];
        let mut m = Machine::new(regs, pc, GAS, memory);
        let mut output = Vec::new();
        loop {
            match m.run(&self.program) {
                Exit::Halt => break,
                Exit::HostCall(n) => {
                    let op = KernelOp::from_number(n).expect("a kernel op");
                    let [a0, a1, a2] = [m.regs[7], m.regs[8], m.regs[9]];
                    m.gas -= op.gas_cost();
                    m.regs[7] = match op {
                        KernelOp::InputLen => input.len() as u64,
                        KernelOp::InputRead => {
                            let n = a2.min(input.len() as u64 - a0);
                            m.gas -= n.div_ceil(4096) as i64 * op.gas_per_page();
                            let bytes = &input[a0 as usize..(a0 + n) as usize];
                            m.memory.write(a1 as u32, bytes).expect("writable");
                            n
                        }
                        KernelOp::SetOutput => {
                            m.gas -= a1.div_ceil(4096) as i64 * op.gas_per_page();
                            output = vec![0; a1 as usize];
                            m.memory.read(a0 as u32, &mut output).expect("readable");
                            0
                        }
                        other => panic!("unserved op {}", other.name()),
                    };
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        (m.regs[7], output, GAS - m.gas)
    }
}

struct Theirs {
    module: Module,
    instance: RawInstance,
}

impl Theirs {
    fn new(engine: &Engine, blob: &[u8]) -> Theirs {
        let mut config = ModuleConfig::new();
        config.set_page_size(0x1000);
        config.set_aux_data_size(1 << 24);
        config.set_gas_metering(Some(GasMeteringKind::Sync));
        config.set_cost_model(Some(CostModelKind::Simple(CostModel::naive_ref())));
        let blob = ProgramBlob::parse(blob.to_vec().into()).expect("PolkaVM parses the blob");
        let module = Module::from_blob(engine, &config, blob).expect("PolkaVM accepts the blob");
        let instance = module.instantiate().expect("instance");
        Theirs { module, instance }
    }

    fn call(&mut self, name: &str, args: [u64; 4], input: &[u8]) -> Result {
        let pc = self
            .module
            .exports()
            .find(|e| e.symbol().as_bytes() == name.as_bytes())
            .expect("export")
            .program_counter();
        let i = &mut self.instance;
        i.reset_memory().expect("reset");
        i.prepare_call_untyped(pc, &args);
        i.set_gas(GAS);
        let mut output = Vec::new();
        loop {
            match i.run().expect("run") {
                InterruptKind::Finished => break,
                InterruptKind::Ecalli(n) => {
                    let op = KernelOp::from_number(n).expect("a kernel op");
                    let [a0, a1, a2] = [Reg::A0, Reg::A1, Reg::A2].map(|r| i.reg(r));
                    let mut gas = i.gas() - op.gas_cost();
                    let result = match op {
                        KernelOp::InputLen => input.len() as u64,
                        KernelOp::InputRead => {
                            let n = a2.min(input.len() as u64 - a0);
                            gas -= n.div_ceil(4096) as i64 * op.gas_per_page();
                            let bytes = &input[a0 as usize..(a0 + n) as usize];
                            i.write_memory(a1 as u32, bytes).expect("writable");
                            n
                        }
                        KernelOp::SetOutput => {
                            gas -= a1.div_ceil(4096) as i64 * op.gas_per_page();
                            output = i.read_memory(a0 as u32, a1 as u32).expect("readable");
                            0
                        }
                        other => panic!("unserved op {}", other.name()),
                    };
                    i.set_gas(gas);
                    i.set_reg(Reg::A0, result);
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        (i.reg(Reg::A0), output, GAS - i.gas())
    }
}

fn blob(name: &str) -> Vec<u8> {
    let path = format!("{}/../programs/{name}.polkavm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn bench(c: &mut Criterion) {
    let mut config = Config::from_env().expect("PolkaVM config");
    config.set_backend(Some(BackendKind::Interpreter));
    let engine = Engine::new(&config).expect("PolkaVM engine");
    let kib: Vec<u8> = (0..1024u32).map(|i| (i * 31 % 256) as u8).collect();
    let workloads: [Workload; 4] = [
        ("sieve_100k", "hash", "sieve", [100_000, 0, 0, 0], &[]),
        (
            "blake2b_chain_2000",
            "hash",
            "blake2b_chain",
            [2000, 0, 0, 0],
            b"abc",
        ),
        ("blake2b_64k", "hash", "blake2b", [0; 4], &[7; 65536]),
        ("fnv_1k_x200", "hash", "fnv", [200, 0, 0, 0], &kib),
    ];
    for (label, program, name, args, input) in workloads {
        let bytes = blob(program);
        let ours = Ours::new(image_from_polkavm(&bytes).expect("imports").image);
        let mut theirs = Theirs::new(&engine, &bytes);
        let mine = ours.call(name, args, input);
        let reference = theirs.call(name, args, input);
        assert_eq!(mine, reference, "{label}: capbox vs PolkaVM");
        eprintln!(
            "{label}: r7 {}, gas used (instructions + op gas) {}",
            mine.0, mine.2
        );
        let mut group = c.benchmark_group(label);
        group.measurement_time(Duration::from_secs(3));
        group.warm_up_time(Duration::from_secs(1));
        group.sample_size(20);
        group.bench_function("capbox", |b| {
            b.iter(|| black_box(ours.call(name, black_box(args), input)))
        });
        group.bench_function("polkavm", |b| {
            b.iter(|| black_box(theirs.call(name, black_box(args), input)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
