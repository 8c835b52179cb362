//! A guest fault (the sandbox is rebuilt, everything it held is gone)
//! between durable invocations, and an invocation that fails: `capbox log`
//! shows every committed invocation, in order, with no gap; the failed one
//! is simply absent; the session goes on from the store.

mod heads_support;

use capbox::shared::abi::GuestFunction;
use capbox::shared::kernel::ops::MAX_INPUT_LEN;
use capbox::shared::kernel::sample::{Endpoint, sample_image};
use capbox::{
    BackendChoice, Invocation, Kernel, KernelError, Session, SessionError, SessionOptions, Store,
};
use heads_support::log;

fn increment() -> Invocation {
    Invocation {
        instance: None,
        endpoint: Endpoint::Increment.index(),
        args: [0; 4],
        gas: 10_000,
        input: Vec::new(),
        timeout: None,
    }
}

#[test]
fn log_after_a_guest_fault_and_rebuild_has_no_gap() {
    let kernel = match Kernel::new(BackendChoice::Sandbox) {
        Ok(kernel) => kernel,
        Err(e) if std::env::var("CAPBOX_REQUIRE_SANDBOX").as_deref() != Ok("1") => {
            eprintln!("!!! SKIPPED: no sandbox ({e})");
            return;
        }
        Err(e) => panic!("CAPBOX_REQUIRE_SANDBOX=1 but no sandbox: {e}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store");
    let store = Store::open(&store_path).unwrap();
    let mut session = Session::create(
        kernel,
        store.clone(),
        "c",
        &sample_image(),
        SessionOptions::default(),
    )
    .unwrap();
    for i in 1..=3 {
        assert_eq!(session.invoke(&increment()).unwrap().outcome.r7, i);
    }
    // The sandbox dies and is rebuilt empty.
    let fault = session
        .kernel_mut()
        .call_raw(GuestFunction::Crash, &[])
        .unwrap_err();
    assert!(matches!(fault, KernelError::GuestFault { .. }), "{fault}");
    // An invocation that fails commits nothing.
    let too_big = Invocation {
        input: vec![0; MAX_INPUT_LEN as usize + 1],
        ..increment()
    };
    let before = store.head_state("c").unwrap();
    assert!(matches!(
        session.invoke(&too_big),
        Err(SessionError::Kernel(_))
    ));
    assert_eq!(store.head_state("c").unwrap(), before);
    // The rebuilt sandbox gets the state from the store, where every
    // committed invocation already is.
    for i in 4..=5 {
        assert_eq!(session.invoke(&increment()).unwrap().outcome.r7, i);
    }
    drop(session);

    let history = log(&store_path, "c");
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6, "{history}");
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry["seq"], i as u64 + 1);
        if i > 0 {
            assert_eq!(
                entry["prev"],
                entries[i - 1]["new"],
                "a gap before #{}",
                i + 1
            );
            let outcome = format!("exit=Halt,r7={i},r8=0,out=0");
            assert_eq!(entry["outcome"], outcome.as_str());
        }
    }
    assert_eq!(entries[5]["new"], history["instance"]);
    assert!(store.verify().unwrap().is_ok());
}
