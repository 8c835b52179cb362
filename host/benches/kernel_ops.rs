//! Kernel ops on the local backend: one whole invocation through
//! [`Kernel`] per iteration (request encoding, the kernel's `invoke_one`,
//! commit, reply decoding).
//!
//! Every iteration starts from the same prepared instance, so every
//! iteration commits the same new state: its blobs hash the same and
//! dedupe in the directory, which therefore does not grow (checked before
//! measuring).
//!
//! * `data_write/64mib` vs `data_write/1page`: `data_write(slot 1, offset,
//!   ptr, 8)` on a 64 MiB Data with all 16,384 pages present and non-zero,
//!   and on a one-page Data.
//! * `kv_put/{10,10000}`: the kv service's `put` of a new 32-byte value for
//!   an existing key; `kv_put_fresh/{10,10000}`: `put` of a key not yet
//!   present.
//! * `cnode_slot_change/{16,65536}`: `slot_drop(a)` + `slot_copy(b → a)`
//!   on a root CNode with 16 or 65,536 occupied slots (a distinct Data in
//!   each).
//! * `invoke_empty` (the sample's `Empty` endpoint) and
//!   `call_empty_child` (its `CallEmpty`: one nested `call` of a child's
//!   `Empty`).

use std::hint::black_box;

use capbox::shared::cap::{Cap, Data, Image};
use capbox::shared::hash::CapHash;
use capbox::shared::kernel::apps::kv;
use capbox::shared::kernel::ops::OK;
use capbox::shared::kernel::sample::{self, sample_image};
use capbox::shared::kernel::{ExitReason, KernelOp, new_instance};
use capbox::shared::pvm::asm::{ProgramBuilder, Reg};
use capbox::{BackendChoice, Kernel};
use criterion::{Criterion, criterion_group, criterion_main};

const GAS: u64 = 1_000_000;
/// Enough for a `put_many` of 10,000 keys.
const BULK_GAS: u64 = 1 << 40;
/// Where the read-write data starts (no read-only data).
const RW_START: u64 = 0x2_0000;

/// One invocation's arguments.
struct Call {
    instance: CapHash,
    endpoint: u32,
    args: [u64; 4],
    input: Vec<u8>,
}

impl Call {
    fn run(&self, kernel: &mut Kernel) -> capbox::shared::kernel::Outcome {
        kernel
            .invoke_with_input(&self.instance, self.endpoint, self.args, GAS, &self.input)
            .expect("the invocation runs")
    }

    /// Runs the call a few times and checks that it halts with φ7 = OK,
    /// always commits the same state and leaves the directory's blob count
    /// as it was after the first run.
    fn check(&self, kernel: &mut Kernel, name: &str) {
        let first = self.run(kernel);
        assert_eq!(first.exit, ExitReason::Halt, "{name}: {first:?}");
        assert_eq!(first.r7, OK, "{name}: {first:?}");
        let blobs = kernel.stats().expect("stats").blobs;
        for _ in 0..3 {
            let again = self.run(kernel);
            assert_eq!(again.instance, first.instance, "{name}: same new state");
        }
        assert_eq!(
            kernel.stats().expect("stats").blobs,
            blobs,
            "{name}: the directory must not grow"
        );
    }
}

fn halt(b: &mut ProgramBuilder) {
    b.jump_ind(Reg::R0, 0u32); // φ0 = the halt address
}

/// An image of one endpoint built by `body` (which ends by halting), with
/// 8 bytes of non-zero read-write data at [`RW_START`].
fn one_endpoint_image(body: impl FnOnce(&mut ProgramBuilder)) -> Image {
    let mut b = ProgramBuilder::new();
    let entry = b.here();
    body(&mut b);
    let built = b.build_program().expect("well formed");
    Image {
        code: built.blob.clone(),
        ro_data: Vec::new(),
        rw_data: vec![0xa5; 8],
        heap_pages: 0,
        stack_size: 4096,
        endpoint_names: Vec::new(),
        endpoints: vec![built.pc(entry).expect("own label")],
    }
}

/// `data_write(φ7 = slot, φ8 = offset, φ9 = ptr, φ10 = len)`, halt.
fn data_write_image() -> Image {
    one_endpoint_image(|b| {
        b.ecalli(KernelOp::DataWrite.number());
        halt(b);
    })
}

/// `slot_drop(φ7)`, `slot_copy(φ8 → φ7)`, halt (φ7 = the copy's result).
fn slot_change_image() -> Image {
    one_endpoint_image(|b| {
        b.move_reg(Reg::R9, Reg::R7).move_reg(Reg::R10, Reg::R8);
        b.ecalli(KernelOp::SlotDrop.number());
        b.move_reg(Reg::R7, Reg::R10).move_reg(Reg::R8, Reg::R9);
        b.ecalli(KernelOp::SlotCopy.number());
        halt(b);
    })
}

/// A Data of `pages` pages, every page present and non-zero.
fn full_data(pages: usize) -> Data {
    let bytes: Vec<u8> = (0..pages * 4096).map(|i| (i % 251) as u8 | 1).collect();
    let data = Data::from_bytes(&bytes).expect("within the limit");
    assert_eq!(data.present_page_count(), pages);
    data
}

fn bench_data_write(c: &mut Criterion, kernel: &mut Kernel) {
    let image = data_write_image();
    let mut group = c.benchmark_group("data_write");
    for (name, pages) in [("1page", 1usize), ("64mib", 16_384)] {
        let data = Cap::Data(full_data(pages));
        let instance = kernel
            .create_instance_with_caps(&image, &[(1, data)])
            .expect("instance");
        // The middle of the Data (the first page's second word for 1 page).
        let offset = (pages as u64 * 4096) / 2 + 8;
        let call = Call {
            instance,
            endpoint: 0,
            args: [1, offset, RW_START, 8],
            input: Vec::new(),
        };
        call.check(kernel, &format!("data_write/{name}"));
        group.bench_function(name, |b| b.iter(|| black_box(call.run(kernel))));
    }
    group.finish();
}

