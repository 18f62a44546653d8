//! The checkpointed form of the facts: one compact binary record per key.
//!
//! Records start with a format byte. Identifier records and bodies name identifiers by
//! number: an identifier keeps the number it was first given (its `Id`, a position in the
//! core's table) across checkpoints and loads, so a body read back is decoded without
//! looking up a key per tie (records of earlier formats named them by key, and still
//! load). Pair records name their identifiers by key.

mod body;
mod ident;
mod records;
#[cfg(test)]
mod tests;

pub use body::{check_ties, decode_body, glance_body, merge_earlier, open_body, pack_body, resolve_ties, Glance};
pub use ident::{decode_ident, encode_ident, Named, Sources};
pub use records::{
    decode_emitted, decode_pair, decode_referrals, decode_share, encode_emitted, encode_pair, encode_referrals,
    encode_share,
};

use crate::facts::Id;
use crate::sum::Sum;

pub(super) const FORMAT: u8 = 1;
/// Identifier records since they no longer list the identifier's shares (each share is
/// a record of its own, written by the incremental checkpoint after its event and then
/// only by full ones: `encode_share`). Format 4 listed them, so every checkpoint that
/// wrote an identifier wrote all its shares again; since format 4 they
/// carry the identifier's number and name others by theirs, say what the table topics
/// hold of it, and write a body's sums shifted (see `Writer::sum`). Format 3 wrote them
/// whole; format 2 named identifiers by key and said nothing of the topics (the engine
/// published at every checkpoint); format 1 held the body too, and mentions. All still
/// load, see `decode_ident`.
pub(super) const IDENT_FORMAT: u8 = 5;
pub(super) const IDENT_FORMAT_4: u8 = 4;
pub(super) const IDENT_FORMAT_3: u8 = 3;
pub(super) const IDENT_FORMAT_2: u8 = 2;
/// Bodies with their consent and sums first, so that a glance reads only them, then their
/// day buckets and ties in parts (`body::MAX_PARTS`), days stepped and of their counters
/// only those not zero. Format 5, still read, had one part and did not count it; format 4
/// wrote every counter; format 3 wrote the days first and each whole, and before it:
/// format 2 wrote the sums whole; format 1 named the ties' targets by key, and decoding
/// looked every one up.
pub(super) const BODY_FORMAT: u8 = 6;
pub(super) const BODY_FORMAT_5: u8 = 5;
pub(super) const BODY_FORMAT_4: u8 = 4;
pub(super) const BODY_FORMAT_3: u8 = 3;
pub(super) const BODY_FORMAT_2: u8 = 2;
/// The most low zero bits a shifted sum may say it had: a corrupt record must not make a
/// load allocate without bound (a sum's weights span `day / half_life` bits: 2**24 is
/// far beyond any real day and half-life).
pub(super) const MAX_SHIFT: u128 = 1 << 24;
pub const SEP: char = '\x1f';

#[derive(Default)]
pub(super) struct Writer(Vec<u8>, Sums);

/// How a record's decayed sums are written: whole (the formats before), or shifted.
#[derive(Default, Clone, Copy, PartialEq, Debug)]
pub(super) enum Sums {
    #[default]
    Whole,
    Shifted,
}

impl Writer {
    /// A record written into `buffer` (emptied first): one buffer serves many records.
    pub(super) fn into(mut buffer: Vec<u8>, format: u8) -> Self {
        buffer.clear();
        buffer.push(format);
        Writer(buffer, Sums::Whole)
    }
    pub(super) fn shifting(mut self) -> Self {
        self.1 = Sums::Shifted;
        self
    }
    /// A decayed sum. Its weights are `2 ** (day / half_life)` in fixed point, about 700
    /// bits for a day of this century at a half-life of 30 days, and every weight is a
    /// mantissa shifted left by its whole half-lives: the sum has as many low zero bits
    /// as its earliest day has whole half-lives. Shifted, it is written as that count and
    /// the bits above. On the first 9M events of the bench's input the four sums of a
    /// body took 236 bytes whole (45% of the body) and take 33 shifted.
    pub(super) fn sum(&mut self, sum: &Sum) {
        if self.1 == Sums::Whole {
            return self.bytes(&sum.to_big().to_bytes_le());
        }
        sum.with_shift_and_bytes(|shift, bytes| {
            self.uint64(shift);
            self.bytes(bytes);
        });
    }
    pub(super) fn uint(&mut self, mut v: u128) {
        if let Ok(small) = u64::try_from(v) {
            return self.uint64(small);
        }
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }
    /// `uint` of a number that fits 64 bits (the same bytes), in 64-bit steps: counts,
    /// lengths and days are most of what bodies hold, and most take one byte.
    #[inline]
    pub(super) fn uint64(&mut self, mut v: u64) {
        if v < 0x80 {
            return self.0.push(v as u8);
        }
        while v >= 0x80 {
            self.0.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    pub(super) fn int(&mut self, v: i64) {
        self.uint64(((v << 1) ^ (v >> 63)) as u64);
    }
    pub(super) fn bytes(&mut self, b: &[u8]) {
        self.uint(b.len() as u128);
        self.0.extend_from_slice(b);
    }
    pub(super) fn text(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    pub(super) fn opt_text(&mut self, s: Option<&str>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.text(s);
            }
        }
    }
    pub(super) fn opt_int(&mut self, v: Option<i64>) {
        match v {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                self.int(v);
            }
        }
    }
}

