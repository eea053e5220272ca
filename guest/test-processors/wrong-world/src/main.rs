//! A WASI command component (`wasi:cli/run`), not a twinsync processor: installing it must
//! fail with a message saying which world is missing.

fn main() {
    println!("hello from a component that is not a processor");
}
