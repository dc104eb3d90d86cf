//! Scans counted in memory between two writes: per code, the scans and first visits
//! per minute, member, outcome and client class, and the code's visitors per hour
//! as a sketch. Pure: the recorder fills a tally and writes it; nothing here waits.

use std::collections::HashMap;

use crate::sketch::UniqueSketch;

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;

/// One scan as the tally needs it.
#[derive(Debug, Clone, Copy)]
pub struct Scan<'a> {
    pub tenant_id: &'a str,
    pub code_id: &'a str,
    /// The member or backup picked; `None` for groups and nobody.
    pub staff_id: Option<&'a str>,
    pub outcome: &'static str,
    pub client: &'static str,
    pub visitor: &'a str,
    pub first_visit: bool,
    pub at_ms: i64,
}

/// Scans of one code in one minute with one member, outcome and client class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub minute: i64,
    /// Empty when the scan went to no member (the column is part of a primary key).
    pub staff_id: String,
    pub outcome: &'static str,
    pub client: &'static str,
    pub scans: i64,
    pub first_visits: i64,
}

#[derive(Debug, Default)]
pub struct CodeTally {
    pub tenant_id: String,
    /// Few per code between two writes (members × outcomes × clients × one or two
    /// minutes), so a list searched in place costs less than hashing a key per scan.
    /// Searched from the end, where the current minute's cells are: a tally kept
    /// through a long database outage holds many minutes, and a scan still finds its
    /// cell among the last few.
    pub cells: Vec<Cell>,
    pub visitors: HashMap<i64, UniqueSketch>,
}

#[derive(Debug, Default)]
pub struct Tally {
    pub codes: HashMap<String, CodeTally>,
    pub scans: u64,
}

impl Tally {
    pub fn is_empty(&self) -> bool {
        self.scans == 0
    }

    pub fn add(&mut self, scan: Scan<'_>) {
        self.scans += 1;
        let code = match self.codes.get_mut(scan.code_id) {
            Some(code) => code,
            None => self.codes.entry(scan.code_id.to_string()).or_insert_with(|| CodeTally {
                tenant_id: scan.tenant_id.to_string(),
                ..CodeTally::default()
            }),
        };
        let minute = scan.at_ms - scan.at_ms.rem_euclid(MINUTE_MS);
        let staff_id = scan.staff_id.unwrap_or("");
        let first_visit = i64::from(scan.first_visit);
        match code.cells.iter_mut().rev().find(|c| {
            c.minute == minute && c.outcome == scan.outcome && c.client == scan.client && c.staff_id == staff_id
        }) {
            Some(cell) => {
                cell.scans += 1;
                cell.first_visits += first_visit;
            }
            None => code.cells.push(Cell {
                minute,
                staff_id: staff_id.to_string(),
                outcome: scan.outcome,
                client: scan.client,
                scans: 1,
                first_visits: first_visit,
            }),
        }
        let hour = scan.at_ms - scan.at_ms.rem_euclid(HOUR_MS);
        code.visitors.entry(hour).or_default().add(scan.visitor);
    }

    /// Adds another tally into this one.
    pub fn absorb(&mut self, other: Tally) {
        if self.is_empty() {
            *self = other;
            return;
        }
        self.scans += other.scans;
        for (code_id, theirs) in other.codes {
            let Some(mine) = self.codes.get_mut(&code_id) else {
                self.codes.insert(code_id, theirs);
                continue;
            };
            for cell in theirs.cells {
                match mine.cells.iter_mut().rev().find(|c| {
                    c.minute == cell.minute
                        && c.outcome == cell.outcome
                        && c.client == cell.client
                        && c.staff_id == cell.staff_id
                }) {
                    Some(found) => {
                        found.scans += cell.scans;
                        found.first_visits += cell.first_visits;
                    }
                    None => mine.cells.push(cell),
                }
            }
            for (hour, sketch) in theirs.visitors {
                mine.visitors.entry(hour).or_default().merge(&sketch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan<'a>(code: &'a str, staff: Option<&'a str>, visitor: &'a str, at_ms: i64) -> Scan<'a> {
        Scan {
            tenant_id: "t1",
            code_id: code,
            staff_id: staff,
            outcome: if staff.is_some() { "member" } else { "none" },
            client: "other",
            visitor,
            first_visit: visitor.starts_with("new"),
            at_ms,
        }
    }

    #[test]
    fn scans_are_counted_per_code_minute_member_and_outcome() {
        let mut tally = Tally::default();
        tally.add(scan("c1", Some("s1"), "new1", 60_000));
        tally.add(scan("c1", Some("s1"), "old1", 119_999));
        tally.add(scan("c1", Some("s1"), "new2", 120_000));
        tally.add(scan("c1", Some("s2"), "new3", 60_001));
        tally.add(scan("c1", None, "old1", 60_002));
        tally.add(scan("c2", Some("s1"), "new4", 60_003));
        assert_eq!(tally.scans, 6);
        let c1 = &tally.codes["c1"];
        let find = |staff: &str, minute: i64| {
            c1.cells
                .iter()
                .find(|c| c.staff_id == staff && c.minute == minute)
                .map(|c| (c.scans, c.first_visits))
        };
        assert_eq!(find("s1", 60_000), Some((2, 1)));
        assert_eq!(find("s1", 120_000), Some((1, 1)));
        assert_eq!(find("s2", 60_000), Some((1, 1)));
        assert_eq!(find("", 60_000), Some((1, 0)));
        assert_eq!(c1.cells.len(), 4);
        assert_eq!(tally.codes["c2"].cells.len(), 1);
    }

    #[test]
    fn absorbing_a_tally_adds_its_cells_and_sketches() {
        let (mut one, mut two) = (Tally::default(), Tally::default());
        one.add(scan("c1", Some("s1"), "new1", 60_000));
        two.add(scan("c1", Some("s1"), "new2", 60_001));
        two.add(scan("c1", Some("s2"), "new1", 60_002));
        two.add(scan("c2", None, "old1", 60_003));
        one.absorb(two);
        assert_eq!(one.scans, 4);
        let c1 = &one.codes["c1"];
        assert_eq!(c1.cells.len(), 2);
        assert_eq!(
            c1.cells
                .iter()
                .find(|c| c.staff_id == "s1")
                .map(|c| (c.scans, c.first_visits)),
            Some((2, 2))
        );
        assert_eq!(c1.visitors[&0].estimate(), 2, "new1 counted once across both tallies");
        assert_eq!(one.codes["c2"].cells[0].scans, 1);
        let mut empty = Tally::default();
        empty.absorb(one);
        assert_eq!(empty.scans, 4);
    }

    #[test]
    fn visitors_are_sketched_per_hour() {
        let mut tally = Tally::default();
        for (visitor, at) in [("a", 0), ("b", 10), ("a", 20), ("a", HOUR_MS), ("c", HOUR_MS + 5)] {
            tally.add(scan("c1", Some("s1"), visitor, at));
        }
        let visitors = &tally.codes["c1"].visitors;
        assert_eq!(visitors[&0].estimate(), 2);
        assert_eq!(visitors[&HOUR_MS].estimate(), 2);
        let mut both = visitors[&0].clone();
        both.merge(&visitors[&HOUR_MS]);
        assert_eq!(both.estimate(), 3);
    }
}
