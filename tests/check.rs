//! `portcullis check` as users run it: exit codes and one line per problem that names the file,
//! the object and the field.

use std::process::{Command, Output};

fn check(paths: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("check")
        .args(paths.iter().flat_map(|p| ["-f", p]))
        .output()
        .expect("portcullis check runs")
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_examples_are_valid() {
    let output = check(&["deploy/examples"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "problems: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(stdout_lines(&output).is_empty());
}

#[test]
fn a_misspelt_field_is_named_with_file_object_and_path() {
    let output = check(&["tests/fixtures/invalid/route-misspelt-field.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout_lines(&output),
        [
            "tests/fixtures/invalid/route-misspelt-field.yaml: Route/shop/typo: spec.rules[0].backendRef: unknown field \"backendRef\""
        ]
    );
}

#[test]
fn a_missing_required_field_is_named() {
    let output = check(&["tests/fixtures/invalid/backend-missing-port.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout_lines(&output),
        [
            "tests/fixtures/invalid/backend-missing-port.yaml: ServiceBackend/shop/no-port: spec.service.port: Required value"
        ]
    );
}

#[test]
fn a_broken_cel_rule_gives_its_message_at_the_field() {
    let output = check(&["tests/fixtures/invalid/gateway-https-without-tls.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout_lines(&output),
        [
            "tests/fixtures/invalid/gateway-https-without-tls.yaml: Gateway/shop/secure: spec.listeners[0]: an HTTPS listener needs tls.certificateRefs"
        ]
    );
}

#[test]
fn a_yaml_syntax_error_gives_line_and_column() {
    let output = check(&["tests/fixtures/invalid/broken-yaml.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0]
            .starts_with("tests/fixtures/invalid/broken-yaml.yaml: invalid YAML: line 9 column 4"),
        "{lines:?}"
    );
}

#[test]
fn every_problem_in_a_folder_is_reported_not_just_the_first() {
    let output = check(&["tests/fixtures/invalid"]);
    assert_eq!(output.status.code(), Some(1));
    let lines = stdout_lines(&output);
    for expected in [
        "ServiceBackend/shop/both: spec: set exactly one of service or endpoints",
        "Route/shop/bad-values: spec.rules[0].backendRefs[0].weight: Invalid value: 2000000",
        "Route/shop/bad-values: spec.rules[0].rateLimit.requests: Invalid value: 0",
        "Route/shop/bad-values: spec.rules[0].timeouts.request: Invalid value: \"1.5s\"",
        "Gateway/shop/scaled: spec.autoscaling: minReplicas must not be greater than maxReplicas",
        "Gateway/shop/scaled: spec.listeners: listener names must be unique",
    ] {
        assert!(
            lines.iter().any(|line| line.contains(expected)),
            "no line contains {expected:?}: {lines:#?}"
        );
    }
}

#[test]
fn documents_of_other_kinds_are_skipped_with_a_note() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("mixed.yaml");
    std::fs::write(
        &file,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {}\n",
    )
    .expect("write manifest");
    let output = check(&[file.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stderr).contains("skipped, not a Portcullis resource"));
}

#[test]
fn a_missing_file_is_a_problem() {
    let output = check(&["does/not/exist.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout_lines(&output),
        ["does/not/exist.yaml: no such file or folder"]
    );
}

#[test]
fn a_reference_to_a_missing_backend_is_reported_like_the_operator_would() {
    let output = check(&["tests/fixtures/semantic/missing-backend.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout_lines(&output),
        [
            "tests/fixtures/semantic/missing-backend.yaml: Route/shop/payments: spec.rules[0].backendRefs[0]: ServiceBackend \"payments\" not found in namespace \"shop\""
        ]
    );
}

/// A bundle as GitOps users keep one: a Gateway, a ServiceBackend and `routes` Routes, each a
/// path prefix and a header match, in one file.
fn bundle(routes: usize) -> String {
    let mut text = String::from(
        "apiVersion: portcullis.dev/v1alpha1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  listeners:
    - {name: http, port: 80, protocol: HTTP}
---
apiVersion: portcullis.dev/v1alpha1
kind: ServiceBackend
metadata: {name: app, namespace: shop}
spec:
  endpoints:
    - {address: 127.0.0.1, port: 8080}
",
    );
    for i in 0..routes {
        text.push_str(&format!(
            "---
apiVersion: portcullis.dev/v1alpha1
kind: Route
metadata: {{name: r{i}, namespace: shop}}
spec:
  parentRefs:
    - name: edge
  rules:
    - matches:
        - path: {{type: PathPrefix, value: /r{i}}}
          headers:
            - {{name: X-Tenant, value: t{i}}}
      backendRefs:
        - name: app
"
        ));
    }
    text
}

#[test]
fn a_file_of_three_thousand_documents_is_accepted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bundle.yaml");
    std::fs::write(&file, bundle(2_998)).expect("write the bundle");
    let output = check(&[file.to_str().expect("utf-8 path")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stdout_lines(&output).is_empty());
    assert!(
        stderr.contains("valid: 1 Gateway(s), 2998 Route(s), 1 ServiceBackend(s)"),
        "{stderr}"
    );
}

#[test]
fn the_limits_on_a_file_are_stated_in_the_help() {
    let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--help"])
        .output()
        .expect("portcullis check --help runs");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("any number of documents"), "{help}");
}

/// What `portcullis check` printed for `tests/fixtures/bundle/invalid-bundle.yaml` before
/// validation was prepared once per process rather than once per document, kept byte for byte
/// (`invalid-bundle.stdout`, `invalid-bundle.stderr`): the problems of every layer, several CEL
/// rules broken in one object, in the same order and words.
#[test]
fn the_problems_of_an_invalid_bundle_are_printed_exactly_as_before() {
    let output = check(&["tests/fixtures/bundle/invalid-bundle.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    let expected = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/bundle/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("the expected output is in the fixtures")
    };
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        expected("invalid-bundle.stdout")
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        expected("invalid-bundle.stderr")
    );
}

#[test]
fn a_rule_without_backend_refs_is_valid_and_said_to_answer_500() {
    let output = check(&["tests/fixtures/semantic/rule-without-backends.yaml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stdout_lines(&output).is_empty());
    let line = "warning: tests/fixtures/semantic/rule-without-backends.yaml: Route/shop/catalog: spec.rules[0].backendRefs: the rule has no backendRefs: every request it matches answers 500";
    assert!(stderr.lines().any(|l| l == line), "{line}\nin:\n{stderr}");
}

/// `portcullis check --strict` on `paths`.
fn check_strict(paths: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["check", "--strict"])
        .args(paths.iter().flat_map(|p| ["-f", p]))
        .output()
        .expect("portcullis check runs")
}

const YAML11_FIXTURE: &str = "tests/fixtures/yaml11/on-key-and-yes-header.yaml";

/// The two lines for the fixture's `on:` annotation key and unquoted `yes` header value.
const YAML11_LINES: [&str; 2] = [
    "tests/fixtures/yaml11/on-key-and-yes-header.yaml: Route/shop/flags: metadata.annotations.on: \
     line 31 column 5: kubectl reads the key on as the boolean true (YAML 1.1) and sends the \
     field \"true\"; quote the key (\"on\") to mean the text",
    "tests/fixtures/yaml11/on-key-and-yes-header.yaml: Route/shop/flags: \
     spec.rules[0].filters[0].requestHeaderModifier.set[0].value: line 44 column 24: kubectl \
     reads yes as the boolean true (YAML 1.1), not the string \"yes\" (YAML 1.2); quote it: \
     \"yes\"",
];

#[test]
fn what_kubectl_reads_differently_is_a_warning_that_keeps_the_exit_status() {
    let output = check(&[YAML11_FIXTURE]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout_lines(&output).is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in YAML11_LINES {
        assert!(
            stderr.contains(&format!("warning: {line}\n")),
            "no warning {line:?} in:\n{stderr}"
        );
    }
}

#[test]
fn strict_refuses_what_kubectl_reads_differently() {
    let output = check_strict(&[YAML11_FIXTURE]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout_lines(&output), YAML11_LINES);
}

#[test]
fn strict_refuses_the_retry_key_on_as_kubectl_does() {
    let output = check_strict(&["tests/fixtures/yaml11/retry-on-key.yaml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout_lines(&output).contains(
            &"tests/fixtures/yaml11/retry-on-key.yaml: Gateway/shop/edge: \
              spec.defaults.retry.on: line 17 column 7: kubectl reads the key on as the boolean \
              true (YAML 1.1) and sends the field \"true\"; quote the key (\"on\") to mean the text"
                .to_owned()
        ),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn strict_passes_quoted_keys_and_values_and_the_examples() {
    for path in ["tests/fixtures/yaml11/quoted.yaml", "deploy/examples"] {
        let output = check_strict(&[path]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{path}: {stdout}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("warning"), "{path}: {stderr}");
    }
}

#[test]
fn the_rules_this_build_answers_503_for_are_warnings_in_the_same_format() {
    let output = check(&["tests/fixtures/unserved/invalid-secret.yaml"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "warnings keep the exit status"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = "warning: tests/fixtures/unserved/invalid-secret.yaml: Route/shop/catalog: spec.rules[2].auth.apiKey.secretRef: Secret shop/partner-keys (key \"keys\"): line 1 is not consumer:key: this gateway answers 503 for the rule";
    assert!(stderr.lines().any(|l| l == line), "{line}\nin:\n{stderr}");
    for served in ["spec.rules[0]", "spec.rules[1]", "spec.rules[3]"] {
        assert!(
            !stderr.contains(served),
            "the global rate limit, the shared cache and the plain rule are served: {stderr}"
        );
    }
}

#[test]
fn every_rule_of_the_examples_is_served() {
    let output = check(&["deploy/examples"]);
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
}
