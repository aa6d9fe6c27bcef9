//! What the stream splitters of the binary codecs (JT/T 808 and GT06) hand on: one frame,
//! or bytes they dropped and why. The shape is the same for both; the reasons are not
//! (only JT/T 808 has escaping to get wrong), so each codec keeps its own `SkipReason`
//! and names this type with it filled in: `jt808::codec::SplitItem` and
//! `gt06::codec::SplitItem`.

use bytes::Bytes;

/// What a splitter produced from the stream, `R` being its codec's skip reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitItem<R> {
    /// One frame, as the codec's splitter delimits it: for JT/T 808 unescaped with the
    /// delimiters removed, for GT06 whole with its start and stop markers.
    Frame(Bytes),
    /// Bytes that were dropped, and why. Reported so the connection can log and count.
    Skipped {
        /// Why.
        reason: R,
        /// How many wire bytes.
        bytes: usize,
    },
}
