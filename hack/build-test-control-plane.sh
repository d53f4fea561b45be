#!/usr/bin/env bash
# Builds the Kubernetes control plane that Portcullis' integration tests run against:
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler, plus kwok (fake nodes
# that mark scheduled pods Running and Ready) and kubectl (the same release as the API server,
# for the tests that apply manifests as a user does), compiled from the upstream Go modules (the
# Go module proxy is the only source; no download sites).
#
# Usage: hack/build-test-control-plane.sh [--cached-only]
#   Prints the directory holding the binaries as its last (and only) line on stdout;
#   progress goes to stderr. `make test` exports that directory as PORTCULLIS_K8S_BIN.
#   --cached-only: never build; exit 3 if the binaries are not there yet. The Rust test
#   harness uses it, so a plain `cargo test` finds a cache that `make test` filled.
#
# Environment:
#   KUBEBUILDER_ASSETS        envtest convention: if it holds kube-apiserver and etcd, use it
#                             as is and build nothing.
#   PORTCULLIS_K8S_VERSION    k8s.io/kubernetes version (default v1.36.3).
#   PORTCULLIS_ETCD_VERSION   go.etcd.io/etcd/server/v3 version (default v3.6.16).
#   PORTCULLIS_KWOK_VERSION   sigs.k8s.io/kwok version (default v0.8.0).
#   PORTCULLIS_K8S_CACHE      cache root (default ${XDG_CACHE_HOME:-~/.cache}/portcullis/k8s).
#
# The result is cached per version pair under <cache root>/<k8s>-etcd<etcd>/ and stamped
# with .complete (which records every component's version), so a second run prints the
# directory and exits at once. A cold build needs Go >= the version named in
# k8s.io/kubernetes' go.mod (1.26 for v1.36).
set -euo pipefail

K8S_VERSION="${PORTCULLIS_K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${PORTCULLIS_ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${PORTCULLIS_KWOK_VERSION:-v0.8.0}"
CACHE_ROOT="${PORTCULLIS_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portcullis/k8s}"
OUT="$CACHE_ROOT/${K8S_VERSION}-etcd${ETCD_VERSION}"
STAMP="$OUT/.complete"
# A stamp from a build with other components (say, before kwok was added) is not a cache hit.
STAMP_TEXT="kubernetes $K8S_VERSION (with kubectl), etcd $ETCD_VERSION, kwok $KWOK_VERSION"
cache_hit() { [[ -f "$STAMP" && "$(<"$STAMP")" == "$STAMP_TEXT" ]]; }

CACHED_ONLY=0
case "${1:-}" in
  "") ;;
  --cached-only) CACHED_ONLY=1 ;;
  *)
    echo "usage: $0 [--cached-only]" >&2
    exit 2
    ;;
esac

log() { echo "build-test-control-plane: $*" >&2; }
die() { log "error: $*"; exit 1; }

# 1. Binaries the user already has (e.g. from setup-envtest) win.
if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  if [[ -x "$KUBEBUILDER_ASSETS/kube-apiserver" && -x "$KUBEBUILDER_ASSETS/etcd" ]]; then
    [[ -x "$KUBEBUILDER_ASSETS/kube-controller-manager" ]] ||
      log "note: $KUBEBUILDER_ASSETS has no kube-controller-manager; tests needing it will fail"
    echo "$KUBEBUILDER_ASSETS"
    exit 0
  fi
  log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks kube-apiserver or etcd; building our own"
fi

# 2. Cache hit: nothing to do.
if cache_hit; then
  echo "$OUT"
  exit 0
fi

if ((CACHED_ONLY)); then
  log "no binaries in $OUT yet; run \`make test\` or $0 to build them"
  exit 3
fi

command -v go >/dev/null || die "go is not installed (a cold build needs Go 1.26 or newer)"
mkdir -p "$CACHE_ROOT"

# Serialise concurrent runs (two `make test` at once): the second waits, then hits the cache.
exec 9>"$CACHE_ROOT/.lock"
flock 9
if cache_hit; then
  echo "$OUT"
  exit 0
fi

MINOR="${K8S_VERSION#v1.}"
MINOR="${MINOR%%.*}"
STAGING_VERSION="v0.${K8S_VERSION#v1.}" # k8s.io/kubernetes v1.X.Y <-> staging modules v0.X.Y

WORK="$(mktemp -d "${TMPDIR:-/tmp}/portcullis-k8s-build.XXXXXX")"
PARTIAL="$OUT.partial"
trap 'rm -rf "$WORK" "$PARTIAL"' EXIT
rm -rf "$PARTIAL"
mkdir -p "$PARTIAL"

# Never let a go.work above the temp dir pull the shims into a workspace. No cgo: upstream
# builds these binaries statically too, and no C toolchain is needed.
export GOWORK=off CGO_ENABLED=0
# Build at low priority so the machine stays usable (other cargo builds, editors).
GO=(nice -n 10 go)

log "building Kubernetes $K8S_VERSION, etcd $ETCD_VERSION and kwok $KWOK_VERSION into $OUT"
log "with $(go env GOVERSION)"
log "a cold build takes several minutes; later runs reuse the cache"

# ---------------------------------------------------------------------------------------------
# kube-apiserver, kube-controller-manager, kube-scheduler
#
# `go install k8s.io/kubernetes/cmd/kube-apiserver@vX` is refused because k8s.io/kubernetes'
# go.mod has `replace` directives: it requires every staging module (k8s.io/api, client-go, ...)
# at the unpublished v0.0.0 and maps it to ./staging/src/... . A local main module can replace
# them with the published v0.X.Y versions instead. The list of staging modules is read from that
# version's own go.mod, so it stays right when the version moves. The upstream main packages are
# built directly (go.mod `tool` directives keep them in the module graph), so no main.go is copied.
# ---------------------------------------------------------------------------------------------
mkdir -p "$WORK/k8s"
cd "$WORK/k8s"
go mod init portcullis.local/test-control-plane/k8s >/dev/null 2>&1

