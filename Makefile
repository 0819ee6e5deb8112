# Every target works on a fresh machine: Go modules come through the module
# proxy, and `test` installs the Debian tools the interop tests need.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2
# The Go modules of this repository. The root module is the client library;
# the others hold what would make a library user's build heavier (the CLI and
# its command tree, later the worker). tools/ is the generator's own module.
MODULES ?= . cmd/mpgdpr worker

.PHONY: all generate check-generate test test-modules lint tidy-check fuzz fuzz-short bench ci deps update-spec check-upstream demo release-prepare release-drill release-check release-snapshot image image-test

all: check-generate lint test

## generate: merge api/sources into api/openapi.yaml and regenerate gen/ and worker/api.
generate:
	$(GO) generate ./...
	cd worker && $(GO) generate ./api/...

## check-generate: fail if api/openapi.yaml or gen/ differ from what generate produces.
check-generate: generate
	@git diff --exit-code -- api/openapi.yaml gen/ worker/api/api.gen.go || { echo "check-generate: committed api/openapi.yaml, gen/ or worker/api/api.gen.go differ from 'make generate' output; run make generate and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- api/openapi.yaml gen/ worker/api/api.gen.go)" || { echo "check-generate: untracked generated files:" >&2; git status --porcelain -- api/openapi.yaml gen/ worker/api/api.gen.go >&2; exit 1; }

## deps: install the Debian tools some tests use (zip, unzip, chromium), where apt-get is available (as root).
deps:
	@if ! command -v zip >/dev/null || ! command -v unzip >/dev/null; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && apt-get install -y -qq zip unzip) >/dev/null 2>&1 || echo "deps: could not install zip/unzip; their interop tests will skip" >&2; \
		else echo "deps: zip/unzip missing and apt-get unavailable; their interop tests will skip" >&2; fi; \
	fi
	@# curl and python3: docs/API.md's curl examples and the Python DSR platform (cmd/mpgdpr) run in tests.
	@if ! command -v curl >/dev/null || ! command -v python3 >/dev/null; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl python3) >/dev/null 2>&1 || echo "deps: could not install curl/python3; their tests will skip (and fail under CI)" >&2; \
		else echo "deps: curl or python3 missing, and apt-get unavailable or not root; their tests will skip (and fail under CI)" >&2; fi; \
	fi
	@# chromium: worker/evidence renders its HTML report in a real headless browser.
	@if ! command -v chromium >/dev/null; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 || echo "deps: could not install chromium; the HTML report's browser test will skip (and fail under CI)" >&2; \
		else echo "deps: chromium missing, and apt-get unavailable or not root; the HTML report's browser test will skip (and fail under CI)" >&2; fi; \
	fi

## demo: the main job: a whole bulk run against the embedded fake Mixpanel (no account).
demo:
	cd cmd/mpgdpr && $(GO) run . demo

## test: the whole suite of every module under the race detector.
##   -race needs cgo and a C compiler (gcc or clang); without one: make test RACE=
RACE ?= -race
## Under -race, every go command of the run gets -race through GOFLAGS, so
##   that the binaries built along the way (the Postgres cluster tool, the
##   worker's and the CLI's process tests, the generated-code drill, the
##   oasdiff and oapi-codegen the spec tests run: internal/specdiff/gotool) link
##   from the packages go test -race compiled instead of compiling them all
##   again without it (about 100 s of CPU on a cold cache). modernc.org's
##   SQLite and libc (C transpiled to Go, doing pointer arithmetic on memory
##   it manages itself) are compiled without checkptr, the unsafe.Pointer
##   checker -race turns on: checkptr was 40 % of the CPU of the race-built
##   demo, checking modernc's code, not ours. They keep the race detector's
##   instrumentation (dropping that too gave false race reports elsewhere).
##   GORACE=atexit_sleep_ms=0: a race-built process sleeps 1 s when it exits
##   (to let a report still being written finish), and the tests run the
##   race-built tools and binaries hundreds of times; races found while they
##   ran are reported, and fail them, either way.
RACE_GOFLAGS = $(if $(RACE),$(RACE) -gcflags=modernc.org/...=-d=checkptr=0)
RACE_ENV = GOFLAGS="$(strip $(GOFLAGS) $(RACE_GOFLAGS))" $(if $(RACE),GORACE="$(strip atexit_sleep_ms=0 $(GORACE))")
test: deps
	@if [ -n "$(RACE)" ] && [ "$$($(GO) env CGO_ENABLED)" != 1 ]; then \
		echo "test: $(RACE) needs cgo and a C compiler (gcc or clang): install one (apt-get install gcc), or run 'make test RACE=' to test without the race detector" >&2; exit 2; fi
	@scripts/test-modules_test.sh
	@$(RACE_ENV) scripts/pgtest-cluster $(MAKE) --no-print-directory test-modules RACE_GOFLAGS= RACE_ENV=

