//! Where archive downloads may go (`RECORDINGS_ARCHIVE_SOURCES`): the event's URLs come from outside, so a URL must
//! match one of these entries before a request — and a credential — is sent to it.
//!
//! Each entry is `scheme://host[:port]`, where the host may start with `*.` to match any subdomain. The default is
//! the list the official ACS SDKs check recording URLs against (Python `callautomation/recording_url_validator.py`).
//! A wildcard over a domain where anyone can make a subdomain — a storage account, a web app — would let anyone
//! receive the access key, so such entries are refused; plain `http` is accepted only for loopback hosts (tests).
//!
//! A wildcard `*.X` is accepted only when X lies strictly below its registrable domain (by the public suffix list,
//! compiled in through `psl`) and neither lies under nor contains one of [`SHARED_DOMAINS`]. The public suffix list
//! alone is not enough: it names `blob.core.windows.net` but not `cloudapp.azure.com`, and knows nothing of which
//! registrable domains (`azure.com`, `windows.net`) hold such names somewhere below. Requiring a label below the
//! registrable domain keeps every wildcard to one service's own subdomain, as in the defaults (`asm.skype.com` under
//! `skype.com`): a whole organisation's domain may hold names its customers choose that no list knows of.

use url::Url;

use crate::secret::quoted;

/// The official SDKs' recording sources.
pub const DEFAULT_SOURCES: &str =
    "https://*.asm.skype.com,https://*.asyncgw.teams.microsoft.com,https://*.ams.gov.teams.microsoft.us";

