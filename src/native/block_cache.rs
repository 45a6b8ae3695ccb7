//! The process's allocator natively: the system allocator, with freed large blocks kept for reuse.
//!
//! A training step on the CPU allocates and frees the same large buffers every time: each matrix
//! product's output, the `[B, R, V]` logits and every element-wise result over them, the
//! gradients. glibc hands allocations above its mmap threshold (at most 32 MiB) straight back to
//! the kernel when they are freed, and a fresh mapping costs a page fault and a zeroed page for
//! every 4 KiB the next step writes. Profiled on the 50M model, page faults and the kernel's
//! page clearing were a fifth of the update's main-thread time.
//!
//! Here a freed block of at least [`LARGE`] bytes goes into a small cache instead, up to a byte
//! budget, and an allocation of exactly the same size and alignment takes it back. The oldest
//! blocks leave (back to the system) when a new one would go over the budget, so the cache
//! follows the sizes of whatever phase runs now. Smaller allocations are the system's, as before.
//! `alloc_zeroed` of a reused block clears it, since only fresh pages come zeroed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Blocks of at least this many bytes are cached.
pub const LARGE: usize = 1 << 20;

/// How many blocks the cache holds at most.
const SLOTS: usize = 64;

/// The process allocator's budget unless told otherwise ([`set_budget`]): enough for every
/// transient buffer of a 50M-model update step (16 MiB logits, 64 MiB embedding gradients).
pub const BUDGET: usize = 1 << 30;

/// The allocator of every native build of ppo-lens (the CLI, the tests, the benchmarks).
#[global_allocator]
static ALLOCATOR: BlockCache = BlockCache::new(BUDGET);

/// Sets how many bytes of freed blocks the process's allocator keeps (0: none, the plain system
/// allocator); blocks over the new budget go back to the system now.
pub fn set_budget(bytes: usize) {
    ALLOCATOR.set_budget(bytes);
}

#[derive(Clone, Copy)]
struct Block {
    ptr: *mut u8,
    size: usize,
    align: usize,
    /// When it was cached: the oldest leaves first.
    stamp: u64,
}

struct Slots {
    blocks: [Option<Block>; SLOTS],
    bytes: usize,
    clock: u64,
}

// The blocks are owned by the cache alone while they are in it.
unsafe impl Send for Slots {}

/// The system allocator with a cache of freed large blocks (see the module docs).
pub struct BlockCache {
    budget: AtomicUsize,
    slots: Mutex<Slots>,
}

impl BlockCache {
    /// A cache that keeps at most `budget` bytes of freed blocks.
    pub const fn new(budget: usize) -> Self {
        BlockCache {
            budget: AtomicUsize::new(budget),
            slots: Mutex::new(Slots {
                blocks: [None; SLOTS],
                bytes: 0,
                clock: 0,
            }),
        }
    }

    /// Keep at most `bytes` from now on; the oldest blocks over it go back to the system.
    pub fn set_budget(&self, bytes: usize) {
        self.budget.store(bytes, Ordering::Relaxed);
        let evicted = evict(&mut self.lock(), 0, bytes);
        unsafe { release(evicted) };
    }

    /// Bytes held in the cache now.
    pub fn cached_bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        // Nothing that holds the lock can panic; a poisoned lock still holds valid slots.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A cached block of exactly this size and alignment, the most recently cached first.
    fn take(&self, layout: Layout) -> Option<*mut u8> {
        let mut slots = self.lock();
        let best = (0..SLOTS)
            .filter(|&i| {
                slots.blocks[i]
                    .is_some_and(|b| b.size == layout.size() && b.align == layout.align())
            })
            .max_by_key(|&i| slots.blocks[i].map_or(0, |b| b.stamp))?;
        let block = slots.blocks[best].take()?;
        slots.bytes -= block.size;
        Some(block.ptr)
    }

