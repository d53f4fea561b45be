//! The manifests users copy — every file of `deploy/examples/` and every ```yaml block of the
//! README and of `docs/*.md` that holds Kubernetes objects — go through the real kubectl into
//! the real API server, client-side and server-side, and are stored as written.
//!
//! kubectl reads YAML 1.1, where the key `on` is the boolean `true`: `kubectl apply -f
//! deploy/examples/` once failed with `unknown field "spec.defaults.retry.true"` while
//! `portcullis check` (YAML 1.2) called the file valid (issue 13). The last tests apply the
//! fixtures of `tests/fixtures/yaml11/`: kubectl refuses what `portcullis check --strict`
//! refuses, and stores as text what it passes.

mod support;

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;
use support::{control_plane::TestContext, kubectl::Kubectl};

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A manifest users may copy: a file name to show in errors, and its text.
struct Source {
    name: String,
    text: String,
}

/// `deploy/examples/*.yaml`, then the YAML blocks of README.md and docs/*.md that hold objects.
fn sources() -> Vec<Source> {
    let mut sources: Vec<Source> =
        files_in(&repository().join("deploy/examples"), &["yaml", "yml"])
            .into_iter()
            .map(|path| Source {
                name: format!("examples-{}", file_name(&path)),
                text: fs::read_to_string(&path).expect("an example reads"),
            })
            .collect();
    let mut documents = vec![repository().join("README.md")];
    documents.extend(files_in(&repository().join("docs"), &["md"]));
    for document in documents {
        let markdown = fs::read_to_string(&document).expect("a Markdown file reads");
        for (index, block) in yaml_blocks(&markdown).into_iter().enumerate() {
            if holds_objects(&block) {
                sources.push(Source {
                    name: format!("{}-block-{index}.yaml", file_name(&document)),
                    text: block,
                });
            }
        }
    }
    sources
}

fn files_in(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| extensions.iter().any(|x| e == *x))
        })
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

/// The fenced ```yaml (or ```yml) blocks of a Markdown text.
fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut fence: Option<(bool, String)> = None; // (is YAML, text so far)
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        match &mut fence {
            None if trimmed.starts_with("```") => {
                let info = trimmed.trim_start_matches('`').trim();
                let language = info.split_whitespace().next().unwrap_or("");
                fence = Some((matches!(language, "yaml" | "yml"), String::new()));
            }
            None => {}
            Some(_) if trimmed.starts_with("```") => {
                if let Some((true, text)) = fence.take() {
                    blocks.push(text);
                }
            }
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    blocks
}

/// Whether a YAML text holds a Kubernetes object (chart values and the like do not). Text that
/// is not YAML counts, so that kubectl reports it.
fn holds_objects(text: &str) -> bool {
    match read(text) {
        Ok(documents) => documents
            .iter()
            .any(|d| d.get("apiVersion").is_some() && d.get("kind").is_some()),
        Err(_) => true,
    }
}

/// The documents of a YAML text as YAML 1.2 (and `portcullis check`) reads them.
fn read(text: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    serde_saphyr::from_multiple_with_options(text, serde_saphyr::options! { strict_booleans: true })
}

/// The manifest moved into `namespace`: every `namespace: X` whose X is the namespace of one
/// of its objects (so references such as `parentRefs[].namespace` follow), rewritten in the
/// text itself, because kubectl must read the YAML exactly as users write it.
fn into_namespace(text: &str, namespace: &str) -> String {
    let documents: Vec<Value> = read(text).unwrap_or_default();
    let named: BTreeSet<&str> = documents
        .iter()
        .filter_map(|d| d.pointer("/metadata/namespace").and_then(Value::as_str))
        .collect();
    let to = format!("namespace: {namespace}");
    let mut text = text.to_owned();
    for old in named {
        for quote in ["", "\"", "'"] {
            let from = format!("namespace: {quote}{old}{quote}");
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(at) = rest.find(&from) {
                let after = &rest[at + from.len()..];
                let whole_word =
                    !after.starts_with(|c: char| c.is_alphanumeric() || "-.".contains(c));
                out.push_str(&rest[..at]);
                out.push_str(if whole_word { &to } else { &from });
                rest = after;
            }
            out.push_str(rest);
            text = out;
        }
    }
    text
}

