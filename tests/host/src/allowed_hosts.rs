//! `allowed_outbound_hosts`, checked as Spin checks them.
//!
//! Entries are `<scheme>://<host>[:<port>]` with `*` wildcards; templates
//! (`"{{ openai_base_url }}"`, `"postgres://{{ db_host }}"`) are resolved against the
//! **application** variables, as Spin's networking factor does. A template that
//! resolves to an empty string (or a bare `http://`) is skipped. Hosts are compared
//! literally: `localhost` does not match `127.0.0.1`. A missing port means the scheme's
//! well-known port (5432 for `postgres`, 80/443 for `http`/`https`).
//!
//! If a resolved entry is malformed, Spin refuses every outbound request of the
//! component; so does this host.

use std::collections::HashMap;
use std::net::IpAddr;

use anyhow::{Context, anyhow, bail};

use crate::variables::Template;

fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SchemeRule {
    Any,
    One(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    Any,
    AnySubdomain(String),
    ToSelf,
    Literal(url::Host),
    Cidr { network: IpAddr, prefix: u8 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortRule {
    Any,
    Port(u16),
    Range(u16, u16),
}

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: SchemeRule,
    host: HostRule,
    port: PortRule,
}

fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let address: IpAddr = address.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(prefix) => prefix.parse::<u8>().ok().filter(|p| *p <= max)?,
        None => max,
    };
    Some((address, prefix))
}

