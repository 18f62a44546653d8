use super::body::{
    encode_body, encode_body_over, write_consent_and_sums, write_days, write_days_first, write_ties, Days, MAX_PARTS,
};
use super::*;
use crate::checkpoint::Loader;
use crate::facts::{Body, DayBucket, Facts, Tie, COUNTERS};
use crate::scales::Scales;
use crate::shares::Share;
use crate::sum::Sum;
use num_bigint::BigUint;

/// A format-1 record as the previous version wrote it (a worker's changelog).
fn v1_record(tie_to: &str) -> Vec<u8> {
    let mut w = Writer::into(Vec::new(), FORMAT);
    w.int(5);
    w.text("e1");
    w.uint(1); // days
    w.int(3);
    for c in 0..COUNTERS {
        w.uint(c as u128);
    }
    w.uint(250);
    w.uint(1); // ties
    w.text(tie_to);
    w.int(3);
    for c in [1, 0, 2, 0] {
        w.uint(c);
    }
    w.uint(1); // shares
    w.text("s1");
    w.int(5);
    w.opt_text(None);
    w.uint(2);
    w.uint(0); // consent
    w.uint(2); // mentions, skipped
    w.int(10);
    w.int(11);
    for sum in [7u32, 0, 9, 0] {
        w.bytes(&BigUint::from(sum).to_bytes_le());
    }
    w.0
}

#[test]
fn a_body_names_its_ties_by_number_and_reads_back_as_written() {
    let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    for key in ["qq:a", "qq:b", "qq:c"] {
        facts.intern(key, (1, "e1"));
    }
    let mut body = Body::default();
    body.bucket(3).bump(2);
    body.out = vec![
        Tie { target: 0, day: 3, counts: [1, 0, 0, 0] },
        Tie { target: 2, day: 1, counts: [0, 2, 0, 0] },
        Tie { target: 2, day: 4, counts: [0, 0, 0, 9] },
    ];
    body.sums[1] = Sum::shifted(77, 0);
    let record = encode_body(&body, Vec::new());
    assert_eq!(decode_body(&facts, &record), Ok(body.clone()));
    // a tie to a number no identifier has is a corrupt record, not a panic later
    let mut beyond = body;
    beyond.out.push(Tie { target: 3, day: 1, counts: [1, 0, 0, 0] });
    assert!(decode_body(&facts, &encode_body(&beyond, Vec::new())).is_err());
}

#[test]
fn a_glance_reads_the_consent_and_sums_of_a_body_as_decoding_it_does() {
    let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    for key in ["qq:a", "qq:b"] {
        facts.intern(key, (1, "e1"));
    }
    let mut body = Body::default();
    for day in [3, 9, 400] {
        body.bucket(day).bump(4);
        body.bucket(day).amount = u128::from(u64::MAX) * 3; // a number of several bytes
    }
    body.out = vec![Tie { target: 0, day: 3, counts: [1, 300, 0, 70_000] }, Tie { target: 1, day: 9, counts: [2; 4] }];
    let scope = ("brand".to_string(), "marketing".to_string(), "wechat".to_string());
    body.consent.insert(scope, vec![(5, "e7".into(), true, Some(99)), (8, "e9".into(), false, None)]);
    body.sums = [Sum::whole(BigUint::from(u128::MAX) * 5u32), Sum::Zero, Sum::shifted(9, 0), Sum::shifted(1, 200)];
    for record in [encode_body(&body, Vec::new()), {
        // an older directory's body, format 1: its ties named by key
        let mut w = Writer::into(Vec::new(), FORMAT);
        write_body_keyed(&mut w, &facts, &body);
        w.0
    }] {
        let glance = glance_body(&facts, &record).unwrap();
        assert_eq!((glance.consent, glance.sums), (body.consent.clone(), body.sums.clone()));
        // a body cut short is a corrupt record, not a glance of something else
        assert!(glance_body(&facts, &record[..5]).is_err());
        assert!(decode_body(&facts, &record[..record.len() - 1]).is_err());
    }
}

