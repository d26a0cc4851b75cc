#!/usr/bin/env bash
# Creates the local user the SSH password-auth test logs in as, with a random
# password kept in a root-only file. Run as root once per machine (CI: from
# scripts/setup-test-env.sh). Idempotent.
set -euo pipefail
user=botmox-ssh-test
dir=/var/lib/botmox-test
install -d -m 0700 "$dir"
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user"
if [ ! -s "$dir/ssh-password" ]; then
  (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "$dir/ssh-password")
fi
echo "$user:$(cat "$dir/ssh-password")" | chpasswd
