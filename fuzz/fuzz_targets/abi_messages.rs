//! Every decoder of a host ↔ guest message in `capbox_shared::abi` runs on
//! arbitrary bytes without panicking: the guest's request decoders (their
//! bytes come from the host) and the host's reply decoders (their bytes
//! come from the guest, which runs untrusted programs). When a request
//! decodes, encoding what was read and decoding that again gives the same
//! values (so a decoder never reports something its encoder cannot say).
#![no_main]

use capbox_shared::abi::{
    self, AbiNote, InvokeRequestView, decode_bench_reply, decode_bench_request,
    decode_get_cap_reply, decode_get_cap_request, decode_invoke_one_request, decode_invoke_reply,
    decode_invoke_request, decode_put_cap_reply, decode_put_cap_request, decode_stats_reply,
};
use libfuzzer_sys::fuzz_target;

fn requests(data: &[u8]) {
    if let Ok(caps) = decode_put_cap_request(data) {
        let again = abi::encode_put_cap_request(&caps);
        assert_eq!(decode_put_cap_request(&again).as_deref(), Ok(&caps[..]));
    }
    if let Ok((caps, calls)) = decode_invoke_request(data) {
        let again = abi::encode_invoke_request(&caps, &calls);
        let (caps2, calls2) = decode_invoke_request(&again).expect("own invoke request decodes");
        assert_eq!((caps2, calls2), (caps, calls));
    }
    // The view the guest's fast path uses: walk it lazily, as the guest does.
    if let Ok(view) = InvokeRequestView::new(data) {
        let _ = view.has_caps();
        let count = view.call_count();
        assert_eq!(
            view.calls().count(),
            count,
            "call_count disagrees with calls()"
        );
        for cap in view.caps() {
            let _ = (cap.hash, cap.bytes.len());
        }
    }
    if let Ok(call) = decode_invoke_one_request(data) {
        let again = abi::encode_invoke_one_request(&call);
        assert_eq!(decode_invoke_one_request(&again), Ok(call));
    }
    if let Ok(hash) = decode_get_cap_request(data) {
        let again = abi::encode_get_cap_request(&hash);
        assert_eq!(decode_get_cap_request(&again), Ok(hash));
    }
    if let Ok((name, iters)) = decode_bench_request(data) {
        let again = abi::encode_bench_request(name, iters);
        assert_eq!(decode_bench_request(&again), Ok((name, iters)));
    }
}

fn replies(data: &[u8]) {
    let _ = decode_put_cap_reply(data);
    let _ = decode_invoke_reply(data);
    let _ = decode_get_cap_reply(data);
    let _ = decode_stats_reply(data);
    let _ = decode_bench_reply(data);
    let _ = AbiNote::version_from_desc(data);
}

fuzz_target!(|data: &[u8]| {
    requests(data);
    replies(data);
});