#[derive(Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    at: usize,
    sums: Sums,
}

pub type Result<T> = std::result::Result<T, String>;

impl<'a> Reader<'a> {
    pub(super) fn new(data: &'a [u8], format: u8) -> Result<Self> {
        match data.first() {
            Some(&f) if f == format => Ok(Reader { data, at: 1, sums: Sums::Whole }),
            _ => Err("record is not in this version's checkpoint format".into()),
        }
    }
    pub(super) fn shifting(mut self, shifted: bool) -> Self {
        self.sums = if shifted { Sums::Shifted } else { Sums::Whole };
        self
    }
    /// A decayed sum as `Writer::sum` wrote it.
    pub(super) fn sum(&mut self) -> Result<Sum> {
        let shift = if self.sums == Sums::Shifted { self.uint()? } else { 0 };
        if shift > MAX_SHIFT {
            return Err(format!("a sum shifted by {shift} bits"));
        }
        Ok(Sum::from_shift_and_bytes(shift as u64, self.bytes()?))
    }
    pub(super) fn byte(&mut self) -> Result<u8> {
        let b = *self.data.get(self.at).ok_or("record ends early")?;
        self.at += 1;
        Ok(b)
    }
    pub(super) fn uint(&mut self) -> Result<u128> {
        if let Some(&b) = self.data.get(self.at) {
            if b < 0x80 {
                self.at += 1;
                return Ok(b.into());
            }
        }
        let mut v: u128 = 0;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            v |= u128::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }
    /// `uint` of at most 64 bits, in 64-bit steps (see `Writer::uint64`).
    #[inline]
    pub(super) fn uint64(&mut self) -> Result<u64> {
        if let Some(&b) = self.data.get(self.at) {
            if b < 0x80 {
                self.at += 1;
                return Ok(b.into());
            }
        }
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err("number beyond 64 bits".into());
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }
    /// What is left of the record, unread.
    pub(super) fn rest(&self) -> &'a [u8] {
        &self.data[self.at..]
    }
    pub(super) fn len(&mut self) -> Result<usize> {
        usize::try_from(self.uint64()?).map_err(|e| e.to_string())
    }
    /// A count read from the record, capped by the bytes left (every item takes at least
    /// one): room to reserve up front without trusting a corrupt length.
    pub(super) fn bounded(&self, count: usize) -> usize {
        count.min(self.data.len() - self.at)
    }
    pub(super) fn int(&mut self) -> Result<i64> {
        let z = self.uint64()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }
    pub(super) fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len()?;
        let slice = self.data.get(self.at..self.at + n).ok_or("record ends early")?;
        self.at += n;
        Ok(slice)
    }
    pub(super) fn day(&mut self) -> Result<i32> {
        i32::try_from(self.int()?).map_err(|e| e.to_string())
    }
    pub(super) fn count(&mut self) -> Result<u32> {
        u32::try_from(self.uint64()?).map_err(|e| e.to_string())
    }
    pub(super) fn number(&mut self) -> Result<Id> {
        Id::try_from(self.uint64()?).map_err(|e| e.to_string())
    }
    pub(super) fn text(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|e| e.to_string())
    }
    pub(super) fn opt_text(&mut self) -> Result<Option<String>> {
        Ok(if self.byte()? == 0 { None } else { Some(self.text()?) })
    }
    pub(super) fn opt_int(&mut self) -> Result<Option<i64>> {
        Ok(if self.byte()? == 0 { None } else { Some(self.int()?) })
    }
}
