//! Every sample of the Traccar corpus (see `tests/fixtures/README.md`) through the
//! matching decoder.
//!
//! Guaranteed for every sample: no panic; every position produced has in-range coordinates
//! and a time between 2000 and now, and agrees with the sample's `expected` values where it
//! states any (GT06 line 489 does); no `verifyNull` sample yields a position; the JT/T 808
//! wire bytes split into exactly the frame Traccar decoded; the `*_frames` samples split
//! into the stated frames. What each sample *does* is pinned, row by row with its corpus
//! lines, by `JT808_TABLE`, `GT06_TABLE` and `OSMAND_TABLE` below (run with `--nocapture`
//! to print them). In summary, with the default `ChecksumPolicy::Verify`:
//!
//! | protocol | assertion | samples | position | no position: message carries no fix | refused, and why |
//! |---|---|---|---|---|---|
//! | JT/T 808 | verifyPosition | 23 | 20 (incl. vendor 0x5501 ×1, 0x5502 ×2, 0x0900 type 0xF0 ×2) | | 3 check code (142, 232, 328) |
//! | JT/T 808 | verifyPositions | 4 | 4 (3 × 0x0704, 1 × vendor 0x0210 with 8 items) | | |
//! | JT/T 808 | verifyNull | 12 | 0 | 10 (register, authenticate, heartbeat) | 1 unsupported 0x1007; 1 vendor text, not a frame |
//! | JT/T 808 | verifyNotNull | 3 | 2 | | 1 unsupported 0x2070 |
//! | JT/T 808 | verifyAttribute(s) | 71 | 58 | 4 answered "unsupported": 0x0900 driver-card text, OBD text, sensor tags with zero coordinates; 0x0210 of 7 bytes (battery, time) | 2 check code (409, 415); 1 body length ≠ header (425: 0x0900 declaring 122 bytes, carrying 107); 5 unsupported ids (0x0107, 0x0701, 0x0702, 0x1300, 0x6006); 1 vendor text |
//! | GT06 | verifyPosition | 36 | 33 (incl. GPS blocks in 0x24, 0x36, 0x38, 0xa2 ×2; 0x21 text; 0x70 module; QH302R 0x12) | | 1 CRC (496); 2 length ≠ frame (154: 3 bytes after the GPS block where serial and CRC need 4; 375: no serial or CRC at all) |
//! | GT06 | verifyNull | 18 | 0 | 13 (login, LBS, requests) | 1 CRC (526); 2 length; 1 malformed; 1 empty 0x12 body |
//! | GT06 | verifyNotNull | 41 | 9 | 20 (cell towers, Wi-Fi incl. 0x24 ×1 and 0xa2 ×4 without a GPS block, info) | 1 CRC (203); 11 length (Wi-Fi frames declaring length 0) |
//! | GT06 | verifyAttribute(s) | 92 | 24 | 54 | 9 CRC; 3 vendor layout (invalid time: 0x22 of NT20/XT40 with an IMEI and two times first, 0xa3 step counter); 1 malformed; 1 truncated |
//! | OsmAnd | verifyPosition | 12 | 12 (9 query, 3 JSON) | | |
//! | OsmAnd | verifyNull | 1 | 0 | | missing field id |
//! | OsmAnd | verifyNotNull | 1 | 0 | | missing field lat (cell/Wi-Fi only: no position is invented) |
//! | OsmAnd | verifyAttribute | 1 | 1 (the attribute, an app extra, is not carried) | | |
//!
//! Attributes `DevicePosition` carries are compared: JT/T 808 satellites match (2 of 2);
//! GT06 alarms match in 3 of 9 (the others are vendor variants or alarm codes outside the
//! Concox table); JT/T 808 alarms differ in all 9, because the corpus samples carry them
//! (wholly, or for line 224 partly) in vendor extension items, not in the standard alarm
//! word.
//!
//! Checksums: 5 JT/T 808 samples and 12 GT06 samples (16 by CRC alone; 4 of them are
//! refused first for their length) fail their own check and are refused; under
//! `ChecksumPolicy::Ignore` they decode (3 GT06 positions) and their positions are plausible.
//!
//! No position is ever made from cell towers or Wi-Fi access points: where Traccar's
//! `verifyPosition` is met by a network-location placeholder, this server stays silent.
//! The two GT06 `verifyPosition` samples refused for their length are hand-truncated
//! test messages (Traccar's decoder checks no CRC); without a CRC to verify, their bytes
//! are not accepted, and they are counted like CRC failures. `JT808_VENDOR_FIXES` and
//! `GT06_VENDOR_FIXES` pin the fix each newly decoded vendor sample carries.

