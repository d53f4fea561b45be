//! Reading manifests from files and folders: multi-document YAML, validated document by
//! document with the CRD schemas and CEL rules, the way `kubectl apply --validate=strict` would.
//!
//! `check`, `render`, `run` and `demo` all load manifests through here, so a manifest that
//! passes `check` is exactly what the other commands serve.
//!
//! The loader reads YAML 1.2; kubectl reads YAML 1.1. Every place where the two would read a
//! manifest differently comes back as a warning ([`readings`]).

mod nodes;
mod readings;
#[cfg(test)]
mod shipped;
mod yaml;
mod yaml11;

pub use yaml::LIMITS_HELP;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use portcullis_api::{Gateway, Route, ServiceBackend, validation::CrdValidator};
use serde_json::Value;

/// The objects found in a set of manifests, each with the file it came from.
#[derive(Debug, Default)]
pub struct Manifests {
    /// Gateways, in file order.
    pub gateways: Vec<Sourced<Gateway>>,
    /// Routes, in file order.
    pub routes: Vec<Sourced<Route>>,
    /// ServiceBackends, in file order.
    pub backends: Vec<Sourced<ServiceBackend>>,
    /// Secrets that Gateways and Routes may reference (TLS certificates, API keys, ...).
    pub secrets: Vec<Sourced<Secret>>,
    /// Namespaces, for `allowedRoutes.namespaces.selector`.
    pub namespaces: Vec<Sourced<Namespace>>,
}

/// An object and the file that holds it.
#[derive(Debug, Clone)]
pub struct Sourced<T> {
    /// The file the object came from.
    pub file: PathBuf,
    /// The object.
    pub object: T,
}

/// A problem with a manifest, printed as `FILE: Kind/namespace/name: field: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file holding the bad document.
    pub file: PathBuf,
    /// `Kind/namespace/name` of the object, when it could be read.
    pub object: Option<String>,
    /// Path of the bad field, when there is one.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if let Some(field) = self.field.as_deref().filter(|f| !f.is_empty()) {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// What came out of loading: the valid objects, the problems, and notes about documents that
/// were skipped (other kinds of object).
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every valid object.
    pub manifests: Manifests,
    /// Every problem, in file order.
    pub problems: Vec<Problem>,
    /// Documents that are not Portcullis resources and were skipped.
    pub notes: Vec<String>,
    /// Places that kubectl, which reads YAML 1.1, would read differently from this loader
    /// (YAML 1.2): `on:` as a key, an unquoted `yes` in a string field, ...
    pub warnings: Vec<Problem>,
}

/// Loads every `*.yaml`/`*.yml` file under `paths` (files, or folders walked recursively in
/// name order).
pub fn load(paths: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded::default();
    let mut files = Vec::new();
    for path in paths {
        collect_files(path, &mut files, &mut loaded.problems);
    }
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => load_text(&file, &text, &mut loaded),
            Err(error) => loaded.problems.push(Problem {
                file,
                object: None,
                field: None,
                message: format!("cannot read the file: {error}"),
            }),
        }
    }
    loaded
}

/// The files a set of paths names, in a stable order.
pub fn collect_files(path: &Path, files: &mut Vec<PathBuf>, problems: &mut Vec<Problem>) {
    if path.is_dir() {
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(error) => {
                problems.push(Problem {
                    file: path.to_owned(),
                    object: None,
                    field: None,
                    message: format!("cannot read the folder: {error}"),
                });
                return;
            }
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for child in children {
            let is_yaml = matches!(
                child.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            );
            if child.is_dir() || is_yaml {
                collect_files(&child, files, problems);
            }
        }
    } else if path.exists() {
        files.push(path.to_owned());
    } else {
        problems.push(Problem {
            file: path.to_owned(),
            object: None,
            field: None,
            message: "no such file or folder".to_owned(),
        });
    }
}

/// Loads the documents of one file's text.
///
/// A GitOps bundle can hold thousands of documents in one file, so the work is shared among
/// the machine's cores: the YAML 1.1 readings are looked for while the documents are read, and
/// the documents are validated in runs of consecutive documents, one run per core. Joined in
/// order, the runs give the same objects, problems and notes, in the same order, as one pass.
pub fn load_text(file: &Path, text: &str, loaded: &mut Loaded) {
    let (documents, warnings) = std::thread::scope(|scope| {
        let warnings = scope.spawn(|| readings::warnings(file, text));
        (yaml::documents(text), warnings.join())
    });
    let documents = match documents {
        Ok(documents) => documents,
        Err(message) => {
            loaded.problems.push(Problem {
                file: file.to_owned(),
                object: None,
                field: None,
                message: format!("invalid YAML: {message}"),
            });
            return;
        }
    };
    loaded
        .warnings
        .extend(warnings.unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
    for part in load_documents(file, documents) {
        loaded.append(part);
    }
}

/// Fewest documents worth a thread of their own.
const DOCUMENTS_PER_THREAD: usize = 64;

/// What each run of consecutive documents loads to, in the documents' order.
fn load_documents(file: &Path, mut documents: Vec<Value>) -> Vec<Loaded> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let threads = cores.min(documents.len() / DOCUMENTS_PER_THREAD).max(1);
    let per_thread = documents.len().div_ceil(threads).max(1);
    let mut runs = Vec::with_capacity(threads);
    while documents.len() > per_thread {
        let rest = documents.split_off(per_thread);
        runs.push(std::mem::replace(&mut documents, rest));
    }
    runs.push(documents);
    let load_run = |run: Vec<Value>| {
        let mut loaded = Loaded::default();
        for document in run {
            load_document(file, document, &mut loaded);
        }
        loaded
    };
    std::thread::scope(|scope| {
        let mut runs = runs.into_iter();
        let first = runs.next();
        let others: Vec<_> = runs.map(|run| scope.spawn(move || load_run(run))).collect();
        let mut parts: Vec<Loaded> = first.into_iter().map(load_run).collect();
        parts.extend(others.into_iter().map(|thread| {
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }));
        parts
    })
}

