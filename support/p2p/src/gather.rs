//! Host candidates from the socket's addresses and server-reflexive ones from a STUN
//! server (RFC 8445 5.1.1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use peercam_ice::Candidate;
use peercam_ice::gather::{GatherConfig, Gatherer};
use tokio::net::UdpSocket;

use crate::Error;

/// The candidates of `socket`: a host candidate per local address it receives on (every
/// interface address of its family if it is bound to a wildcard address; loopback only
/// when it is bound there or nothing else exists), plus the server-reflexive addresses
/// `stun` reports (H.626.4 8.3: "the NAT (public) address"). Waits at most `timeout` for
/// the STUN server. Datagrams other than the STUN answers are dropped meanwhile.
pub async fn gather(
    socket: &UdpSocket,
    stun: Option<SocketAddr>,
    timeout: Duration,
) -> Result<Vec<Candidate>, Error> {
    let local = socket.local_addr()?;
    let ips: Vec<IpAddr> = if local.ip().is_unspecified() {
        let all: Vec<IpAddr> = interface_addrs()?
            .into_iter()
            .filter(|ip| ip.is_ipv4() == local.is_ipv4())
            .collect();
        let outside: Vec<IpAddr> = all.iter().copied().filter(|ip| !ip.is_loopback()).collect();
        if outside.is_empty() { all } else { outside }
    } else {
        vec![local.ip()]
    };
    let mut out: Vec<Candidate> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            let pref = u16::try_from(65535 - i.min(65535)).unwrap_or(1);
            Candidate::host(SocketAddr::new(*ip, local.port()), pref)
        })
        .collect();
    let Some(server) = stun else {
        return Ok(out);
    };
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::Io(std::io::Error::other(e)))?;
    let mut g = Gatherer::new(server, &out, GatherConfig::default(), seed, Instant::now());
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = vec![0u8; 2048];
    while !g.is_done() {
        while let Some(t) = g.poll_transmit() {
            // One socket: the kernel picks the source address for every base.
            if let Err(e) = socket.send_to(&t.bytes, t.to).await {
                tracing::debug!(error = %e, "STUN gather send failed");
            }
        }
        let wake = g.poll_timeout().map_or(deadline, |t| {
            deadline.min(tokio::time::Instant::from_std(t))
        });
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, from) = r?;
                g.handle_receive(local, from, &buf[..n]);
            }
            () = tokio::time::sleep_until(wake) => {
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                g.handle_timeout(Instant::now());
            }
        }
    }
    for c in g.candidates() {
        // Several bases behind one NAT share a mapping when they share the socket.
        if !out.iter().any(|o| o.addr == c.addr) {
            out.push(c.clone());
        }
    }
    Ok(out)
}

/// The local interface addresses: IPv4 from `/proc/net/fib_trie` (the `/32 host LOCAL`
/// entries), IPv6 from `/proc/net/if_inet6` (global and unique-local scope only:
/// link-local ones need a scope id). Empty where these files do not exist.
pub fn interface_addrs() -> Result<Vec<IpAddr>, Error> {
    let mut out: Vec<IpAddr> = Vec::new();
    if let Ok(trie) = std::fs::read_to_string("/proc/net/fib_trie") {
        let mut last: Option<Ipv4Addr> = None;
        for line in trie.lines() {
            let t = line.trim_start_matches([' ', '|', '+', '-']).trim();
            if let Ok(ip) = t.parse::<Ipv4Addr>() {
                last = Some(ip);
            } else if t.starts_with("/32 host LOCAL")
                && let Some(ip) = last
                && !out.contains(&IpAddr::V4(ip))
            {
                out.push(IpAddr::V4(ip));
            }
        }
    }
    if let Ok(v6) = std::fs::read_to_string("/proc/net/if_inet6") {
        for line in v6.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(hex), Some(scope)) = (f.first(), f.get(3)) else {
                continue;
            };
            if *scope != "00" || hex.len() != 32 {
                continue;
            }
            let mut b = [0u8; 16];
            let mut ok = true;
            for (i, byte) in b.iter_mut().enumerate() {
                match hex
                    .get(2 * i..2 * i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => *byte = v,
                    None => ok = false,
                }
            }
            if ok {
                out.push(IpAddr::V6(Ipv6Addr::from(b)));
            }
        }
    }
    Ok(out)
}
