//! The example Rust programs (programs/, built with the SDK and the
//! standard PolkaVM toolchain) imported and run on both backends, against
//! PolkaVM 0.37's interpreter on the same blobs (results and gas) where
//! they use only I/O ops, and local against sandbox where they use caps.

mod programs_support;

use capbox::Kernel;
use capbox::shared::kernel::ExitReason;
use capbox::shared::kernel::ops::ERR_OCCUPIED;
use programs_support::{Reference, Run, blob, endpoint, imported};

const GAS: u64 = 10_000_000;
/// kv's code for a key without a value.
const ERR_NOT_FOUND: u64 = u64::MAX - 16;

/// Runs `name(args)` with `input` on `instance` in capbox and in the
/// reference, asserts both give the same run and returns it with the new
/// instance.
fn both(
    kernel: &mut Kernel,
    reference: &mut Reference,
    instance: &capbox::shared::hash::CapHash,
    program: &capbox::import::ImportedImage,
    name: &str,
    args: [u64; 4],
    input: &[u8],
) -> (Run, capbox::shared::hash::CapHash) {
    let o = kernel
        .invoke_with_input(instance, endpoint(program, name), args, GAS, input)
        .unwrap();
    let ours = Run::from(&o);
    let theirs = reference.call(name, args, input, GAS);
    assert_eq!(ours, theirs, "{name}{args:?}: capbox vs PolkaVM 0.37");
    (ours, o.instance)
}

