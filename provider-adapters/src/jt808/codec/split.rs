//! Layer 1: the TCP byte stream into frames. [`Jt808Codec`] splits on `0x7e` delimiters
//! and undoes the escaping; [`escape_into`] and [`unescape`] are the escaping both ways
//! (`0x7e` ↔ `0x7d 0x02`, `0x7d` ↔ `0x7d 0x01`). Bytes outside frames, oversize frames,
//! bad escapes and a stream cut inside a frame come out as [`SkipReason`]s, and the
//! splitter never leaves more than [`MAX_BUFFERED`] bytes in its buffer.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::frame::MAX_FRAME_LEN;
use crate::framing;

/// Frame delimiter.
pub const DELIMITER: u8 = 0x7e;
/// Escape byte.
pub const ESCAPE: u8 = 0x7d;
/// Largest escaped frame between delimiters: every byte may be escaped into two.
pub const MAX_ESCAPED_FRAME_LEN: usize = 2 * MAX_FRAME_LEN;
/// The most bytes [`Jt808Codec`] leaves buffered after any `decode` call.
pub const MAX_BUFFERED: usize = MAX_ESCAPED_FRAME_LEN + 1;

// ---------------------------------------------------------------------------------------
// Escaping
// ---------------------------------------------------------------------------------------

/// Appends `frame` to `out` escaped and wrapped in delimiters.
///
/// ```
/// use provider_adapters::jt808::codec::escape_into;
/// let mut wire = bytes::BytesMut::new();
/// escape_into(&[0x30, 0x7e, 0x08, 0x7d, 0x55], &mut wire);
/// assert_eq!(&wire[..], &[0x7e, 0x30, 0x7d, 0x02, 0x08, 0x7d, 0x01, 0x55, 0x7e]);
/// ```
pub fn escape_into(frame: &[u8], out: &mut BytesMut) {
    out.reserve(frame.len() + 2 + frame.len() / 8);
    out.put_u8(DELIMITER);
    for &byte in frame {
        match byte {
            DELIMITER => out.put_slice(&[ESCAPE, 0x02]),
            ESCAPE => out.put_slice(&[ESCAPE, 0x01]),
            other => out.put_u8(other),
        }
    }
    out.put_u8(DELIMITER);
}

/// A `0x7d` not followed by `0x01` or `0x02`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid escape sequence at offset {offset}")]
pub struct InvalidEscape {
    /// Offset of the `0x7d` in the escaped input.
    pub offset: usize,
}

/// Undoes the escaping of the bytes between two delimiters.
///
/// ```
/// use provider_adapters::jt808::codec::unescape;
/// assert_eq!(unescape(&[0x30, 0x7d, 0x02, 0x08, 0x7d, 0x01, 0x55]).unwrap(), vec![0x30, 0x7e, 0x08, 0x7d, 0x55]);
/// assert!(unescape(&[0x7d, 0x03]).is_err());
/// ```
pub fn unescape(escaped: &[u8]) -> Result<Vec<u8>, InvalidEscape> {
    let mut frame = Vec::with_capacity(escaped.len());
    let mut bytes = escaped.iter().enumerate();
    while let Some((offset, &byte)) = bytes.next() {
        if byte != ESCAPE {
            frame.push(byte);
            continue;
        }
        match bytes.next() {
            Some((_, 0x01)) => frame.push(ESCAPE),
            Some((_, 0x02)) => frame.push(DELIMITER),
            _ => return Err(InvalidEscape { offset }),
        }
    }
    Ok(frame)
}

// ---------------------------------------------------------------------------------------
// Splitter
// ---------------------------------------------------------------------------------------

/// Why the splitter skipped bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// Bytes outside any frame.
    Garbage,
    /// A frame longer than [`MAX_ESCAPED_FRAME_LEN`]; dropped and resynchronised.
    OversizeFrame,
    /// A frame with a `0x7d` not followed by `0x01`/`0x02`.
    InvalidEscape,
    /// The stream ended inside a frame.
    Truncated,
}

impl SkipReason {
    /// The `reason` label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Garbage => "garbage",
            SkipReason::OversizeFrame => "oversize_frame",
            SkipReason::InvalidEscape => "invalid_escape",
            SkipReason::Truncated => "truncated",
        }
    }
}

/// What the splitter produced from the stream: a [`Frame`](framing::SplitItem::Frame) is
/// one unescaped frame, delimiters removed (header, body and check code); bytes
/// [`Skipped`](framing::SplitItem::Skipped) were dropped, and why, reported so the
/// connection can log and count.
pub type SplitItem = framing::SplitItem<SkipReason>;

