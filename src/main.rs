// Plans and states of 100,000 pins are millions of small allocations;
// mimalloc makes them markedly cheaper than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    without_huge_pages();
    pinsync::cli::main()
}

/// mimalloc asks the kernel for transparent huge pages on its arenas, so
/// each first touch zeroes 2 MiB, and memory it hands back and takes again
/// (a parsed file freed, the next one parsed) is zeroed again in full. At a
/// million pins that was a third of a plan's time; with 4 KiB pages it is
/// gone. A failure (an old kernel) only costs that time. Processes pinsync
/// starts inherit the setting.
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory
    // of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
