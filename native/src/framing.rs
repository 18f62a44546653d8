//! NDJSON framing (reference: `crm2stream/engine/lines.py`, `strip_line`): which bytes of
//! the input are lines, so that a log chunk is one slice copy of the input, never a list
//! of a million small objects joined back together.

/// What `frame` found: the lines taken, joined by `\n`, how many, and how many input
/// bytes they (and any blank lines between them) used.
#[derive(Debug, Default, PartialEq)]
pub struct Framed {
    pub chunk: Vec<u8>,
    pub lines: usize,
    pub used: usize,
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
    let mut total = 0;
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
            total += end - at;
        }
        at = next;
        used = next;
    }
    let mut chunk = Vec::with_capacity(total + spans.len());
    for (i, &(from, to)) in spans.iter().enumerate() {
        if i > 0 {
            chunk.push(b'\n');
        }
        chunk.extend_from_slice(&data[from..to]);
    }
    Framed { chunk, lines: spans.len(), used: used - start }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(framed: &Framed) -> Vec<&[u8]> {
        if framed.lines == 0 {
            return vec![];
        }
        framed.chunk.split(|&b| b == b'\n').collect()
    }

    #[test]
    fn takes_complete_lines_and_skips_blank_ones() {
        let data = b"a\r\n\n  \t\nb\nc";
        let framed = frame(data, 0, 10, false);
        assert_eq!(lines(&framed), vec![&b"a"[..], b"b"]);
        assert_eq!(framed.used, 10);
        let framed = frame(data, 0, 10, true);
        assert_eq!(lines(&framed), vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(framed.used, data.len());
    }

    #[test]
    fn stops_after_the_limit_at_the_end_of_the_last_line() {
        let framed = frame(b"a\n\nb\n\nc\n", 0, 2, false);
        assert_eq!(lines(&framed), vec![&b"a"[..], b"b"]);
        assert_eq!(framed.used, 5);
        let rest = frame(b"a\n\nb\n\nc\n", 5, 2, false);
        assert_eq!(lines(&rest), vec![&b"c"[..]]);
        assert_eq!(rest.used, 3);
    }

    #[test]
    fn a_last_unterminated_line_keeps_its_carriage_return() {
        let framed = frame(b"x\r", 0, 5, true);
        assert_eq!(lines(&framed), vec![&b"x\r"[..]]);
    }
}