use std::collections::BTreeMap;

use bytes::BytesMut;
use chrono::{Datelike, NaiveDateTime, Utc};
use provider_adapters::ChecksumPolicy;
use provider_adapters::DevicePosition;
use provider_adapters::gt06::codec::{self as gt06, Gt06Codec, Gt06Message};
use provider_adapters::jt808::codec::{self as jt808, Jt808Codec, Jt808Message};
use provider_adapters::osmand::{parse_json, parse_query};
use serde_json::Value;
use tokio_util::codec::Decoder;

fn samples(file: &str) -> Vec<Value> {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{path}: {error}")))
        .collect()
}

fn text<'a>(sample: &'a Value, key: &str) -> &'a str {
    sample.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn line(sample: &Value) -> u64 {
    sample
        .get("line")
        .and_then(Value::as_u64)
        .unwrap_or_default()
}

fn hex_bytes(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap_or_else(|error| panic!("bad hex in fixture: {error}"))
}

/// The verifyPosition checks Traccar makes, plus ours: in-range coordinates, a time
/// between 2000 and a day from now.
fn assert_plausible(position: &DevicePosition, context: &str) {
    assert!(
        (-90.0..=90.0).contains(&position.fix.position.lat()),
        "{context}: latitude {}",
        position.fix.position.lat()
    );
    assert!(
        (-180.0..=180.0).contains(&position.fix.position.lon()),
        "{context}: longitude {}",
        position.fix.position.lon()
    );
    assert!(
        position.fix.ts.year() >= 2000,
        "{context}: time {}",
        position.fix.ts
    );
    assert!(
        position.fix.ts < Utc::now() + chrono::TimeDelta::days(1),
        "{context}: time {}",
        position.fix.ts
    );
}

/// Tallies `(assertion, outcome)` pairs and compares them with the documented table.
#[derive(Default)]
struct Table(BTreeMap<(String, String), Vec<u64>>);

impl Table {
    fn add(&mut self, assertion: &str, outcome: impl Into<String>, line: u64) {
        self.0
            .entry((assertion.to_owned(), outcome.into()))
            .or_default()
            .push(line);
    }

    /// Prints the table (with sample lines, `--nocapture` shows it) and compares counts.
    fn assert_eq(&self, name: &str, expected: &[(&str, &str, usize)]) {
        let mut rendered =
            format!("{name}:\n| assertion | outcome | samples | lines |\n|---|---|---|---|\n");
        for ((assertion, outcome), lines) in &self.0 {
            rendered.push_str(&format!(
                "| {assertion} | {outcome} | {} | {lines:?} |\n",
                lines.len()
            ));
        }
        println!("{rendered}");
        let actual: BTreeMap<(String, String), usize> = self
            .0
            .iter()
            .map(|(key, lines)| (key.clone(), lines.len()))
            .collect();
        let expected: BTreeMap<(String, String), usize> = expected
            .iter()
            .map(|(assertion, outcome, count)| {
                ((assertion.to_string(), outcome.to_string()), *count)
            })
            .collect();
        assert_eq!(actual, expected, "{rendered}");
    }
}

// ---------------------------------------------------------------------------------------
// JT/T 808
// ---------------------------------------------------------------------------------------

