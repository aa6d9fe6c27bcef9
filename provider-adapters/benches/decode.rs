//! Decode cost per frame: splitter + frame parser + body decoder + conversion to a
//! `DevicePosition`, for a JT/T 808 0x0200 location and a GT06 0x12 location, singly and
//! as a stream of 1,000 back-to-back frames (as one busy connection's reads would carry).
//!
//! `cargo bench -p provider-adapters --bench decode`

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use provider_adapters::ChecksumPolicy;
use provider_adapters::gt06::codec::{self as gt06, Gt06Codec, Gt06Message};
use provider_adapters::jt808::codec::{self as jt808, Jt808Codec, Jt808Message};
use tokio_util::codec::Decoder;

/// A 0x0200 location with additional information items, from the Traccar corpus
/// (jt808.jsonl line 108), as escaped on the wire.
const JT808_LOCATION: &str = "7e020000df014164192753002900000000000000000158a32106ca167c00000000000024111514594501040000000030011f310100320200a2330103ebae000c00b28986012184236189583200060089ffffffff000600c5fffffff70004002d0f0c000300a83c001100d5383637333139303736333637313439007000b90535343a42313a32313a36363a43393a45322c2d35302c35343a42313a32313a36363a43393a45302c2d35312c35433a42303a30413a32433a41443a37302c2d35322c35433a42303a30413a39303a36433a32442c2d36332c32453a37303a34463a33303a46313a34452c2d37342a7e";

/// A 0x12 location from the Traccar corpus (gt06.jsonl line 489).
const GT06_LOCATION: &str =
    "78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a";

fn decode_jt808(codec: &mut Jt808Codec, buffer: &mut BytesMut) -> usize {
    let mut positions = 0;
    while let Ok(Some(item)) = codec.decode(buffer) {
        let jt808::SplitItem::Frame(frame) = item else {
            continue;
        };
        let Ok(parsed) = jt808::parse_frame(&frame, ChecksumPolicy::Verify) else {
            continue;
        };
        if let Ok(Jt808Message::Location(report)) = jt808::decode_body(&parsed) {
            black_box(report.to_position(&parsed.header.phone.device_id()));
            positions += 1;
        }
    }
    positions
}

fn decode_gt06(codec: &mut Gt06Codec, buffer: &mut BytesMut) -> usize {
    let mut positions = 0;
    while let Ok(Some(item)) = codec.decode(buffer) {
        let gt06::SplitItem::Frame(frame) = item else {
            continue;
        };
        let Ok(parsed) = gt06::parse_frame(&frame, ChecksumPolicy::Verify) else {
            continue;
        };
        if let Ok(Gt06Message::Location(fix)) = gt06::decode_body(&parsed) {
            black_box(fix.to_position("864717003283581", 0));
            positions += 1;
        }
    }
    positions
}

fn wire(hex_frame: &str, copies: usize) -> Bytes {
    let frame = hex::decode(hex_frame).unwrap_or_default();
    Bytes::from(frame.repeat(copies))
}

fn benches(criterion: &mut Criterion) {
    let jt808_one = wire(JT808_LOCATION, 1);
    let gt06_one = wire(GT06_LOCATION, 1);
    assert_eq!(
        decode_jt808(
            &mut Jt808Codec::default(),
            &mut BytesMut::from(&jt808_one[..])
        ),
        1
    );
    assert_eq!(
        decode_gt06(
            &mut Gt06Codec::default(),
            &mut BytesMut::from(&gt06_one[..])
        ),
        1
    );

    let mut group = criterion.benchmark_group("decode_one_frame");
    group.throughput(Throughput::Elements(1));
    group.bench_function("jt808_0x0200", |bencher| {
        bencher.iter(|| {
            decode_jt808(
                &mut Jt808Codec::default(),
                &mut BytesMut::from(&jt808_one[..]),
            )
        })
    });
    group.bench_function("gt06_0x12", |bencher| {
        bencher.iter(|| {
            decode_gt06(
                &mut Gt06Codec::default(),
                &mut BytesMut::from(&gt06_one[..]),
            )
        })
    });
    group.finish();

    let jt808_stream = wire(JT808_LOCATION, 1000);
    let gt06_stream = wire(GT06_LOCATION, 1000);
    let mut group = criterion.benchmark_group("decode_stream_of_1000_frames");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("jt808_0x0200", |bencher| {
        bencher.iter(|| {
            decode_jt808(
                &mut Jt808Codec::default(),
                &mut BytesMut::from(&jt808_stream[..]),
            )
        })
    });
    group.bench_function("gt06_0x12", |bencher| {
        bencher.iter(|| {
            decode_gt06(
                &mut Gt06Codec::default(),
                &mut BytesMut::from(&gt06_stream[..]),
            )
        })
    });
    group.finish();
}

criterion_group!(decode, benches);
criterion_main!(decode);
