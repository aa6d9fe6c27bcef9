//! A Server-Sent Events parser, as the HTML Living Standard ("Interpreting an event
//! stream") describes it. Pure: bytes go in as they arrive from the network, in chunks cut
//! anywhere (even inside a UTF-8 character or between `\r` and `\n`), and complete events
//! come out.
//!
//! - Lines end with `\r\n`, `\n` or `\r`; a blank line dispatches the event.
//! - `data:` lines accumulate, joined with `\n` (multi-line data).
//! - Lines starting with `:` are comments (keep-alives) and are counted, not dispatched.
//! - `id:` sets the id buffer, which becomes the last event id when the event is
//!   dispatched (kept across events: a reconnect's `Last-Event-ID`); an id containing NUL
//!   is ignored. `event:` names the type; `retry:` a reconnection
//!   delay in milliseconds; unknown fields are ignored; one space after the colon is
//!   dropped.
//! - An event with no data lines is not dispatched (but its `id` still counts).

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseMessage {
    /// The last event id at dispatch (from this event or an earlier one), if any.
    pub id: Option<String>,
    /// The `event:` type, `message` when none was given.
    pub event: String,
    /// The data lines, joined with `\n`.
    pub data: String,
}

/// Incremental parser state.
#[derive(Debug, Default, Clone)]
pub struct SseParser {
    /// Bytes of the line not yet terminated.
    pending: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` at the start of the next one belongs to it.
    after_cr: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    id_buffer: Option<String>,
    last_id: Option<String>,
    retry_ms: Option<u64>,
    comments: u64,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// The last event id seen (what a reconnect sends as `Last-Event-ID`).
    #[cfg(test)]
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The reconnection delay the server asked for, if any.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// Comment lines (keep-alives) seen so far.
    pub fn comments(&self) -> u64 {
        self.comments
    }

    /// A new connection continues the stream: the last event id is kept (it is what the
    /// reconnect resumes after), a half-received line or event is dropped, its id too.
    pub fn reset_connection(&mut self) {
        self.id_buffer = self.last_id.clone();
        self.pending.clear();
        self.after_cr = false;
        self.data.clear();
        self.has_data = false;
        self.event = None;
    }

    /// Feeds a chunk; returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseMessage> {
        let mut out = Vec::new();
        let mut rest = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
        }
        while let Some(end) = rest.iter().position(|b| *b == b'\n' || *b == b'\r') {
            self.pending.extend_from_slice(&rest[..end]);
            let line = std::mem::take(&mut self.pending);
            self.line(&line, &mut out);
            let terminator = rest[end];
            rest = &rest[end + 1..];
            if terminator == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.pending.extend_from_slice(rest);
        out
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseMessage>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            self.comments += 1;
            return;
        }
        // Lines are UTF-8 (invalid sequences replaced, as the standard decodes).
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (text.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.id_buffer = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok();
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseMessage>) {
        self.last_id = self.id_buffer.clone();
        let event = self.event.take();
        if !self.has_data {
            return;
        }
        self.has_data = false;
        out.push(SseMessage {
            id: self.last_id.clone(),
            event: event
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "message".to_owned()),
            data: std::mem::take(&mut self.data),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(parser: &mut SseParser, chunks: &[&[u8]]) -> Vec<SseMessage> {
        chunks.iter().flat_map(|chunk| parser.push(chunk)).collect()
    }

    #[test]
    fn the_servers_events_parse_with_id_kind_and_json_data() {
        let mut parser = SseParser::new();
        let events = parser
            .push(b"id: 41\nevent: alert_raised\ndata: {\"id\":41,\"kind\":\"alert_raised\"}\n\n");
        assert_eq!(
            events,
            vec![SseMessage {
                id: Some("41".to_owned()),
                event: "alert_raised".to_owned(),
                data: "{\"id\":41,\"kind\":\"alert_raised\"}".to_owned(),
            }]
        );
        assert_eq!(parser.last_event_id(), Some("41"));
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let mut parser = SseParser::new();
        let events = parser.push(b"data: first\ndata:second\ndata:  third\n\n");
        assert_eq!(events[0].data, "first\nsecond\n third");
        assert_eq!(events[0].event, "message");
        assert_eq!(events[0].id, None);
    }

    #[test]
    fn comments_and_keep_alives_are_counted_not_dispatched() {
        let mut parser = SseParser::new();
        let events = parser.push(b":keep-alive\n\n: another\n\nid: 3\ndata: x\n\n");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "x");
        assert_eq!(parser.comments(), 2);
    }

    #[test]
    fn chunks_may_be_cut_anywhere_even_inside_characters_and_crlf() {
        let text = "id: 7\r\nevent: note_added\r\ndata: {\"text\":\"Fahrzeug für 沪A\"}\r\n\r\nid: 8\rdata: y\r\r";
        let bytes = text.as_bytes();
        let whole = SseParser::new().push(bytes);
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].data, "{\"text\":\"Fahrzeug für 沪A\"}");
        assert_eq!(whole[1].id.as_deref(), Some("8"));
        // Every way of cutting the stream in two, and byte by byte, gives the same events.
        for cut in 0..bytes.len() {
            let mut parser = SseParser::new();
            assert_eq!(
                all(&mut parser, &[&bytes[..cut], &bytes[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
        let mut parser = SseParser::new();
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(all(&mut parser, &singles), whole);
    }

    #[test]
    fn a_crlf_split_across_chunks_is_one_line_end_not_two() {
        let mut parser = SseParser::new();
        // Were the `\n` after the `\r` taken for a second line end, the blank line would
        // dispatch the event before its data line.
        let events = all(&mut parser, &[b"id: 1\r", b"\ndata: a\r", b"\n\r", b"\n"]);
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].id.as_deref(), events[0].data.as_str()),
            (Some("1"), "a")
        );
    }

    #[test]
    fn the_last_id_carries_over_and_an_event_without_data_is_not_dispatched() {
        let mut parser = SseParser::new();
        let events = parser.push(b"id: 5\n\ndata: after\n\nid\ndata: cleared\n\n");
        assert_eq!(events.len(), 2);
        // `id: 5` alone dispatches nothing but sets the last id for the next event.
        assert_eq!(events[0].id.as_deref(), Some("5"));
        // A bare `id` field sets the last id to empty.
        assert_eq!(events[1].id.as_deref(), Some(""));
        assert!(parser.push(b"id: a\0b\n\n").is_empty());
        assert_eq!(parser.last_event_id(), Some(""));
    }

    #[test]
    fn retry_unknown_fields_and_a_reconnect_mid_event() {
        let mut parser = SseParser::new();
        assert!(
            parser
                .push(b"retry: 1500\nfoo: bar\nretry: soon\n")
                .is_empty()
        );
        assert_eq!(parser.retry_ms(), Some(1500));
        assert_eq!(
            parser
                .push(b"id: 9\ndata: done\n\nid: 10\ndata: half")
                .len(),
            1
        );
        // The connection drops in the middle of event 10: the half event is lost, and so is
        // its id; the reconnect resumes after 9, the last event dispatched.
        parser.reset_connection();
        assert_eq!(parser.last_event_id(), Some("9"));
        let events = parser.push(b"id: 10\ndata: whole\n\n");
        assert_eq!(events[0].data, "whole");
    }
}
