use super::*;
use chrono::TimeZone;

fn sdr(id: &str) -> Candidate {
    Candidate {
        staff_id: id.into(),
        active: true,
        is_sdr: true,
        ..Candidate::default()
    }
}

fn hours(json: &str) -> Option<Schedule> {
    Some(serde_json::from_str(json).unwrap())
}

/// Monday 2026-11-23, 10:00 in Shanghai.
fn monday_morning() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 2, 0, 0).unwrap()
}

struct Setup {
    staff: BTreeMap<String, Candidate>,
    teams: BTreeMap<String, Vec<String>>,
    rules: RuleSet,
    calendar: Option<Schedule>,
}

impl Setup {
    fn new(people: Vec<Candidate>) -> Self {
        Setup {
            staff: people.into_iter().map(|c| (c.staff_id.clone(), c)).collect(),
            teams: BTreeMap::new(),
            rules: RuleSet::default(),
            calendar: None,
        }
    }

    fn decide(&self, lead: &LeadFacts, tried: &[&str], cursor: u64) -> Decision {
        let world = World {
            now: monday_morning(),
            tenant_tz: chrono_tz::Asia::Shanghai,
            calendar: self.calendar.as_ref(),
            rules: &self.rules,
            staff: &self.staff,
            teams: &self.teams,
        };
        let tried: BTreeSet<String> = tried.iter().map(|s| (*s).to_string()).collect();
        decide(
            &world,
            &Ask {
                lead,
                account_owner: None,
                tried: &tried,
                cursor,
            },
        )
    }
}

fn lead() -> LeadFacts {
    LeadFacts {
        channel: "web_form".into(),
        grade: "A".into(),
        score: 80,
        ..LeadFacts::default()
    }
}

#[test]
fn round_robin_rotates_over_the_eligible() {
    let setup = Setup::new(vec![sdr("a"), sdr("b"), sdr("c")]);
    let picks: Vec<_> = (0..4).map(|c| setup.decide(&lead(), &[], c).chosen.unwrap()).collect();
    assert_eq!(picks, ["a", "b", "c", "a"]);
}

