//! Random PVM programs and invocations for the differential tests
//! (deterministic: a seeded splitmix64 generator).

use capbox::Invocation;
use capbox::shared::cap::Image;
use capbox::shared::hash::CapHash;
use capbox::shared::pvm::asm::ProgramBuilder;

/// splitmix64: small, seedable, good enough for test generation.
pub struct Rng(u64);

impl Rng {
    /// A generator with this seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

fn imm3(x: u32) -> [u8; 3] {
    let b = x.to_le_bytes();
    [b[0], b[1], b[2]]
}

/// A register other than φ0 (the halt address) and φ1 (the stack pointer).
fn reg(rng: &mut Rng) -> u8 {
    2 + rng.below(11) as u8
}

/// One random instruction (opcode + operands), weighted towards ones
/// that keep running (so that many calls reach their halt).
fn instruction(rng: &mut Rng, rw_base: u32) -> Vec<u8> {
    let rw_slot = |rng: &mut Rng| imm3(rw_base + 8 * rng.below(8) as u32);
    match rng.below(20) {
        0..=2 => {
            let mut v = vec![51, reg(rng)]; // load_imm
            let n = 1 + rng.below(4) as usize;
            v.extend((0..n).map(|_| rng.next_u64() as u8));
            v
        }
        3..=4 => vec![149, reg(rng) | (reg(rng) << 4), rng.next_u64() as u8], // add_imm_64
        5 => vec![200, reg(rng) | (reg(rng) << 4), reg(rng)],                 // add_64
        6..=9 => {
            let mut v = vec![62, reg(rng)]; // store_u64 into rw data
            v.extend(rw_slot(rng));
            v
        }
        10..=11 => {
            let mut v = vec![58, reg(rng)]; // load_u64 from rw data
            v.extend(rw_slot(rng));
            v
        }
        12 => vec![
            123,
            reg(rng) | (1 << 4),
            (-8i8 * (1 + rng.below(8) as i8)) as u8,
        ], // stack
        13 => vec![10, [0u8, 1, 2, 2, 3, 99][rng.below(6) as usize]], // ecalli
        14 => vec![51, 8, rng.below(16) as u8], // φ8 = small length (for log/set_output)
        15 => {
            let mut v = vec![51, 7]; // φ7 = an rw address
            v.extend(imm3(rw_base + rng.below(64) as u32));
            v
        }
        16 => vec![rng.next_u64() as u8], // any byte: often an invalid opcode
        17 => vec![58, reg(rng), 0x00, 0x00, 0x10], // load from an unmapped page
        _ => vec![
            150 + rng.below(10) as u8,
            reg(rng) | (reg(rng) << 4),
            rng.next_u64() as u8,
        ],
    }
}

/// A random image: 1–3 endpoints of 1–8 random instructions each, ending
/// in halt (mostly), trap, or a loop back to the endpoint's start.
pub fn random_image(rng: &mut Rng) -> Image {
    let ro_data: Vec<u8> = (0..rng.below(16)).map(|_| rng.next_u64() as u8).collect();
    // The read-write data follows the read-only zone (Graypaper A.7).
    let rw_base = if ro_data.is_empty() {
        0x2_0000
    } else {
        0x3_0000
    };
    let mut instructions: Vec<Vec<u8>> = Vec::new();
    let mut entries = Vec::new();
    let endpoints = 1 + rng.below(3);
    for _ in 0..endpoints {
        entries.push(instructions.len());
        let body = 1 + rng.below(8) as usize;
        let mut len = 0usize;
        for _ in 0..body {
            let ins = instruction(rng, rw_base);
            len += ins.len();
            instructions.push(ins);
        }
        match rng.below(6) {
            0 => instructions.push(vec![0]), // trap
            1 if len + 3 < 128 => {
                // branch_ne_imm φ7, 0 back to the endpoint's first instruction
                let back = (-((len) as i64)) as i8 as u8;
                instructions.push(vec![82, 7, back]);
                instructions.push(vec![50, 0]);
            }
            _ => instructions.push(vec![50, 0]), // halt
        }
    }
    // Raw octets (some deliberately invalid), one instruction start each.
    let mut builder = ProgramBuilder::new();
    let mut starts = Vec::with_capacity(instructions.len());
    for ins in &instructions {
        starts.push(builder.here());
        builder.raw_instruction(ins);
    }
    let built = builder.build_program().expect("raw octets always build");
    let starts: Vec<u32> = starts
        .iter()
        .map(|&l| built.pc(l).expect("own label"))
        .collect();
    Image {
        code: built.blob,
        ro_data,
        rw_data: (0..64).map(|_| rng.next_u64() as u8).collect(),
        heap_pages: rng.below(3) as u32,
        stack_size: 4096,
        endpoint_names: Vec::new(),
        endpoints: entries.iter().map(|&i| starts[i]).collect(),
    }
}

/// Random invocations over `instances` (fresh instances, one per image,
/// with their endpoint counts): some start from a fresh instance, others
/// continue from the previous call's result.
pub fn random_invocations(
    rng: &mut Rng,
    instances: &[(CapHash, u32)],
    count: usize,
) -> Vec<Invocation> {
    let mut calls = Vec::with_capacity(count);
    let mut endpoints_of_previous = 0;
    for i in 0..count {
        let chain = i > 0 && rng.chance(1, 3);
        let (instance, endpoints) = if chain {
            (None, endpoints_of_previous)
        } else {
            let (hash, n) = instances[rng.below(instances.len() as u64) as usize];
            (Some(hash), n)
        };
        endpoints_of_previous = endpoints;
        // Now and then an endpoint that does not exist.
        let endpoint = if rng.chance(1, 20) {
            endpoints + rng.below(3) as u32
        } else {
            rng.below(u64::from(endpoints)) as u32
        };
        let gas = [20, 200, 5_000, 100_000, 100_000][rng.below(5) as usize];
        let args = [rng.below(40), rng.next_u64(), rng.below(3), rng.next_u64()];
        calls.push(Invocation {
            instance,
            endpoint,
            args,
            gas,
            input: Vec::new(),
            timeout: None,
        });
    }
    calls
}

// ---------------------------------------------------------------------
// The apps (`capbox::shared::kernel::apps`): a host abstraction, helpers
// and the random kv op sequences for the differential test.

use capbox::shared::CacheDirectory;
use capbox::shared::cap::{CNode, Cap, CapHashOrRef};
use capbox::shared::kernel::apps::{kv, users};
use capbox::shared::kernel::{
    Call, KernelHost, LogSink, Outcome, ProgramCache, invoke_call, new_instance_with_slots,
};

/// Gas for one app invocation (generous: a put of a 64 KiB value costs
/// well under this).
pub const APP_GAS: u64 = 10_000_000;

/// Something that runs app invocations with input: the shared kernel
/// in-process ([`DirectKernel`]) or a `capbox::Kernel`.
pub trait AppHost {
    /// Publishes `image` and a fresh instance of it whose root CNode holds
    /// `slots`; the instance's hash.
    fn create(&mut self, image: &Image, slots: &[(u32, Cap)]) -> CapHash;
    /// One invocation with input.
    fn run(&mut self, instance: &CapHash, endpoint: u32, args: [u64; 4], input: &[u8]) -> Outcome;

