//! Who is calling, by address: the one Spin reports, or behind trusted proxies the
//! right-most `X-Forwarded-For` entry that is not one of them (contract section 2).
//!
//! - The connecting address is Spin's `spin-client-addr`. A client can send a header of
//!   that name too; Spin appends its own after the client's, so the **last** value is
//!   Spin's ([`crate::http::Incoming::header`] takes the last of a `spin-*` header).
//! - `trusted_proxies` (comma-separated CIDRs, default empty) names the proxies in
//!   front of the app. Only when the connecting address is one of them is
//!   `X-Forwarded-For` read, from the right: each trusted proxy appended the address it
//!   saw, so the first entry from the right that is not a trusted proxy is the client.
//!   Entries left of it were written by the client and are never believed. `X-Real-IP`
//!   and `Forwarded` are never read.
//! - An anonymous caller is keyed by its IPv4 address, or by the /64 of its IPv6
//!   address: a host can rotate through its /64 at will ([`rate_key`]).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

use crate::config::{self, ConfigError, Variables};

/// The proxies whose `X-Forwarded-For` entries are believed (`trusted_proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses `trusted_proxies`: CIDRs (`10.0.0.0/8`, `fd00::/8`) or single addresses,
    /// separated by commas or whitespace. Anything else names the variable in an error.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let mut networks = Vec::new();
        for entry in value
            .split([',', ' ', '\n', '\t'])
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let network = match entry.parse::<IpNet>() {
                Ok(network) => network.trunc(),
                Err(_) => match entry.parse::<IpAddr>() {
                    Ok(address) => IpNet::from(address),
                    Err(_) => {
                        return Err(ConfigError::Invalid {
                            name: config::TRUSTED_PROXIES,
                            reason: format!("`{entry}` is neither a CIDR nor an IP address"),
                        });
                    }
                },
            };
            networks.push(network);
        }
        Ok(Self(networks))
    }

    /// Reads `trusted_proxies` (empty when the component does not declare it).
    pub fn load(vars: &impl Variables) -> Result<Self, ConfigError> {
        Self::parse(&vars.get(config::TRUSTED_PROXIES)?.unwrap_or_default())
    }

    /// Whether `address` is one of the trusted proxies.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|network| network.contains(&address))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) as the IPv4 address it is.
fn canonical(address: IpAddr) -> IpAddr {
    address.to_canonical()
}

/// Parses an address as Spin or a proxy writes it: `192.0.2.1`, `192.0.2.1:5000`,
/// `2001:db8::1`, `[2001:db8::1]:5000`.
pub fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(address) = text.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(canonical(socket.ip()));
    }
    text.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<IpAddr>().ok())
        .map(canonical)
}

/// The client's address: `peer` (what Spin reports), or, when `peer` is a trusted
/// proxy, the right-most entry of `forwarded_for` (every `X-Forwarded-For` value in
/// order) that is not a trusted proxy. An entry that is not an address ends the walk:
/// the hop that wrote it is the client as far as anyone can tell.
pub fn client_address<'a>(
    peer: Option<&str>,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = parse_address(peer?)?;
    if !trusted.contains(peer) {
        return Some(peer);
    }
    let entries: Vec<&str> = forwarded_for
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(address) = parse_address(entry) else {
            return Some(client);
        };
        client = address;
        if !trusted.contains(address) {
            return Some(address);
        }
    }
    // Every hop was a trusted proxy: the left-most one is as far as it goes.
    Some(client)
}

/// The rate-limit key of an anonymous caller's address: `ip:<IPv4>`, or
/// `ip6:<the /64 network>` for an IPv6 address.
pub fn rate_key(address: IpAddr) -> String {
    match canonical(address) {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let network = Ipv6Addr::new(
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            );
            format!("ip6:{network}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(value: &str) -> TrustedProxies {
        TrustedProxies::parse(value).unwrap()
    }

    fn client(peer: &str, xff: &[&str], proxies: &str) -> Option<String> {
        client_address(Some(peer), xff.iter().copied(), &trusted(proxies)).map(|a| a.to_string())
    }

    #[test]
    fn trusted_proxies_parse_cidrs_and_addresses_and_name_the_variable_on_garbage() {
        let proxies = trusted("10.0.0.0/8, 192.0.2.7 fd00::/8\n::1");
        assert!(proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(proxies.contains("192.0.2.7".parse().unwrap()));
        assert!(!proxies.contains("192.0.2.8".parse().unwrap()));
        assert!(proxies.contains("fd12::1".parse().unwrap()));
        assert!(proxies.contains("::1".parse().unwrap()));
        assert!(proxies.contains("::ffff:10.9.9.9".parse().unwrap()));
        assert!(trusted("").is_empty());
        let error = TrustedProxies::parse("10.0.0.0/8, ingress").unwrap_err();
        assert!(error.to_string().contains("trusted_proxies"), "{error}");
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn without_trusted_proxies_forwarded_for_is_ignored() {
        assert_eq!(
            client("127.0.0.1:5000", &["198.51.100.7"], ""),
            Some("127.0.0.1".into())
        );
        assert_eq!(
            client("[2001:db8::5]:443", &["198.51.100.7"], "10.0.0.0/8"),
            Some("2001:db8::5".into())
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_entry_is_the_client() {
        let proxies = "10.0.0.0/8";
        assert_eq!(
            client("10.0.0.2:5000", &["198.51.100.7"], proxies),
            Some("198.51.100.7".into())
        );
        // A client that writes its own X-Forwarded-For gets it to the left.
        assert_eq!(
            client(
                "10.0.0.2:5000",
                &["1.2.3.4, 198.51.100.7, 10.0.0.9"],
                proxies
            ),
            Some("198.51.100.7".into())
        );
        // Several headers are one list, in order.
        assert_eq!(
            client("10.0.0.2:5000", &["1.2.3.4", "198.51.100.7"], proxies),
            Some("198.51.100.7".into())
        );
        // No header: the proxy itself.
        assert_eq!(
            client("10.0.0.2:5000", &[], proxies),
            Some("10.0.0.2".into())
        );
        // Garbage stops the walk at the hop that wrote it.
        assert_eq!(
            client("10.0.0.2:5000", &["198.51.100.7, unknown"], proxies),
            Some("10.0.0.2".into())
        );
        // Only trusted hops: the left-most.
        assert_eq!(
            client("10.0.0.2:5000", &["10.0.0.3, 10.0.0.4"], proxies),
            Some("10.0.0.3".into())
        );
        assert_eq!(
            client("10.0.0.2:5000", &["[2001:db8::1]:1234"], proxies),
            Some("2001:db8::1".into())
        );
    }

    #[test]
    fn unreadable_peers_are_no_address() {
        assert_eq!(client("not an address", &[], ""), None);
        assert_eq!(
            client_address(None, std::iter::empty(), &TrustedProxies::default()),
            None
        );
    }

    #[test]
    fn ipv4_callers_are_keyed_by_address_and_ipv6_callers_by_their_64() {
        assert_eq!(rate_key("192.0.2.1".parse().unwrap()), "ip:192.0.2.1");
        assert_eq!(
            rate_key("::ffff:192.0.2.1".parse().unwrap()),
            "ip:192.0.2.1"
        );
        let a = rate_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = rate_key("2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap());
        let c = rate_key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, "ip6:2001:db8:1:2::/64");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
