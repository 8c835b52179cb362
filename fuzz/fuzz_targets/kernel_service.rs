//! Drives the kernel service (`KernelState::handle` / `handle_owned`, the
//! code behind every guest function) with a fresh directory and a sequence
//! of requests built from the input: mostly structurally valid ones
//! (put_cap of caps built from the input, fresh instances of the sample
//! image or of input-made programs, invocations of known instances with
//! small gas, get_cap, stats, sweep, small benches) and some raw bytes for a
//! random function. The kernel must never panic and never hang, and every
//! reply must decode as its function's reply message.
//!
//! Two kernels run in lockstep, one through `handle` and one through
//! `handle_owned` (the guest's path): their replies must be byte-identical
//! (stats and bench replies excepted: the arena is process-wide and bench
//! replies carry cycle counts). A `fetch_blob` host serves caps the input
//! chose to keep on the host side only, plus occasional garbage.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use capbox_shared::abi::{self, CapBlobMsg, GuestFunction, InvocationMsg};
use capbox_shared::kernel::{KernelHost, KernelState, LogSink, ProgramCache, new_instance, sample};
use capbox_shared::pvm::asm::{ProgramBuilder, Reg};
use capbox_shared::pvm::{MAX_INSTRUCTIONS, encode_natural};
use capbox_shared::{
    CNode, CacheDirectory, Cap, CapHash, CapHashOrRef, Data, Image, InstanceCap, TypeCap,
};
use libfuzzer_sys::fuzz_target;

/// Requests per input: enough for put → invoke → invoke chains.
const MAX_STEPS: usize = 24;
/// Gas per invocation: small, so a run never takes long.
const MAX_GAS: u64 = 20_000;

/// Reads the input front to back; missing octets read as zero.
/// Invocation inputs the fuzzer picks from (most calls have none).
const INPUTS: [&[u8]; 4] = [b"", b"", b"abc", &[0xa5; 5000]];

struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    fn u8(&mut self) -> u8 {
        let (first, rest) = self
            .data
            .split_first()
            .map_or((0, &[][..]), |(b, r)| (*b, r));
        self.data = rest;
        first
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        head
    }
    /// A short byte string whose length comes first.
    fn short_bytes(&mut self) -> &'a [u8] {
        let len = usize::from(self.u8());
        self.bytes(len)
    }
    fn hash32(&mut self) -> [u8; 32] {
        let mut out = [0; 32];
        let head = self.bytes(32);
        out[..head.len()].copy_from_slice(head);
        out
    }
}

/// What the input has built so far, to pick structurally valid references.
#[derive(Default)]
struct Known {
    /// Every hash seen (published caps, instance results).
    hashes: Vec<CapHash>,
    /// Instance hashes (fresh ones and results of invocations).
    instances: Vec<CapHash>,
    /// Image hashes with their images (to make fresh instances).
    images: Vec<(CapHash, Image)>,
}

impl Known {
    fn pick(list: &[CapHash], input: &mut Input<'_>) -> CapHash {
        let choice = input.u8();
        if list.is_empty() || choice == 0xFF {
            return CapHash(input.hash32());
        }
        list[usize::from(choice) % list.len()]
    }
    fn any_hash(&self, input: &mut Input<'_>) -> CapHash {
        Self::pick(&self.hashes, input)
    }
    fn instance(&self, input: &mut Input<'_>) -> CapHash {
        Self::pick(&self.instances, input)
    }
}

/// Caps only the host holds, served through `fetch_blob`.
#[derive(Default)]
struct FuzzHost {
    blobs: HashMap<[u8; 32], Vec<u8>>,
    /// When set, every fetch answers with these bytes instead.
    garbage: Option<Vec<u8>>,
}

impl LogSink for FuzzHost {
    fn log(&mut self, _message: &[u8]) {}
}

impl KernelHost for FuzzHost {
    fn fetch_blob(&mut self, hash: &CapHash) -> Option<Vec<u8>> {
        if let Some(garbage) = &self.garbage {
            return Some(garbage.clone());
        }
        self.blobs.get(&hash.0).cloned()
    }
}