/// What the JT/T 808 decoder makes of one sample's unescaped frame.
fn jt808_decode(
    frame_with_delimiters: &[u8],
    policy: ChecksumPolicy,
) -> Result<Vec<DevicePosition>, String> {
    let content = frame_with_delimiters
        .strip_prefix(&[jt808::DELIMITER])
        .and_then(|rest| rest.strip_suffix(&[jt808::DELIMITER]))
        .ok_or_else(|| "not a JT/T 808 frame".to_owned())?;
    let frame = jt808::parse_frame(content, policy)
        .map_err(|error| format!("refused: {}", error.reason()))?;
    let device_id = frame.header.phone.device_id();
    match jt808::decode_body(&frame).map_err(|error| format!("refused: {}", error.reason()))? {
        Jt808Message::Location(report) => Ok(vec![report.to_position(&device_id)]),
        Jt808Message::LocationBatch(batch) => Ok(batch
            .items
            .iter()
            .map(|item| item.to_position(&device_id))
            .collect()),
        Jt808Message::Unsupported { message_id } => {
            Err(format!("refused: unsupported message {message_id:#06x}"))
        }
        Jt808Message::Register(_) => Err("no position: register".to_owned()),
        Jt808Message::Authenticate(_) => Err("no position: authenticate".to_owned()),
        Jt808Message::Heartbeat => Err("no position: heartbeat".to_owned()),
        Jt808Message::Logout => Err("no position: logout".to_owned()),
        Jt808Message::TerminalResponse => Err("no position: terminal response".to_owned()),
    }
}

fn split_jt808(wire: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut codec = Jt808Codec::default();
    let mut buffer = BytesMut::from(wire);
    let mut frames = Vec::new();
    let mut skipped = 0;
    while let Ok(Some(item)) = codec.decode_eof(&mut buffer) {
        match item {
            jt808::SplitItem::Frame(frame) => frames.push(frame.to_vec()),
            jt808::SplitItem::Skipped { bytes, .. } => skipped += bytes,
        }
    }
    (frames, skipped)
}

/// Attribute checks possible with what `DevicePosition` carries.
fn attribute_outcome(sample: &Value, positions: &[DevicePosition]) -> String {
    let expected = &sample["expected"];
    let key = text(expected, "attribute_key");
    let value = &expected["attribute_value"];
    let Some(position) = positions.first() else {
        return "no position".to_owned();
    };
    let verdict = match key {
        "sat" => Some(value.as_u64() == position.satellites.map(u64::from)),
        "alarm" => Some(value.as_str() == position.alarm.as_deref()),
        _ => None,
    };
    match verdict {
        Some(true) => format!("position, {key} matches"),
        Some(false) => format!(
            "position, {key} differs ({:?} vs expected {value})",
            position_attribute(position, key)
        ),
        None => "position, attribute not carried".to_owned(),
    }
}

fn position_attribute(position: &DevicePosition, key: &str) -> Option<String> {
    match key {
        "sat" => position.satellites.map(|count| count.to_string()),
        "alarm" => position.alarm.clone(),
        _ => None,
    }
}

const JT808_TABLE: &[(&str, &str, usize)] = &[
    ("verifyAttribute", "not a JT/T 808 frame", 1),
    (
        "verifyAttribute",
        "position, alarm differs (None vs expected \"door\")",
        1,
    ),
    (
        "verifyAttribute",
        "position, alarm differs (None vs expected \"hardAcceleration\")",
        1,
    ),
    (
        "verifyAttribute",
        "position, alarm differs (None vs expected \"movement\")",
        1,
    ),
    (
        "verifyAttribute",
        "position, alarm differs (None vs expected \"removing\")",
        1,
    ),
    (
        "verifyAttribute",
        "position, alarm differs (None vs expected \"sos\")",
        1,
    ),
    (
        "verifyAttribute",
        "position, alarm differs (None vs expected \"tampering\")",
        1,
    ),
    (
        "verifyAttribute",
        "position, alarm differs (None vs expected \"vibration\")",
        2,
    ),
    (
        "verifyAttribute",
        "position, alarm differs (Some(\"lowBattery\") vs expected \"lowBattery,removing\")",
        1,
    ),
    ("verifyAttribute", "position, attribute not carried", 46),
    ("verifyAttribute", "position, sat matches", 2),
    ("verifyAttribute", "refused: body_length_mismatch", 1),
    ("verifyAttribute", "refused: checksum_mismatch", 2),
    ("verifyAttribute", "refused: unsupported message 0x0107", 1),
    ("verifyAttribute", "refused: unsupported message 0x0210", 1),
    ("verifyAttribute", "refused: unsupported message 0x0701", 1),
    ("verifyAttribute", "refused: unsupported message 0x0702", 1),
    ("verifyAttribute", "refused: unsupported message 0x0900", 3),
    ("verifyAttribute", "refused: unsupported message 0x1300", 1),
    ("verifyAttribute", "refused: unsupported message 0x6006", 1),
    ("verifyAttributes", "position", 1),
    ("verifyNotNull", "position", 1),
    ("verifyNotNull", "positions", 1),
    ("verifyNotNull", "refused: unsupported message 0x2070", 1),
    ("verifyNull", "no position: authenticate", 3),
    ("verifyNull", "no position: heartbeat", 1),
    ("verifyNull", "no position: register", 6),
    ("verifyNull", "not a JT/T 808 frame", 1),
    ("verifyNull", "refused: unsupported message 0x1007", 1),
    ("verifyPosition", "position", 20),
    ("verifyPosition", "refused: checksum_mismatch", 3),
    ("verifyPositions", "positions", 4),
];

