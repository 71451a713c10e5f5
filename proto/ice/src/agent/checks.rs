//! Connectivity checks on the wire: answering the peer's Binding requests (RFC 8445 7.3) and
//! taking the responses to ours (RFC 8445 7.2.5).

use super::*;

impl Agent {
    pub(super) fn on_request(
        &mut self,
        base: SocketAddr,
        from: SocketAddr,
        bytes: &[u8],
        msg: &Message,
    ) {
        if verify_fingerprint(bytes).is_err() {
            return;
        }
        // RFC 8445 7.3: USERNAME is "<our ufrag>:<their ufrag>".
        let Some((ours, theirs)) = msg.username().and_then(|u| u.split_once(':')) else {
            return;
        };
        if ours != self.local.ufrag() || self.remote.as_ref().is_some_and(|r| r.ufrag() != theirs) {
            return;
        }
        if verify_integrity(bytes, self.local.pwd().as_bytes()).is_err() {
            return;
        }
        let Some(peer_priority) = msg.priority() else {
            return;
        };
        if matches!(self.state, State::Failed | State::Disconnected) {
            return;
        }
        // RFC 8445 7.3.1.1: role conflicts.
        match (self.role, msg.ice_controlling(), msg.ice_controlled()) {
            (Role::Controlling, Some(theirs), _) => {
                if self.tie_breaker >= theirs {
                    self.reply_error(base, from, msg, ROLE_CONFLICT, "Role Conflict");
                    return;
                }
                self.switch_role(Role::Controlled);
            }
            (Role::Controlled, _, Some(theirs)) => {
                if self.tie_breaker >= theirs {
                    self.switch_role(Role::Controlling);
                } else {
                    self.reply_error(base, from, msg, ROLE_CONFLICT, "Role Conflict");
                    return;
                }
            }
            _ => {}
        }
        // RFC 8445 7.3.1.2: success response with the source as XOR-MAPPED-ADDRESS.
        let resp = Message::new(Class::SuccessResponse, Method::BINDING, msg.transaction_id)
            .with(Attribute::XorMappedAddress(from));
        self.send_sealed(base, from, &resp, self.local.pwd().to_owned());

        if self.state != State::Checking {
            return;
        }
        // RFC 8445 7.3.1.3: an unknown source is a peer-reflexive remote candidate.
        let remote = match self.remote_candidates.iter().position(|r| r.addr == from) {
            Some(r) => r,
            None => {
                if self.remote_candidates.len() >= self.config.max_remote_candidates {
                    return;
                }
                self.prflx_count += 1;
                self.remote_candidates.push(Candidate {
                    kind: CandidateKind::PeerReflexive,
                    addr: from,
                    related: None,
                    priority: peer_priority,
                    foundation: format!("prflx{}", self.prflx_count),
                    component: COMPONENT,
                });
                self.remote_candidates.len() - 1
            }
        };
        let pair = match self
            .pairs
            .iter()
            .position(|p| p.local == base && p.remote == remote)
        {
            Some(p) => p,
            None => {
                let Some(b) = self.bases().find(|b| b.addr == base).cloned() else {
                    return;
                };
                match self.add_pair(&b, remote) {
                    Some(p) => p,
                    None => return,
                }
            }
        };
        // RFC 8445 7.3.1.4: triggered check. This is what opens the pinhole in our NAT
        // towards the source the peer's NAT gave it.
        match self.pairs[pair].state {
            PairState::Succeeded => {}
            PairState::InProgress => {
                for c in self.checks.iter_mut().filter(|c| c.pair == pair) {
                    c.cancelled = true;
                }
                self.pairs[pair].state = PairState::Waiting;
                self.enqueue_triggered(pair);
            }
            PairState::Frozen | PairState::Waiting | PairState::Failed => {
                self.pairs[pair].state = PairState::Waiting;
                self.enqueue_triggered(pair);
            }
        }
        // RFC 8445 7.3.1.5: nomination by the controlling agent.
        if msg.use_candidate() && self.role == Role::Controlled {
            self.pairs[pair].remote_nominated = true;
            if self.pairs[pair].state == PairState::Succeeded {
                self.select(pair);
            }
        }
    }

    pub(super) fn reply_error(
        &mut self,
        base: SocketAddr,
        from: SocketAddr,
        msg: &Message,
        code: u16,
        reason: &str,
    ) {
        let resp = Message::new(Class::ErrorResponse, Method::BINDING, msg.transaction_id)
            .with(Attribute::ErrorCode(ErrorCode::new(code, reason)));
        self.send_sealed(base, from, &resp, self.local.pwd().to_owned());
    }

    pub(super) fn send_sealed(
        &mut self,
        from_local: SocketAddr,
        to: SocketAddr,
        m: &Message,
        key: String,
    ) {
        if let Ok(bytes) =
            m.encode_sealed(Some((IntegrityAlgorithm::HmacSha1, key.as_bytes())), true)
        {
            self.transmits.push_back(Transmit {
                from_local,
                to,
                bytes,
            });
        }
    }

