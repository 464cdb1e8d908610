//! The argon2id rate of this machine at usergraph's parameters (OWASP's
//! minimum, as in api/src/config.rs: m=19456 KiB, t=2, p=1, 32-byte output):
//! N threads hash for S seconds, each reusing one block of memory as
//! usergraph's hashing threads do, and the total rate is printed.
//!
//!     argon2-rate [--threads N] [--seconds S] [--m-kib M] [--t T] [--p P]
//!
//! N defaults to the number of cores, S to 10. One line on stdout:
//! `argon2id m=19456 t=2 p=1 output=32 threads=2 hashes=… seconds=… rate=…`
//! (rate in hashes per second over all threads).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};

const PASSWORD: &[u8] = b"seed-password-1234";
const OUTPUT_LEN: usize = 32;

struct Options {
    threads: usize,
    seconds: f64,
    m_kib: u32,
    t: u32,
    p: u32,
}

fn parse() -> Result<Options, String> {
    let mut options = Options {
        threads: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        seconds: 10.0,
        m_kib: 19_456,
        t: 2,
        p: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value:?}: {e}");
        match flag.as_str() {
            "--threads" => options.threads = value.parse::<usize>().map_err(|e| bad(&e))?,
            "--seconds" => options.seconds = value.parse::<f64>().map_err(|e| bad(&e))?,
            "--m-kib" => options.m_kib = value.parse::<u32>().map_err(|e| bad(&e))?,
            "--t" => options.t = value.parse::<u32>().map_err(|e| bad(&e))?,
            "--p" => options.p = value.parse::<u32>().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if !(1..=1024).contains(&options.threads) {
        return Err("--threads must be 1..1024".into());
    }
    if !(options.seconds > 0.0 && options.seconds <= 3600.0) {
        return Err("--seconds must be in (0, 3600]".into());
    }
    Ok(options)
}

/// Hashes until `deadline`; the count of hashes done.
fn hash_until(n: usize, params: &Params, deadline: Instant) -> Result<u64, argon2::Error> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut memory = vec![Block::default(); params.block_count()];
    let mut out = [0u8; OUTPUT_LEN];
    let mut salt = [0u8; 16];
    salt[..8].copy_from_slice(&(n as u64).to_le_bytes());
    let mut count: u64 = 0;
    while Instant::now() < deadline {
        salt[8..].copy_from_slice(&count.to_le_bytes());
        argon.hash_password_into_with_memory(PASSWORD, &salt, &mut out, memory.as_mut_slice())?;
        std::hint::black_box(&out);
        count += 1;
    }
    Ok(count)
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(options) => options,
        Err(e) if e.is_empty() => {
            println!("argon2-rate [--threads N] [--seconds S] [--m-kib M] [--t T] [--p P]");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("argon2-rate: {e}");
            return ExitCode::from(2);
        }
    };
    let params = match Params::new(options.m_kib, options.t, options.p, Some(OUTPUT_LEN)) {
        Ok(params) => params,
        Err(e) => {
            eprintln!("argon2-rate: parameters: {e}");
            return ExitCode::from(2);
        }
    };
    let began = Instant::now();
    let deadline = began + Duration::from_secs_f64(options.seconds);
    let workers: Vec<_> = (0..options.threads)
        .map(|n| {
            let params = params.clone();
            std::thread::spawn(move || hash_until(n, &params, deadline))
        })
        .collect();
    let mut hashes: u64 = 0;
    for worker in workers {
        match worker.join() {
            Ok(Ok(count)) => hashes += count,
            Ok(Err(e)) => {
                eprintln!("argon2-rate: {e}");
                return ExitCode::FAILURE;
            }
            Err(_) => {
                eprintln!("argon2-rate: a hashing thread panicked");
                return ExitCode::FAILURE;
            }
        }
    }
    // Until the last thread finished its last hash, begun before the deadline.
    let elapsed = began.elapsed().as_secs_f64();
    println!(
        "argon2id m={} t={} p={} output={OUTPUT_LEN} threads={} hashes={hashes} seconds={elapsed:.3} rate={:.2}",
        options.m_kib,
        options.t,
        options.p,
        options.threads,
        hashes as f64 / elapsed
    );
    ExitCode::SUCCESS
}