/// Cloud domains under which anyone can register a name, whether or not the public suffix list names them; a
/// wildcard at, under or over one of them is refused.
const SHARED_DOMAINS: &[&str] = &[
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
    "azurecontainerapps.io",
    "azure-mobile.net",
    "azurehdinsight.net",
    "cloudfunctions.net",
    "firebaseapp.com",
    "run.app",
    "web.app",
    "pages.dev",
    "workers.dev",
    "vercel.app",
    "netlify.app",
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
                Err(problem) => problems.push(format!("{} {problem}", quoted(entry))),
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

    /// Whether requests to this URL are allowed. Never one with a user name or password: the client would send them
    /// as Basic authentication beside the request's own signature, to a host the event chose.
    pub fn allows(&self, url: &Url) -> bool {
        if !url.username().is_empty() || url.password().is_some() {
            return false;
        }
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
    // A fully qualified name's final dot is dropped, as `allows` drops it from the URL's host.
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let (wildcard, host) = match host.strip_prefix("*.") {
        Some(domain) => (true, domain.to_owned()),
        None => (false, host),
    };
    if host.is_empty() || host.contains('*') {
        return Err("has a wildcard anywhere but at the start");
    }
    if wildcard {
        open_wildcard(&host)?;
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

/// Refuses a wildcard over `domain` (the part after `*.`) that could match a name someone else registered.
fn open_wildcard(domain: &str) -> Result<(), &'static str> {
    const OPEN: &str = "is a wildcard over a domain where anyone can make a name: the access key would go to them";
    if domain
        .rsplit('.')
        .next()
        .is_none_or(|tld| tld.is_empty() || tld.bytes().all(|b| b.is_ascii_digit()))
        || domain.starts_with('[')
    {
        return Err("is a wildcard over something that is not a domain name");
    }
    let at_or_under = |child: &str, parent: &str| {
        child == parent || child.strip_suffix(parent).is_some_and(|head| head.ends_with('.'))
    };
    if SHARED_DOMAINS
        .iter()
        .any(|shared| at_or_under(domain, shared) || at_or_under(shared, domain))
    {
        return Err(OPEN);
    }
    match psl::domain_str(domain) {
        // No registrable domain: `domain` is a public suffix itself (`com`, `co.uk`, `azurewebsites.net`).
        None => Err(OPEN),
        Some(registrable) if registrable.len() >= domain.len() => Err(
            "is a wildcard over a whole registrable domain, which may hold names anyone can make (as azure.com holds \
             cloudapp.azure.com): the access key could go to them; name the subdomain the storage uses",
        ),
        Some(_) => Ok(()),
    }
}

fn is_loopback(host: &str) -> bool {
    url::Host::parse(host).is_ok_and(|host| is_loopback_host(&host))
}

/// Whether a host is this machine (`localhost`, 127.0.0.0/8, `::1`): the only hosts plain `http` may reach, here and
/// for Blob Storage (Azurite).
pub fn is_loopback_host<S: AsRef<str>>(host: &url::Host<S>) -> bool {
    match host {
        url::Host::Domain(name) => name.as_ref().eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
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
    fn a_source_without_a_port_takes_its_schemes_default_and_an_ipv6_source_keeps_its_own() {
        let default_port = ArchiveSources::parse("http://localhost").unwrap();
        assert!(default_port.allows(&url("http://localhost/v1/objects/x")));
        assert!(default_port.allows(&url("http://localhost:80/v1/objects/x")));
        assert!(!default_port.allows(&url("http://localhost:8080/v1/objects/x")));
        let ipv6 = ArchiveSources::parse("http://[::1]:40123").unwrap();
        assert!(ipv6.allows(&url("http://[::1]:40123/v1/objects/x")));
        assert!(!ipv6.allows(&url("http://[::1]:40124/v1/objects/x")));
        assert!(!ipv6.allows(&url("http://[::1]/v1/objects/x")));
    }

    #[test]
    fn a_wildcard_matches_a_named_subdomain_only() {
        let sources = ArchiveSources::default_list();
        let empty_label = url("https://.asm.skype.com/v1/objects/x");
        assert_eq!(empty_label.host_str(), Some(".asm.skype.com"));
        assert!(!sources.allows(&empty_label), "no name before the dot");
        assert!(sources.allows(&url("https://a.asm.skype.com/v1/objects/x")));
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

    #[test]
    fn the_default_wildcards_are_accepted() {
        let sources = ArchiveSources::parse(DEFAULT_SOURCES).unwrap();
        assert_eq!(sources.0.len(), 3);
        assert!(sources.0.iter().all(|source| source.wildcard), "{sources:?}");
        assert!(ArchiveSources::parse("https://*.media.corp.internal").is_ok());
        let qualified = ArchiveSources::parse("https://*.asm.skype.com.").unwrap();
        assert!(qualified.allows(&url("https://us-storage.asm.skype.com/v1/objects/x")));
    }

    #[test]
    fn wildcards_over_suffixes_shared_domains_and_whole_registrable_domains_are_refused() {
        for entry in [
            "https://*.com",
            "https://*.co.uk",
            "https://*.azure.com",
            "https://*.windows.net",
            "https://*.core.windows.net",
            "https://*.web.core.windows.net",
            "https://*.x.web.core.windows.net",
            "https://*.cloudapp.azure.com",
            "https://*.westeurope.cloudapp.azure.com",
            "https://*.azurewebsites.net",
            "https://*.scm.azurewebsites.net",
            "https://*.foo.github.io",
            "https://*.vercel.app",
            "https://*.skype.com",
            "https://*.microsoft.com",
            "https://*.contoso.com",
            "https://*.corp.internal",
            "https://*.0.0.1",
        ] {
            let refused = ArchiveSources::parse(entry);
            assert!(refused.is_err(), "{entry} was accepted: {refused:?}");
        }
        for (entry, reason) in [
            ("https://*.co.uk", "anyone can make a name"),
            ("https://*.westeurope.cloudapp.azure.com", "anyone can make a name"),
            ("https://*.contoso.com", "whole registrable domain"),
            ("https://*.10.0.0.1", "not a domain name"),
        ] {
            let error = ArchiveSources::parse(entry).unwrap_err();
            assert!(error.contains(reason), "{entry}: {error}");
        }
    }

    #[test]
    fn urls_with_a_user_name_or_password_are_refused() {
        let sources = ArchiveSources::default_list();
        assert!(sources.allows(&url("https://us-storage.asm.skype.com/v1/objects/x")));
        for refused in [
            "https://user:secret@us-storage.asm.skype.com/v1/objects/x",
            "https://user@us-storage.asm.skype.com/v1/objects/x",
            "https://:secret@us-storage.asm.skype.com/v1/objects/x",
        ] {
            assert!(!sources.allows(&url(refused)), "{refused}");
        }
        let loopback = ArchiveSources::parse("http://127.0.0.1:40123").unwrap();
        assert!(!loopback.allows(&url("http://a:b@127.0.0.1:40123/x")));
    }
}
