use clap::Parser;
use faultline::cli::{self, Cli};

/// jemalloc: ingest allocates and frees a tree of small values per event, and glibc's
/// allocator took a fifth of the server's CPU under load (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Freed pages go back to the system within a second by jemalloc's own background thread,
/// so an idle server shrinks as it did with glibc and `malloc_trim`.
#[allow(non_upper_case_globals, unsafe_code)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    faultline::telemetry::init(cli.log_format);
    match cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