impl Loaded {
    /// Adds what `other` loaded after what this one loaded.
    fn append(&mut self, other: Loaded) {
        // Every kind named, so that a kind added to `Manifests` cannot be left out here.
        let Manifests {
            gateways,
            routes,
            backends,
            secrets,
            namespaces,
        } = other.manifests;
        let mine = &mut self.manifests;
        mine.gateways.extend(gateways);
        mine.routes.extend(routes);
        mine.backends.extend(backends);
        mine.secrets.extend(secrets);
        mine.namespaces.extend(namespaces);
        self.problems.extend(other.problems);
        self.notes.extend(other.notes);
        self.warnings.extend(other.warnings);
    }
}

/// `Kind/namespace/name`.
fn object_id(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{}/{name}", namespace_or_default(namespace))
}

/// Namespaced objects without a namespace land in `default`, as with `kubectl apply`.
fn namespace_or_default(namespace: &str) -> &str {
    if namespace.is_empty() {
        "default"
    } else {
        namespace
    }
}

/// The kinds the loader reads; others are skipped with a note.
fn is_loaded_kind(api_version: &str, kind: &str) -> bool {
    matches!(
        (api_version, kind),
        ("v1", "Secret" | "Namespace")
            | (
                portcullis_api::API_VERSION,
                "Gateway" | "Route" | "ServiceBackend"
            )
    )
}

fn load_document(file: &Path, document: Value, loaded: &mut Loaded) {
    let text = |pointer: &str| {
        document
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (api_version, kind, name) = (text("/apiVersion"), text("/kind"), text("/metadata/name"));
    let (api_version, kind, name) = (api_version.as_str(), kind.as_str(), name.as_str());
    let namespace = text("/metadata/namespace");
    let namespace = namespace_or_default(&namespace);
    let object = object_id(kind, namespace, name);
    let problem = |field: &str, message: String| Problem {
        file: file.to_owned(),
        object: Some(object.clone()),
        field: Some(field.to_owned()),
        message,
    };
    if api_version.is_empty() || kind.is_empty() {
        loaded.problems.push(Problem {
            file: file.to_owned(),
            object: None,
            field: None,
            message: "a document without apiVersion and kind is not a Kubernetes object".to_owned(),
        });
        return;
    }
    let is_portcullis = api_version.split('/').next() == Some(portcullis_api::GROUP);
    if !is_loaded_kind(api_version, kind) {
        if is_portcullis {
            loaded.problems.push(problem(
                "",
                format!(
                    "unknown kind {kind:?} in {api_version}: Portcullis serves Gateway, Route and ServiceBackend in {}",
                    portcullis_api::API_VERSION
                ),
            ));
        } else {
            loaded.notes.push(format!(
                "{}: {api_version} {object}: skipped, not a Portcullis resource",
                file.display()
            ));
        }
        return;
    }
    if name.is_empty() {
        loaded
            .problems
            .push(problem("metadata.name", "Required value".to_owned()));
        return;
    }
    let document = with_namespace(document, namespace);
    let document = match validator(kind) {
        Some(validator) => match validator.validate(&document) {
            Ok(defaulted) => defaulted,
            Err(errors) => {
                loaded.problems.extend(
                    errors
                        .into_iter()
                        .map(|error| problem(&error.field, error.message)),
                );
                return;
            }
        },
        None => document,
    };
    let manifests = &mut loaded.manifests;
    let file = file.to_owned();
    let result = match kind {
        "Gateway" => {
            typed(document).map(|object| manifests.gateways.push(Sourced { file, object }))
        }
        "Route" => typed(document).map(|object| manifests.routes.push(Sourced { file, object })),
        "ServiceBackend" => {
            typed(document).map(|object| manifests.backends.push(Sourced { file, object }))
        }
        "Secret" => typed(document).map(|object| manifests.secrets.push(Sourced { file, object })),
        _ => typed(document).map(|object| manifests.namespaces.push(Sourced { file, object })),
    };
    if let Err(error) = result {
        loaded.problems.push(problem("", error.to_string()));
    }
}

/// What a document of `kind` is validated with; `None` for the kinds that have no CRD.
/// Made once per process: generating a CRD and compiling its CEL rules costs far more than
/// validating a document, and `run` reloads the same kinds on every change.
fn validator(kind: &str) -> Option<&'static CrdValidator> {
    static VALIDATORS: OnceLock<Vec<CrdValidator>> = OnceLock::new();
    VALIDATORS
        .get_or_init(|| {
            portcullis_api::crds()
                .iter()
                .map(CrdValidator::new)
                .collect()
        })
        .iter()
        .find(|validator| validator.kind() == kind)
}

fn typed<T: serde::de::DeserializeOwned>(document: Value) -> Result<T, serde_json::Error> {
    serde_json::from_value(document)
}

/// Namespaced objects without a namespace land in `default`, as with `kubectl apply`.
fn with_namespace(mut document: Value, namespace: &str) -> Value {
    let is_namespace = document.get("kind").and_then(Value::as_str) == Some("Namespace");
    if !is_namespace
        && let Some(metadata) = document.get_mut("metadata").and_then(Value::as_object_mut)
    {
        metadata
            .entry("namespace")
            .or_insert_with(|| Value::String(namespace.to_owned()));
    }
    document
}
