#!/usr/bin/env bash
# Installs saru and saru-syncd as services, running from this checkout (nothing is copied into
# /opt: SARU_HOME's dist/ is what runs, so `git pull && npm install` upgrades them).
#
#   scripts/install-service.sh [--systemd] [--sysv] [--uninstall]
#   npm run install-service -- [options]
#
# Installs, under $DESTDIR (default: empty, the live system):
#   /usr/local/sbin/{saru,saruadm,saru-syncd}   wrappers: exec node "$SARU_HOME/dist/..." "$@"  (0755)
#   /etc/systemd/system/{saru,saru-syncd}.service  when systemd is the init (/run/systemd/system
#                                                  exists) or with --systemd                (0644)
#   /etc/init.d/{saru,saru-syncd}                 SysV scripts (LSB headers)               (0755)
#   /etc/default/{saru,saru-syncd}                only when absent                         (0644)
#   /etc/saru/{saru,saru-syncd}.conf.example      only when absent                         (0644)
# Without --systemd or --sysv it installs the SysV scripts always and the units when systemd
# runs; with either, exactly the ones named. It never starts, enables or reloads anything: it
# prints the commands to do so.
#
# --uninstall removes the wrappers, units and init scripts, and the defaults files and examples
# that are unchanged; changed ones (your settings) are left and listed. Stop and disable the
# services first.
#
# Environment: DESTDIR (default empty), SARU_HOME (default: the checkout holding this script),
# NODE (the node binary the wrappers run by default; default: `command -v node`).
# Docs: docs/services.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SARU_HOME=${SARU_HOME:-$here}
DESTDIR=${DESTDIR:-}
DESTDIR=${DESTDIR%/}
SRC=$here/sync/init

uninstall=no
want_systemd=no
want_sysv=no
for arg in "$@"; do
  case $arg in
    --uninstall) uninstall=yes ;;
    --systemd) want_systemd=yes ;;
    --sysv) want_sysv=yes ;;
    -h|--help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "install-service: unknown option \"$arg\" (try --help)" >&2
      exit 2
      ;;
  esac
done
if [ "$want_systemd" = no ] && [ "$want_sysv" = no ]; then
  want_sysv=yes
  if [ -d /run/systemd/system ]; then want_systemd=yes; fi
fi

say() { printf '%s\n' "$*"; }

# name -> the file under dist/ it runs
declare -A BINS=([saru]=dist/saru/cli.js [saruadm]=dist/saru/adm.js [saru-syncd]=dist/sync/cli.js)
SERVICES=(saru saru-syncd)

# Quote $1 for sh, in single quotes.
shquote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# install_file SRC DEST MODE: copy, replacing DEST.
install_file() {
  mkdir -p "$(dirname "$2")"
  install -m "$3" "$1" "$2"
  say "installed $2"
}

# install_once SRC DEST MODE: copy unless DEST exists.
install_once() {
  if [ -e "$2" ]; then
    say "kept      $2 (exists)"
  else
    install_file "$1" "$2" "$3"
  fi
}

# remove DEST: delete if present.
remove() {
  if [ -e "$1" ] || [ -L "$1" ]; then
    rm -f "$1"
    say "removed   $1"
  fi
}

# remove_unchanged SRC DEST: delete DEST if it is SRC unchanged; else keep it and say so.
remove_unchanged() {
  if [ ! -e "$2" ]; then return 0; fi
  if cmp -s "$1" "$2"; then
    remove "$2"
  else
    say "kept      $2 (changed; remove it by hand if you no longer need it)"
  fi
}

if [ "$uninstall" = yes ]; then
  for bin in "${!BINS[@]}"; do remove "$DESTDIR/usr/local/sbin/$bin"; done
  for s in "${SERVICES[@]}"; do
    remove "$DESTDIR/etc/systemd/system/$s.service"
    remove "$DESTDIR/etc/init.d/$s"
    remove_unchanged "$SRC/$s.default" "$DESTDIR/etc/default/$s"
    remove_unchanged "$SRC/$s.conf.example" "$DESTDIR/etc/saru/$s.conf.example"
  done
  rmdir "$DESTDIR/etc/saru" 2>/dev/null || true
  say ""
  say "Uninstalled. Your configuration in $DESTDIR/etc/saru (if any) is left in place."
  say "If the services were enabled, disable them first: systemctl disable --now saru-syncd saru"
  say "(systemd, then systemctl daemon-reload), or update-rc.d -f saru-syncd remove; update-rc.d -f saru remove (SysV)."
  exit 0
fi

missing=()
for bin in "${!BINS[@]}"; do
  [ -f "$SARU_HOME/${BINS[$bin]}" ] || missing+=("${BINS[$bin]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-service: $SARU_HOME has no built daemons (missing: ${missing[*]})." >&2
  echo "Run \`npm install\` in $SARU_HOME first (it builds dist/), then run this again." >&2
  exit 1
fi
node_bin=${NODE:-$(command -v node || true)}
if [ -z "$node_bin" ]; then
  echo "install-service: node not found on PATH; set NODE=/path/to/node" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for bin in "${!BINS[@]}"; do
  {
    echo '#!/bin/sh'
    echo "# $bin: installed by scripts/install-service.sh; runs the build in this checkout."
    echo "# NODE in the environment (e.g. from /etc/default/saru) overrides the node binary."
    echo "SARU_HOME=$(shquote "$SARU_HOME")"
    echo "exec \"\${NODE:-$node_bin}\" \"\$SARU_HOME/${BINS[$bin]}\" \"\$@\""
  } >"$tmp/$bin"
  install_file "$tmp/$bin" "$DESTDIR/usr/local/sbin/$bin" 0755
done
for s in "${SERVICES[@]}"; do
  if [ "$want_systemd" = yes ]; then install_file "$SRC/$s.service" "$DESTDIR/etc/systemd/system/$s.service" 0644; fi
  if [ "$want_sysv" = yes ]; then install_file "$SRC/$s.init" "$DESTDIR/etc/init.d/$s" 0755; fi
  install_once "$SRC/$s.default" "$DESTDIR/etc/default/$s" 0644
  install_once "$SRC/$s.conf.example" "$DESTDIR/etc/saru/$s.conf.example" 0644
done

say ""
say "The daemons run $SARU_HOME/dist with $node_bin."
say "Next:"
say "  1. Write /etc/saru/saru.conf and /etc/saru/saru-syncd.conf (from the .example files there),"
say "     the services file, and the cluster key: (umask 077; openssl rand -base64 32 > /etc/saru/authkey)"
say "     (the same key on every director)."
say "  2. Enable and start both (saru first; saru-syncd connects to it):"
if [ "$want_systemd" = yes ]; then
  say "     systemd: systemctl daemon-reload && systemctl enable --now saru saru-syncd"
fi
if [ "$want_sysv" = yes ]; then
  say "     SysV:    update-rc.d saru defaults && update-rc.d saru-syncd defaults"
  say "              service saru start && service saru-syncd start"
fi
say "Logs: journalctl -u saru -u saru-syncd (systemd), or syslog / the SARU_LOG file set in /etc/default (SysV)."
