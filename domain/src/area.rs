//! A provider's service area: a GeoJSON `Polygon` or `MultiPolygon` in WGS-84, validated
//! at the edge and tested for containment.

use serde_json::Value;

use crate::error::FieldError;
use crate::geo::LatLon;

/// One polygon: an outer ring and holes, each a closed ring of `[lon, lat]` points.
#[derive(Debug, Clone, PartialEq)]
struct Polygon {
    outer: Vec<[f64; 2]>,
    holes: Vec<Vec<[f64; 2]>>,
    /// Bounding box `[min_lon, min_lat, max_lon, max_lat]` of the outer ring.
    bbox: [f64; 4],
}

/// Where a provider may work.
///
/// ```
/// use domain::area::ServiceArea;
/// use domain::LatLon;
/// let area = ServiceArea::from_geojson(&serde_json::json!({
///     "type": "Polygon",
///     "coordinates": [[[121.3,31.0],[121.8,31.0],[121.8,31.4],[121.3,31.4],[121.3,31.0]]]
/// })).unwrap();
/// assert!(area.contains(&LatLon::new(31.2304, 121.4737).unwrap()));
/// assert!(!area.contains(&LatLon::new(39.9, 116.4).unwrap()));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceArea {
    polygons: Vec<Polygon>,
}

const MAX_POINTS: usize = 100_000;

impl ServiceArea {
    /// Parses a GeoJSON Polygon or MultiPolygon geometry. Rings need at least four
    /// positions and must be closed; positions are `[lon, lat]` in range.
    pub fn from_geojson(geometry: &Value) -> Result<ServiceArea, FieldError> {
        let kind = geometry
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| FieldError::new("type", "must be \"Polygon\" or \"MultiPolygon\""))?;
        let coordinates = geometry
            .get("coordinates")
            .ok_or_else(|| FieldError::new("coordinates", "missing"))?;
        let mut budget = MAX_POINTS;
        let polygons = match kind {
            "Polygon" => vec![parse_polygon(coordinates, "coordinates", &mut budget)?],
            "MultiPolygon" => {
                let list = coordinates
                    .as_array()
                    .filter(|list| !list.is_empty())
                    .ok_or_else(|| {
                        FieldError::new("coordinates", "must be a non-empty array of polygons")
                    })?;
                list.iter()
                    .enumerate()
                    .map(|(index, polygon)| {
                        parse_polygon(polygon, &format!("coordinates[{index}]"), &mut budget)
                    })
                    .collect::<Result<_, _>>()?
            }
            other => {
                return Err(FieldError::new(
                    "type",
                    format!("must be \"Polygon\" or \"MultiPolygon\", not \"{other}\""),
                ));
            }
        };
        Ok(ServiceArea { polygons })
    }

    /// Whether the point lies inside (holes excluded). Points on an edge may fall either
    /// way.
    pub fn contains(&self, point: &LatLon) -> bool {
        let (x, y) = (point.lon(), point.lat());
        self.polygons.iter().any(|polygon| {
            let [min_x, min_y, max_x, max_y] = polygon.bbox;
            x >= min_x
                && x <= max_x
                && y >= min_y
                && y <= max_y
                && ring_contains(&polygon.outer, x, y)
                && !polygon.holes.iter().any(|hole| ring_contains(hole, x, y))
        })
    }
}

fn parse_polygon(value: &Value, path: &str, budget: &mut usize) -> Result<Polygon, FieldError> {
    let rings = value
        .as_array()
        .filter(|rings| !rings.is_empty())
        .ok_or_else(|| FieldError::new(path, "a polygon must be a non-empty array of rings"))?;
    let mut parsed = Vec::with_capacity(rings.len());
    for (index, ring) in rings.iter().enumerate() {
        parsed.push(parse_ring(ring, &format!("{path}[{index}]"), budget)?);
    }
    let outer = parsed.remove(0);
    let mut bbox = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for [x, y] in &outer {
        bbox = [
            bbox[0].min(*x),
            bbox[1].min(*y),
            bbox[2].max(*x),
            bbox[3].max(*y),
        ];
    }
    Ok(Polygon {
        outer,
        holes: parsed,
        bbox,
    })
}