/// Applies every source with kubectl into the test's namespace, reads the objects back, and
/// checks that every field was stored as a YAML 1.2 reader (and `portcullis check`) reads it.
async fn apply_every_source(test_name: &str, server_side: bool) -> Vec<Value> {
    let ctx = TestContext::new(test_name).await;
    let kubectl = Kubectl::new(ctx.control_plane);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut written = Vec::new();
    for (index, source) in sources().iter().enumerate() {
        let text = into_namespace(&source.text, &ctx.namespace);
        fs::write(
            dir.path().join(format!("{index:02}-{}", source.name)),
            &text,
        )
        .expect("the manifest writes");
        let documents: Vec<Value> = read(&text).expect("valid YAML");
        written.extend(documents.into_iter().filter(|d| !d.is_null()));
    }
    let applied = kubectl.apply(&ctx.namespace, dir.path(), server_side).await;
    assert!(
        applied.success,
        "kubectl apply{} refuses the examples:\n{}{}",
        if server_side { " --server-side" } else { "" },
        applied.stdout,
        applied.stderr
    );
    let dir_arg = dir.path().to_string_lossy();
    let got = kubectl
        .run(
            &["get", "-n", &ctx.namespace, "-f", &dir_arg, "-o", "json"],
            None,
        )
        .await;
    assert!(got.success, "kubectl get: {}", got.stderr);
    let list: Value = serde_json::from_str(&got.stdout).expect("kubectl prints JSON");
    let stored = list["items"].as_array().cloned().unwrap_or_default();
    for document in &written {
        let (kind, name) = (&document["kind"], &document["metadata"]["name"]);
        let object = stored
            .iter()
            .find(|o| o["kind"] == *kind && o["metadata"]["name"] == *name)
            .unwrap_or_else(|| panic!("{kind} {name} was not stored"));
        let expected = secret_data_as_stored(document);
        if let Err(difference) = contains(object, &expected, &format!("{kind}/{name}")) {
            panic!("kubectl stored a field differently from the manifest: {difference}");
        }
    }
    stored
}

/// A Secret's `stringData` is stored base64-encoded in `data`.
fn secret_data_as_stored(document: &Value) -> Value {
    let mut document = document.clone();
    if let Some(Value::Object(strings)) = document
        .as_object_mut()
        .and_then(|d| d.remove("stringData"))
    {
        for (key, value) in strings {
            let bytes = value.as_str().unwrap_or_default().as_bytes().to_vec();
            document["data"][key] =
                serde_json::to_value(k8s_openapi::ByteString(bytes)).expect("base64");
        }
    }
    document
}

/// Whether `stored` holds every field of `written` with the same value (the API server adds
/// defaults, status and metadata of its own).
fn contains(stored: &Value, written: &Value, at: &str) -> Result<(), String> {
    match (stored, written) {
        (Value::Object(stored), Value::Object(written)) => written.iter().try_for_each(|(k, w)| {
            let at = format!("{at}.{k}");
            let s = stored.get(k).ok_or_else(|| format!("{at} is missing"))?;
            contains(s, w, &at)
        }),
        (Value::Array(stored), Value::Array(written)) if stored.len() == written.len() => stored
            .iter()
            .zip(written)
            .enumerate()
            .try_for_each(|(i, (s, w))| contains(s, w, &format!("{at}[{i}]"))),
        (Value::Number(s), Value::Number(w)) if s.as_f64() == w.as_f64() => Ok(()),
        (s, w) if s == w => Ok(()),
        (s, w) => Err(format!("{at}: written {w}, stored {s}")),
    }
}

#[tokio::test]
async fn kubectl_applies_the_examples_and_docs_client_side_as_written() {
    let stored = apply_every_source("examples-client-side", false).await;
    let gateway = stored
        .iter()
        .find(|o| o["kind"] == "Gateway" && o["metadata"]["name"] == "edge")
        .expect("the Gateway edge is stored");
    assert_eq!(
        gateway["spec"]["defaults"]["retry"]["retryOn"],
        serde_json::json!(["ConnectFailure", "GatewayError"])
    );
}

#[tokio::test]
async fn kubectl_applies_the_examples_and_docs_server_side_as_written() {
    let stored = apply_every_source("examples-server-side", true).await;
    assert!(stored.iter().any(|o| o["kind"] == "Secret"));
}

/// `portcullis check` on the repository's file `path`, with `--strict` or without.
fn check(path: &str, strict: bool) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    command
        .current_dir(repository())
        .args(["check", "-f", path]);
    if strict {
        command.arg("--strict");
    }
    command.output().expect("portcullis check runs")
}

/// The fixture `name` of `tests/fixtures/yaml11/`: its path, and its text moved into `namespace`.
fn yaml11_fixture(name: &str, namespace: &str) -> (String, String) {
    let path = format!("tests/fixtures/yaml11/{name}");
    let text = fs::read_to_string(repository().join(&path)).expect("the fixture reads");
    (path, into_namespace(&text, namespace))
}

