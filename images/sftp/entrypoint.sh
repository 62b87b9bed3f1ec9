#!/bin/bash
# Entry point of the sFTP container of instance $REDENV (lower case):
# - host keys: made once into /etc/ssh/hostkeys (a volume), reused afterwards;
# - users: /app/redftp/etc/users (the instance's etc/redftp, read-only) holds "<user> <uid>" lines,
#   /app/redftp/etc/<user>.pub their public keys; each becomes redftp_<instance>_<user> in group
#   redftp with home and chroot /app/redftp/env/<instance> (root-owned, shared by the instance's
#   users: all of them upload into the one landing zone, input/);
# - then sshd (logging to stderr: docker logs) and redftp-perms on input/ (uploads readable for
#   redsys whatever mode the client asked for). If either ends, the other is stopped and the
#   container exits non-zero, so that Docker restarts it; SIGTERM stops both.
set -eu
inst=${REDENV:?REDENV (the instance) is not set}
etc=/app/redftp/etc
top=/app/redftp/env/$inst

for t in ed25519 rsa; do
  key=/etc/ssh/hostkeys/ssh_host_${t}_key
  [ -s "$key" ] || ssh-keygen -q -t "$t" -N '' -f "$key"
done

mkdir -p "$top/input"
chown root:root /app/redftp /app/redftp/env "$top"
chmod 755 /app/redftp /app/redftp/env "$top"
rm -f /etc/ssh/authorized_keys/*
if [ -f "$etc/users" ]; then
  while read -r user uid _; do
    case "$user" in ''|'#'*) continue ;; esac
    name=redftp_${inst}_${user}
    if ! getent passwd "$name" >/dev/null; then
      # '*' (not '!'): no password can match, yet the account is not "locked" for public keys
      useradd -M -N -g redftp -u "$uid" -d "$top" -s /usr/sbin/nologin -p '*' "$name"
    fi
    install -m 644 -o root -g root "$etc/$user.pub" "/etc/ssh/authorized_keys/$name"
    echo "redftp: user $name uid $uid chroot $top"
  done <"$etc/users"
fi

/usr/sbin/sshd -D -e &
sshd=$!
/usr/local/sbin/redftp-perms "$top/input" &
perms=$!
trap 'kill -TERM "$sshd" "$perms" 2>/dev/null; wait; exit 0' TERM INT
wait -n || true  # the first of the two to end (bash >= 4.3)
echo "redftp: sshd or redftp-perms ended; stopping the container" >&2
kill -TERM "$sshd" "$perms" 2>/dev/null || true
wait || true
exit 1
