//! STUN requests: Binding (RFC 8489, and RFC 3489 clients), the long-term credential check,
//! and the TURN methods Allocate, Refresh, CreatePermission and ChannelBind (RFC 8656).

use super::*;

impl TurnServer {
    pub(super) fn stun<'a>(
        &mut self,
        now: Instant,
        tuple: FiveTuple,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> Output<'a> {
        if crate::classic::is_classic_binding(bytes) {
            return self.classic_binding(&tuple, bytes, out);
        }
        let Ok(msg) = Message::decode(bytes) else {
            self.stats.malformed += 1;
            return Output::None;
        };
        // RFC 8489 7.3: a FINGERPRINT that does not match means "not STUN".
        if msg.get(attr::FINGERPRINT).is_some() && verify_fingerprint(bytes).is_err() {
            self.stats.malformed += 1;
            return Output::None;
        }
        if msg.class != Class::Request {
            // Indications other than Send, and responses, are not for a server.
            return Output::None;
        }
        if msg.method == Method::BINDING {
            return self.binding(&tuple, &msg, out);
        }
        if ![
            Method::ALLOCATE,
            Method::REFRESH,
            Method::CREATE_PERMISSION,
            Method::CHANNEL_BIND,
        ]
        .contains(&msg.method)
        {
            return self.error(out, &msg, ErrorCode::BAD_REQUEST, "Unknown method", None);
        }
        if self.pending.contains_key(&tuple) {
            // The driver is binding this client's relay; a retransmission waits.
            return Output::None;
        }
        let auth = match self.authenticate(now, &tuple, &msg, bytes, out) {
            Ok(a) => a,
            Err(o) => return o,
        };
        let unknown = msg.unknown_comprehension_required();
        if !unknown.is_empty() {
            // RFC 8489 6.3.1.1.
            let mut m = Message::new(Class::ErrorResponse, msg.method, msg.transaction_id)
                .with(Attribute::ErrorCode(ErrorCode::new(
                    ErrorCode::UNKNOWN_ATTRIBUTE,
                    "Unknown Attribute",
                )))
                .with(Attribute::UnknownAttributes(unknown));
            self.add_software(&mut m);
            return self.emit(out, &m, auth.seal());
        }
        match msg.method {
            Method::ALLOCATE => self.allocate(now, tuple, msg, auth, out),
            Method::REFRESH => self.refresh(now, &tuple, &msg, &auth, out),
            Method::CREATE_PERMISSION => self.create_permission(now, &tuple, &msg, &auth, out),
            _ => self.channel_bind(now, &tuple, &msg, &auth, out),
        }
    }

    /// RFC 8489 6.3.1: Binding, on every transport, without credentials. Adds
    /// RESPONSE-ORIGIN (RFC 5780 7.3).
    pub(super) fn binding<'a>(
        &mut self,
        tuple: &FiveTuple,
        msg: &Message,
        out: &mut Vec<u8>,
    ) -> Output<'a> {
        self.stats.binding_requests += 1;
        let mut unknown = msg.unknown_comprehension_required();
        // RFC 5780 7.2: this server has no alternate address, so a request to answer from
        // another address or port cannot be honoured: 420, never a success the client
        // would take for "the other address answered".
        if msg.attributes.iter().any(|a| {
            matches!(a, Attribute::ChangeRequest { change_ip, change_port } if *change_ip || *change_port)
        }) {
            unknown.push(attr::CHANGE_REQUEST);
        }
        if !unknown.is_empty() {
            let m = Message::new(Class::ErrorResponse, msg.method, msg.transaction_id)
                .with(Attribute::ErrorCode(ErrorCode::new(
                    ErrorCode::UNKNOWN_ATTRIBUTE,
                    "Unknown Attribute",
                )))
                .with(Attribute::UnknownAttributes(unknown));
            return self.emit(out, &m, None);
        }
        let mut m = Message::new(Class::SuccessResponse, msg.method, msg.transaction_id)
            .with(Attribute::XorMappedAddress(tuple.client))
            .with(Attribute::MappedAddress(tuple.client))
            .with(Attribute::ResponseOrigin(tuple.server));
        self.add_software(&mut m);
        self.emit(out, &m, None)
    }

    /// RFC 8489 12: a Binding request of an RFC 3489 client (no magic cookie), answered
    /// with MAPPED-ADDRESS and its own 128-bit transaction id; malformed ones are dropped.
    pub(super) fn classic_binding<'a>(
        &mut self,
        tuple: &FiveTuple,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> Output<'a> {
        out.clear();
        match crate::classic::answer_binding(bytes, tuple.client) {
            Ok(b) => {
                self.stats.binding_requests += 1;
                out.extend_from_slice(&b);
                Output::Reply
            }
            Err(_) => {
                self.stats.malformed += 1;
                Output::None
            }
        }
    }

    /// RFC 8489 9.2.4: the long-term credential checks, with REST usernames.
    pub(super) fn authenticate<'a>(
        &mut self,
        now: Instant,
        tuple: &FiveTuple,
        msg: &Message,
        bytes: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Authed, Output<'a>> {
        let has_integrity = msg.get(attr::MESSAGE_INTEGRITY).is_some()
            || msg.get(attr::MESSAGE_INTEGRITY_SHA256).is_some();
        if !has_integrity {
            return Err(self.challenge(
                now,
                tuple,
                out,
                msg,
                ErrorCode::UNAUTHENTICATED,
                "Unauthenticated",
            ));
        }
        let (Some(username), Some(realm), Some(nonce)) = (msg.username(), msg.realm(), msg.nonce())
        else {
            return Err(self.error(
                out,
                msg,
                ErrorCode::BAD_REQUEST,
                "Missing USERNAME, REALM or NONCE",
                None,
            ));
        };
        if !self.nonce_valid(now, tuple, nonce) {
            self.stats.stale_nonces += 1;
            return Err(self.challenge(
                now,
                tuple,
                out,
                msg,
                ErrorCode::STALE_NONCE,
                "Stale Nonce",
            ));
        }
        let unix = self.unix_now(now);
        let checked = if realm == self.config.realm {
            self.config.secret.check_username(username, unix).ok()
        } else {
            None
        };
        let Some(rest) = checked else {
            self.stats.auth_failures += 1;
            return Err(self.challenge(
                now,
                tuple,
                out,
                msg,
                ErrorCode::UNAUTHENTICATED,
                "Unauthenticated",
            ));
        };
        let user = rest.user().to_owned();
        let scope = scope_of(&rest);
        // Reuse the allocation's key when the same user asks again (Refresh etc.).
        let cached = self
            .by_tuple
            .get(tuple)
            .and_then(|&i| self.slots[i as usize].alloc.as_ref())
            .filter(|a| a.username == username)
            .map(|a| a.key);
        let key = cached.unwrap_or_else(|| {
            crate::auth::long_term_key(username, realm, &self.config.secret.password(username))
        });
        let Ok(alg) = verify_integrity(bytes, &key) else {
            self.stats.auth_failures += 1;
            return Err(self.challenge(
                now,
                tuple,
                out,
                msg,
                ErrorCode::UNAUTHENTICATED,
                "Unauthenticated",
            ));
        };
        let Ok(scope) = scope else {
            self.stats.auth_failures += 1;
            return Err(self.challenge(
                now,
                tuple,
                out,
                msg,
                ErrorCode::UNAUTHENTICATED,
                "Unauthenticated",
            ));
        };
        let auth = Authed {
            username: username.to_owned(),
            user,
            key,
            alg,
            scope,
        };
        // RFC 8656 5: requests on an allocation must come from the user who made it.
        if let Some(&i) = self.by_tuple.get(tuple)
            && let Some(a) = &self.slots[i as usize].alloc
            && a.username != auth.username
        {
            self.stats.auth_failures += 1;
            return Err(self.error(
                out,
                msg,
                ErrorCode::WRONG_CREDENTIALS,
                "Wrong Credentials",
                auth.seal(),
            ));
        }
        Ok(auth)
    }

    /// RFC 8656 7.2.
    pub(super) fn allocate<'a>(
        &mut self,
        _now: Instant,
        tuple: FiveTuple,
        msg: Message,
        auth: Authed,
        out: &mut Vec<u8>,
    ) -> Output<'a> {
        if let Some(&i) = self.by_tuple.get(&tuple) {
            if let Some(a) = &self.slots[i as usize].alloc
                && a.allocate_txn == msg.transaction_id
            {
                // A retransmission: the same success again.
                let (relay, lifetime) = (a.relay, a.lifetime);
                return self.allocate_success(out, &msg, &tuple, relay, lifetime, &auth);
            }
            return self.error(
                out,
                &msg,
                ErrorCode::ALLOCATION_MISMATCH,
                "Allocation Mismatch",
                auth.seal(),
            );
        }
        match msg.requested_transport() {
            None => {
                return self.error(
                    out,
                    &msg,
                    ErrorCode::BAD_REQUEST,
                    "No REQUESTED-TRANSPORT",
                    auth.seal(),
                );
            }
            Some(17) => {}
            Some(_) => {
                return self.error(
                    out,
                    &msg,
                    ErrorCode::UNSUPPORTED_TRANSPORT,
                    "Unsupported Transport Protocol",
                    auth.seal(),
                );
            }
        }
        let mut even_port = false;
        let mut family = RelayFamily::V4;
        for a in msg.effective_attributes() {
            match a {
                Attribute::ReservationToken(_) | Attribute::EvenPort(true) => {
                    self.stats.quota_refusals += 1;
                    return self.error(
                        out,
                        &msg,
                        ErrorCode::INSUFFICIENT_CAPACITY,
                        "Port reservation not supported",
                        auth.seal(),
                    );
                }
                Attribute::EvenPort(false) => even_port = true,
                Attribute::RequestedAddressFamily(f) => {
                    family = match f {
                        crate::message::AddressFamily::V4 => RelayFamily::V4,
                        crate::message::AddressFamily::V6 => RelayFamily::V6,
                        crate::message::AddressFamily::Other(_) => {
                            return self.error(
                                out,
                                &msg,
                                ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED,
                                "Address Family not Supported",
                                auth.seal(),
                            );
                        }
                    };
                }
                _ => {}
            }
        }
        // docs/security.md D8: relay only for an authorised session.
        if auth.scope.is_none() && self.config.require_scoped {
            self.stats.scope_denials += 1;
            return self.error(
                out,
                &msg,
                ErrorCode::FORBIDDEN,
                "Credential not scoped to a session",
                auth.seal(),
            );
        }
        if let Err(q) = self.config.ledger.acquire(&auth.user, &self.config.quotas) {
            self.stats.quota_refusals += 1;
            return match q {
                QuotaRefusal::User => self.error(
                    out,
                    &msg,
                    ErrorCode::ALLOCATION_QUOTA_REACHED,
                    "Allocation Quota Reached",
                    auth.seal(),
                ),
                QuotaRefusal::Total => self.error(
                    out,
                    &msg,
                    ErrorCode::INSUFFICIENT_CAPACITY,
                    "Insufficient Capacity",
                    auth.seal(),
                ),
            };
        }
        let lifetime = self.lifetime(msg.lifetime());
        self.pending.insert(
            tuple,
            Pending {
                auth,
                request: msg,
                lifetime,
            },
        );
        Output::BindRelay { family, even_port }
    }

    pub(super) fn allocate_success<'a>(
        &self,
        out: &mut Vec<u8>,
        req: &Message,
        tuple: &FiveTuple,
        relay: SocketAddr,
        lifetime: Duration,
        auth: &Authed,
    ) -> Output<'a> {
        let mut m = Message::new(Class::SuccessResponse, req.method, req.transaction_id)
            .with(Attribute::XorRelayedAddress(relay))
            .with(Attribute::Lifetime(secs(lifetime)))
            .with(Attribute::XorMappedAddress(tuple.client));
        self.add_software(&mut m);
        self.emit(out, &m, auth.seal())
    }

    /// RFC 8656 7.2 / 8.2: min(requested, max), but not below the default.
    pub(super) fn lifetime(&self, requested: Option<u32>) -> Duration {
        let c = &self.config;
        match requested {
            Some(s) => Duration::from_secs(u64::from(s))
                .min(c.max_lifetime)
                .max(c.default_lifetime),
            None => c.default_lifetime,
        }
    }

    /// RFC 8656 8.2.
    pub(super) fn refresh<'a>(
        &mut self,
        now: Instant,
        tuple: &FiveTuple,
        msg: &Message,
        auth: &Authed,
        out: &mut Vec<u8>,
    ) -> Output<'a> {
        let Some(&idx) = self.by_tuple.get(tuple) else {
            return self.error(
                out,
                msg,
                ErrorCode::ALLOCATION_MISMATCH,
                "Allocation Mismatch",
                auth.seal(),
            );
        };
        let granted = if msg.lifetime() == Some(0) {
            self.delete(idx);
            Duration::ZERO
        } else {
            let lifetime = self.lifetime(msg.lifetime());
            if let Some(a) = self.slots[idx as usize].alloc.as_mut() {
                a.expires = now + lifetime;
                a.lifetime = lifetime;
            }
            self.schedule(idx);
            lifetime
        };
        let mut m = Message::new(Class::SuccessResponse, msg.method, msg.transaction_id)
            .with(Attribute::Lifetime(secs(granted)));
        self.add_software(&mut m);
        self.emit(out, &m, auth.seal())
    }

    /// RFC 8656 10.2.
    pub(super) fn create_permission<'a>(
        &mut self,
        now: Instant,
        tuple: &FiveTuple,
        msg: &Message,
        auth: &Authed,
        out: &mut Vec<u8>,
    ) -> Output<'a> {
        let Some(&idx) = self.by_tuple.get(tuple) else {
            return self.error(
                out,
                msg,
                ErrorCode::ALLOCATION_MISMATCH,
                "Allocation Mismatch",
                auth.seal(),
            );
        };
        let peers = msg.xor_peer_addresses();
        if peers.is_empty() {
            return self.error(
                out,
                msg,
                ErrorCode::BAD_REQUEST,
                "No XOR-PEER-ADDRESS",
                auth.seal(),
            );
        }
        for p in &peers {
            if let Err((code, reason)) = self.check_peer(idx, p.ip()) {
                return self.error(out, msg, code, reason, auth.seal());
            }
        }
        let expires = now + self.config.permission_lifetime;
        let max = self.config.quotas.max_permissions;
        let Some(alloc) = self.slots[idx as usize].alloc.as_mut() else {
            return Output::None;
        };
        // All or nothing: count the new entries first.
        alloc.sweep(now);
        let new = peers
            .iter()
            .enumerate()
            .filter(|(i, p)| {
                !alloc.permissions.iter().any(|q| q.ip == p.ip())
                    && !peers[..*i].iter().any(|q| q.ip() == p.ip())
            })
            .count();
        if alloc.permissions.len() + new > max {
            self.stats.quota_refusals += 1;
            return self.error(
                out,
                msg,
                ErrorCode::INSUFFICIENT_CAPACITY,
                "Too many permissions",
                auth.seal(),
            );
        }
        for p in &peers {
            alloc.permit(p.ip(), expires, now, max);
        }
        self.schedule(idx);
        self.success(out, msg, auth)
    }

    /// RFC 8656 12.2.
    pub(super) fn channel_bind<'a>(
        &mut self,
        now: Instant,
        tuple: &FiveTuple,
        msg: &Message,
        auth: &Authed,
        out: &mut Vec<u8>,
    ) -> Output<'a> {
        let Some(&idx) = self.by_tuple.get(tuple) else {
            return self.error(
                out,
                msg,
                ErrorCode::ALLOCATION_MISMATCH,
                "Allocation Mismatch",
                auth.seal(),
            );
        };
        let Some(number) = msg.channel_number().filter(|c| self.config.channel_ok(*c)) else {
            return self.error(
                out,
                msg,
                ErrorCode::BAD_REQUEST,
                "Bad CHANNEL-NUMBER",
                auth.seal(),
            );
        };
        let peers = msg.xor_peer_addresses();
        let [peer] = peers[..] else {
            return self.error(
                out,
                msg,
                ErrorCode::BAD_REQUEST,
                "Need one XOR-PEER-ADDRESS",
                auth.seal(),
            );
        };
        if let Err((code, reason)) = self.check_peer(idx, peer.ip()) {
            return self.error(out, msg, code, reason, auth.seal());
        }
        let channel_expires = now + self.config.channel_lifetime;
        let perm_expires = now + self.config.permission_lifetime;
        let quotas = self.config.quotas.clone();
        let Some(alloc) = self.slots[idx as usize].alloc.as_mut() else {
            return Output::None;
        };
        alloc.sweep(now);
        // RFC 8656 12.2: a channel is bound to one peer, a peer to one channel.
        let by_number = alloc.channels.iter().position(|c| c.number == number);
        let by_peer = alloc.channels.iter().position(|c| c.peer == peer);
        match (by_number, by_peer) {
            (Some(a), Some(b)) if a == b => alloc.channels[a].expires = channel_expires,
            (None, None) => {
                if alloc.channels.len() >= quotas.max_channels {
                    self.stats.quota_refusals += 1;
                    return self.error(
                        out,
                        msg,
                        ErrorCode::INSUFFICIENT_CAPACITY,
                        "Too many channels",
                        auth.seal(),
                    );
                }
                alloc.channels.push(Channel {
                    number,
                    peer,
                    expires: channel_expires,
                });
            }
            _ => {
                return self.error(
                    out,
                    msg,
                    ErrorCode::BAD_REQUEST,
                    "Channel or peer already bound",
                    auth.seal(),
                );
            }
        }
        if !alloc.permit(peer.ip(), perm_expires, now, quotas.max_permissions) {
            alloc
                .channels
                .retain(|c| c.number != number || c.peer != peer || c.expires != channel_expires);
            self.stats.quota_refusals += 1;
            return self.error(
                out,
                msg,
                ErrorCode::INSUFFICIENT_CAPACITY,
                "Too many permissions",
                auth.seal(),
            );
        }
        self.schedule(idx);
        self.success(out, msg, auth)
    }

    /// docs/security.md D8: the peer must pass the policy and the session scope.
    pub(super) fn check_peer(&mut self, idx: u32, ip: IpAddr) -> Result<(), (u16, &'static str)> {
        let Some(alloc) = self.slots[idx as usize].alloc.as_ref() else {
            return Err((ErrorCode::ALLOCATION_MISMATCH, "Allocation Mismatch"));
        };
        // Policy first, so a denied address is refused the same way in every encoding.
        if !self.config.policy.is_allowed(ip) {
            self.stats.policy_denials += 1;
            return Err((ErrorCode::FORBIDDEN, "Peer address not allowed"));
        }
        if alloc.relay.is_ipv4() != ip.is_ipv4() {
            return Err((
                ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH,
                "Peer Address Family Mismatch",
            ));
        }
        let in_scope = match &alloc.scope {
            Some(scope) => scope.allows(ip),
            None => !self.config.require_scoped,
        };
        if !in_scope {
            self.stats.scope_denials += 1;
            return Err((ErrorCode::FORBIDDEN, "Peer outside the session"));
        }
        Ok(())
    }
}
