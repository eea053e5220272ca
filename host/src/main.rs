//! The `twinsync` command.

mod cli;

#[global_allocator]
static ALLOCATOR: twinsync::Allocator = twinsync::Allocator;

fn main() -> std::process::ExitCode {
    twinsync::keep_freed_c_memory();
    cli::main()
}
