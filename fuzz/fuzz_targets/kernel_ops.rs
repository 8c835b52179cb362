//! Random programs calling random kernel ops with random arguments, run
//! through the kernel service (`KernelState::handle` / `handle_owned`).
//!
//! The input builds one PVM program with `ProgramBuilder`: a straight-line
//! sequence of steps, each loading φ7..φ12 with values from interesting sets
//! chosen by the op's argument names (small slots, bad slots; pointers into
//! the read-write data, the read-only data, the stack (φ1-relative), the
//! unmapped page, 0, the top of the address space; lengths around 0, a
//! page, the ops' limits and huge; call selectors with small gas), then
//! `ecalli` of a (mostly valid) op; occasionally a store of a result to
//! memory, a register move, a `trap`, or a jump / branch back to an earlier
//! step (loops end when the gas does). Each step is its own basic block, so
//! any step can be a jump target or an endpoint. The program halts at the
//! end.
//!
//! Its Image is published together with root instances whose root CNodes
//! hold a mix of caps (`new_instance_with_slots`): Data of various sizes
//! (one long and sparse), the Image itself (so `spawn` and `call` recurse),
//! an Instance of the same image (callable at once), CNodes, a Type,
//! sometimes a hash nobody has. Then a few invocations (small gas,
//! sometimes an input; single, batched or chained) of the root instances
//! and of the states earlier invocations produced.
//!
//! Invariants, beyond "no panic, no hang":
//! * two kernels in lockstep, one through `handle` and one through
//!   `handle_owned`, give byte-identical replies and the same log lines;
//! * every reply decodes as an invoke reply;
//! * after each invoke reply the directory's working tier is empty (each
//!   invocation sweeps its working entries);
//! * an outcome that is not a halt names the instance it was given; gas
//!   used never exceeds the gas limit;
//! * a halt's new state is settled and published: every cap reachable from
//!   the new instance is a blob in the directory (when the input planted no
//!   missing hash);
//! * determinism: for some invocations, a fresh kernel (fresh directory and
//!   `ProgramCache`) given every blob the first one holds answers the same
//!   request with the same bytes and the same logs.
//! * the reply budget: every output is at most `MAX_OUTPUT_LEN`, a batch's
//!   outputs total at most `MAX_BATCH_OUTPUT_BYTES`, and a call is refused
//!   with `ReplyBudget` exactly when the outputs before it leave less than
//!   `MAX_OUTPUT_LEN` (so the refused calls are a suffix of the batch);
//! * a program over `MAX_INSTRUCTIONS` (instructions or jump-table entries)
//!   never runs: `BadProgram`; one within the limit is never `BadProgram`;
//! * `Timeout` only for a call with a deadline (the host's clock ticks once
//!   per look).
//!
//! *Large mode* (a quarter of the inputs, chosen by the first octet): the
//! program is padded after its code to around `MAX_INSTRUCTIONS`
//! instructions (one-byte `fallthrough`s, or one huge basic block of
//! `add_imm_64`, then a halt; the padding is another endpoint) or gets a
//! jump table that long; rw data up to 1.5 MiB and heaps up to 4097 pages;
//! steps that `set_output` (or `input_read`) around `MAX_OUTPUT_LEN`;
//! batches of up to six calls with gas up to 2 000 000 and inputs up to
//! `MAX_INPUT_LEN` + 1.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use capbox_shared::abi::{self, CapBlobMsg, ErrorKind, GuestFunction, InvocationMsg};
use capbox_shared::kernel::ops::{MAX_INPUT_LEN, MAX_LOG_LEN, MAX_OUTPUT_LEN, MAX_TRANSFER_LEN};
use capbox_shared::kernel::{KernelHost, KernelOp, KernelState, LogSink, ProgramCache};
use capbox_shared::kernel::{MAX_BATCH_OUTPUT_BYTES, NO_TIMEOUT, new_instance_with_slots, sample};
use capbox_shared::pvm::asm::{Imm, ProgramBuilder, Reg};
use capbox_shared::pvm::{MAX_INSTRUCTIONS, deblob, decode_natural, encode_natural};
use capbox_shared::{CNode, CacheDirectory, Cap, CapHash, CapHashOrRef, Data, Image, TypeCap};
use libfuzzer_sys::fuzz_target;

