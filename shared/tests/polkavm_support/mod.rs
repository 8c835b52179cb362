//! Running one raw code blob on capbox's interpreter and on PolkaVM 0.37's
//! interpreter with the same small memory (4 KiB of read-write data, 4 KiB
//! of stack), all registers zero, entry at pc 0: the set-up the PolkaVM
//! differential tests share.

use capbox_shared::pvm::layout::StandardLayout;
use capbox_shared::pvm::{Machine, Memory, Program};
use polkavm::{
    BackendKind, Config, Engine, GasMeteringKind, Module, ModuleConfig, ProgramBlob,
    ProgramCounter, ProgramParts, RawInstance, Reg,
};

/// Ours: the decoded program and a machine ready to run it.
pub fn capbox_machine(blob: &[u8], gas: i64) -> (Program, Machine) {
    let program = Program::from_blob(blob).unwrap();
    let layout = StandardLayout::new(0, 4096, 0, 4096, 0).unwrap();
    let memory = Memory::standard(&layout, &[], &[0; 4096], &[]).unwrap();
    (program, Machine::new([0; 13], 0, gas, memory))
}

/// PolkaVM's interpreter, instantiated and ready to run.
pub fn polkavm_instance(blob: &[u8], gas: i64) -> RawInstance {
    let mut config = Config::from_env().unwrap();
    config.set_backend(Some(BackendKind::Interpreter));
    let engine = Engine::new(&config).unwrap();
    let mut parts = ProgramParts::empty(polkavm::program::InstructionSetKind::JamV1);
    parts.rw_data_size = 4096;
    parts.stack_size = 4096;
    parts.code_and_jump_table = blob.to_vec().into();
    let blob = ProgramBlob::from_parts(parts).unwrap();
    let mut module_config = ModuleConfig::new();
    module_config.set_gas_metering(Some(GasMeteringKind::Sync));
    module_config.set_page_size(0x1000);
    let module = Module::from_blob(&engine, &module_config, blob).unwrap();
    let mut instance = module.instantiate().unwrap();
    instance.set_next_program_counter(ProgramCounter(0));
    for reg in Reg::ALL {
        instance.set_reg(reg, 0);
    }
    instance.set_gas(gas);
    instance
}

/// PolkaVM's registers φ0..φ12.
pub fn polkavm_regs(instance: &RawInstance) -> [u64; 13] {
    core::array::from_fn(|i| instance.reg(Reg::ALL[i]))
}