/// A kv instance holding keys `0..keys` (32-byte values), loaded with one
/// `put_many`.
fn kv_with_keys(kernel: &mut Kernel, keys: u32) -> CapHash {
    let fresh = kernel.create_instance(&kv::kv_image()).expect("kv");
    let values: Vec<(u32, [u8; 32])> = (0..keys)
        .map(|k| {
            let mut v = [0u8; 32];
            v[..4].copy_from_slice(&k.to_le_bytes());
            (k, v)
        })
        .collect();
    let input = kv::put_many_input(values.iter().map(|(k, v)| (*k, &v[..])));
    let loaded = kernel
        .invoke_with_input(
            &fresh,
            kv::Endpoint::PutMany.index(),
            [0; 4],
            BULK_GAS,
            &input,
        )
        .expect("put_many runs");
    assert_eq!(loaded.exit, ExitReason::Halt);
    assert_eq!(loaded.r7, u64::from(keys), "{loaded:?}");
    let len = kernel
        .invoke(&loaded.instance, kv::Endpoint::Len.index(), [0; 4], GAS)
        .expect("len");
    assert_eq!(len.r7, u64::from(keys));
    loaded.instance
}

fn bench_kv_put(c: &mut Criterion, kernel: &mut Kernel) {
    let mut replace = c.benchmark_group("kv_put");
    let mut states = Vec::new();
    for keys in [10u32, 10_000] {
        let instance = kv_with_keys(kernel, keys);
        states.push((keys, instance));
        // A new value for key keys / 2 (present).
        let call = Call {
            instance,
            endpoint: kv::Endpoint::Put.index(),
            args: [u64::from(keys / 2), 0, 0, 0],
            input: vec![0x5a; 32],
        };
        call.check(kernel, &format!("kv_put/{keys}"));
        assert_eq!(call.run(kernel).r8, 1, "replaced a value");
        replace.bench_function(keys.to_string(), |b| b.iter(|| black_box(call.run(kernel))));
    }
    replace.finish();
    let mut fresh = c.benchmark_group("kv_put_fresh");
    for (keys, instance) in states {
        // Key 60,000: absent.
        let call = Call {
            instance,
            endpoint: kv::Endpoint::Put.index(),
            args: [60_000, 0, 0, 0],
            input: vec![0x5a; 32],
        };
        call.check(kernel, &format!("kv_put_fresh/{keys}"));
        assert_eq!(call.run(kernel).r8, 0, "a new key");
        fresh.bench_function(keys.to_string(), |b| b.iter(|| black_box(call.run(kernel))));
    }
    fresh.finish();
}

fn bench_cnode_slot_change(c: &mut Criterion, kernel: &mut Kernel) {
    let image = slot_change_image();
    let mut group = c.benchmark_group("cnode_slot_change");
    for slots in [16u32, 65_536] {
        let caps: Vec<(u32, Cap)> = (0..slots)
            .map(|s| {
                let data = Data::from_bytes(&s.to_le_bytes()).expect("small");
                (s, Cap::Data(data))
            })
            .collect();
        let instance = kernel
            .create_instance_with_caps(&image, &caps)
            .expect("instance");
        // Drop slot a, copy slot b (a different Data) into it.
        let (a, b) = (u64::from(slots / 2), u64::from(slots / 2 + 1));
        let call = Call {
            instance,
            endpoint: 0,
            args: [a, b, 0, 0],
            input: Vec::new(),
        };
        call.check(kernel, &format!("cnode_slot_change/{slots}"));
        group.bench_function(slots.to_string(), |bench| {
            bench.iter(|| black_box(call.run(kernel)))
        });
    }
    group.finish();
}

fn bench_calls(c: &mut Criterion, kernel: &mut Kernel) {
    let image = sample_image();
    let image_hash = Cap::Image(image.clone()).hash().expect("image hash");
    let child = new_instance(image_hash, &image).expect("child");
    kernel
        .put_caps(&[child.memory, child.root_cnode])
        .expect("child state");
    let parent = kernel
        .create_instance_with_caps(&image, &[(0, child.instance)])
        .expect("parent");

    let empty = Call {
        instance: parent,
        endpoint: sample::Endpoint::Empty.index(),
        args: [0; 4],
        input: Vec::new(),
    };
    let outcome = empty.run(kernel);
    assert_eq!(outcome.exit, ExitReason::Halt);
    assert_eq!(outcome.instance, parent, "nothing changed");
    c.bench_function("invoke_empty", |b| b.iter(|| black_box(empty.run(kernel))));

    let call_child = Call {
        endpoint: sample::Endpoint::CallEmpty.index(),
        ..empty
    };
    let outcome = call_child.run(kernel);
    assert_eq!(outcome.exit, ExitReason::Halt);
    assert_eq!(outcome.r7, 0, "CALL_HALT: {outcome:?}");
    assert_eq!(outcome.instance, parent, "the child did not change");
    c.bench_function("call_empty_child", |b| {
        b.iter(|| black_box(call_child.run(kernel)))
    });
}

fn bench_kernel_ops(c: &mut Criterion) {
    let mut kernel = Kernel::new(BackendChoice::Local).expect("local kernel");
    bench_calls(c, &mut kernel);
    bench_data_write(c, &mut kernel);
    bench_cnode_slot_change(c, &mut kernel);
    bench_kv_put(c, &mut kernel);
}

criterion_group!(benches, bench_kernel_ops);
criterion_main!(benches);
