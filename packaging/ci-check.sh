#!/usr/bin/env bash
# CI checks of the Debian package and the systemd unit (called by .ci/run; runs as root on a
# fresh Debian 12 where systemd is installed but not PID 1). What it shows:
#   1. `cargo deb` builds the amd64 package; lintian reports no error and no warning;
#   2. `systemd-analyze verify` on the unit prints nothing on stderr, and
#      `systemd-analyze security --offline=true` rates it at most 2.0;
#   3. `apt-get install ./meshroom-gw_*.deb` works without a running systemd, creates the user,
#      its state directory and a private config; the installed binary runs `--version` and
#      `check-config` on the installed config, and, as user `meshroom` with CAP_NET_ADMIN only
#      in a network namespace of its own, serves /status and brings its TUN device up;
#   4. reinstalling keeps the admin's config edits, `apt-get remove` keeps config and state,
#      `apt-get purge` leaves nothing behind.
# The arm64 package is built by packaging/build-deb.sh, not here (a second full cross build).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export DEBIAN_FRONTEND=noninteractive
profile="${MESHROOM_DEB_PROFILE:-release}"
max_exposure="2.0"
unit=meshroom-gw.service

step() { printf '\n=== packaging: %s\n' "$*"; }
fail() { printf 'packaging check FAILED: %s\n' "$*" >&2; exit 1; }
passed=0
ok() { printf 'ok: %s\n' "$*"; passed=$((passed + 1)); }

need_apt=()
command -v lintian >/dev/null || need_apt+=(lintian)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
command -v man >/dev/null || need_apt+=(man-db)
command -v file >/dev/null || need_apt+=(file)
command -v curl >/dev/null || need_apt+=(curl)
command -v ip >/dev/null || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
    step "installing ${need_apt[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Start from a machine without the package (a previous run on this machine may have died
# half-way).
if dpkg-query -W -f '${Status}' meshroom-gw 2>/dev/null | grep -q 'installed\|config-files'; then
    apt-get purge -y -qq meshroom-gw >/dev/null
fi

step "building the amd64 package (profile $profile)"
start=$SECONDS
built="$(packaging/build-deb.sh --install-tools --profile "$profile" amd64 | tail -n 1)"
[ -f "$built" ] || fail "no package built"
# apt reads local packages as user _apt, which may not reach the build tree.
deb="/tmp/$(basename "$built")"
cp "$built" "$deb"
chmod 0644 "$deb"
ok "cargo deb built $(basename "$deb") in $((SECONDS - start)) s"

step "lintian"
lintian_out="$(lintian --info --display-info "$deb" 2>&1 | grep -v '^running with root privileges' || true)"
printf '%s\n' "$lintian_out" | grep -v '^N:' || true
if grep -q '^[EW]:' <<<"$lintian_out"; then
    fail "lintian reports errors or warnings"
fi
ok "lintian: no errors, no warnings ($(grep -c '^I:' <<<"$lintian_out" || true) informational tags)"

step "systemd-analyze security --offline=true"
security="$(systemd-analyze security --offline=true "systemd/$unit" 2>&1)"
overall="$(grep -o 'Overall exposure level for [^:]*: [0-9.]* [A-Z]*' <<<"$security" || true)"
[ -n "$overall" ] || { printf '%s\n' "$security"; fail "no exposure level"; }
exposure="$(awk '{print $(NF-1)}' <<<"$overall")"
echo "$overall"
awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }' ||
    { printf '%s\n' "$security"; fail "exposure $exposure above $max_exposure"; }
ok "unit exposure $exposure (at most $max_exposure)"