/// Wraps raw code and a bitmask from the input into a `deblob` blob with a
/// small jump table, so most programs get past the decoder.
fn blob_from_code(code: &[u8], mask_src: &[u8]) -> Vec<u8> {
    let mask_len = code.len().div_ceil(8);
    let mut mask: Vec<u8> = mask_src.iter().copied().take(mask_len).collect();
    mask.resize(mask_len, 0xFF);
    let starts: Vec<u8> = (0..code.len().min(256))
        .filter(|&i| mask[i / 8] & (1 << (i % 8)) != 0)
        .take(2)
        .map(|i| i as u8)
        .collect();
    let mut blob = Vec::new();
    encode_natural(starts.len() as u64, &mut blob);
    blob.push(1);
    encode_natural(code.len() as u64, &mut blob);
    blob.extend_from_slice(&starts);
    blob.extend_from_slice(code);
    blob.extend_from_slice(&mask);
    blob
}

/// Programs of `MAX_INSTRUCTIONS` − 1, `MAX_INSTRUCTIONS` and one more
/// instructions (`fallthrough`s, then a halt): the last is refused
/// (`BadProgram`). Built once per process.
fn big_program(which: u8) -> &'static [u8] {
    static BIG: OnceLock<[Vec<u8>; 3]> = OnceLock::new();
    let big = BIG.get_or_init(|| {
        [0, 1, 2].map(|extra| {
            let mut b = ProgramBuilder::new();
            for _ in 0..MAX_INSTRUCTIONS - 2 + extra {
                b.fallthrough();
            }
            b.jump_ind(Reg::R0, 0u32);
            b.build().expect("fallthroughs build")
        })
    });
    &big[usize::from(which % 3)]
}

fn fuzz_image(input: &mut Input<'_>) -> Image {
    let mode = input.u8();
    if mode.is_multiple_of(4) {
        return sample::sample_image();
    }
    let code = if mode % 16 == 14 {
        // Around MAX_INSTRUCTIONS (endpoint 0 is its first instruction).
        big_program(input.u8()).to_vec()
    } else if mode % 4 == 1 {
        // Raw octets as the whole blob: mostly rejected by deblob.
        input.short_bytes().to_vec()
    } else {
        let code = input.short_bytes();
        let mask = input.short_bytes();
        blob_from_code(code, mask)
    };
    let ro_data = input.short_bytes().to_vec();
    let rw_data = input.short_bytes().to_vec();
    // Mostly small layouts; sometimes any value, to reach the limits.
    let big = mode & 0x80 != 0;
    let heap_pages = if big {
        input.u32()
    } else {
        u32::from(input.u8() % 8)
    };
    let stack_size = if big {
        input.u32()
    } else {
        u32::from(input.u16())
    };
    let endpoints = (0..input.u8() % 4).map(|_| u32::from(input.u8())).collect();
    Image {
        code,
        ro_data,
        rw_data,
        heap_pages,
        stack_size,
        endpoint_names: Vec::new(),
        endpoints,
    }
}

fn fuzz_cap(input: &mut Input<'_>, known: &Known) -> Cap {
    match input.u8() % 5 {
        0 => {
            let bytes = input.short_bytes();
            let mut data = Data::from_bytes(bytes).expect("short data fits");
            // Sometimes a long, sparse Data cap (absent pages read as zero).
            if input.u8() & 1 == 1 {
                let len = u64::from(input.u32() % (1 << 24));
                if data.set_len(len).is_ok() && len > 0 {
                    let _ = data.write(len - 1, &[input.u8()]);
                }
            }
            Cap::Data(data)
        }
        1 => {
            let mut cnode = CNode::new();
            for _ in 0..input.u8() % 4 {
                let slot = u32::from(input.u8());
                let target = known.any_hash(input);
                let _ = cnode.set(slot, CapHashOrRef::Hash(target));
            }
            Cap::CNode(cnode)
        }
        2 => Cap::Image(fuzz_image(input)),
        3 => Cap::Instance(InstanceCap {
            image: known.any_hash(input),
            memory: CapHashOrRef::Hash(known.any_hash(input)),
            root_cnode: CapHashOrRef::Hash(known.any_hash(input)),
            image_hash_chain: known.any_hash(input),
        }),
        _ => Cap::Type(TypeCap {
            image_hash_chain: known.any_hash(input),
        }),
    }
}

