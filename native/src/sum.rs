//! An exact decayed sum, held as a mantissa shifted left.
//!
//! Every amount is added weighted by `weight(day)`, a mantissa of 49 bits shifted left by
//! the day's whole half-lives (`scales`): about 700 bits for a day of this century at a
//! half-life of 30 days. A sum of such weights has as many low zero bits as its earliest
//! day has whole half-lives, and the bits above span the mantissa's 49, the half-lives
//! between its earliest and latest day (24 over two years at 30 days) and the amounts'.
//! Held whole, every sum took a dozen 64-bit digits on the heap and every addition an
//! allocation (`Standings::of`, adding up a person's members, was 7.9% of a 10M ingest).
//! Held as `mantissa << shift`, a sum whose mantissa fits 128 bits takes no allocation,
//! nor does its arithmetic; one whose mantissa does not fit is held whole. Either way it
//! is exact.

use num_bigint::BigUint;
use num_traits::Zero;

/// `mantissa << shift` with an odd mantissa (so that equal sums are held alike), zero,
/// or a value whose mantissa takes more than 128 bits, held whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Sum {
    #[default]
    Zero,
    Small {
        mantissa: u128,
        shift: u64,
    },
    Big(Box<BigUint>),
}

impl Sum {
    /// `mantissa << shift` (any mantissa).
    pub fn shifted(mantissa: u128, shift: u64) -> Sum {
        if mantissa == 0 {
            return Sum::Zero;
        }
        let zeros = u64::from(mantissa.trailing_zeros());
        Sum::Small { mantissa: mantissa >> zeros, shift: shift + zeros }
    }

    /// A sum held whole, as `Sum` holds it.
    pub fn whole(value: BigUint) -> Sum {
        let Some(zeros) = value.trailing_zeros() else { return Sum::Zero };
        let mantissa = &value >> zeros;
        match u128::try_from(&mantissa) {
            Ok(mantissa) => Sum::Small { mantissa, shift: zeros },
            Err(_) => Sum::Big(Box::new(value)),
        }
    }

    pub fn is_zero(&self) -> bool {
        matches!(self, Sum::Zero)
    }

    /// The value as one integer.
    pub fn to_big(&self) -> BigUint {
        match self {
            Sum::Zero => BigUint::zero(),
            Sum::Small { mantissa, shift } => BigUint::from(*mantissa) << *shift,
            Sum::Big(value) => (**value).clone(),
        }
    }

    /// `write(its low zero bits, the bits above them as little-endian bytes, at least
    /// one)`: how the store writes a sum (`codec::Writer::sum`) and a kept standing packs
    /// it. Only a sum held whole allocates.
    pub fn with_shift_and_bytes<R>(&self, write: impl FnOnce(u64, &[u8]) -> R) -> R {
        match self {
            Sum::Zero => write(0, &[0]),
            Sum::Small { mantissa, shift } => {
                let len = (128 - mantissa.leading_zeros()).div_ceil(8) as usize;
                write(*shift, &mantissa.to_le_bytes()[..len])
            }
            Sum::Big(value) => {
                let zeros = value.trailing_zeros().unwrap_or(0);
                write(zeros, &(&**value >> zeros).to_bytes_le())
            }
        }
    }

    /// The sum `with_shift_and_bytes` gave.
    pub fn from_shift_and_bytes(shift: u64, bytes: &[u8]) -> Sum {
        if bytes.len() <= 16 {
            let mut le = [0u8; 16];
            le[..bytes.len()].copy_from_slice(bytes);
            Sum::shifted(u128::from_le_bytes(le), shift)
        } else {
            Sum::whole(BigUint::from_bytes_le(bytes) << shift)
        }
    }

