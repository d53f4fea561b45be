use super::*;

const MS: u64 = 1_000_000;

fn terms(max_batch: u32) -> Terms {
    Terms {
        max_batch,
        lease_for: 100 * MS,
        capacity: 1000,
    }
}

/// Redis's answer when the bucket has `available` tokens and `want` are asked for.
fn answer(available: u32, want: u32) -> Taken {
    let taken = want.min(available);
    Taken {
        taken,
        left: available - taken,
        full_in: Duration::from_secs(1),
        next_in: if available > taken {
            Duration::ZERO
        } else {
            Duration::from_secs(2)
        },
    }
}

/// Runs one request at `now` against a bucket with `available` tokens, answering any take at
/// once (a background refill included). Returns whether it was admitted and the sizes asked.
fn request(lease: &mut Lease, now: u64, available: &mut u32, terms: &Terms) -> (bool, Vec<u32>) {
    match lease.step(now, terms) {
        Step::Spent { decision, refill } => {
            let mut asked = Vec::new();
            if let Some(want) = refill {
                let taken = answer(*available, want);
                *available -= taken.taken;
                lease.refilled(now, &taken, terms);
                asked.push(want);
            }
            (decision.is_allowed(), asked)
        }
        Step::Refused(decision) => (decision.is_allowed(), Vec::new()),
        Step::Ask { want, own } => {
            let taken = answer(*available, want);
            *available -= taken.taken;
            let decision = lease.answered(now, &taken, own, terms);
            (decision.is_allowed(), vec![want])
        }
    }
}

#[test]
fn a_new_caller_takes_exactly_its_own_token() {
    let mut lease = Lease::new([0; 16]);
    assert_eq!(
        lease.step(0, &terms(8)),
        Step::Ask {
            want: 1,
            own: false
        }
    );
    let decision = lease.answered(0, &answer(10, 1), false, &terms(8));
    assert_eq!(decision.remaining(), 9);
    assert_eq!(lease.held(), 0, "nothing leased for a caller seen once");
}

#[test]
fn demand_doubles_the_lease_up_to_the_most_and_spends_it_without_asking() {
    let terms = terms(8);
    let mut lease = Lease::new([0; 16]);
    let mut available = 1000;
    let mut asked = Vec::new();
    // A background lease lands one request after it was asked for (a round trip takes as long
    // as a request at this rate).
    let mut landing: Option<u32> = None;
    let mut most_held = 0;
    for n in 0..200 {
        let now = n * MS;
        let landed = landing.take();
        match lease.step(now, &terms) {
            Step::Spent { decision, refill } => {
                assert!(decision.is_allowed());
                asked.extend(refill);
                landing = refill;
            }
            Step::Ask { want, own } => {
                asked.push(want);
                let taken = answer(available, want);
                available -= taken.taken;
                assert!(lease.answered(now, &taken, own, &terms).is_allowed());
            }
            Step::Refused(decision) => panic!("{decision:?}"),
        }
        if let Some(want) = landed {
            let taken = answer(available, want);
            available -= taken.taken;
            lease.refilled(now, &taken, &terms);
        }
        assert!(lease.held() <= terms.max_batch);
        most_held = most_held.max(lease.held());
    }
    assert_eq!(&asked[..2], [1, 2], "one token, then a lease");
    assert!(
        most_held > terms.max_batch / 2,
        "grew to the most: {asked:?}"
    );
    assert_eq!(
        1000 - available,
        200 + lease.held(),
        "every token is spent or held"
    );
    assert!(
        asked.len() < 200 / 3,
        "most requests spent a held token: {asked:?}"
    );
}

#[test]
fn with_a_batch_of_one_no_token_is_ever_held_ahead() {
    let terms = terms(1);
    let mut lease = Lease::new([0; 16]);
    let mut available = 30;
    let mut admitted = 0;
    for n in 0..50 {
        let (ok, wants) = request(&mut lease, n * MS, &mut available, &terms);
        admitted += u32::from(ok);
        assert!(wants.iter().all(|&w| w == 1));
        assert_eq!(lease.held(), 0);
    }
    assert_eq!(admitted, 30, "exactly the bucket");
}