#[test]
fn a_glance_reads_only_the_head_of_a_body_of_this_format() {
    let facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    let mut body = Body::default();
    body.sums[3] = Sum::shifted(12, 0);
    let short = encode_body(&body, Vec::new());
    for day in 0..2_000 {
        body.bucket(day).bump(1);
    }
    let long = encode_body(&body, Vec::new());
    // a step, a mask and a count each
    assert!(long.len() > short.len() + 2_000 * 3);
    // the days after the head are neither read nor checked by a glance
    let head = short.len() - 2; // without the counts of its days and ties (none)
    assert_eq!(glance_body(&facts, &long[..head]).unwrap().sums, body.sums);
    assert_eq!(decode_body(&facts, &long), Ok(body));
}

#[test]
fn days_are_written_as_steps_and_a_record_whose_days_do_not_increase_is_corrupt() {
    let facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    let mut body = Body::default();
    for day in [20_400, 3, 20_401, -5] {
        body.bucket(day).bump(0);
        body.bucket(day).amount = 1 << 70;
    }
    let record = encode_body(&body, Vec::new());
    assert_eq!(decode_body(&facts, &record), Ok(body));
    // nor is a record of format 3 whose days do not increase: it is not stored again
    let mut w = Writer::into(Vec::new(), BODY_FORMAT_3).shifting();
    let repeated = Body { days: vec![DayBucket { day: 9, ..DayBucket::default() }; 2], ..Body::default() };
    write_days_first(&mut w, &repeated);
    assert!(decode_body(&facts, &w.0).unwrap_err().contains("out of order"));
    // formats 4 (every counter) and 5 (a mask of those not zero)
    for (format, zeros) in [(BODY_FORMAT_4, COUNTERS + 1), (BODY_FORMAT_5, 1)] {
        for steps in [[20_400, 0], [20_400, -1]] {
            let mut w = Writer::into(Vec::new(), format).shifting();
            w.uint(0); // consent
            for _ in 0..4 {
                w.uint(0);
                w.bytes(&[]);
            }
            w.uint(2);
            for step in steps {
                w.int(step);
                for _ in 0..zeros {
                    w.uint(0);
                }
            }
            w.uint(0); // ties
            assert!(decode_body(&facts, &w.0).unwrap_err().contains("out of order"), "{format} {steps:?}");
        }
    }
}

/// `body` as formats 4 and 5 wrote it: consent and sums, then its days and ties, one
/// part not counted.
fn one_part_record(format: u8, body: &Body, how: Days) -> Vec<u8> {
    let mut w = Writer::into(Vec::new(), format).shifting();
    write_consent_and_sums(&mut w, body);
    write_days(&mut w, &body.days, how);
    write_ties(&mut w, &body.out, how);
    w.0
}

/// A body with counters of every kind: some zero, one at its limit, amounts of 0, 1
/// and beyond 64 bits, and ties to one target over several days.
fn body_of_every_counter() -> Body {
    let mut body = Body::default();
    for (day, counter) in [(20_000, 0), (20_001, 10), (20_005, 5), (20_400, 9)] {
        body.bucket(day).bump(counter);
        body.bucket(day).bump(day as usize % COUNTERS);
    }
    body.bucket(20_001).amount = 1;
    body.bucket(20_005).amount = 1 << 100;
    body.bucket(20_400).counts[7] = u32::MAX;
    body.out = vec![
        Tie { target: 0, day: 20_000, counts: [1, 0, 0, 0] },
        Tie { target: 0, day: 20_003, counts: [0, 0, 5, 0] },
        Tie { target: 1, day: 19_000, counts: [0, 0, 0, u32::MAX] },
        Tie { target: 1, day: 20_400, counts: [2, 3, 4, 5] },
    ];
    body.sums[0] = Sum::shifted(3, 0);
    body
}

#[test]
fn bodies_keep_only_the_counters_not_zero_and_bodies_of_format_4_still_read() {
    let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    for key in ["qq:a", "qq:b"] {
        facts.intern(key, (1, "e1"));
    }
    let body = body_of_every_counter();
    let record = encode_body(&body, Vec::new());
    assert_eq!(record[0], BODY_FORMAT);
    assert_eq!(decode_body(&facts, &record), Ok(body.clone()));
    // format 4 wrote every counter
    let old = one_part_record(BODY_FORMAT_4, &body, Days::Stepped);
    assert_eq!(decode_body(&facts, &old), Ok(body.clone()));
    assert_eq!(glance_body(&facts, &old).unwrap().sums, body.sums);
    assert!(record.len() + 4 * (COUNTERS - 3) < old.len(), "{} against {}", record.len(), old.len());
}

