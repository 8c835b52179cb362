//! Differential test: the same generated (program, args, gas) invocations
//! on both backends give identical outcomes, gas and hashes. Batched so the
//! sandbox sees three calls in all. Both backends run it twice: with the
//! default blob budget and with a tiny one (evicting all the time), which
//! must change nothing.

use capbox::shared::cap::Cap;
use capbox::shared::kernel::Outcome;
use capbox::shared::kernel::new_instance;
use capbox::{Invocation, Kernel};
use capbox_tests::programs::{Rng, random_image, random_invocations};
use capbox_tests::{TINY_BUDGET, local_kernel_with_budget, sandbox_with_budget};

const IMAGES: usize = 8;
const INVOCATIONS: usize = 64;

fn run(kernel: &mut Kernel, caps: &[Cap], calls: &[Invocation]) -> Vec<Result<Outcome, String>> {
    kernel
        .put_caps(caps)
        .expect("publishing the generated caps");
    kernel
        .invoke_batch(calls)
        .expect("the batch as a whole")
        .into_iter()
        .map(|r| r.map_err(|e| e.to_string()))
        .collect()
}

#[test]
fn local_and_sandbox_agree() {
    let mut rng = Rng::new(0xcab0_0001);
    let mut caps = Vec::new();
    let mut instances = Vec::new();
    for _ in 0..IMAGES {
        let image = random_image(&mut rng);
        let image_cap = Cap::Image(image.clone());
        let image_hash = image_cap.hash().unwrap();
        let fresh = new_instance(image_hash, &image).unwrap();
        instances.push((fresh.instance_hash, image.endpoints.len() as u32));
        caps.extend([image_cap, fresh.memory, fresh.root_cnode, fresh.instance]);
    }
    let calls = random_invocations(&mut rng, &instances, INVOCATIONS);

    let local = run(&mut capbox_tests::local_kernel(), &caps, &calls);
    // The generator must exercise every kind of ending, not just one.
    let kinds: std::collections::BTreeSet<String> = local
        .iter()
        .map(|r| match r {
            Ok(o) => format!("{:?}", o.exit)
                .chars()
                .take_while(|c| c.is_alphabetic())
                .collect(),
            Err(_) => "Err".into(),
        })
        .collect();
    for kind in ["Halt", "Panic", "OutOfGas", "PageFault", "Err"] {
        assert!(
            kinds.contains(kind),
            "generated calls never end in {kind}: {kinds:?}"
        );
    }
    // Calls that committed a new state (a chained call starts from the
    // previous call's result).
    let mut changed = 0;
    let mut previous = None;
    for (result, call) in local.iter().zip(&calls) {
        let input = call.instance.or(previous);
        previous = result.as_ref().ok().map(|o| o.instance);
        if let (Ok(o), Some(input)) = (result, input)
            && o.instance != input
        {
            changed += 1;
        }
    }
    assert!(
        changed >= 5,
        "only {changed} generated calls changed their state"
    );
    eprintln!(
        "{INVOCATIONS} invocations over {IMAGES} images: endings {kinds:?}, {changed} changed state"
    );

    let mut tiny = local_kernel_with_budget(TINY_BUDGET);
    let local_tiny = run(&mut tiny, &caps, &calls);
    assert_same(&local, &local_tiny, &calls, "local, tiny budget");
    assert!(
        tiny.stats().unwrap().evictions > 0,
        "the tiny budget evicts"
    );

    {
        let Some(mut sandbox) = capbox_tests::shared_sandbox() else {
            return;
        };
        let remote = run(&mut sandbox, &caps, &calls);
        assert_same(&local, &remote, &calls, "sandbox");
    }
    let Some(mut sandbox) = sandbox_with_budget(TINY_BUDGET) else {
        return;
    };
    let remote = run(&mut sandbox, &caps, &calls);
    assert_same(&local, &remote, &calls, "sandbox, tiny budget");
    let stats = sandbox.stats().unwrap();
    assert!(stats.evictions > 0, "{stats:?}");
    assert!(stats.blobs <= TINY_BUDGET.max_blobs, "{stats:?}");
}

fn assert_same(
    expected: &[Result<Outcome, String>],
    got: &[Result<Outcome, String>],
    calls: &[Invocation],
    what: &str,
) {
    assert_eq!(expected.len(), got.len(), "{what}");
    for (i, (l, r)) in expected.iter().zip(got).enumerate() {
        assert_eq!(l, r, "{what}: call {i} ({:?}) differs", calls[i]);
    }
}
