//! The `capbox` command line.
fn main() {
    println!(
        "capbox {}: workspace skeleton; no demo yet",
        env!("CARGO_PKG_VERSION")
    );
}
