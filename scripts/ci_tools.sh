#!/usr/bin/env bash
# Installs, only where missing, the tools the Supabase-compatibility and dashboard tests use:
#   * pgbouncer (Debian package): a throwaway transaction-mode pooler per test
#     (tests/support/pgbouncer.py starts its own; this script never leaves one running);
#   * plpgsql_check for PostgreSQL ${JOBFORGE_PG_MAJOR:-15} (Debian package
#     postgresql-15-plpgsql-check);
#   * chromium (Debian package): the browser the dashboard tests drive through Playwright
#     (tests/dashboard; Playwright is pointed at /usr/bin/chromium and downloads nothing);
#   * the Supabase CLI, one pinned version, from npm into a cache folder. The npm package
#     has no postinstall download: its binary ships in the optional dependency
#     @supabase/cli-linux-x64 (musl / arm64 variants likewise), so a registry-only machine
#     gets a working CLI.
#
# Usage (as root on Debian 12, as .ci/run does): bash scripts/ci_tools.sh
# Prints where each tool is and its version, and, last, `SUPABASE_CLI=<path>`.
# Environment:
#   JOBFORGE_TOOLS_DIR  cache folder for the CLI (default: $HOME/.cache/jobforge-tools);
#                       the CLI is then at $JOBFORGE_TOOLS_DIR/bin/supabase
#   JOBFORGE_PG_MAJOR   PostgreSQL major version for plpgsql_check (default: 15)
# Idempotent; when everything is present it runs no apt-get, npm or CLI at all.
set -euo pipefail

SUPABASE_CLI_VERSION="3.1.0"
PG_MAJOR="${JOBFORGE_PG_MAJOR:-15}"
TOOLS_DIR="${JOBFORGE_TOOLS_DIR:-${HOME:-/root}/.cache/jobforge-tools}"
CLI_DIR="${TOOLS_DIR}/supabase-${SUPABASE_CLI_VERSION}"
CLI_LINK="${TOOLS_DIR}/bin/supabase"
PLPGSQL_CHECK_CONTROL="/usr/share/postgresql/${PG_MAJOR}/extension/plpgsql_check.control"

log() { printf '== tools: %s\n' "$*"; }
die() { printf 'ci_tools.sh: %s\n' "$*" >&2; exit 1; }

deb_installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

# ---- Debian packages --------------------------------------------------------------------
apt_updated=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand"
  [ "$(id -u)" -eq 0 ] || die "must run as root to install $*"
  if [ "$apt_updated" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  # Keep package scripts from starting services (pgbouncer's would listen on 6432):
  # a temporary policy-rc.d, unless the machine already has one.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
    >/dev/null || rc=$?
  if [ "$made_policy" -eq 1 ]; then rm -f "$policy"; fi
  [ "$rc" -eq 0 ] || die "apt-get install $* failed (exit $rc)"
}

wanted_debs=()
deb_installed pgbouncer || wanted_debs+=(pgbouncer)
if ! deb_installed "postgresql-${PG_MAJOR}-plpgsql-check" && [ ! -f "$PLPGSQL_CHECK_CONTROL" ]; then
  wanted_debs+=("postgresql-${PG_MAJOR}-plpgsql-check")
fi
if ! deb_installed chromium && [ ! -x /usr/bin/chromium ]; then
  wanted_debs+=(chromium)
fi
if [ "${#wanted_debs[@]}" -gt 0 ]; then
  log "installing ${wanted_debs[*]}"
  apt_install "${wanted_debs[@]}"
fi

# If the package's own service started anyway (policy-rc.d not honoured), stop it by the
# pid it wrote. Only right after installing it: a pgbouncer that was there before is not
# this script's to stop.
if [[ " ${wanted_debs[*]:-} " == *" pgbouncer "* ]]; then
  for pidfile in /run/postgresql/pgbouncer.pid /var/run/postgresql/pgbouncer.pid; do
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      log "stopping the pgbouncer service the package started (pid $(cat "$pidfile"))"
      kill "$(cat "$pidfile")" || true
    fi
  done
fi

PGBOUNCER="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
[ -x "$PGBOUNCER" ] || die "pgbouncer not found after install"
[ -f "$PLPGSQL_CHECK_CONTROL" ] || die "plpgsql_check for PostgreSQL $PG_MAJOR not found"
[ -x /usr/bin/chromium ] || die "chromium not found at /usr/bin/chromium after install"

# ---- Supabase CLI (npm) -----------------------------------------------------------------
# Installed when the pinned version's package.json or its platform binary is missing;
# checked by files, not by running it (`supabase --version` takes about two seconds).
cli_platform_binary() {
  local pkg
  for pkg in cli-linux-x64 cli-linux-x64-musl cli-linux-arm64 cli-linux-arm64-musl; do
    if [ -x "${CLI_DIR}/node_modules/@supabase/${pkg}/bin/supabase" ]; then
      printf '%s\n' "${CLI_DIR}/node_modules/@supabase/${pkg}/bin/supabase"
      return 0
    fi
  done
  return 1
}

cli_version_installed() {
  local manifest="${CLI_DIR}/node_modules/supabase/package.json"
  [ -f "$manifest" ] || return 1
  sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$manifest" | head -n 1
}

if [ "$(cli_version_installed || true)" != "$SUPABASE_CLI_VERSION" ] || ! cli_platform_binary >/dev/null; then
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  log "installing supabase@${SUPABASE_CLI_VERSION} from npm into ${CLI_DIR}"
  rm -rf "$CLI_DIR"
  mkdir -p "$CLI_DIR"
  npm install --prefix "$CLI_DIR" --no-audit --no-fund --no-update-notifier --loglevel=error \
    --include=optional "supabase@${SUPABASE_CLI_VERSION}" >/dev/null
  cli_platform_binary >/dev/null || die "npm installed supabase@${SUPABASE_CLI_VERSION} but no \
platform binary (@supabase/cli-<os>-<arch>) came with it"
  got="$(SUPABASE_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1 "$(cli_platform_binary)" --version)"
  [ "$got" = "$SUPABASE_CLI_VERSION" ] || die "supabase --version says '$got', wanted $SUPABASE_CLI_VERSION"
fi
CLI_BINARY="$(cli_platform_binary)"
mkdir -p "$(dirname "$CLI_LINK")"
if [ "$(readlink "$CLI_LINK" 2>/dev/null || true)" != "$CLI_BINARY" ]; then
  ln -sfn "$CLI_BINARY" "$CLI_LINK"
fi

# ---- Report -----------------------------------------------------------------------------
plpgsql_check_version="$(sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" \
  "$PLPGSQL_CHECK_CONTROL")"
log "pgbouncer $("$PGBOUNCER" --version | head -n 1 | awk '{print $2}') at $PGBOUNCER"
log "plpgsql_check ${plpgsql_check_version} at $PLPGSQL_CHECK_CONTROL"
log "supabase CLI ${SUPABASE_CLI_VERSION} at $CLI_LINK -> $CLI_BINARY"
log "chromium $(dpkg-query -W -f='${Version}' chromium 2>/dev/null || echo '?') at /usr/bin/chromium"
printf 'SUPABASE_CLI=%s\n' "$CLI_LINK"
