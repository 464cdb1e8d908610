//! The `usergraph` binary: parse arguments, dispatch to `cli`.

use clap::Parser as _;

/// mimalloc instead of the system allocator: a request allocates and frees
/// many small objects on whichever runtime worker polls it, and glibc's
/// malloc spent a sixth of the server's time there (arena locks, chunk
/// consolidation) while its per-thread arenas kept freed memory resident.
/// With mimalloc the `me` load run serves ~30 % more and its peak RSS is
/// lower (bench/results).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    usergraph::cli::run(usergraph::cli::Cli::parse())
}

/// `mi_option_arena_eager_commit` in mimalloc.h (the same in its v2 and
/// v3; the Rust bindings do not name it).
#[cfg(target_os = "linux")]
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// mimalloc commits its arenas eagerly where the OS overcommits (Linux);
/// committed on demand instead, the process's resident set follows what it
/// uses (measured with the load harness: ~17 MiB less at start, 71 instead
/// of 85–88 MiB at the peak of a login storm). Set from the ELF
/// initialisers, before the Rust runtime's first allocation reserves the
/// first arena (in `main` it is too late). `MIMALLOC_ARENA_EAGER_COMMIT`
/// (or its older name `MIMALLOC_EAGER_REGION_COMMIT`), when set, wins.
/// Allocates nothing (that would reserve the arena first).
#[cfg(target_os = "linux")]
extern "C" fn commit_on_demand() {
    // SAFETY: getenv reads the environment libc set up before any
    // initialiser ran; mi_option_set writes one entry of mimalloc's static
    // option table. Runs once, before any thread exists.
    unsafe {
        if libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null()
            && libc::getenv(c"MIMALLOC_EAGER_REGION_COMMIT".as_ptr()).is_null()
        {
            libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        }
    }
}

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static COMMIT_ON_DEMAND: extern "C" fn() = commit_on_demand;
