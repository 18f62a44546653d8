//! NDJSON framing (reference: `crm2stream/engine/lines.py`, `strip_line`): which bytes of
//! the input are lines, so that a log chunk is copied once out of the input, never a list
//! of a million small objects joined back together.

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
}
