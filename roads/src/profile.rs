//! The car profile as data: which ways a truck drives on, in which direction, how fast.
//! The default is `profiles/car.toml`, shipped in the binary; an operator overrides it
//! with a file of the same shape.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::RoadError;

/// The default car profile (`roads/profiles/car.toml`).
pub const DEFAULT_CAR_PROFILE: &str = include_str!("../profiles/car.toml");

/// Which OpenStreetMap ways are drivable, in which direction and how fast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// A name for logs and the cache key.
    pub name: String,
    /// km/h per `highway` class; a class not listed is not driven on.
    pub speeds: BTreeMap<String, f64>,
    /// A `maxspeed` tag's value is multiplied by this.
    pub maxspeed_factor: f64,
    /// Seconds added to a U-turn.
    pub u_turn_penalty_s: f64,
    /// Access values that exclude a way.
    pub excluded_access: Vec<String>,
    /// Classes that are one-way without an `oneway` tag.
    pub implied_oneway: Vec<String>,
}

/// The directions a way may be driven in, relative to the order of its nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Both,
    Forward,
    Backward,
}

impl Direction {
    /// Whether a truck may drive along the way's node order.
    pub fn forward(self) -> bool {
        matches!(self, Direction::Both | Direction::Forward)
    }

    /// Whether a truck may drive against the way's node order.
    pub fn backward(self) -> bool {
        matches!(self, Direction::Both | Direction::Backward)
    }
}

/// How a truck may use one way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WayRule {
    /// km/h.
    pub speed_kmh: f64,
    pub direction: Direction,
}

impl Default for Profile {
    fn default() -> Self {
        Profile::parse(DEFAULT_CAR_PROFILE, Path::new("profiles/car.toml"))
            .expect("the shipped car profile parses")
    }
}

impl Profile {
    /// Reads a profile file.
    pub fn from_file(path: &Path) -> Result<Self, RoadError> {
        let text = std::fs::read_to_string(path).map_err(|error| RoadError::Profile {
            file: path.to_path_buf(),
            reason: error.to_string(),
        })?;
        Profile::parse(&text, path)
    }

    /// Parses a profile; `path` names it in errors (the line, column and field come from
    /// the TOML parser).
    pub fn parse(text: &str, path: &Path) -> Result<Self, RoadError> {
        let profile: Profile = toml::from_str(text).map_err(|error| RoadError::Profile {
            file: path.to_path_buf(),
            reason: error.to_string().trim_end().to_owned(),
        })?;
        profile.check().map_err(|reason| RoadError::Profile {
            file: path.to_path_buf(),
            reason,
        })?;
        Ok(profile)
    }

    fn check(&self) -> Result<(), String> {
        for (class, speed) in &self.speeds {
            if !(speed.is_finite() && *speed > 0.0 && *speed <= 200.0) {
                return Err(format!(
                    "speeds.{class}: {speed} km/h is not a speed (0 < speed ≤ 200)"
                ));
            }
        }
        if !(self.maxspeed_factor.is_finite()
            && self.maxspeed_factor > 0.0
            && self.maxspeed_factor <= 1.5)
        {
            return Err(format!(
                "maxspeed_factor: {} is outside 0 < factor ≤ 1.5",
                self.maxspeed_factor
            ));
        }
        if !(self.u_turn_penalty_s.is_finite() && self.u_turn_penalty_s >= 0.0) {
            return Err(format!(
                "u_turn_penalty_s: {} is not a number of seconds ≥ 0",
                self.u_turn_penalty_s
            ));
        }
        if self.speeds.is_empty() {
            return Err("speeds: no highway class is drivable".into());
        }
        Ok(())
    }

    /// How a truck may use a way with these tags; `None` when it may not.
    pub fn way<'a>(&self, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<WayRule> {
        let mut highway = None;
        let mut maxspeed = None;
        let mut oneway = None;
        let mut junction = None;
        let mut access: [Option<&str>; 4] = [None; 4];
        for (key, value) in tags {
            match key {
                "highway" => highway = Some(value),
                "maxspeed" => maxspeed = Some(value),
                "oneway" => oneway = Some(value),
                "junction" => junction = Some(value),
                "motorcar" => access[0] = Some(value),
                "motor_vehicle" => access[1] = Some(value),
                "vehicle" => access[2] = Some(value),
                "access" => access[3] = Some(value),
                _ => {}
            }
        }
        let highway = highway?;
        let class_speed = *self.speeds.get(highway)?;
        if let Some(value) = access.into_iter().flatten().next()
            && self
                .excluded_access
                .iter()
                .any(|excluded| excluded == value)
        {
            return None;
        }
        let speed_kmh = maxspeed
            .and_then(parse_maxspeed)
            .map(|limit| limit * self.maxspeed_factor)
            .unwrap_or(class_speed);
        let implied = self.implied_oneway.iter().any(|class| class == highway)
            || matches!(junction, Some("roundabout" | "circular"));
        let direction = match oneway {
            Some("yes" | "1" | "true") => Direction::Forward,
            Some("-1" | "reverse") => Direction::Backward,
            Some("no" | "false" | "0") => Direction::Both,
            _ if implied => Direction::Forward,
            _ => Direction::Both,
        };
        Some(WayRule {
            speed_kmh,
            direction,
        })
    }
}

