//! The MTU's link with the platform: registration like a device (8.1), load reports for
//! MTU selection (7.2, Sd), revocations of relayed viewers (D5), and the relay's requests:
//! viewers' tokens (Dm) and cameras' upstreams (Mp). The link itself is
//! [`peercam_net::agent`]; this is what the MTU brings to it.

use std::sync::Arc;

use peercam_net::agent::{Device, ReplyFuture};
use peercam_signal::cmd::{DeviceCommand, DeviceReply};
use peercam_signal::link::DeviceLink;
use peercam_signal::relay::MtuAddresses;

use crate::relay::{Relay, Stats};

/// Where the MTU stands with the platform.
pub type MtuStatus = peercam_net::agent::LinkStatus;

pub(crate) struct Mtu {
    pub(crate) addresses: MtuAddresses,
    pub(crate) capacity: u32,
    pub(crate) stats: Arc<Stats>,
    pub(crate) relay: Arc<Relay>,
}

impl Device for Mtu {
    fn prepare(&self, link: &mut DeviceLink) {
        link.report_mtu(self.addresses.clone(), self.stats.load(self.capacity));
    }

    fn command(&self, command: DeviceCommand, _connected_s: u64) -> ReplyFuture {
        let reply = match command {
            DeviceCommand::RelayRevoke { camera, user } => {
                // docs/security.md D5: access changed; the relayed sessions concerned end now.
                let n = self.relay.revoke(&camera, user);
                tracing::info!(%camera, ?user, ended = n, "relayed sessions revoked");
                DeviceReply::Done
            }
            _ => DeviceReply::Failed {
                code: "unsupported".into(),
                message: "an MTU takes no such command".into(),
            },
        };
        Box::pin(std::future::ready(reply))
    }

    fn tick(&self, link: &mut DeviceLink) {
        link.report_mtu(self.addresses.clone(), self.stats.load(self.capacity));
    }
}
