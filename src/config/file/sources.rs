//! `source_addresses`: the local addresses upstream connections come from
//! (nginx's `proxy_bind`), a group's own in `[upstream.NAME]` or, for
//! groups without, the file's top-level default → each group's
//! [`Sources`].

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use toml::Spanned;

use super::sections::UpstreamSection;
use super::Checker;
use crate::upstream::{source, Group, Sources};
use crate::warn;

impl Checker<'_> {
    /// Gives every group its source addresses.
    pub(super) fn sources(
        &mut self,
        top: Option<&[Spanned<String>]>,
        sections: &BTreeMap<Spanned<String>, Spanned<UpstreamSection>>,
        groups: &mut [Group],
        names: &HashMap<String, usize>,
    ) {
        let mut own = vec![false; groups.len()];
        for (name, section) in sections {
            let Some(list) = &section.get_ref().source_addresses else {
                continue;
            };
            let name = name.get_ref();
            let Some(&i) = names.get(name) else { continue };
            // A group with problems may be missing from `groups`.
            let Some(group) = groups.get_mut(i).filter(|g| g.name == *name) else {
                continue;
            };
            own[i] = true;
            let servers: Vec<SocketAddr> = group.servers.iter().map(|s| s.addr).collect();
            if let Some(addrs) = self.source_list(list, &servers) {
                let fix = format!("add addresses to source_addresses in [upstream.{name}]");
                group.sources = Sources::new(&addrs, fix);
                uncovered(group);
            }
        }
        let defaulted = || groups.iter().zip(&own).filter(|(_, own)| !**own);
        let mut servers: Vec<SocketAddr> = defaulted()
            .flat_map(|(g, _)| g.servers.iter().map(|s| s.addr))
            .collect();
        if servers.is_empty() {
            // Every group has its own: the default applies to none, so
            // it is only checked as a list.
            servers = groups
                .iter()
                .flat_map(|g| g.servers.iter().map(|s| s.addr))
                .collect();
        }
        let top = top.and_then(|list| self.source_list(list, &servers));
        for (i, group) in groups.iter_mut().enumerate() {
            if own[i] {
                continue;
            }
            let named = names.get(&group.name) == Some(&i);
            let fix = match (&top, named) {
                (Some(_), true) => format!(
                    "add addresses to the top-level source_addresses (or give [upstream.{}] its own)",
                    group.name
                ),
                (Some(_), false) => "add addresses to the top-level source_addresses".into(),
                (None, true) => format!("set source_addresses in [upstream.{}]", group.name),
                (None, false) => "set source_addresses at the top of the file".into(),
            };
            group.sources = Sources::new(top.as_deref().unwrap_or_default(), fix);
            if top.is_some() {
                uncovered(group);
            }
        }
    }

    /// A `source_addresses` list for `servers`; `None` when it has a
    /// problem (recorded at the entry).
    fn source_list(
        &mut self,
        list: &[Spanned<String>],
        servers: &[SocketAddr],
    ) -> Option<Vec<IpAddr>> {
        let mut addrs = Vec::new();
        let mut parsed = true;
        for entry in list {
            match entry.get_ref().trim().parse::<IpAddr>() {
                Ok(addr) => addrs.push(addr),
                Err(_) => {
                    self.problem(
                        entry.span(),
                        format!(
                            "{:?} is not an IP address: source_addresses are addresses of \
                             this host, e.g. \"10.0.0.2\" or \"2001:db8::2\"",
                            entry.get_ref()
                        ),
                    );
                    parsed = false;
                }
            }
        }
        if !parsed {
            return None;
        }
        let problems = source::problems(&addrs, servers);
        let found = !problems.is_empty();
        for (i, message) in problems {
            self.problem(list[i].span(), message);
        }
        (!found).then_some(addrs)
    }
}

