//! Where archive downloads may go (`RECORDINGS_ARCHIVE_SOURCES`): the event's URLs come from outside, so a URL must
//! match one of these entries before a request — and a credential — is sent to it.
//!
//! Each entry is `scheme://host[:port]`, where the host may start with `*.` to match any subdomain. The default is
//! the list the official ACS SDKs check recording URLs against (Python `callautomation/recording_url_validator.py`).
//! A wildcard over a domain where anyone can make a subdomain — a storage account, a web app — would let anyone
//! receive the access key, so such entries are refused; plain `http` is accepted only for loopback hosts (tests).

use url::Url;

/// The official SDKs' recording sources.
pub const DEFAULT_SOURCES: &str =
    "https://*.asm.skype.com,https://*.asyncgw.teams.microsoft.com,https://*.ams.gov.teams.microsoft.us";

/// Domains under which anyone can register a name; a wildcard over one of them is refused.
const OPEN_DOMAINS: &[&str] = &[
    "windows.net",
    "core.windows.net",
    "blob.core.windows.net",
    "dfs.core.windows.net",
    "file.core.windows.net",
    "queue.core.windows.net",
    "table.core.windows.net",
    "web.core.windows.net",
    "azurewebsites.net",
    "azurestaticapps.net",
    "azureedge.net",
    "azurefd.net",
    "cloudapp.net",
    "cloudapp.azure.com",
    "trafficmanager.net",
    "azure-api.net",
    "azurecr.io",
    "servicebus.windows.net",
    "amazonaws.com",
    "cloudfront.net",
    "appspot.com",
    "github.io",
    "herokuapp.com",
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    scheme: String,
    /// The host, lower case, without the `*.` of a wildcard.
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

/// The allowed sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSources(Vec<Source>);

impl ArchiveSources {
    /// Parses a comma-separated list; the error names every entry refused and why.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut sources = Vec::new();
        let mut problems = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match parse_entry(entry) {
                Ok(source) => sources.push(source),
                Err(problem) => problems.push(format!("{entry:?} {problem}")),
            }
        }
        if sources.is_empty() && problems.is_empty() {
            problems.push("lists no source".to_owned());
        }
        if problems.is_empty() {
            Ok(Self(sources))
        } else {
            Err(problems.join("; "))
        }
    }

    pub fn default_list() -> Self {
        Self::parse(DEFAULT_SOURCES).unwrap_or(Self(Vec::new()))
    }

    /// Whether requests to this URL are allowed.
    pub fn allows(&self, url: &Url) -> bool {
        let (Some(host), scheme) = (url.host_str(), url.scheme()) else {
            return false;
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let port = url.port_or_known_default();
        self.0.iter().any(|source| {
            source.scheme == scheme
                && source.port.or_else(|| default_port(&source.scheme)) == port
                && if source.wildcard {
                    host.len() > source.host.len() + 1
                        && host.ends_with(&source.host)
                        && host.as_bytes()[host.len() - source.host.len() - 1] == b'.'
                } else {
                    host == source.host
                }
        })
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

fn parse_entry(entry: &str) -> Result<Source, &'static str> {
    let (scheme, rest) = entry.split_once("://").ok_or("is not scheme://host[:port]")?;
    let scheme = scheme.to_ascii_lowercase();
    if rest.contains(['/', '?', '#', '@']) {
        return Err("must be scheme://host[:port], without a path");
    }
    let (host, port) = match rest.find(']') {
        Some(end) => (&rest[..=end], rest[end + 1..].strip_prefix(':')),
        None => match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        },
    };
    let port = port
        .map(|p| p.parse::<u16>().map_err(|_| "has a port that is not a number"))
        .transpose()?;
    let host = host.to_ascii_lowercase();
    let (wildcard, host) = match host.strip_prefix("*.") {
        Some(domain) => (true, domain.to_owned()),
        None => (false, host),
    };
    if host.is_empty() || host.contains('*') {
        return Err("has a wildcard anywhere but at the start");
    }
    if wildcard && (!host.contains('.') || OPEN_DOMAINS.contains(&host.as_str())) {
        return Err("is a wildcard over a domain where anyone can make a name: the access key would go to them");
    }
    match scheme.as_str() {
        "https" => {}
        "http" if is_loopback(&host) && !wildcard => {}
        "http" => return Err("uses plain http, allowed only for loopback hosts"),
        _ => return Err("must use https"),
    }
    Ok(Source {
        scheme,
        host,
        wildcard,
        port,
    })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host == "[::1]" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn the_default_list_allows_acs_storage_and_nothing_else() {
        let sources = ArchiveSources::default_list();
        for allowed in [
            "https://us-storage.asm.skype.com/v1/objects/0-eus-d10/content/video",
            "https://eu-storage.asm.skype.com:443/v1/objects/x",
            "https://emea.asyncgw.teams.microsoft.com/v1/objects/x/content/acsmetadata",
            "https://x.ams.gov.teams.microsoft.us/v1/objects/x",
            "https://US-STORAGE.ASM.SKYPE.COM./v1/objects/x",
        ] {
            assert!(sources.allows(&url(allowed)), "{allowed}");
        }
        for refused in [
            "http://us-storage.asm.skype.com/v1/objects/x",
            "https://asm.skype.com/v1/objects/x",
            "https://evilasm.skype.com/x",
            "https://us-storage.asm.skype.com.evil.example/x",
            "https://us-storage.asm.skype.com:8443/x",
            "https://attacker.blob.core.windows.net/x",
            "http://169.254.169.254/metadata/identity/oauth2/token",
            "https://127.0.0.1/x",
        ] {
            assert!(!sources.allows(&url(refused)), "{refused}");
        }
    }

    #[test]
    fn loopback_http_sources_with_ports_are_for_tests() {
        let sources = ArchiveSources::parse("http://127.0.0.1:40123").unwrap();
        assert!(sources.allows(&url("http://127.0.0.1:40123/v1/objects/x/content/video")));
        assert!(!sources.allows(&url("http://127.0.0.1:40124/v1/objects/x")));
        assert!(!sources.allows(&url("http://127.0.0.2:40123/v1/objects/x")));
    }

    #[test]
    fn dangerous_entries_are_refused_with_a_reason() {
        for (entry, reason) in [
            ("https://*.blob.core.windows.net", "anyone can make a name"),
            ("https://*.azurewebsites.net", "anyone can make a name"),
            ("https://*.com", "anyone can make a name"),
            ("http://*.asm.skype.com", "plain http"),
            ("http://example.com", "plain http"),
            ("ftp://x.example", "https"),
            ("https://a.*.example", "wildcard"),
            ("https://x.example/path", "without a path"),
            ("x.example", "scheme://host"),
            (" , ", "no source"),
        ] {
            let error = ArchiveSources::parse(entry).unwrap_err();
            assert!(error.contains(reason), "{entry}: {error}");
        }
    }
}
