//! The workers of an exploration or a fuzzing session: a thread each, each
//! with a state of its own (its stages: mounts, sandboxes, live canaries),
//! taking items until there are none or its work says stop.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Items handed out once each, in order, to whichever worker asks first.
pub(crate) struct Queue<'a, T> {
    items: &'a [T],
    next: AtomicUsize,
}

impl<'a, T> Queue<'a, T> {
    /// A queue of `items`.
    pub(crate) fn new(items: &'a [T]) -> Self {
        Queue {
            items,
            next: AtomicUsize::new(0),
        }
    }

    /// The next item not handed out yet, if any.
    pub(crate) fn take(&self) -> Option<&'a T> {
        self.items.get(self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// Runs one thread per worker state in `workers`: each calls `take(index)`
/// for its next item and `work(index, state, item)` on it, until `take`
/// gives none or `work` returns false. Returns when every worker is done.
pub(crate) fn run<W, T>(
    workers: &mut [W],
    take: &(dyn Fn(usize) -> Option<T> + Sync),
    work: &(dyn Fn(usize, &mut W, T) -> bool + Sync),
) where
    W: Send,
{
    std::thread::scope(|scope| {
        for (index, state) in workers.iter_mut().enumerate() {
            scope.spawn(move || {
                while let Some(item) = take(index) {
                    if !work(index, state, item) {
                        return;
                    }
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn every_item_is_worked_once_and_a_worker_may_stop() {
        let items: Vec<u32> = (0..100).collect();
        let queue = Queue::new(&items);
        let done = Mutex::new(Vec::new());
        let mut workers = vec![0u32; 3];
        run(&mut workers, &|_| queue.take(), &|_, count, item| {
            *count += 1;
            done.lock().unwrap().push(*item);
            true
        });
        let mut done = done.into_inner().unwrap();
        done.sort_unstable();
        assert_eq!(done, items);
        assert_eq!(workers.iter().sum::<u32>(), 100);
        // A worker that stops takes no more.
        let queue = Queue::new(&items);
        let mut workers = vec![0u32; 2];
        run(&mut workers, &|_| queue.take(), &|_, count, _| {
            *count += 1;
            false
        });
        assert_eq!(workers, [1, 1]);
    }
}