#[test]
fn a_counter_mask_that_does_not_say_what_follows_is_a_corrupt_record() {
    let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    facts.intern("qq:a", (1, "e1"));
    let record = |days: &[(u64, &[u64])], ties: &[(u64, &[u64])]| {
        let mut w = Writer::into(Vec::new(), BODY_FORMAT_5).shifting();
        write_consent_and_sums(&mut w, &Body::default());
        for list in [days, ties] {
            w.uint64(list.len() as u64);
            for &(mask, values) in list {
                if std::ptr::eq(list, ties) {
                    w.uint64(0); // the step to its target, 0
                }
                w.int(1); // a day
                w.uint64(mask);
                values.iter().for_each(|&v| w.uint64(v));
            }
        }
        w.0
    };
    let good = record(&[(1 << 11 | 1, &[2, 7])], &[(0b1001, &[1, 1])]);
    assert_eq!(decode_body(&facts, &good).unwrap().days[0].amount, 7);
    for (bad, why) in [
        // beyond the amount's bit; a tie has no amount
        (record(&[(1 << 12, &[])], &[]), "names no counter"),
        (record(&[], &[(1 << 4, &[])]), "names no counter"),
        (record(&[(0b11, &[4, 0])], &[]), "is zero"),
        (record(&[(1 << 11, &[0])], &[]), "is zero"),
        (good[..good.len() - 1].to_vec(), "ends early"),
    ] {
        assert!(decode_body(&facts, &bad).unwrap_err().contains(why), "{why}");
    }
}

#[test]
fn numbers_of_64_bits_and_more_read_back_as_written() {
    let mut w = Writer::default();
    for v in [0, 0x7f, 0x80, u64::MAX] {
        w.uint64(v);
        w.uint(v.into());
    }
    w.uint(u128::from(u64::MAX) + 1);
    w.uint(u128::MAX);
    let mut r = Reader { data: &w.0, at: 0, sums: Sums::Whole };
    for v in [0, 0x7f, 0x80, u64::MAX] {
        assert_eq!(r.uint64(), Ok(v));
        assert_eq!(r.uint(), Ok(v.into()));
    }
    let at = r.at;
    assert_eq!(r.uint64(), Err("number beyond 64 bits".into())); // not cut to 64 bits
    r.at = at;
    assert_eq!(r.uint(), Ok(u128::from(u64::MAX) + 1));
    assert_eq!(r.uint(), Ok(u128::MAX));
    assert_eq!(r.at, w.0.len());
}

#[test]
fn sums_are_written_shifted_and_bodies_with_whole_sums_still_read() {
    let facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    let scales = Scales::new(30.0);
    let mut body = Body::default();
    for (day, amount) in [(20_000, 3u128), (20_400, 1 << 90), (19_990, 7)] {
        scales.add_weighted(&mut body.sums[0], amount, day);
    }
    body.sums[2] = Sum::shifted(5, 0);
    let record = encode_body(&body, Vec::new());
    assert_eq!(decode_body(&facts, &record), Ok(body.clone()));
    // format 3 wrote its days first and each whole; it reads as before
    let mut days_first = Writer::into(Vec::new(), BODY_FORMAT_3).shifting();
    write_days_first(&mut days_first, &body);
    assert_eq!(decode_body(&facts, &days_first.0), Ok(body.clone()));
    assert_eq!(glance_body(&facts, &days_first.0).unwrap().sums, body.sums);
    // format 2 wrote them whole: its bodies read as before, and take more bytes
    let mut whole = Writer::into(Vec::new(), BODY_FORMAT_2);
    write_days_first(&mut whole, &body);
    assert_eq!(decode_body(&facts, &whole.0), Ok(body.clone()));
    let glance = glance_body(&facts, &whole.0).unwrap();
    assert_eq!(glance.sums, body.sums);
    assert!(record.len() + 50 < whole.0.len(), "{} against {}", record.len(), whole.0.len());
    // a shift no sum can have is a corrupt record, not an allocation without bound
    let mut w = Writer::into(Vec::new(), BODY_FORMAT).shifting();
    w.uint(0); // consent
    w.uint(MAX_SHIFT + 1);
    w.bytes(&[1]);
    assert!(decode_body(&facts, &w.0).unwrap_err().contains("shifted by"));
    assert!(glance_body(&facts, &w.0).unwrap_err().contains("shifted by"));
}

