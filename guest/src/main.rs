//! capbox's guest kernel: runs inside a Hyperlight micro-VM.
//!
//! It keeps every published cap in a statically allocated `CacheDirectory`,
//! runs invocations with the shared kernel (`capbox_shared::kernel`), and
//! answers the host's calls listed in `capbox_shared::abi::GuestFunction`.
//! Every handler takes one flatbuffers request and returns one reply; a
//! request the guest refuses is a typed error inside the reply, while a
//! guest panic or allocation failure aborts the call (the host sees an
//! error and rebuilds the sandbox).
#![no_std]
#![no_main]

extern crate alloc;

mod arena;
mod handlers;

use capbox_shared::abi::AbiNote;

/// The ABI version as an ELF note; the host reads it before loading us.
#[used]
#[unsafe(link_section = ".note.capbox-abi")]
static ABI_NOTE: AbiNote = AbiNote::current();

/// The CPU features this build's code needs, as an ELF note next to the
/// ABI note; the host checks CPUID for them before loading us.
#[cfg(feature = "simd")]
#[repr(C, align(4))]
struct FeaturesNote {
    namesz: u32,
    descsz: u32,
    note_type: u32,
    name: [u8; 8],
    desc: [u8; 4],
}

#[cfg(feature = "simd")]
#[used]
#[unsafe(link_section = ".note.capbox-abi")]
static FEATURES_NOTE: FeaturesNote = FeaturesNote {
    namesz: 7, // "capbox\0"
    descsz: 4,
    note_type: capbox_shared::hash::GUEST_FEATURES_NOTE_TYPE,
    name: *b"capbox\0\0",
    desc: capbox_shared::hash::GUEST_NEEDS_SSE41.to_le_bytes(),
};

#[hyperlight_guest_bin::main]
fn main() {
    // First: the page allocator is fixed by the first page allocation.
    arena::init();
    handlers::register_all();
}
