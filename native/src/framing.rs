//! Framing input into lines (reference: `crm2stream/engine/lines.py`, `strip_line`):
//! which bytes of the input are lines, so that a log chunk is copied once out of the
//! input, never a list of a million small objects joined back together. NDJSON is framed
//! by its line breaks; a JSON array body by its top-level elements (`array_element`), each
//! of which is then judged from its own bytes, as the same element sent as an NDJSON line.

/// What `frame` found: where the lines taken are in the input, and how many input bytes
/// they (and any blank lines between them) used.
#[derive(Debug, Default, PartialEq)]
pub struct Framed {
    pub spans: Vec<(usize, usize)>,
    pub used: usize,
}

impl Framed {
    /// The length of the lines joined by `\n`.
    pub fn joined_len(&self) -> usize {
        self.spans.iter().map(|(from, to)| to - from).sum::<usize>() + self.spans.len().saturating_sub(1)
    }

    /// Write the lines, joined by `\n`, into `out` (exactly `joined_len` bytes).
    pub fn join_into(&self, data: &[u8], out: &mut [u8]) {
        let mut at = 0;
        for (i, &(from, to)) in self.spans.iter().enumerate() {
            if i > 0 {
                out[at] = b'\n';
                at += 1;
            }
            out[at..at + to - from].copy_from_slice(&data[from..to]);
            at += to - from;
        }
    }
}

/// Python's `bytes.isspace` for one byte.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Take up to `limit` non-blank lines of `data` from `start`. A line ends at `\n`; one `\r`
/// before it is dropped. Only complete lines are taken unless `last`, when what follows the
/// final `\n` is a line too (kept as it is). Lines of only white space are skipped. `used`
/// ends after the newline of the last line taken when the limit is reached, else after
/// every complete line seen (all of `data` when `last`).
pub fn frame(data: &[u8], start: usize, limit: usize, last: bool) -> Framed {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut at = start;
    let mut used = start;
    while at < data.len() && spans.len() < limit {
        let (end, next) = match data[at..].iter().position(|&b| b == b'\n') {
            Some(offset) => {
                let newline = at + offset;
                let end = if newline > at && data[newline - 1] == b'\r' { newline - 1 } else { newline };
                (end, newline + 1)
            }
            None if last => (data.len(), data.len()),
            None => break,
        };
        if !data[at..end].iter().all(|&b| is_space(b)) {
            spans.push((at, end));
        }
        at = next;
        used = next;
    }
    Framed { spans, used: used - start }
}

/// JSON's white space.
fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Where a JSON array body stands between elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayAt {
    /// after the `[` (or before it, at the very start)
    Start,
    /// after an element
    Element,
    /// after the closing `]`
    End,
}

/// The next element of a JSON array body from `at` (`state`: what came before it): the
/// element's span, or None after the closing bracket, and where to go on from. Only the
/// array is framed here (brackets balanced and strings closed so that an element's end
/// can be found, commas between elements, nothing after the end): what an element holds
/// is the decoders' business, as for an NDJSON line. An error says why the body is not
/// one array, and at which byte.
pub fn array_element(data: &[u8], mut at: usize, state: ArrayAt) -> Result<(Option<(usize, usize)>, usize), String> {
    let skip = |mut at: usize| {
        while at < data.len() && is_json_space(data[at]) {
            at += 1;
        }
        at
    };
    at = skip(at);
    match state {
        ArrayAt::End => {
            return if at == data.len() {
                Ok((None, at))
            } else {
                Err(format!("data after the array's end at byte {at}"))
            };
        }
        ArrayAt::Start => {
            if data.get(at) != Some(&b'[') {
                return Err("the body is not a JSON array (it must start with [)".to_string());
            }
            at = skip(at + 1);
            if data.get(at) == Some(&b']') {
                return array_element(data, at + 1, ArrayAt::End);
            }
        }
        ArrayAt::Element => match data.get(at) {
            Some(b',') => at = skip(at + 1),
            Some(b']') => return array_element(data, at + 1, ArrayAt::End),
            Some(_) => return Err(format!("expected , or ] between elements at byte {at}")),
            None => return Err("the array is not closed".to_string()),
        },
    }
    if at == data.len() {
        return Err("the array is not closed".to_string());
    }
    let start = at;
    let mut closers: Vec<u8> = Vec::new();
    let mut in_string = false;
    while at < data.len() {
        let b = data[at];
        if in_string {
            match b {
                b'\\' => at += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'{' => closers.push(b'}'),
                b'[' => closers.push(b']'),
                b'}' | b']' if closers.last() == Some(&b) => {
                    closers.pop();
                }
                b'}' | b']' if !closers.is_empty() => return Err(format!("mismatched {} at byte {at}", b as char)),
                b',' | b']' if closers.is_empty() => break,
                b if is_json_space(b) && closers.is_empty() => break,
                _ => {}
            }
        }
        at += 1;
        if closers.is_empty() && !in_string && matches!(data[at - 1], b'}' | b']' | b'"') {
            break; // a container or a string ends here
        }
    }
    if in_string || !closers.is_empty() || at > data.len() {
        return Err("the array is not closed".to_string());
    }
    if at == start {
        return Err(format!("expected an element at byte {at}"));
    }
    Ok((Some((start, at)), at))
}