fn in_network(address: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (address, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl HostRule {
    fn parse(host: &str) -> anyhow::Result<Self> {
        let host = host.trim();
        if host == "*" {
            return Ok(Self::Any);
        }
        if host == "self" || host == "self.alt" {
            return Ok(Self::ToSelf);
        }
        if host.starts_with('{') {
            bail!("host lists are not yet supported");
        }
        if let Some((network, prefix)) = parse_cidr(host) {
            return Ok(Self::Cidr { network, prefix });
        }
        let host = host.strip_suffix('/').unwrap_or(host);
        if host.contains('/') {
            bail!("must not include a path");
        }
        if let Some(domain) = host.strip_prefix("*.") {
            if domain.contains('*') {
                bail!("wildcards are allowed only as prefixes");
            }
            let url::Host::Domain(domain) = url::Host::parse(domain)
                .with_context(|| format!("invalid wildcard host \"*.{domain}\""))?
            else {
                bail!("wildcard suffix must be a domain");
            };
            return Ok(Self::AnySubdomain(format!(".{domain}")));
        }
        if host.contains('*') {
            bail!("wildcards are allowed only as subdomains");
        }
        Ok(Self::Literal(url::Host::parse(host)?))
    }

    fn allows(&self, host: &str) -> bool {
        let Ok(host) = url::Host::parse(host) else {
            return false;
        };
        match (self, host) {
            (HostRule::Any, _) => true,
            (HostRule::AnySubdomain(suffix), url::Host::Domain(domain)) => domain.ends_with(suffix),
            (HostRule::Literal(literal), host) => host == *literal,
            (HostRule::Cidr { network, prefix }, url::Host::Ipv4(ip)) => {
                in_network(IpAddr::V4(ip), *network, *prefix)
            }
            (HostRule::Cidr { network, prefix }, url::Host::Ipv6(ip)) => {
                in_network(IpAddr::V6(ip), *network, *prefix)
            }
            _ => false,
        }
    }
}

impl PortRule {
    fn parse(port: &str, scheme: &str) -> anyhow::Result<Self> {
        if port.is_empty() {
            return well_known_port(scheme).map(PortRule::Port).ok_or_else(|| {
                anyhow!(
                    "no port was provided and the scheme {scheme:?} does not have a known default port number"
                )
            });
        }
        if port == "*" {
            return Ok(PortRule::Any);
        }
        if port.starts_with('{') {
            bail!("port lists are not yet supported");
        }
        if let Some((start, end)) = port.split_once("..") {
            let start = start
                .parse()
                .with_context(|| format!("port range {port:?} contains non-number"))?;
            let end = end
                .parse()
                .with_context(|| format!("port range {port:?} contains non-number"))?;
            return Ok(PortRule::Range(start, end));
        }
        Ok(PortRule::Port(port.parse().with_context(|| {
            format!("port {port:?} is not a number")
        })?))
    }

    fn allows(&self, port: Option<u16>, scheme: &str) -> bool {
        let Some(port) = port.or_else(|| well_known_port(scheme)) else {
            return matches!(self, PortRule::Any);
        };
        match self {
            PortRule::Any => true,
            PortRule::Port(p) => *p == port,
            PortRule::Range(start, end) => (*start..*end).contains(&port),
        }
    }
}

impl AllowedHost {
    /// Parses one resolved entry.
    pub fn parse(entry: &str) -> anyhow::Result<Self> {
        let url = entry.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            bail!("{url:?} does not contain a scheme (e.g., 'http://' or '*://')");
        };
        let (host, port) = match rest.rsplit_once(':') {
            None => (rest, ""),
            Some((host, "")) => (host, ""),
            Some((host, tail)) => {
                if HostRule::parse(rest).is_ok() {
                    (rest, "")
                } else {
                    let port = match tail.split_once('/') {
                        Some((port, path)) => {
                            if !path.is_empty() {
                                bail!("{url:?} has a path but is not allowed to");
                            }
                            port
                        }
                        None => tail,
                    };
                    (host, port)
                }
            }
        };
        let port = PortRule::parse(port, scheme)
            .with_context(|| format!("Invalid allowed host port {port:?}"))?;
        let scheme = if scheme == "*" {
            SchemeRule::Any
        } else if scheme.chars().all(char::is_alphabetic) {
            SchemeRule::One(scheme.to_string())
        } else {
            bail!("Invalid allowed host scheme {scheme:?}");
        };
        let host =
            HostRule::parse(host).with_context(|| format!("Invalid allowed host {host:?}"))?;
        Ok(Self { scheme, host, port })
    }

    fn allows(&self, url: &OutboundUrl) -> bool {
        let scheme_ok = match &self.scheme {
            SchemeRule::Any => true,
            SchemeRule::One(scheme) => *scheme == url.scheme,
        };
        scheme_ok && self.host.allows(&url.host) && self.port.allows(url.port, &url.scheme)
    }
}

/// A destination a component wants to reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundUrl {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl OutboundUrl {
    /// Parses `url`, reading it as `<default_scheme>://<url>` when it has no scheme.
    pub fn parse(url: &str, default_scheme: &str) -> anyhow::Result<Self> {
        let mut text = url.to_string();
        // Credentials may hold characters that make the URL unparsable: encode them.
        if let Some(at) = text.find('@') {
            let scheme_end = text.find("://").map(|end| end + 3).unwrap_or(0);
            let path_start = text[scheme_end..]
                .find('/')
                .map(|i| i + scheme_end)
                .unwrap_or(usize::MAX);
            if at < path_start {
                let userinfo: String = text[scheme_end..at]
                    .bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect();
                text = format!("{}{}{}", &text[..scheme_end], userinfo, &text[at..]);
            }
        }
        let parsed = match url::Url::parse(&text) {
            Ok(parsed) if parsed.has_host() => parsed,
            first => match url::Url::parse(&format!("{default_scheme}://{text}")) {
                Ok(parsed) => parsed,
                Err(error) => {
                    return Err(first.err().map(Into::into).unwrap_or_else(|| error.into()));
                }
            },
        };
        Ok(Self {
            scheme: parsed.scheme().to_string(),
            host: parsed
                .host_str()
                .with_context(|| format!("{text:?} does not have a host component"))?
                .to_string(),
            port: parsed.port(),
        })
    }

    /// Whether the URL has no host (a request to the app itself).
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// One component's resolved `allowed_outbound_hosts`.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    /// `Err` when a resolved entry is malformed: everything is refused.
    hosts: Result<Vec<AllowedHost>, String>,
}

