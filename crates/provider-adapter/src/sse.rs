//! A server-sent-events parser that survives real upstreams: LF, CRLF and CR
//! line endings, comment lines, multi-line `data`, and chunks split anywhere —
//! including inside a UTF-8 character, which is why it works on bytes and
//! decodes only whole events.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, when the upstream names its events.
    pub event: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SseError {
    #[error("event data is not valid UTF-8")]
    InvalidUtf8,
    #[error("event larger than {MAX_EVENT_BYTES} bytes")]
    TooLarge,
}

/// Upper bound on one event, so a broken upstream cannot exhaust memory.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    event: Option<String>,
    /// The previous chunk ended in CR; a leading LF belongs to that line end.
    after_cr: bool,
}

impl SseParser {
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds bytes; complete events are appended to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut rest = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', rest) {
            if self.line.is_empty() {
                // The whole line is in this chunk: the common case.
                self.end_line(&rest[..pos], out)?;
            } else {
                self.line.extend_from_slice(&rest[..pos]);
                let line = std::mem::take(&mut self.line);
                let ended = self.end_line(&line, out);
                // Keep the buffer's capacity for the next split line.
                self.line = line;
                self.line.clear();
                ended?;
            }
            if rest[pos] == b'\r' {
                match rest.get(pos + 1) {
                    Some(b'\n') => rest = &rest[pos + 2..],
                    Some(_) => rest = &rest[pos + 1..],
                    None => {
                        self.after_cr = true;
                        rest = &[];
                    }
                }
            } else {
                rest = &rest[pos + 1..];
            }
        }
        self.line.extend_from_slice(rest);
        if self.line.len() + self.data.len() > MAX_EVENT_BYTES {
            return Err(SseError::TooLarge);
        }
        Ok(())
    }

    /// End of body: an unterminated last event is still dispatched, so a
    /// missing final blank line does not lose data.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.end_line(&line, out)?;
        }
        self.dispatch(out)
    }

    fn end_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            return self.dispatch(out);
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
                if self.data.len() > MAX_EVENT_BYTES {
                    return Err(SseError::TooLarge);
                }
            }
            b"event" => {
                let name = std::str::from_utf8(value).map_err(|_| SseError::InvalidUtf8)?;
                self.event = Some(name.to_owned());
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let event = self.event.take();
        if !std::mem::take(&mut self.has_data) {
            return Ok(());
        }
        let data =
            String::from_utf8(std::mem::take(&mut self.data)).map_err(|_| SseError::InvalidUtf8)?;
        out.push(SseEvent { event, data });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            parser.push(chunk, &mut out).unwrap();
        }
        parser.finish(&mut out).unwrap();
        out
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    #[test]
    fn lf_and_crlf_and_cr_line_endings() {
        for input in [
            &b"data: a\n\ndata: b\n\n"[..],
            b"data: a\r\n\r\ndata: b\r\n\r\n",
            b"data: a\r\rdata: b\r\r",
        ] {
            for piece in 1..input.len() {
                assert_eq!(
                    data(&parse_in_pieces(input, piece)),
                    ["a", "b"],
                    "{input:?} / {piece}"
                );
            }
        }
    }

    #[test]
    fn comments_and_unknown_fields_are_skipped() {
        let input =
            b": keep-alive\n\nid: 1\nretry: 10\ndata: x\n: inside\n\n:OPENROUTER PROCESSING\n\n";
        assert_eq!(data(&parse_in_pieces(input, 3)), ["x"]);
    }

    #[test]
    fn multi_line_data_is_joined() {
        let input = b"event: message\ndata: {\"a\":\ndata: 1}\n\ndata\n\n";
        let events = parse_in_pieces(input, 5);
        assert_eq!(data(&events), ["{\"a\":\n1}", ""]);
        assert_eq!(events[0].event.as_deref(), Some("message"));
        assert_eq!(events[1].event, None);
    }

    #[test]
    fn utf8_split_inside_a_character() {
        let input = "data: héllo 👋 wörld\n\n".as_bytes();
        for piece in 1..input.len() {
            assert_eq!(data(&parse_in_pieces(input, piece)), ["héllo 👋 wörld"]);
        }
    }

    #[test]
    fn unterminated_last_event_is_dispatched() {
        assert_eq!(data(&parse_in_pieces(b"data: [DONE]", 4)), ["[DONE]"]);
        assert!(parse_in_pieces(b"", 1).is_empty());
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        assert_eq!(
            parser.push(b"data: \xff\n\n", &mut out),
            Err(SseError::InvalidUtf8)
        );
    }
}