#[test]
fn an_empty_bucket_refuses_locally_until_its_next_token() {
    let terms = terms(8);
    let mut lease = Lease::new([0; 16]);
    assert!(matches!(lease.step(0, &terms), Step::Ask { .. }));
    let refused = lease.answered(0, &answer(0, 1), false, &terms);
    assert_eq!(
        refused,
        Decision::Limited {
            retry_after: Duration::from_secs(2),
            reset: Duration::from_secs(1)
        }
    );
    // No question to Redis until the next token is due.
    let later = 1500 * MS;
    match lease.step(later, &terms) {
        Step::Refused(Decision::Limited { retry_after, .. }) => {
            assert_eq!(retry_after, Duration::from_millis(500));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(lease.step(2000 * MS, &terms), Step::Ask { .. }));
}

#[test]
fn one_lease_in_flight_at_a_time_keeps_a_replica_under_its_most() {
    let terms = terms(4);
    let mut lease = Lease::new([0; 16]);
    let mut available = 1000;
    // Ramp up to a lease of 4: 1, then 2.
    request(&mut lease, 0, &mut available, &terms);
    request(&mut lease, MS, &mut available, &terms);
    // Spending the held token asks for a refill; it stays in flight.
    let Step::Spent {
        refill: Some(want), ..
    } = lease.step(2 * MS, &terms)
    else {
        panic!("a refill at the low-water mark");
    };
    // Meanwhile requests find nothing held: each takes only its own token.
    for n in 3..6 {
        assert_eq!(
            lease.step(n * MS, &terms),
            Step::Ask {
                want: 1,
                own: false
            }
        );
        lease.answered(n * MS, &answer(available, 1), false, &terms);
        available -= 1;
    }
    lease.refilled(6 * MS, &answer(available, want), &terms);
    assert!(lease.held() <= terms.max_batch, "{}", lease.held());
}

#[test]
fn tokens_that_lapse_unspent_are_dropped_and_halve_the_next_lease() {
    let terms = terms(8);
    let mut lease = Lease::new([0; 16]);
    let mut available = 1000;
    for n in 0..4 {
        request(&mut lease, n * MS, &mut available, &terms);
    }
    assert!(lease.held() > 0);
    let later = 10 * terms.lease_for;
    match lease.step(later, &terms) {
        Step::Ask { want, .. } => assert!(want < 8, "halved: {want}"),
        other => panic!("lapsed tokens are not spent: {other:?}"),
    }
}

#[test]
fn a_key_in_steady_use_keeps_its_lease_however_long_a_lease_lasts() {
    let terms = terms(64);
    let mut lease = Lease::new([0; 16]);
    let (mut available, mut admitted, mut lapsed) = (100_000u32, 0u32, 0u32);
    // Background leases land thirty requests late, so the lease grows past what a lease period
    // of requests spends.
    let mut landing: Vec<(u64, u32)> = Vec::new();
    for n in 0..2000 {
        let now = n * 2 * MS;
        for (_, want) in landing.extract_if(.., |(at, _)| *at <= n) {
            let taken = answer(available, want);
            available -= taken.taken;
            lease.refilled(now, &taken, &terms);
        }
        let held = lease.held();
        match lease.step(now, &terms) {
            Step::Spent { refill, .. } => {
                admitted += 1;
                landing.extend(refill.map(|want| (n + 30, want)));
            }
            Step::Ask { want, own } => {
                lapsed += held - lease.held();
                let taken = answer(available, want);
                available -= taken.taken;
                admitted += u32::from(lease.answered(now, &taken, own, &terms).is_allowed());
            }
            Step::Refused(decision) => panic!("{decision:?}"),
        }
    }
    assert_eq!(admitted, 2000);
    assert_eq!(lapsed, 0, "nothing lapses while the key is in use");
}

#[test]
fn a_lease_is_idle_once_nothing_is_held_in_flight_refused_or_recent() {
    let terms = terms(8);
    let mut lease = Lease::new([0; 16]);
    let mut available = 1000;
    for n in 0..3 {
        request(&mut lease, n * MS, &mut available, &terms);
    }
    assert!(!lease.is_idle(3 * MS, &terms), "tokens held");
    assert!(lease.is_idle(3 * MS + 2 * terms.lease_for, &terms));

    let mut refused = Lease::new([0; 16]);
    refused.step(0, &terms);
    refused.answered(0, &answer(0, 1), false, &terms);
    assert!(
        !refused.is_idle(terms.lease_for, &terms),
        "refusal remembered"
    );
    assert!(refused.is_idle(3000 * MS, &terms));
}

/// Requests at random moments, with refills answered late: whatever the order, every token
/// taken from Redis is spent once or still held, and a replica never holds more than its most.
#[test]
fn whatever_the_interleaving_no_token_is_spent_twice_or_held_beyond_the_most() {
    let terms = terms(16);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut lease = Lease::new([0; 16]);
    let (mut available, mut admitted, mut lapsed) = (500u32, 0u32, 0u32);
    let mut pending: Option<u32> = None;
    let mut now = 0;
    for _ in 0..5000 {
        now += next() % (30 * MS);
        if let Some(want) = pending.filter(|_| next() % 3 == 0) {
            let taken = answer(available, want);
            available -= taken.taken;
            lease.refilled(now, &taken, &terms);
            pending = None;
        }
        let held = lease.held();
        match lease.step(now, &terms) {
            Step::Spent { refill, .. } => {
                admitted += 1;
                pending = pending.or(refill);
            }
            Step::Refused(_) => lapsed += held - lease.held(),
            Step::Ask { want, own } => {
                lapsed += held - lease.held();
                let taken = answer(available, want);
                available -= taken.taken;
                admitted += u32::from(lease.answered(now, &taken, own, &terms).is_allowed());
            }
        }
        assert!(lease.held() <= terms.max_batch);
        assert_eq!(500 - available, admitted + lease.held() + lapsed);
    }
}
