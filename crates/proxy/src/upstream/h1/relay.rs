//! An endpoint's response fields relayed to an HTTP/1.1 client as they came.
//!
//! When Portcullis's plain server writes the response (it writes heads itself), the fields an
//! endpoint sent need not be parsed into a header map only to be written out again. They are
//! checked as they are parsed (httparse: field names are tokens, values hold no control
//! characters), the fields that only concern the endpoint's connection and the framing fields
//! are left out, and the rest goes to the client byte for byte, in the endpoint's spelling.
//!
//! A relayed response's header map holds only what the gateway adds. Whatever must read or
//! change the endpoint's fields (response filters, CORS, hyper) first moves them into the
//! header map with [`materialize`].

use std::ops::Range;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, header::CONTENT_LENGTH};

/// Runs of adjacent field lines a relayed head may have; a head whose passed-on fields are
/// more scattered goes into a header map instead.
const RUNS: usize = 4;

/// The fields of an endpoint's response head, as they are passed on.
#[derive(Debug, Clone)]
pub struct Relayed {
    /// The whole head, as the endpoint sent it.
    head: Bytes,
    /// The field lines passed on (each with its CRLF): runs of adjacent lines, as offsets into
    /// `head`.
    runs: [(u32, u32); RUNS],
    /// How many of `runs` are used.
    count: usize,
    /// The response's `Content-Length`, which `runs` leaves out (the server frames the body).
    pub length: Option<u64>,
    /// Whether the lines hold a `Date`.
    pub date: bool,
}

impl Relayed {
    /// Appends the field lines.
    pub fn write(&self, out: &mut Vec<u8>) {
        for &(start, end) in self.runs.iter().take(self.count) {
            if let Some(lines) = self.head.get(start as usize..end as usize) {
                out.extend_from_slice(lines);
            }
        }
    }

    /// Appends the fields to `headers`, `Content-Length` included. Values share the head's
    /// bytes.
    pub fn fill(self, headers: &mut HeaderMap) {
        for &(start, end) in self.runs.iter().take(self.count) {
            let mut at = start as usize;
            let end = end as usize;
            while at < end {
                let rest = self.head.get(at..end).unwrap_or_default();
                let Some(eol) = rest.iter().position(|&b| b == b'\n') else {
                    break;
                };
                if let Some((name, value)) = self.field(at, at + eol) {
                    headers.append(name, value);
                }
                at += eol + 1;
            }
        }
        if let Some(n) = self.length {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
        }
    }

    /// The field on the line `head[start..eol]` (`eol` at its LF). httparse accepted the line,
    /// so it parses; a line that did not would be left out.
    fn field(&self, start: usize, eol: usize) -> Option<(HeaderName, HeaderValue)> {
        let line = self.head.get(start..eol)?;
        let colon = line.iter().position(|&b| b == b':')?;
        let name = HeaderName::from_bytes(line.get(..colon)?).ok()?;
        let raw = line.get(colon + 1..)?;
        let leading = raw.iter().take_while(|b| b.is_ascii_whitespace()).count();
        let trailing = raw
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        let from = start + colon + 1 + leading;
        let to = (eol - trailing).max(from);
        let value = HeaderValue::from_maybe_shared(self.head.slice(from..to)).ok()?;
        Some((name, value))
    }
}

/// Gathers the field lines of a head being parsed into runs.
#[derive(Debug, Default)]
pub(super) struct Runs {
    runs: [(u32, u32); RUNS],
    count: usize,
    date: bool,
}

impl Runs {
    /// Adds the line at `line` of `head` (its CRLF included), merged with the run before it
    /// when adjacent; `date` when it is a `Date`. `false`: the line cannot be relayed (too many
    /// runs, or not ended by CRLF).
    pub(super) fn add(&mut self, line: Range<usize>, head: &[u8], date: bool) -> bool {
        let crlf = head
            .get(..line.end)
            .is_some_and(|before| before.ends_with(b"\r\n"));
        let (Ok(start), Ok(end)) = (u32::try_from(line.start), u32::try_from(line.end)) else {
            return false;
        };
        if !crlf {
            return false;
        }
        self.date |= date;
        if let Some(last) = self.count.checked_sub(1).and_then(|i| self.runs.get_mut(i))
            && last.1 == start
        {
            last.1 = end;
            return true;
        }
        let Some(slot) = self.runs.get_mut(self.count) else {
            return false;
        };
        *slot = (start, end);
        self.count += 1;
        true
    }

    /// The relayed fields of `head` (the head the lines were added from).
    pub(super) fn relayed(self, head: Bytes, length: Option<u64>) -> Relayed {
        Relayed {
            head,
            runs: self.runs,
            count: self.count,
            length,
            date: self.date,
        }
    }
}

/// A response body that may carry its endpoint's fields, relayed as they came.
pub trait CarriesRelayed {
    /// The fields, when relayed: the header map of the response this body belongs to does not
    /// hold them.
    fn take_relayed(&mut self) -> Option<Box<Relayed>>;
}

/// Moves a relayed response's fields into its header map, after any the gateway added; a
/// response whose fields are already there is left as it is.
pub fn materialize<B: CarriesRelayed>(response: &mut Response<B>) {
    if let Some(relayed) = response.body_mut().take_relayed() {
        relayed.fill(response.headers_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::field_pairs;

    /// The relayed fields of `head` when the lines starting with `lines` are passed on.
    fn relayed(head: &'static str, lines: &[&str]) -> Option<Relayed> {
        let mut runs = Runs::default();
        for line in lines {
            let start = head.find(&format!("\n{line}"))? + 1;
            let end = start + head.get(start..)?.find('\n')? + 1;
            if !runs.add(start..end, head.as_bytes(), line.starts_with("Date")) {
                return None;
            }
        }
        Some(runs.relayed(Bytes::from_static(head.as_bytes()), Some(5)))
    }

    #[test]
    fn adjacent_lines_are_one_run_and_go_out_as_they_came() {
        let head =
            "HTTP/1.1 200 OK\r\nServer: up\r\nDate: x\r\nContent-Length: 5\r\nX-A:  b \r\n\r\n";
        let relayed = relayed(head, &["Server", "Date", "X-A"]).expect("relayable");
        assert_eq!(relayed.count, 2);
        assert!(relayed.date);
        let mut out = Vec::new();
        relayed.write(&mut out);
        assert_eq!(out, b"Server: up\r\nDate: x\r\nX-A:  b \r\n");
        let mut headers = HeaderMap::new();
        relayed.fill(&mut headers);
        assert_eq!(
            field_pairs(headers.iter()),
            [
                ("server", "up"),
                ("date", "x"),
                ("x-a", "b"),
                ("content-length", "5")
            ]
        );
    }

    #[test]
    fn scattered_or_bare_lf_lines_are_not_relayed() {
        let head = "HTTP/1.1 200 OK\r\na: 1\r\nx: 0\r\nb: 2\r\nx: 0\r\nc: 3\r\nx: 0\r\nd: 4\r\n\
                    x: 0\r\ne: 5\r\n\r\n";
        assert_eq!(
            relayed(head, &["a", "b", "c", "d"]).map(|r| r.count),
            Some(4)
        );
        assert!(
            relayed(head, &["a", "b", "c", "d", "e"]).is_none(),
            "five runs"
        );
        assert!(relayed("HTTP/1.1 200 OK\na: 1\n\n", &["a"]).is_none());
    }
}
