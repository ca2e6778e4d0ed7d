#!/usr/bin/env bash
# Runs a throwaway Samba Active Directory domain controller on 127.0.0.1 for the directory
# conformance tests.
#
# Usage: scripts/samba-ad.sh start|stop|env [DIR]
#
#   start  Installs Debian's Samba AD DC packages when missing, provisions a domain into DIR
#          unless DIR already contains one, starts Samba unless it already runs from DIR, waits
#          until an LDAP simple bind succeeds, and writes DIR/samba-ad.env.
#   stop   Stops the Samba started from DIR.
#   env    Prints DIR/samba-ad.env (shell syntax, SIU_AD_* variables).
#
# DIR defaults to $SIU_SAMBA_DIR, then /tmp/siu-samba-ad. Keep it short: Samba's Unix
# sockets live under DIR, and a socket path holds at most 107 bytes.
#
# Requires root, because Samba serves LDAP on the fixed ports 389, 636, 3268 and 3269 (it
# has no setting to move them), so only one instance runs per host. Only the LDAP service
# runs: no DNS, Kerberos, SMB or RPC ports are opened. The password policy is relaxed
# (no complexity, history or age rules) so that tests can set any password.
#
# Tested on Debian 12 (bookworm) with samba 2:4.17.
set -euo pipefail

readonly REALM=SIU.TEST
readonly NETBIOS_DOMAIN=SIU
readonly HOST_NAME=dc1
# Raise LAYOUT_VERSION whenever provisioning changes, so that start provisions DIR afresh
# instead of reusing a domain set up the old way.
readonly LAYOUT_VERSION=2
readonly READY_TIMEOUT_SECONDS=${SIU_SAMBA_READY_TIMEOUT:-120}

command_name=${1:-}
dir=$(realpath -m "${2:-${SIU_SAMBA_DIR:-/tmp/siu-samba-ad}}")
env_file="$dir/samba-ad.env"
pid_file="$dir/samba.pid"

realm_lower=$(tr '[:upper:]' '[:lower:]' <<<"$REALM")
base_dn="DC=${realm_lower//./,DC=}"

log() { printf 'samba-ad: %s\n' "$*" >&2; }
fail() {
  log "error: $*"
  exit 1
}
seconds_since() { echo $(($(date +%s) - $1)); }

# Installs the packages when a binary or the AD schema files are missing. The schema files
# come from samba-ad-provision, which samba-ad-dc only recommends, so it is named here.
install_packages() {
  local missing=0 binary
  for binary in samba samba-tool ldapsearch openssl ss; do
    command -v "$binary" >/dev/null 2>&1 || missing=1
  done
  [ -d /usr/share/samba/setup/ad-schema ] || missing=1
  [ "$missing" = 1 ] || return 0

  local started; started=$(date +%s)
  log "installing Debian's Samba AD DC packages"
  export DEBIAN_FRONTEND=noninteractive
  # A policy-rc.d that exits 101 stops the packages' maintainer scripts from starting the
  # system-wide smbd, nmbd and samba-ad-dc services, which would take the ports we need.
  local policy_created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_created=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    samba samba-ad-dc samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind \
    ldap-utils openssl iproute2 >/dev/null
  if [ "$policy_created" = 1 ]; then
    rm -f /usr/sbin/policy-rc.d
  fi
  log "packages installed in $(seconds_since "$started") s"
}

samba_pid() {
  [ -f "$pid_file" ] || return 1
  local pid; pid=$(cat "$pid_file")
  # A stale pid file can name another process that reused the number, so check that the
  # process runs the samba binary.
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    [ "$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null)")" = samba ] &&
    echo "$pid"
}

# Binds as the administrator with the credentials in the env file; fails when either is
# missing or the bind is rejected.
bind_works() {
  [ -f "$env_file" ] || return 1
  # shellcheck disable=SC1090
  (. "$env_file" && ldapsearch -x -o nettimeout=5 -H "$SIU_AD_URL" -D "$SIU_AD_BIND_UPN" \
    -w "$SIU_AD_PASSWORD" -s base -b '' defaultNamingContext >/dev/null 2>&1)
}