#[test]
fn every_jt808_sample_decodes_as_the_table_says_and_never_panics() {
    let mut table = Table::default();
    for sample in samples("jt808.jsonl") {
        let context = format!("jt808.jsonl line {}", line(&sample));
        let assertion = text(&sample, "assertion");
        let raw = text(&sample, "raw");
        let outcome = if raw.starts_with('(') {
            // A vendor's text protocol sharing the port: the splitter must skip it.
            let (frames, skipped) = split_jt808(raw.as_bytes());
            assert!(frames.is_empty(), "{context}");
            assert_eq!(skipped, raw.len(), "{context}");
            Err("not a JT/T 808 frame".to_owned())
        } else {
            let unescaped = hex_bytes(raw);
            // The wire form must split into exactly the frame Traccar's decoder saw.
            let wire = hex_bytes(text(&sample, "wire_hex_escaped"));
            if !wire.is_empty() {
                let (frames, _) = split_jt808(&wire);
                assert_eq!(
                    frames,
                    vec![unescaped[1..unescaped.len() - 1].to_vec()],
                    "{context}: splitter"
                );
            }
            jt808_decode(&unescaped, ChecksumPolicy::Verify)
        };
        if let Ok(positions) = &outcome {
            for position in positions {
                assert_plausible(position, &context);
            }
        }
        if assertion == "verifyNull" {
            assert!(
                outcome.is_err(),
                "{context}: verifyNull sample produced a position"
            );
        }
        let label = match (&outcome, assertion) {
            (Ok(positions), "verifyAttribute") => attribute_outcome(&sample, positions),
            (Ok(positions), _) if positions.len() > 1 => "positions".to_owned(),
            (Ok(_), _) => "position".to_owned(),
            (Err(reason), _) => reason.clone(),
        };
        table.add(assertion, label, line(&sample));
    }
    table.assert_eq("jt808", JT808_TABLE);
}

/// The fixes the vendor-layout samples carry, worked out byte by byte from the corpus
/// (see the README of the fixtures): `(line, latitude, longitude, UTC time)`. The
/// corpus states no values for these, so they pin the layouts, not Traccar's output.
const JT808_VENDOR_FIXES: &[(u64, f64, f64, &str)] = &[
    // 0x5502 and 0x5501: BCD degrees and minutes, flags nibble, UTC time.
    (145, 22.581035, 113.91695, "2021-05-08T06:30:51Z"),
    (271, 6.22021, -75.60181, "2020-07-16T02:39:27Z"),
    (274, 22.5548, 113.926003, "2010-06-27T08:04:53Z"),
    // 0x0900 type 0xF0: status word, micro-degrees, message time in GMT+8.
    (187, 43.894156, -79.2728, "2023-02-23T07:02:15Z"),
    (218, 23.111772, 114.409784, "2022-04-27T22:10:09Z"),
    // 0x0210: the first of its eight 0x0200 items.
    (196, 22.607138, 113.84184, "2016-11-18T03:01:21Z"),
];

