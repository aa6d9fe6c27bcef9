//! The TCP byte stream into whole frames. [`Gt06Codec`] finds a frame by its start marker
//! and declared length, falls back to the first stop marker when the declared end is not
//! one, reports bytes it drops as [`SkipReason`]s, and never leaves more than
//! [`MAX_BUFFERED`] bytes in its buffer.

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

use super::frame::{START_EXTENDED, START_SHORT, STOP};
use crate::framing;

/// Largest frame the splitter accepts, markers included.
pub const MAX_FRAME_LEN: usize = 2048;
/// The most bytes [`Gt06Codec`] leaves buffered after any `decode` call.
pub const MAX_BUFFERED: usize = MAX_FRAME_LEN;

/// Why the splitter skipped bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// Bytes before a start marker.
    Garbage,
    /// A frame longer than [`MAX_FRAME_LEN`], or no stop marker within it.
    OversizeFrame,
    /// The stream ended inside a frame.
    Truncated,
}

impl SkipReason {
    /// The `reason` label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Garbage => "garbage",
            SkipReason::OversizeFrame => "oversize_frame",
            SkipReason::Truncated => "truncated",
        }
    }
}

/// What the splitter produced from the stream: a [`Frame`](framing::SplitItem::Frame) is
/// one whole frame, start and stop markers included; bytes
/// [`Skipped`](framing::SplitItem::Skipped) were dropped, and why.
pub type SplitItem = framing::SplitItem<SkipReason>;

/// `tokio_util` codec for GT06: splits incoming frames, encodes [`Gt06Reply`](super::Gt06Reply)s.
///
/// ```
/// use bytes::BytesMut;
/// use provider_adapters::gt06::codec::{Gt06Codec, SplitItem};
/// use tokio_util::codec::Decoder;
///
/// let login = hex::decode("78780d01086471700328358100093f040d0a").unwrap();
/// let mut wire = BytesMut::from(&login[..]);
/// let item = Gt06Codec::default().decode(&mut wire).unwrap();
/// assert_eq!(item, Some(SplitItem::Frame(login.into())));
/// ```
#[derive(Debug, Default)]
pub struct Gt06Codec {
    /// Leading buffered bytes known to hold no stop marker, so that neither a frame
    /// trickling in nor garbage full of start markers is scanned over and over.
    stop_free: usize,
}

fn find_start(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(2)
        .position(|pair| pair == START_SHORT || pair == START_EXTENDED)
}

impl Gt06Codec {
    /// The first stop marker at or after `from`, remembering how far there was none.
    fn find_stop(&mut self, bytes: &[u8], from: usize) -> Option<usize> {
        let start = from.max(self.stop_free);
        let found = bytes
            .get(start..)?
            .windows(2)
            .position(|pair| pair == STOP)
            .map(|offset| start + offset);
        if found.is_none() {
            // The last byte may be the 0x0d of a marker completed by the next read.
            self.stop_free = bytes.len().saturating_sub(1);
        }
        found
    }

    fn skip(&mut self, src: &mut BytesMut, reason: SkipReason, bytes: usize) -> Option<SplitItem> {
        src.advance(bytes);
        self.stop_free = self.stop_free.saturating_sub(bytes);
        Some(SplitItem::Skipped { reason, bytes })
    }

    fn frame(&mut self, src: &mut BytesMut, len: usize) -> Option<SplitItem> {
        self.stop_free = 0;
        Some(SplitItem::Frame(src.split_to(len).freeze()))
    }
}