## test-modules: the test runs alone. `make test` runs them beside a throwaway
##   PostgreSQL (scripts/pgtest-cluster: installs the Debian package if missing,
##   sets MPGDPR_TEST_POSTGRES_URL, removes the cluster afterwards), in two
##   lanes at once (scripts/test-modules): the root module, and the worker
##   then the CLI, which is compiled after the worker's SQLite, River and pgx
##   to reuse them, and tested beside the worker's tests. TEST_LANES must
##   name every module of MODULES. go test's own vet pass is off (VET=on
##   turns it on): make lint runs all of go vet, and on a cold cache the
##   pass costs about 25 s of CPU, vetting the dependencies for facts.
##   make test first runs scripts/test-modules_test.sh (under a second), which
##   checks this runner itself with a stand-in for go.
##   PARALLEL is go test -parallel (default 4, go test's own is GOMAXPROCS):
##   the worker's and the CLI's tests mostly wait on fakes and child processes.
TEST_LANES ?= . "worker cmd/mpgdpr"
VET ?= off
PARALLEL ?= 4
test-modules:
	@$(RACE_ENV) GO="$(GO)" RACE="$(RACE)" VET="$(VET)" PARALLEL="$(PARALLEL)" scripts/test-modules $(TEST_LANES)

## lint: gofmt, go vet and staticcheck.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); test -z "$$out" || { echo "gofmt would change: $$out" >&2; exit 1; }
	@set -e; for m in $(MODULES); do echo "== vet, staticcheck in $$m"; (cd $$m && $(GO) vet ./... && $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...); done

## tidy-check: fail if any module's go.mod or go.sum is not tidy (the tools modules too).
tidy-check:
	@set -e; for m in $(MODULES) tools tools/release; do (cd $$m && $(GO) mod tidy -diff) || { echo "tidy-check: $$m is not tidy; run go mod tidy there" >&2; exit 1; }; done

## ci: what .ci/run runs.
ci: check-generate lint tidy-check test

## fuzz-short: a fixed number of inputs per fuzz target (CI, a few seconds each);
##   `make fuzz FUZZTIME=5m` for longer. CI counts inputs rather than seconds because
##   Go 1.26's fuzz coordinator can fail a clean run with a bare "context deadline
##   exceeded" when a -fuzztime duration runs out mid-exec (golang/go#75804, fixed in
##   1.27); a count sets no deadline, so a loaded machine is slower, never red.
FUZZTIME ?= 10s
fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=40000x
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg; \
		done; \
	done