const GT06_VENDOR_FIXES: &[(u64, f64, f64, &str)] = &[
    // A GPS block opening 0x38, 0xa2, 0xa2, 0x24 and (VL103) 0x36; the MCC after each
    // (Costa Rica's 712 aside) names the country the coordinates are in.
    (40, 9.89775, -84.102996, "2025-05-14T14:12:38Z"),
    (58, 3.501628, -76.504233, "2024-11-15T15:52:07Z"),
    (78, 19.702082, -99.119508, "2024-06-27T14:15:05Z"),
    (177, -22.907096, -43.1312, "2022-06-26T16:54:00Z"),
    (637, 22.602109, 113.832, "2025-12-29T15:23:36Z"),
    // 0x70 module 0x0033 (Unix time), 0x21 position text, QH302R 0x12 behind its IMEI.
    (274, 43.894508, -79.272751, "2019-08-25T17:02:50Z"),
    (444, 54.739332, 25.27327, "2017-05-26T10:27:47Z"),
    (623, 13.48894, 144.82304, "2026-02-12T10:30:50Z"),
];

fn assert_fixes(
    file: &str,
    fixes: &[(u64, f64, f64, &str)],
    decode: impl Fn(&Value) -> Result<Vec<DevicePosition>, String>,
) {
    let samples = samples(file);
    for &(wanted, lat, lon, time) in fixes {
        let sample = samples
            .iter()
            .find(|sample| line(sample) == wanted)
            .unwrap_or_else(|| panic!("{file} line {wanted} missing"));
        let positions = decode(sample).unwrap_or_else(|error| panic!("{file} {wanted}: {error}"));
        let first = &positions[0];
        assert!(
            (first.fix.position.lat() - lat).abs() < 1e-5,
            "{file} {wanted}: {}",
            first.fix.position.lat()
        );
        assert!(
            (first.fix.position.lon() - lon).abs() < 1e-5,
            "{file} {wanted}: {}",
            first.fix.position.lon()
        );
        assert_eq!(
            first
                .fix
                .ts
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            time,
            "{file} {wanted}"
        );
    }
}

#[test]
fn vendor_layout_samples_yield_the_fix_their_bytes_carry() {
    assert_fixes("jt808.jsonl", JT808_VENDOR_FIXES, |sample| {
        jt808_decode(&hex_bytes(text(sample, "raw")), ChecksumPolicy::Verify)
    });
    assert_fixes("gt06.jsonl", GT06_VENDOR_FIXES, |sample| {
        gt06_decode(&hex_bytes(text(sample, "raw")), ChecksumPolicy::Verify)
    });
    let batch = samples("jt808.jsonl")
        .into_iter()
        .find(|sample| line(sample) == 196)
        .map(|sample| jt808_decode(&hex_bytes(text(&sample, "raw")), ChecksumPolicy::Verify));
    assert_eq!(
        batch.map(|positions| positions.map(|all| all.len())),
        Some(Ok(8))
    );
}

#[test]
fn jt808_samples_that_fail_their_check_code_decode_only_under_the_ignore_policy() {
    let mut failing = Vec::new();
    for sample in samples("jt808.jsonl") {
        let raw = text(&sample, "raw");
        if raw.starts_with('(') {
            continue;
        }
        let unescaped = hex_bytes(raw);
        if let Err(reason) = jt808_decode(&unescaped, ChecksumPolicy::Verify)
            && reason == "refused: checksum_mismatch"
        {
            failing.push(line(&sample));
            let lenient = jt808_decode(&unescaped, ChecksumPolicy::Ignore);
            if let Ok(positions) = &lenient {
                for position in positions {
                    assert_plausible(position, &format!("line {} under ignore", line(&sample)));
                }
            }
        }
    }
    assert_eq!(failing, vec![142, 232, 328, 409, 415]);
}

#[test]
fn jt808_frame_samples_split_into_the_stated_frames() {
    for sample in samples("jt808_frames.jsonl") {
        let context = format!("jt808_frames.jsonl line {}", line(&sample));
        let raw = text(&sample, "raw");
        let expected = text(&sample["expected"], "frame_hex");
        let (frames, _) = split_jt808(&hex_bytes(raw));
        if hex_bytes(raw).first() == Some(&b'(') {
            // Traccar also frames a vendor's "(…)" text protocol; this server does not
            // speak it, so the splitter skips it as garbage.
            assert!(frames.is_empty(), "{context}");
            continue;
        }
        let rendered: Vec<String> = frames
            .iter()
            .map(|frame| format!("7e{}7e", hex::encode(frame)))
            .collect();
        assert_eq!(rendered, vec![expected.to_lowercase()], "{context}");
    }
}

