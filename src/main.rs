// Plans and states of 100,000 pins are millions of small allocations;
// mimalloc makes them markedly cheaper than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    pinsync::cli::main()
}
