//! Network faults as typed values: which traffic (peers, ports, protocol, direction) and what
//! happens to it (dropped, rejected, or lost at a rate). Rendered to an nftables script from
//! validated values only; nothing a user typed reaches nft as text.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::Error;
use crate::nfnl::{Expr, Hook, ipv4_peer, ipv6_peer};

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address (`10.0.0.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn is_v4(&self) -> bool {
        self.addr.is_ipv4()
    }
}

impl FromStr for Cidr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::Invalid(format!("peer {s:?}: {why}"));
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| bad("expected an IPv4 or IPv6 address, optionally with /PREFIX"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| bad(&format!("prefix must be a number from 0 to {max}")))?,
            None => max,
        };
        if prefix == 0 {
            return Err(bad(
                "a /0 prefix matches all traffic; name the peers to cut off",
            ));
        }
        // The address must be the network's first address, as nft requires.
        let masked = mask(addr, prefix);
        if masked != addr {
            return Err(bad(&format!(
                "host bits set; the network is {masked}/{prefix}"
            )));
        }
        Ok(Self { addr, prefix })
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = if self.is_v4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// Which way the affected traffic flows, seen from the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the target to the peers (the target's requests).
    To,
    /// From the peers to the target (their requests, and the answers to the target's).
    From,
    /// Both ways.
    Both,
}

impl FromStr for Direction {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "to" => Ok(Direction::To),
            "from" => Ok(Direction::From),
            "both" => Ok(Direction::Both),
            other => Err(Error::Invalid(format!(
                "direction {other:?}: expected to, from or both"
            ))),
        }
    }
}

/// A transport protocol to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP and ICMPv6.
    Icmp,
}

impl FromStr for Protocol {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "icmp" => Ok(Protocol::Icmp),
            other => Err(Error::Invalid(format!(
                "protocol {other:?}: expected tcp, udp or icmp"
            ))),
        }
    }
}

/// The traffic a network fault affects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// The other ends. Never empty: a fault on "all traffic" must not happen by accident.
    pub peers: Vec<Cidr>,
    /// The peers' ports (destination ports going to them, source ports coming from them);
    /// empty for every port. Needs TCP or UDP.
    pub ports: Vec<u16>,
    /// Only this protocol; `None` for any (with ports: TCP and UDP).
    pub protocol: Option<Protocol>,
    /// Which way.
    pub direction: Direction,
}

/// What happens to the selected traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Dropped silently: connections time out.
    Drop,
    /// Refused at once: TCP with a reset, the rest with ICMP port unreachable.
    Reject,
    /// Dropped at random, this percentage of packets (1–100).
    Loss(u8),
}

/// A network fault: a partition (drop or reject) or packet loss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetFault {
    /// Which traffic.
    pub selector: Selector,
    /// What happens to it.
    pub effect: Effect,
}

impl NetFault {
    /// Checks what the types cannot: peers named, ports only with a protocol that has them,
    /// a loss rate in range.
    pub fn validate(&self) -> Result<(), Error> {
        if self.selector.peers.is_empty() {
            return Err(Error::Invalid(
                "no peers: name the addresses to cut off with --peer (a fault on all traffic \
                 is never applied by accident)"
                    .into(),
            ));
        }
        if !self.selector.ports.is_empty() && self.selector.protocol == Some(Protocol::Icmp) {
            return Err(Error::Invalid(
                "ports with --protocol icmp: ICMP has no ports".into(),
            ));
        }
        if self.selector.ports.contains(&0) {
            return Err(Error::Invalid("port 0: ports are 1 to 65535".into()));
        }
        if let Effect::Loss(p) = self.effect
            && !(1..=100).contains(&p)
        {
            return Err(Error::Invalid(format!(
                "loss of {p}%: expected a percentage from 1 to 100"
            )));
        }
        Ok(())
    }

    /// The nftables script that creates table `inet <table>`, owned by the netlink socket
    /// that runs it (`flags owner`: the kernel deletes it when that socket closes), with one
    /// counter per rule so the fault can prove it bites.
    pub fn nft_script(&self, table: &str, owned: bool) -> String {
        let mut script = String::new();
        let flags = if owned { " flags owner;" } else { "" };
        script.push_str(&format!("add table inet {table} {{{flags} }}\n"));
        let chains: &[(&str, &str, bool)] = match self.selector.direction {
            Direction::To => &[("to_peers", "output", true)],
            Direction::From => &[("from_peers", "input", false)],
            Direction::Both => &[("to_peers", "output", true), ("from_peers", "input", false)],
        };
        for &(chain, hook, outgoing) in chains {
            script.push_str(&format!(
                "add chain inet {table} {chain} {{ type filter hook {hook} priority -10; policy accept; }}\n"
            ));
            for rule in self.rules(outgoing) {
                script.push_str(&format!("add rule inet {table} {chain} {rule}\n"));
            }
        }
        script
    }

    /// The same table as [`Self::nft_script`], as nf_tables netlink expressions: each chain
    /// (name, hook) with its rules. Where nft would match a set (`{ a, b }`), one rule per
    /// member: the same packets match, each counted once (every rule ends in a verdict).
    pub fn netlink_chains(&self) -> Vec<(&'static str, Hook, Vec<Vec<Expr>>)> {
        let chains: &[(&str, Hook, bool)] = match self.selector.direction {
            Direction::To => &[("to_peers", Hook::Output, true)],
            Direction::From => &[("from_peers", Hook::Input, false)],
            Direction::Both => &[
                ("to_peers", Hook::Output, true),
                ("from_peers", Hook::Input, false),
            ],
        };
        chains
            .iter()
            .map(|&(name, hook, outgoing)| (name, hook, self.netlink_rules(outgoing)))
            .collect()
    }

    fn netlink_rules(&self, outgoing: bool) -> Vec<Vec<Expr>> {
        let s = &self.selector;
        let l4 = |p: u8| [Expr::MetaL4proto, Expr::Equal(vec![p])];
        let mut rules = Vec::new();
        for v4 in [true, false] {
            for peer in s.peers.iter().filter(|p| p.is_v4() == v4) {
                let address = match peer.addr() {
                    IpAddr::V4(a) => ipv4_peer(a, peer.prefix(), !outgoing),
                    IpAddr::V6(a) => ipv6_peer(a, peer.prefix(), !outgoing),
                };
                let icmp = if v4 { 1 } else { 58 };
                if self.effect == Effect::Reject && !outgoing {
                    // As in nft_script: the reset and the ICMP error the output chain's reject
                    // sends back look like they come from the peer; let them through.
                    let mut rst = address.clone();
                    rst.extend(l4(6));
                    rst.extend([
                        Expr::Transport { offset: 13, len: 1 },
                        Expr::Mask(vec![0x04]),
                        Expr::Equal(vec![0x04]),
                        Expr::Verdict(false),
                    ]);
                    rules.push(rst);
                    let mut unreachable = address.clone();
                    unreachable.extend(l4(icmp));
                    unreachable.extend([
                        Expr::Transport { offset: 0, len: 1 },
                        // destination-unreachable: ICMP type 3, ICMPv6 type 1
                        Expr::Equal(vec![if v4 { 3 } else { 1 }]),
                        Expr::Verdict(false),
                    ]);
                    rules.push(unreachable);
                }
                let protocols: Vec<Option<Protocol>> = match (s.protocol, s.ports.is_empty()) {
                    (Some(p), _) => vec![Some(p)],
                    (None, true) => vec![None],
                    (None, false) => vec![Some(Protocol::Tcp), Some(Protocol::Udp)],
                };
                for protocol in protocols {
                    let mut base = address.clone();
                    match protocol {
                        Some(Protocol::Tcp) => base.extend(l4(6)),
                        Some(Protocol::Udp) => base.extend(l4(17)),
                        Some(Protocol::Icmp) => base.extend(l4(icmp)),
                        None => {}
                    }
                    let with_ports: Vec<Vec<Expr>> = if s.ports.is_empty() {
                        vec![base]
                    } else {
                        s.ports
                            .iter()
                            .map(|port| {
                                let mut r = base.clone();
                                r.push(Expr::Transport {
                                    offset: if outgoing { 2 } else { 0 },
                                    len: 2,
                                });
                                r.push(Expr::Equal(port.to_be_bytes().to_vec()));
                                r
                            })
                            .collect()
                    };
                    for mut rule in with_ports {
                        match self.effect {
                            Effect::Drop => {
                                rule.extend([Expr::Counter, Expr::Verdict(true)]);
                                rules.push(rule);
                            }
                            Effect::Loss(p) => {
                                rule.extend([
                                    Expr::Random(100),
                                    Expr::Less(u32::from(p).to_be_bytes().to_vec()),
                                    Expr::Counter,
                                    Expr::Verdict(true),
                                ]);
                                rules.push(rule);
                            }
                            Effect::Reject => match protocol {
                                Some(Protocol::Tcp) => {
                                    rule.extend([Expr::Counter, Expr::RejectTcpReset]);
                                    rules.push(rule);
                                }
                                Some(_) => {
                                    rule.extend([Expr::Counter, Expr::RejectUnreachable]);
                                    rules.push(rule);
                                }
                                None => {
                                    let mut tcp = rule.clone();
                                    tcp.extend(l4(6));
                                    tcp.extend([Expr::Counter, Expr::RejectTcpReset]);
                                    rules.push(tcp);
                                    rule.extend([Expr::Counter, Expr::RejectUnreachable]);
                                    rules.push(rule);
                                }
                            },
                        }
                    }
                }
            }
        }
        rules
    }

    /// The rule bodies of one chain: one per address family and protocol.
    fn rules(&self, outgoing: bool) -> Vec<String> {
        let s = &self.selector;
        let (addr_key, port_key) = if outgoing {
            ("daddr", "dport")
        } else {
            ("saddr", "sport")
        };
        let mut rules = Vec::new();
        for (family, v4) in [("ip", true), ("ip6", false)] {
            let peers: Vec<String> = s
                .peers
                .iter()
                .filter(|p| p.is_v4() == v4)
                .map(ToString::to_string)
                .collect();
            if peers.is_empty() {
                continue;
            }
            let addresses = format!("{family} {addr_key} {{ {} }}", peers.join(", "));
            if self.effect == Effect::Reject && !outgoing {
                // What the output chain's reject sends back to the target looks like it came
                // from the peer: let the reset and the ICMP error through, or the target's
                // connection would time out instead of being refused.
                rules.push(format!("{addresses} tcp flags & rst == rst accept"));
                let icmp = if v4 {
                    "icmp type destination-unreachable"
                } else {
                    "icmpv6 type destination-unreachable"
                };
                rules.push(format!("{addresses} {icmp} accept"));
            }
            let protocols: Vec<Option<Protocol>> = match (s.protocol, s.ports.is_empty()) {
                (Some(p), _) => vec![Some(p)],
                (None, true) => vec![None],
                (None, false) => vec![Some(Protocol::Tcp), Some(Protocol::Udp)],
            };
            for protocol in protocols {
                let mut rule = addresses.clone();
                match protocol {
                    Some(Protocol::Tcp) => rule.push_str(" meta l4proto tcp"),
                    Some(Protocol::Udp) => rule.push_str(" meta l4proto udp"),
                    Some(Protocol::Icmp) if v4 => rule.push_str(" meta l4proto icmp"),
                    Some(Protocol::Icmp) => rule.push_str(" meta l4proto ipv6-icmp"),
                    None => {}
                }
                if !s.ports.is_empty() {
                    let ports: Vec<String> = s.ports.iter().map(ToString::to_string).collect();
                    rule.push_str(&format!(" th {port_key} {{ {} }}", ports.join(", ")));
                }
                match self.effect {
                    Effect::Drop => rules.push(format!("{rule} counter drop")),
                    Effect::Loss(p) => {
                        rules.push(format!("{rule} numgen random mod 100 < {p} counter drop"));
                    }
                    Effect::Reject => match protocol {
                        Some(Protocol::Tcp) => {
                            rules.push(format!("{rule} counter reject with tcp reset"));
                        }
                        Some(_) => rules.push(format!("{rule} counter reject")),
                        None => {
                            // TCP gets a reset; everything else an ICMP "port unreachable".
                            rules.push(format!(
                                "{rule} meta l4proto tcp counter reject with tcp reset"
                            ));
                            rules.push(format!("{rule} counter reject"));
                        }
                    },
                }
            }
        }
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(direction: Direction, effect: Effect, ports: &[u16]) -> NetFault {
        NetFault {
            selector: Selector {
                peers: vec!["10.231.0.1".parse().unwrap(), "fd00::/64".parse().unwrap()],
                ports: ports.to_vec(),
                protocol: None,
                direction,
            },
            effect,
        }
    }

    #[test]
    fn cidrs_are_validated() {
        assert_eq!(
            "10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!("10.0.0.7".parse::<Cidr>().unwrap().to_string(), "10.0.0.7");
        assert_eq!(
            "fd00::/64".parse::<Cidr>().unwrap().to_string(),
            "fd00::/64"
        );
        for bad in [
            "10.0.0.1/8",
            "0.0.0.0/0",
            "10.0.0.0/33",
            "host.example",
            "",
            "1.2.3.4/x",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let e = "10.0.0.1/8".parse::<Cidr>().unwrap_err().to_string();
        assert!(e.contains("10.0.0.0/8"), "{e}");
    }

    #[test]
    fn scripts_say_what_the_fault_means() {
        let script = fault(Direction::Both, Effect::Drop, &[8080]).nft_script("faultline_t1", true);
        assert_eq!(
            script,
            "add table inet faultline_t1 { flags owner; }\n\
             add chain inet faultline_t1 to_peers { type filter hook output priority -10; policy accept; }\n\
             add rule inet faultline_t1 to_peers ip daddr { 10.231.0.1 } meta l4proto tcp th dport { 8080 } counter drop\n\
             add rule inet faultline_t1 to_peers ip daddr { 10.231.0.1 } meta l4proto udp th dport { 8080 } counter drop\n\
             add rule inet faultline_t1 to_peers ip6 daddr { fd00::/64 } meta l4proto tcp th dport { 8080 } counter drop\n\
             add rule inet faultline_t1 to_peers ip6 daddr { fd00::/64 } meta l4proto udp th dport { 8080 } counter drop\n\
             add chain inet faultline_t1 from_peers { type filter hook input priority -10; policy accept; }\n\
             add rule inet faultline_t1 from_peers ip saddr { 10.231.0.1 } meta l4proto tcp th sport { 8080 } counter drop\n\
             add rule inet faultline_t1 from_peers ip saddr { 10.231.0.1 } meta l4proto udp th sport { 8080 } counter drop\n\
             add rule inet faultline_t1 from_peers ip6 saddr { fd00::/64 } meta l4proto tcp th sport { 8080 } counter drop\n\
             add rule inet faultline_t1 from_peers ip6 saddr { fd00::/64 } meta l4proto udp th sport { 8080 } counter drop\n"
        );
        let both = fault(Direction::Both, Effect::Reject, &[]).nft_script("t", true);
        assert!(both.contains(
            "add rule inet t from_peers ip saddr { 10.231.0.1 } tcp flags & rst == rst accept\n"
        ));
        assert!(
            both.contains("ip6 saddr { fd00::/64 } icmpv6 type destination-unreachable accept")
        );
        let reject = fault(Direction::To, Effect::Reject, &[]).nft_script("t", false);
        assert!(reject.starts_with("add table inet t { }\n"), "{reject}");
        assert!(
            reject
                .contains("ip daddr { 10.231.0.1 } meta l4proto tcp counter reject with tcp reset")
        );
        assert!(reject.contains("ip daddr { 10.231.0.1 } counter reject\n"));
        let loss = fault(Direction::From, Effect::Loss(50), &[]).nft_script("t", true);
        assert!(loss.contains("ip saddr { 10.231.0.1 } numgen random mod 100 < 50 counter drop"));
        assert!(!loss.contains("output"));
    }

    #[test]
    fn faults_without_peers_or_with_bad_values_are_refused() {
        let mut f = fault(Direction::To, Effect::Drop, &[]);
        f.selector.peers.clear();
        assert!(f.validate().unwrap_err().to_string().contains("no peers"));
        let f = fault(Direction::To, Effect::Loss(0), &[]);
        assert!(f.validate().is_err());
        let f = fault(Direction::To, Effect::Loss(101), &[]);
        assert!(f.validate().is_err());
        let mut f = fault(Direction::To, Effect::Drop, &[53]);
        f.selector.protocol = Some(Protocol::Icmp);
        assert!(
            f.validate()
                .unwrap_err()
                .to_string()
                .contains("ICMP has no ports")
        );
        assert!(fault(Direction::To, Effect::Drop, &[0]).validate().is_err());
        assert!(
            fault(Direction::Both, Effect::Loss(30), &[443])
                .validate()
                .is_ok()
        );
    }
}
