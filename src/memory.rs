//! Gives the heap's free memory back to the operating system.
//!
//! glibc's allocator keeps what the process freed: after a flood of
//! handshakes whose sessions expire, or a burst of connections that leave,
//! RSS stays at the peak (issue 11: 20,000 expired polling sessions left
//! 60 MB of a 7.8 MB process). `malloc_trim` returns the free pages of every
//! arena, not only the top of the heap. It walks the arenas under their
//! locks, so it runs only when there is enough free memory to be worth it,
//! from a timer (`background::memory_trim`), never on a request's path.

/// Free heap bytes below which a trim is not worth its cost.
pub const TRIM_ABOVE: usize = 16 << 20;

/// How often the timer looks at the free heap.
pub const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Returns free heap memory to the OS when more than [`TRIM_ABOVE`] bytes are
/// free; the free bytes it saw when it trimmed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() -> Option<usize> {
    // SAFETY: both are plain glibc calls without arguments that point
    // anywhere; they take the allocator's own locks.
    let free = unsafe { libc::mallinfo2() }.fordblks;
    if free < TRIM_ABOVE {
        return None;
    }
    unsafe { libc::malloc_trim(0) };
    Some(free)
}

/// Other allocators give memory back by themselves (or cannot be asked).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() -> Option<usize> {
    None
}