    /// About how many bytes of the heap it holds.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Sum::Big(value) => value.bits().div_ceil(64) as usize * 8 + size_of::<BigUint>(),
            _ => 0,
        }
    }

    /// `self += mantissa << shift`.
    pub fn add_shifted(&mut self, mantissa: u128, shift: u64) {
        let other = Sum::shifted(mantissa, shift);
        self.add(&other);
    }

    /// `self += other`.
    pub fn add(&mut self, other: &Sum) {
        match (&*self, other) {
            (_, Sum::Zero) => {}
            (Sum::Zero, _) => *self = other.clone(),
            (&Sum::Small { mantissa: a, shift: sa }, &Sum::Small { mantissa: b, shift: sb }) => {
                let low = sa.min(sb);
                let sum = widened(a, sa - low).zip(widened(b, sb - low)).and_then(|(a, b)| a.checked_add(b));
                *self = match sum {
                    Some(sum) => Sum::shifted(sum, low),
                    None => Sum::whole(self.to_big() + other.to_big()),
                };
            }
            _ => *self = Sum::whole(self.to_big() + other.to_big()),
        }
    }

    /// `self -= other`; `other` is part of `self` (a member's sums in its person's).
    pub fn sub(&mut self, other: &Sum) {
        match (&*self, other) {
            (_, Sum::Zero) => {}
            (&Sum::Small { mantissa: a, shift: sa }, &Sum::Small { mantissa: b, shift: sb }) => {
                let low = sa.min(sb);
                match widened(a, sa - low).zip(widened(b, sb - low)) {
                    Some((a, b)) => {
                        let rest = a.checked_sub(b).expect("a sum less a part of it");
                        *self = Sum::shifted(rest, low);
                    }
                    None => *self = Sum::whole(self.to_big() - other.to_big()),
                }
            }
            _ => *self = Sum::whole(self.to_big() - other.to_big()),
        }
    }
}

/// `mantissa << by`, if it fits 128 bits.
fn widened(mantissa: u128, by: u64) -> Option<u128> {
    (by < 128 && mantissa.leading_zeros() as u64 >= by).then(|| mantissa << by)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(sum: &Sum) -> BigUint {
        sum.to_big()
    }

    #[test]
    fn sums_are_exact_and_held_alike_whatever_their_width() {
        // weights as the scales make them: 49-bit mantissas beyond 600 low zero bits; and
        // amounts large enough to spill past 128 bits, and far apart in days
        let parts: Vec<(u128, u64)> = vec![
            (0x1_5555_5555_5555, 640),
            (3 << 100, 661),
            (u128::MAX, 700),
            (0x1_0000_0000_0001, 620),
            (1, 9),
            (7, 9),
        ];
        let mut sum = Sum::Zero;
        let mut whole = BigUint::zero();
        for (i, &(mantissa, shift)) in parts.iter().enumerate() {
            sum.add_shifted(mantissa, shift);
            whole += BigUint::from(mantissa) << shift;
            assert_eq!(big(&sum), whole, "after {i} parts");
            assert_eq!(sum, Sum::whole(whole.clone()), "held alike after {i} parts");
        }
        // taking the parts away again, in another order, ends at zero held as zero
        for &(mantissa, shift) in parts.iter().rev() {
            sum.sub(&Sum::shifted(mantissa, shift));
            whole -= BigUint::from(mantissa) << shift;
            assert_eq!((big(&sum), &sum), (whole.clone(), &Sum::whole(whole.clone())));
        }
        assert_eq!(sum, Sum::Zero);
    }

    #[test]
    fn a_sum_comes_back_from_its_shift_and_bytes() {
        let wide = Sum::whole((BigUint::from(u128::MAX) << 3) + 1u8);
        assert!(matches!(wide, Sum::Big(_)));
        for sum in [Sum::Zero, Sum::shifted(12, 640), Sum::shifted(u128::MAX, 1), wide] {
            let (shift, bytes) = sum.with_shift_and_bytes(|shift, bytes| (shift, bytes.to_vec()));
            assert_eq!(Sum::from_shift_and_bytes(shift, &bytes), sum);
            // the bytes the store wrote of a whole sum before (`codec`)
            let value = sum.to_big();
            let zeros = value.trailing_zeros().unwrap_or(0);
            assert_eq!((shift, bytes), (zeros, (&value >> zeros).to_bytes_le()));
        }
    }

    #[test]
    fn a_small_sum_spills_whole_when_it_outgrows_128_bits_and_comes_back() {
        let mut sum = Sum::shifted(u128::MAX, 0);
        sum.add(&Sum::shifted(1, 0));
        assert_eq!(sum, Sum::shifted(1, 128));
        sum.add(&Sum::shifted(1, 0));
        assert!(matches!(sum, Sum::Big(_)), "{sum:?}");
        sum.sub(&Sum::shifted(1, 0));
        assert_eq!(sum, Sum::shifted(1, 128));
    }
}
