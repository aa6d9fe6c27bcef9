//! Reading an OpenStreetMap PBF extract: the drivable ways under a profile, the positions
//! of their nodes, and the turn restrictions between them. Two passes over the file, so
//! that only the nodes of drivable ways are kept in memory.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use osmpbf::{Element, ElementReader, RelMemberType};

use crate::RoadError;
use crate::profile::{Direction, Profile};

/// A drivable way.
#[derive(Debug, Clone)]
pub struct Way {
    pub id: i64,
    pub nodes: Vec<i64>,
    pub speed_kmh: f64,
    pub direction: Direction,
}

/// A via-node turn restriction (`type=restriction`, `restriction=no_*` or `only_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restriction {
    pub from_way: i64,
    pub via_node: i64,
    pub to_way: i64,
    /// `only_*`: from `from_way` at `via_node`, `to_way` is the one way on.
    pub only: bool,
}

/// What a profile takes from an extract.
#[derive(Debug, Default)]
pub struct Extract {
    pub ways: Vec<Way>,
    /// `(lat, lon)` of every node of a drivable way found in the file.
    pub nodes: HashMap<i64, (f64, f64)>,
    pub restrictions: Vec<Restriction>,
}

/// A relation member: its kind, id and role.
type Member = (RelMemberType, i64, String);

/// Reads the drivable part of `path`.
pub fn read(path: &Path, profile: &Profile) -> Result<Extract, RoadError> {
    let fail = |reason: String| RoadError::Network {
        file: path.to_path_buf(),
        reason,
    };
    let metadata = std::fs::metadata(path).map_err(|error| fail(error.to_string()))?;
    if metadata.len() == 0 {
        return Err(fail("the file is empty".into()));
    }
    let mut extract = Extract::default();
    let mut restriction_rows: Vec<(Vec<Member>, bool)> = Vec::new();
    reader(path)?
        .for_each(|element| match element {
            Element::Way(way) => {
                if let Some(rule) = profile.way(way.tags()) {
                    let nodes: Vec<i64> = way.refs().collect();
                    if nodes.len() >= 2 {
                        extract.ways.push(Way {
                            id: way.id(),
                            nodes,
                            speed_kmh: rule.speed_kmh,
                            direction: rule.direction,
                        });
                    }
                }
            }
            Element::Relation(relation) => {
                let mut is_restriction = false;
                let mut kind = None;
                for (key, value) in relation.tags() {
                    match key {
                        "type" => is_restriction = value == "restriction",
                        // `restriction:motorcar` applies to trucks' cousins; the plain tag
                        // is what applies to every vehicle.
                        "restriction" | "restriction:motorcar" => kind = Some(value),
                        _ => {}
                    }
                }
                let only = match kind {
                    Some(kind) if kind.starts_with("only_") => true,
                    Some(kind) if kind.starts_with("no_") => false,
                    _ => return,
                };
                if !is_restriction {
                    return;
                }
                let members = relation
                    .members()
                    .map(|member| {
                        let role = member.role().unwrap_or_default().to_owned();
                        (member.member_type, member.member_id, role)
                    })
                    .collect();
                restriction_rows.push((members, only));
            }
            _ => {}
        })
        .map_err(|error| fail(format!("not a readable OSM PBF file: {error}")))?;
    if extract.ways.is_empty() {
        return Err(fail(format!(
            "no way is drivable under the `{}` profile",
            profile.name
        )));
    }
    let wanted: HashSet<i64> = extract
        .ways
        .iter()
        .flat_map(|way| way.nodes.iter().copied())
        .collect();
    let nodes = &mut extract.nodes;
    reader(path)?
        .for_each(|element| {
            let (id, lat, lon) = match element {
                Element::Node(node) => (node.id(), node.lat(), node.lon()),
                Element::DenseNode(node) => (node.id(), node.lat(), node.lon()),
                _ => return,
            };
            if wanted.contains(&id) && lat.is_finite() && lon.is_finite() {
                nodes.insert(id, (lat, lon));
            }
        })
        .map_err(|error| fail(format!("not a readable OSM PBF file: {error}")))?;
    if extract.nodes.is_empty() {
        return Err(fail(
            "the drivable ways have none of their nodes in the file".into(),
        ));
    }
    for (members, only) in restriction_rows {
        let pick = |role: &str, kind: RelMemberType| {
            let mut found = members.iter().filter(|(member_kind, _, member_role)| {
                *member_kind == kind && member_role == role
            });
            match (found.next(), found.next()) {
                (Some((_, id, _)), None) => Some(*id),
                _ => None,
            }
        };
        // Via-way restrictions and malformed ones (two `from`s) are left out.
        if let (Some(from_way), Some(via_node), Some(to_way)) = (
            pick("from", RelMemberType::Way),
            pick("via", RelMemberType::Node),
            pick("to", RelMemberType::Way),
        ) {
            extract.restrictions.push(Restriction {
                from_way,
                via_node,
                to_way,
                only,
            });
        }
    }
    Ok(extract)
}

fn reader(path: &Path) -> Result<ElementReader<std::io::BufReader<std::fs::File>>, RoadError> {
    ElementReader::from_path(path).map_err(|error| RoadError::Network {
        file: path.to_path_buf(),
        reason: error.to_string(),
    })
}