/// `tokio_util` codec for JT/T 808: splits and unescapes incoming frames, escapes and
/// delimits outgoing [`OutboundMessage`](super::OutboundMessage)s.
///
/// ```
/// use bytes::BytesMut;
/// use provider_adapters::jt808::codec::{Jt808Codec, SplitItem, SkipReason};
/// use tokio_util::codec::Decoder;
///
/// let mut codec = Jt808Codec::default();
/// let mut wire = BytesMut::from(&[0x24, 0x24, 0x7e, 0x30, 0x7d, 0x02, 0x08, 0x7e][..]);
/// assert_eq!(codec.decode(&mut wire).unwrap(), Some(SplitItem::Skipped { reason: SkipReason::Garbage, bytes: 2 }));
/// assert_eq!(codec.decode(&mut wire).unwrap(), Some(SplitItem::Frame(bytes::Bytes::from_static(&[0x30, 0x7e, 0x08]))));
/// ```
#[derive(Debug, Default)]
pub struct Jt808Codec {
    /// Inside an oversize frame that was already reported: drop bytes up to the next 0x7e.
    discarding: bool,
    /// Content bytes after the opening delimiter at `src[0]` already searched for the
    /// closing one, so a frame trickling in byte by byte is scanned once, not once per read.
    scanned: usize,
}