#[test]
fn exclusions_are_explained() {
    let mut off = sdr("off");
    off.hours = hours(r#"{"weekly": {"tue": [{"start": "09:00", "end": "18:00"}]}}"#);
    let mut full = sdr("full");
    full.capacity = Some(2);
    full.open = 2;
    let mut capped = sdr("capped");
    capped.daily_cap = Some(3);
    capped.today = 3;
    let mut gone = sdr("gone");
    gone.active = false;
    let mut holiday = sdr("holiday");
    holiday.hours = hours(r#"{"weekly": {"mon": [{"start": "09:00", "end": "18:00"}]}, "dates_off": ["2026-11-23"]}"#);
    let manager = Candidate {
        is_sdr: false,
        ..sdr("manager")
    };
    let setup = Setup::new(vec![off, full, capped, gone, holiday, manager, sdr("tried"), sdr("ok")]);
    let decision = setup.decide(&lead(), &["tried"], 0);
    assert_eq!(decision.chosen.as_deref(), Some("ok"));
    let why: BTreeMap<_, _> = decision
        .considered
        .iter()
        .map(|c| (c.staff_id.as_str(), c.excluded))
        .collect();
    assert_eq!(why["off"], Some(Exclusion::OffHours));
    assert_eq!(why["full"], Some(Exclusion::AtCapacity));
    assert_eq!(why["capped"], Some(Exclusion::DailyCap));
    assert_eq!(why["gone"], Some(Exclusion::Inactive));
    assert_eq!(why["holiday"], Some(Exclusion::DateOff));
    assert!(!why.contains_key("manager"), "only SDRs are candidates of all SDRs");
    assert_eq!(why["tried"], Some(Exclusion::AlreadyOffered));
    assert_eq!(why["ok"], None);
}

#[test]
fn the_tenant_calendar_applies_to_everyone() {
    let mut setup = Setup::new(vec![sdr("a")]);
    setup.calendar = hours(r#"{"dates_off": ["2026-11-23"]}"#);
    let decision = setup.decide(&lead(), &[], 0);
    assert_eq!(decision.chosen, None);
    assert!(decision.to_pool);
    assert_eq!(decision.reason, "no_candidate");

    // An adjusted working day opens Saturday with Monday's hours.
    let mut weekday_only = sdr("b");
    weekday_only.hours = hours(r#"{"weekly": {"mon": [{"start": "00:00", "end": "24:00"}]}}"#);
    let setup = Setup::new(vec![weekday_only]);
    let saturday = Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap();
    let adjusted: Option<Schedule> = hours(r#"{"workdays": ["2026-11-28"]}"#);
    let world = |calendar| World {
        now: saturday,
        tenant_tz: chrono_tz::Asia::Shanghai,
        calendar,
        rules: &setup.rules,
        staff: &setup.staff,
        teams: &setup.teams,
    };
    let c = &setup.staff["b"];
    assert_eq!(
        exclusion(c, &world(None), &BTreeSet::new(), true),
        Some(Exclusion::OffHours)
    );
    assert_eq!(exclusion(c, &world(adjusted.as_ref()), &BTreeSet::new(), true), None);
}

#[test]
fn an_eligible_owner_hint_comes_before_the_rules_and_an_ineligible_one_is_recorded() {
    let mut setup = Setup::new(vec![sdr("a"), sdr("b")]);
    let mut hinted = lead();
    hinted.owner_hint = Some("b".into());
    let decision = setup.decide(&hinted, &[], 0);
    assert_eq!((decision.reason, decision.chosen.as_deref()), ("owner_hint", Some("b")));

    setup.staff.get_mut("b").unwrap().active = false;
    let decision = setup.decide(&hinted, &[], 0);
    assert_eq!(decision.chosen.as_deref(), Some("a"));
    assert_eq!(decision.considered[0].excluded, Some(Exclusion::Inactive));
}

#[test]
fn rules_route_to_teams_people_and_the_pool() {
    let mut setup = Setup::new(vec![sdr("a"), sdr("b"), sdr("c")]);
    setup.teams.insert("east".into(), vec!["b".into(), "c".into()]);
    setup.rules = serde_json::from_str(
        r#"{"rules": [
            {"name": "cold", "when": {"grade": ["D"]}, "target": {"pool": true}},
            {"name": "forms", "when": {"channel": ["web_form"]}, "target": {"team_id": "east"}},
            {"name": "vip", "target": {"staff_id": "a"}}
        ]}"#,
    )
    .unwrap();
    let d = setup.decide(&lead(), &[], 1);
    assert_eq!(
        (d.rule.clone().unwrap().1.as_str(), d.chosen.as_deref()),
        ("forms", Some("c"))
    );
    let mut cold = lead();
    cold.grade = "D".into();
    let d = setup.decide(&cold, &[], 0);
    assert!(d.to_pool && d.chosen.is_none() && d.reason == "rule");
    let mut call = lead();
    call.channel = "call_center".into();
    assert_eq!(setup.decide(&call, &[], 7).chosen.as_deref(), Some("a"));
}

#[test]
fn weighted_round_robin_follows_the_weights() {
    let people = [sdr("a"), sdr("b")];
    let eligible: Vec<&Candidate> = people.iter().collect();
    let weights = BTreeMap::from([("a".to_string(), 3)]);
    let picks: Vec<_> = (0..8)
        .map(|c| {
            pick(Strategy::Weighted, &eligible, &weights, c)
                .unwrap()
                .staff_id
                .as_str()
        })
        .collect();
    assert_eq!(picks, ["a", "a", "a", "b", "a", "a", "a", "b"]);
}

#[test]
fn least_loaded_takes_the_lowest_share_of_capacity() {
    let mut a = sdr("a");
    a.open = 2;
    a.capacity = Some(10);
    let mut b = sdr("b");
    b.open = 1;
    b.capacity = Some(2);
    let mut c = sdr("c");
    c.open = 1;
    c.capacity = Some(4);
    let people = [a, b, c];
    let eligible: Vec<&Candidate> = people.iter().collect();
    let chosen = pick(Strategy::LeastLoaded, &eligible, &BTreeMap::new(), 3).unwrap();
    assert_eq!(chosen.staff_id, "a", "2/10 beats 1/4 and 1/2");
}