/// Program steps at most.
const MAX_STEPS: usize = 24;
/// Invocations per input at most.
const MAX_INVOCATIONS: usize = 8;
/// Gas limits an invocation picks from: small, so recursion and loops end.
const GAS: [u64; 6] = [20_000, 3_000, 60_000, 500, 50, 0];
/// Invocation inputs (most calls have none).
const INPUTS: [&[u8]; 5] = [b"", b"", b"", b"abc", &[0xa5; 5000]];
/// The page no layout maps (large mode: one far past its sections).
const UNMAPPED: u64 = 0x10_0000;
const UNMAPPED_LARGE: u64 = 0x7000_0000;
/// Large mode: gas limits (a 1 MiB `set_output` costs ~33k, a run through
/// 2^18 padding instructions ~2^18).
const GAS_LARGE: [u64; 6] = [40_000, 300_000, 2_000_000, 20_000, 500, 0];
/// Large mode: lengths for `set_output`, `input_read` and the like.
const LENS_LARGE: [u64; 6] = [
    MAX_OUTPUT_LEN,
    MAX_OUTPUT_LEN,
    MAX_OUTPUT_LEN - 1,
    MAX_OUTPUT_LEN + 1,
    1 << 19,
    3 << 18,
];
/// Deadlines (ticks of `FuzzHost`'s clock, one per look): mostly none.
const TIMEOUTS: [u64; 8] = [NO_TIMEOUT, NO_TIMEOUT, NO_TIMEOUT, NO_TIMEOUT, 0, 1, 3, 40];

/// `KERNEL_OPS_DEBUG=1`: print the program, each request and each reply
/// (to read a crash input: `cargo fuzz run kernel_ops <file>`).
fn debug() -> bool {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("KERNEL_OPS_DEBUG").is_some())
}

#[path = "kernel_ops/program.rs"]
mod program;
use program::*;

/// Records the log lines one kernel produces and serves the blobs the input
/// kept on the host side.
/// Its clock ticks once per look, so a deadline of `n` ticks ends an
/// invocation at its `n`th look (deterministic: counted from the start).
#[derive(Default)]
struct FuzzHost {
    blobs: HashMap<[u8; 32], Vec<u8>>,
    logs: Vec<Vec<u8>>,
    ticks: u64,
}

impl LogSink for FuzzHost {
    fn log(&mut self, message: &[u8]) {
        self.logs.push(message.to_vec());
    }
}

impl KernelHost for FuzzHost {
    fn fetch_blob(&mut self, hash: &CapHash) -> Option<Vec<u8>> {
        self.blobs.get(&hash.0).cloned()
    }
    fn now(&mut self) -> Option<u64> {
        self.ticks += 1;
        Some(self.ticks)
    }
}

