//! HTTPRoute precedence across every rule of every Route on a host: each criterion on its own.

use crate::fixture::{compile_yaml, get, request, served_by, with_edge};

/// A Route `name` in `shop` (created at `created`, if given) whose rules have these matches.
fn route(name: &str, created: Option<&str>, rules: &[&str]) -> String {
    let created = created.map_or(String::new(), |t| format!(", creationTimestamp: '{t}'"));
    let mut out = format!(
        "---
apiVersion: portcullis.dev/v1alpha1
kind: Route
metadata: {{name: {name}, namespace: shop{created}}}
spec:
  parentRefs: [{{name: edge}}]
  rules:
"
    );
    for matches in rules {
        out += &format!("  - matches: [{matches}]\n    backendRefs: [{{name: api}}]\n");
    }
    out
}

#[test]
fn exact_path_beats_any_prefix_even_from_an_older_route() {
    let c = compile_yaml(&with_edge(
        &(route(
            "old-prefix",
            Some("2020-01-01T00:00:00Z"),
            &["{path: {type: PathPrefix, value: /match/}}"],
        ) + &route(
            "new-exact",
            Some("2025-01-01T00:00:00Z"),
            &["{path: {type: Exact, value: /match/exact/one}}"],
        )),
    ));
    assert_eq!(
        served_by(&c.snapshot, &get("http://a/match/exact/one")),
        "shop/new-exact#0"
    );
    assert_eq!(
        served_by(&c.snapshot, &get("http://a/match/exact/two")),
        "shop/old-prefix#0"
    );
}

#[test]
fn longer_prefix_beats_shorter_prefix() {
    let c = compile_yaml(&with_edge(&route(
        "r",
        None,
        &[
            "{path: {value: /}}",
            "{path: {value: /api}}",
            "{path: {value: /api/v2}}",
        ],
    )));
    assert_eq!(
        served_by(&c.snapshot, &get("http://a/api/v2/x")),
        "shop/r#2"
    );
    assert_eq!(served_by(&c.snapshot, &get("http://a/api/v1")), "shop/r#1");
    assert_eq!(served_by(&c.snapshot, &get("http://a/other")), "shop/r#0");
}

#[test]
fn longer_prefix_beats_query_only_rule() {
    let c = compile_yaml(&with_edge(&route(
        "r",
        None,
        &[
            "{queryParams: [{name: animal, value: hydra}]}",
            "{path: {value: /path5}}",
        ],
    )));
    assert_eq!(
        served_by(&c.snapshot, &get("http://a/path5?animal=hydra")),
        "shop/r#1"
    );
}

#[test]
fn prefix_matches_whole_segments_only() {
    let c = compile_yaml(&with_edge(&route("r", None, &["{path: {value: /v2/}}"])));
    assert_eq!(served_by(&c.snapshot, &get("http://a/v2")), "shop/r#0");
    assert_eq!(served_by(&c.snapshot, &get("http://a/v2/x")), "shop/r#0");
    assert_eq!(served_by(&c.snapshot, &get("http://a/v2example")), "404");
    // Trailing slashes of prefixes are dropped so `/v2/` and `/v2` rank the same.
    assert_eq!(
        c.snapshot.listeners[0].virtual_hosts[0].routes[0]
            .r#match
            .path
            .value,
        "/v2"
    );
}

#[test]
fn method_match_beats_header_match() {
    let c = compile_yaml(&with_edge(&route(
        "r",
        None,
        &[
            "{headers: [{name: version, value: four}]}",
            "{method: PATCH}",
        ],
    )));
    assert_eq!(
        served_by(
            &c.snapshot,
            &request("PATCH", "http://a/").header("version", "four")
        ),
        "shop/r#1"
    );
}

#[test]
fn more_header_matches_beat_fewer() {
    let c = compile_yaml(&with_edge(&route(
        "r",
        None,
        &[
            "{headers: [{name: version, value: two}]}",
            "{headers: [{name: version, value: two}, {name: color, value: blue}]}",
        ],
    )));
    let req = get("http://a/")
        .header("Version", "two")
        .header("Color", "blue");
    assert_eq!(served_by(&c.snapshot, &req), "shop/r#1");
}

#[test]
fn header_match_beats_query_match() {
    let c = compile_yaml(&with_edge(&route(
        "r",
        None,
        &[
            "{queryParams: [{name: animal, value: hydra}]}",
            "{headers: [{name: version, value: four}]}",
        ],
    )));
    let req = get("http://a/?animal=hydra").header("version", "four");
    assert_eq!(served_by(&c.snapshot, &req), "shop/r#1");
}