/// `body` as format 1 stored it.
fn write_body_keyed(w: &mut Writer, facts: &Facts, body: &Body) {
    write_days(w, &body.days, Days::Whole);
    w.uint(body.out.len() as u128);
    for tie in &body.out {
        w.text(facts.key(tie.target));
        w.int(tie.day.into());
        for &c in &tie.counts {
            w.uint(c.into());
        }
    }
    write_consent_and_sums(w, body);
}

#[test]
fn a_loaded_identifier_gets_its_number_back_or_the_record_is_corrupt() {
    let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    assert_eq!(facts.intern_at("qq:a", 0, (1, "e1")), Ok(0));
    assert_eq!(facts.intern_at("qq:a", 0, (1, "e1")), Ok(0)); // a later segment's record
    assert!(facts.intern_at("qq:a", 1, (1, "e1")).is_err());
    assert!(facts.intern_at("qq:b", 5, (1, "e1")).is_err()); // numbers come in order
    assert!(facts.intern_at("qq:b", 0, (1, "e1")).is_err());
    assert_eq!(facts.intern_at("qq:b", 1, (1, "e1")), Ok(1));
}

/// A part holding these identifier records, framed as a segment frames them.
fn part_of(records: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut part = Vec::new();
    for (key, record) in records {
        part.push(b'i');
        part.push(key.len() as u8);
        part.extend_from_slice(key.as_bytes());
        let mut len = Writer::default();
        len.uint(record.len() as u128);
        part.extend_from_slice(&len.0);
        part.extend_from_slice(record);
    }
    part
}

/// A format-2 record of the previous version: identifiers named by key, its body in
/// the store under checkpoint 1, nothing said of the table topics.
fn v2_record(incoming_from: &str) -> Vec<u8> {
    let mut w = Writer::into(Vec::new(), IDENT_FORMAT_2);
    w.int(5);
    w.text("e1");
    w.uint(0); // shares
    w.uint(1);
    w.text(incoming_from);
    w.uint(1); // stored under checkpoint 1
    w.0
}

#[test]
fn a_format_2_record_and_a_body_naming_ties_by_key_load() {
    let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    let mut loader = Loader::default();
    let part = part_of(&[("qq:b", v2_record("qq:a")), ("qq:a", v2_record("qq:b"))]);
    loader.part(&mut facts, &part).unwrap();
    assert!(loader.finish(&mut facts).unwrap().is_none(), "format 2 says nothing of the topics");
    let (a, b) = (facts.id_of("qq:a").unwrap(), facts.id_of("qq:b").unwrap());
    assert_eq!((b, a), (0, 1), "numbered in the order they load");
    assert_eq!(facts.incoming[b as usize].as_slice(), [a]);
    assert_eq!(facts.idents[a as usize].stored, 1);
    // its body as format 1 stored it: ties by key
    let mut w = Writer::into(Vec::new(), FORMAT);
    w.uint(0); // days
    w.uint(1);
    w.text("qq:b");
    w.int(3);
    for c in [1, 0, 2, 0] {
        w.uint(c);
    }
    w.uint(0); // consent
    for _ in 0..4 {
        w.bytes(&[]);
    }
    let body = decode_body(&facts, &w.0).unwrap();
    assert_eq!(body.out, vec![Tie { target: b, day: 3, counts: [1, 0, 2, 0] }]);
}

#[test]
fn a_record_of_this_format_replaces_an_earlier_format_whole() {
    // A worker's changelog: format-1 records, then a full segment of this version
    // after a's ties grew. Loaded in order, the earlier records' ties must not come
    // back over the latest body, nor make the load say nothing of the topics.
    let old = part_of(&[("qq:a", v1_record("qq:b")), ("qq:b", v1_record("qq:a"))]);
    let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    let mut loader = Loader::default();
    loader.part(&mut facts, &old).unwrap();
    loader.finish(&mut facts).unwrap();
    let a = facts.id_of("qq:a").unwrap();
    facts.body_mut(a).out[0].counts = [5, 5, 5, 5];
    let mut segment = crate::checkpoint::Segment::begin(&mut facts, true, None);
    let mut loader = Loader::default();
    let mut fresh = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    loader.part(&mut fresh, &old).unwrap();
    while let Some(part) = segment.next_part(&facts) {
        loader.part(&mut fresh, &part).unwrap();
    }
    assert!(loader.finish(&mut fresh).unwrap().is_some(), "the latest records say what was published");
    assert_eq!(fresh.body(fresh.id_of("qq:a").unwrap()).out[0].counts, [5, 5, 5, 5]);
}