    /// `endpoint` once per input, each on the state the previous left
    /// (one kernel call where the backend allows).
    fn run_chain(&mut self, start: &CapHash, endpoint: u32, inputs: &[Vec<u8>]) -> Vec<Outcome> {
        let mut state = *start;
        inputs
            .iter()
            .map(|input| {
                let o = self.run(&state, endpoint, [0; 4], input);
                state = o.instance;
                o
            })
            .collect()
    }

    /// kv `get` of each key on `state`.
    fn run_gets(&mut self, state: &CapHash, keys: &[u32]) -> Vec<Outcome> {
        keys.iter()
            .map(|&k| {
                self.run(
                    state,
                    kv::Endpoint::Get.index(),
                    [u64::from(k), 0, 0, 0],
                    &[],
                )
            })
            .collect()
    }

    /// The root CNode of an instance.
    fn root_cnode(&mut self, instance: &CapHash) -> CNode;
}

/// The shared kernel with its own directory (no ABI, no backend).
#[derive(Default)]
pub struct DirectKernel {
    /// Every cap.
    pub dir: CacheDirectory,
    programs: ProgramCache,
}

struct NoHost;

impl LogSink for NoHost {
    fn log(&mut self, _message: &[u8]) {}
}

impl KernelHost for NoHost {
    fn fetch_blob(&mut self, _hash: &CapHash) -> Option<Vec<u8>> {
        None
    }
}

impl AppHost for DirectKernel {
    fn create(&mut self, image: &Image, slots: &[(u32, Cap)]) -> CapHash {
        let image_hash = self.dir.put_cap(&Cap::Image(image.clone())).unwrap();
        let mut links = Vec::new();
        for (slot, cap) in slots {
            links.push((*slot, self.dir.put_cap(cap).unwrap()));
        }
        let fresh = new_instance_with_slots(image_hash, image, &links).unwrap();
        for cap in [&fresh.memory, &fresh.root_cnode, &fresh.instance] {
            self.dir.put_cap(cap).unwrap();
        }
        fresh.instance_hash
    }

