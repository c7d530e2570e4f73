//! A global allocator that remembers the largest single request made by the current thread.
//!
//! Install it in a test binary with `#[global_allocator] static A: BudgetAlloc = BudgetAlloc;`
//! and wrap one parse in [`largest_allocation`]. A request above [`HARD_LIMIT`] is refused
//! (the process aborts with "memory allocation of N bytes failed") so that a parser which would
//! allocate what a hostile length prefix says can never take the machine's memory down.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Any single allocation above this fails at once.
pub const HARD_LIMIT: usize = 1 << 30;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

pub struct BudgetAlloc;

fn note(size: usize) -> bool {
    // try_with: the thread-local may already be gone while a thread shuts down.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    size <= HARD_LIMIT
}

// SAFETY: every call is forwarded unchanged to the system allocator; refusing (returning null)
// is allowed by the GlobalAlloc contract.
unsafe impl GlobalAlloc for BudgetAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same layout as given to us.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !note(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same layout as given to us.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !note(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: ptr came from System with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and returns its result with the largest single allocation (bytes) it made on this
/// thread. Only meaningful in a binary that installed [`BudgetAlloc`].
pub fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    let r = f();
    (r, LARGEST.with(Cell::get))
}