#[test]
fn a_format_1_identifier_record_loads_with_its_incoming_ties_derived() {
    let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    let part = part_of(&[("qq:a", v1_record("qq:b")), ("qq:b", v1_record("qq:a"))]);
    let mut loader = Loader::default();
    loader.part(&mut facts, &part).unwrap();
    loader.finish(&mut facts).unwrap();
    let (a, b) = (facts.id_of("qq:a").unwrap(), facts.id_of("qq:b").unwrap());
    let body = facts.body(a);
    assert_eq!(body.days[0].amount, 250);
    assert_eq!(body.out, vec![Tie { target: b, day: 3, counts: [1, 0, 2, 0] }]);
    assert_eq!(body.sums[2], Sum::shifted(9, 0));
    assert_eq!(facts.incoming[a as usize].as_slice(), [b]);
    assert_eq!(facts.incoming[b as usize].as_slice(), [a]);
    assert!(facts.shares.get("s1").is_some_and(|sid| facts.shares.made(sid).is_some()));
}

#[test]
fn a_shifted_sum_is_written_as_its_shifted_bytes() {
    let mut values = vec![BigUint::default(), BigUint::from(1u32), BigUint::from(0x80u32) << 63];
    let mut x = BigUint::from(0x9e37_79b9_7f4a_7c15u64);
    for shift in [0, 1, 7, 8, 63, 64, 65, 127, 128, 600, 701] {
        x = &x * 0x2545_f491_4f6c_dd1du64 + 1u32;
        values.push(&x << shift);
        values.push(BigUint::from(1u32) << shift);
        values.push((BigUint::from(u64::MAX) << shift) + (BigUint::from(1u32) << (shift + 200)));
    }
    for sum in values {
        let mut w = Writer::default().shifting();
        w.sum(&Sum::whole(sum.clone()));
        let shift = sum.trailing_zeros().unwrap_or(0);
        let mut expected = Writer::default();
        expected.uint(shift.into());
        expected.bytes(&(&sum >> shift).to_bytes_le());
        assert_eq!(w.0, expected.0, "{sum:x}");
        let mut r = Reader { data: &w.0, at: 0, sums: Sums::Shifted };
        assert_eq!(r.sum(), Ok(Sum::whole(sum)));
    }
}

/// What a batch adds to `body_of_every_counter` (and to a body opened over it): a day it
/// has and one it has not, a tie it has (at its limit: adding saturates) and a new one,
/// a consent entry and a sum.
fn add_a_batch(body: &mut Body, round: u32) {
    body.bucket(20_400).bump(1);
    body.bucket(20_400).counts[7] = body.bucket(20_400).counts[7].saturating_add(1);
    body.bucket(20_500 + i64::from(round)).bump(2);
    body.bucket(20_005).amount += 5;
    for (target, day, field) in [(1, 19_000, 3), (0, 20_600 + round as i32, 0)] {
        match body.out.binary_search_by(|t| (t.target, t.day).cmp(&(target, day))) {
            Ok(at) => body.out[at].counts[field] = body.out[at].counts[field].saturating_add(1),
            Err(at) => {
                let mut tie = Tie { target, day, counts: [0; 4] };
                tie.counts[field] = 1;
                body.out.insert(at, tie);
            }
        }
    }
    let scope = ("brand".to_string(), "marketing".to_string(), "email".to_string());
    let (history, entry) = (body.consent.history_mut(scope), (i64::from(round), format!("p{round}"), true, None));
    history.insert(crate::fold::sorted_at(history, &entry), entry);
    body.sums[1].add_shifted(u128::from(round + 1), 700);
}

