//! Micro-benchmarks run inside the kernel (the guest's `bench` function,
//! or in-process for the local backend). Each returns the time-stamp
//! counter cycles for all iterations together. They use a private
//! directory, so they never disturb published state.

use alloc::vec;
use alloc::vec::Vec;

use super::error::KernelError;
use super::instance::{new_instance, new_instance_with_slots};
use super::invoke::{LogSink, NoLog, invoke};
use super::programs::ProgramCache;
use super::sample::{Endpoint, sample_image};
use super::service::{KernelHost, KernelState};
use crate::CacheDirectory;
use crate::abi::{ErrorKind, RemoteError};
use crate::cap::{Cap, Data, PAGE_SIZE};
use crate::hash::CapHash;

/// Every benchmark, with what one iteration does.
pub const BENCHMARKS: [(&str, &str); 10] = [
    ("noop", "nothing (the counter's own overhead)"),
    (
        "hash_page",
        "hash a one-page Data cap after changing its page",
    ),
    ("put_cap", "decode, hash and store a one-page Data cap"),
    (
        "invoke_empty",
        "invoke the sample's empty endpoint (state unchanged)",
    ),
    (
        "invoke_increment",
        "invoke the sample's increment endpoint (commit + settle)",
    ),
    (
        "interp_loop_1000",
        "invoke a 1000-iteration PVM loop (about 2000 instructions)",
    ),
    (
        "abi_invoke_empty",
        "the whole `invoke_one` guest function: decode, invoke empty, encode",
    ),
    (
        "abi_decode_invoke",
        "verify and decode an invoke_one request",
    ),
    ("abi_encode_reply", "encode a one-result invoke reply"),
    (
        "invoke_call_empty",
        "invoke an endpoint that `call`s a child's empty endpoint (minus invoke_empty: the cost of one call)",
    ),
];

struct BenchHost;

impl LogSink for BenchHost {
    fn log(&mut self, _message: &[u8]) {}
}

impl KernelHost for BenchHost {
    fn fetch_blob(&mut self, _hash: &CapHash) -> Option<Vec<u8>> {
        None
    }
}

fn cycles() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions; it only reads the counter.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

fn kernel_failed(e: KernelError) -> RemoteError {
    super::service::kernel_error_to_remote(&e)
}

