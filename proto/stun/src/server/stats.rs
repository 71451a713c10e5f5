//! Counters a driver exports (Prometheus).

/// Counters of one [`super::TurnServer`]; add several with [`Stats::merge`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Allocations that exist now (a gauge).
    pub allocations_active: u64,
    /// Allocations ever created.
    pub allocations_total: u64,
    /// Binding requests answered.
    pub binding_requests: u64,
    /// Packets relayed from clients to peers.
    pub packets_to_peer: u64,
    /// Application bytes relayed from clients to peers.
    pub bytes_to_peer: u64,
    /// Packets relayed from peers to clients.
    pub packets_to_client: u64,
    /// Application bytes relayed from peers to clients.
    pub bytes_to_client: u64,
    /// Requests refused for a bad, expired or forged credential (401), or a wrong user
    /// for the allocation (441).
    pub auth_failures: u64,
    /// Requests answered 438 Stale Nonce.
    pub stale_nonces: u64,
    /// Peers refused by the peer-address policy (403).
    pub policy_denials: u64,
    /// Peers refused because the credential's session scope does not list them, and
    /// unscoped credentials refused under `require_scoped` (403).
    pub scope_denials: u64,
    /// Allocations, permissions or channels refused by a quota (486, 508).
    pub quota_refusals: u64,
    /// Packets dropped by the per-allocation bandwidth cap.
    pub bandwidth_drops: u64,
    /// Packets dropped for want of an allocation, permission or channel.
    pub unpermitted_drops: u64,
    /// Datagrams and frames that are neither valid STUN nor ChannelData.
    pub malformed: u64,
}

/// One exported counter: name (without prefix), help text, Prometheus type, value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The metric name, e.g. `allocations_active`.
    pub name: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// `"counter"` or `"gauge"`.
    pub kind: &'static str,
    /// The value.
    pub value: u64,
}

impl Stats {
    /// Add another server's counters.
    pub fn merge(&mut self, o: &Self) {
        self.allocations_active += o.allocations_active;
        self.allocations_total += o.allocations_total;
        self.binding_requests += o.binding_requests;
        self.packets_to_peer += o.packets_to_peer;
        self.bytes_to_peer += o.bytes_to_peer;
        self.packets_to_client += o.packets_to_client;
        self.bytes_to_client += o.bytes_to_client;
        self.auth_failures += o.auth_failures;
        self.stale_nonces += o.stale_nonces;
        self.policy_denials += o.policy_denials;
        self.scope_denials += o.scope_denials;
        self.quota_refusals += o.quota_refusals;
        self.bandwidth_drops += o.bandwidth_drops;
        self.unpermitted_drops += o.unpermitted_drops;
        self.malformed += o.malformed;
    }

    /// Every counter with its name and help, for an exporter.
    pub fn metrics(&self) -> [Metric; 15] {
        let m = |name, help, kind, value| Metric {
            name,
            help,
            kind,
            value,
        };
        [
            m(
                "allocations_active",
                "TURN allocations that exist now.",
                "gauge",
                self.allocations_active,
            ),
            m(
                "allocations_total",
                "TURN allocations created.",
                "counter",
                self.allocations_total,
            ),
            m(
                "binding_requests_total",
                "STUN Binding requests answered.",
                "counter",
                self.binding_requests,
            ),
            m(
                "relayed_packets_to_peer_total",
                "Packets relayed from clients to peers.",
                "counter",
                self.packets_to_peer,
            ),
            m(
                "relayed_bytes_to_peer_total",
                "Application bytes relayed from clients to peers.",
                "counter",
                self.bytes_to_peer,
            ),
            m(
                "relayed_packets_to_client_total",
                "Packets relayed from peers to clients.",
                "counter",
                self.packets_to_client,
            ),
            m(
                "relayed_bytes_to_client_total",
                "Application bytes relayed from peers to clients.",
                "counter",
                self.bytes_to_client,
            ),
            m(
                "auth_failures_total",
                "Requests refused for bad, expired or forged credentials.",
                "counter",
                self.auth_failures,
            ),
            m(
                "stale_nonces_total",
                "Requests answered 438 Stale Nonce.",
                "counter",
                self.stale_nonces,
            ),
            m(
                "policy_denials_total",
                "Peers refused by the peer-address policy.",
                "counter",
                self.policy_denials,
            ),
            m(
                "scope_denials_total",
                "Peers refused as outside the credential's session scope.",
                "counter",
                self.scope_denials,
            ),
            m(
                "quota_refusals_total",
                "Allocations, permissions or channels refused by a quota.",
                "counter",
                self.quota_refusals,
            ),
            m(
                "bandwidth_drops_total",
                "Packets dropped by the per-allocation bandwidth cap.",
                "counter",
                self.bandwidth_drops,
            ),
            m(
                "unpermitted_drops_total",
                "Packets dropped without allocation, permission or channel.",
                "counter",
                self.unpermitted_drops,
            ),
            m(
                "malformed_total",
                "Input that is neither STUN nor ChannelData.",
                "counter",
                self.malformed,
            ),
        ]
    }
}
