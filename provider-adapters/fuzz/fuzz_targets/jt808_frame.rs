//! Arbitrary bytes through the JT/T 808 splitter (in reads of a size the input chooses),
//! the frame parser, the body decoder and a session: no panic, bounded buffer.
#![no_main]

use std::time::Instant;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use provider_adapters::ChecksumPolicy;
use provider_adapters::jt808::codec::{self, Jt808Codec, SplitItem, SubpackageLimits};
use provider_adapters::jt808::{AuthSecret, Jt808Session};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&read_size, wire)) = data.split_first() else {
        return;
    };
    let read_size = usize::from(read_size).max(1) * 16;
    let mut splitter = Jt808Codec::default();
    let mut session = Jt808Session::new(
        AuthSecret::new(b"fuzz".to_vec()),
        ChecksumPolicy::Ignore,
        SubpackageLimits::default(),
    );
    let mut buffer = BytesMut::new();
    for chunk in wire.chunks(read_size) {
        buffer.extend_from_slice(chunk);
        while let Ok(Some(item)) = splitter.decode(&mut buffer) {
            if let SplitItem::Frame(frame) = item {
                if let Ok(parsed) = codec::parse_frame(&frame, ChecksumPolicy::Verify) {
                    let _ = codec::decode_body(&parsed);
                }
                let _ = session.on_frame(&frame, Instant::now());
            }
        }
        assert!(buffer.len() <= codec::MAX_BUFFERED);
    }
    while let Ok(Some(_)) = splitter.decode_eof(&mut buffer) {}
});