/// Encodes a cap and records its hash (and what it is).
fn encode_cap(cap: &Cap, known: &mut Known) -> Option<(CapHash, Vec<u8>)> {
    let bytes = cap.encode().ok()?;
    let hash = cap.hash().ok()?;
    known.hashes.push(hash);
    match cap {
        Cap::Instance(_) => known.instances.push(hash),
        Cap::Image(image) => known.images.push((hash, image.clone())),
        _ => {}
    }
    Some((hash, bytes))
}

/// The claimed hash of a published cap: right, absent or wrong.
fn claimed_hash(hash: CapHash, input: &mut Input<'_>) -> Option<[u8; 32]> {
    match input.u8() % 8 {
        0 => None,
        1 => Some(input.hash32()),
        _ => Some(hash.0),
    }
}

/// One request: the function and its request bytes.
fn next_request(
    input: &mut Input<'_>,
    known: &mut Known,
    host: &mut FuzzHost,
) -> (GuestFunction, Vec<u8>) {
    match input.u8() % 10 {
        0 | 1 => {
            let cap = fuzz_cap(input, known);
            let Some((hash, bytes)) = encode_cap(&cap, known) else {
                return (GuestFunction::Ping, Vec::new());
            };
            if input.u8().is_multiple_of(4) {
                // Only the host has it: the kernel must fetch it.
                host.blobs.insert(hash.0, bytes);
                return (GuestFunction::Stats, Vec::new());
            }
            let hash = claimed_hash(hash, input);
            (
                GuestFunction::PutCap,
                abi::encode_put_cap_request(&[CapBlobMsg {
                    hash,
                    bytes: &bytes,
                }]),
            )
        }
        2 => {
            // A fresh instance of a known image (or a new one): image,
            // memory, root cnode and instance, some only on the host.
            let (image_hash, image) = match known.images.len() {
                0 => {
                    let image = fuzz_image(input);
                    let Some((hash, bytes)) = encode_cap(&Cap::Image(image.clone()), known) else {
                        return (GuestFunction::Ping, Vec::new());
                    };
                    host.blobs.insert(hash.0, bytes);
                    (hash, image)
                }
                n => known.images[usize::from(input.u8()) % n].clone(),
            };
            let Ok(fresh) = new_instance(image_hash, &image) else {
                return (GuestFunction::Ping, Vec::new());
            };
            let on_host = input.u8();
            let mut blobs = Vec::new();
            for (i, cap) in [&fresh.memory, &fresh.root_cnode, &fresh.instance]
                .into_iter()
                .enumerate()
            {
                let Some((hash, bytes)) = encode_cap(cap, known) else {
                    continue;
                };
                if on_host & (1 << i) != 0 {
                    host.blobs.insert(hash.0, bytes);
                } else {
                    blobs.push((hash.0, bytes));
                }
            }
            let msgs: Vec<CapBlobMsg<'_>> = blobs
                .iter()
                .map(|(h, b)| CapBlobMsg {
                    hash: Some(*h),
                    bytes: b,
                })
                .collect();
            (GuestFunction::PutCap, abi::encode_put_cap_request(&msgs))
        }
        3..=5 => {
            let calls: Vec<InvocationMsg> = (0..1 + input.u8() % 3)
                .map(|_| InvocationMsg {
                    instance: known.instance(input).0,
                    endpoint: u32::from(input.u8() % 16),
                    args: [
                        input.u64(),
                        u64::from(input.u8()),
                        u64::from(input.u16()),
                        input.u64(),
                    ],
                    gas: u64::from(input.u16()) % MAX_GAS,
                    input: INPUTS[usize::from(input.u8()) % INPUTS.len()],
                    // Never reached (deterministic), but sliced.
                    timeout: u64::MAX - u64::from(input.u16()),
                })
                .collect();
            match input.u8() % 3 {
                0 => (
                    GuestFunction::InvokeOne,
                    abi::encode_invoke_one_request(&calls[0]),
                ),
                1 => (
                    GuestFunction::Invoke,
                    abi::encode_invoke_request(&[], &calls[..1]),
                ),
                _ => {
                    // Caps and calls in one request.
                    let cap = fuzz_cap(input, known);
                    let caps: Vec<(Option<[u8; 32]>, Vec<u8>)> = encode_cap(&cap, known)
                        .map(|(hash, bytes)| (claimed_hash(hash, input), bytes))
                        .into_iter()
                        .collect();
                    let msgs: Vec<CapBlobMsg<'_>> = caps
                        .iter()
                        .map(|(hash, bytes)| CapBlobMsg { hash: *hash, bytes })
                        .collect();
                    (
                        GuestFunction::Invoke,
                        abi::encode_invoke_request(&msgs, &calls),
                    )
                }
            }
        }
        6 => (
            GuestFunction::GetCap,
            abi::encode_get_cap_request(&known.any_hash(input).0),
        ),
        7 => {
            let function = [
                GuestFunction::Stats,
                GuestFunction::Sweep,
                GuestFunction::Ping,
            ][usize::from(input.u8() % 3)];
            (function, Vec::new())
        }
        8 => {
            // Host fetches start or stop answering garbage.
            host.garbage = match input.u8() % 4 {
                0 => Some(input.short_bytes().to_vec()),
                _ => None,
            };
            let names = [
                "noop",
                "hash_page",
                "put_cap",
                "invoke_empty",
                "abi_encode_reply",
                "nope",
            ];
            let name = names[usize::from(input.u8()) % names.len()];
            (
                GuestFunction::Bench,
                abi::encode_bench_request(name, u64::from(input.u8() % 3)),
            )
        }
        _ => {
            // Any function (but Crash, which the guest handles before the
            // kernel) with raw request bytes.
            let functions: Vec<GuestFunction> = GuestFunction::ALL
                .into_iter()
                .filter(|f| *f != GuestFunction::Crash)
                .collect();
            let function = functions[usize::from(input.u8()) % functions.len()];
            (function, input.short_bytes().to_vec())
        }
    }
}