// ---------------------------------------------------------------------------------------
// GT06
// ---------------------------------------------------------------------------------------

fn gt06_decode(raw: &[u8], policy: ChecksumPolicy) -> Result<Vec<DevicePosition>, String> {
    let frame =
        gt06::parse_frame(raw, policy).map_err(|error| format!("refused: {}", error.reason()))?;
    match gt06::decode_body(&frame).map_err(|error| format!("refused: {}", error.reason()))? {
        Gt06Message::Location(fix) => Ok(vec![fix.to_position("imei", 0)]),
        Gt06Message::Login(_) => Err("no position: login".to_owned()),
        Gt06Message::Heartbeat => Err("no position: heartbeat".to_owned()),
        Gt06Message::NoFix => Err("no position: gps block without fix".to_owned()),
        Gt06Message::Other => Err(format!(
            "no position: type {:#04x} carries no gps block",
            frame.protocol
        )),
    }
}

fn split_gt06(wire: &[u8]) -> Vec<Vec<u8>> {
    let mut codec = Gt06Codec::default();
    let mut buffer = BytesMut::from(wire);
    let mut frames = Vec::new();
    while let Ok(Some(item)) = codec.decode_eof(&mut buffer) {
        if let gt06::SplitItem::Frame(frame) = item {
            frames.push(frame.to_vec());
        }
    }
    frames
}