#[test]
fn a_body_opened_and_packed_again_adds_a_part_and_reads_back_whole() {
    let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    for key in ["qq:a", "qq:b"] {
        facts.intern(key, (1, "e1"));
    }
    let mut whole = body_of_every_counter();
    let mut record = encode_body(&whole, Vec::new());
    assert_eq!(record[0], BODY_FORMAT);
    let mut parts = 1;
    for round in 0..2 * MAX_PARTS as u32 {
        let mut opened = open_body(&record).unwrap().expect("a record with parts opens");
        assert!(opened.days.is_empty() && opened.out.is_empty());
        assert_eq!((&opened.consent, &opened.sums), (&whole.consent, &whole.sums));
        add_a_batch(&mut opened, round);
        add_a_batch(&mut whole, round);
        let packed = encode_body_over(&opened, &record, Vec::new());
        assert_eq!(decode_body(&facts, &packed), Ok(whole.clone()), "round {round}");
        assert_eq!(glance_body(&facts, &packed).unwrap().sums, whole.sums);
        if parts < MAX_PARTS {
            parts += 1;
            // the parts before are copied as they were, after the new one
            let before = super::body::parts_of(&record).unwrap().0.rest().to_vec();
            assert!(packed.ends_with(&before), "round {round}");
        } else {
            // merged into one: the record of the whole body
            parts = 1;
            assert_eq!(packed, encode_body(&whole, Vec::new()), "round {round}");
        }
        // merged into the opened body, as a reader of the whole body does
        let mut merged = open_body(&record).unwrap().unwrap();
        add_a_batch(&mut merged, round);
        merge_earlier(&facts, &mut merged, &record).unwrap();
        assert_eq!(merged, whole);
        record = packed;
    }
    // a body to which nothing was added but to its sums writes no part
    let mut opened = open_body(&record).unwrap().unwrap();
    opened.sums[2].add_shifted(1, 0);
    whole.sums[2].add_shifted(1, 0);
    let packed = encode_body_over(&opened, &record, Vec::new());
    assert_eq!(super::body::parts_of(&packed).unwrap().1, parts);
    assert_eq!(decode_body(&facts, &packed), Ok(whole.clone()));
    // a record of format 5 (one part, not counted) opens too
    let five = one_part_record(BODY_FORMAT_5, &whole, Days::Sparse);
    assert_eq!(decode_body(&facts, &five), Ok(whole.clone()));
    let mut opened = open_body(&five).unwrap().unwrap();
    add_a_batch(&mut opened, 99);
    add_a_batch(&mut whole, 99);
    assert_eq!(decode_body(&facts, &encode_body_over(&opened, &five, Vec::new())), Ok(whole));
    // earlier formats are decoded whole instead
    let mut days_first = Writer::into(Vec::new(), BODY_FORMAT_3).shifting();
    write_days_first(&mut days_first, &Body::default());
    assert_eq!(open_body(&days_first.0), Ok(None));
}

#[test]
fn a_damaged_part_is_kept_and_told_not_merged_away() {
    let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    for key in ["qq:a", "qq:b"] {
        facts.intern(key, (1, "e1"));
    }
    // MAX_PARTS parts, the last one damaged: its two days the same (a step of 0), or a
    // tie to a number no identifier has
    let record = |damage: &str| {
        let mut w = Writer::into(Vec::new(), BODY_FORMAT).shifting();
        write_consent_and_sums(&mut w, &Body::default());
        w.uint64(MAX_PARTS as u64);
        for part in 0..MAX_PARTS {
            let last = part + 1 == MAX_PARTS;
            let bucket = DayBucket { day: 20_000 + part as i32, counts: [1; COUNTERS], amount: 1 };
            let days = if last && damage == "days" { vec![bucket.clone(), bucket] } else { vec![bucket] };
            let mut d = Writer::into(Vec::new(), BODY_FORMAT).shifting();
            write_days(&mut d, &days, Days::Whole); // each day whole: the second a step of 0
            if damage == "days" && last {
                w.0.extend_from_slice(&d.0[1..]);
            } else {
                write_days(&mut w, &days, Days::Sparse);
            }
            let target = if last && damage == "tie" { 7 } else { 0 };
            write_ties(&mut w, &[Tie { target, day: 20_000, counts: [1, 0, 0, 0] }], Days::Sparse);
        }
        w.0
    };
    for (damage, why) in [("days", "out of order"), ("tie", "unknown number 7")] {
        let damaged = record(damage);
        assert!(decode_body(&facts, &damaged).unwrap_err().contains(why), "{damage}");
        let mut opened = open_body(&damaged).unwrap().unwrap();
        opened.bucket(20_100).bump(0);
        let before = opened.clone();
        assert!(merge_earlier(&facts, &mut opened, &damaged).unwrap_err().contains(why), "{damage}");
        assert_eq!(opened, before, "a merge that fails leaves the body as it was ({damage})");
        // packed past MAX_PARTS: parts that do not read are kept as they are, one more
        // in front; a tie to an unknown number reads, is merged, and is told when read
        let packed = encode_body_over(&opened, &damaged, Vec::new());
        let parts = super::body::parts_of(&packed).unwrap().1;
        assert_eq!(parts, if damage == "days" { MAX_PARTS + 1 } else { 1 }, "{damage}");
        assert!(decode_body(&facts, &packed).unwrap_err().contains(why), "{damage}");
    }
    // a record is checked when opened as far as the count of its parts
    let mut cut = Writer::into(Vec::new(), BODY_FORMAT).shifting();
    write_consent_and_sums(&mut cut, &Body::default());
    assert!(open_body(&cut.0).is_err(), "no count of parts");
}

