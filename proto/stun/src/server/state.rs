//! Per-allocation state: permissions, channels, the bandwidth bucket, and the ledger that
//! counts allocations per user across every server instance of a process.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::auth::Scope;
use crate::message::TransactionId;

use super::{FiveTuple, Quotas};

/// One allocation (RFC 8656 2.2).
#[derive(Debug)]
pub(crate) struct Allocation {
    pub(crate) tuple: FiveTuple,
    pub(crate) relay: SocketAddr,
    /// The USERNAME that created it; later requests must carry the same (RFC 8656 5).
    pub(crate) username: String,
    /// The quota key: the user part of the REST username.
    pub(crate) user: String,
    pub(crate) key: [u8; 16],
    pub(crate) scope: Option<Scope>,
    pub(crate) expires: Instant,
    pub(crate) allocate_txn: TransactionId,
    pub(crate) lifetime: Duration,
    pub(crate) permissions: Vec<Permission>,
    pub(crate) channels: Vec<Channel>,
    pub(crate) bucket: Option<TokenBucket>,
    /// The earliest deadline a timer entry exists for.
    pub(crate) scheduled: Option<Instant>,
}

/// A permission: a peer IP (any port) and its expiry (RFC 8656 9).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Permission {
    pub(crate) ip: IpAddr,
    pub(crate) expires: Instant,
}

/// A channel binding (RFC 8656 12).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Channel {
    pub(crate) number: u16,
    pub(crate) peer: SocketAddr,
    pub(crate) expires: Instant,
}

impl Allocation {
    /// Whether an unexpired permission covers `ip`.
    pub(crate) fn permitted(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions
            .iter()
            .any(|p| p.ip == ip && p.expires > now)
    }

    /// The earliest instant at which something in the allocation expires.
    pub(crate) fn next_deadline(&self) -> Instant {
        let mut d = self.expires;
        for p in &self.permissions {
            d = d.min(p.expires);
        }
        for c in &self.channels {
            d = d.min(c.expires);
        }
        d
    }

    /// Drop expired permissions and channels.
    pub(crate) fn sweep(&mut self, now: Instant) {
        self.permissions.retain(|p| p.expires > now);
        self.channels.retain(|c| c.expires > now);
    }

    /// Install or refresh a permission; `false` if that needs a new entry beyond `max`.
    pub(crate) fn permit(
        &mut self,
        ip: IpAddr,
        expires: Instant,
        now: Instant,
        max: usize,
    ) -> bool {
        if let Some(p) = self.permissions.iter_mut().find(|p| p.ip == ip) {
            p.expires = expires;
            return true;
        }
        self.permissions.retain(|p| p.expires > now);
        if self.permissions.len() >= max {
            return false;
        }
        self.permissions.push(Permission { ip, expires });
        true
    }

    /// Count the bytes against the bandwidth cap; `false` means drop.
    pub(crate) fn spend(&mut self, now: Instant, bytes: usize) -> bool {
        match &mut self.bucket {
            Some(b) => b.take(now, bytes),
            None => true,
        }
    }
}

/// A token bucket over relayed bytes: `rate` bytes per second, holding at most `burst`.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: u64,
    burst: u64,
    tokens: u64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: u64, burst: u64, now: Instant) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    pub(crate) fn take(&mut self, now: Instant, bytes: usize) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        if !elapsed.is_zero() {
            let add = elapsed.as_nanos() * u128::from(self.rate) / 1_000_000_000;
            let add = u64::try_from(add).unwrap_or(u64::MAX);
            if add > 0 {
                self.tokens = self.tokens.saturating_add(add).min(self.burst);
                self.last = now;
            }
        }
        let bytes = bytes as u64;
        if self.tokens >= bytes {
            self.tokens -= bytes;
            true
        } else {
            false
        }
    }
}

/// Why the ledger refused an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaRefusal {
    /// The user holds [`Quotas::max_allocations_per_user`] already (486).
    User,
    /// The server holds [`Quotas::max_allocations`] already (508).
    Total,
}

/// Counts allocations per user and in total. One ledger is shared (in an `Arc`) by every
/// [`super::TurnServer`] of a process, so quotas hold when the driver runs one server per
/// thread. It is touched only when allocations are created or deleted, never per packet.
#[derive(Debug, Default)]
pub struct AllocationLedger {
    inner: Mutex<LedgerInner>,
}

#[derive(Debug, Default)]
struct LedgerInner {
    total: u32,
    per_user: HashMap<String, u32>,
}

impl AllocationLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Count one more allocation for `user`, unless that would exceed the quotas.
    pub fn acquire(&self, user: &str, quotas: &Quotas) -> Result<(), QuotaRefusal> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.total >= quotas.max_allocations {
            return Err(QuotaRefusal::Total);
        }
        let held = inner.per_user.get(user).copied().unwrap_or(0);
        if held >= quotas.max_allocations_per_user {
            return Err(QuotaRefusal::User);
        }
        inner.total += 1;
        *inner.per_user.entry(user.to_owned()).or_insert(0) += 1;
        Ok(())
    }

    /// Count one allocation of `user` gone.
    pub fn release(&self, user: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.total = inner.total.saturating_sub(1);
        if let Some(n) = inner.per_user.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                inner.per_user.remove(user);
            }
        }
    }

    /// Allocations counted now.
    pub fn total(&self) -> u32 {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}
