//! Spin's HTTP routing, rebuilt from its `spin-http` router and the `routefinder` crate
//! (0.5.4) it is built on.
//!
//! - A route `"/a/..."` is a trailing wildcard (`/a/*`): it matches `/a`, `/a/` and
//!   anything under `/a/`, but not `/ab`.
//! - Paths and routes are compared with leading and trailing slashes trimmed, so the
//!   exact route `/a` also answers `/a/`.
//! - Among matching routes the most specific wins, segment by segment: an exact segment
//!   beats a `:param`, which beats a wildcard; so an exact route beats a wildcard one and
//!   the longest wildcard prefix wins.
//! - The same route written twice: the last one wins.
//! - No match: `404` with an empty body.
//!
//! The values of the `spin-*` request headers come from the match: see
//! [`RouteMatch`].

use std::cmp::Ordering;

use anyhow::bail;

/// A parsed piece of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Slash,
    Dot,
    Exact(String),
    Param(String),
    Wildcard,
}

impl Segment {
    /// routefinder's segment order: dot > exact > param > wildcard > slash (dot and
    /// slash compare equal with each other).
    fn specificity(&self, other: &Segment) -> Ordering {
        use Segment::*;
        match (self, other) {
            (Exact(_), Exact(_))
            | (Slash, Slash)
            | (Dot, Slash)
            | (Slash, Dot)
            | (Dot, Dot)
            | (Param(_), Param(_))
            | (Wildcard, Wildcard) => Ordering::Equal,
            (Dot, _) => Ordering::Greater,
            (Exact(_), _) => Ordering::Greater,
            (Param(_), Exact(_)) => Ordering::Less,
            (Param(_), _) => Ordering::Greater,
            (Wildcard, Exact(_)) | (Wildcard, Param(_)) => Ordering::Less,
            (Wildcard, _) => Ordering::Greater,
            _ => Ordering::Less,
        }
    }
}

