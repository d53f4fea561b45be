#!/usr/bin/env bash
# Builds the helm CLI that Portcullis' chart tests use (`helm lint`, `helm template`) and that
# `make install-yaml` renders deploy/install.yaml with, compiled from its Go module (the Go
# module proxy is the only source; no download sites).
#
# Usage: hack/build-helm.sh [--cached-only]
#   Prints the path of the helm binary as its last (and only) line on stdout; progress goes to
#   stderr. `make test` exports that path as PORTCULLIS_HELM.
#   --cached-only: never build; exit 3 if the binary is not there yet.
#
# Environment:
#   PORTCULLIS_HELM_VERSION   helm.sh/helm version, v3.x or v4.x (default v3.22.0). deploy/install.yaml
#                             is rendered with the default: helm v4 lays the same objects out with
#                             extra blank lines, which the drift check counts as a difference.
#   PORTCULLIS_HELM_CACHE     cache root (default ${XDG_CACHE_HOME:-~/.cache}/portcullis/helm).
#
# The binary is cached under <cache root>/<version>/helm and stamped with .complete, so a
# second run prints the path and exits at once. A cold build needs Go >= the version named in
# helm's go.mod (1.26 for v3.22).
set -euo pipefail

HELM_VERSION="${PORTCULLIS_HELM_VERSION:-v3.22.0}"
CACHE_ROOT="${PORTCULLIS_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portcullis/helm}"
OUT="$CACHE_ROOT/$HELM_VERSION"
STAMP="$OUT/.complete"
STAMP_TEXT="helm $HELM_VERSION"
cache_hit() { [[ -f "$STAMP" && "$(<"$STAMP")" == "$STAMP_TEXT" && -x "$OUT/helm" ]]; }

CACHED_ONLY=0
case "${1:-}" in
  "") ;;
  --cached-only) CACHED_ONLY=1 ;;
  *)
    echo "usage: $0 [--cached-only]" >&2
    exit 2
    ;;
esac

log() { echo "build-helm: $*" >&2; }
die() { log "error: $*"; exit 1; }

if cache_hit; then
  echo "$OUT/helm"
  exit 0
fi

if ((CACHED_ONLY)); then
  log "no helm in $OUT yet; run \`make test\` or $0 to build it"
  exit 3
fi

MAJOR="${HELM_VERSION%%.*}" # v3 or v4: the module path's major version suffix
case "$MAJOR" in
  v3 | v4) ;;
  *) die "PORTCULLIS_HELM_VERSION=$HELM_VERSION: only helm v3.x and v4.x are supported" ;;
esac
MODULE="helm.sh/helm/$MAJOR"

command -v go >/dev/null || die "go is not installed (a cold build needs Go 1.26 or newer)"
mkdir -p "$CACHE_ROOT"

# Serialise concurrent runs: the second waits, then hits the cache.
exec 9>"$CACHE_ROOT/.lock"
flock 9
if cache_hit; then
  echo "$OUT/helm"
  exit 0
fi

PARTIAL="$OUT.partial"
trap 'rm -rf "$PARTIAL"' EXIT
rm -rf "$PARTIAL"
mkdir -p "$PARTIAL"

# Never let a go.work around pull helm into a workspace. No cgo: helm's release binaries are
# static too. Build at low priority so the machine stays usable.
export GOWORK=off CGO_ENABLED=0
GO=(nice -n 10 go)

log "building helm $HELM_VERSION into $OUT with $(go env GOVERSION)"

# The version stamps helm's own Makefile sets (not the git commit: the module proxy does not
# carry it, so `helm version` shows GitCommit ""). Helm v3 also needs the Kubernetes version it
# was built against (its client-go minor): without it, client-only `helm template` and
# `helm lint` assume Kubernetes v1.20 (.Capabilities.KubeVersion, deprecation checks). Helm v4
# reads it from the build info and needs nothing.
LDFLAGS="-s -w -X $MODULE/internal/version.version=$HELM_VERSION"
LDFLAGS+=" -X $MODULE/internal/version.metadata= -X $MODULE/internal/version.gitTreeState=clean"
if [[ "$MAJOR" == v3 ]]; then
  GOMOD="$("${GO[@]}" mod download -json "$MODULE@$HELM_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -f "$GOMOD" ]] || die "could not download $MODULE@$HELM_VERSION from the module proxy"
  CLIENT_GO="$(sed -n 's#^[[:space:]]*k8s\.io/client-go v\([0-9]*\)\.\([0-9]*\)\..*#\1 \2#p' "$GOMOD")"
  read -r CG_MAJOR CG_MINOR <<<"$CLIENT_GO"
  [[ -n "${CG_MINOR:-}" ]] || die "found no k8s.io/client-go requirement in $GOMOD"
  K8S_MAJOR=$((CG_MAJOR + 1)) # client-go v0.X <-> Kubernetes v1.X
  for p in pkg/chartutil pkg/lint/rules; do
    LDFLAGS+=" -X $MODULE/$p.k8sVersionMajor=$K8S_MAJOR -X $MODULE/$p.k8sVersionMinor=$CG_MINOR"
  done
  log "Kubernetes version for client-only rendering: v$K8S_MAJOR.$CG_MINOR"
fi

GOBIN="$PARTIAL" "${GO[@]}" install -trimpath -ldflags="$LDFLAGS" "$MODULE/cmd/helm@$HELM_VERSION"

got="$("$PARTIAL/helm" version --template '{{.Version}}')"
[[ "$got" == "$HELM_VERSION" ]] || die "helm version printed '$got', expected '$HELM_VERSION'"
log "helm $got"

echo "$STAMP_TEXT" >"$PARTIAL/.complete"
rm -rf "$OUT"
mv "$PARTIAL" "$OUT"
echo "$OUT/helm"
