//! A team of threads for the many short parallel sections of a decoding step.
//!
//! A decoding step of the 50M model runs 41 matrix products and 10 attentions, each about 0.1 to
//! 0.5 ms of work shared between the cores. Through rayon, the other core falls asleep in the
//! gaps between them (a norm, the rotary embedding), and waking it costs a system call and a
//! scheduler round trip each time; when it wakes late, the calling thread takes its share back
//! and runs the product alone. On this project's 2-core machine, a step with `rayon::scope`
//! around each product took 11.1-12.2 ms, and 9.7-11.2 ms on this team (the two builds
//! alternated); the kernel's wake-ups and sleeps, 7% of the samples before, left the profile.
//!
//! Here the helpers are threads of their own that, after a job, keep checking for the next one
//! for [`SPIN`] before they park. [`run`] publishes a job, runs parts of it on the calling
//! thread, and waits for the helpers' parts. Only one caller uses the team at a time; a second
//! caller meanwhile (another thread, or a job that itself calls [`run`]) runs its parts on
//! rayon's pool instead, so nothing ever waits on a team that is busy.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, TryLockError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::cpu_fast::Kernel;

/// How long a helper keeps checking for the next job before it parks. Longer than the gaps
/// inside a decoding step (tens of microseconds) and than the sampling between two steps.
pub const SPIN: Duration = Duration::from_millis(2);

/// One job: `work(i)` for every `i < parts`, each index taken by whichever thread is free.
struct Job<'a> {
    work: &'a (dyn Fn(usize) + Sync),
    parts: usize,
    next: AtomicUsize,
    /// The first panic's payload from a helper, resumed on the calling thread.
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
    panicked: AtomicBool,
}

impl Job<'_> {
    /// Takes indices until none are left.
    fn work_through(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.parts {
                return;
            }
            (self.work)(i);
        }
    }
}

/// What the caller and the helpers share.
struct Shared {
    /// Bumped once per job; a helper runs a job when it sees a number it has not seen.
    generation: AtomicU64,
    /// The current job, on the caller's stack: valid from the bump of `generation` until
    /// `remaining` is back to 0.
    job: AtomicPtr<Job<'static>>,
    /// Helpers that have not finished the current job.
    remaining: AtomicUsize,
}

struct Team {
    shared: &'static Shared,
    helpers: Vec<Thread>,
    busy: Mutex<()>,
}

/// The team: one helper less than rayon's threads (the caller is the last one).
fn team() -> &'static Team {
    static TEAM: OnceLock<Team> = OnceLock::new();
    TEAM.get_or_init(|| {
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            generation: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            remaining: AtomicUsize::new(0),
        }));
        let helpers = (1..rayon::current_num_threads())
            .filter_map(|i| {
                thread::Builder::new()
                    .name(format!("ppo-lens-team-{i}"))
                    .spawn(move || helper(shared))
                    .ok()
                    .map(|handle| handle.thread().clone())
            })
            .collect();
        Team {
            shared,
            helpers,
            busy: Mutex::new(()),
        }
    })
}

/// Threads that [`run`] shares a job between when the team is free: the caller and the helpers.
pub fn size() -> usize {
    team().helpers.len() + 1
}

fn helper(shared: &'static Shared) {
    let mut seen = 0;
    loop {
        seen = next_generation(&shared.generation, seen);
        // SAFETY: the caller keeps the job alive until `remaining` is 0, which needs this
        // helper's decrement below; the pointer was stored before `generation` was bumped.
        let job = unsafe { &*shared.job.load(Ordering::Acquire) };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| job.work_through())) {
            job.panicked.store(true, Ordering::Relaxed);
            let mut first = job.panic.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert(payload);
        }
        shared.remaining.fetch_sub(1, Ordering::Release);
    }
}