/// What a match captured: `:name` segments and the trailing wildcard.
type Captures<'r, 'p> = (Vec<(&'r str, &'p str)>, Option<&'p str>);

/// A route pattern as routefinder parses it.
#[derive(Debug, Clone)]
struct Pattern {
    segments: Vec<Segment>,
}

impl Pattern {
    fn parse(source: &str) -> anyhow::Result<Self> {
        let trimmed = source.trim_start_matches('/').trim_end_matches('/');
        let mut boundaries: Vec<usize> = trimmed
            .char_indices()
            .filter(|(_, c)| *c == '.' || *c == '/')
            .map(|(index, _)| index)
            .collect();
        boundaries.push(trimmed.len());
        let mut segments: Vec<Segment> = Vec::new();
        let mut start = 0;
        for end in boundaries {
            let separator = if start == 0 {
                None
            } else {
                trimmed[..start].chars().last()
            };
            let section = &trimmed[start..end];
            start = end + 1;
            let segment = match (section.chars().next(), section.len()) {
                (Some('*'), 1) => Some(Segment::Wildcard),
                (Some('*'), _) => bail!(
                    "since there can only be one wildcard, it doesn't need a name. replace `{section}` with `*`"
                ),
                (Some(':'), 1) => bail!("params must be named"),
                (Some(':'), _) => Some(Segment::Param(section[1..].to_string())),
                (None, 0) => None,
                _ => Some(Segment::Exact(section.to_string())),
            };
            if separator == Some('.') {
                if let Some(Segment::Exact(text)) = segments.last_mut() {
                    text.push('.');
                } else {
                    segments.push(Segment::Dot);
                }
            }
            if let Some(segment) = segment {
                if separator == Some('/') {
                    segments.push(Segment::Slash);
                }
                segments.push(segment);
            }
        }
        if let Some(index) = segments.iter().position(|s| *s == Segment::Wildcard)
            && index + 1 != segments.len()
        {
            bail!("a wildcard must be the last segment of a route");
        }
        Ok(Self { segments })
    }

    fn dots(&self) -> usize {
        self.segments.iter().filter(|s| **s == Segment::Dot).count()
    }

    /// Which of two patterns routefinder prefers: `Less` means `self` is tried first.
    fn preference(&self, other: &Pattern) -> Ordering {
        self.segments
            .iter()
            .zip(&other.segments)
            .map(|(mine, theirs)| mine.specificity(theirs))
            .chain(std::iter::once(self.dots().cmp(&other.dots())))
            .chain(std::iter::once(
                other.segments.len().cmp(&self.segments.len()),
            ))
            .find(|ordering| *ordering != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
            .reverse()
    }

    /// Matches a path; returns the param captures and the wildcard capture.
    fn matches<'p>(&self, path: &'p str) -> Option<Captures<'_, 'p>> {
        let mut rest = path.trim_start_matches('/').trim_end_matches('/');
        let mut params = Vec::new();
        let mut wildcard = None;
        let mut peek = self.segments.iter().peekable();
        while let Some(segment) = peek.next() {
            rest = match segment {
                Segment::Exact(text) => rest.strip_prefix(text.as_str())?,
                Segment::Param(name) => {
                    if rest.is_empty() {
                        return None;
                    }
                    match peek.peek() {
                        None | Some(Segment::Slash) => {
                            let capture = rest.split('/').next()?;
                            params.push((name.as_str(), capture));
                            &rest[capture.len()..]
                        }
                        Some(Segment::Dot) => {
                            let index = rest.find(['.', '/'])?;
                            if rest[index..].starts_with('.') {
                                params.push((name.as_str(), &rest[..index]));
                                &rest[index..]
                            } else {
                                return None;
                            }
                        }
                        _ => return None,
                    }
                }
                Segment::Wildcard => {
                    wildcard = Some(rest);
                    ""
                }
                Segment::Slash => match (rest.chars().next(), peek.peek()) {
                    (Some('/'), Some(_)) => &rest[1..],
                    (None, None) => rest,
                    (None, Some(Segment::Wildcard)) => rest,
                    _ => return None,
                },
                Segment::Dot => rest.strip_prefix('.')?,
            };
        }
        if rest.is_empty() || rest == "/" {
            Some((params, wildcard))
        } else {
            None
        }
    }
}

/// One routed trigger.
#[derive(Debug, Clone)]
struct RouteEntry {
    component: String,
    /// The route with the base applied (`/a/...`; `""` for the root).
    based_route: String,
    /// The route as written in the manifest.
    raw_route: String,
    pattern: Pattern,
    wildcard: bool,
    /// Position among the manifest's routes, to break ties deterministically.
    order: usize,
}

/// The routes of an application.
#[derive(Debug, Clone, Default)]
pub struct Router {
    entries: Vec<RouteEntry>,
}

/// A successful route match: what the `spin-*` headers are made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// The component that serves the request.
    pub component: String,
    /// `spin-matched-route`: the route with the base applied (`/a/...`).
    pub based_route: String,
    /// `spin-raw-component-route`: the route as written.
    pub raw_route: String,
    /// `spin-path-info`: the part of the path the wildcard matched (`""` for exact routes).
    pub path_info: String,
    /// `spin-path-match-<name>` values of `:name` segments.
    pub named_wildcards: Vec<(String, String)>,
}

impl RouteMatch {
    /// `spin-component-route`: the raw route without its `/...` suffix.
    pub fn component_route(&self) -> &str {
        self.raw_route
            .strip_suffix("/...")
            .unwrap_or(&self.raw_route)
    }
}

/// A route as `spin up` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRoute {
    /// The component id.
    pub component: String,
    /// The path (`/a`), without the wildcard suffix.
    pub path: String,
    /// Whether it is a trailing wildcard route.
    pub wildcard: bool,
}

impl std::fmt::Display for ListedRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.wildcard {
            write!(f, "{} (wildcard)", self.path)
        } else {
            f.write_str(&self.path)
        }
    }
}

