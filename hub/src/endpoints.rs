//! `security.allowed_endpoints`: what the hub will ever call. Empty (the default) allows
//! everything an admin registers; a locked-down install lists hosts, CIDRs and `unix://` paths,
//! and then environment endpoints, remote catalogs and probe targets outside the list are
//! refused when they are registered or submitted (400 naming the field and the value), and
//! probe targets and catalog files are checked again before every call (docs/security.md).
//!
//! Host names are matched by name entries only, never by a network: a name can resolve
//! anywhere by the time it is called (DNS rebinding), so a CIDR entry covers IP literals, and a
//! name the hub may call is listed by name.

use std::net::IpAddr;

use chaoshub_schema::probe::ProbeSpec;

/// One entry of the list.
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    /// `unix:///var/run/docker.sock`: exactly that socket.
    Unix(String),
    /// `10.0.0.0/8`, `192.0.2.7`, `::1`: IP literals in that network (host names never match a
    /// network: a name can resolve elsewhere by the time it is called).
    Network { addr: IpAddr, prefix: u8 },
    /// `hub.example`, `*.example.com`, optionally with `:port`.
    Host {
        name: String,
        wildcard: bool,
        port: Option<u16>,
    },
}

/// The parsed list; `allows_everything` when empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointAllowList {
    entries: Vec<Entry>,
}

impl EndpointAllowList {
    /// Parses the configured entries; an entry that is none of the accepted forms is an error
    /// naming it.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut parsed = Vec::new();
        for (i, text) in entries.iter().enumerate() {
            parsed.push(
                parse_entry(text.trim())
                    .map_err(|e| format!("security.allowed_endpoints[{i}] {text:?}: {e}"))?,
            );
        }
        Ok(EndpointAllowList { entries: parsed })
    }

    pub fn allows_everything(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the hub may call `url` (`http(s)://`, `tcp://`, `unix://`). `Err` says why not,
    /// for a message that also names the field.
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        if self.allows_everything() {
            return Ok(());
        }
        let url = url.trim();
        if let Some(path) = url.strip_prefix("unix://") {
            return if self
                .entries
                .iter()
                .any(|e| matches!(e, Entry::Unix(p) if p == path))
            {
                Ok(())
            } else {
                Err(format!(
                    "the socket unix://{path} is not in security.allowed_endpoints"
                ))
            };
        }
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| format!("{url:?} names no host"))?;
        self.check_host(host, parsed.port_or_known_default())
    }

    /// Whether the hub may connect to `host:port` (a TCP probe's address).
    pub fn check_address(&self, address: &str) -> Result<(), String> {
        if self.allows_everything() {
            return Ok(());
        }
        let (host, port) = match address.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().ok()),
            None => (address, None),
        };
        self.check_host(host, port)
    }

    fn check_host(&self, host: &str, port: Option<u16>) -> Result<(), String> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip: Option<IpAddr> = host.parse().ok();
        let lower = host.to_ascii_lowercase();
        let allowed = self.entries.iter().any(|e| match e {
            Entry::Unix(_) => false,
            Entry::Network { addr, prefix } => ip.is_some_and(|ip| in_network(ip, *addr, *prefix)),
            Entry::Host {
                name,
                wildcard,
                port: want,
            } => {
                let name_ok = if *wildcard {
                    lower.ends_with(&format!(".{name}"))
                } else {
                    &lower == name
                };
                name_ok && want.is_none_or(|w| Some(w) == port)
            }
        });
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "host {host}{} is not in security.allowed_endpoints",
                port.map(|p| format!(" (port {p})")).unwrap_or_default()
            ))
        }
    }

    /// Whether a probe may call its target; `Err` names the probe's field and why not. With
    /// `placeholders_later` (at submission), a target that still holds `{{ … }}` placeholders
    /// is left to the check before the call, when they are filled.
    pub fn check_probe(&self, probe: &ProbeSpec, placeholders_later: bool) -> Result<(), String> {
        if self.allows_everything() {
            return Ok(());
        }
        let target = if let Some(http) = &probe.http {
            Some(("http.url", http.url.as_str(), true))
        } else if let Some(prometheus) = &probe.prometheus {
            Some(("prometheus.url", prometheus.url.as_str(), true))
        } else if let Some(tcp) = &probe.tcp {
            Some(("tcp.address", tcp.address.as_str(), false))
        } else {
            probe
                .status_check
                .as_ref()
                .and_then(|s| s.http.as_ref())
                .map(|h| ("statusCheck.http.url", h.url.as_str(), true))
        };
        match target {
            Some((_, text, _)) if placeholders_later && text.contains("{{") => Ok(()),
            Some((field, text, true)) => self
                .check_url(text)
                .map_err(|e| format!("{field} {text:?}: {e}")),
            Some((field, text, false)) => self
                .check_address(text)
                .map_err(|e| format!("{field} {text:?}: {e}")),
            None => Ok(()),
        }
    }
}