fn blake2b_256(data: &[u8]) -> Vec<u8> {
    // Known answers (b2sum -l 256).
    match data {
        b"" => hex("0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"),
        b"hello\n" => hex("93becc6e9882211c3ec3708c95bcd69baab7bb59c7f4bc84ce637b88a534b783"),
        _ => unreachable!(),
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

capbox_tests::backend_tests! {
    fn counter_counts_as_in_polkavm(kernel: &mut Kernel) {
        let program = imported("counter");
        let mut reference = Reference::new(&blob("counter"));
        let mut instance = kernel.create_instance(&program.image).unwrap();
        let mut expected = 0;
        for by in [5, 7, 1 << 40] {
            let (run, next) =
                both(kernel, &mut reference, &instance, &program, "increment", [by, 0, 0, 0], &[]);
            expected += by;
            assert_eq!((run.exit, run.r7), (ExitReason::Halt, expected));
            instance = next;
        }
        let (run, next) = both(kernel, &mut reference, &instance, &program, "get", [0; 4], &[]);
        assert_eq!(run.r7, expected);
        assert_eq!(next, instance, "get changes no state");
        let (run, _) =
            both(kernel, &mut reference, &instance, &program, "add_input", [0; 4], &[1, 2, 3, 250]);
        assert_eq!(run.r7, expected + 256);
        assert_eq!(run.output, (expected + 256).to_le_bytes());
        // The state survives a fresh load of the instance (memory committed).
        assert_eq!(kernel.invoke(&instance, endpoint(&program, "get"), [0; 4], GAS).unwrap().r7, expected);
    }

    fn hash_program_matches_polkavm(kernel: &mut Kernel) {
        let program = imported("hash");
        let mut reference = Reference::new(&blob("hash"));
        let instance = kernel.create_instance(&program.image).unwrap();
        for input in [&b""[..], b"hello\n"] {
            let (run, _) = both(kernel, &mut reference, &instance, &program, "blake2b", [0; 4], input);
            assert_eq!((run.exit, run.r7), (ExitReason::Halt, input.len() as u64));
            assert_eq!(run.output, blake2b_256(input));
        }
        // The sandbox emulates every guest instruction here (~60k gas/s):
        // the larger cases run locally only.
        let local = kernel.backend() == capbox::BackendKind::Local;
        // 200 bytes: more than one BLAKE2b block.
        if local {
            let long: Vec<u8> = (0..200u32).map(|i| (i * 7) as u8).collect();
            let (run, _) = both(kernel, &mut reference, &instance, &program, "blake2b", [0; 4], &long);
            assert_eq!(run.output.len(), 32);
        }
        let (run, _) =
            both(kernel, &mut reference, &instance, &program, "blake2b_chain", [3, 0, 0, 0], b"abc");
        assert_eq!(run.output.len(), 32);
        assert_eq!(run.r7.to_le_bytes(), run.output[..8]);
        let sieves: &[(u64, u64)] = if local { &[(10, 4), (100, 25), (1000, 168)] } else { &[(100, 25)] };
        for &(n, primes) in sieves {
            let (run, _) = both(kernel, &mut reference, &instance, &program, "sieve", [n, 0, 0, 0], &[]);
            assert_eq!(run.r7, primes, "primes below {n}");
        }
        let (run, _) = both(kernel, &mut reference, &instance, &program, "fnv", [2, 0, 0, 0], b"capbox");
        assert_eq!(run.exit, ExitReason::Halt);
        // Out of gas at the same point as PolkaVM would not be comparable
        // (capbox runs a block partially, departure 2): only the exit.
        let o = kernel
            .invoke(&instance, endpoint(&program, "sieve"), [1000, 0, 0, 0], 500)
            .unwrap();
        assert_eq!((o.exit, o.gas_used, o.instance), (ExitReason::OutOfGas, 500, instance));
        assert_eq!(reference.call("sieve", [1000, 0, 0, 0], &[], 500).exit, ExitReason::OutOfGas);
    }

    /// The sandbox compiles a program to machine code once its runs have
    /// used 10,000 gas plus 128 per instruction (hash: 994 instructions,
    /// ~137,000 gas); a `local_jit` kernel compiles it as it decodes it.
    /// Compiled, it still gives PolkaVM's results and gas, and so do the
    /// runs that cross the threshold and the ones after.
    fn hot_programs_run_compiled_and_still_match_polkavm(kernel: &mut Kernel) {
        let program = imported("hash");
        let mut reference = Reference::new(&blob("hash"));
        let instance = kernel.create_instance(&program.image).unwrap();
        // sieve(5000): ~150,000 gas a call.
        for (n, primes) in [(5000, 669), (5000, 669), (3000, 430)] {
            let (run, _) = both(kernel, &mut reference, &instance, &program, "sieve", [n, 0, 0, 0], &[]);
            assert_eq!((run.exit, run.r7), (ExitReason::Halt, primes), "primes below {n}");
        }
        let (run, _) =
            both(kernel, &mut reference, &instance, &program, "blake2b_chain", [40, 0, 0, 0], b"abc");
        assert_eq!(run.output.len(), 32);
        let stats = kernel.stats().unwrap();
        if kernel.backend() == capbox::BackendKind::Sandbox {
            assert_eq!(stats.programs_native, 1, "the hash program is compiled");
        }
        assert!(stats.programs_native <= stats.programs_cached);
    }

    fn kv_service_on_cap_ops(kernel: &mut Kernel) {
        let runs = kv_sequence(kernel);
        if kernel.backend() != capbox::BackendKind::Local {
            let mut local = capbox_tests::local_kernel();
            assert_eq!(runs, kv_sequence(&mut local), "sandbox vs local");
        }
    }
}

/// A fixed sequence of kv calls with the expected results; every outcome.
fn kv_sequence(kernel: &mut Kernel) -> Vec<capbox::shared::kernel::Outcome> {
    let program = imported("kv");
    let mut instance = kernel.create_instance(&program.image).unwrap();
    let mut runs = Vec::new();
    let mut call = |name: &str, args: [u64; 4], input: &[u8]| {
        let o = kernel
            .invoke_with_input(&instance, endpoint(&program, name), args, GAS, input)
            .unwrap();
        assert_eq!(o.exit, ExitReason::Halt, "{name}{args:?}");
        instance = o.instance;
        runs.push(o.clone());
        o
    };
    assert_eq!(call("put", [3, 0, 0, 0], b"three").r7, 0);
    assert_eq!(call("put", [70, 0, 0, 0], b"seventy").r7, 0);
    assert_eq!(call("len", [0; 4], &[]).r7, 2);
    let got = call("get", [3, 0, 0, 0], &[]);
    assert_eq!((got.r7, got.output.as_slice()), (5, &b"three"[..]));
    assert_eq!(call("put", [3, 0, 0, 0], b"THREE!").r7, 1, "replaced");
    assert_eq!(call("get", [3, 0, 0, 0], &[]).output, b"THREE!");
    assert_eq!(call("get", [4, 0, 0, 0], &[]).r7, ERR_NOT_FOUND);
    let hash = call("hash", [70, 0, 0, 0], &[]);
    let data =
        capbox::shared::cap::Cap::Data(capbox::shared::cap::Data::from_bytes(b"seventy").unwrap());
    assert_eq!(hash.output, data.hash().unwrap().as_bytes());
    assert_eq!(call("copy", [70, 71, 0, 0], &[]).r7, 0);
    assert_eq!(call("copy", [70, 3, 0, 0], &[]).r7, ERR_OCCUPIED);
    assert_eq!(call("get", [71, 0, 0, 0], &[]).output, b"seventy");
    assert_eq!(call("delete", [70, 0, 0, 0], &[]).r7, 1);
    assert_eq!(call("delete", [70, 0, 0, 0], &[]).r7, 0);
    assert_eq!(call("len", [0; 4], &[]).r7, 2);
    // A 64 KiB value, the largest.
    let big: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(call("put", [9, 0, 0, 0], &big).r7, 0);
    assert!(call("get", [9, 0, 0, 0], &[]).output == big);
    runs
}