#[test]
fn a_record_whose_parts_are_not_what_it_says_is_corrupt() {
    let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    facts.intern("qq:a", (1, "e1"));
    let record = |parts: u64, days: &[&[i64]]| {
        let mut w = Writer::into(Vec::new(), BODY_FORMAT).shifting();
        write_consent_and_sums(&mut w, &Body::default());
        w.uint64(parts);
        for part in days {
            w.uint64(part.len() as u64);
            for &step in *part {
                w.int(step);
                w.uint64(1); // a mask: the first counter
                w.uint64(1);
            }
            w.uint64(0); // ties
        }
        w.0
    };
    // two parts, each in order, the same day in both: added up
    let good = record(2, &[&[20_000, 3], &[20_001, 2]]);
    let body = decode_body(&facts, &good).unwrap();
    let days: Vec<(i32, u32)> = body.days.iter().map(|b| (b.day, b.counts[0])).collect();
    assert_eq!(days, [(20_000, 1), (20_001, 1), (20_003, 2)]);
    for (bad, why) in [
        (record(3, &[&[20_000], &[20_001]]), "ends early"),
        (record(2, &[&[20_000, 0], &[20_001]]), "out of order"),
        (record(2, &[&[20_000], &[20_001, -1]]), "out of order"),
    ] {
        assert!(decode_body(&facts, &bad).unwrap_err().contains(why), "{why}");
        let opened = open_body(&bad).unwrap().unwrap();
        assert!(merge_earlier(&facts, &mut opened.clone(), &bad).unwrap_err().contains(why), "{why}");
    }
}

/// Facts with one identifier, `qq:a`, that made these shares (share, parent) in order.
fn sharer(shares: &[(&str, Option<&str>)]) -> Facts {
    let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    let (a, _) = facts.intern("qq:a", (1, "e1"));
    for (ts, &(share, parent)) in shares.iter().enumerate() {
        let sid = facts.shares.intern(share);
        let parent = parent.map(|parent| facts.shares.intern(parent));
        facts.shares.make(sid, Share { actor: a, ts: ts as i64, parent, recipients: 1 });
        facts.idents[a as usize].shares.push(sid);
        facts.dirty.shares.push(sid);
    }
    facts
}

/// An identifier's shares as (share, parent), in its list's order.
fn shares_of(facts: &Facts, id: Id) -> Vec<(&str, Option<&str>)> {
    let of = |sid| (facts.shares.key(sid), facts.shares.of(sid).parent.map(|p| facts.shares.key(p)));
    facts.idents[id as usize].shares.iter().map(|&sid| of(sid)).collect()
}

/// A format-4 record of identifier 0 as the previous version wrote it: its shares
/// listed, its body in the store under checkpoint 1, never published.
fn v4_record(facts: &Facts) -> Vec<u8> {
    let mut w = Writer::into(Vec::new(), IDENT_FORMAT_4).shifting();
    w.int(1);
    w.text("e1");
    w.uint(0);
    w.uint(facts.idents[0].shares.len() as u128);
    for &sid in &facts.idents[0].shares {
        let share = facts.shares.of(sid);
        w.text(facts.shares.key(sid));
        w.int(share.ts);
        w.opt_text(share.parent.map(|parent| facts.shares.key(parent)));
        w.uint(share.recipients.into());
    }
    w.uint(0); // incoming
    w.uint(1); // stored
    w.uint(0); // published under no anchor
    w.0.push(0);
    w.0
}