fn parse_entry(text: &str) -> Result<Entry, String> {
    if text.is_empty() {
        return Err("empty".into());
    }
    if let Some(path) = text.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err("a unix:// entry needs an absolute path".into());
        }
        return Ok(Entry::Unix(path.to_string()));
    }
    if let Some((addr, prefix)) = text.split_once('/') {
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| "not a CIDR (address/prefix)".to_string())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("the prefix must be 0..={max}"))?;
        return Ok(Entry::Network { addr, prefix });
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    if let Ok(addr) = bare.parse::<IpAddr>() {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        return Ok(Entry::Network { addr, prefix });
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (
            h,
            Some(
                p.parse::<u16>()
                    .map_err(|_| format!("{p:?} is not a port"))?,
            ),
        ),
        None => (text, None),
    };
    let (name, wildcard) = match host.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (host, false),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(
            "expected a host name (hub.example, *.example.com, optionally :port), an IP address or CIDR, or unix:///path"
                .into(),
        );
    }
    Ok(Entry::Host {
        name: name.to_ascii_lowercase(),
        wildcard,
        port,
    })
}

fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> EndpointAllowList {
        EndpointAllowList::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap()
    }

    #[test]
    fn empty_allows_everything() {
        let l = list(&[]);
        assert!(l.check_url("http://anything.example:1234/x").is_ok());
        assert!(l.check_url("unix:///var/run/docker.sock").is_ok());
    }

    #[test]
    fn hosts_cidrs_and_sockets() {
        let l = list(&[
            "10.0.0.0/8",
            "192.0.2.7",
            "toxiproxy.lab:8474",
            "*.example.com",
            "unix:///run/chaos/docker.sock",
            "::1",
        ]);
        assert!(l.check_url("http://10.1.2.3:9901/").is_ok());
        assert!(l.check_url("http://192.0.2.7/").is_ok());
        assert!(l.check_url("http://192.0.2.8/").is_err());
        assert!(l.check_url("http://toxiproxy.lab:8474").is_ok());
        assert!(l.check_url("http://toxiproxy.lab:9999").is_err());
        assert!(l
            .check_url("https://catalog.example.com/index.yaml")
            .is_ok());
        assert!(
            l.check_url("https://example.com/").is_err(),
            "the wildcard needs a label"
        );
        assert!(l.check_url("https://evil-example.com/").is_err());
        assert!(l.check_url("unix:///run/chaos/docker.sock").is_ok());
        let err = l.check_url("unix:///var/run/docker.sock").unwrap_err();
        assert!(err.contains("not in security.allowed_endpoints"), "{err}");
        assert!(l.check_url("http://[::1]:7070/").is_ok());
        assert!(l.check_address("10.9.9.9:5432").is_ok());
        assert!(l.check_address("db.internal:5432").is_err());
        // A name is never matched by a network: it could resolve anywhere.
        assert!(list(&["127.0.0.0/8"])
            .check_url("http://localhost/")
            .is_err());
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in ["", "10.0.0.0/33", "unix://relative", "a b", "host:port"] {
            let err = EndpointAllowList::parse(&[bad.to_string()]).unwrap_err();
            assert!(err.contains("security.allowed_endpoints[0]"), "{err}");
        }
    }
}