const GT06_TABLE: &[(&str, &str, usize)] = &[
    ("verifyAttribute", "no position: heartbeat", 7),
    (
        "verifyAttribute",
        "no position: type 0x15 carries no gps block",
        1,
    ),
    (
        "verifyAttribute",
        "no position: type 0x17 carries no gps block",
        1,
    ),
    (
        "verifyAttribute",
        "no position: type 0x25 carries no gps block",
        1,
    ),
    (
        "verifyAttribute",
        "no position: type 0x36 carries no gps block",
        1,
    ),
    (
        "verifyAttribute",
        "no position: type 0x61 carries no gps block",
        1,
    ),
    (
        "verifyAttribute",
        "no position: type 0x70 carries no gps block",
        1,
    ),
    (
        "verifyAttribute",
        "no position: type 0x94 carries no gps block",
        7,
    ),
    (
        "verifyAttribute",
        "no position: type 0x95 carries no gps block",
        4,
    ),
    (
        "verifyAttribute",
        "no position: type 0x9b carries no gps block",
        4,
    ),
    (
        "verifyAttribute",
        "no position: type 0xa5 carries no gps block",
        1,
    ),
    (
        "verifyAttribute",
        "no position: type 0xf1 carries no gps block",
        1,
    ),
    (
        "verifyAttribute",
        "position, alarm differs (None vs expected \"hardAcceleration\")",
        1,
    ),
    (
        "verifyAttribute",
        "position, alarm differs (None vs expected \"removing\")",
        1,
    ),
    (
        "verifyAttribute",
        "position, alarm differs (None vs expected \"sos\")",
        1,
    ),
    (
        "verifyAttribute",
        "position, alarm differs (None vs expected \"tampering\")",
        3,
    ),
    ("verifyAttribute", "position, alarm matches", 3),
    ("verifyAttribute", "position, attribute not carried", 13),
    ("verifyAttribute", "refused: checksum_mismatch", 8),
    ("verifyAttribute", "refused: invalid_time", 3),
    ("verifyAttribute", "refused: malformed_frame", 1),
    ("verifyAttributes", "no position: gps block without fix", 4),
    ("verifyAttributes", "no position: heartbeat", 3),
    (
        "verifyAttributes",
        "no position: type 0x15 carries no gps block",
        2,
    ),
    (
        "verifyAttributes",
        "no position: type 0x21 carries no gps block",
        1,
    ),
    (
        "verifyAttributes",
        "no position: type 0x8c carries no gps block",
        1,
    ),
    (
        "verifyAttributes",
        "no position: type 0x94 carries no gps block",
        11,
    ),
    (
        "verifyAttributes",
        "no position: type 0xf2 carries no gps block",
        2,
    ),
    ("verifyAttributes", "position", 2),
    ("verifyAttributes", "refused: checksum_mismatch", 1),
    ("verifyAttributes", "refused: truncated_body", 1),
    ("verifyNotNull", "no position: gps block without fix", 1),
    (
        "verifyNotNull",
        "no position: type 0x15 carries no gps block",
        2,
    ),
    (
        "verifyNotNull",
        "no position: type 0x18 carries no gps block",
        1,
    ),
    (
        "verifyNotNull",
        "no position: type 0x19 carries no gps block",
        1,
    ),
    (
        "verifyNotNull",
        "no position: type 0x24 carries no gps block",
        1,
    ),
    (
        "verifyNotNull",
        "no position: type 0x28 carries no gps block",
        2,
    ),
    (
        "verifyNotNull",
        "no position: type 0x2c carries no gps block",
        2,
    ),
    (
        "verifyNotNull",
        "no position: type 0x70 carries no gps block",
        1,
    ),
    (
        "verifyNotNull",
        "no position: type 0x8c carries no gps block",
        1,
    ),
    (
        "verifyNotNull",
        "no position: type 0xa1 carries no gps block",
        1,
    ),
    (
        "verifyNotNull",
        "no position: type 0xa2 carries no gps block",
        4,
    ),
    (
        "verifyNotNull",
        "no position: type 0xa5 carries no gps block",
        1,
    ),
    (
        "verifyNotNull",
        "no position: type 0xa7 carries no gps block",
        1,
    ),
    (
        "verifyNotNull",
        "no position: type 0xf3 carries no gps block",
        1,
    ),
    ("verifyNotNull", "position", 9),
    ("verifyNotNull", "refused: checksum_mismatch", 1),
    ("verifyNotNull", "refused: length_mismatch", 11),
    ("verifyNull", "no position: login", 5),
    (
        "verifyNull",
        "no position: type 0x19 carries no gps block",
        1,
    ),
    (
        "verifyNull",
        "no position: type 0x1f carries no gps block",
        1,
    ),
    (
        "verifyNull",
        "no position: type 0x2a carries no gps block",
        1,
    ),
    (
        "verifyNull",
        "no position: type 0x35 carries no gps block",
        1,
    ),
    (
        "verifyNull",
        "no position: type 0x66 carries no gps block",
        1,
    ),
    (
        "verifyNull",
        "no position: type 0x81 carries no gps block",
        1,
    ),
    (
        "verifyNull",
        "no position: type 0x84 carries no gps block",
        1,
    ),
    (
        "verifyNull",
        "no position: type 0x8a carries no gps block",
        1,
    ),
    ("verifyNull", "refused: checksum_mismatch", 1),
    ("verifyNull", "refused: length_mismatch", 2),
    ("verifyNull", "refused: malformed_frame", 1),
    ("verifyNull", "refused: truncated_body", 1),
    ("verifyPosition", "position", 33),
    ("verifyPosition", "refused: checksum_mismatch", 1),
    ("verifyPosition", "refused: length_mismatch", 2),
];

#[test]
fn every_gt06_sample_decodes_as_the_table_says_and_never_panics() {
    let mut table = Table::default();
    for sample in samples("gt06.jsonl") {
        let context = format!("gt06.jsonl line {}", line(&sample));
        let assertion = text(&sample, "assertion");
        let raw = hex_bytes(text(&sample, "raw"));
        // Through the splitter first, as on a socket: whatever it cuts must decode the same.
        let frames = split_gt06(&raw);
        let outcome = gt06_decode(&raw, ChecksumPolicy::Verify);
        if frames == vec![raw.clone()] {
            assert_eq!(
                gt06_decode(&frames[0], ChecksumPolicy::Verify),
                outcome,
                "{context}"
            );
        }
        if let Ok(positions) = &outcome {
            for position in positions {
                assert_plausible(position, &context);
            }
            if let Some(expected) = sample["expected"].get("position") {
                let tolerance = expected["tolerance_deg"].as_f64().unwrap_or(1e-5);
                let position = &positions[0];
                assert!(
                    (position.fix.position.lat()
                        - expected["latitude"].as_f64().unwrap_or(f64::NAN))
                    .abs()
                        <= tolerance,
                    "{context}"
                );
                assert!(
                    (position.fix.position.lon()
                        - expected["longitude"].as_f64().unwrap_or(f64::NAN))
                    .abs()
                        <= tolerance,
                    "{context}"
                );
                assert_eq!(
                    Some(position.valid),
                    expected["valid"].as_bool(),
                    "{context}"
                );
                let fix_time = NaiveDateTime::parse_from_str(
                    text(expected, "fixTime_utc"),
                    "%Y-%m-%d %H:%M:%S%.f",
                )
                .map(|naive| naive.and_utc())
                .ok();
                assert_eq!(Some(position.fix.ts), fix_time, "{context}");
            }
        }
        if assertion == "verifyNull" {
            assert!(
                outcome.is_err(),
                "{context}: verifyNull sample produced a position"
            );
        }
        let label = match (&outcome, assertion) {
            (Ok(positions), "verifyAttribute") => attribute_outcome(&sample, positions),
            (Ok(_), _) => "position".to_owned(),
            (Err(reason), _) => reason.clone(),
        };
        table.add(assertion, label, line(&sample));
    }
    table.assert_eq("gt06", GT06_TABLE);
}