step "apt-get install ./$(basename "$deb") (systemd is not running: nothing may start)"
apt-get install -y -qq "$deb" >/dev/null
dpkg-query -W -f '${Status}\n' meshroom-gw | grep -qx 'install ok installed' || fail "not installed"
getent passwd meshroom | grep -q ':/var/lib/meshroom-gw:/usr/sbin/nologin$' || fail "user meshroom: $(getent passwd meshroom)"
[ "$(stat -c '%U:%G %a' /var/lib/meshroom-gw)" = "meshroom:meshroom 750" ] || fail "/var/lib/meshroom-gw: $(stat -c '%U:%G %a' /var/lib/meshroom-gw)"
[ "$(stat -c '%U:%G %a' /etc/meshroom-gw/config.yaml)" = "root:meshroom 640" ] || fail "config.yaml: $(stat -c '%U:%G %a' /etc/meshroom-gw/config.yaml)"
[ -L /etc/systemd/system/multi-user.target.wants/$unit ] || fail "$unit not enabled"
if pgrep -f '^/usr/bin/meshroom-gw' >/dev/null; then fail "the install started a gateway"; fi
grep -qx /etc/meshroom-gw/config.yaml /var/lib/dpkg/info/meshroom-gw.conffiles || fail "config.yaml is not a conffile"
ok "installed: user meshroom, /var/lib/meshroom-gw 0750, config 0640 root:meshroom, unit enabled, nothing started"

meshroom-gw --version | grep -q '^meshroom-gw ' || fail "--version"
ok "$(meshroom-gw --version)"
meshroom-gw check-config --config /etc/meshroom-gw/config.yaml || fail "check-config on the shipped config"
runuser -u meshroom -- meshroom-gw check-config --config /etc/meshroom-gw/config.yaml >/dev/null ||
    fail "user meshroom cannot read the installed config"
ok "check-config passes on the installed config, as root and as meshroom"
man -w meshroom-gw >/dev/null && man -w meshroom-gw-run >/dev/null || fail "man pages"
# The configuration file's own page, rendered from the key table the checker uses.
man -w 5 meshroom-gw.yaml >/dev/null || fail "man page meshroom-gw.yaml(5) not installed"
config_page="$(MANWIDTH=100 man 5 meshroom-gw.yaml 2>/dev/null)"
for words in "rooms[].max_history" "1,000,000" "radio.power_dbm" "/var/lib/meshroom-gw"; do
    grep -qF -- "$words" <<<"$config_page" || fail "meshroom-gw.yaml(5) does not mention $words"
done
main_page="$(MANWIDTH=100 man 1 meshroom-gw 2>/dev/null)"
for section in EXAMPLES FILES SIGNALS "EXIT STATUS"; do
    grep -q "^$section" <<<"$main_page" || fail "meshroom-gw(1) has no $section section"
done
bash -c 'source /usr/share/bash-completion/completions/meshroom-gw && complete -p meshroom-gw' >/dev/null ||
    fail "bash completion"
ok "man pages (meshroom-gw(1) with EXAMPLES, FILES, SIGNALS, EXIT STATUS; meshroom-gw.yaml(5)) and bash completion installed"

step "systemd-analyze verify (with the binary and man pages installed)"
verify_err="$(systemd-analyze verify "/usr/lib/systemd/system/$unit" 2>&1 >/dev/null || true)"
if [ -n "$verify_err" ]; then
    printf '%s\n' "$verify_err"
    fail "systemd-analyze verify printed on stderr"
fi
ok "systemd-analyze verify: silent"

step "the installed gateway runs as meshroom with only CAP_NET_ADMIN, as the unit grants"
# The unit's grant, reproduced without systemd: user meshroom, CAP_NET_ADMIN as the only
# (ambient, bounding) capability, no_new_privs, on the installed config and state directory, in a
# network namespace of its own. /dev/net/tun gets Debian's usual mode 0666 in a private mount
# namespace (some CI sandboxes have it 0600). The TUN device must come up and have IPv6 off.
ns="meshroom-pkg-ci-$$"
smoke="$(mktemp -d)"
cleanup_smoke() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$smoke"; }
trap cleanup_smoke EXIT
ip netns add "$ns" || fail "cannot create a network namespace"
ip netns exec "$ns" ip link set lo up
mkdir "$smoke/dev"
{
    echo 'set -e'
    echo "mount -t tmpfs -o mode=0755 none '$smoke/dev'"
    echo "mknod -m 0666 '$smoke/dev/tun' c 10 200"
    echo "mount --bind '$smoke/dev/tun' /dev/net/tun"
    echo "exec ip netns exec '$ns' setpriv --reuid=meshroom --regid=meshroom --init-groups" \
        "--inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin --bounding-set=-all,+net_admin" \
        "--no-new-privs -- env NO_COLOR=1 MESHROOM_LOG=info" \
        "/usr/bin/meshroom-gw run --config /etc/meshroom-gw/config.yaml"
} >"$smoke/run.sh"
unshare --mount --propagation private bash "$smoke/run.sh" >"$smoke/log" 2>&1 &
gw=$!
status=""
for _ in $(seq 1 100); do
    status="$(ip netns exec "$ns" curl -fsS http://127.0.0.1:7070/status 2>/dev/null || true)"
    [ -n "$status" ] && break
    kill -0 "$gw" 2>/dev/null || break
    sleep 0.2