    /// Keeps `ptr` for reuse, or returns it to the system when it cannot fit the budget.
    ///
    /// # Safety
    /// `ptr` was allocated by this allocator with `layout` and is not used after this call.
    unsafe fn put(&self, ptr: *mut u8, layout: Layout) {
        let budget = self.budget.load(Ordering::Relaxed);
        if layout.size() > budget {
            unsafe { System.dealloc(ptr, layout) };
            return;
        }
        let evicted = {
            let mut slots = self.lock();
            let evicted = evict(&mut slots, layout.size(), budget);
            slots.clock += 1;
            let stamp = slots.clock;
            let free = slots
                .blocks
                .iter()
                .position(Option::is_none)
                .expect("room was made");
            slots.blocks[free] = Some(Block {
                ptr,
                size: layout.size(),
                align: layout.align(),
                stamp,
            });
            slots.bytes += layout.size();
            evicted
        };
        unsafe { release(evicted) };
    }
}

/// Takes the oldest blocks out until `incoming` bytes fit in `budget` beside the rest, and a slot
/// is free for them when `incoming` > 0. Returns the blocks taken out.
fn evict(slots: &mut Slots, incoming: usize, budget: usize) -> [Option<Block>; SLOTS] {
    let mut evicted: [Option<Block>; SLOTS] = [None; SLOTS];
    let mut n = 0;
    while slots.bytes + incoming > budget
        || (incoming > 0 && slots.blocks.iter().all(Option::is_some))
    {
        let Some(oldest) = (0..SLOTS)
            .filter(|&i| slots.blocks[i].is_some())
            .min_by_key(|&i| slots.blocks[i].map_or(u64::MAX, |b| b.stamp))
        else {
            break; // nothing left to evict
        };
        let block = slots.blocks[oldest].take().expect("just found");
        slots.bytes -= block.size;
        evicted[n] = Some(block);
        n += 1;
    }
    evicted
}

/// Returns evicted blocks to the system (outside the lock).
///
/// # Safety
/// The blocks came out of the cache, which owned them.
unsafe fn release(blocks: [Option<Block>; SLOTS]) {
    for block in blocks.into_iter().flatten() {
        let layout = Layout::from_size_align(block.size, block.align).expect("it was a layout");
        unsafe { System.dealloc(block.ptr, layout) };
    }
}

