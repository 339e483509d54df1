#!/usr/bin/env bash
# Install callbridge as systemd services on Debian/Ubuntu (for example on the 3CX host itself).
#
#   sudo deploy/debian/install.sh [--with-rabbitmq] [--pbx-group GROUP] [--root DIR]
#
# Builds /opt/callbridge/venv (from this checkout, pinned by constraints.txt), puts the
# configuration in /etc/callbridge/callbridge.ini (never overwrites one that is there), makes
# /var/lib/callbridge, creates the `callbridge` system user, installs the units
# (callbridge-{monitor,api,webhooks,recordings}.service and callbridge.target) and enables them.
# It does not start them: edit the configuration first, then `systemctl start callbridge.target`.
#
#   --with-rabbitmq    also install RabbitMQ from the distribution and start it
#   --pbx-group GROUP  add the callbridge user to GROUP, which may read the PBX's recordings
#                      (default: phonesystem, 3CX's, when it exists)
#   --root DIR         build the same tree under DIR instead of / (a staging root for tests and
#                      packaging): no user, no apt, no systemctl
set -euo pipefail

root=/ with_rabbitmq=0 pbx_group=phonesystem
while [ $# -gt 0 ]; do
  case "$1" in
    --with-rabbitmq) with_rabbitmq=1 ;;
    --pbx-group) pbx_group="${2:?--pbx-group needs a group name}"; shift ;;
    --root) root="${2:?--root needs a directory}"; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

source_dir="$(cd "$(dirname "$0")/../.." && pwd)"
root="$(mkdir -p "$root" && cd "$root" && pwd)"
staged=0; [ "$root" != / ] && staged=1
prefix="${root%/}"
python="${PYTHON:-python3}"

say() { echo "callbridge install: $*"; }

if [ "$staged" = 0 ] && [ "$(id -u)" != 0 ]; then
  echo "install.sh: run it as root (sudo), or with --root DIR to stage the tree" >&2
  exit 1
fi
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "install.sh: callbridge needs Python 3.11 or newer ($python is $("$python" -V 2>&1))" >&2
  exit 1
}

if [ "$staged" = 0 ]; then
  packages=()
  "$python" -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)
  [ "$with_rabbitmq" = 1 ] && packages+=(rabbitmq-server)
  if [ ${#packages[@]} -gt 0 ]; then
    say "apt-get install ${packages[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
  fi
  if ! getent passwd callbridge >/dev/null; then
    say "creating the system user callbridge"
    useradd --system --user-group --home-dir /var/lib/callbridge --no-create-home \
      --shell /usr/sbin/nologin callbridge
  fi
  if getent group "$pbx_group" >/dev/null; then
    say "adding callbridge to the group $pbx_group (the PBX's recordings)"
    usermod --append --groups "$pbx_group" callbridge
  fi
fi

say "building $prefix/opt/callbridge/venv"
install -d -m 0755 "$prefix/opt/callbridge"
"$python" -m venv --clear "$prefix/opt/callbridge/venv"
"$prefix/opt/callbridge/venv/bin/pip" install -q --upgrade pip
"$prefix/opt/callbridge/venv/bin/pip" install -q -c "$source_dir/constraints.txt" "$source_dir"
install -m 0644 "$source_dir/README.md" "$source_dir/callbridge.example.ini" "$prefix/opt/callbridge/"

owner=(); [ "$staged" = 0 ] && owner=(-o root -g callbridge)
install -d -m 0755 "$prefix/etc/callbridge"
if [ -e "$prefix/etc/callbridge/callbridge.ini" ]; then
  say "keeping the configuration that is there: $prefix/etc/callbridge/callbridge.ini"
else
  say "configuration: $prefix/etc/callbridge/callbridge.ini (from callbridge.example.ini: edit it)"
  install -m 0640 "${owner[@]}" "$source_dir/callbridge.example.ini" "$prefix/etc/callbridge/callbridge.ini"
fi
state_owner=(); [ "$staged" = 0 ] && state_owner=(-o callbridge -g callbridge)
install -d -m 0750 "${state_owner[@]}" "$prefix/var/lib/callbridge"

install -d -m 0755 "$prefix/etc/systemd/system"
install -m 0644 "$source_dir"/deploy/debian/callbridge-*.service "$source_dir/deploy/debian/callbridge.target" \
  "$prefix/etc/systemd/system/"

if [ "$staged" = 0 ]; then
  systemctl daemon-reload
  systemctl enable callbridge.target callbridge-monitor.service callbridge-api.service \
    callbridge-webhooks.service callbridge-recordings.service
  [ "$with_rabbitmq" = 1 ] && systemctl enable --now rabbitmq-server.service
  say "done. Edit /etc/callbridge/callbridge.ini ([pbx], [webhook:NAME], [api] keys), check it"
  say "with: sudo -u callbridge /opt/callbridge/venv/bin/callbridge pbx check"
  say "then: systemctl start callbridge.target; journalctl -u 'callbridge-*' -f"
else
  say "staged under $prefix"
fi
