//! Layer 3: joining sub-packaged messages into one [`Jt808Frame`], bounded in pending
//! packages, parts per package and age ([`SubpackageLimits`]). Pure: the caller passes
//! the current time.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::frame::{Header, Jt808Frame, Subpackage, TerminalPhone};

/// Bounds for [`SubpackageAssembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubpackageLimits {
    /// Packages being assembled at once; a new one beyond this evicts the oldest.
    pub max_pending: usize,
    /// Most parts one package may announce; more is refused outright.
    pub max_parts: u16,
    /// A package not complete within this is dropped.
    pub max_age: Duration,
}

impl Default for SubpackageLimits {
    /// 4 packages of at most 16 parts (about 64 KiB per connection), 60 s each.
    fn default() -> Self {
        Self {
            max_pending: 4,
            max_parts: 16,
            max_age: Duration::from_secs(60),
        }
    }
}

/// What [`SubpackageAssembler::push`] made of a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubpackageOutcome {
    /// Stored; more parts are needed.
    Incomplete,
    /// The last missing part arrived: the whole message, with the first part's header
    /// (sub-package fields removed) and the bodies joined in order.
    Complete(Jt808Frame),
}

/// Why a part was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubpackageError {
    /// The frame has no sub-package fields.
    #[error("frame is not a sub-package")]
    NotSubpackaged,
    /// Index 0, total 0, or index above total.
    #[error("invalid sub-package fields: part {index} of {total}")]
    InvalidIndex {
        /// Total parts.
        total: u16,
        /// Part index.
        index: u16,
    },
    /// More parts than [`SubpackageLimits::max_parts`].
    #[error("package announces {total} parts, more than the limit of {limit}")]
    TooManyParts {
        /// Announced.
        total: u16,
        /// Allowed.
        limit: u16,
    },
}

#[derive(Debug)]
struct PendingPackage {
    message_id: u16,
    phone: TerminalPhone,
    first_serial: u16,
    first_header: Option<Header>,
    parts: Vec<Option<Bytes>>,
    started: Instant,
}

/// Joins sub-packaged messages. Pure: the caller passes the current time.
///
/// Parts of one message share message id, phone and total, and carry consecutive serial
/// numbers, so `serial - (index - 1)` identifies the package.
///
/// ```
/// use std::time::Instant;
/// use provider_adapters::ChecksumPolicy;
/// use provider_adapters::jt808::codec::*;
/// let mut assembler = SubpackageAssembler::new(SubpackageLimits::default());
/// let part = |serial: u16, index: u16, body: &[u8]| {
///     let mut frame = vec![0x07, 0x04, 0x20, body.len() as u8, 1, 2, 3, 4, 5, 6];
///     frame.extend_from_slice(&serial.to_be_bytes());
///     frame.extend_from_slice(&[0, 2]);
///     frame.extend_from_slice(&index.to_be_bytes());
///     frame.extend_from_slice(body);
///     frame.push(xor_checksum(&frame));
///     parse_frame(&frame, ChecksumPolicy::Verify).unwrap()
/// };
/// let now = Instant::now();
/// assert_eq!(assembler.push(part(7, 1, b"ab"), now), Ok(SubpackageOutcome::Incomplete));
/// let SubpackageOutcome::Complete(whole) = assembler.push(part(8, 2, b"cd"), now).unwrap() else { panic!() };
/// assert_eq!(&whole.body[..], b"abcd");
/// ```
#[derive(Debug)]
pub struct SubpackageAssembler {
    limits: SubpackageLimits,
    pending: Vec<PendingPackage>,
    dropped: u64,
}

impl SubpackageAssembler {
    /// An empty assembler with these bounds.
    pub fn new(limits: SubpackageLimits) -> Self {
        Self {
            limits,
            pending: Vec::new(),
            dropped: 0,
        }
    }

    /// Packages currently being assembled.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Packages dropped so far because they expired or were evicted.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Adds one part received at `now`.
    pub fn push(
        &mut self,
        frame: Jt808Frame,
        now: Instant,
    ) -> Result<SubpackageOutcome, SubpackageError> {
        let Some(Subpackage { total, index }) = frame.header.subpackage else {
            return Err(SubpackageError::NotSubpackaged);
        };
        if total == 0 || index == 0 || index > total {
            return Err(SubpackageError::InvalidIndex { total, index });
        }
        if total > self.limits.max_parts {
            return Err(SubpackageError::TooManyParts {
                total,
                limit: self.limits.max_parts,
            });
        }
        self.expire(now);

        let first_serial = frame.header.serial.wrapping_sub(index.wrapping_sub(1));
        let header = &frame.header;
        let position = self.pending.iter().position(|package| {
            package.message_id == header.message_id
                && package.phone == header.phone
                && package.first_serial == first_serial
                && package.parts.len() == usize::from(total)
        });
        let position = match position {
            Some(position) => position,
            None => {
                if self.pending.len() >= self.limits.max_pending.max(1) {
                    // Evict the oldest: a terminal that restarted a transfer must not be
                    // locked out by its own abandoned attempt.
                    self.pending.remove(0);
                    self.dropped += 1;
                }
                self.pending.push(PendingPackage {
                    message_id: header.message_id,
                    phone: header.phone,
                    first_serial,
                    first_header: None,
                    parts: vec![None; usize::from(total)],
                    started: now,
                });
                self.pending.len() - 1
            }
        };

        let package = &mut self.pending[position];
        let slot = usize::from(index) - 1;
        if slot == 0 {
            package.first_header = Some(frame.header.clone());
        }
        package.parts[slot] = Some(frame.body);
        if package.parts.iter().any(Option::is_none) {
            return Ok(SubpackageOutcome::Incomplete);
        }

        let package = self.pending.remove(position);
        let Some(mut header) = package.first_header else {
            return Ok(SubpackageOutcome::Incomplete);
        };
        let mut body = BytesMut::new();
        for part in package.parts.into_iter().flatten() {
            body.extend_from_slice(&part);
        }
        header.subpackage = None;
        header.body_len = body.len();
        Ok(SubpackageOutcome::Complete(Jt808Frame {
            header,
            body: body.freeze(),
            checksum_valid: frame.checksum_valid,
        }))
    }