unsafe impl GlobalAlloc for BlockCache {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE
            && let Some(ptr) = self.take(layout)
        {
            return ptr;
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE
            && let Some(ptr) = self.take(layout)
        {
            unsafe { ptr.write_bytes(0, layout.size()) };
            return ptr;
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= LARGE {
            unsafe { self.put(ptr, layout) };
        } else {
            unsafe { System.dealloc(ptr, layout) };
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.size() < LARGE && new_size < LARGE {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // A large block on either side: through this allocator, so the cache stays exact.
        let new_layout = match Layout::from_size_align(new_size, layout.align()) {
            Ok(l) => l,
            Err(_) => return std::ptr::null_mut(),
        };
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn a_freed_large_block_is_reused_for_the_same_size_and_alignment_only() {
        let cache = BlockCache::new(64 << 20);
        let big = layout(4 << 20, 64);
        unsafe {
            let a = cache.alloc(big);
            assert!(!a.is_null());
            a.write_bytes(7, big.size());
            cache.dealloc(a, big);
            assert_eq!(cache.cached_bytes(), big.size());
            // Another size or alignment does not take it.
            let other = cache.alloc(layout(4 << 20, 128));
            let bigger = cache.alloc(layout((4 << 20) + 4096, 64));
            assert_ne!(other, a);
            assert_ne!(bigger, a);
            assert_eq!(cache.cached_bytes(), big.size());
            // The same layout does, and zeroed requests get zeros back.
            let b = cache.alloc_zeroed(big);
            assert_eq!(b, a);
            assert_eq!(cache.cached_bytes(), 0);
            assert!(
                std::slice::from_raw_parts(b, big.size())
                    .iter()
                    .all(|&x| x == 0)
            );
            cache.dealloc(b, big);
            cache.dealloc(other, layout(4 << 20, 128));
            cache.dealloc(bigger, layout((4 << 20) + 4096, 64));
        }
    }

    #[test]
    fn small_blocks_are_the_systems_and_the_budget_holds() {
        let cache = BlockCache::new(10 << 20);
        let small = layout(LARGE - 1, 8);
        let block = layout(4 << 20, 16);
        unsafe {
            let s = cache.alloc(small);
            cache.dealloc(s, small);
            assert_eq!(cache.cached_bytes(), 0, "below LARGE: not cached");

            let blocks: Vec<*mut u8> = (0..3).map(|_| cache.alloc(block)).collect();
            for &p in &blocks {
                cache.dealloc(p, block);
                assert!(cache.cached_bytes() <= 10 << 20);
            }
            // Three 4 MiB blocks do not fit 10 MiB: the oldest left, the two newest stay.
            assert_eq!(cache.cached_bytes(), 8 << 20);
            let again = [cache.alloc(block), cache.alloc(block)];
            assert_eq!(again, [blocks[2], blocks[1]], "most recent first");
            assert_eq!(cache.cached_bytes(), 0);
            for p in again {
                cache.dealloc(p, block);
            }
            // A block over the whole budget goes straight back.
            let huge = layout(16 << 20, 16);
            let h = cache.alloc(huge);
            cache.dealloc(h, huge);
            assert_eq!(cache.cached_bytes(), 8 << 20);
        }
    }

    #[test]
    fn a_lower_budget_releases_the_oldest_blocks_at_once() {
        let cache = BlockCache::new(64 << 20);
        let block = layout(2 << 20, 16);
        unsafe {
            let ptrs: Vec<*mut u8> = (0..3).map(|_| cache.alloc(block)).collect();
            for &p in &ptrs {
                cache.dealloc(p, block);
            }
            assert_eq!(cache.cached_bytes(), 6 << 20);
            cache.set_budget(5 << 20);
            assert_eq!(cache.cached_bytes(), 4 << 20);
            cache.set_budget(0);
            assert_eq!(cache.cached_bytes(), 0);
            let p = cache.alloc(block);
            cache.dealloc(p, block);
            assert_eq!(cache.cached_bytes(), 0, "a zero budget caches nothing");
        }
    }

    #[test]
    fn realloc_keeps_the_contents_across_the_threshold() {
        let cache = BlockCache::new(64 << 20);
        unsafe {
            let small = layout(1000, 8);
            let p = cache.alloc(small);
            for i in 0..1000 {
                *p.add(i) = (i % 251) as u8;
            }
            let grown = cache.realloc(p, small, 3 << 20);
            assert!((0..1000).all(|i| *grown.add(i) == (i % 251) as u8));
            let shrunk = cache.realloc(grown, layout(3 << 20, 8), 500);
            assert!((0..500).all(|i| *shrunk.add(i) == (i % 251) as u8));
            assert_eq!(cache.cached_bytes(), 3 << 20, "the large block was kept");
            cache.dealloc(shrunk, layout(500, 8));
        }
    }

    #[test]
    fn many_threads_share_it() {
        static CACHE: BlockCache = BlockCache::new(32 << 20);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let l = layout((1 + t % 2) << 20, 64);
                    for i in 0..200u32 {
                        unsafe {
                            let p = CACHE.alloc(l);
                            let fill = (i as u8).wrapping_add(t as u8);
                            p.write_bytes(fill, l.size());
                            assert!(
                                std::slice::from_raw_parts(p, l.size())
                                    .iter()
                                    .all(|&x| x == fill)
                            );
                            CACHE.dealloc(p, l);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(CACHE.cached_bytes() <= 32 << 20);
    }
}
