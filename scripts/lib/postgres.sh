# shellcheck shell=bash
# Makes sure a PostgreSQL server answers on a fresh machine: starts the local one, or installs it
# from Debian's packages first when it is missing. Sourced by scripts/test and scripts/serve (one
# home for this rule); it sets no shell options, the scripts that source it do.
#   ensure_postgres postgres://postgres@127.0.0.1:5432    (the server part of a URL, no database)

# Runs a command as root: directly when we are root (containers, CI), else through sudo.
# scripts/test uses it for its other installs too.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# pg_isready comes with the PostgreSQL client; before PostgreSQL is installed, a TCP connect to
# the default local port is the best we can ask.
postgres_is_up() {
  local server=$1
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -d "$server/postgres"
  else
    (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
  fi
}

# Debian's newest installed cluster, without systemd (containers have none); else the service.
start_postgres() {
  local version
  # shellcheck disable=SC2012  # version directories are plain numbers
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$version" ] && command -v pg_ctlcluster >/dev/null 2>&1; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  elif command -v service >/dev/null 2>&1; then
    as_root service postgresql start || true
  fi
}

install_postgres() {
  echo "PostgreSQL is not installed: installing it from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  # Tests and the default DATABASE_URL connect as postgres over TCP without a password, as on
  # the CI machines.
  local hba
  # shellcheck disable=SC2012  # one path, from a fixed layout
  hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n 1)
  as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  # The package has usually started the cluster already: it must read the new rule.
  local version
  version=$(basename "$(dirname "$(dirname "$hba")")")
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload 2>/dev/null || true
}

# Returns once the server answers; exits the calling script if it still does not after 30 s.
ensure_postgres() {
  local server=$1
  postgres_is_up "$server" && return 0
  echo "PostgreSQL is not answering: starting it"
  start_postgres
  if ! postgres_is_up "$server" && ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    install_postgres
    start_postgres
  fi
  for _ in $(seq 1 30); do
    postgres_is_up "$server" && return 0
    sleep 1
  done
  echo "PostgreSQL did not come up at $server" >&2
  exit 1
}

# Exits the calling script with a clear message when the server answers but refuses us (a
# PostgreSQL installed by hand with password authentication, say): otherwise every test would
# fail deep inside with the same error.
ensure_postgres_login() {
  local server=$1
  command -v psql >/dev/null 2>&1 || return 0
  if ! psql "$server/postgres" -qAtc 'SELECT 1' >/dev/null 2>&1; then
    echo "PostgreSQL at $server answers but refuses the login:" >&2
    psql "$server/postgres" -qAtc 'SELECT 1' >&2 || true
    echo "Allow it (trust for 127.0.0.1 in pg_hba.conf), or set FAULTLINE_TEST_DATABASE_URL / DATABASE_URL." >&2
    exit 1
  fi
}
