//! The example Rust programs (`programs/*.polkavm`, built by
//! scripts/build-programs.sh) and PolkaVM 0.37's interpreter running the
//! same blobs, as the reference for results and gas.

#![allow(dead_code)] // Each test file uses part of it.

use capbox::import::{ImportedImage, image_from_polkavm};
use capbox::shared::kernel::ops::{ERR_MEMORY, ERR_OFFSET, KernelOp};
use capbox::shared::kernel::{ExitReason, Outcome};
use polkavm::{
    BackendKind, Config, CostModel, CostModelKind, Engine, GasMeteringKind, InterruptKind, Module,
    ModuleConfig, ProgramBlob, ProgramCounter, RawInstance, Reg,
};

/// The checked-in blob `programs/NAME.polkavm`.
pub fn blob(name: &str) -> Vec<u8> {
    let path = format!("{}/../programs/{name}.polkavm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `programs/NAME.polkavm` imported.
pub fn imported(name: &str) -> ImportedImage {
    image_from_polkavm(&blob(name)).unwrap_or_else(|e| panic!("importing {name}: {e}"))
}

/// The endpoint number of `endpoint` in an imported program.
pub fn endpoint(image: &ImportedImage, endpoint: &str) -> u32 {
    image
        .image
        .endpoint_by_name(endpoint)
        .unwrap_or_else(|| panic!("no endpoint {endpoint}"))
}

/// What a reference run gives: the fields of an [`Outcome`] without the
/// instance hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub exit: ExitReason,
    pub r7: u64,
    pub r8: u64,
    pub output: Vec<u8>,
    pub gas_used: u64,
}

impl From<&Outcome> for Run {
    fn from(o: &Outcome) -> Run {
        Run {
            exit: o.exit,
            r7: o.r7,
            r8: o.r8,
            output: o.output.clone(),
            gas_used: o.gas_used,
        }
    }
}

/// The Graypaper's stack top and halt address (`StandardLayout`).
const STACK_END: u64 = (1 << 32) - 2 * (1 << 16) - (1 << 24);
const HALT_ADDRESS: u64 = 0xFFFF_0000;

/// One PolkaVM instance of a blob: its memory persists between calls, as
/// an instance's does across invocations that halt.
pub struct Reference {
    module: Module,
    instance: RawInstance,
}

impl Reference {
    /// PolkaVM's interpreter, 4 KiB pages, synchronous gas metering with
    /// the naive cost model (one per instruction, as capbox), and 16 MiB of
    /// aux data so the stack sits where the Graypaper's layout puts it.
    pub fn new(blob: &[u8]) -> Reference {
        let mut config = Config::from_env().unwrap();
        config.set_backend(Some(BackendKind::Interpreter));
        let engine = Engine::new(&config).unwrap();
        let mut module_config = ModuleConfig::new();
        module_config.set_page_size(0x1000);
        module_config.set_aux_data_size(1 << 24);
        module_config.set_gas_metering(Some(GasMeteringKind::Sync));
        module_config.set_cost_model(Some(CostModelKind::Simple(CostModel::naive_ref())));
        let blob = ProgramBlob::parse(blob.to_vec().into()).unwrap();
        let module = Module::from_blob(&engine, &module_config, blob).unwrap();
        assert_eq!(
            u64::from(module.memory_map().stack_address_high()),
            STACK_END
        );
        let instance = module.instantiate().unwrap();
        Reference { module, instance }
    }

    /// Runs the export `name` with `args` in φ7..φ10 and `input`, serving
    /// the I/O kernel ops (`gas`, `log`, `set_output`, `input_len`,
    /// `input_read`) with the kernel's semantics and gas. A run that does
    /// not halt leaves memory as it is (callers compare single runs then).
    pub fn call(&mut self, name: &str, args: [u64; 4], input: &[u8], gas: u64) -> Run {
        let pc = self
            .module
            .exports()
            .find(|e| e.symbol().as_bytes() == name.as_bytes())
            .unwrap_or_else(|| panic!("no export {name}"))
            .program_counter();
        let instance = &mut self.instance;
        for reg in Reg::ALL {
            instance.set_reg(reg, 0);
        }
        instance.set_reg(Reg::RA, HALT_ADDRESS);
        instance.set_reg(Reg::SP, STACK_END);
        for (reg, arg) in [Reg::A0, Reg::A1, Reg::A2, Reg::A3].into_iter().zip(args) {
            instance.set_reg(reg, arg);
        }
        instance.set_next_program_counter(ProgramCounter(pc.0));
        let gas = i64::try_from(gas).unwrap();
        instance.set_gas(gas);
        let mut output = Vec::new();
        let exit = loop {
            match instance.run().unwrap() {
                InterruptKind::Finished => break ExitReason::Halt,
                InterruptKind::Trap => break ExitReason::Panic,
                InterruptKind::NotEnoughGas => break ExitReason::OutOfGas,
                InterruptKind::Segfault(fault) => break ExitReason::PageFault(fault.page_address),
                InterruptKind::Step => continue,
                InterruptKind::Ecalli(n) => {
                    let op = KernelOp::from_number(n)
                        .unwrap_or_else(|| panic!("ecalli {n}: not a kernel op"));
                    if !serve(instance, op, input, &mut output) {
                        break ExitReason::OutOfGas;
                    }
                }
            }
        };
        Run {
            exit,
            r7: instance.reg(Reg::A0),
            r8: instance.reg(Reg::A1),
            output: if exit == ExitReason::Halt {
                output
            } else {
                Vec::new()
            },
            gas_used: (gas - instance.gas().max(0)) as u64,
        }
    }
}

/// Charges `gas` to the instance; false when it runs out.
fn charge(instance: &mut RawInstance, gas: i64) -> bool {
    let left = instance.gas() - gas;
    instance.set_gas(left.max(0));
    left >= 0
}

/// `op`'s per-page charge for `bytes` bytes moved.
fn pages(op: KernelOp, bytes: u64) -> i64 {
    bytes.div_ceil(4096) as i64 * op.gas_per_page()
}

/// One I/O op as the kernel serves it (`kernel/ops/io.rs`); false when
/// the gas ran out.
fn serve(instance: &mut RawInstance, op: KernelOp, input: &[u8], output: &mut Vec<u8>) -> bool {
    if !charge(instance, op.gas_cost()) {
        return false;
    }
    let [a0, a1, a2] = [Reg::A0, Reg::A1, Reg::A2].map(|r| instance.reg(r));
    let result = match op {
        KernelOp::Gas => instance.gas() as u64,
        KernelOp::InputLen => input.len() as u64,
        KernelOp::Log | KernelOp::SetOutput => match instance.read_memory(a0 as u32, a1 as u32) {
            Ok(bytes) => {
                if !charge(instance, pages(op, a1)) {
                    return false;
                }
                if op == KernelOp::SetOutput {
                    *output = bytes;
                }
                0
            }
            Err(_) => ERR_MEMORY,
        },
        KernelOp::InputRead => match (input.len() as u64).checked_sub(a0) {
            None => ERR_OFFSET,
            Some(available) => {
                let n = a2.min(available);
                let bytes = &input[a0 as usize..(a0 + n) as usize];
                if !charge(instance, pages(op, n)) {
                    return false;
                }
                match instance.write_memory(a1 as u32, bytes) {
                    Ok(()) => n,
                    Err(_) => ERR_MEMORY,
                }
            }
        },
        other => panic!("the reference serves only I/O ops, not {}", other.name()),
    };
    instance.set_reg(Reg::A0, result);
    true
}