    // ---- responses ------------------------------------------------------------------

    pub(super) fn on_response(
        &mut self,
        base: SocketAddr,
        from: SocketAddr,
        bytes: &[u8],
        msg: &Message,
    ) {
        let Some(i) = self.checks.iter().position(|c| c.tid == msg.transaction_id) else {
            return;
        };
        // RFC 8445 7.2.5: responses are signed with the peer's password.
        let Some(remote) = &self.remote else {
            return;
        };
        if verify_integrity(bytes, remote.pwd().as_bytes()).is_err() {
            return;
        }
        let check = self.checks.swap_remove(i);
        let Some(pair) = self.pairs.get(check.pair) else {
            return;
        };
        let Some(remote_addr) = self.remote_candidates.get(pair.remote).map(|r| r.addr) else {
            return;
        };
        if check.consent {
            if msg.class == Class::SuccessResponse && from == remote_addr && base == pair.local {
                self.consent_seen = self.now;
            }
            return;
        }
        if self.state != State::Checking {
            return;
        }
        let in_progress = !check.cancelled && pair.state == PairState::InProgress;
        // RFC 8445 7.2.5.2.1: the addresses must be symmetric.
        if from != remote_addr || base != pair.local {
            if in_progress {
                self.pair_failed(check.pair, check.use_candidate);
            }
            return;
        }
        if msg.class == Class::ErrorResponse {
            let code = msg.error_code().map(|e| e.code);
            if code == Some(ROLE_CONFLICT) {
                // RFC 8445 7.2.5.1: take the other role, retry the pair.
                let new_role = if check.as_controlling {
                    Role::Controlled
                } else {
                    Role::Controlling
                };
                if new_role != self.role {
                    self.switch_role(new_role);
                }
                self.pairs[check.pair].state = PairState::Waiting;
                self.enqueue_triggered(check.pair);
            } else if in_progress || check.use_candidate {
                self.pair_failed(check.pair, check.use_candidate);
            }
            return;
        }
        // Success (RFC 8445 7.2.5.3).
        let mapped = msg.xor_mapped_address();
        let (pair_local, pair_pref) = (pair.local, pair.local_preference);
        let local_kind = self.local_kind_for(pair_local, pair_pref, mapped);
        let p = &mut self.pairs[check.pair];
        p.state = PairState::Succeeded;
        p.local_kind = Some(local_kind);
        // Unfreeze pairs of the same foundation (RFC 8445 7.2.5.3.3).
        let foundation = (
            p.local_foundation.clone(),
            self.remote_candidates[p.remote].foundation.clone(),
        );
        for q in &mut self.pairs {
            if q.state == PairState::Frozen
                && q.local_foundation == foundation.0
                && self.remote_candidates[q.remote].foundation == foundation.1
            {
                q.state = PairState::Waiting;
            }
        }
        let nominated = match self.role {
            Role::Controlling => check.use_candidate,
            Role::Controlled => self.pairs[check.pair].remote_nominated,
        };
        if nominated {
            self.select(check.pair);
        } else if self.role == Role::Controlling
            && self.nominate_at.is_none()
            && self.nominating.is_none()
        {
            self.nominate_at = Some(self.now + self.config.nomination_delay);
        }
    }

    /// The kind of our address as the peer saw it, adding a peer-reflexive local
    /// candidate for a mapping we did not know (RFC 8445 7.2.5.3.1).
    pub(super) fn local_kind_for(
        &mut self,
        base: SocketAddr,
        local_preference: u16,
        mapped: Option<SocketAddr>,
    ) -> CandidateKind {
        let Some(mapped) = mapped else {
            return CandidateKind::Host;
        };
        if let Some(c) = self
            .local_candidates
            .iter()
            .find(|c| c.addr == mapped && c.base() == base)
        {
            return c.kind;
        }
        self.local_candidates.push(Candidate {
            kind: CandidateKind::PeerReflexive,
            addr: mapped,
            related: Some(base),
            priority: priority(CandidateKind::PeerReflexive, local_preference, COMPONENT),
            foundation: crate::candidate::foundation(CandidateKind::PeerReflexive, base.ip(), None),
            component: COMPONENT,
        });
        CandidateKind::PeerReflexive
    }

    pub(super) fn pair_failed(&mut self, pair: usize, was_nomination: bool) {
        if let Some(p) = self.pairs.get_mut(pair) {
            p.state = PairState::Failed;
        }
        if was_nomination || self.nominating == Some(pair) {
            // Nominate the next best valid pair, if any.
            self.nominating = None;
            self.nomination_queued = false;
            self.nominate_at = Some(self.now);
        }
    }
}
