//! What one event does to the facts: its identifiers' day buckets, ties, consent and
//! decayed sums, the link history of a pair, and a share's cascade (`shares`).

use crate::decode::{Event, Kind, DAY_US};
use crate::facts::{
    Facts, Id, Incoming, LinkEntry, Tie, CHANGED_TIES, PURCHASES, R_COMMENT, R_REPLY, R_SHARE, S_CONSUMPTION,
    S_POPULARITY,
};
use foldhash::HashSet;

/// Where to insert into a sorted list, after its equals: how consent and link histories
/// grow.
pub(crate) fn sorted_at<T: Ord>(list: &[T], item: &T) -> usize {
    list.partition_point(|x| x <= item)
}

/// The ids of an event's identifiers by role, from `ids` in the order of
/// `Event::identifiers` (actor, link, content owner, replied-to, recipients).
pub(crate) struct Roles<'a> {
    pub actor: Id,
    pub link: Option<Id>,
    pub content_owner: Option<Id>,
    pub reply_to: Option<Id>,
    pub recipients: &'a [Id],
}

impl<'a> Roles<'a> {
    fn of(event: &Event<'_>, ids: &'a [Id]) -> Self {
        let mut at = 1;
        let mut next = |present: bool| {
            present.then(|| {
                at += 1;
                ids[at - 1]
            })
        };
        let link = next(event.link.is_some());
        let content_owner = next(event.content_owner.is_some());
        let reply_to = next(event.reply_to.is_some());
        Roles { actor: ids[0], link, content_owner, reply_to, recipients: &ids[at..] }
    }
}

impl Facts {
    /// Apply one valid event whose event_id was not accepted before (the caller knows:
    /// `seen`, or a keyed index of its own).
    pub fn apply(&mut self, event: &Event<'_>, position: i64) {
        let event_id: &str = &event.id;
        let ts = event.ts;
        let day = ts.div_euclid(DAY_US);
        if self.max_ts.is_none_or(|m| ts > m) {
            self.max_ts = Some(ts);
        }
        // each key looked up once: `ids` follows `event.identifiers()`, `named` each once
        let mut ids: Vec<Id> = Vec::with_capacity(4 + event.recipients.len());
        let mut named: Vec<Id> = Vec::with_capacity(4);
        for key in event.identifiers() {
            let (id, new) = self.intern(key, (ts, event_id));
            ids.push(id);
            if named.contains(&id) {
                continue;
            }
            if !new && (ts, event_id) < self.first(id) {
                self.idents[id as usize].first_ts = ts;
                self.firsts.set(id, event_id);
                self.forget_person(id);
            }
            // every identifier an event names is touched: its person is valued after the
            // batch (see `changes`), with the sharers its credit reaches
            self.touched.insert(id);
            self.changed(id);
            self.unpublished.insert(id);
            if self.indexes {
                self.mentioned.push((id, position));
            }
            named.push(id);
        }
        let roles = Roles::of(event, &ids);
        let actor = roles.actor;
        let kind = event.kind;
        self.body_mut(actor).bucket(day).bump(kind.done());
        match kind {
            Kind::Identify | Kind::Unlink => {
                let link = roles.link.expect("a link event names its link");
                self.link(actor, link, (ts, event_id.into(), kind == Kind::Identify));
                self.forget_person(actor);
                self.forget_person(link);
            }
            Kind::Share => self.share(event, &roles, day),
            Kind::Comment => {
                if let Some(owner) = roles.content_owner {
                    self.receive(actor, owner, day, R_COMMENT);
                }
                if let Some(replied) = roles.reply_to {
                    self.receive(actor, replied, day, R_REPLY);
                }
            }
            Kind::Purchase => {
                let units = event.units;
                self.will_change(actor);
                let body = Self::resident(&mut self.idents[actor as usize]);
                let bucket = body.bucket(day);
                bucket.bump(PURCHASES);
                bucket.amount += units;
                self.scales.add_weighted(&mut body.sums[S_CONSUMPTION], units, day);
                if let Some(sid) = event.referral.as_deref() {
                    self.refer(sid, ts, units, day);
                }
            }
            Kind::Permission => {
                let scope = (event.grantee.to_string(), event.purpose.clone(), event.channel.clone());
                let entry = (ts, event_id.to_string(), event.granted, event.expires);
                self.will_change(actor);
                let history = self.body_mut(actor).consent.history_mut(scope);
                history.reserve_exact(1); // a scope's history takes a few entries, kept at its length
                history.insert(sorted_at(history, &entry), entry);
            }
        }
    }

    /// `actor` did something to `target` (`kind`: an R_* counter): popularity for the
    /// target, a tie from the actor to the target.
    pub(crate) fn receive(&mut self, actor: Id, target: Id, day: i64, kind: usize) {
        if target == actor {
            return;
        }
        self.will_change(target);
        let receiver = Self::resident(&mut self.idents[target as usize]);
        receiver.bucket(day).bump(kind);
        let popularity = u128::from(self.received[kind - R_SHARE]);
        self.scales.add_weighted(&mut receiver.sums[S_POPULARITY], popularity, day);
        if !self.all_ties_changed {
            self.changed_ties.insert((actor, target));
            if self.changed_ties.len() > CHANGED_TIES {
                self.changed_ties = HashSet::default();
                self.all_ties_changed = true;
            }
        }
        let field = match kind {
            R_REPLY => 0,
            R_COMMENT => 1,
            R_SHARE => 2,
            _ => 3,
        };
        let day = day as i32; // checked by `bucket` above
        let ties = &mut Self::resident(&mut self.idents[actor as usize]).out;
        match ties.binary_search_by(|t| (t.target, t.day).cmp(&(target, day))) {
            Ok(at) => ties[at].counts[field] = ties[at].counts[field].saturating_add(1),
            Err(at) => {
                let mut tie = Tie { target, day, counts: [0; 4] };
                tie.counts[field] = 1;
                ties.insert(at, tie);
                // a body opened to be added to (`codec::open_body`) holds the ties of its
                // latest events alone: whether the target had a tie from the actor before
                // is asked of the target's sources, kept sorted
                let index = target as usize;
                if index >= self.incoming.len() {
                    self.incoming.resize(self.idents.len().max(index + 1), Incoming::new());
                }
                let sources = &mut self.incoming[index];
                if let Err(at) = sources.binary_search(&actor) {
                    sources.insert(at, actor);
                }
            }
        }
    }

    /// Add an entry to the identify/unlink history of a pair, and keep the adjacency of
    /// the pairs that stand linked.
    fn link(&mut self, a: Id, b: Id, entry: LinkEntry) {
        let pair = if self.key(a) < self.key(b) { (a, b) } else { (b, a) };
        let history = self.pairs.entry(pair).or_default();
        history.insert(sorted_at(history, &entry), entry);
        let linked = history.last().is_some_and(|e| e.2);
        self.dirty.pairs.insert(pair);
        if self.indexes {
            self.relinked.insert(pair);
        }
        if linked {
            self.adjacency.link(pair.0, pair.1);
        } else {
            self.adjacency.unlink(pair.0, pair.1);
        }
    }
}