make_certificates() {
  local tls="$dir/tls"
  mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=siuctl test CA $REALM" \
    -keyout "$tls/ca.key" -out "$tls/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  # rustls checks the subject alternative names and ignores the common name, so the names
  # that clients use (127.0.0.1, ::1, localhost, the DC's FQDN) go into the SAN list.
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$HOST_NAME.$realm_lower" \
    -keyout "$tls/key.pem" -out "$tls/server.csr" 2>/dev/null
  cat >"$tls/server.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$HOST_NAME.$realm_lower,DNS:localhost,IP:127.0.0.1,IP:::1
EOF
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
    -CAcreateserial -days 3650 -extfile "$tls/server.ext" -out "$tls/cert.pem" 2>/dev/null
  # Samba refuses to load a private key that other users can read.
  chmod 600 "$tls/key.pem" "$tls/ca.key"
}

# Generates a random administrator password. Provisioning enforces the default complexity
# rules, so the password carries all four character classes.
generate_password() {
  printf 'Siu-%s-7a' "$(openssl rand -hex 16)"
}

provision() {
  local started; started=$(date +%s)
  rm -rf "$dir"
  mkdir -p "$dir/log" "$dir/run" "$dir/state"
  chmod 700 "$dir"
  local password; password=$(generate_password)

  # -s /dev/null keeps the host's /etc/samba/smb.conf out of the generated configuration.
  # xattr_tdb stores NT ACLs in a file, so provisioning works on filesystems and containers
  # without security.* extended attributes.
  samba-tool domain provision -s /dev/null --targetdir="$dir" \
    --realm="$REALM" --domain="$NETBIOS_DOMAIN" --server-role=dc --dns-backend=NONE \
    --host-name="$HOST_NAME" --host-ip=127.0.0.1 --adminpass="$password" \
    --option="interfaces=lo" --option="bind interfaces only=yes" \
    --option="xattr_tdb:file=$dir/state/xattr.tdb" \
    --option="vfs objects=dfs_samba4 acl_xattr xattr_tdb" \
    >"$dir/log/provision.log" 2>&1 ||
    { tail -n 20 "$dir/log/provision.log" >&2; fail "samba-tool domain provision failed; full output in $dir/log/provision.log"; }

  make_certificates

  # Provisioning drops some --option values from the smb.conf it writes and lists every DC
  # service, so these settings are added at the end of [global], where they win over
  # earlier lines, and the generated service list is removed. Simple binds over plain LDAP
  # stay allowed because the tests bind that way too. The database skips fsync, which makes
  # adds several times faster and costs nothing for a throwaway domain. Pid files and
  # sockets stay inside DIR.
  local settings
  settings=$(
    cat <<EOF
	server services = ldap
	ldap server require strong auth = no
	ldb:nosync = true
	tls enabled = yes
	tls keyfile = $dir/tls/key.pem
	tls certfile = $dir/tls/cert.pem
	tls cafile = $dir/tls/ca.pem
	log file = $dir/log/samba.log
	pid directory = $dir/run
	ncalrpc dir = $dir/run/ncalrpc
	winbindd socket directory = $dir/run/winbindd
	ntp signd socket directory = $dir/run/ntp_signd
EOF
  )
  awk -v settings="$settings" '
    /^[[:space:]]*server services[[:space:]]*=/ { next }
    /^\[/ && in_global { print settings; in_global = 0 }
    /^\[global\]$/ { in_global = 1 }
    { print }
    END { if (in_global) print settings }
  ' "$dir/etc/smb.conf" >"$dir/etc/smb.conf.new"
  mv "$dir/etc/smb.conf.new" "$dir/etc/smb.conf"

  samba-tool domain passwordsettings set -H "$dir/private/sam.ldb" -s "$dir/etc/smb.conf" \
    --complexity=off --history-length=0 --min-pwd-length=0 --min-pwd-age=0 --max-pwd-age=0 \
    >>"$dir/log/provision.log" 2>&1 ||
    fail "relaxing the password policy failed; see $dir/log/provision.log"

  write_env_file "$password"
  echo "$LAYOUT_VERSION" >"$dir/layout-version"
  log "provisioned $REALM into $dir in $(seconds_since "$started") s"
}

write_env_file() {
  local password=$1
  umask 077
  cat >"$env_file" <<EOF
SIU_AD_URL='ldap://127.0.0.1:389'
SIU_AD_LDAPS_URL='ldaps://127.0.0.1:636'
SIU_AD_BASE_DN='$base_dn'
SIU_AD_REALM='$REALM'
SIU_AD_DOMAIN='$NETBIOS_DOMAIN'
SIU_AD_BIND_UPN='Administrator@$realm_lower'
SIU_AD_BIND_DN='CN=Administrator,CN=Users,$base_dn'
SIU_AD_BIND_NT='$NETBIOS_DOMAIN\\Administrator'
SIU_AD_PASSWORD='$password'
SIU_AD_CA_FILE='$dir/tls/ca.pem'
SIU_AD_DIR='$dir'
EOF
}

# Fails when another process listens on one of Samba's LDAP ports, before any time goes
# into provisioning.
check_ports_free() {
  local port
  for port in 389 636 3268 3269; do
    if ss -Hltn "sport = :$port" | grep -q .; then
      fail "port $port is already in use ($(ss -Hltnp "sport = :$port" | head -n 1)); stop the other LDAP server or run '$0 stop DIR' with the DIR it was started from"
    fi
  done
}

start_samba() {
  local started; started=$(date +%s)
  # -F keeps Samba in the foreground so that $! is its main process, and setsid detaches it
  # from the caller's session and terminal. The single process model uses the least memory.
  setsid samba -s "$dir/etc/smb.conf" -F --no-process-group -M single \
    </dev/null >"$dir/log/samba.out" 2>&1 &
  echo $! >"$pid_file"
  local pid; pid=$(cat "$pid_file")

  local deadline=$(($(date +%s) + READY_TIMEOUT_SECONDS))
  until bind_works; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$dir/log/samba.out" >&2
      fail "samba exited during start-up; see $dir/log/samba.out and $dir/log/samba.log"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 30 "$dir/log/samba.out" >&2
      fail "no successful LDAP bind within $READY_TIMEOUT_SECONDS s; see $dir/log/samba.out"
    fi
    sleep 0.2
  done
  log "samba (pid $pid) accepts LDAP binds after $(seconds_since "$started") s"
}

stop_samba() {
  local pid
  if ! pid=$(samba_pid); then
    log "no samba running from $dir"
    rm -f "$pid_file"
    return 0
  fi
  kill -TERM "$pid"
  local attempt
  for attempt in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "samba (pid $pid) still runs 10 s after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pid_file"
  log "stopped samba (pid $pid)"
}

case "$command_name" in
start)
  [ "$(id -u)" = 0 ] || fail "run as root: Samba AD serves LDAP on ports below 1024"
  started=$(date +%s)
  install_packages
  if samba_pid >/dev/null && bind_works; then
    log "reusing samba (pid $(samba_pid)) running from $dir"
  else
    stop_samba
    check_ports_free
    if [ -f "$env_file" ] && [ "$(cat "$dir/layout-version" 2>/dev/null)" = "$LAYOUT_VERSION" ]; then
      log "reusing the domain provisioned in $dir"
    else
      provision
    fi
    start_samba
  fi
  log "ready after $(seconds_since "$started") s; environment in $env_file"
  ;;
stop)
  stop_samba
  ;;
env)
  [ -f "$env_file" ] || fail "$env_file not found; run '$0 start $dir' first"
  cat "$env_file"
  ;;
*)
  echo "usage: $0 start|stop|env [DIR]" >&2
  exit 2
  ;;
esac
