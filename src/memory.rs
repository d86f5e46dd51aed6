//! Giving memory back to the operating system once the server goes quiet.
//!
//! The server's binary allocates with jemalloc, whose background thread returns freed pages
//! within a second (`src/main.rs`). What still comes from glibc's allocator (C libraries,
//! and the whole of any binary built without jemalloc, such as the tests) keeps the pages a
//! burst freed in every thread's arena: without this, an idle server on glibc held on to its
//! peak working set (about 26 MB instead of about 10).

/// Returns the allocator's free pages to the operating system. Costs a walk over the heap
/// (a few milliseconds at most): call it when idle, not per request.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_freed_memory() {
    // SAFETY: `malloc_trim` takes no pointers and only works on glibc's own bookkeeping, under
    // its own locks; it is safe to call from any thread at any time.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl, macOS) return memory by themselves or not at all.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed_memory() {}