fn sanitize(text: &str) -> &str {
    text.strip_suffix('/').unwrap_or(text)
}

impl Router {
    /// Builds the router from `(route, component)` pairs in manifest order, with the
    /// base path `/`.
    pub fn build<'a>(routes: impl IntoIterator<Item = (&'a str, &'a str)>) -> anyhow::Result<Self> {
        let mut entries: Vec<RouteEntry> = Vec::new();
        for (order, (raw_route, component)) in routes.into_iter().enumerate() {
            let absolute = if raw_route.starts_with('/') {
                raw_route.to_string()
            } else {
                format!("/{raw_route}")
            };
            let based_route = format!("{}{}", sanitize("/"), sanitize(&absolute));
            let (spec, wildcard) = if let Some(prefix) = based_route.strip_suffix("/...") {
                (format!("{prefix}/*"), true)
            } else if based_route.ends_with("/*") {
                (based_route.clone(), true)
            } else {
                (based_route.clone(), false)
            };
            let pattern = Pattern::parse(&spec).map_err(|error| {
                anyhow::anyhow!(
                    "Error parsing route {based_route} associated with component {component}: {error}"
                )
            })?;
            // The same raw route twice: the later trigger replaces the earlier one.
            entries.retain(|entry| entry.raw_route != raw_route);
            entries.push(RouteEntry {
                component: component.to_string(),
                based_route,
                raw_route: raw_route.to_string(),
                pattern,
                wildcard,
                order,
            });
        }
        Ok(Self { entries })
    }

    /// The routes, in manifest order, as `spin up` prints them.
    pub fn listed(&self) -> Vec<ListedRoute> {
        let mut entries: Vec<&RouteEntry> = self.entries.iter().collect();
        entries.sort_by_key(|entry| entry.order);
        entries
            .into_iter()
            .map(|entry| ListedRoute {
                component: entry.component.clone(),
                path: if entry.wildcard {
                    entry
                        .based_route
                        .strip_suffix("/...")
                        .or_else(|| entry.based_route.strip_suffix("/*"))
                        .unwrap_or(&entry.based_route)
                        .to_string()
                } else {
                    entry.based_route.clone()
                },
                wildcard: entry.wildcard,
            })
            .collect()
    }

    /// The best route for a request path (without its query), or `None` for a `404`.
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let mut best: Option<(&RouteEntry, Captures<'_, '_>)> = None;
        for entry in &self.entries {
            let Some(captures) = entry.pattern.matches(path) else {
                continue;
            };
            let better = match &best {
                None => true,
                Some((current, ..)) => match entry.pattern.preference(&current.pattern) {
                    Ordering::Less => true,
                    Ordering::Greater => false,
                    Ordering::Equal => entry.order < current.order,
                },
            };
            if better {
                best = Some((entry, captures));
            }
        }
        let (entry, (params, wildcard)) = best?;
        let path_info = match wildcard {
            None => String::new(),
            Some(captured) => match (captured.is_empty(), path.ends_with('/')) {
                (true, false) => String::new(),
                (true, true) => "/".to_string(),
                (false, false) => format!("/{captured}"),
                (false, true) => format!("/{captured}/"),
            },
        };
        Some(RouteMatch {
            component: entry.component.clone(),
            based_route: entry.based_route.clone(),
            raw_route: entry.raw_route.clone(),
            path_info,
            named_wildcards: params
                .into_iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        Router::build(routes.iter().map(|(route, component)| (*route, *component))).unwrap()
    }

    fn component(router: &Router, path: &str) -> Option<String> {
        router.route(path).map(|m| m.component)
    }

    #[test]
    fn exact_routes_match_with_or_without_a_trailing_slash() {
        let r = router(&[("/foo", "foo"), ("/foo/bar", "foobar")]);
        assert_eq!(component(&r, "/foo").as_deref(), Some("foo"));
        assert_eq!(component(&r, "/foo/").as_deref(), Some("foo"));
        assert_eq!(component(&r, "/foo/bar").as_deref(), Some("foobar"));
        assert_eq!(component(&r, "/foobar"), None);
        assert_eq!(component(&r, "/foo/baz"), None);
        assert_eq!(r.route("/foo").unwrap().path_info, "");
    }

    #[test]
    fn wildcard_matches_its_prefix_itself_but_not_a_longer_word() {
        let r = router(&[("/test/...", "comp")]);
        assert_eq!(r.route("/test").unwrap().path_info, "");
        assert_eq!(r.route("/test/").unwrap().path_info, "/");
        assert_eq!(r.route("/test/hello").unwrap().path_info, "/hello");
        assert_eq!(r.route("/test/hello/").unwrap().path_info, "/hello/");
        assert_eq!(r.route("/test/a/b").unwrap().path_info, "/a/b");
        assert_eq!(r.route("/testing"), None);
    }

    #[test]
    fn root_wildcard_matches_everything() {
        let r = router(&[("/...", "all")]);
        for path in ["/", "/foo/bar", "/abc/"] {
            assert_eq!(component(&r, path).as_deref(), Some("all"), "{path}");
        }
        assert_eq!(r.route("/1/2/3").unwrap().path_info, "/1/2/3");
    }

    #[test]
    fn exact_beats_wildcard_and_longest_prefix_wins_in_any_order() {
        let r = router(&[("/one", "one_exact"), ("/...", "wildcard")]);
        assert_eq!(component(&r, "/one").as_deref(), Some("one_exact"));
        assert_eq!(component(&r, "/two").as_deref(), Some("wildcard"));
        let forward = [
            ("/one/...", "1"),
            ("/one/two/...", "12"),
            ("/one/two/three/...", "123"),
        ];
        let mut backward = forward;
        backward.reverse();
        for routes in [forward, backward] {
            let r = router(&routes);
            assert_eq!(component(&r, "/one/two/three/four").as_deref(), Some("123"));
            assert_eq!(component(&r, "/one/two/x").as_deref(), Some("12"));
            assert_eq!(component(&r, "/one/x").as_deref(), Some("1"));
            assert_eq!(component(&r, "/one/two").as_deref(), Some("12"));
        }
        let r = router(&[("/a/...", "wild"), ("/a", "exact")]);
        assert_eq!(component(&r, "/a").as_deref(), Some("exact"));
        assert_eq!(component(&r, "/a/b").as_deref(), Some("wild"));
    }

    #[test]
    fn duplicate_routes_last_one_wins() {
        let r = router(&[("/foo", "first"), ("/foo", "second")]);
        assert_eq!(component(&r, "/foo").as_deref(), Some("second"));
        assert_eq!(r.listed().len(), 1);
    }

    #[test]
    fn named_wildcards_are_captured() {
        let r = router(&[("/1/:two/3", "c")]);
        assert_eq!(
            r.route("/1/2/3").unwrap().named_wildcards,
            [("two".into(), "2".into())]
        );
        let r = router(&[("/1/:two/...", "c")]);
        let m = r.route("/1/2/3").unwrap();
        assert_eq!(m.named_wildcards, [("two".into(), "2".into())]);
        assert_eq!(m.path_info, "/3");
    }

    #[test]
    fn match_carries_the_spin_header_values() {
        let r = router(&[("/foo/...", "c")]);
        let m = r.route("/foo/bar").unwrap();
        assert_eq!(m.based_route, "/foo/...");
        assert_eq!(m.raw_route, "/foo/...");
        assert_eq!(m.component_route(), "/foo");
        assert_eq!(m.path_info, "/bar");
    }

    #[test]
    fn routes_are_listed_as_spin_up_prints_them() {
        let r = router(&[("/functions/v1/health/...", "health"), ("/", "root")]);
        let listed: Vec<String> = r
            .listed()
            .iter()
            .map(|l| format!("{}: {l}", l.component))
            .collect();
        assert_eq!(
            listed,
            ["health: /functions/v1/health (wildcard)", "root: "]
        );
    }
}