#[test]
fn gt06_samples_that_fail_their_crc_are_refused_and_decode_under_the_ignore_policy() {
    let mut failing = Vec::new();
    let mut decoded_when_ignored = 0;
    for sample in samples("gt06.jsonl") {
        let raw = hex_bytes(text(&sample, "raw"));
        if gt06_decode(&raw, ChecksumPolicy::Verify) == Err("refused: checksum_mismatch".to_owned())
        {
            failing.push(line(&sample));
            if let Ok(positions) = gt06_decode(&raw, ChecksumPolicy::Ignore) {
                decoded_when_ignored += 1;
                for position in &positions {
                    assert_plausible(position, &format!("line {} under ignore", line(&sample)));
                }
            }
        }
    }
    println!("gt06 crc failures: {failing:?}, positions under ignore: {decoded_when_ignored}");
    assert_eq!(
        failing,
        vec![142, 146, 150, 203, 405, 496, 526, 557, 561, 565, 569, 603]
    );
}

#[test]
fn gt06_frame_samples_split_into_the_stated_frames() {
    for sample in samples("gt06_frames.jsonl") {
        let context = format!("gt06_frames.jsonl line {}", line(&sample));
        let frames = split_gt06(&hex_bytes(text(&sample, "raw")));
        let expected = hex_bytes(text(&sample["expected"], "frame_hex"));
        assert_eq!(frames, vec![expected], "{context}");
    }
}

// ---------------------------------------------------------------------------------------
// OsmAnd
// ---------------------------------------------------------------------------------------

const OSMAND_TABLE: &[(&str, &str, usize)] = &[
    ("verifyAttribute", "position, attribute not carried", 1),
    ("verifyNotNull", "refused: missing field lat", 1),
    ("verifyNull", "refused: missing field id", 1),
    ("verifyPosition", "position (json)", 3),
    ("verifyPosition", "position (query)", 9),
];

#[test]
fn every_osmand_sample_parses_as_the_table_says() {
    let now = Utc::now();
    let mut table = Table::default();
    for sample in samples("osmand.jsonl") {
        let context = format!("osmand.jsonl line {}", line(&sample));
        let assertion = text(&sample, "assertion");
        let is_json = sample["headers"]["Content-Type"].as_str() == Some("application/json");
        let outcome = if is_json {
            parse_json(text(&sample, "body").as_bytes(), now)
        } else {
            parse_query(text(&sample, "raw"), now).map(|position| vec![position])
        };
        if let Ok(positions) = &outcome {
            for position in positions {
                assert_plausible(position, &context);
            }
        }
        if assertion == "verifyNull" {
            assert!(outcome.is_err(), "{context}");
        }
        let label = match &outcome {
            Ok(_) if assertion == "verifyAttribute" => "position, attribute not carried".to_owned(),
            Ok(_) => format!("position ({})", if is_json { "json" } else { "query" }),
            Err(error) => format!("refused: {error}"),
        };
        table.add(assertion, label, line(&sample));
    }
    table.assert_eq("osmand", OSMAND_TABLE);
}
