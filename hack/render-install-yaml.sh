#!/usr/bin/env bash
# Prints deploy/install.yaml: a Namespace, then the Helm chart rendered with its CRDs for release
# `portcullis` in that namespace. `make install-yaml` writes it; `make check-generated` compares.
#
# Usage: hack/render-install-yaml.sh
#   Uses $PORTCULLIS_HELM, else builds (once) or reuses helm with hack/build-helm.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

NAMESPACE=portcullis-system
HELM="${PORTCULLIS_HELM:-$(hack/build-helm.sh | tail -n1)}"
VERSION="$(sed -n 's/^appVersion: "\(.*\)"$/\1/p' charts/portcullis/Chart.yaml)"

cat <<YAML
# Portcullis $VERSION: the CRDs and the operator in namespace $NAMESPACE.
#   kubectl apply --server-side -f deploy/install.yaml
# Rendered from charts/portcullis by \`make install-yaml\`; do not edit.
---
apiVersion: v1
kind: Namespace
metadata:
  name: $NAMESPACE
  labels:
    app.kubernetes.io/name: portcullis
    app.kubernetes.io/part-of: portcullis
    # The operator's pods meet the restricted Pod Security Standard.
    pod-security.kubernetes.io/enforce: restricted
YAML
"$HELM" template portcullis charts/portcullis --namespace "$NAMESPACE" --include-crds