/// Waits until `generation` differs from `seen`: checking for [`SPIN`], then parked (the
/// caller unparks every helper after each bump).
fn next_generation(generation: &AtomicU64, seen: u64) -> u64 {
    let start = Instant::now();
    let mut checks = 0u32;
    loop {
        let now = generation.load(Ordering::Acquire);
        if now != seen {
            return now;
        }
        checks = checks.wrapping_add(1);
        if checks.is_multiple_of(256) && start.elapsed() > SPIN {
            thread::park();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Runs `work(i)` for every `i` in `0..parts`, each exactly once, shared between the calling
/// thread and the team's helpers (or rayon's pool while the team is busy), and returns when all
/// are done. A panic in any part is resumed here once every part has finished.
pub fn run(parts: usize, work: &(dyn Fn(usize) + Sync)) {
    run_or(parts, work, WhenBusy::Rayon)
}

/// What [`run_or`] does when another caller has the team.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WhenBusy {
    /// Run on rayon's pool.
    Rayon,
    /// Wait for the team (tests that must see the helpers at work; never inside a job).
    #[cfg(test)]
    Wait,
}

fn run_or(parts: usize, work: &(dyn Fn(usize) + Sync), when_busy: WhenBusy) {
    if parts <= 1 {
        (0..parts).for_each(work);
        return;
    }
    // Turned off (crate::cpu_fast), the parts run on rayon's pool, as burn's own ops do.
    if crate::cpu_fast::take(Kernel::Team, || Some(())).is_none() {
        (0..parts).into_par_iter().for_each(work);
        return;
    }
    let team = team();
    let _busy = match team.busy.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) if when_busy == WhenBusy::Rayon => {
            (0..parts).into_par_iter().for_each(work);
            return;
        }
        Err(TryLockError::WouldBlock) => team.busy.lock().unwrap_or_else(|p| p.into_inner()),
    };
    if team.helpers.is_empty() {
        (0..parts).for_each(work);
        return;
    }
    let job = Job {
        work,
        parts,
        next: AtomicUsize::new(0),
        panic: Mutex::new(None),
        panicked: AtomicBool::new(false),
    };
    let shared = team.shared;
    shared
        .remaining
        .store(team.helpers.len(), Ordering::Relaxed);
    shared.job.store(
        (&job as *const Job<'_>).cast_mut().cast(),
        Ordering::Relaxed,
    );
    shared.generation.fetch_add(1, Ordering::Release);
    for helper in &team.helpers {
        helper.unpark();
    }
    let mine = catch_unwind(AssertUnwindSafe(|| job.work_through()));
    // The helpers may still be reading `job`: wait for them whatever happened here.
    let mut checks = 0u32;
    while shared.remaining.load(Ordering::Acquire) != 0 {
        checks = checks.wrapping_add(1);
        if checks.is_multiple_of(1024) {
            thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    if let Err(payload) = mine {
        resume_unwind(payload);
    }
    if job.panicked.load(Ordering::Relaxed) {
        let payload = job.panic.lock().unwrap_or_else(|p| p.into_inner()).take();
        resume_unwind(payload.unwrap_or_else(|| Box::new("a part of a team job panicked")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many times each index ran.
    fn counts(parts: usize) -> Vec<usize> {
        let ran: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
        run(parts, &|i| {
            ran[i].fetch_add(1, Ordering::Relaxed);
        });
        ran.into_iter().map(AtomicUsize::into_inner).collect()
    }

    #[test]
    fn every_part_runs_exactly_once() {
        for parts in [0, 1, 2, 3, 7, 64, 1000] {
            for _ in 0..20 {
                assert_eq!(counts(parts), vec![1; parts], "{parts} parts");
            }
        }
    }

    /// Parts on other threads than the caller's take much longer than the caller's own: `run`
    /// still returns only after the last one finished.
    #[test]
    fn run_returns_after_the_last_part() {
        let caller = thread::current().id();
        let done: Vec<AtomicBool> = (0..8).map(|_| AtomicBool::new(false)).collect();
        let work = |i: usize| {
            let ms = if thread::current().id() == caller {
                1
            } else {
                20
            };
            thread::sleep(Duration::from_millis(ms));
            done[i].store(true, Ordering::Relaxed);
        };
        run_or(done.len(), &work, WhenBusy::Wait);
        assert!(done.iter().all(|d| d.load(Ordering::Relaxed)));
    }

    /// Waits until `ready()` holds, for at most half a minute (a hang guard, not a speed
    /// check); says whether it held.
    fn wait_until(ready: impl Fn() -> bool) -> bool {
        let start = Instant::now();
        while !ready() {
            if start.elapsed() > Duration::from_secs(30) {
                return false;
            }
            thread::yield_now();
        }
        true
    }

    /// Jobs spaced further apart than [`SPIN`] find the helpers parked: they wake and take
    /// parts. The caller's parts wait until a helper has taken one, so the test does not
    /// depend on how fast a helper wakes: only on whether it wakes at all.
    #[test]
    fn parked_helpers_wake_for_the_next_job() {
        if size() == 1 {
            return;
        }
        let caller = thread::current().id();
        for _ in 0..3 {
            // Long enough for the helpers to park; if one is still spinning, the job below
            // passes all the same (it only shows less).
            thread::sleep(SPIN * 3);
            let on_helpers = AtomicUsize::new(0);
            let work = |_| {
                if thread::current().id() == caller {
                    assert!(
                        wait_until(|| on_helpers.load(Ordering::Relaxed) > 0),
                        "no helper woke"
                    );
                } else {
                    on_helpers.fetch_add(1, Ordering::Relaxed);
                }
            };
            run_or(8, &work, WhenBusy::Wait);
            assert!(on_helpers.load(Ordering::Relaxed) > 0, "no helper woke");
        }
    }

    /// Callers on several threads at once, and a job whose parts call `run` themselves: the
    /// team serves one caller, the others go to rayon's pool; every part runs once and none
    /// waits forever.
    #[test]
    fn concurrent_and_nested_callers_all_finish() {
        let outer = 8;
        let inner: Vec<AtomicUsize> = (0..outer * 5).map(|_| AtomicUsize::new(0)).collect();
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..50 {
                        assert_eq!(counts(9), vec![1; 9]);
                    }
                });
            }
            run(outer, &|i| {
                run(5, &|j| {
                    inner[i * 5 + j].fetch_add(1, Ordering::Relaxed);
                })
            });
        });
        assert!(inner.iter().all(|c| c.load(Ordering::Relaxed) == 1));
    }

    /// A panic in a part, on the caller's thread or on a helper's, reaches the caller with its
    /// message after the other parts finished; the team runs the next job as before.
    #[test]
    fn a_panicking_part_reaches_the_caller_and_the_team_goes_on() {
        let caller = thread::current().id();
        for on_caller in [true, false] {
            if !on_caller && size() == 1 {
                continue;
            }
            // Every thread other than the one meant to fail waits in its parts until that one
            // has failed: each helper holds at most one part at a time, so with more parts than
            // threads the failing side always gets one, however the threads are scheduled.
            let parts = size() + 4;
            let (done, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
            let work = |i| {
                if (thread::current().id() == caller) == on_caller {
                    if !failed.swap(true, Ordering::Relaxed) {
                        panic!("part {i} failed");
                    }
                } else {
                    assert!(
                        wait_until(|| failed.load(Ordering::Relaxed)),
                        "the failing side never ran a part"
                    );
                }
                done.fetch_add(1, Ordering::Relaxed);
            };
            let err = catch_unwind(AssertUnwindSafe(|| run_or(parts, &work, WhenBusy::Wait)))
                .unwrap_err();
            let message = err.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(
                message.starts_with("part ") && message.ends_with(" failed"),
                "{message}"
            );
            // The thread that panicked takes no more parts of this job (the caller stops at its
            // panic, a helper's loop ends at it); the other threads finish the rest.
            assert_eq!(
                done.load(Ordering::Relaxed),
                parts - 1,
                "the other parts ran"
            );
            assert_eq!(counts(6), vec![1; 6]);
        }
    }
}