/// Applies the fixture `name` with kubectl, client-side then server-side, in a namespace of its
/// own; asserts that kubectl refuses it both ways and returns the fixture's path and kubectl's
/// two refusals (standard error, client-side first).
async fn kubectl_refusals(name: &str) -> (String, [String; 2]) {
    let ctx = TestContext::new(name.trim_end_matches(".yaml")).await;
    let kubectl = Kubectl::new(ctx.control_plane);
    let (path, manifest) = yaml11_fixture(name, &ctx.namespace);
    let mut refusals = [String::new(), String::new()];
    for (refusal, server_side) in refusals.iter_mut().zip([false, true]) {
        let applied = kubectl
            .apply_stdin(&ctx.namespace, &manifest, server_side)
            .await;
        assert!(
            !applied.success,
            "kubectl applied {name} (server-side {server_side})"
        );
        *refusal = applied.stderr;
    }
    (path, refusals)
}

#[tokio::test]
async fn kubectl_and_check_strict_both_refuse_the_retry_key_on() {
    let (path, refusals) = kubectl_refusals("retry-on-key.yaml").await;
    for refusal in refusals {
        assert!(refusal.contains("spec.defaults.retry.true"), "{refusal}");
    }
    let checked = check(&path, true);
    assert_eq!(checked.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(
        stdout.contains(
            "spec.defaults.retry.on: line 17 column 7: kubectl reads the key on as the boolean true"
        ),
        "{stdout}"
    );
}

#[tokio::test]
async fn kubectl_refuses_what_check_warns_about_and_check_strict_refuses() {
    let (path, refusals) = kubectl_refusals("on-key-and-yes-header.yaml").await;
    // Client-side: "must be of type string"; server-side: "expected string, got ... true".
    for refusal in refusals {
        assert!(
            refusal.contains("requestHeaderModifier.set[0].value")
                && (refusal.contains("must be of type string")
                    || refusal.contains("expected string")),
            "{refusal}"
        );
    }
    assert_eq!(check(&path, false).status.code(), Some(0));
    assert_eq!(check(&path, true).status.code(), Some(1));
}

#[tokio::test]
async fn kubectl_stores_quoted_keys_and_values_as_text_and_check_strict_passes_them() {
    for server_side in [false, true] {
        // A namespace each: a server-side apply over a client-side one conflicts on its fields.
        let ctx = TestContext::new("quoted").await;
        let kubectl = Kubectl::new(ctx.control_plane);
        let (_, manifest) = yaml11_fixture("quoted.yaml", &ctx.namespace);
        let applied = kubectl
            .apply_stdin(&ctx.namespace, &manifest, server_side)
            .await;
        assert!(
            applied.success,
            "server-side {server_side}: {}{}",
            applied.stdout, applied.stderr
        );
        let got = kubectl
            .run(
                &["get", "-n", &ctx.namespace, "route", "flags", "-o", "json"],
                None,
            )
            .await;
        assert!(got.success, "kubectl get: {}", got.stderr);
        let route: Value = serde_json::from_str(&got.stdout).expect("kubectl prints JSON");
        assert_eq!(route["metadata"]["annotations"]["on"], "weekdays");
        assert_eq!(
            route["spec"]["rules"][0]["filters"][0]["requestHeaderModifier"]["set"][0]["value"],
            "yes"
        );
    }
    let checked = check("tests/fixtures/yaml11/quoted.yaml", true);
    assert_eq!(checked.status.code(), Some(0));
}

#[test]
fn yaml_blocks_are_found_in_markdown_and_other_fences_skipped() {
    let markdown = "text\n```sh\nkubectl apply\n```\n```yaml\nkind: A\n```\n  ```yml title\n  kind: B\n  ```\n";
    assert_eq!(yaml_blocks(markdown), ["kind: A\n", "  kind: B\n"]);
}

#[test]
fn manifests_move_into_the_test_namespace_with_their_references() {
    let text = "metadata: {name: a, namespace: shop}\nspec:\n  parentRefs:\n    - {name: edge, namespace: shop}\n  other: shopping\n  namespace: shop-2\n";
    assert_eq!(
        into_namespace(text, "t-1"),
        "metadata: {name: a, namespace: t-1}\nspec:\n  parentRefs:\n    - {name: edge, namespace: t-1}\n  other: shopping\n  namespace: shop-2\n"
    );
}
