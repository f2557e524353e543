# The two commands of the README: `make demo` and `make test`.
# Both install what they need (Debian packages) and are idempotent.

SHELL := /bin/bash
CARGO ?= cargo
APT_PACKAGES := libdpdk-dev dpdk dpdk-dev libclang-dev clang pkg-config libpcap-dev \
                iperf3 iproute2 ethtool tcpdump socat nftables procps tshark
export CARGO_TERM_COLOR ?= never
# The WAN emulator's tests ping through it and run it under chrt; setpriv guards test processes.
APT_PACKAGES += iputils-ping util-linux
# Scenario baselines (MPTCP hosts, kernel multicast routing, WireGuard in user space) and the
# plots' font.
APT_PACKAGES += mptcpize smcroute wireguard-go wireguard-tools fonts-dejavu-core
# FRR's bfdd is the independent BFD peer of the interop test.
APT_PACKAGES += frr
# promtool checks the shipped alerting rules; the server scrapes an appliance in a test
# (its service is not started: see deps).
APT_PACKAGES += prometheus

.PHONY: all deps build build-release test test-unit test-system fuzz-smoke demo bench lint clean \
        install install-files deb

all: build

# Installs the Debian packages the build and the tests need (only the missing ones).
# A policy-rc.d that refuses keeps the packages' services (FRR's daemons) from starting:
# the tests start their own, in namespaces.
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  ours=0; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; ours=1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  rc=$$?; [ $$ours = 1 ] && rm -f /usr/sbin/policy-rc.d; exit $$rc; \
	fi

build: deps
	$(CARGO) build --workspace --bins

build-release: deps
	$(CARGO) build --release --workspace --bins

# Every test layer: unit + property tests, bindings on net_null, golden
# net_pcap tests of the real binary, netns system tests (root), emulator
# accuracy tests. Fuzzing is `make fuzz-smoke` (needs cargo-fuzz).
test: build
	$(CARGO) test --workspace --no-fail-fast -- --test-threads=1
	@ip netns list | grep -q . && { echo "namespaces left behind:"; ip netns list; exit 1; } || true

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# A minute of fuzzing per target (needs cargo-fuzz; see appliance/fuzz/README.md).
fuzz-smoke:
	cd appliance/fuzz && for t in $$(cargo fuzz list); do \
	  RUSTC_BOOTSTRAP=1 cargo fuzz run $$t -- -max_total_time=60 || exit 1; done

demo: build
	bash scripts/demo.sh

# Installs the release binaries, the systemd unit (not enabled), example profiles and
# configs under $(SYSCONFDIR)/appliance/examples, and the documentation. DESTDIR stages it.
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
BINDIR ?= $(PREFIX)/bin
DOCDIR ?= $(PREFIX)/share/doc/appliance
UNITDIR ?= $(PREFIX)/lib/systemd/system
# Where the binaries come from (the package test installs the debug build).
BINSRC ?= target/release
install: build-release install-files

install-files:
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/docs \
	  $(DESTDIR)$(SYSCONFDIR)/appliance/examples/hw-profiles \
	  $(DESTDIR)$(SYSCONFDIR)/appliance/examples/configs
	install -m 0755 $(BINSRC)/appliance $(BINSRC)/appliancectl $(DESTDIR)$(BINDIR)/
	sed -e 's#@BINDIR@#$(BINDIR)#g; s#@SYSCONFDIR@#$(SYSCONFDIR)#g; s#@DOCDIR@#$(DOCDIR)#g' \
	  packaging/systemd/appliance.service.in > $(DESTDIR)$(UNITDIR)/appliance.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/appliance.service
	install -m 0644 hw-profiles/vm-af-packet.toml hw-profiles/vm-af-packet-2workers.toml \
	  hw-profiles/vm-af-xdp.toml hw-profiles/baremetal-cx6.toml hw-profiles/baremetal-e810.toml \
	  $(DESTDIR)$(SYSCONFDIR)/appliance/examples/hw-profiles/
	install -m 0644 configs/demo.toml configs/relay.toml \
	  $(DESTDIR)$(SYSCONFDIR)/appliance/examples/configs/
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 hw-profiles/README.md $(DESTDIR)$(DOCDIR)/hw-profiles.md
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/docs/

# The Debian package (dpkg-deb over the install tree): target/debian/appliance_<v>_<arch>.deb.
deb: build-release
	bash packaging/deb.sh target/debian

bench: build-release
	bash scripts/bench.sh

# CPU cost of the WAN emulator at 300 + 80 Mbit/s of 1514 B frames (root; see tests/README.md).
.PHONY: bench-wanem
bench-wanem: build-release
	target/release/wanem-bench

# Netns benchmark scenarios (root): scenarios/<name>.toml -> docs/benchmarks/<name>/
# (result.json, README.md, PNG plots). See tests/README.md, "Scenarios".
BENCH_SCENARIOS := dual-path dual-path-scaled single-path-fast failover intermittent soak two-workers udp-sweep mcast-density mcast-zero-loss
.PHONY: $(addprefix bench-,$(BENCH_SCENARIOS)) bench-scenarios
$(addprefix bench-,$(BENCH_SCENARIOS)): bench-%: build-release
	target/release/scenario run scenarios/$*.toml
bench-scenarios: $(addprefix bench-,$(BENCH_SCENARIOS))

clean:
	$(CARGO) clean
