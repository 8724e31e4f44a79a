//! How the process gets its memory back from the allocator. A training step
//! allocates and frees the same large activation and gradient buffers every
//! time; glibc's malloc serves large blocks with `mmap` and gives them back
//! to the kernel on `free`, so every step faulted the same pages in again
//! (12 % of a squeeze1 training step in `perf`, page faults and zeroing).

/// Keeps freed memory in the process for the next step's buffers: blocks
/// of the main heap and of each thread's arena (below the arena's 64 MiB)
/// come from the heap rather than their own mappings, and up to 2 GiB of
/// the heap's top is not returned to the kernel. The cost is some peak
/// memory (the zoo's benches: squeeze1 104 -> 116 MiB, nin2 305 -> 368 MiB);
/// squeeze1 trained 27 % faster with it in two alternating runs. Only the
/// first call does anything, so that `mallopt`, which glibc documents as
/// unsafe beside other threads' allocations, runs once, at the start.
pub fn keep_freed_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets allocator parameters; the generated
        // programs call this first thing in `cli::run`, before any thread
        // of theirs allocates.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        }
    });
}