/// Says which of a group's servers have no source address of their
/// family: they connect from the address the kernel picks.
fn uncovered(group: &Group) {
    for v6 in [false, true] {
        let server = group.servers.iter().find(|s| s.addr.is_ipv6() == v6);
        if let Some(server) = server {
            if group.sources.for_server(server.addr).is_empty() {
                let family = if v6 { "IPv6" } else { "IPv4" };
                warn!(
                    "upstream {}: source_addresses has no {family} address, so connections to \
                     {family} servers such as {} come from the address the kernel picks",
                    group.name, server.name
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{parse, LoadError};
    use crate::config::Config;

    /// A file with `top` at its top and `own` in `[upstream.a]` (line 5
    /// on), whose servers are IPv4 and IPv6; `[upstream.b]` has one IPv4
    /// server, and a route names `127.0.0.1:5` inline.
    fn file(top: &str, own: &str) -> String {
        format!(
            "{top}\n[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.a]\n{own}\n\
             servers = [\"127.0.0.1:2\", \"[::1]:3\"]\n[upstream.b]\nservers = [\"127.0.0.1:4\"]\n\
             [[server]]\n[[server.route]]\nlocation = \"/\"\nupstream = \"a\"\n\
             [[server.route]]\nlocation = \"/b\"\nupstream = \"b\"\n\
             [[server.route]]\nlocation = \"/c\"\nupstream = \"127.0.0.1:5\"\n"
        )
    }

    fn check(text: &str) -> Result<Config, Vec<String>> {
        parse(text, Path::new("t.toml"), Path::new(".")).map_err(|e| match e {
            LoadError::Invalid(errors) => errors.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        })
    }

    /// Each group's source addresses for an IPv4 and an IPv6 server.
    fn sources(c: &Config) -> Vec<(String, Vec<String>, Vec<String>)> {
        let v4 = "10.0.0.5:80".parse().unwrap();
        let v6 = "[fd00::5]:80".parse().unwrap();
        let text = |addrs: &[std::net::IpAddr]| addrs.iter().map(ToString::to_string).collect();
        c.groups
            .iter()
            .map(|g| {
                let s = &g.sources;
                (
                    g.name.clone(),
                    text(s.for_server(v4)),
                    text(s.for_server(v6)),
                )
            })
            .collect()
    }

    #[test]
    fn a_group_takes_its_own_else_the_files() {
        let owned = |name: &str, v4: &[&str], v6: &[&str]| {
            let strings = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
            (name.to_string(), strings(v4), strings(v6))
        };
        let c = check(&file(
            "source_addresses = [\"127.0.0.7\"]",
            "source_addresses = [\"127.0.0.2\", \"::1\", \"127.0.0.3\"]",
        ))
        .unwrap_or_else(|e| panic!("{e:#?}"));
        assert_eq!(
            sources(&c),
            [
                owned("a", &["127.0.0.2", "127.0.0.3"], &["::1"]),
                owned("b", &["127.0.0.7"], &[]),
                owned("127.0.0.1:5", &["127.0.0.7"], &[]),
            ]
        );
        assert!(c.groups[1]
            .sources
            .fix()
            .contains("top-level source_addresses"));
        assert!(c.groups[0].sources.fix().contains("in [upstream.a]"));
        let none = check(&file("", "")).unwrap_or_else(|e| panic!("{e:#?}"));
        assert!(sources(&none)
            .iter()
            .all(|(_, v4, v6)| v4.is_empty() && v6.is_empty()));
        assert_eq!(
            none.groups[1].sources.fix(),
            "set source_addresses in [upstream.b]"
        );
    }

    #[test]
    fn mistakes_are_located() {
        let table: &[(&str, &str, &str)] = &[
            (
                "",
                "source_addresses = [\"10.0.0.2:80\"]",
                "t.toml:5:21: \"10.0.0.2:80\" is not an IP address",
            ),
            (
                "",
                "source_addresses = [\"10.0.0.2\", \"10.0.0.2\"]",
                "t.toml:5:33: 10.0.0.2 is given twice",
            ),
            (
                "source_addresses = [\"10.0.0.2\", \"fd00::2\"]",
                "source_addresses = [\"127.0.0.2\"]",
                "t.toml:1:33: fd00::2 is IPv6, but no upstream server it applies to is IPv6",
            ),
            (
                "",
                "source_addresses = [\"0.0.0.0\"]",
                "t.toml:5:21: 0.0.0.0 cannot be a source address",
            ),
            (
                "source_addresses = \"10.0.0.2\"",
                "",
                "t.toml:1:20: invalid type",
            ),
        ];
        for &(top, own, want) in table {
            match check(&file(top, own)) {
                Ok(_) => panic!("{top:?} {own:?} loaded"),
                Err(errors) => assert!(
                    errors.len() == 1 && errors[0].starts_with(want),
                    "{top:?} {own:?}: {errors:#?}, want {want:?}"
                ),
            }
        }
        let a_has_ipv6 = file("", "source_addresses = [\"fd00::2\"]");
        assert!(check(&a_has_ipv6).is_ok(), "[::1]:3 can use it");
    }
}