impl Decoder for Gt06Codec {
    type Item = SplitItem;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<SplitItem>, std::io::Error> {
        match find_start(src) {
            Some(0) => {}
            Some(start) => return Ok(self.skip(src, SkipReason::Garbage, start)),
            None => {
                // Keep a last byte that may be the first half of a start marker.
                let keep = usize::from(matches!(src.last(), Some(0x78 | 0x79)));
                let garbage = src.len() - keep;
                if garbage == 0 {
                    return Ok(None);
                }
                return Ok(self.skip(src, SkipReason::Garbage, garbage));
            }
        }

        let extended = src[..2] == START_EXTENDED;
        let declared_len = if extended {
            match src.get(2..4) {
                Some(&[high, low]) => usize::from(u16::from_be_bytes([high, low])),
                _ => return Ok(None),
            }
        } else {
            match src.get(2) {
                Some(&len) => usize::from(len),
                None => return Ok(None),
            }
        };
        let declared_total = declared_len + if extended { 6 } else { 5 };
        if declared_total > MAX_FRAME_LEN {
            // Drop the start marker only: the next real frame may begin inside what the
            // bogus length claimed.
            return Ok(self.skip(src, SkipReason::OversizeFrame, 2));
        }
        if src.len() >= declared_total && src[declared_total - 2..declared_total] == STOP {
            return Ok(self.frame(src, declared_total));
        }
        // The declared end is not a stop marker (or not here yet): cut at the first stop
        // marker after the protocol number, as firmwares that declare a wrong length
        // exist in the field. A frame still in transit that happens to contain 0x0d 0x0a
        // would be cut short here; it then fails its length check and only that frame is
        // lost, whereas waiting for a too-long declared length would stall a device that
        // waits for the ack of its login.
        match self.find_stop(src, 4) {
            Some(stop) if stop + 2 <= MAX_FRAME_LEN => Ok(self.frame(src, stop + 2)),
            Some(_) => Ok(self.skip(src, SkipReason::OversizeFrame, 2)),
            None if src.len() >= MAX_BUFFERED => Ok(self.skip(src, SkipReason::OversizeFrame, 2)),
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<SplitItem>, std::io::Error> {
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        if src.is_empty() {
            return Ok(None);
        }
        let bytes = src.len();
        src.clear();
        Ok(Some(SplitItem::Skipped {
            reason: SkipReason::Truncated,
            bytes,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gt06::codec::test_frames::frame;

    fn split_all(wire: &[u8]) -> Vec<SplitItem> {
        let mut codec = Gt06Codec::default();
        let mut buffer = BytesMut::from(wire);
        let mut items = Vec::new();
        while let Ok(Some(item)) = codec.decode(&mut buffer) {
            items.push(item);
        }
        items
    }

    #[test]
    fn garbage_between_frames_is_skipped_and_both_frames_come_out() {
        let first = frame(0x13, &[1, 2, 3, 4, 5], 1);
        let second = frame(0x23, &[1], 2);
        let mut wire = vec![0x00, 0x78, 0x11];
        wire.extend_from_slice(&first);
        wire.extend_from_slice(b"junk");
        wire.extend_from_slice(&second);
        let items = split_all(&wire);
        let frames: Vec<_> = items
            .iter()
            .filter(|item| matches!(item, SplitItem::Frame(_)))
            .collect();
        assert_eq!(
            frames,
            vec![
                &SplitItem::Frame(first.into()),
                &SplitItem::Frame(second.into())
            ]
        );
        assert_eq!(
            items[0],
            SplitItem::Skipped {
                reason: SkipReason::Garbage,
                bytes: 3
            }
        );
    }

    #[test]
    fn a_frame_arriving_in_pieces_waits_for_its_end() {
        let raw = frame(0x13, &[1, 2, 3, 4, 5], 1);
        let mut codec = Gt06Codec::default();
        let mut buffer = BytesMut::from(&raw[..7]);
        assert_eq!(codec.decode(&mut buffer).ok(), Some(None));
        buffer.extend_from_slice(&raw[7..]);
        assert_eq!(
            codec.decode(&mut buffer).ok(),
            Some(Some(SplitItem::Frame(raw.into())))
        );
    }

    #[test]
    fn an_extended_frame_claiming_more_than_the_bound_is_dropped_and_resynchronised() {
        let good = frame(0x13, &[1, 2, 3, 4, 5], 1);
        let mut wire = vec![0x79, 0x79, 0xff, 0xff, 0x01];
        wire.extend_from_slice(&good);
        let items = split_all(&wire);
        assert_eq!(
            items[0],
            SplitItem::Skipped {
                reason: SkipReason::OversizeFrame,
                bytes: 2
            }
        );
        assert!(items.contains(&SplitItem::Frame(good.into())));
    }

    #[test]
    fn a_start_marker_never_followed_by_a_stop_marker_cannot_grow_the_buffer_past_the_bound() {
        let mut codec = Gt06Codec::default();
        let mut buffer = BytesMut::from(&[0x78, 0x78, 0x00, 0x69][..]);
        for _ in 0..10 {
            buffer.extend_from_slice(&[0x55; 1000]);
            while let Ok(Some(_)) = codec.decode(&mut buffer) {}
            assert!(buffer.len() <= MAX_BUFFERED);
        }
    }
}