    fn run(&mut self, instance: &CapHash, endpoint: u32, args: [u64; 4], input: &[u8]) -> Outcome {
        let call = Call {
            instance: *instance,
            endpoint,
            args,
            gas: APP_GAS,
            input,
            timeout: capbox::shared::kernel::NO_TIMEOUT,
        };
        invoke_call(&self.dir, &self.programs, &mut NoHost, &call).unwrap()
    }

    fn root_cnode(&mut self, instance: &CapHash) -> CNode {
        let get = |h: &CapHash| (*self.dir.get_blob(h).unwrap()).clone();
        let Cap::Instance(i) = get(instance) else {
            panic!("not an instance")
        };
        let CapHashOrRef::Hash(root) = i.root_cnode else {
            panic!("unsettled")
        };
        let Cap::CNode(c) = get(&root) else {
            panic!("not a CNode")
        };
        c
    }
}

/// A fresh kv instance.
pub fn new_kv(host: &mut dyn AppHost) -> CapHash {
    host.create(&kv::kv_image(), &[])
}

/// A fresh users instance (the kv Image in its slot 0).
pub fn new_users(host: &mut dyn AppHost) -> CapHash {
    host.create(
        &users::users_image(),
        &[(users::IMAGE_SLOT, Cap::Image(kv::kv_image()))],
    )
}

/// One kv operation of a random sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    /// `put(key)` with this value.
    Put(u64, Vec<u8>),
    /// `get(key)`.
    Get(u64),
    /// `delete(key)`.
    Delete(u64),
    /// `len()`.
    Len,
}

impl KvOp {
    /// Endpoint, arguments and input of the op.
    pub fn call(&self) -> (u32, [u64; 4], &[u8]) {
        match self {
            KvOp::Put(key, value) => (kv::Endpoint::Put.index(), [*key, 0, 0, 0], value),
            KvOp::Get(key) => (kv::Endpoint::Get.index(), [*key, 0, 0, 0], &[]),
            KvOp::Delete(key) => (kv::Endpoint::Delete.index(), [*key, 0, 0, 0], &[]),
            KvOp::Len => (kv::Endpoint::Len.index(), [0; 4], &[]),
        }
    }
}

/// A random kv op: keys from a small range (so ops collide), now and then
/// an out-of-range key; values of 0–300 bytes, now and then up to 5 KiB
/// (two pages).
pub fn random_kv_op(rng: &mut Rng) -> KvOp {
    let key = |rng: &mut Rng| {
        if rng.chance(1, 25) {
            u64::from(kv::KV_KEYS) + rng.below(3)
        } else {
            rng.below(16)
        }
    };
    match rng.below(10) {
        0..=3 => {
            let len = if rng.chance(1, 10) {
                rng.below(5 << 10)
            } else {
                rng.below(300)
            };
            let value = (0..len).map(|_| rng.next_u64() as u8).collect();
            KvOp::Put(key(rng), value)
        }
        4..=6 => KvOp::Get(key(rng)),
        7..=8 => KvOp::Delete(key(rng)),
        _ => KvOp::Len,
    }
}