fn parse_ring(value: &Value, path: &str, budget: &mut usize) -> Result<Vec<[f64; 2]>, FieldError> {
    let positions = value
        .as_array()
        .ok_or_else(|| FieldError::new(path, "a ring must be an array of [lon, lat] positions"))?;
    if positions.len() < 4 {
        return Err(FieldError::new(
            path,
            "a ring needs at least four positions",
        ));
    }
    if positions.len() > *budget {
        return Err(FieldError::new(
            path,
            format!("too many positions (at most {MAX_POINTS} in all)"),
        ));
    }
    *budget -= positions.len();
    let mut ring = Vec::with_capacity(positions.len());
    for (index, position) in positions.iter().enumerate() {
        let pair = position.as_array().filter(|pair| pair.len() >= 2);
        let (lon, lat) = match pair {
            Some(pair) => (pair[0].as_f64(), pair[1].as_f64()),
            None => (None, None),
        };
        let (Some(lon), Some(lat)) = (lon, lat) else {
            return Err(FieldError::new(
                format!("{path}[{index}]"),
                "must be [lon, lat]",
            ));
        };
        LatLon::new(lat, lon)
            .map_err(|error| FieldError::new(format!("{path}[{index}]"), error.message))?;
        ring.push([lon, lat]);
    }
    if ring.first() != ring.last() {
        return Err(FieldError::new(
            path,
            "a ring must be closed: its last position must equal its first",
        ));
    }
    Ok(ring)
}

/// Even-odd ray casting on a closed ring of `[x, y]`.
fn ring_contains(ring: &[[f64; 2]], x: f64, y: f64) -> bool {
    let mut inside = false;
    for edge in ring.windows(2) {
        let ([x1, y1], [x2, y2]) = (edge[0], edge[1]);
        if (y1 > y) != (y2 > y) {
            let crossing_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1);
            if x < crossing_x {
                inside = !inside;
            }
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn point(lat: f64, lon: f64) -> LatLon {
        LatLon::new(lat, lon).unwrap()
    }

    #[test]
    fn holes_are_outside() {
        let area = ServiceArea::from_geojson(&json!({
            "type": "Polygon",
            "coordinates": [
                [[0.0,0.0],[10.0,0.0],[10.0,10.0],[0.0,10.0],[0.0,0.0]],
                [[4.0,4.0],[6.0,4.0],[6.0,6.0],[4.0,6.0],[4.0,4.0]]
            ]
        }))
        .unwrap();
        assert!(area.contains(&point(2.0, 2.0)));
        assert!(!area.contains(&point(5.0, 5.0)));
        assert!(!area.contains(&point(11.0, 5.0)));
    }

    #[test]
    fn a_multipolygon_contains_points_of_any_part() {
        let area = ServiceArea::from_geojson(&json!({
            "type": "MultiPolygon",
            "coordinates": [
                [[[0.0,0.0],[1.0,0.0],[1.0,1.0],[0.0,0.0]]],
                [[[5.0,5.0],[6.0,5.0],[6.0,6.0],[5.0,6.0],[5.0,5.0]]]
            ]
        }))
        .unwrap();
        assert!(area.contains(&point(5.5, 5.5)));
        assert!(area.contains(&point(0.2, 0.8)));
        assert!(!area.contains(&point(3.0, 3.0)));
    }

    #[test]
    fn a_concave_polygon_excludes_its_notch() {
        // A U shape: the notch between the arms is outside.
        let area = ServiceArea::from_geojson(&json!({
            "type": "Polygon",
            "coordinates": [[[0.0,0.0],[3.0,0.0],[3.0,3.0],[2.0,3.0],[2.0,1.0],[1.0,1.0],[1.0,3.0],[0.0,3.0],[0.0,0.0]]]
        }))
        .unwrap();
        assert!(area.contains(&point(2.0, 0.5)));
        assert!(!area.contains(&point(2.0, 1.5)));
        assert!(area.contains(&point(2.5, 2.5)));
    }

    #[test]
    fn malformed_geometries_are_refused_naming_the_place() {
        let cases = [
            (json!({"type": "Point", "coordinates": [0, 0]}), "type"),
            (json!({"type": "Polygon"}), "coordinates"),
            (
                json!({"type": "Polygon", "coordinates": [[[0,0],[1,0],[0,0]]]}),
                "coordinates[0]",
            ),
            (
                json!({"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,1]]]}),
                "coordinates[0]",
            ),
            (
                json!({"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,95],[0,0]]]}),
                "coordinates[0][2]",
            ),
        ];
        for (geometry, field) in cases {
            assert_eq!(
                ServiceArea::from_geojson(&geometry).unwrap_err().field,
                field,
                "{geometry}"
            );
        }
    }
}