impl Decoder for Jt808Codec {
    type Item = SplitItem;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<SplitItem>, std::io::Error> {
        loop {
            if self.discarding {
                self.scanned = 0;
                match src.iter().position(|&byte| byte == DELIMITER) {
                    Some(end) => {
                        src.advance(end);
                        self.discarding = false;
                    }
                    None => {
                        src.clear();
                        return Ok(None);
                    }
                }
            }
            match src.iter().position(|&byte| byte == DELIMITER) {
                None if src.is_empty() => return Ok(None),
                None => {
                    let bytes = src.len();
                    src.clear();
                    self.scanned = 0;
                    return Ok(Some(SplitItem::Skipped {
                        reason: SkipReason::Garbage,
                        bytes,
                    }));
                }
                Some(start) if start > 0 => {
                    src.advance(start);
                    self.scanned = 0;
                    return Ok(Some(SplitItem::Skipped {
                        reason: SkipReason::Garbage,
                        bytes: start,
                    }));
                }
                Some(_) => {}
            }
            // src[0] is a delimiter. The closing delimiter is left in the buffer as the
            // next frame's opening one: garbage between "7e…7e" pairs then costs one
            // refused frame, not the valid frame that follows it.
            let from = 1 + self.scanned.min(src.len() - 1);
            let closing = src[from..]
                .iter()
                .position(|&byte| byte == DELIMITER)
                .map(|offset| from - 1 + offset);
            match closing {
                Some(0) => {
                    src.advance(1);
                    self.scanned = 0;
                    continue;
                }
                Some(content_len) if content_len > MAX_ESCAPED_FRAME_LEN => {
                    src.advance(1 + content_len);
                    self.scanned = 0;
                    return Ok(Some(SplitItem::Skipped {
                        reason: SkipReason::OversizeFrame,
                        bytes: 1 + content_len,
                    }));
                }
                Some(content_len) => {
                    let wire = src.split_to(1 + content_len);
                    self.scanned = 0;
                    return Ok(Some(match unescape(&wire[1..]) {
                        Ok(frame) => SplitItem::Frame(Bytes::from(frame)),
                        Err(_) => SplitItem::Skipped {
                            reason: SkipReason::InvalidEscape,
                            bytes: wire.len(),
                        },
                    }));
                }
                None if src.len() > MAX_BUFFERED => {
                    let bytes = src.len();
                    src.clear();
                    self.scanned = 0;
                    self.discarding = true;
                    return Ok(Some(SplitItem::Skipped {
                        reason: SkipReason::OversizeFrame,
                        bytes,
                    }));
                }
                None => {
                    self.scanned = src.len() - 1;
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<SplitItem>, std::io::Error> {
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        // The closing delimiter of the last frame stays buffered as a possible opening
        // one; at the end of the stream it is just that, not a truncated frame.
        if src.iter().all(|&byte| byte == DELIMITER) {
            src.clear();
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

    fn split_all(codec: &mut Jt808Codec, wire: &[u8]) -> Vec<SplitItem> {
        let mut buffer = BytesMut::from(wire);
        let mut items = Vec::new();
        while let Ok(Some(item)) = codec.decode(&mut buffer) {
            items.push(item);
        }
        items
    }

    fn frames(items: &[SplitItem]) -> Vec<Vec<u8>> {
        items
            .iter()
            .filter_map(|item| match item {
                SplitItem::Frame(frame) => Some(frame.to_vec()),
                SplitItem::Skipped { .. } => None,
            })
            .collect()
    }

    #[test]
    fn frames_split_on_delimiters_and_unescape() {
        let mut codec = Jt808Codec::default();
        let items = split_all(
            &mut codec,
            &[0x7e, 0x30, 0x7d, 0x02, 0x08, 0x7d, 0x01, 0x55, 0x7e],
        );
        assert_eq!(frames(&items), vec![vec![0x30, 0x7e, 0x08, 0x7d, 0x55]]);
    }

    #[test]
    fn back_to_back_frames_sharing_no_delimiter_both_come_out() {
        let mut codec = Jt808Codec::default();
        let items = split_all(&mut codec, &[0x7e, 0x01, 0x7e, 0x7e, 0x02, 0x7e]);
        assert_eq!(frames(&items), vec![vec![0x01], vec![0x02]]);
    }

    #[test]
    fn garbage_before_a_frame_is_skipped_and_reported() {
        let mut codec = Jt808Codec::default();
        let items = split_all(&mut codec, &[0x24, 0x24, 0x7e, 0x01, 0x7e]);
        assert_eq!(
            items[0],
            SplitItem::Skipped {
                reason: SkipReason::Garbage,
                bytes: 2
            }
        );
        assert_eq!(frames(&items), vec![vec![0x01]]);
    }

    #[test]
    fn a_frame_split_across_reads_waits_for_its_closing_delimiter() {
        let mut codec = Jt808Codec::default();
        let mut buffer = BytesMut::from(&[0x7e, 0x01, 0x02][..]);
        assert_eq!(codec.decode(&mut buffer).ok(), Some(None));
        buffer.extend_from_slice(&[0x03, 0x7e]);
        assert_eq!(
            codec.decode(&mut buffer).ok(),
            Some(Some(SplitItem::Frame(Bytes::from_static(&[1, 2, 3]))))
        );
    }

    #[test]
    fn an_oversize_frame_is_dropped_and_the_next_frame_still_decodes() {
        let mut codec = Jt808Codec::default();
        let mut buffer = BytesMut::new();
        buffer.extend_from_slice(&[0x7e]);
        buffer.extend_from_slice(&vec![0x11; MAX_BUFFERED + 10]);
        let first = codec.decode(&mut buffer).ok().flatten();
        assert!(matches!(
            first,
            Some(SplitItem::Skipped {
                reason: SkipReason::OversizeFrame,
                ..
            })
        ));
        assert!(buffer.len() <= MAX_BUFFERED);
        // The rest of the oversize frame, its end, then a good frame.
        buffer.extend_from_slice(&[0x11, 0x11, 0x7e, 0x7e, 0x05, 0x7e]);
        let mut rest = Vec::new();
        while let Ok(Some(item)) = codec.decode(&mut buffer) {
            rest.push(item);
        }
        assert_eq!(frames(&rest), vec![vec![0x05]]);
    }

    #[test]
    fn an_invalid_escape_drops_only_that_frame() {
        let mut codec = Jt808Codec::default();
        let items = split_all(&mut codec, &[0x7e, 0x7d, 0x05, 0x7e, 0x09, 0x7e]);
        assert_eq!(
            items[0],
            SplitItem::Skipped {
                reason: SkipReason::InvalidEscape,
                bytes: 3
            }
        );
        assert_eq!(frames(&items), vec![vec![0x09]]);
    }

    #[test]
    fn end_of_stream_right_after_a_frame_is_not_a_truncation() {
        let mut codec = Jt808Codec::default();
        let mut buffer = BytesMut::from(&[0x7e, 0x01, 0x7e][..]);
        assert!(matches!(
            codec.decode_eof(&mut buffer),
            Ok(Some(SplitItem::Frame(_)))
        ));
        assert_eq!(codec.decode_eof(&mut buffer).ok(), Some(None));
    }

    #[test]
    fn end_of_stream_inside_a_frame_is_reported_as_truncated() {
        let mut codec = Jt808Codec::default();
        let mut buffer = BytesMut::from(&[0x7e, 0x01][..]);
        assert_eq!(
            codec.decode_eof(&mut buffer).ok().flatten(),
            Some(SplitItem::Skipped {
                reason: SkipReason::Truncated,
                bytes: 2
            })
        );
    }
}
