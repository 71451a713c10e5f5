//! A device connection's command queue: a bounded queue that holds no memory while it is
//! empty (issue 19, a lean connection). A `tokio::sync::mpsc` channel allocates its first
//! block of 32 slots when it is made, about 5 KiB per connection for [`ConnCmd`], although
//! commands to a device are rare; this queue costs one small shared allocation and grows
//! only while commands wait.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use crate::ConnCmd;

/// Commands waiting at most, per connection; a sender beyond waits ([`Sender::send`]) or
/// fails ([`Sender::try_send`]).
const CAPACITY: usize = 16;

struct Shared {
    queue: Mutex<VecDeque<ConnCmd>>,
    /// Wakes the connection when a command arrives (one consumer: a stored permit).
    arrived: Notify,
    /// Wakes senders waiting for room, or for the end of the connection.
    room: Notify,
    closed: AtomicBool,
}

/// The connection has ended (or, for [`Sender::try_send`], its queue is full).
#[derive(Debug)]
pub(crate) struct Gone;

/// Where other tasks reach one connection.
#[derive(Clone)]
pub(crate) struct Sender(Arc<Shared>);

/// The connection's end; dropping it refuses every later command.
pub(crate) struct Receiver(Arc<Shared>);

/// A new queue.
pub(crate) fn channel() -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(VecDeque::new()),
        arrived: Notify::new(),
        room: Notify::new(),
        closed: AtomicBool::new(false),
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl Sender {
    /// Queues `cmd` unless the queue is full or the connection has ended.
    pub(crate) fn try_send(&self, cmd: ConnCmd) -> Result<(), Gone> {
        if self.0.closed.load(Ordering::Acquire) {
            return Err(Gone);
        }
        let mut q = self.0.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if q.len() >= CAPACITY {
            return Err(Gone);
        }
        q.push_back(cmd);
        drop(q);
        self.0.arrived.notify_one();
        Ok(())
    }

    /// Queues `cmd`, waiting for room; fails once the connection has ended.
    pub(crate) async fn send(&self, cmd: ConnCmd) -> Result<(), Gone> {
        let mut cmd = Some(cmd);
        loop {
            // Registered before the check, so a wake-up between the two is not lost.
            let mut room = pin!(self.0.room.notified());
            room.as_mut().enable();
            if self.0.closed.load(Ordering::Acquire) {
                return Err(Gone);
            }
            {
                let mut q = self.0.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if q.len() < CAPACITY {
                    q.extend(cmd.take());
                    drop(q);
                    self.0.arrived.notify_one();
                    return Ok(());
                }
            }
            room.await;
        }
    }
}

impl Receiver {
    /// The next command; waits while there is none.
    pub(crate) async fn recv(&mut self) -> ConnCmd {
        loop {
            {
                let mut q = self.0.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(cmd) = q.pop_front() {
                    if q.is_empty() {
                        // Hold nothing while idle.
                        *q = VecDeque::new();
                    }
                    drop(q);
                    self.0.room.notify_waiters();
                    return cmd;
                }
            }
            self.0.arrived.notified().await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        // Commands still queued are dropped now: their reply channels close, which their
        // senders read as "not connected".
        let queued =
            std::mem::take(&mut *self.0.queue.lock().unwrap_or_else(PoisonError::into_inner));
        drop(queued);
        self.0.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn kick(n: usize) -> ConnCmd {
        ConnCmd::Kick {
            reason: n.to_string(),
        }
    }

    fn reason(cmd: ConnCmd) -> String {
        match cmd {
            ConnCmd::Kick { reason } => reason,
            _ => String::new(),
        }
    }

    #[tokio::test]
    async fn in_order_bounded_and_refused_after_the_end() {
        let (tx, mut rx) = channel();
        for n in 0..CAPACITY {
            assert!(tx.try_send(kick(n)).is_ok());
        }
        assert!(tx.try_send(kick(99)).is_err(), "full");
        // A waiting sender gets in once there is room.
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(kick(CAPACITY)).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        for n in 0..=CAPACITY {
            assert_eq!(reason(rx.recv().await), n.to_string());
        }
        assert!(waiting.await.unwrap_or(false));
        // A command sent while the receiver waits wakes it.
        let later = tokio::spawn({
            let tx = tx.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                tx.try_send(kick(7)).is_ok()
            }
        });
        assert_eq!(reason(rx.recv().await), "7");
        assert!(later.await.unwrap_or(false));
        drop(rx);
        assert!(tx.try_send(kick(1)).is_err());
        assert!(tx.send(kick(1)).await.is_err());
    }

    #[tokio::test]
    async fn a_sender_blocked_on_a_full_queue_fails_when_the_connection_ends() {
        let (tx, rx) = channel();
        for n in 0..CAPACITY {
            assert!(tx.try_send(kick(n)).is_ok());
        }
        let blocked = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(kick(0)).await.is_err() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(rx);
        let failed = tokio::time::timeout(Duration::from_secs(2), blocked).await;
        assert!(matches!(failed, Ok(Ok(true))));
    }
}
