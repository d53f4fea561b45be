//! Compiling the Gateways found in manifests, the way the operator compiles the ones in a
//! cluster: each Gateway with every Route and ServiceBackend of the manifest set.

use std::{collections::BTreeMap, path::PathBuf};

use kube::ResourceExt;
use portcullis_config::{
    Compiled, NamespaceInfo,
    capability::{self, SecretState},
    compile,
    diagnostics::{Diagnostic, Kind, ObjectRef},
    snapshot::{ObjectKey, SecretFile},
};

use crate::manifests::{Manifests, Problem, Sourced};

/// One Gateway of the manifests and what it compiles to.
pub struct CompiledGateway<'a> {
    /// The Gateway and its file.
    pub gateway: &'a Sourced<portcullis_api::Gateway>,
    /// Its snapshot and diagnostics.
    pub compiled: Compiled,
}

/// Compiles every Gateway in `manifests`, in file order.
pub fn compile_gateways(manifests: &Manifests) -> Vec<CompiledGateway<'_>> {
    let routes: Vec<_> = manifests.routes.iter().map(|r| r.object.clone()).collect();
    let backends: Vec<_> = manifests
        .backends
        .iter()
        .map(|b| b.object.clone())
        .collect();
    let namespaces: Vec<NamespaceInfo> = manifests
        .namespaces
        .iter()
        .map(|n| NamespaceInfo {
            name: n.object.name_any(),
            labels: n.object.labels().clone(),
        })
        .collect();
    manifests
        .gateways
        .iter()
        .map(|gateway| CompiledGateway {
            gateway,
            compiled: compile(&gateway.object, &routes, &backends, &namespaces),
        })
        .collect()
}

/// The semantic findings of every compiled Gateway, as `check` problems (errors) and warning
/// lines, each reported once even when several Gateways share the object. The rules this build
/// would answer with 503 are warnings: the gateway serves every other rule.
pub fn findings(
    manifests: &Manifests,
    compiled: &[CompiledGateway<'_>],
) -> (Vec<Problem>, Vec<String>) {
    let files = files_by_object(manifests);
    let mut seen = std::collections::BTreeSet::new();
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for diagnostic in compiled.iter().flat_map(|c| &c.compiled.diagnostics.items) {
        if !seen.insert(diagnostic.to_string()) {
            continue;
        }
        let problem = to_problem(diagnostic, &files);
        match diagnostic.severity {
            portcullis_config::Severity::Error => problems.push(problem),
            portcullis_config::Severity::Warning => warnings.push(problem.to_string()),
        }
    }
    for line in unserved(manifests, compiled, &files) {
        if seen.insert(line.clone()) {
            warnings.push(line);
        }
    }
    (problems, warnings)
}

/// One line per reason a rule of a compiled Gateway is not served by this build, judged by the
/// capability check the gateway itself makes. A Secret in the manifests has its content
/// checked; one that is not there may exist in the cluster, so only its absence from a Secret
/// of the manifests counts as missing.
fn unserved(
    manifests: &Manifests,
    compiled: &[CompiledGateway<'_>],
    files: &BTreeMap<ObjectRef, PathBuf>,
) -> Vec<String> {
    let secret = |file: &SecretFile| {
        let found = manifests.secrets.iter().map(|s| &s.object).find(|s| {
            s.metadata.name.as_deref() == Some(file.name.as_str())
                && s.metadata.namespace.as_deref().unwrap_or("default") == file.namespace
        });
        let Some(found) = found else {
            return SecretState::Present(None);
        };
        let data = found.data.iter().flatten().map(|(k, v)| (k, v.0.clone()));
        let string_data = found
            .string_data
            .iter()
            .flatten()
            .map(|(k, v)| (k, v.as_bytes().to_vec()));
        data.chain(string_data)
            .find(|(key, _)| **key == file.key)
            .map_or(SecretState::Missing, |(_, value)| {
                SecretState::Present(Some(value))
            })
    };
    let mut lines = Vec::new();
    for gateway in compiled {
        for rule in capability::unserved_rules(&gateway.compiled.snapshot, &secret) {
            let object = ObjectRef::new(Kind::Route, rule.route.clone());
            for gap in &rule.gaps {
                let problem = Problem {
                    file: files.get(&object).cloned().unwrap_or_default(),
                    object: Some(object.to_string()),
                    field: Some(gap.field.clone()),
                    message: format!("{}: this gateway answers 503 for the rule", gap.message),
                };
                lines.push(problem.to_string());
            }
        }
    }
    lines
}

fn to_problem(diagnostic: &Diagnostic, files: &BTreeMap<ObjectRef, PathBuf>) -> Problem {
    Problem {
        file: files.get(&diagnostic.object).cloned().unwrap_or_default(),
        object: Some(diagnostic.object.to_string()),
        field: Some(diagnostic.field.clone()),
        message: diagnostic.message.clone(),
    }
}

fn files_by_object(manifests: &Manifests) -> BTreeMap<ObjectRef, PathBuf> {
    fn key<K: kube::Resource>(object: &K) -> ObjectKey {
        ObjectKey::new(
            object
                .meta()
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
            object.meta().name.clone().unwrap_or_default(),
        )
    }
    let mut files = BTreeMap::new();
    for g in &manifests.gateways {
        files.insert(
            ObjectRef::new(Kind::Gateway, key(&g.object)),
            g.file.clone(),
        );
    }
    for r in &manifests.routes {
        files.insert(ObjectRef::new(Kind::Route, key(&r.object)), r.file.clone());
    }
    for b in &manifests.backends {
        files.insert(
            ObjectRef::new(Kind::ServiceBackend, key(&b.object)),
            b.file.clone(),
        );
    }
    files
}
