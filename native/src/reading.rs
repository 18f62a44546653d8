//! A state table read a page at a time: a page of persons (for the identity table, of
//! identifiers in key order), so that a core whose bodies live in a store needs only the
//! page's bodies in memory at once, and its reader holds only the page's rows (`export`
//! and `digest` of a directory far larger than memory).

use crate::digest::Digest;
use crate::facts::{Facts, Id};
use crate::identity::Partition;
use crate::json::J;
use crate::scales::Config;
use crate::tables::{end_of_day, Identity, PersonNames, View, STATE_TABLES};
use std::ops::Range;

/// Persons (or identifiers) per page.
pub const PAGE: usize = 20_000;

pub struct Reading {
    table: &'static str,
    as_of_day: i64,
    /// None only while a page is rendered (the page's view holds it)
    partition: Option<Partition>,
    identity: Option<Identity>,
    next: usize,
}

impl Reading {
    /// Read a state table as of a day; None for a table that is not one.
    pub fn new(facts: &Facts, cfg: &Config, table: &str, as_of_day: i64) -> Option<Self> {
        let partition = Partition::new(facts, end_of_day(as_of_day), &cfg.id_key);
        Self::of(facts, table, as_of_day, partition)
    }

    /// Read a table through a partition already made for the day.
    pub fn of(facts: &Facts, table: &str, as_of_day: i64, partition: Partition) -> Option<Self> {
        let table = *STATE_TABLES.iter().find(|t| **t == table)?;
        let identity = (table == "identity").then(|| Identity::new(facts, &partition, end_of_day(as_of_day)));
        Some(Reading { table, as_of_day, partition: Some(partition), identity, next: 0 })
    }

    pub fn into_partition(self) -> Partition {
        self.partition.expect("no page under way")
    }

    fn partition(&self) -> &Partition {
        self.partition.as_ref().expect("no page under way")
    }

    fn units(&self) -> usize {
        match &self.identity {
            Some(identity) => identity.order.len(),
            None => self.partition().persons.len(),
        }
    }

    fn page(&self, limit: usize) -> Range<usize> {
        self.next..(self.next + limit).min(self.units())
    }

    pub fn finished(&self) -> bool {
        self.next >= self.units()
    }

    /// The identifiers whose bodies the next page reads: the members of its persons (none
    /// for the tables that read no body: persons and identity).
    pub fn members_ahead(&self, limit: usize) -> Vec<Id> {
        if matches!(self.table, "persons" | "identity") {
            return Vec::new();
        }
        let persons = &self.partition().persons[self.page(limit)];
        persons.iter().flat_map(|p| p.members.iter().copied()).collect()
    }

    /// The next page, taken.
    fn advance(&mut self, limit: usize) -> Range<usize> {
        let range = self.page(limit);
        self.next = range.end;
        range
    }

    /// Render a page of persons through a view of them.
    fn with_view(&mut self, facts: &Facts, cfg: &Config, range: Range<usize>, render: impl FnOnce(&View<'_>)) {
        let partition = self.partition.take().expect("no page under way");
        let view = View::page(facts, cfg, self.as_of_day, partition, Some(range));
        render(&view);
        self.partition = Some(view.into_partition());
    }

    /// The next page's rows (their bodies resident), in key order; empty once every row
    /// was read.
    pub fn rows(&mut self, facts: &Facts, cfg: &Config, limit: usize) -> Vec<J> {
        let (table, range) = (self.table, self.advance(limit));
        if let Some(identity) = &self.identity {
            return identity.rows(facts, self.partition(), range).collect();
        }
        let mut rows = Vec::new();
        self.with_view(facts, cfg, range, |view| {
            view.each(table, &mut |row| rows.push(row));
        });
        rows
    }

    /// Hash the next page's rows into `digest`.
    pub fn digest(&mut self, facts: &Facts, cfg: &Config, limit: usize, digest: &mut Digest, names: &PersonNames) {
        let (table, range) = (self.table, self.advance(limit));
        if let Some(identity) = &self.identity {
            identity.rows(facts, self.partition(), range).for_each(|row| digest.row(&row));
            return;
        }
        self.with_view(facts, cfg, range, |view| view.digest_page(table, digest, names));
    }
}
