//! Calls this system makes to addresses a tenant chose (a WeCom API proxy, a webhook
//! receiver): HTTPS to a public host only, or any http(s) to a host an operator
//! allowed (a private test server). This keeps an admin from pointing the system at
//! internal services (server-side request forgery) or sending secrets in clear text.
//! Host names are checked by name; one that resolves to an internal address is the
//! operator's network policy to stop.

/// Whether a tenant-chosen URL may be called.
pub fn check_public_url(base: &str, allowed_hosts: &[String]) -> Result<(), String> {
    let url = reqwest::Url::parse(base).map_err(|_| "not a URL".to_string())?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    let host = url.host_str().ok_or("needs a host")?.to_ascii_lowercase();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(bare)) {
        return match url.scheme() {
            "http" | "https" => Ok(()),
            _ => Err("must be an http(s) URL".into()),
        };
    }
    if url.scheme() != "https" {
        return Err("must be an https:// URL".into());
    }
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        let internal = match ip {
            std::net::IpAddr::V4(v4) => {
                v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast()
            }
            std::net::IpAddr::V6(v6) => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        };
        if internal {
            return Err("must not point at an internal address".into());
        }
    }
    if bare == "localhost" || bare.ends_with(".localhost") || bare.ends_with(".internal") || bare.ends_with(".local") {
        return Err("must not point at an internal host".into());
    }
    Ok(())
}
