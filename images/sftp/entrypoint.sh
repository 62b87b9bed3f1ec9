#!/bin/sh
# Entry point of the sFTP container of instance $REDENV (lower case):
# - host keys: made once into /etc/ssh/hostkeys (a volume), reused afterwards;
# - users: /app/redftp/etc/users (the instance's etc/redftp, read-only) holds "<user> <uid>" lines,
#   /app/redftp/etc/<user>.pub their public keys; each becomes redftp_<instance>_<user> in group
#   redftp, home and chroot /app/redftp/env/<instance>/<user> (root-owned), uploads into input/;
# - then sshd in the foreground, logging to stderr (docker logs).
set -eu
inst=${REDENV:?REDENV (the instance) is not set}
etc=/app/redftp/etc
top=/app/redftp/env/$inst

for t in ed25519 rsa; do
  key=/etc/ssh/hostkeys/ssh_host_${t}_key
  [ -s "$key" ] || ssh-keygen -q -t "$t" -N '' -f "$key"
done

mkdir -p "$top"
chown root:root /app/redftp /app/redftp/env "$top"
chmod 755 /app/redftp /app/redftp/env "$top"
rm -f /etc/ssh/authorized_keys/*
if [ -f "$etc/users" ]; then
  while read -r user uid _; do
    case "$user" in ''|'#'*) continue ;; esac
    name=redftp_${inst}_${user}
    home=$top/$user
    if ! getent passwd "$name" >/dev/null; then
      # '*' (not '!'): no password can match, yet the account is not "locked" for public keys
      useradd -M -N -g redftp -u "$uid" -d "$home" -s /usr/sbin/nologin -p '*' "$name"
    fi
    mkdir -p "$home/input"
    chown root:root "$home"; chmod 755 "$home"
    install -m 644 -o root -g root "$etc/$user.pub" "/etc/ssh/authorized_keys/$name"
    echo "redftp: user $name uid $uid chroot $home"
  done <"$etc/users"
fi
exec /usr/sbin/sshd -D -e