/// Every reply decodes as its function's reply message; returns the
/// instance hashes an invoke reply names.
fn check_reply(function: GuestFunction, reply: &[u8]) -> Vec<CapHash> {
    let mut instances = Vec::new();
    match function {
        GuestFunction::PutCap => {
            let _ = abi::decode_put_cap_reply(reply).expect("put_cap reply decodes");
        }
        GuestFunction::Invoke | GuestFunction::InvokeOne => {
            if let Ok(results) = abi::decode_invoke_reply(reply).expect("invoke reply decodes") {
                instances.extend(results.into_iter().flatten().map(|r| CapHash(r.instance)));
            }
        }
        GuestFunction::GetCap => {
            if let Ok(bytes) = abi::decode_get_cap_reply(reply).expect("get_cap reply decodes") {
                let cap = Cap::decode(&bytes).expect("an exported cap decodes");
                cap.hash().expect("an exported cap hashes");
            }
        }
        GuestFunction::Stats | GuestFunction::Sweep => {
            abi::decode_stats_reply(reply)
                .expect("stats reply decodes")
                .expect("stats succeeds");
        }
        GuestFunction::Bench => {
            let _ = abi::decode_bench_reply(reply).expect("bench reply decodes");
        }
        GuestFunction::Ping | GuestFunction::Crash => assert!(reply.is_empty()),
    }
    instances
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input { data };
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
    let mut known = Known::default();
    let mut host = FuzzHost::default();
    for _ in 0..MAX_STEPS {
        if input.is_empty() {
            break;
        }
        let (function, request) = next_request(&mut input, &mut known, &mut host);
        let reply_a = state_a.handle(&mut host, function, &request);
        let reply_b = state_b.handle_owned(&mut host, function, request);
        let instances = check_reply(function, &reply_a);
        check_reply(function, &reply_b);
        if !matches!(
            function,
            GuestFunction::Stats | GuestFunction::Sweep | GuestFunction::Bench
        ) {
            assert_eq!(
                reply_a,
                reply_b,
                "handle and handle_owned disagree on {}",
                function.name()
            );
        }
        for hash in instances {
            if !known.instances.contains(&hash) {
                known.instances.push(hash);
                known.hashes.push(hash);
            }
        }
    }
});
