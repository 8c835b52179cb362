//! The guest functions the host calls (see `capbox_shared::abi`).

use alloc::vec::Vec;

use capbox_shared::abi::{GuestFunction, StatsMsg, encode_stats_reply};
use hyperlight_guest_bin::guest_function::register::register_fn;

/// Registers every guest function under its ABI name.
pub fn register_all() {
    register_fn(GuestFunction::Ping.name(), ping);
    register_fn(GuestFunction::Stats.name(), stats);
}

fn ping(_request: Vec<u8>) -> Vec<u8> {
    Vec::new()
}

fn stats(_request: Vec<u8>) -> Vec<u8> {
    let (used, capacity) = crate::arena::usage();
    encode_stats_reply(&StatsMsg {
        arena_used_bytes: used as u64,
        arena_capacity_bytes: capacity as u64,
        ..StatsMsg::default()
    })
}