#[test]
fn more_query_matches_beat_fewer() {
    let c = compile_yaml(&with_edge(&route(
        "r",
        None,
        &[
            "{queryParams: [{name: a, value: '1'}]}",
            "{queryParams: [{name: a, value: '1'}, {name: b, value: '2'}]}",
        ],
    )));
    assert_eq!(
        served_by(&c.snapshot, &get("http://a/?a=1&b=2")),
        "shop/r#1"
    );
    assert_eq!(served_by(&c.snapshot, &get("http://a/?a=1")), "shop/r#0");
}

#[test]
fn older_route_wins_a_tie() {
    let c = compile_yaml(&with_edge(
        &(route(
            "a-newer",
            Some("2025-01-01T00:00:00Z"),
            &["{path: {value: /x}}"],
        ) + &route(
            "b-older",
            Some("2024-01-01T00:00:00Z"),
            &["{path: {value: /x}}"],
        )),
    ));
    assert_eq!(served_by(&c.snapshot, &get("http://a/x")), "shop/b-older#0");
}

#[test]
fn route_with_a_creation_timestamp_beats_one_without() {
    let c = compile_yaml(&with_edge(
        &(route("a-unknown", None, &["{path: {value: /x}}"])
            + &route(
                "b-dated",
                Some("2025-01-01T00:00:00Z"),
                &["{path: {value: /x}}"],
            )),
    ));
    assert_eq!(served_by(&c.snapshot, &get("http://a/x")), "shop/b-dated#0");
}

#[test]
fn route_name_order_breaks_a_tie_between_routes_of_the_same_age() {
    let t = Some("2025-01-01T00:00:00Z");
    let c = compile_yaml(&with_edge(
        &(route("b", t, &["{path: {value: /x}}"]) + &route("a", t, &["{path: {value: /x}}"])),
    ));
    assert_eq!(served_by(&c.snapshot, &get("http://a/x")), "shop/a#0");
}

#[test]
fn namespace_slash_name_is_compared_as_one_string() {
    let t = Some("2025-01-01T00:00:00Z");
    let in_namespace = |namespace: &str, name: &str| {
        route(name, t, &["{path: {value: /x}}"])
            .replace("namespace: shop,", &format!("namespace: {namespace},"))
            .replace("{name: edge}", "{name: edge, namespace: shop}")
    };
    // "a-b/c" < "a/z" as strings ('-' sorts before '/'), although namespace "a" < "a-b".
    let c = compile_yaml(&with_edge(
        &(in_namespace("a", "z") + &in_namespace("a-b", "c")),
    ));
    assert_eq!(served_by(&c.snapshot, &get("http://a/x")), "a-b/c#0");
}

#[test]
fn first_rule_of_a_route_wins_a_tie_within_it() {
    let c = compile_yaml(&with_edge(&route(
        "r",
        None,
        &[
            "{headers: [{name: version, value: two}]}",
            "{headers: [{name: color, value: blue}]}",
        ],
    )));
    let req = get("http://a/")
        .header("Version", "two")
        .header("Color", "blue");
    assert_eq!(served_by(&c.snapshot, &req), "shop/r#0");
}

#[test]
fn regular_expression_path_ranks_after_exact_and_before_prefixes() {
    let c = compile_yaml(&with_edge(&route(
        "r",
        None,
        &[
            "{path: {value: /users}}",
            "{path: {type: RegularExpression, value: '/users/[0-9]+'}}",
            "{path: {type: Exact, value: /users/42}}",
        ],
    )));
    assert_eq!(
        served_by(&c.snapshot, &get("http://a/users/42")),
        "shop/r#2"
    );
    assert_eq!(served_by(&c.snapshot, &get("http://a/users/7")), "shop/r#1");
    assert_eq!(
        served_by(&c.snapshot, &get("http://a/users/bob")),
        "shop/r#0"
    );
}

#[test]
fn precedence_holds_across_routes_not_just_within_one() {
    let c = compile_yaml(&with_edge(
        &(route("a", Some("2020-01-01T00:00:00Z"), &["{path: {value: /}}"])
            + &route(
                "b",
                Some("2025-01-01T00:00:00Z"),
                &["{path: {value: /}, method: GET}"],
            )),
    ));
    assert_eq!(served_by(&c.snapshot, &get("http://a/")), "shop/b#0");
    assert_eq!(
        served_by(&c.snapshot, &request("HEAD", "http://a/")),
        "shop/a#0"
    );
}
