//! The `usergraph` binary: parse arguments, dispatch to `cli`.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    usergraph::cli::run(usergraph::cli::Cli::parse())
}

/// glibc gives each thread that allocates concurrently an arena of its own
/// (up to 8 per core), and each keeps the memory its thread freed: the
/// runtime's workers, the blocking pool and the hashing threads together
/// held several MiB that no thread used. Two arenas are enough for two
/// runtime workers; a larger machine gets one per core. Before any thread
/// starts. (The `MALLOC_ARENA_MAX` environment variable, when set, wins.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets an allocator parameter; it is called here
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
