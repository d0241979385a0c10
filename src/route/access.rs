//! A route's IP access list: nginx's `allow` and `deny`, checked in order
//! against the client's address; the first rule that matches decides, and
//! an address no rule matches is let in (as nginx does).

use std::net::IpAddr;

use crate::handshake::forwarded::Cidr;

/// One `allow`/`deny` line.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    allow: bool,
    /// `None`: every address (`all`).
    range: Option<Cidr>,
}

/// The rules of a route, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    rules: Vec<Rule>,
}

impl Access {
    /// Parses entries such as `"allow 10.0.0.0/8"`, `"deny 192.0.2.1"`,
    /// `"deny all"`. Errors are one line, naming the entry and what to
    /// write instead.
    pub fn new(entries: &[String]) -> Result<Access, String> {
        let mut rules = Vec::with_capacity(entries.len());
        for entry in entries {
            let form = "an access rule is \"allow RANGE\" or \"deny RANGE\", RANGE an address, ADDRESS/BITS or all";
            let (verb, range) = entry
                .trim()
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("{entry:?}: {form}"))?;
            let allow = match verb {
                "allow" => true,
                "deny" => false,
                _ => return Err(format!("{entry:?}: {form}")),
            };
            let range = match range.trim() {
                "all" => None,
                text => Some(
                    text.parse::<Cidr>()
                        .map_err(|e| format!("{entry:?}: {e}"))?,
                ),
            };
            rules.push(Rule { allow, range });
        }
        Ok(Access { rules })
    }

    /// Whether a client at `ip` may use the route.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.rules
            .iter()
            .find(|r| r.range.as_ref().is_none_or(|c| c.contains(ip)))
            .is_none_or(|r| r.allow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(entries: &[&str]) -> Access {
        Access::new(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn the_first_matching_rule_decides_and_no_match_lets_in() {
        let admin = access(&["allow 127.0.0.1", "allow 10.0.0.0/8", "deny all"]);
        let public = access(&["deny 192.0.2.0/24", "deny 2001:db8::/32"]);
        let cases: [(&Access, &str, bool); 9] = [
            (&admin, "127.0.0.1", true),
            (&admin, "10.20.30.40", true),
            (&admin, "::ffff:10.1.1.1", true),
            (&admin, "192.168.1.1", false),
            (&admin, "::1", false),
            (&public, "192.0.2.77", false),
            (&public, "2001:db8::1", false),
            (&public, "198.51.100.1", true),
            (&access(&[]), "203.0.113.1", true),
        ];
        for (list, ip, want) in cases {
            assert_eq!(
                list.allows(ip.parse().unwrap()),
                want,
                "{ip} against {list:?}"
            );
        }
    }

    #[test]
    fn malformed_rules_say_what_to_write() {
        let cases = [
            ("permit 10.0.0.0/8", "an access rule is \"allow RANGE\""),
            ("allow", "an access rule is"),
            ("deny 10.0.0.1/8", "bits set past the prefix"),
            ("allow example.com", "is not an address range"),
        ];
        for (entry, want) in cases {
            let got = Access::new(&[entry.to_string()]).unwrap_err();
            assert!(got.contains(want), "{entry}: {got}");
        }
    }
}
