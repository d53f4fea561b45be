# Portcullis — the everyday loop.
#
#   make demo    the whole picture on localhost, no cluster needed
#   make test    every test, building the test control plane and helm first if not cached
#   make lint    formatting and clippy, warnings are errors
#   make crds    regenerate crds/ from the API types
#   make generate  every generated file: crds/, the chart's CRDs and RBAC rules, deploy/install.yaml
#   make drill   failover drills: real proxies behind HAProxy under load, the table printed
#   make bench   the data plane side by side with nginx, then what its policies cost, then the
#                offline path (check, render, run) on bundles of 1,000 to 20,000 Routes
#   make bench-offline  only the offline path at scale (hack/bench-offline.sh)
#   make bench-policies  only the policies: auth, rate limits and cache against plain, nginx's cache
#   make bench-instructions  instructions per proxied request, Portcullis and nginx (valgrind)
#   make image   the container image (needs a Docker engine)
#   make fuzz    each fuzz target for FUZZ_SECONDS (60) with nightly and cargo-fuzz; not in make test

CARGO ?= cargo
BIN := target/debug/portcullis

.PHONY: build release release-pgo test demo lint crds chart-rbac install-yaml generate check-generated bench \
	bench-policies bench-instructions bench-offline \
	control-plane helm redis-server haproxy drill image fuzz

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# A profile-guided build of portcullis, trained on proxied traffic (hack/build-pgo.sh: needs
# llvm-profdata of rustc's LLVM, nginx, wrk); prints the binary's path.
release-pgo:
	hack/build-pgo.sh portcullis

# The operator tests run against a real kube-apiserver, etcd and kube-controller-manager, built
# once from the upstream Go modules and cached in ~/.cache/portcullis/k8s (a second run costs
# nothing). KUBEBUILDER_ASSETS points at existing binaries instead.
control-plane:
	@hack/build-test-control-plane.sh >/dev/null

# helm (for the chart tests and deploy/install.yaml), built the same way into ~/.cache/portcullis/helm.
helm:
	@hack/build-helm.sh >/dev/null

# The shared-state tests (global rate limits, shared caches) start their own real redis-server:
# Debian's package, installed here when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
redis-server:
	@command -v redis-server >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

# The failover drills (tests/drill.rs) put Debian's HAProxy in front of the gateway replicas.
haproxy:
	@command -v haproxy >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq haproxy >/dev/null; }

test: control-plane helm redis-server haproxy
	# The process tests run the serve_snapshot example: built first, so that it is there (and
	# current) for them whichever targets the test run builds.
	$(CARGO) build -p portcullis-proxy --example serve_snapshot
	PORTCULLIS_K8S_BIN="$$(hack/build-test-control-plane.sh | tail -n1)" \
	PORTCULLIS_HELM="$$(hack/build-helm.sh | tail -n1)" \
		$(CARGO) test --workspace --all-targets
# Generated files are checked by the tests themselves (tests/crds.rs, tests/chart.rs), with the
# binary the tests already built; `make check-generated` does the same by hand.

# The failover drills alone, with their table: three `portcullis proxy --configmap` replicas
# behind HAProxy under a steady load, a replica drained and killed, Route edits, the API
# server stopped for 30 s, the operator's leader killed, a backend endpoint killed, a bad Route
# (a few minutes). `make test` runs them too, without showing the table.
drill: control-plane haproxy
	PORTCULLIS_K8S_BIN="$$(hack/build-test-control-plane.sh | tail -n1)" \
		$(CARGO) test -p portcullis --test drill -- --nocapture

demo:
	$(CARGO) build --release
	target/release/portcullis demo

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

generate: install-yaml

crds: build
	$(BIN) crds > crds/portcullis.yaml
	cp crds/portcullis.yaml charts/portcullis/crds/portcullis.yaml

# The chart's ClusterRole rules, from crates/controller/src/permissions.rs.
chart-rbac:
	$(CARGO) run -q -p portcullis-controller --example cluster_role_rules > charts/portcullis/files/cluster-role-rules.yaml

# deploy/install.yaml: a Namespace plus the chart rendered with its CRDs.
install-yaml: crds chart-rbac helm
	hack/render-install-yaml.sh > deploy/install.yaml

# Fails when a generated file no longer matches what the code generates.
check-generated: build helm
	@$(BIN) crds | diff -u crds/portcullis.yaml - >/dev/null || \
		{ echo "crds/portcullis.yaml is out of date: run 'make crds'"; exit 1; }
	@diff -u crds/portcullis.yaml charts/portcullis/crds/portcullis.yaml >/dev/null || \
		{ echo "charts/portcullis/crds/ is out of date: run 'make crds'"; exit 1; }
	@$(CARGO) run -q -p portcullis-controller --example cluster_role_rules | \
		diff -u charts/portcullis/files/cluster-role-rules.yaml - >/dev/null || \
		{ echo "the chart's ClusterRole rules are out of date: run 'make chart-rbac'"; exit 1; }
	@hack/render-install-yaml.sh | diff -u deploy/install.yaml - >/dev/null || \
		{ echo "deploy/install.yaml is out of date: run 'make install-yaml'"; exit 1; }
	@echo "generated files are up to date"

bench:
	hack/bench-proxy.sh
	hack/bench-policies.sh
	hack/bench-offline.sh

bench-offline:
	hack/bench-offline.sh

bench-policies:
	hack/bench-policies.sh

bench-instructions:
	hack/bench-instructions.sh

IMAGE ?= ghcr.io/portcullis-dev/portcullis:$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
image:
	docker build -t $(IMAGE) .

# The fuzz targets (fuzz/, a workspace of its own), one after the other for FUZZ_SECONDS each.
# Corpora are kept in fuzz/corpus/<target> (the committed seeds grow there); a crash stops the
# run and leaves its input in fuzz/artifacts/<target>. Fuzz builds have their own target dir.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= request_head_vs_hyper request_framing upstream_response path_and_router manifests_compile
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for target in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$target && \
		CARGO_TARGET_DIR=$(CURDIR)/fuzz/target $(CARGO) +nightly fuzz run $$target corpus/$$target \
			-- -max_total_time=$(FUZZ_SECONDS) -dict=dicts/$$target.dict || exit 1; \
	done