## bench: the benchmarks of BENCHMARKS.md (not part of `test`), ~2 minutes;
##   raw output and the machine in bench/results.txt, ratios on stdout too.
BENCH_OUT ?= bench/results.txt
bench:
	@mkdir -p $(dir $(BENCH_OUT))
	@set -e; { \
		echo "# make bench, $$(date -u +%Y-%m-%dT%H:%M:%SZ)"; \
		echo "# $$($(GO) version); nproc $$(nproc); $$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"; \
		echo "# $(GO) test -run '^$$' -bench BenchmarkCall -benchmem -benchtime=5000x -count=6 ."; \
		$(GO) test -run '^$$' -bench BenchmarkCall -benchmem -benchtime=5000x -count=6 .; \
		echo "# $(GO) test -run '^$$' -bench 'BenchmarkBulkPacing/limit=50/' -benchtime=1x -count=3 ."; \
		$(GO) test -run '^$$' -bench 'BenchmarkBulkPacing/limit=50/' -benchtime=1x -count=3 .; \
		echo "# $(GO) test -run '^$$' -bench 'BenchmarkBulkPacing/limit=(10|1)/|BenchmarkWaitPolls' -benchtime=1x ."; \
		$(GO) test -run '^$$' -bench 'BenchmarkBulkPacing/limit=(10|1)/|BenchmarkWaitPolls' -benchtime=1x .; \
		echo "# $(GO) test -run '^$$' -bench BenchmarkDownload -benchtime=3x ."; \
		$(GO) test -run '^$$' -bench BenchmarkDownload -benchtime=3x .; \
		echo "# worker/budget beside a throwaway PostgreSQL: go test -run '^$$' -bench . -benchtime=1x -count=3 ./budget"; \
		scripts/pgtest-cluster sh -c 'cd worker && $(GO) test -run "^$$" -bench . -benchtime=1x -count=3 ./budget'; \
		echo "# make generate, warm cache (one run to warm, then 5 timed)"; \
		$(MAKE) --no-print-directory generate >/dev/null; \
		for i in 1 2 3 4 5; do \
			s=$$(date +%s%N); $(MAKE) --no-print-directory generate >/dev/null; e=$$(date +%s%N); \
			echo "BenchmarkMakeGenerate 1 $$(( (e - s) / 1000000 )) ms/op"; \
		done; \
	} 2>&1 | tee $(BENCH_OUT)
	@echo "# summary (medians)" | tee -a $(BENCH_OUT)
	@awk '/^Benchmark/ { n = $$1; sub(/-[0-9]+$$/, "", n); for (i = 3; i < NF; i += 2) v[n, $$(i+1)] = v[n, $$(i+1)] " " $$i; names[n] = 1 } \
	function med(s,   a, k, i, j, t) { k = split(s, a, " "); for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t } return k ? a[int((k + 1) / 2)] : 0 } \
	END { \
		split("CreateDeletion CheckDeletion", cs, " "); \
		for (j = 1; j <= 2; j++) { w = "BenchmarkCall/" cs[j] "/wrapper"; r = "BenchmarkCall/" cs[j] "/raw"; \
			printf "%s: wrapper %d ns/op %d B/op %d allocs/op; raw %d ns/op %d B/op %d allocs/op; ratio %.3f; allocs +%d\n", cs[j], \
				med(v[w, "ns/op"]), med(v[w, "B/op"]), med(v[w, "allocs/op"]), med(v[r, "ns/op"]), med(v[r, "B/op"]), med(v[r, "allocs/op"]), \
				med(v[w, "ns/op"]) / med(v[r, "ns/op"]), med(v[w, "allocs/op"]) - med(v[r, "allocs/op"]) } \
		for (n in names) if (n ~ /BulkPacing/) printf "%s: rate/limit median %s (runs:%s); 429s:%s\n", n, med(v[n, "rate/limit"]), v[n, "rate/limit"], v[n, "429s"]; \
		printf "make generate (warm): median %d ms\n", med(v["BenchmarkMakeGenerate", "ms/op"]) }' $(BENCH_OUT) | tee -a $(BENCH_OUT)

