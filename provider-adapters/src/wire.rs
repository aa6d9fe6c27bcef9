//! Bounds-checked reading of big-endian binary bodies, shared by the binary codecs.
//!
//! Every read returns `None` past the end instead of panicking, so a decoder written with
//! `?` cannot index out of bounds on a short or lying frame. [`field`] names the field a
//! read ran out in; each codec's `BodyError` turns that into its `Truncated` variant.

/// A cursor over a byte slice; every read is checked.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    pub(crate) fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if count > self.bytes.len() {
            return None;
        }
        let (head, tail) = self.bytes.split_at(count);
        self.bytes = tail;
        Some(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn skip(&mut self, count: usize) -> Option<()> {
        self.take(count).map(|_| ())
    }
}

/// A required field that the body ends before. Each codec's `BodyError` converts it
/// (`From`) into its own `Truncated { field }`, so `field(reader.u16(), "name")?` reads
/// the same in both codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MissingField(pub(crate) &'static str);

/// `value`, or [`MissingField`] naming `name` when the read ran past the end.
pub(crate) fn field<T>(value: Option<T>, name: &'static str) -> Result<T, MissingField> {
    value.ok_or(MissingField(name))
}

/// One packed-BCD byte as a number 0..=99, or `None` if a nibble is above 9.
pub(crate) fn bcd_byte(byte: u8) -> Option<u32> {
    let high = u32::from(byte >> 4);
    let low = u32::from(byte & 0x0f);
    (high < 10 && low < 10).then_some(high * 10 + low)
}

/// Lowercase hex of `bytes`; for packed BCD this is exactly the decimal digits.
pub(crate) fn hex_digits(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Text fields padded with NULs or spaces, decoded as GBK (a superset of ASCII), trimmed.
pub(crate) fn gbk_text(bytes: &[u8]) -> String {
    let unpadded = match bytes.iter().position(|&byte| byte == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    };
    let (text, _had_errors) = encoding_rs::GBK.decode_without_bom_handling(unpadded);
    text.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_return_none_instead_of_panicking() {
        let mut reader = Reader::new(&[0x01, 0x02, 0x03]);
        assert_eq!(reader.u16(), Some(0x0102));
        assert_eq!(reader.u16(), None);
        assert_eq!(reader.u8(), Some(0x03));
        assert_eq!(reader.u8(), None);
        assert_eq!(reader.take(usize::MAX), None);
    }

    #[test]
    fn bcd_bytes_with_a_nibble_above_nine_are_refused() {
        assert_eq!(bcd_byte(0x59), Some(59));
        assert_eq!(bcd_byte(0x5a), None);
        assert_eq!(bcd_byte(0xa5), None);
    }

    #[test]
    fn gbk_plates_decode_to_chinese_characters() {
        // "沪A12345" in GBK, NUL padded as terminals send it.
        let plate = [0xbb, 0xa6, b'A', b'1', b'2', b'3', b'4', b'5', 0, 0];
        assert_eq!(gbk_text(&plate), "沪A12345");
    }
}