/// Large mode's invocation inputs: none, a little, half and all of
/// `MAX_INPUT_LEN`, and one octet more (refused: `BadMessage`). At most
/// one big input per request (`*big`): encoding a request costs ~1 µs per
/// input octet with the fuzzer's instrumentation.
fn large_input(input: &mut Input<'_>, big_used: &mut bool) -> &'static [u8] {
    static BIG: OnceLock<Vec<u8>> = OnceLock::new();
    let big = BIG.get_or_init(|| {
        (0..=MAX_INPUT_LEN as usize)
            .map(|i| (i as u8) ^ (i >> 12) as u8)
            .collect()
    });
    let len = match input.u8() % 8 {
        4 if !*big_used => 1 << 19,
        5 if !*big_used => MAX_INPUT_LEN as usize,
        6 if !*big_used => MAX_INPUT_LEN as usize + 1,
        3..=6 => 3,
        _ => 0,
    };
    *big_used |= len > 3;
    &big[..len]
}

/// The caps to publish and the root instances.
struct World {
    published: Vec<Cap>,
    /// Only on the host (`fetch_blob`).
    host_only: Vec<Cap>,
    roots: Vec<CapHash>,
    /// A slot names a hash nobody has.
    planted_missing: bool,
}

fn data_cap(input: &mut Input<'_>) -> Cap {
    let len = input.pick(&[0usize, 1, 5, 64, 4096, 5000]);
    let mut data = Data::from_bytes(&vec![input.u8() | 1; len]).expect("small data");
    if input.u8().is_multiple_of(8) {
        // Long and sparse.
        let long = input.pick(&[1u64 << 20, (1 << 24) + 3, 70_000]);
        data.set_len(long).expect("within MAX_DATA_LEN");
        data.write(long - 1, &[7]).expect("in range");
    }
    Cap::Data(data)
}

fn build_world(input: &mut Input<'_>, image: &Image) -> World {
    let image_cap = Cap::Image(image.clone());
    let image_hash = image_cap.hash().expect("the image hashes");
    let mut world = World {
        published: vec![image_cap],
        host_only: Vec::new(),
        roots: Vec::new(),
        planted_missing: false,
    };
    // A child instance of the same image (its own CNode: a Data, maybe the
    // image), callable from a slot at once.
    let mut child_slots = vec![(0, {
        let cap = data_cap(input);
        let hash = cap.hash().expect("data hashes");
        world.published.push(cap);
        hash
    })];
    if input.u8().is_multiple_of(2) {
        child_slots.push((1, image_hash));
    }
    let child = new_instance_with_slots(image_hash, image, &child_slots).expect("child instance");
    let child_hash = child.instance_hash;
    world
        .published
        .extend([child.memory, child.root_cnode, child.instance]);
    let sample = Cap::Image(sample::sample_image());
    let sample_hash = sample.hash().expect("the sample hashes");
    world.published.push(sample);

    for _ in 0..1 + input.u8() % 2 {
        let mut slots = Vec::new();
        for slot in 0..8u32 {
            let choice = input.u8() % 12;
            let (hash, cap) = match choice {
                0 | 1 => continue,
                2..=4 => {
                    let cap = data_cap(input);
                    (cap.hash().expect("data hashes"), Some(cap))
                }
                5 | 6 => (image_hash, None),
                7 => (child_hash, None),
                8 => {
                    let mut cnode = CNode::new();
                    for _ in 0..input.u8() % 3 {
                        let _ =
                            cnode.set(u32::from(input.u8() % 8), CapHashOrRef::Hash(image_hash));
                    }
                    let cap = Cap::CNode(cnode);
                    (cap.hash().expect("cnode hashes"), Some(cap))
                }
                9 => {
                    let cap = Cap::Type(TypeCap {
                        image_hash_chain: TypeCap::child(&TypeCap::ROOT_CHAIN, &image_hash),
                    });
                    (cap.hash().expect("type hashes"), Some(cap))
                }
                10 => (sample_hash, None),
                _ => {
                    // Held by the host only, or by nobody.
                    if input.u8().is_multiple_of(2) {
                        world.planted_missing = true;
                        (CapHash([input.u8() | 1; 32]), None)
                    } else {
                        let cap = data_cap(input);
                        let hash = cap.hash().expect("data hashes");
                        world.host_only.push(cap);
                        (hash, None)
                    }
                }
            };
            if let Some(cap) = cap {
                world.published.push(cap);
            }
            slots.push((slot, hash));
        }
        let root = new_instance_with_slots(image_hash, image, &slots).expect("root instance");
        world.roots.push(root.instance_hash);
        world
            .published
            .extend([root.memory, root.root_cnode, root.instance]);
    }
    world
}

fn put_request(caps: &[Cap]) -> Vec<u8> {
    let encoded: Vec<(CapHash, Vec<u8>)> = caps
        .iter()
        .map(|c| (c.hash().expect("hashes"), c.encode().expect("encodes")))
        .collect();
    let msgs: Vec<CapBlobMsg<'_>> = encoded
        .iter()
        .map(|(h, b)| CapBlobMsg {
            hash: Some(h.0),
            bytes: b,
        })
        .collect();
    abi::encode_put_cap_request(&msgs)
}

/// Every cap reachable from `root` is a blob in `dir` (no working links),
/// or one the host holds that the kernel never needed (a link the program
/// moved without reading it).
fn assert_published(dir: &CacheDirectory, host: &HashMap<[u8; 32], Vec<u8>>, root: CapHash) {
    let mut seen = HashSet::new();
    let mut todo = vec![root];
    while let Some(hash) = todo.pop() {
        if !seen.insert(hash) || (host.contains_key(&hash.0) && !dir.contains_blob(&hash)) {
            continue;
        }
        let cap = dir.get_blob(&hash).unwrap_or_else(|| {
            panic!("{hash:?}, reachable from a halt's state {root:?}, is not published")
        });
        let link = |l: &CapHashOrRef| match l {
            CapHashOrRef::Hash(h) => *h,
            CapHashOrRef::Ref(r) => panic!("a published cap links a working entry {r:?}"),
        };
        match &*cap {
            Cap::CNode(cnode) => todo.extend(cnode.iter().map(|(_, l)| link(l))),
            Cap::Instance(inst) => {
                todo.extend([inst.image, link(&inst.memory), link(&inst.root_cnode)]);
            }
            Cap::Data(_) | Cap::Image(_) | Cap::Type(_) => {}
        }
    }
}

fn fresh_state_reply(
    dir_a: &CacheDirectory,
    host_blobs: &HashMap<[u8; 32], Vec<u8>>,
    function: GuestFunction,
    request: &[u8],
) -> (Vec<u8>, Vec<Vec<u8>>) {
    let dir = CacheDirectory::new();
    let programs = ProgramCache::new();
    for (hash, cap) in dir_a.iter_blobs() {
        dir.put_cap_with_hash(hash, &cap).expect("a blob copies");
    }
    let mut host = FuzzHost {
        blobs: host_blobs.clone(),
        ..FuzzHost::default()
    };
    let state = KernelState {
        dir: &dir,
        programs: &programs,
    };
    let reply = state.handle(&mut host, function, request);
    assert_eq!(
        dir.stats().instance_count,
        0,
        "a fresh kernel kept working entries"
    );
    (reply, host.logs)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    // A quarter of the inputs: large mode.
    let large = input.u8().is_multiple_of(4);
    let (image, _layout, size) = fuzz_image(&mut input, large);
    let world = build_world(&mut input, &image);
    if debug() {
        let listing = if image.code.len() > 4096 {
            format!("{} octets of code", image.code.len())
        } else {
            capbox_shared::pvm::asm::disassemble(&image.code).unwrap_or_default()
        };
        eprintln!(
            "program{}:\n{listing}\n{size:?}, endpoints {:?}, rw {} bytes, ro {} bytes, heap {} pages, stack {}",
            if large { " (large mode)" } else { "" },
            image.endpoints,
            image.rw_data.len(),
            image.ro_data.len(),
            image.heap_pages,
            image.stack_size
        );
    }

    let dir_a = CacheDirectory::new();
    let programs_a = ProgramCache::new();
    let dir_b = CacheDirectory::new();
    let programs_b = ProgramCache::new();
    let state_a = KernelState {
        dir: &dir_a,
        programs: &programs_a,
    };
    let state_b = KernelState {
        dir: &dir_b,
        programs: &programs_b,
    };
    let mut host_a = FuzzHost::default();
    for cap in &world.host_only {
        host_a.blobs.insert(
            cap.hash().expect("hashes").0,
            cap.encode().expect("encodes"),
        );
    }
    let mut host_b = FuzzHost {
        blobs: host_a.blobs.clone(),
        ..FuzzHost::default()
    };

    let put = put_request(&world.published);
    let reply_a = state_a.handle(&mut host_a, GuestFunction::PutCap, &put);
    let reply_b = state_b.handle_owned(&mut host_b, GuestFunction::PutCap, put);
    assert_eq!(reply_a, reply_b);
    abi::decode_put_cap_reply(&reply_a)
        .expect("put_cap reply decodes")
        .expect("the world publishes");

    let mut instances = world.roots.clone();
    for _ in 0..1 + usize::from(input.u8()) % MAX_INVOCATIONS {
        let count = match input.u8() % 8 {
            // Large mode: mostly batches, for outputs past the reply budget.
            n if large && n < 6 => 2 + usize::from(input.u8() % 5),
            0 => 2 + usize::from(input.u8() % 2),
            _ => 1,
        };
        let mut big_used = false;
        let calls: Vec<InvocationMsg<'_>> = (0..count)
            .map(|i| {
                let pick = input.u8();
                // A later call of a batch sometimes chains on the previous.
                let instance = if i > 0 && pick.is_multiple_of(2) {
                    [0; 32]
                } else {
                    instances[usize::from(pick) % instances.len()].0
                };
                InvocationMsg {
                    instance,
                    endpoint: match input.u8() {
                        // Mostly one the image has.
                        0..=223 => u32::from(input.u8()) % image.endpoints.len() as u32,
                        _ => u32::from(input.u8() % 8),
                    },
                    args: [
                        u64::from(input.u8() % 8),
                        input.pick(&[0, 1, 100, 4096, u64::MAX]),
                        u64::from(input.u8()),
                        input.u64(),
                    ],
                    gas: input.pick(if large { &GAS_LARGE } else { &GAS }),
                    input: if large {
                        large_input(&mut input, &mut big_used)
                    } else {
                        input.pick(&INPUTS)
                    },
                    timeout: input.pick(&TIMEOUTS),
                }
            })
            .collect();
        let (function, request) = if count == 1 && input.u8().is_multiple_of(2) {
            (
                GuestFunction::InvokeOne,
                abi::encode_invoke_one_request(&calls[0]),
            )
        } else {
            (
                GuestFunction::Invoke,
                abi::encode_invoke_request(&[], &calls),
            )
        };
        let check_determinism = input.u8().is_multiple_of(4);
        let logs_before = host_a.logs.len();

        let reply_a = state_a.handle(&mut host_a, function, &request);
        let reply_b = state_b.handle_owned(&mut host_b, function, request.clone());
        assert_eq!(reply_a, reply_b, "handle and handle_owned disagree");
        assert_eq!(
            host_a.logs, host_b.logs,
            "the two kernels logged differently"
        );
        assert_eq!(
            dir_a.stats().instance_count,
            0,
            "working entries survive an invocation"
        );
        assert_eq!(dir_b.stats().instance_count, 0);

        let results = abi::decode_invoke_reply(&reply_a).expect("invoke reply decodes");
        // An input over MAX_INPUT_LEN makes the whole request malformed.
        if calls.iter().any(|c| c.input.len() as u64 > MAX_INPUT_LEN) {
            let e = results.expect_err("a request with an over-long input is refused");
            assert_eq!(e.kind, ErrorKind::BadMessage, "{e:?}");
            continue;
        }
        let results = results.expect("the request is well formed");
        if debug() {
            for (call, result) in calls.iter().zip(&results) {
                eprintln!(
                    "{} endpoint {} args {:x?} gas {} input {} bytes -> {:?}",
                    function.name(),
                    call.endpoint,
                    call.args,
                    call.gas,
                    call.input.len(),
                    result
                        .as_ref()
                        .map(|r| (r.exit, r.r7, r.r8, r.gas_used, r.output.len()))
                );
            }
        }
        assert_eq!(results.len(), calls.len());
        let mut previous: Option<CapHash> = None;
        let mut missing = false;
        // Output octets of the batch's calls so far.
        let mut outputs = 0u64;
        for (call, result) in calls.iter().zip(&results) {
            let given = if call.instance == [0; 32] {
                previous
            } else {
                Some(CapHash(call.instance))
            };
            // The reply budget: a call runs only while MAX_OUTPUT_LEN of
            // MAX_BATCH_OUTPUT_BYTES is left (the first always runs), so
            // the refused calls are a suffix of the batch.
            let over_budget = outputs > 0 && outputs + MAX_OUTPUT_LEN > MAX_BATCH_OUTPUT_BYTES;
            let refused = matches!(result, Err(e) if e.kind == ErrorKind::ReplyBudget);
            assert_eq!(
                refused, over_budget,
                "ReplyBudget after {outputs} output octets: {result:?}"
            );
            if let Ok(r) = result {
                let len = r.output.len() as u64;
                assert!(len <= MAX_OUTPUT_LEN, "an output of {len} octets");
                outputs += len;
                assert!(
                    outputs <= MAX_BATCH_OUTPUT_BYTES,
                    "a batch reply carries {outputs} output octets"
                );
                assert!(
                    r.exit.kind != 4 || call.timeout != NO_TIMEOUT,
                    "a timeout without a deadline"
                );
            }
            // A program over MAX_INSTRUCTIONS never runs: refused as
            // BadProgram once the instance and the endpoint are found.
            let plain_call = given.is_some() && call.endpoint < image.endpoints.len() as u32;
            match result {
                Ok(r) => assert!(
                    !size.over_limit(),
                    "a program of {size:?} ran: {:?}",
                    r.exit
                ),
                Err(e) if size.over_limit() && plain_call => assert_eq!(
                    e.kind,
                    ErrorKind::BadProgram,
                    "a program of {size:?}: {e:?}"
                ),
                Err(e) => assert!(
                    e.kind != ErrorKind::BadProgram || size.over_limit(),
                    "a program of {size:?} refused: {e:?}"
                ),
            }
            match result {
                Ok(r) => {
                    let given = given.expect("a chained call ran after a success");
                    let after = CapHash(r.instance);
                    assert!(
                        r.gas_used <= call.gas,
                        "gas used {} over the limit {}",
                        r.gas_used,
                        call.gas
                    );
                    if r.exit.kind == 0 {
                        if !world.planted_missing {
                            assert_published(&dir_a, &host_a.blobs, after);
                        }
                        if !instances.contains(&after) {
                            instances.push(after);
                        }
                    } else {
                        assert_eq!(
                            after, given,
                            "an invocation that did not halt ({:?}) changed its instance",
                            r.exit
                        );
                    }
                    previous = Some(after);
                }
                Err(e) => {
                    missing |= e.kind == abi::ErrorKind::MissingCap;
                    previous = None;
                }
            }
        }

        // A fresh kernel with the same blobs answers the same. (A call that
        // gave up fetching could have found everything on a fresh kernel.)
        if check_determinism && !missing {
            let (reply_fresh, logs_fresh) =
                fresh_state_reply(&dir_a, &host_a.blobs, function, &request);
            assert_eq!(
                reply_fresh, reply_a,
                "a fresh kernel answers the same request differently"
            );
            assert_eq!(
                logs_fresh,
                host_a.logs[logs_before..],
                "a fresh kernel logs differently"
            );
        }
    }
});
