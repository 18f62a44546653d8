//! Exponential decay in exact integers (see `crm2stream/core/decay.py`, the reference):
//! every amount is multiplied by `weight(day)` ~ 2**(day / half_life) in fixed point and
//! added to an exact integer sum, converted to a float once, at read.

use crate::sum::Sum;
use foldhash::{HashMap, HashMapExt};
use num_bigint::BigUint;
use std::cell::{Cell, RefCell};

pub const FX: i64 = 48;
pub const CREDIT_FX: i64 = 16;
pub const WEIGHT_FX: i64 = 8;

/// The value model's knobs, as handed over by the shell.
#[derive(Debug, Clone)]
pub struct Config {
    pub currency: String,
    pub id_key: Vec<u8>,
    pub ties: [u64; 4],
    pub consumption_scale: f64,
    pub popularity_scale: f64,
    pub social_scale: f64,
    pub reach_weight: f64,
    pub referred_revenue_weight: f64,
    pub weights: [f64; 3],
    pub tiers: Vec<(String, f64)>,
    pub delta: f64,
    /// how far (seconds) after its arrival an event may be dated
    pub future_tolerance: i64,
    /// label persons with their raw anchor, not a masked one (see `labels`)
    pub raw_labels: bool,
}

impl Config {
    pub fn tier_of(&self, composite: f64) -> &str {
        self.tiers.iter().find(|(_, min)| composite >= *min).or(self.tiers.last()).map_or("", |(name, _)| name.as_str())
    }
    pub fn lowest_tier(&self) -> &str {
        self.tiers.last().map_or("", |(name, _)| name.as_str())
    }
}

#[derive(Debug, Default)]
pub struct Scales {
    pub half_life: f64,
    /// per day, its weight's mantissa and shift
    weights: RefCell<HashMap<i64, (u64, u64)>>,
    /// as-of day -> (whole half-lives, 2 ** -fraction)
    days: RefCell<HashMap<i64, (i64, f64)>>,
    /// the entry of `days` read last: nearly every read is for the same day
    last_day: Cell<Option<(i64, i64, f64)>>,
}

impl Scales {
    pub fn new(half_life: f64) -> Self {
        Scales {
            half_life,
            weights: RefCell::new(HashMap::new()),
            days: RefCell::new(HashMap::new()),
            last_day: Cell::new(None),
        }
    }

    /// `weight(day) = round(2 ** frac(day / h) * 2 ** FX) << floor(day / h)`, as the
    /// reference computes it, as its mantissa (at most 49 bits) and shift.
    pub fn weight(&self, day: i64) -> (u64, u64) {
        if let Some(&w) = self.weights.borrow().get(&day) {
            return w;
        }
        let ratio = day as f64 / self.half_life;
        let whole = ratio.floor();
        let mantissa = (2f64.powf(ratio - whole) * (1u64 << FX) as f64).round_ties_even() as u64;
        // days are never before 1970 (the contract): whole half-lives are never negative
        let w = (mantissa, whole as u64);
        self.weights.borrow_mut().insert(day, w);
        w
    }

    /// `sum += amount * weight(day)`.
    pub fn add_weighted(&self, sum: &mut Sum, amount: u128, day: i64) {
        if amount == 0 {
            return;
        }
        let (mantissa, shift) = self.weight(day);
        match amount.checked_mul(u128::from(mantissa)) {
            Some(product) => sum.add_shifted(product, shift),
            None => sum.add(&Sum::whole((BigUint::from(amount) * mantissa) << shift)),
        }
    }

    /// The decayed value as of `as_of_day` of a weighted sum whose amounts carry
    /// `extra_bits` fixed-point bits.
    pub fn value(&self, total: &Sum, extra_bits: i64, as_of_day: i64) -> f64 {
        if total.is_zero() {
            return 0.0;
        }
        let (whole, factor) = match self.last_day.get() {
            Some((day, whole, factor)) if day == as_of_day => (whole, factor),
            _ => {
                let (whole, factor) = *self.days.borrow_mut().entry(as_of_day).or_insert_with(|| {
                    let ratio = as_of_day as f64 / self.half_life;
                    let whole = ratio.floor();
                    (whole as i64, 2f64.powf(whole - ratio))
                });
                self.last_day.set(Some((as_of_day, whole, factor)));
                (whole, factor)
            }
        };
        let shift = FX + extra_bits + whole;
        match total {
            Sum::Small { mantissa, shift: low } => scaled_small(*mantissa, *low as i64 - shift) * factor,
            _ => scaled(&total.to_big(), -shift) * factor,
        }
    }
}

