//! The pure domain: decoding commands and deciding, from the current state and
//! a command, the outcome, the new state and the events. No I/O here: the
//! store and the AMQP adapters call into this module.
//!
//! Unit tests: a module's tests stay inline in `mod tests` while they are
//! under about 100 lines; past that the module becomes a directory,
//! `foo/mod.rs` with `foo/tests.rs` (or `foo/tests/mod.rs` and a file per
//! feature when large), and only what spans entities stays at this level
//! (the harness in `test_support.rs`, `proptests.rs`, the import check below).

pub mod admission;
pub mod blocklist;
pub mod contact;
pub mod decision;
pub mod directory;
pub mod effect;
pub mod effective;
pub mod envelope;
pub mod event;
pub mod failure;
pub mod guardrail;
pub mod ids;
pub mod json;
pub mod kinds;
pub mod outcome;
pub mod payload;
pub mod policy;
#[cfg(test)]
mod proptests;
pub mod record;
pub mod registry;
pub mod schedule;
pub mod ts;
pub mod user;
pub mod working;

use ids::{Limits, TenantId};
use policy::TenantPolicy;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use ts::Ts;

/// What a decision needs besides the entity and the command.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    pub tenant: &'a TenantId,
    pub policy: &'a TenantPolicy,
    pub limits: &'a Limits,
    /// The command's `issued_at`: the staleness clock.
    pub issued_at: OffsetDateTime,
    pub actor: Option<&'a str>,
    /// Wall-clock time of processing, for `updated_at` and event times.
    pub now: OffsetDateTime,
    /// The tenant's erased addresses among those the command may touch.
    pub blocklist: &'a blocklist::Blocklist,
}

/// Last writer wins per aspect: a command is fresh unless an aspect already
/// saw a strictly later `issued_at` (equal timestamps apply in arrival order).
pub fn is_fresh(aspects: &BTreeMap<String, Ts>, aspect: &str, issued_at: OffsetDateTime) -> bool {
    aspects
        .get(aspect)
        .is_none_or(|last| issued_at >= last.get())
}
#[cfg(test)]
mod test_support;

#[cfg(test)]
mod layering {
    //! The domain's files import each other without cycles: a file's
    //! imports (`use super::…`, `use crate::domain::…`) form a DAG.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    /// Domain source files by module path (`contact::decide`), tests aside.
    fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            if name.contains("test") || name == "proptests" {
                continue;
            }
            if path.is_dir() {
                modules(&path, &format!("{prefix}{name}::"), out);
            } else if name == "mod" {
                out.insert(prefix.trim_end_matches("::").to_owned(), path);
            } else {
                out.insert(format!("{prefix}{name}"), path);
            }
        }
    }

    /// The domain modules a file's code names, resolved to known modules.
    fn imports(module: &str, source: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
        let parent = match module.rsplit_once("::") {
            Some((p, _)) if !source.is_empty() => p.to_owned(),
            _ => String::new(),
        };
        let mut out = BTreeSet::new();
        for line in source.lines().map(str::trim) {
            if line.starts_with("//") {
                continue;
            }
            for (marker, base) in [
                ("crate::domain::", String::new()),
                ("super::", parent.clone()),
            ] {
                for (i, _) in line.match_indices(marker) {
                    let rest = &line[i + marker.len()..];
                    let path: Vec<&str> = rest
                        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                        .next()
                        .unwrap_or("")
                        .split("::")
                        .filter(|s| !s.is_empty())
                        .collect();
                    // The longest known module the path starts with.
                    for n in (1..=path.len()).rev() {
                        let candidate = if base.is_empty() {
                            path[..n].join("::")
                        } else {
                            format!("{base}::{}", path[..n].join("::"))
                        };
                        if known.contains(&candidate) && candidate != module {
                            out.insert(candidate);
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_domain_has_no_import_cycle() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/domain");
        let mut files = BTreeMap::new();
        modules(&root, "", &mut files);
        let known: BTreeSet<String> = files.keys().cloned().collect();
        let graph: BTreeMap<String, BTreeSet<String>> = files
            .iter()
            .map(|(m, path)| {
                let source = std::fs::read_to_string(path).unwrap();
                (m.clone(), imports(m, &source, &known))
            })
            .collect();
        assert!(graph.len() > 15, "{:?}", graph.keys());
        // Depth-first search for a back edge.
        fn visit(
            m: &str,
            graph: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) {
            if done.contains(m) {
                return;
            }
            assert!(
                !path.iter().any(|p| p == m),
                "import cycle: {path:?} -> {m}"
            );
            path.push(m.to_owned());
            for next in graph.get(m).into_iter().flatten() {
                visit(next, graph, path, done);
            }
            path.pop();
            done.insert(m.to_owned());
        }
        let mut done = BTreeSet::new();
        for m in graph.keys() {
            visit(m, &graph, &mut Vec::new(), &mut done);
        }
    }
}
