//! The raw kernel ops: one import per op of the kernel's op table
//! (`with_kernel_ops!`), named `capbox_<op>` and declared with
//! `index = <op number>`, so the linker writes `ecalli <op number>` and the
//! importer only checks the mapping (it never rewrites code). Every
//! argument and result is a register (φ7.. in, φ7 and φ8 out); prefer the
//! safe wrappers in the crate root.
//!
//! PolkaVM's import ABI returns at most two registers (φ7, φ8), so
//! `capbox_call`'s φ9 (the child's φ8) and φ10 (its output length) are not
//! visible here: read the output with `output_read`.

#[polkavm_derive::polkavm_import]
extern "C" {
    #[polkavm_import(index = 0)]
    pub fn capbox_gas() -> u64;
    #[polkavm_import(index = 1)]
    pub fn capbox_log(ptr: *const u8, len: u64) -> u64;
    #[polkavm_import(index = 2)]
    pub fn capbox_set_output(ptr: *const u8, len: u64) -> u64;
    #[polkavm_import(index = 3)]
    pub fn capbox_input_len() -> u64;
    #[polkavm_import(index = 4)]
    pub fn capbox_input_read(offset: u64, ptr: *mut u8, len: u64) -> u64;
    #[polkavm_import(index = 5)]
    pub fn capbox_cap_info(slot: u64) -> (u64, u64);
    #[polkavm_import(index = 6)]
    pub fn capbox_data_new(dst_slot: u64, ptr: *const u8, len: u64) -> u64;
    #[polkavm_import(index = 7)]
    pub fn capbox_data_read(slot: u64, offset: u64, ptr: *mut u8, len: u64) -> u64;
    #[polkavm_import(index = 8)]
    pub fn capbox_data_write(slot: u64, offset: u64, ptr: *const u8, len: u64) -> u64;
    #[polkavm_import(index = 9)]
    pub fn capbox_slot_move(src_slot: u64, dst_slot: u64) -> u64;
    #[polkavm_import(index = 10)]
    pub fn capbox_slot_copy(src_slot: u64, dst_slot: u64) -> u64;
    #[polkavm_import(index = 11)]
    pub fn capbox_slot_drop(slot: u64) -> u64;
    #[polkavm_import(index = 12)]
    pub fn capbox_hash_of(slot: u64, ptr: *mut u8) -> u64;
    #[polkavm_import(index = 13)]
    pub fn capbox_type_of(slot: u64, ptr: *mut u8) -> u64;
    #[polkavm_import(index = 14)]
    pub fn capbox_spawn(image_slot: u64, dst_slot: u64) -> u64;
    #[polkavm_import(index = 15)]
    pub fn capbox_give(child_slot: u64, src_slot: u64, child_dst_slot: u64) -> u64;
    #[polkavm_import(index = 16)]
    pub fn capbox_take(child_slot: u64, child_src_slot: u64, dst_slot: u64) -> u64;
    #[polkavm_import(index = 17)]
    pub fn capbox_call(
        child_slot: u64,
        endpoint_and_gas: u64,
        a0: u64,
        a1: u64,
        a2: u64,
        a3: u64,
    ) -> (u64, u64);
    #[polkavm_import(index = 18)]
    pub fn capbox_output_read(offset: u64, ptr: *mut u8, len: u64) -> u64;
}
