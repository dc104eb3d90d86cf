//! One routing decision as a pure function of the lead, the rules in force and the
//! candidates' state: who is eligible (and why the others are not), which rule and
//! strategy applied, and who gets the lead — or that it goes to the public pool.
//! The consumer, the simulator and the tests all call this one function.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use huoke_shared::schedule::Schedule;
use serde::Serialize;

use crate::facts::LeadFacts;
use crate::rules::{RuleSet, Strategy, Target};

/// A staff member as routing sees them.
#[derive(Debug, Clone, Default)]
pub struct Candidate {
    pub staff_id: String,
    pub active: bool,
    pub is_sdr: bool,
    pub team_id: Option<String>,
    /// Most open (offered or accepted) leads at once.
    pub capacity: Option<i64>,
    /// Most offers a local day.
    pub daily_cap: Option<i64>,
    pub open: i64,
    pub today: i64,
    pub hours: Option<Schedule>,
    pub timezone: Option<Tz>,
}

/// The world a decision is made in.
#[derive(Debug, Clone)]
pub struct World<'a> {
    pub now: DateTime<Utc>,
    pub tenant_tz: Tz,
    /// The tenant's calendar: its dates off apply to everyone; its adjusted working
    /// days open a weekend day for everyone with working hours.
    pub calendar: Option<&'a Schedule>,
    pub rules: &'a RuleSet,
    /// Every staff member of the tenant, by id.
    pub staff: &'a BTreeMap<String, Candidate>,
    /// team id → its members' ids.
    pub teams: &'a BTreeMap<String, Vec<String>>,
}

/// Why someone was passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exclusion {
    Inactive,
    NotSdr,
    AlreadyOffered,
    DateOff,
    OffHours,
    DailyCap,
    AtCapacity,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Considered {
    pub staff_id: String,
    /// `None`: eligible.
    pub excluded: Option<Exclusion>,
    pub open: i64,
    pub capacity: Option<i64>,
    pub today: i64,
    pub daily_cap: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// `open_owner`, `account_owner`, `owner_hint`, `rule`, `default` or `no_candidate`.
    pub reason: &'static str,
    /// The rule that matched (its position and name).
    pub rule: Option<(usize, String)>,
    pub target: Option<Target>,
    pub strategy: Option<Strategy>,
    pub cursor: Option<u64>,
    /// In the order they were looked at: precedence candidates first, then the target's.
    pub considered: Vec<Considered>,
    pub chosen: Option<String>,
    /// The rule sends the lead to the public pool, or nobody could take it.
    pub to_pool: bool,
}

/// Who may not get the lead now, or `None` when they may.
pub fn exclusion(c: &Candidate, world: &World<'_>, tried: &BTreeSet<String>, need_sdr: bool) -> Option<Exclusion> {
    if !c.active {
        return Some(Exclusion::Inactive);
    }
    if need_sdr && !c.is_sdr {
        return Some(Exclusion::NotSdr);
    }
    if tried.contains(&c.staff_id) {
        return Some(Exclusion::AlreadyOffered);
    }
    let tz = c.timezone.unwrap_or(world.tenant_tz);
    let local_date = world.now.with_timezone(&tz).format("%Y-%m-%d").to_string();
    let calendar_off = world.calendar.is_some_and(|cal| cal.dates_off.contains(&local_date));
    let own_off = c.hours.as_ref().is_some_and(|h| h.dates_off.contains(&local_date));
    if calendar_off || own_off {
        return Some(Exclusion::DateOff);
    }
    if let Some(hours) = &c.hours {
        let mut hours = hours.clone();
        if let Some(cal) = world.calendar {
            hours.workdays.extend(cal.workdays.iter().cloned());
        }
        if !hours.is_open(world.now, tz) {
            return Some(Exclusion::OffHours);
        }
    }
    if c.daily_cap.is_some_and(|cap| c.today >= cap) {
        return Some(Exclusion::DailyCap);
    }
    if c.capacity.is_some_and(|cap| c.open >= cap) {
        return Some(Exclusion::AtCapacity);
    }
    None
}

fn considered(c: &Candidate, excluded: Option<Exclusion>) -> Considered {
    Considered {
        staff_id: c.staff_id.clone(),
        excluded,
        open: c.open,
        capacity: c.capacity,
        today: c.today,
        daily_cap: c.daily_cap,
    }
}

/// What is asked: route this lead, skipping those already offered it since it was
/// last routed afresh.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    pub lead: &'a LeadFacts,
    /// The owner of another lead of the same company.
    pub account_owner: Option<&'a str>,
    pub tried: &'a BTreeSet<String>,
    /// Rotation position for the route's strategy.
    pub cursor: u64,
}

