//! How the process gets its memory back from the allocator. A training step
//! allocates and frees the same large activation and gradient buffers every
//! time; glibc's malloc serves large blocks with `mmap` and gives them back
//! to the kernel on `free`, so every step faulted the same pages in again
//! (12 % of a squeeze1 training step in `perf`, page faults and zeroing).

/// Keeps freed memory in the process for the next step's buffers: large
/// blocks come from the heap rather than their own mappings, and the heap's
/// top is not returned to the kernel. The cost is some peak memory
/// (squeeze1's bench: 109 -> 122 MiB, nin2's 305 -> 368 MiB); squeeze1
/// trained 27 % faster with it in two alternating runs. Called once, before
/// the first tensor.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before
    // the program's threads start allocating.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