/// Runs benchmark `name` for `iters` iterations; returns the cycles.
pub fn run(name: &str, iters: u64) -> Result<u64, RemoteError> {
    let dir = CacheDirectory::<foldhash::fast::FixedState>::new_const(
        foldhash::fast::FixedState::with_seed(1),
        foldhash::fast::FixedState::with_seed(2),
    );
    let programs = ProgramCache::new();
    match name {
        "noop" => Ok(timed(iters, |_| {})),
        "abi_decode_invoke" => {
            let request = crate::abi::encode_invoke_one_request(&crate::abi::InvocationMsg {
                instance: [7; 32],
                endpoint: 1,
                args: [1, 2, 3, 4],
                gas: 1000,
                input: &[],
                timeout: crate::kernel::NO_TIMEOUT,
            });
            let mut calls = 0;
            let t = timed(iters, |_| {
                if let Ok(call) = crate::abi::decode_invoke_one_request(&request) {
                    calls += call.endpoint as usize;
                }
            });
            core::hint::black_box(calls);
            Ok(t)
        }
        "abi_encode_reply" => {
            let result = Ok(crate::abi::InvokeResultMsg {
                exit: crate::abi::ExitMsg { kind: 0, arg: 0 },
                r7: 1,
                r8: 2,
                output: Vec::new(),
                gas_used: 3,
                instance: [9; 32],
            });
            let mut len = 0;
            let t = timed(iters, |_| {
                let mut reply = crate::abi::InvokeReplyWriter::with_capacity(1);
                reply.push(result.clone());
                len += reply.finish().len();
            });
            core::hint::black_box(len);
            Ok(t)
        }
        "hash_page" => {
            let mut data = Data::new(PAGE_SIZE as u64).map_err(bad_setup)?;
            let mut page = [0u8; PAGE_SIZE];
            let mut sink = CapHash([0; 32]);
            let t = timed(iters, |i| {
                page[..8].copy_from_slice(&i.to_le_bytes());
                let _ = data.write_page(0, &page);
                sink = data.hash();
            });
            core::hint::black_box(sink);
            Ok(t)
        }
        "put_cap" => {
            let mut encoded = Vec::new();
            let mut page = vec![0u8; PAGE_SIZE];
            let mut failures = 0u64;
            let t = timed(iters, |i| {
                page[..8].copy_from_slice(&i.to_le_bytes());
                encoded = match Data::from_bytes(&page)
                    .map(Cap::Data)
                    .and_then(|c| c.encode())
                {
                    Ok(e) => e,
                    Err(_) => {
                        failures += 1;
                        return;
                    }
                };
                match Cap::decode(&encoded) {
                    Ok(cap) if dir.put_cap(&cap).is_ok() => {}
                    _ => failures += 1,
                }
            });
            if failures > 0 {
                return Err(bad_setup("put_cap failed during the benchmark"));
            }
            Ok(t)
        }
        "invoke_empty" | "invoke_increment" | "interp_loop_1000" | "abi_invoke_empty"
        | "invoke_call_empty" => {
            let image = sample_image();
            let image_cap = Cap::Image(image.clone());
            let image_hash = dir.put_cap(&image_cap).map_err(bad_setup)?;
            let mut fresh = new_instance(image_hash, &image).map_err(kernel_failed)?;
            for cap in [&fresh.memory, &fresh.root_cnode, &fresh.instance] {
                dir.put_cap(cap).map_err(bad_setup)?;
            }
            if name == "invoke_call_empty" {
                // The parent holds a fresh child in slot 0.
                let child = fresh.instance_hash;
                fresh = new_instance_with_slots(image_hash, &image, &[(0, child)])
                    .map_err(kernel_failed)?;
                for cap in [&fresh.root_cnode, &fresh.instance] {
                    dir.put_cap(cap).map_err(bad_setup)?;
                }
            }
            let (endpoint, arg) = match name {
                "invoke_empty" => (Endpoint::Empty, 0),
                "invoke_increment" => (Endpoint::Increment, 0),
                "invoke_call_empty" => (Endpoint::CallEmpty, 0),
                _ => (Endpoint::Loop, 1000),
            };
            let mut instance = fresh.instance_hash;
            if name == "abi_invoke_empty" {
                let state = KernelState {
                    dir: &dir,
                    programs: &programs,
                };
                let request = crate::abi::encode_invoke_one_request(&crate::abi::InvocationMsg {
                    instance: instance.0,
                    endpoint: Endpoint::Empty.index(),
                    args: [0; 4],
                    gas: 1000,
                    input: &[],
                    timeout: crate::kernel::NO_TIMEOUT,
                });
                let mut reply_len = 0;
                let t = timed(iters, |_| {
                    reply_len += state
                        .handle(
                            &mut BenchHost,
                            crate::abi::GuestFunction::InvokeOne,
                            &request,
                        )
                        .len();
                });
                core::hint::black_box(reply_len);
                return Ok(t);
            }
            let mut error = None;
            let t = timed(iters, |_| {
                match invoke(
                    &dir,
                    &programs,
                    &mut NoLog,
                    &instance,
                    endpoint.index(),
                    [arg, 0, 0, 0],
                    1 << 40,
                ) {
                    Ok(outcome) => instance = outcome.instance,
                    Err(e) => error = Some(e),
                }
            });
            match error {
                Some(e) => Err(kernel_failed(e)),
                None => Ok(t),
            }
        }
        _ => Err(RemoteError {
            kind: ErrorKind::UnknownBenchmark,
            message: alloc::format!(
                "no benchmark {name:?}; have: {}",
                BENCHMARKS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            hash: None,
        }),
    }
}

fn bad_setup(e: impl core::fmt::Display) -> RemoteError {
    RemoteError {
        kind: ErrorKind::Kernel,
        message: alloc::format!("benchmark setup failed: {e}"),
        hash: None,
    }
}

fn timed(iters: u64, mut body: impl FnMut(u64)) -> u64 {
    let start = cycles();
    for i in 0..iters {
        body(i);
    }
    cycles().wrapping_sub(start)
}