/// A model of the kv service: what each op must return.
#[derive(Default, Clone, Debug)]
pub struct KvModel {
    /// key → value.
    pub values: std::collections::BTreeMap<u64, Vec<u8>>,
}

impl KvModel {
    /// Applies `op`; the expected (φ7, φ8, output).
    pub fn apply(&mut self, op: &KvOp) -> (u64, u64, Vec<u8>) {
        use capbox::shared::kernel::apps::ERR_BAD_KEY;
        use capbox::shared::kernel::ops::ERR_EMPTY;
        let bad = |key: u64| key >= u64::from(kv::KV_KEYS);
        match op {
            KvOp::Put(key, _) | KvOp::Get(key) | KvOp::Delete(key) if bad(*key) => {
                (ERR_BAD_KEY, 0, Vec::new())
            }
            KvOp::Put(key, value) => {
                let replaced = self.values.insert(*key, value.clone()).is_some();
                (0, u64::from(replaced), Vec::new())
            }
            KvOp::Get(key) => match self.values.get(key) {
                Some(v) => (v.len() as u64, 0, v.clone()),
                None => (ERR_EMPTY, 0, Vec::new()),
            },
            KvOp::Delete(key) => (u64::from(self.values.remove(key).is_some()), 0, Vec::new()),
            KvOp::Len => (self.values.len() as u64, 0, Vec::new()),
        }
    }
}

impl AppHost for capbox::Kernel {
    fn create(&mut self, image: &Image, slots: &[(u32, Cap)]) -> CapHash {
        self.create_instance_with_caps(image, slots).unwrap()
    }

    fn run(&mut self, instance: &CapHash, endpoint: u32, args: [u64; 4], input: &[u8]) -> Outcome {
        self.invoke_with_input(instance, endpoint, args, APP_GAS, input)
            .unwrap()
    }

    fn run_chain(&mut self, start: &CapHash, endpoint: u32, inputs: &[Vec<u8>]) -> Vec<Outcome> {
        let calls: Vec<Invocation> = inputs
            .iter()
            .enumerate()
            .map(|(i, input)| Invocation {
                instance: (i == 0).then_some(*start),
                endpoint,
                args: [0; 4],
                gas: APP_GAS,
                input: input.clone(),
                timeout: None,
            })
            .collect();
        run_batches(self, &calls)
    }

    fn run_gets(&mut self, state: &CapHash, keys: &[u32]) -> Vec<Outcome> {
        let calls: Vec<Invocation> = keys
            .iter()
            .map(|&k| Invocation {
                instance: Some(*state),
                endpoint: kv::Endpoint::Get.index(),
                args: [u64::from(k), 0, 0, 0],
                gas: APP_GAS,
                input: Vec::new(),
                timeout: None,
            })
            .collect();
        run_batches(self, &calls)
    }

    fn root_cnode(&mut self, instance: &CapHash) -> CNode {
        let Cap::Instance(i) = self.get_cap(instance).unwrap() else {
            panic!("not an instance")
        };
        let CapHashOrRef::Hash(root) = i.root_cnode else {
            panic!("unsettled")
        };
        let Cap::CNode(c) = self.get_cap(&root).unwrap() else {
            panic!("not a CNode")
        };
        c
    }
}

/// Runs `calls` in `invoke_batch` calls of at most 64 invocations (a
/// chained call continues across batches: the next batch names the state
/// the previous one ended with).
pub fn run_batches(kernel: &mut capbox::Kernel, calls: &[Invocation]) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = Vec::with_capacity(calls.len());
    for chunk in calls.chunks(64) {
        let mut chunk = chunk.to_vec();
        if chunk[0].instance.is_none() {
            chunk[0].instance = Some(out.last().expect("a chain has a start").instance);
        }
        for result in kernel.invoke_batch(&chunk).unwrap() {
            out.push(result.unwrap());
        }
    }
    out
}