impl AllowedHosts {
    /// Resolves the templates against the application variables and parses them.
    pub fn resolve(
        entries: &[String],
        app_variables: &HashMap<String, String>,
    ) -> anyhow::Result<Self> {
        if entries.len() == 1 && entries[0] == "insecure:allow-all" {
            bail!(
                "'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic'"
            );
        }
        let mut hosts = Vec::new();
        for entry in entries {
            let template = Template::parse(entry)?;
            if template.is_literal() {
                hosts.push(AllowedHost::parse(entry)?);
                continue;
            }
            let resolved = template.render(app_variables)?;
            if resolved.is_empty() || resolved == "http://" || resolved == "https://" {
                continue;
            }
            match AllowedHost::parse(&resolved) {
                Ok(host) => hosts.push(host),
                Err(error) => {
                    return Ok(Self {
                        hosts: Err(format!(
                            "allowed outbound host {entry:?} resolved to {resolved:?}: {error:#}"
                        )),
                    });
                }
            }
        }
        Ok(Self { hosts: Ok(hosts) })
    }

    /// Why every request is refused, if a resolved entry was malformed.
    pub fn configuration_error(&self) -> Option<&str> {
        self.hosts.as_ref().err().map(String::as_str)
    }

    /// Whether `url` (read with `default_scheme` when it has none) may be reached.
    pub fn allows_url(&self, url: &str, default_scheme: &str) -> bool {
        let Ok(hosts) = &self.hosts else {
            return false;
        };
        let Ok(url) = OutboundUrl::parse(url, default_scheme) else {
            return false;
        };
        hosts.iter().any(|host| host.allows(&url))
    }

    /// Whether a request without a host (to the app itself) may be made.
    pub fn allows_self(&self) -> bool {
        match &self.hosts {
            Ok(hosts) => hosts
                .iter()
                .any(|h| matches!(h.host, HostRule::Any | HostRule::ToSelf)),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str], vars: &[(&str, &str)]) -> AllowedHosts {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        let vars = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AllowedHosts::resolve(&entries, &vars).unwrap()
    }

    #[test]
    fn postgres_hosts_compare_host_and_port_literally() {
        let allowed = hosts(
            &["postgres://{{ db_host }}"],
            &[("db_host", "127.0.0.1:5433")],
        );
        assert!(allowed.allows_url("127.0.0.1:5433", "postgres"));
        assert!(!allowed.allows_url("127.0.0.1:5432", "postgres"));
        assert!(!allowed.allows_url("localhost:5433", "postgres"));
        assert!(!allowed.allows_url("127.0.0.2:5433", "postgres"));
    }

    #[test]
    fn a_missing_port_is_the_schemes_default() {
        let allowed = hosts(&["postgres://db.example.com"], &[]);
        assert!(allowed.allows_url("db.example.com", "postgres"));
        assert!(allowed.allows_url("db.example.com:5432", "postgres"));
        assert!(!allowed.allows_url("db.example.com:6543", "postgres"));
        let allowed = hosts(&["{{ base }}"], &[("base", "https://api.openai.com")]);
        assert!(allowed.allows_url("https://api.openai.com/v1/responses", "https"));
        assert!(allowed.allows_url("https://api.openai.com:443/v1", "https"));
        assert!(!allowed.allows_url("http://api.openai.com/v1", "https"));
        assert!(!allowed.allows_url("https://evil.example/v1", "https"));
    }

    #[test]
    fn empty_templates_are_skipped_and_wildcards_work() {
        let allowed = hosts(
            &["{{ base }}", "https://*.example.com", "*://*:*"],
            &[("base", "")],
        );
        assert!(allowed.allows_url("http://anything:1234/", "https"));
        let allowed = hosts(&["{{ base }}", "https://*.example.com"], &[("base", "")]);
        assert!(allowed.allows_url("https://a.example.com/x", "https"));
        assert!(!allowed.allows_url("https://example.org/x", "https"));
    }

    #[test]
    fn a_malformed_resolved_entry_refuses_everything() {
        let allowed = hosts(
            &["postgres://127.0.0.1:5432", "{{ base }}"],
            &[("base", "http://127.0.0.1:9/with/path")],
        );
        assert!(allowed.configuration_error().is_some());
        assert!(!allowed.allows_url("127.0.0.1:5432", "postgres"));
    }

    #[test]
    fn credentials_in_urls_do_not_break_parsing() {
        let url = OutboundUrl::parse("https://u:pa%ss@127.0.0.1:8443/x", "https").unwrap();
        assert_eq!(url.host(), "127.0.0.1");
    }
}
