use capbox::shared::abi::GuestFunction;
use capbox::{Backend, SandboxBackend, SandboxConfig};
use std::sync::Arc;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let t = std::time::Instant::now();
    let mut b = SandboxBackend::new(SandboxConfig::default(), Arc::new(|_| None)).unwrap();
    eprintln!("create {:?}", t.elapsed());
    let t = std::time::Instant::now();
    for _ in 0..n {
        b.call(GuestFunction::Ping, &[]).unwrap();
    }
    eprintln!("{n} pings {:?}", t.elapsed());
    let r = b.call(GuestFunction::Stats, &[]).unwrap();
    eprintln!("{:?}", capbox::shared::abi::decode_stats_reply(&r));
}
