//! Two futures of one request awaited together: independent work of a request (a
//! statement and an upstream call that need nothing of each other) overlaps instead
//! of waiting in turn. Plain Rust over `std::future`; the runtime's calls inside them
//! are what actually wait.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

/// Both outputs, once both futures have finished; `first` is polled first each time.
pub async fn both<A: Future, B: Future>(first: A, second: B) -> (A::Output, B::Output) {
    let (mut first, mut second) = (pin!(first), pin!(second));
    let (mut a, mut b) = (None, None);
    poll_fn(|cx| {
        if a.is_none()
            && let Poll::Ready(output) = first.as_mut().poll(cx)
        {
            a = Some(output);
        }
        if b.is_none()
            && let Poll::Ready(output) = second.as_mut().poll(cx)
        {
            b = Some(output);
        }
        if a.is_some() && b.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    match (a, b) {
        (Some(a), Some(b)) => (a, b),
        // `poll_fn` above finishes only once both are there.
        _ => unreachable!("both futures finished"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_outputs_come_back_in_order() {
        let (a, b) = crate::block_on(both(async { 1 }, async { "two" }));
        assert_eq!((a, b), (1, "two"));
    }

    #[test]
    fn a_future_that_waits_does_not_hold_up_the_other() {
        use std::cell::Cell;
        // `first` is pending until `second` has run once: awaited in turn, this would
        // never finish.
        let second_ran = Cell::new(false);
        let first = poll_fn(|cx| {
            if second_ran.get() {
                Poll::Ready("first")
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        });
        let second = async {
            second_ran.set(true);
            "second"
        };
        assert_eq!(crate::block_on(both(first, second)), ("first", "second"));
    }
}