/// An element as a log line: a line break between tokens becomes a space (the same JSON),
/// and one inside a string, where JSON allows none, a NUL (still no JSON: the verdict on
/// the element is the same, and a log line holds no line break).
pub fn element_line(element: &[u8], out: &mut Vec<u8>) {
    let mut in_string = false;
    let mut escaped = false;
    for &b in element {
        out.push(match b {
            b'\n' | b'\r' if in_string => 0,
            b'\n' | b'\r' => b' ',
            _ => b,
        });
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines taken, read back from the joined chunk.
    fn lines(data: &[u8], framed: &Framed) -> Vec<Vec<u8>> {
        let mut chunk = vec![0; framed.joined_len()];
        framed.join_into(data, &mut chunk);
        if framed.spans.is_empty() {
            return vec![];
        }
        chunk.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn takes_complete_lines_and_skips_blank_ones() {
        let data = b"a\r\n\n  \t\nb\nc";
        let framed = frame(data, 0, 10, false);
        assert_eq!(lines(data, &framed), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(framed.used, 10);
        let framed = frame(data, 0, 10, true);
        assert_eq!(lines(data, &framed), vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(framed.used, data.len());
    }

    #[test]
    fn stops_after_the_limit_at_the_end_of_the_last_line() {
        let data = b"a\n\nb\n\nc\n";
        let framed = frame(data, 0, 2, false);
        assert_eq!(lines(data, &framed), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(framed.used, 5);
        let rest = frame(data, 5, 2, false);
        assert_eq!(lines(data, &rest), vec![b"c".to_vec()]);
        assert_eq!(rest.used, 3);
    }

    #[test]
    fn a_last_unterminated_line_keeps_its_carriage_return() {
        let framed = frame(b"x\r", 0, 5, true);
        assert_eq!(lines(b"x\r", &framed), vec![b"x\r".to_vec()]);
    }

    /// The elements of an array body as log lines, or why it is not one array.
    fn elements(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let (mut at, mut state, mut out) = (0, ArrayAt::Start, Vec::new());
        loop {
            let (span, next) = array_element(data, at, state)?;
            let Some((from, to)) = span else { return Ok(out) };
            let mut line = Vec::new();
            element_line(&data[from..to], &mut line);
            out.push(line);
            (at, state) = (next, ArrayAt::Element);
        }
    }

    #[test]
    fn an_array_is_framed_into_its_elements_whatever_they_hold() {
        let body = b" [ {\"a\": [1, \"]\"]} ,\n 1, \"x\\\"]\", NaN , {\"b\":\n2}, [] , tru ]\n";
        let want: Vec<&[u8]> = vec![b"{\"a\": [1, \"]\"]}", b"1", b"\"x\\\"]\"", b"NaN", b"{\"b\": 2}", b"[]", b"tru"];
        assert_eq!(elements(body).unwrap(), want);
        assert_eq!(elements(b"[]").unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(elements(b"[\"a\nb\"]").unwrap(), vec![b"\"a\0b\"".to_vec()]);
    }

    #[test]
    fn a_body_that_is_not_one_array_is_an_error() {
        for body in [
            &b""[..],
            b"{}",
            b"[",
            b"[1",
            b"[1,",
            b"[1,]",
            b"[,1]",
            b"[1 2]",
            b"[{]",
            b"[\"a]",
            b"[1]x",
            b"[1] [2]",
            b"[1,,2]",
        ] {
            assert!(elements(body).is_err(), "{:?}", String::from_utf8_lossy(body));
        }
    }
}
