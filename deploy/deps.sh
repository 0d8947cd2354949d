#!/usr/bin/env bash
# Installs what tokentap needs to build, run and test on Debian 12, only what is missing.
# Safe to run again: it checks before it installs.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_PKGS="clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev libprotobuf-c-dev protobuf-c-compiler
  libcurl4-openssl-dev libssl-dev libjson-c-dev pkg-config make libmicrohttpd-dev
  libncurses-dev libjs-chart.js libnghttp2-dev libbrotli-dev libzstd-dev libcapstone-dev"
TEST_PKGS="curl openssl python3 nodejs npm libclang-rt-14-dev prometheus tmux chromium libcap2-bin libcurl3-gnutls golang-go python3-yaml"

missing=()
for p in $BUILD_PKGS ${TOKENTAP_TEST_DEPS:+$TEST_PKGS}; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node and npm may come from outside Debian (a binary install); accept them when on PATH.
if [ ${#missing[@]} -gt 0 ]; then
	filtered=()
	for p in "${missing[@]}"; do
		case $p in nodejs) command -v node >/dev/null || filtered+=("$p") ;;
		npm) command -v npm >/dev/null || filtered+=("$p") ;;
		python3) command -v python3 >/dev/null || filtered+=("$p") ;;
		*) filtered+=("$p") ;; esac
	done
	missing=("${filtered[@]}")
fi
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "tokentap: missing packages: ${missing[*]} (run as root or: apt-get install ${missing[*]})" >&2
		exit 1
	fi
	echo "tokentap: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if [ -n "${TOKENTAP_TEST_DEPS:-}" ] && [ -f tests/e2e/package.json ]; then
	if [ ! -d tests/e2e/node_modules ] || [ tests/e2e/package.json -nt tests/e2e/node_modules ]; then
		echo "tokentap: installing test npm packages" >&2
		(cd tests/e2e && npm install --no-audit --no-fund --loglevel=error >&2)
		touch tests/e2e/node_modules
	fi
fi
# Agents with their own TLS for test_agents.py: Bun, Claude Code, Codex CLI (293 MB download,
# 167 MB of it Codex; binaries from the platform packages, so no install script runs).
if [ -n "${TOKENTAP_TEST_DEPS:-}" ] && [ -f tests/e2e/agents/package.json ]; then
	if [ ! -d tests/e2e/agents/node_modules ] ||
	   [ tests/e2e/agents/package.json -nt tests/e2e/agents/node_modules ]; then
		echo "tokentap: installing the agents the e2e tests trace (Bun, Claude Code, Codex)" >&2
		(cd tests/e2e/agents &&
		 npm install --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
		touch tests/e2e/agents/node_modules
	fi
fi
