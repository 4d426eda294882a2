fn main() -> std::process::ExitCode {
    pinsync::cli::main()
}
