#!/usr/bin/env bash
# Prints the first Debian archive URI this host's apt uses (deb822 .sources or one-line .list),
# so that no mirror host name is written into the project.
set -uo pipefail
uri=$( { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2}';
         cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
           | awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}'; } \
       | grep -v -- '-security' | head -1 )
[ -n "$uri" ] || { echo "mirror.sh: no Debian archive in /etc/apt/sources.list*" >&2; exit 1; }
echo "$uri"