KMOD="$("${GO[@]}" mod download -json "k8s.io/kubernetes@${K8S_VERSION}" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
[[ -f "$KMOD" ]] || die "could not download k8s.io/kubernetes@${K8S_VERSION} from the module proxy"

# Same language version and GODEBUG defaults as upstream (only the main module's count).
go mod edit -go="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$KMOD")"
grep -E '^godebug ' "$KMOD" >>go.mod || true

if grep -E '=>' "$KMOD" | grep -vq '\./staging/src/'; then
  log "warning: k8s.io/kubernetes' go.mod has replace directives that are not staging modules;"
  log "         they are ignored in this build and may change dependency versions:"
  grep -E '=>' "$KMOD" | grep -v '\./staging/src/' >&2
fi
mapfile -t STAGING < <(sed -nE \
  's#^[[:space:]]*(replace[[:space:]]+)?(k8s\.io/[A-Za-z0-9._-]+)[[:space:]]+=>[[:space:]]+\./staging/src/.*#\2#p' \
  "$KMOD" | sort -u)
((${#STAGING[@]} > 0)) || die "found no staging replace directives in $KMOD"
log "replacing ${#STAGING[@]} staging modules with $STAGING_VERSION"
EDITS=(-require="k8s.io/kubernetes@${K8S_VERSION}")
for m in "${STAGING[@]}"; do
  EDITS+=(-replace="$m=$m@$STAGING_VERSION")
done
K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
for c in "${K8S_CMDS[@]}"; do
  EDITS+=(-tool="k8s.io/kubernetes/cmd/$c")
done
go mod edit "${EDITS[@]}"
"${GO[@]}" mod tidy

# Version stamps, as upstream's hack/lib/version.sh sets them, so /version and --version
# report the real release (it also drives feature-gate defaults and emulation versions).
LDFLAGS="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDFLAGS+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$MINOR"
  LDFLAGS+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
PKGS=()
for c in "${K8S_CMDS[@]}"; do
  PKGS+=("k8s.io/kubernetes/cmd/$c")
done
# Build tags as upstream's hack/lib/golang.sh uses for release binaries.
"${GO[@]}" build -trimpath -tags=selinux,notest,grpcnotrace -ldflags="$LDFLAGS" \
  -o "$PARTIAL/" "${PKGS[@]}"

# ---------------------------------------------------------------------------------------------
# etcd: its server module is itself a main package (calling etcdmain.Main), but its go.mod
# also has local replaces, so it gets its own small main module. Kept apart from the k8s one
# so that minimal version selection does not move the apiserver's etcd client.
# ---------------------------------------------------------------------------------------------
mkdir -p "$WORK/etcd"
cd "$WORK/etcd"
go mod init portcullis.local/test-control-plane/etcd >/dev/null 2>&1
go mod edit -require="go.etcd.io/etcd/server/v3@${ETCD_VERSION}" -tool=go.etcd.io/etcd/server/v3
"${GO[@]}" mod tidy
"${GO[@]}" build -trimpath -ldflags="-s -w" -o "$PARTIAL/etcd" go.etcd.io/etcd/server/v3

# ---------------------------------------------------------------------------------------------
# kwok: its go.mod has no replace directives, so a plain `go install pkg@version` works. It only
# acts on the Stage objects it is given: take the "fast" node and pod stages it ships (what
# kwokctl uses by default) and put them in one file next to the binary.
# ---------------------------------------------------------------------------------------------
GOBIN="$PARTIAL" "${GO[@]}" install -trimpath -ldflags="-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
KWOK_DIR="$("${GO[@]}" mod download -json "sigs.k8s.io/kwok@${KWOK_VERSION}" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
[[ -d "$KWOK_DIR" ]] || die "could not download sigs.k8s.io/kwok@${KWOK_VERSION}"
for stage in node/fast/node-initialize pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
  echo "---"
  cat "$KWOK_DIR/kustomize/stage/$stage.yaml"
done >"$PARTIAL/kwok-stages.yaml"

# ---------------------------------------------------------------------------------------------
# Check the binaries run and report the expected versions, then publish the directory.
# ---------------------------------------------------------------------------------------------
got="$("$PARTIAL/kube-apiserver" --version)"
[[ "$got" == "Kubernetes $K8S_VERSION" ]] || die "kube-apiserver --version printed '$got'"
got_kubectl="$("$PARTIAL/kubectl" version --client 2>/dev/null | head -n1)"
[[ "$got_kubectl" == "Client Version: $K8S_VERSION" ]] || die "kubectl version --client printed '$got_kubectl'"
"$PARTIAL/etcd" --version | grep -q "^etcd Version: ${ETCD_VERSION#v}$" ||
  die "etcd --version printed '$("$PARTIAL/etcd" --version | head -n1)'"
got_kwok="$("$PARTIAL/kwok" --version)"
[[ "$got_kwok" == "kwok version $KWOK_VERSION "* ]] || die "kwok --version printed '$got_kwok'"
log "$got; $("$PARTIAL/etcd" --version | head -n1); $got_kwok"

echo "$STAMP_TEXT" >"$PARTIAL/.complete"
rm -rf "$OUT"
mv "$PARTIAL" "$OUT"
echo "$OUT"