/// The precedence step alone: `Some` when the account's owner or the owner hint
/// takes the lead (no rotation needed), else `None` with what was looked at.
pub fn by_precedence(world: &World<'_>, ask: &Ask<'_>) -> Result<Decision, Vec<Considered>> {
    let mut seen = Vec::new();
    // Precedence: the account's owner (whoever owns its other lead), then the employee
    // the prospect came through when they are an SDR — each only when they may take a
    // lead now.
    let precedence = [
        ("account_owner", ask.account_owner, false),
        ("owner_hint", ask.lead.owner_hint.as_deref(), true),
    ];
    for (reason, who, need_sdr) in precedence {
        let Some(candidate) = who.and_then(|id| world.staff.get(id)) else {
            continue;
        };
        let excluded = exclusion(candidate, world, ask.tried, need_sdr);
        seen.push(considered(candidate, excluded));
        if excluded.is_none() {
            return Ok(Decision {
                reason,
                rule: None,
                target: None,
                strategy: None,
                cursor: None,
                considered: seen,
                chosen: Some(candidate.staff_id.clone()),
                to_pool: false,
            });
        }
    }
    Err(seen)
}

/// The rotation a lead's route uses: one cursor per target, so round-robin within a
/// team is exact whatever other teams receive.
pub fn cursor_key(rules: &RuleSet, lead: &LeadFacts) -> String {
    match rules.route_for(lead).route.target {
        Target::Team { team_id } => format!("team:{team_id}"),
        Target::Person { staff_id } => format!("person:{staff_id}"),
        Target::Pool { .. } => "pool".into(),
        Target::AllSdrs { .. } => "all".into(),
    }
}

pub fn decide(world: &World<'_>, ask: &Ask<'_>) -> Decision {
    let seen = match by_precedence(world, ask) {
        Ok(decision) => return decision,
        Err(seen) => seen,
    };
    let chosen_route = world.rules.route_for(ask.lead);
    let route = chosen_route.route;
    let mut decision = Decision {
        reason: if chosen_route.rule.is_some() { "rule" } else { "default" },
        rule: chosen_route.rule.map(|(i, name)| (i, name.to_string())),
        target: Some(route.target.clone()),
        strategy: Some(route.strategy),
        cursor: Some(ask.cursor),
        considered: seen,
        chosen: None,
        to_pool: false,
    };
    let (members, need_sdr): (Vec<&Candidate>, bool) = match &route.target {
        Target::Pool { .. } => {
            decision.to_pool = true;
            decision.cursor = None;
            return decision;
        }
        Target::Person { staff_id } => (world.staff.get(staff_id).into_iter().collect(), false),
        Target::Team { team_id } => (
            world
                .teams
                .get(team_id)
                .map(|ids| ids.iter().filter_map(|id| world.staff.get(id)).collect())
                .unwrap_or_default(),
            false,
        ),
        Target::AllSdrs { .. } => (world.staff.values().filter(|c| c.is_sdr).collect(), true),
    };
    let mut eligible = Vec::new();
    for candidate in members {
        let excluded = exclusion(candidate, world, ask.tried, need_sdr);
        decision.considered.push(considered(candidate, excluded));
        if excluded.is_none() {
            eligible.push(candidate);
        }
    }
    // Stable order, whatever order the store answered in.
    eligible.sort_by(|a, b| a.staff_id.cmp(&b.staff_id));
    decision.chosen = pick(route.strategy, &eligible, &route.weights, ask.cursor).map(|c| c.staff_id.clone());
    if decision.chosen.is_none() {
        decision.reason = "no_candidate";
        decision.to_pool = true;
    }
    decision
}

/// One of `eligible` (sorted by id) by `strategy`; `cursor` advances once per lead.
pub fn pick<'c>(
    strategy: Strategy,
    eligible: &[&'c Candidate],
    weights: &BTreeMap<String, u32>,
    cursor: u64,
) -> Option<&'c Candidate> {
    if eligible.is_empty() {
        return None;
    }
    let n = eligible.len() as u64;
    match strategy {
        Strategy::RoundRobin => Some(eligible[(cursor % n) as usize]),
        Strategy::Weighted => {
            let weight = |c: &Candidate| u64::from(weights.get(&c.staff_id).copied().unwrap_or(1).max(1));
            let total: u64 = eligible.iter().map(|c| weight(c)).sum();
            let mut slot = cursor % total;
            for c in eligible {
                let w = weight(c);
                if slot < w {
                    return Some(*c);
                }
                slot -= w;
            }
            eligible.last().copied()
        }
        Strategy::LeastLoaded => {
            // Load = open ÷ capacity (no capacity: open ÷ 100); ties rotate.
            let load = |c: &Candidate| (c.open as f64) / (c.capacity.unwrap_or(100).max(1) as f64);
            let least = eligible.iter().map(|c| load(c)).fold(f64::INFINITY, f64::min);
            let tied: Vec<&Candidate> = eligible
                .iter()
                .copied()
                .filter(|c| (load(c) - least).abs() < 1e-9)
                .collect();
            Some(tied[(cursor % tied.len() as u64) as usize])
        }
    }
}

#[cfg(test)]
mod tests;