#[test]
fn format_4_records_loaded_over_each_other_keep_each_share_once() {
    // The later record lists the earlier one's shares and then new ones (as an
    // incremental checkpoint wrote them), or, made by hand, in another order.
    let first = sharer(&[("s1", None), ("s2", Some("s0"))]);
    let later = sharer(&[("s1", None), ("s2", Some("s0")), ("s3", Some("s1"))]);
    let reordered = sharer(&[("s3", Some("s1")), ("s2", Some("s0")), ("s1", None)]);
    for second in [&later, &reordered] {
        let mut fresh = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
        let mut loader = Loader::default();
        loader.part(&mut fresh, &part_of(&[("qq:a", v4_record(&first))])).unwrap();
        loader.part(&mut fresh, &part_of(&[("qq:a", v4_record(second))])).unwrap();
        loader.finish(&mut fresh).unwrap();
        let mut listed = shares_of(&fresh, 0);
        let mut expected = shares_of(second, 0);
        listed.sort_unstable();
        expected.sort_unstable();
        assert_eq!(listed, expected);
        assert_eq!(fresh.shares.footprint().0, 3, "shares made: s1, s2, s3 (s0 only named)");
        let ts = |facts: &Facts| facts.shares.get("s3").map(|sid| facts.shares.of(sid).ts);
        assert_eq!(ts(&fresh), ts(second));
    }
}

#[test]
fn shares_are_records_of_their_own_written_once_and_listed_again_at_a_load() {
    let mut facts = sharer(&[("s1", None), ("s2", Some("s0"))]);
    let mut full = crate::checkpoint::Segment::begin(&mut facts, true, None);
    let mut older = Vec::new();
    while let Some(part) = full.next_part(&facts) {
        older.push(part);
    }
    // a share made after: the next segment holds it and no other share, and its
    // identifier's record lists none
    let s3 = facts.shares.intern("s3");
    let parent = facts.shares.get("s1");
    facts.shares.make(s3, Share { actor: 0, ts: 7, parent, recipients: 4 });
    facts.idents[0].shares.push(s3);
    facts.dirty.shares.push(s3);
    facts.changed(0);
    let mut increment = crate::checkpoint::Segment::begin(&mut facts, false, None);
    let mut newer = Vec::new();
    while let Some(part) = increment.next_part(&facts) {
        newer.push(part);
    }
    let tables = |parts: &[Vec<u8>]| -> Vec<(u8, String)> {
        let mut out = Vec::new();
        for part in parts {
            for frame in crate::checkpoint::frames(part) {
                let (table, key, _) = frame.unwrap();
                out.push((table, String::from_utf8(key.to_vec()).unwrap()));
            }
        }
        out
    };
    assert_eq!(tables(&newer), [(b'i', "qq:a".to_string()), (b's', "s3".to_string())]);
    assert!(tables(&older).contains(&(b's', "s2".to_string())));
    // loaded with a format-4 record of the identifier in between, listing two shares
    let mut fresh = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    let mut loader = Loader::default();
    for part in &older {
        loader.part(&mut fresh, part).unwrap();
    }
    loader.part(&mut fresh, &part_of(&[("qq:a", v4_record(&sharer(&[("s1", None), ("s2", Some("s0"))])))])).unwrap();
    for part in &newer {
        loader.part(&mut fresh, part).unwrap();
    }
    loader.finish(&mut fresh).unwrap();
    assert_eq!(shares_of(&fresh, 0), shares_of(&facts, 0));
    let made = |facts: &Facts, key| facts.shares.made(facts.shares.get(key).unwrap());
    assert_eq!(made(&fresh, "s3"), made(&facts, "s3"));
    // a share record naming a sharer no record loaded is corrupt
    let record = encode_share(&facts, s3, Vec::new());
    let mut empty = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    assert!(decode_share(&mut empty, "s3", &record).is_err());
}

#[test]
fn an_identifier_record_of_an_unknown_format_is_corrupt() {
    let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    let mut record = encode_ident(&sharer(&[]), 0, true, Vec::new());
    assert!(decode_ident(&mut facts, "qq:a", &record).is_ok());
    record[0] = IDENT_FORMAT + 1;
    let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
    let why = decode_ident(&mut facts, "qq:a", &record).err();
    assert!(why.is_some_and(|why| why.contains("unknown format")));
    assert!(decode_ident(&mut facts, "qq:a", &[]).is_err());
}