    fn expire(&mut self, now: Instant) {
        let max_age = self.limits.max_age;
        let before = self.pending.len();
        self.pending
            .retain(|package| now.saturating_duration_since(package.started) <= max_age);
        self.dropped += (before - self.pending.len()) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChecksumPolicy;
    use crate::jt808::codec::parse_frame;
    use crate::jt808::codec::test_frames::{PHONE, build_frame};

    fn subpackage_part(serial: u16, total: u16, index: u16, body: &[u8]) -> Jt808Frame {
        let mut header = parse_frame(
            &build_frame(0x0704, &PHONE, serial, &[]),
            ChecksumPolicy::Verify,
        )
        .expect("frame")
        .header;
        header.subpackage = Some(Subpackage { total, index });
        header.body_len = body.len();
        Jt808Frame {
            header,
            body: Bytes::copy_from_slice(body),
            checksum_valid: true,
        }
    }

    #[test]
    fn subpackages_arriving_out_of_order_assemble_in_index_order() {
        let mut assembler = SubpackageAssembler::new(SubpackageLimits::default());
        let now = Instant::now();
        assert_eq!(
            assembler.push(subpackage_part(12, 3, 3, b"ef"), now),
            Ok(SubpackageOutcome::Incomplete)
        );
        assert_eq!(
            assembler.push(subpackage_part(10, 3, 1, b"ab"), now),
            Ok(SubpackageOutcome::Incomplete)
        );
        let Ok(SubpackageOutcome::Complete(whole)) =
            assembler.push(subpackage_part(11, 3, 2, b"cd"), now)
        else {
            panic!("not complete")
        };
        assert_eq!(&whole.body[..], b"abcdef");
        assert_eq!(whole.header.serial, 10);
        assert_eq!(whole.header.subpackage, None);
        assert_eq!(assembler.pending(), 0);
    }

    #[test]
    fn subpackages_older_than_the_age_limit_are_dropped() {
        let limits = SubpackageLimits {
            max_age: Duration::from_secs(5),
            ..SubpackageLimits::default()
        };
        let mut assembler = SubpackageAssembler::new(limits);
        let start = Instant::now();
        assert_eq!(
            assembler.push(subpackage_part(10, 2, 1, b"ab"), start),
            Ok(SubpackageOutcome::Incomplete)
        );
        let later = start + Duration::from_secs(6);
        assert_eq!(
            assembler.push(subpackage_part(11, 2, 2, b"cd"), later),
            Ok(SubpackageOutcome::Incomplete)
        );
        assert_eq!(assembler.dropped(), 1);
        assert_eq!(assembler.pending(), 1);
    }

    #[test]
    fn pending_subpackages_are_bounded_by_evicting_the_oldest() {
        let limits = SubpackageLimits {
            max_pending: 2,
            ..SubpackageLimits::default()
        };
        let mut assembler = SubpackageAssembler::new(limits);
        let now = Instant::now();
        for first_serial in [100, 200, 300] {
            assert_eq!(
                assembler.push(subpackage_part(first_serial, 2, 1, b"x"), now),
                Ok(SubpackageOutcome::Incomplete)
            );
        }
        assert_eq!(assembler.pending(), 2);
        assert_eq!(assembler.dropped(), 1);
    }

    #[test]
    fn a_part_index_outside_its_total_is_refused_not_a_panic() {
        let mut assembler = SubpackageAssembler::new(SubpackageLimits::default());
        for (total, index) in [(2, 3), (2, 0), (0, 0)] {
            assert_eq!(
                assembler.push(subpackage_part(1, total, index, b"x"), Instant::now()),
                Err(SubpackageError::InvalidIndex { total, index })
            );
        }
    }

    #[test]
    fn a_package_announcing_too_many_parts_is_refused() {
        let mut assembler = SubpackageAssembler::new(SubpackageLimits::default());
        assert_eq!(
            assembler.push(subpackage_part(1, 1000, 1, b"x"), Instant::now()),
            Err(SubpackageError::TooManyParts {
                total: 1000,
                limit: 16
            })
        );
    }
}