done
caps="$(grep -E '^(Uid|CapEff|CapBnd|CapAmb):' "/proc/$gw/status" 2>/dev/null | tr -s '\t ' ' ' || true)"
kill -TERM "$gw" 2>/dev/null || true
gw_exit=0
wait "$gw" || gw_exit=$?
if [ -z "$status" ]; then
    cat "$smoke/log"
    fail "the installed gateway did not serve /status"
fi
printf '%s\n' "$status" | python3 -c '
import json, os, sys
s = json.load(sys.stdin)
assert any(r["name"] == "Public" for r in s["rooms"]), "room Public missing"
tun = s["tun"]
assert tun.get("state") == "up", "TUN side not up: %r" % (tun,)
if os.path.isdir("/proc/sys/net/ipv6"):
    assert tun.get("ipv6_disabled") is True, "IPv6 left on: %r" % (tun,)
' || { cat "$smoke/log"; fail "unexpected /status: $status"; }
uid="$(id -u meshroom)"
{ grep -q "Uid: $uid " <<<"$caps" && grep -q 'CapEff: 0000000000001000' <<<"$caps" &&
    grep -q 'CapBnd: 0000000000001000' <<<"$caps"; } ||
    fail "not running as meshroom with CAP_NET_ADMIN only: $caps"
[ "$gw_exit" -eq 0 ] || { cat "$smoke/log"; fail "gateway exited $gw_exit on SIGTERM"; }
if grep -q $'\e\\[' "$smoke/log"; then fail "colour codes in the log despite NO_COLOR=1"; fi
[ "$(stat -c %U /var/lib/meshroom-gw/* | sort -u)" = meshroom ] || fail "state not owned by meshroom"
cleanup_smoke
trap - EXIT
ok "as meshroom with CAP_NET_ADMIN only: /status answers, TUN up with IPv6 off, clean exit on SIGTERM"

step "reinstall keeps the admin's edits; remove keeps config and state"
echo "# edited by the admin" >>/etc/meshroom-gw/config.yaml
apt-get install -y -qq --reinstall "$deb" >/dev/null
grep -q '^# edited by the admin$' /etc/meshroom-gw/config.yaml || fail "reinstall overwrote config.yaml"
apt-get remove -y -qq meshroom-gw >/dev/null
[ ! -e /usr/bin/meshroom-gw ] || fail "remove left the binary"
[ -f /etc/meshroom-gw/config.yaml ] && [ -d /var/lib/meshroom-gw ] && getent passwd meshroom >/dev/null ||
    fail "remove must keep config, state and user"
ok "reinstall kept the edited config; remove kept config, state and user"

step "apt-get purge leaves nothing behind"
touch /etc/meshroom-gw/config.yaml.backup
apt-get purge -y -qq meshroom-gw >/dev/null
leftovers=()
for path in /etc/meshroom-gw /var/lib/meshroom-gw /usr/bin/meshroom-gw \
    /usr/lib/systemd/system/$unit /etc/systemd/system/multi-user.target.wants/$unit \
    /usr/share/doc/meshroom-gw /usr/share/man/man1/meshroom-gw.1.gz \
    /usr/share/man/man5/meshroom-gw.yaml.5.gz; do
    [ -e "$path" ] || [ -L "$path" ] && leftovers+=("$path")
done
getent passwd meshroom >/dev/null && leftovers+=("user meshroom")
getent group meshroom >/dev/null && leftovers+=("group meshroom")
dpkg-query -W -f '${Status}' meshroom-gw 2>/dev/null | grep -q 'installed\|config-files' &&
    leftovers+=("dpkg still lists meshroom-gw")
[ ${#leftovers[@]} -eq 0 ] || fail "purge left: ${leftovers[*]}"
ok "purge removed config, state, user, group and every packaged file"
rm -f "$deb"

echo
echo "packaging: $passed passed, 0 failed"