/// `mantissa * 2**exp`, correctly rounded, as `scaled` gives it of the same value.
fn scaled_small(mantissa: u128, exp: i64) -> f64 {
    let bits = 128 - i64::from(mantissa.leading_zeros());
    let (top, dropped) = if bits <= 64 {
        (mantissa as u64, 0)
    } else {
        // the top 64 bits, and a sticky bit for any below (see `scaled`)
        let dropped = bits - 64;
        let sticky = mantissa & ((1u128 << dropped) - 1) != 0;
        ((mantissa >> dropped) as u64 | u64::from(sticky), dropped)
    };
    by_power_of_two(top as f64, dropped + exp)
}

/// `total * 2**exp`, correctly rounded (as Python's int true division by a power of two).
fn scaled(total: &BigUint, exp: i64) -> f64 {
    let bits = total.bits() as i64;
    let (top, dropped) = if bits <= 64 {
        (total.iter_u64_digits().next().unwrap_or(0), 0)
    } else {
        // The top 64 bits, read from the two highest digits; the bits below only matter
        // as a sticky bit, so that a tie is never seen where there is none.
        let mut digits = total.iter_u64_digits().rev();
        let high = digits.next().unwrap_or(0);
        let low = digits.next().unwrap_or(0);
        let shift = high.leading_zeros();
        let top = if shift == 0 { high } else { (high << shift) | (low >> (64 - shift)) };
        let sticky = (shift < 64 && low << shift != 0) || digits.any(|d| d != 0);
        (top | u64::from(sticky), bits - 64)
    };
    // round-to-nearest-even; the sticky bit breaks false ties
    by_power_of_two(top as f64, dropped + exp)
}

/// `value * 2**e`, exactly while in range.
fn by_power_of_two(mut value: f64, mut e: i64) -> f64 {
    while e > 0 {
        let step = e.min(1000);
        value *= power_of_two(step);
        e -= step;
    }
    while e < 0 {
        let step = (-e).min(1000);
        value /= power_of_two(step);
        e += step;
    }
    value
}

/// `2.0 ** n` for 0 <= n <= 1000, exactly: built from its exponent bits.
fn power_of_two(n: i64) -> f64 {
    debug_assert!((0..=1000).contains(&n));
    f64::from_bits(((1023 + n) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_of_two_are_exact() {
        for n in 0..=1000 {
            assert_eq!(power_of_two(n), 2f64.powi(n as i32), "2**{n}");
        }
    }

    #[test]
    fn a_day_read_again_gives_the_same_decay() {
        let scales = Scales::new(30.0);
        let total = Sum::shifted(123_456_789, 70);
        let first = scales.value(&total, 8, 20_000);
        assert_eq!(scales.value(&total, 8, 20_001), scales.value(&total, 8, 20_001));
        assert_eq!(scales.value(&total, 8, 20_000), first);
    }

    #[test]
    fn a_sum_held_small_is_valued_as_the_same_sum_held_whole() {
        let scales = Scales::new(30.0);
        for (mantissa, shift) in [(1, 600), (0x1_0000_0000_0001, 640), (u128::MAX, 700), (u128::MAX >> 60, 650), (3, 9)]
        {
            let small = Sum::shifted(mantissa, shift);
            let whole = small.to_big();
            for (extra, day) in [(0, 20_000), (16, 20_400), (8, 19_000)] {
                let exp = -(FX + extra + (day as f64 / 30.0).floor() as i64);
                let factor = 2f64.powf((day as f64 / 30.0).floor() - day as f64 / 30.0);
                assert_eq!(scales.value(&small, extra, day), scaled(&whole, exp) * factor, "{mantissa:x} << {shift}");
            }
        }
    }
}