/// A `maxspeed` value in km/h: `50`, `50 km/h`, `30 mph`, the first of `50;30`. Values
/// that are not a number (`none`, `signals`, `walk`, `RU:urban`) give `None`, and the
/// class's speed applies.
pub fn parse_maxspeed(value: &str) -> Option<f64> {
    let first = value.split(';').next()?.trim();
    let (number, factor) = if let Some(number) = first.strip_suffix("mph") {
        (number, 1.609_344)
    } else if let Some(number) = first.strip_suffix("km/h") {
        (number, 1.0)
    } else if let Some(number) = first.strip_suffix("kmh") {
        (number, 1.0)
    } else {
        (first, 1.0)
    };
    let speed: f64 = number.trim().parse().ok()?;
    (speed.is_finite() && speed > 0.0 && speed <= 300.0).then_some(speed * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn way(tags: &[(&str, &str)]) -> Option<WayRule> {
        Profile::default().way(tags.iter().copied())
    }

    #[test]
    fn class_speeds_are_the_osrm_car_defaults() {
        let profile = Profile::default();
        assert_eq!(profile.speeds["motorway"], 90.0);
        assert_eq!(profile.speeds["residential"], 25.0);
        assert_eq!(profile.speeds["service"], 15.0);
        assert_eq!(profile.speeds["living_street"], 10.0);
        assert_eq!(way(&[("highway", "primary")]).unwrap().speed_kmh, 65.0);
        assert_eq!(way(&[("highway", "footway")]), None);
        assert_eq!(way(&[("building", "yes")]), None);
    }

    #[test]
    fn maxspeed_in_kmh_and_mph_times_the_factor() {
        let rule = way(&[("highway", "primary"), ("maxspeed", "50")]).unwrap();
        assert!((rule.speed_kmh - 40.0).abs() < 1e-9);
        let rule = way(&[("highway", "primary"), ("maxspeed", "30 mph")]).unwrap();
        assert!((rule.speed_kmh - 30.0 * 1.609_344 * 0.8).abs() < 1e-9);
        let rule = way(&[("highway", "primary"), ("maxspeed", "none")]).unwrap();
        assert_eq!(rule.speed_kmh, 65.0);
        assert_eq!(parse_maxspeed("50;30"), Some(50.0));
        assert_eq!(parse_maxspeed("RU:urban"), None);
        assert_eq!(parse_maxspeed("-5"), None);
        assert_eq!(parse_maxspeed("NaN"), None);
    }

    #[test]
    fn oneway_tags_and_implied_oneways() {
        let direction = |tags: &[(&str, &str)]| way(tags).unwrap().direction;
        assert_eq!(direction(&[("highway", "residential")]), Direction::Both);
        for yes in ["yes", "1", "true"] {
            assert_eq!(
                direction(&[("highway", "residential"), ("oneway", yes)]),
                Direction::Forward
            );
        }
        assert_eq!(
            direction(&[("highway", "residential"), ("oneway", "-1")]),
            Direction::Backward
        );
        assert_eq!(direction(&[("highway", "motorway")]), Direction::Forward);
        assert_eq!(
            direction(&[("highway", "motorway"), ("oneway", "no")]),
            Direction::Both
        );
        assert_eq!(
            direction(&[("highway", "tertiary"), ("junction", "roundabout")]),
            Direction::Forward
        );
    }

    #[test]
    fn access_no_and_private_exclude_unless_a_more_specific_tag_allows() {
        assert_eq!(way(&[("highway", "service"), ("access", "private")]), None);
        assert_eq!(
            way(&[("highway", "service"), ("motor_vehicle", "no")]),
            None
        );
        assert!(
            way(&[
                ("highway", "service"),
                ("access", "no"),
                ("motor_vehicle", "yes")
            ])
            .is_some()
        );
        assert!(way(&[("highway", "service"), ("access", "yes")]).is_some());
    }

    #[test]
    fn a_bad_profile_names_the_file_line_and_field() {
        let error = Profile::parse(
            "name = \"car\"\nmaxspeed_factor = 0.8\nu_turn_penalty_s = 20.0\nexcluded_access = []\nimplied_oneway = []\n[speeds]\nmotorway = \"fast\"\n",
            Path::new("my-car.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("my-car.toml"), "{error}");
        assert!(error.contains("line 7"), "{error}");
        assert!(error.contains("motorway"), "{error}");
        let error = Profile::parse(
            &DEFAULT_CAR_PROFILE.replace("motorway = 90.0", "motorway = -90.0"),
            Path::new("neg.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("speeds.motorway"), "{error}");
        let error = Profile::parse(
            &format!("{DEFAULT_CAR_PROFILE}\n[extra]\n"),
            Path::new("x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("extra"), "{error}");
    }
}
