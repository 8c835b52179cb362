//! A counter: its state is one `u64` of static memory, kept between
//! invocations.
//!
//! Endpoints: `increment(by)` adds `by` and returns the new count; `get()`
//! returns it; `add_input()` adds every byte of the input and returns the
//! new count (and outputs it as 8 little-endian bytes).

#![no_std]
#![no_main]

use capbox_sdk::polkavm_export;

static mut COUNT: u64 = 0;

fn count() -> u64 {
    // SAFETY: a program runs single-threaded; nothing else holds a reference.
    unsafe { core::ptr::addr_of!(COUNT).read() }
}

fn set_count(value: u64) {
    // SAFETY: as above.
    unsafe { core::ptr::addr_of_mut!(COUNT).write(value) }
}

#[polkavm_export]
extern "C" fn increment(by: u64) -> u64 {
    let new = count().wrapping_add(by);
    set_count(new);
    new
}

#[polkavm_export]
extern "C" fn get() -> u64 {
    count()
}

#[polkavm_export]
extern "C" fn add_input() -> u64 {
    let mut buf = [0u8; 256];
    let mut offset = 0;
    let mut sum = count();
    loop {
        let n = match capbox_sdk::input_read(offset, &mut buf) {
            Ok(n) => n,
            Err(_) => capbox_sdk::abort(),
        };
        if n == 0 {
            break;
        }
        for b in &buf[..n] {
            sum = sum.wrapping_add(u64::from(*b));
        }
        offset += n;
    }
    set_count(sum);
    if capbox_sdk::set_output(&sum.to_le_bytes()).is_err() {
        capbox_sdk::abort();
    }
    sum
}
