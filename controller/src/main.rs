fn main() -> std::process::ExitCode {
    siuctl::cli::main()
}
