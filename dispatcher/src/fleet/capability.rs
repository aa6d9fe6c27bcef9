//! What a vehicle can do, as a bitset small enough to copy into every index slot and to
//! test in the hot loop of a nearest-vehicle query.

use std::fmt;

use domain::Service;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

// One bit per service, by declaration order (`Service` is a fieldless enum, so
// `service as u16` is its position in `Service::ALL`).
const _: () = assert!(
    Service::ALL.len() <= u16::BITS as usize,
    "CapabilitySet needs a wider integer"
);

/// A set of [`Service`]s a vehicle can perform. `Copy`, two bytes, and serialized as a
/// list of service names (`["tow", "winch"]`), the same form the provider API uses.
///
/// ```
/// use dispatcher::fleet::CapabilitySet;
/// use domain::Service;
///
/// let van: CapabilitySet = [Service::JumpStart, Service::TyreChange].into_iter().collect();
/// assert!(van.contains(Service::JumpStart));
/// assert!(!van.contains(Service::Tow));
/// assert_eq!(serde_json::to_string(&van).unwrap(), r#"["jump_start","tyre_change"]"#);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CapabilitySet {
    bits: u16,
}

impl CapabilitySet {
    /// The set that contains nothing.
    ///
    /// ```
    /// use dispatcher::fleet::CapabilitySet;
    /// assert!(CapabilitySet::empty().is_empty());
    /// ```
    pub const fn empty() -> Self {
        Self { bits: 0 }
    }

    /// The set of every service.
    ///
    /// ```
    /// use dispatcher::fleet::CapabilitySet;
    /// use domain::Service;
    /// assert_eq!(CapabilitySet::all().len(), Service::ALL.len());
    /// ```
    pub fn all() -> Self {
        Service::ALL.iter().copied().collect()
    }

    const fn bit(service: Service) -> u16 {
        1 << service as u16
    }

    /// Whether `service` is in the set.
    ///
    /// ```
    /// use dispatcher::fleet::CapabilitySet;
    /// use domain::Service;
    /// let flatbed = CapabilitySet::from_iter([Service::Tow, Service::Winch]);
    /// assert!(flatbed.contains(Service::Winch));
    /// assert!(!flatbed.contains(Service::Lockout));
    /// ```
    pub const fn contains(self, service: Service) -> bool {
        self.bits & Self::bit(service) != 0
    }

    /// Whether every service of `other` is in this set.
    ///
    /// ```
    /// use dispatcher::fleet::CapabilitySet;
    /// use domain::Service;
    /// let flatbed = CapabilitySet::from_iter([Service::Tow, Service::Winch]);
    /// assert!(flatbed.contains_all(CapabilitySet::from_iter([Service::Tow])));
    /// assert!(!flatbed.contains_all(CapabilitySet::from_iter([Service::Tow, Service::Lockout])));
    /// ```
    pub const fn contains_all(self, other: CapabilitySet) -> bool {
        self.bits & other.bits == other.bits
    }

    /// Adds `service`; returns whether it was new.
    ///
    /// ```
    /// use dispatcher::fleet::CapabilitySet;
    /// use domain::Service;
    /// let mut set = CapabilitySet::empty();
    /// assert!(set.insert(Service::Tow));
    /// assert!(!set.insert(Service::Tow));
    /// ```
    pub fn insert(&mut self, service: Service) -> bool {
        let was_new = !self.contains(service);
        self.bits |= Self::bit(service);
        was_new
    }

    /// Removes `service`; returns whether it was there.
    ///
    /// ```
    /// use dispatcher::fleet::CapabilitySet;
    /// use domain::Service;
    /// let mut set = CapabilitySet::from_iter([Service::Tow]);
    /// assert!(set.remove(Service::Tow));
    /// assert!(set.is_empty());
    /// ```
    pub fn remove(&mut self, service: Service) -> bool {
        let was_there = self.contains(service);
        self.bits &= !Self::bit(service);
        was_there
    }

    /// Whether the set is empty.
    ///
    /// ```
    /// use dispatcher::fleet::CapabilitySet;
    /// use domain::Service;
    /// assert!(!CapabilitySet::from_iter([Service::Lockout]).is_empty());
    /// ```
    pub const fn is_empty(self) -> bool {
        self.bits == 0
    }

    /// How many services the set holds.
    ///
    /// ```
    /// use dispatcher::fleet::CapabilitySet;
    /// use domain::Service;
    /// assert_eq!(CapabilitySet::from_iter([Service::Tow, Service::Tow, Service::Winch]).len(), 2);
    /// ```
    pub const fn len(self) -> usize {
        self.bits.count_ones() as usize
    }

    /// The services in the set, in the declaration order of [`Service`].
    ///
    /// ```
    /// use dispatcher::fleet::CapabilitySet;
    /// use domain::Service;
    /// let set = CapabilitySet::from_iter([Service::Winch, Service::Tow]);
    /// assert_eq!(set.iter().collect::<Vec<_>>(), [Service::Tow, Service::Winch]);
    /// ```
    pub fn iter(self) -> impl Iterator<Item = Service> {
        Service::ALL
            .iter()
            .copied()
            .filter(move |service| self.contains(*service))
    }
}

impl FromIterator<Service> for CapabilitySet {
    fn from_iter<I: IntoIterator<Item = Service>>(services: I) -> Self {
        let mut set = Self::empty();
        set.extend(services);
        set
    }
}

impl Extend<Service> for CapabilitySet {
    fn extend<I: IntoIterator<Item = Service>>(&mut self, services: I) {
        for service in services {
            self.insert(service);
        }
    }
}

impl fmt::Debug for CapabilitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for CapabilitySet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for CapabilitySet {
    /// Accepts a list of service names; duplicates are harmless, unknown names are refused.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let services = Vec::<Service>::deserialize(deserializer)?;
        Ok(services.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_has_its_own_bit_in_declaration_order() {
        for (position, service) in Service::ALL.iter().enumerate() {
            assert_eq!(*service as usize, position);
            assert_eq!(CapabilitySet::from_iter([*service]).len(), 1);
        }
        assert_eq!(CapabilitySet::all().len(), Service::ALL.len());
    }

    #[test]
    fn a_set_contains_exactly_the_services_it_was_built_from() {
        let set = CapabilitySet::from_iter([Service::Tow, Service::FuelDelivery]);
        for service in Service::ALL {
            let expected = matches!(service, Service::Tow | Service::FuelDelivery);
            assert_eq!(set.contains(*service), expected, "{service}");
        }
    }

    #[test]
    fn capabilities_round_trip_through_json_as_service_names() {
        let set = CapabilitySet::from_iter([Service::Winch, Service::Lockout]);
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["lockout","winch"]"#);
        assert_eq!(serde_json::from_str::<CapabilitySet>(&json).unwrap(), set);
        assert_eq!(
            serde_json::from_str::<CapabilitySet>("[]").unwrap(),
            CapabilitySet::empty()
        );
    }

    #[test]
    fn an_unknown_capability_name_is_refused() {
        let error = serde_json::from_str::<CapabilitySet>(r#"["tow","teleport"]"#).unwrap_err();
        assert!(error.to_string().contains("teleport"), "{error}");
    }

    #[test]
    fn debug_output_names_the_services() {
        let set = CapabilitySet::from_iter([Service::Tow]);
        assert_eq!(format!("{set:?}"), "{Tow}");
    }
}