## update-spec: take in a new upstream document: merge, regenerate, report, and refuse breaking changes.
##   make update-spec SOURCE=api/sources/<name>.txt NEW=<file> [ADD=1] [DRY_RUN=1] [ACCEPT_BREAKING=1]
##   NEW may be a saved docs page, or Mixpanel's YAML or JSON file (see docs/UPDATING.md).
update-spec:
	@test -n "$(SOURCE)" && test -n "$(NEW)" || { echo "usage: make update-spec SOURCE=api/sources/<name>.txt NEW=<file> [ADD=1] [DRY_RUN=1] [ACCEPT_BREAKING=1]" >&2; exit 2; }
	$(GO) run ./internal/tools/updatespec $(if $(ADD),-add,-replace) $(SOURCE) -with $(NEW) $(if $(DRY_RUN),-dry-run) $(if $(ACCEPT_BREAKING),-accept-breaking)

## check-upstream: report only (a scheduled CI job): what taking NEW in place of SOURCE would change.
##   make check-upstream NEW=<file> [SOURCE=api/sources/mixpanel-docs-gdpr.openapi.txt]
##   exit 0 nothing to take, 4 an update to take, 3 a breaking one, 1 a conflict or an invalid document.
check-upstream:
	@test -n "$(NEW)" || { echo "usage: make check-upstream NEW=<file> [SOURCE=api/sources/<name>.txt]" >&2; exit 2; }
	@# built rather than `go run`, which turns every exit status into 1
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && $(GO) build -o "$$d/updatespec" ./internal/tools/updatespec && \
		"$$d/updatespec" -check -replace $(or $(SOURCE),api/sources/mixpanel-docs-gdpr.openapi.txt) -with $(NEW)

## release-prepare: the release tree of VERSION, on a release branch (never on main):
##   make release-prepare VERSION=v0.9.0. Sets mpgdpr.Version, moves CHANGELOG's
##   [Unreleased] under the version, and in worker/ and cmd/mpgdpr/ drops the
##   replace directives and requires this repository's modules at VERSION, with
##   their go.sum lines (scripts/release-prepare; CONTRIBUTING.md, "Releasing").
release-prepare:
	@test -n "$(VERSION)" || { echo "usage: make release-prepare VERSION=vX.Y.Z" >&2; exit 2; }
	@GO="$(GO)" scripts/release-prepare $(VERSION)

## release-drill: rehearse a release of HEAD at DRILL_VERSION (default v0.9.0) from a
##   module proxy in a temporary directory, with an empty module cache: go install
##   the CLI, go get the library and the worker in a new module and run it against
##   mpgdpr fake (scripts/release-drill). CI runs it.
DRILL_VERSION ?= v0.9.0
release-drill:
	@GO="$(GO)" scripts/release-drill $(DRILL_VERSION)

## image: the container image of the CLI (Containerfile, FROM scratch) with podman:
##   make image [IMAGE_TAG=localhost/mpgdpr:<Version>] (scripts/image-build).
image:
	@GO="$(GO)" scripts/image-build $(IMAGE_TAG)

## image-test: build the image and run it with podman (installs podman and runc
##   as root): version, the fake from the host, the worker on a volume filing
##   through a host fake, SIGTERM exit 0, restart with nothing lost
##   (scripts/image-test). Skips without podman, except in CI.
image-test:
	@GO="$(GO)" scripts/image-test

## release-check: goreleaser check of .goreleaser.yaml (GoReleaser v2, pinned in
##   tools/release/go.mod; built on first use). CI runs it.
## release-snapshot: the release binaries without a release: goreleaser release
##   --snapshot --clean, for linux, darwin and windows on amd64 and arm64, into
##   dist/ (archives and checksums.txt), named <mpgdpr.Version>-snapshot-<commit>.
GORELEASER = $(GO) tool -modfile=tools/release/go.mod goreleaser
release-check:
	@$(GORELEASER) check
release-snapshot:
	@MPGDPR_VERSION="$$(sed -n 's/^const Version = "\(.*\)"$$/\1/p' version.go)" $(GORELEASER) release --snapshot --clean
