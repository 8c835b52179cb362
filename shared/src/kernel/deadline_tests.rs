//! Deadlines (DESIGN §5): an invocation whose clock runs out ends as
//! `ExitReason::Timeout` with nothing committed, at any depth. A fake
//! clock that advances one tick per look makes the checks countable.

use alloc::vec;
use alloc::vec::Vec;

use super::sample::{COUNTER_ADDRESS, Endpoint, sample_image};
use super::*;
use crate::CacheDirectory;
use crate::cap::{Cap, Image};
use crate::hash::CapHash;
use crate::pvm::asm::{ProgramBuilder, Reg};

/// A clock that reads 0, 1, 2, … (one tick per look), or none.
struct FakeClock {
    next: u64,
    reads: u64,
    present: bool,
}

impl FakeClock {
    fn new() -> Self {
        FakeClock {
            next: 0,
            reads: 0,
            present: true,
        }
    }
}

impl LogSink for FakeClock {
    fn log(&mut self, _message: &[u8]) {}
}

impl KernelHost for FakeClock {
    fn fetch_blob(&mut self, _hash: &CapHash) -> Option<Vec<u8>> {
        None
    }

    fn now(&mut self) -> Option<u64> {
        if !self.present {
            return None;
        }
        self.reads += 1;
        let now = self.next;
        self.next += 1;
        Some(now)
    }
}

struct Fixture {
    dir: CacheDirectory,
    programs: ProgramCache,
    sample: CapHash,
}

fn publish(dir: &CacheDirectory, image: &Image, slots: &[(u32, CapHash)]) -> CapHash {
    let image_hash = dir.put_cap(&Cap::Image(image.clone())).unwrap();
    let fresh = new_instance_with_slots(image_hash, image, slots).unwrap();
    for cap in [&fresh.memory, &fresh.root_cnode, &fresh.instance] {
        dir.put_cap(cap).unwrap();
    }
    fresh.instance_hash
}

fn fixture() -> Fixture {
    let dir = CacheDirectory::new();
    let sample = publish(&dir, &sample_image(), &[]);
    Fixture {
        dir,
        programs: ProgramCache::new(),
        sample,
    }
}

impl Fixture {
    fn run(
        &self,
        clock: &mut FakeClock,
        instance: &CapHash,
        endpoint: u32,
        r7: u64,
        gas: u64,
        timeout: u64,
    ) -> Outcome {
        let call = Call {
            instance: *instance,
            endpoint,
            args: [r7, 0, 0, 0],
            gas,
            input: &[],
            timeout,
        };
        invoke_call(&self.dir, &self.programs, clock, &call).unwrap()
    }
}

#[test]
fn a_passed_deadline_ends_the_loop_as_a_timeout() {
    let f = fixture();
    let mut clock = FakeClock::new();
    let loop_ep = Endpoint::Loop.index();
    // Start at tick 0, deadline at tick 3: the third slice's look ends it.
    let o = f.run(&mut clock, &f.sample, loop_ep, 0, 1 << 40, 3);
    assert_eq!(o.exit, ExitReason::Timeout);
    assert_eq!(o.instance, f.sample);
    assert_eq!(clock.reads, 4);
    // Three slices of SLICE_GAS, each ending at a block boundary.
    assert!(
        (3 * SLICE_GAS..3 * SLICE_GAS + 16).contains(&o.gas_used),
        "{}",
        o.gas_used
    );
    assert_eq!(f.dir.stats().instance_count, 0);
    // A deadline of 0 ticks: one slice runs before the first look.
    let mut clock = FakeClock::new();
    let o = f.run(&mut clock, &f.sample, loop_ep, 0, 1 << 40, 0);
    assert_eq!((o.exit, clock.reads), (ExitReason::Timeout, 2));
    assert!(o.gas_used >= SLICE_GAS && o.gas_used < SLICE_GAS + 16);
}

#[test]
fn without_a_deadline_or_a_clock_nothing_is_looked_at() {
    let f = fixture();
    let loop_ep = Endpoint::Loop.index();
    let mut clock = FakeClock::new();
    let o = f.run(&mut clock, &f.sample, loop_ep, 0, 100_000, NO_TIMEOUT);
    assert_eq!(
        (o.exit, o.gas_used, clock.reads),
        (ExitReason::OutOfGas, 100_000, 0)
    );
    let mut no_clock = FakeClock {
        present: false,
        ..FakeClock::new()
    };
    let o = f.run(&mut no_clock, &f.sample, loop_ep, 0, 100_000, 0);
    assert_eq!((o.exit, o.gas_used), (ExitReason::OutOfGas, 100_000));
}

#[test]
fn a_deadline_that_is_not_reached_changes_nothing() {
    let f = fixture();
    for endpoint in Endpoint::ALL {
        for (r7, gas) in [(0, 100_000), (40_000, 1_000_000), (5, 1000), (1, 3)] {
            let mut clock = FakeClock::new();
            let plain = f.run(&mut clock, &f.sample, endpoint.index(), r7, gas, NO_TIMEOUT);
            let timed = f.run(
                &mut clock,
                &f.sample,
                endpoint.index(),
                r7,
                gas,
                u64::MAX - 1,
            );
            assert_eq!(plain, timed, "{endpoint:?} r7={r7} gas={gas}");
        }
    }
}

/// An image that writes its memory, then calls its slot 0's `Loop` with
/// φ7 = 0 (for ever) and at most 20,000 gas, then halts.
fn caller_image() -> Image {
    let mut b = ProgramBuilder::new();
    b.load_imm(Reg::R10, 7u32)
        .store_u64(Reg::R10, COUNTER_ADDRESS)
        .load_imm(Reg::R7, 0u32)
        .load_imm_64(Reg::R8, u64::from(Endpoint::Loop.index()) | (20_000 << 32))
        .load_imm(Reg::R9, 0u32)
        .ecalli(ops::KernelOp::Call.number())
        .jump_ind(Reg::R0, 0u32);
    let built = b.build_program().unwrap();
    Image {
        code: built.blob,
        ro_data: Vec::new(),
        rw_data: vec![0; 8],
        heap_pages: 0,
        stack_size: 4096,
        endpoint_names: Vec::new(),
        endpoints: vec![0],
    }
}

#[test]
fn a_timeout_in_a_child_ends_the_whole_invocation() {
    let f = fixture();
    let parent = publish(&f.dir, &caller_image(), &[(0, f.sample)]);
    let mut clock = FakeClock::new();
    let o = f.run(&mut clock, &parent, 0, 0, 1 << 40, 1);
    assert_eq!(o.exit, ExitReason::Timeout);
    // Nothing committed: not the parent's write, not the child.
    assert_eq!(o.instance, parent);
    assert!(o.gas_used > SLICE_GAS, "{}", o.gas_used);
    assert_eq!(f.dir.stats().instance_count, 0);
    // Without a deadline the child runs out of its 20,000 gas instead and
    // the parent halts (committing its write).
    let mut clock = FakeClock::new();
    let o = f.run(&mut clock, &parent, 0, 0, 50_000, NO_TIMEOUT);
    assert_eq!(o.exit, ExitReason::Halt);
    assert_ne!(o.instance, parent);
}
