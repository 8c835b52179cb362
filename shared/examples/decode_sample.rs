//! Decodes the sample program `N` times (default 10,000): a host-side
//! proxy for the guest's first-call decode cost, counted with
//! `perf stat -e instructions:u` (N minus 0 runs, divided by N).

use capbox_shared::kernel::sample::sample_image;
use capbox_shared::pvm::Program;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let code = sample_image().code;
    let mut count = 0;
    for _ in 0..n {
        let program = Program::from_blob(std::hint::black_box(&code)).expect("decodes");
        count += std::hint::black_box(program).instruction_count();
    }
    println!("{count}");
}
