#!/usr/bin/env bash
# Prepare the private Cyrus IMAP/POP3 tree the test world runs (tests/world/cyrus.py).
#
# Debian's cyrus-imapd Conflicts with imap-server, which dovecot-imapd provides: installing it
# would REMOVE Dovecot, which the tests need too. So the Cyrus packages are only downloaded and
# unpacked (dpkg -x) into a private root; only the libraries they link against are installed
# with apt (libraries start no service and conflict with nothing). Idempotent: a prepared root
# is left alone, so CI pays for this once per machine. Run as root on Debian 12 (bookworm).
#
# Usage: tests/world/install_cyrus.sh [ROOT]   (default $MIGRATOR_TEST_CYRUS_ROOT or
#        /opt/migrator-test/cyrus; the fixtures read the same variable and default)
set -euo pipefail

ROOT=${1:-${MIGRATOR_TEST_CYRUS_ROOT:-/opt/migrator-test/cyrus}}
PACKAGES="cyrus-common cyrus-imapd cyrus-pop3d sasl2-bin"
MARKER=$ROOT/.installed   # written last: a half-done install is redone

if [ -f "$MARKER" ] && [ -x "$ROOT/usr/lib/cyrus/bin/master" ]; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"          # apt downloads as _apt where it can
cd "$work"
if ! apt-get download $PACKAGES >/dev/null 2>&1; then
    apt-get update -qq
    apt-get download $PACKAGES >/dev/null
fi

# The libraries those packages link against (first of any alternatives, versions dropped),
# plus the SASL plugins for PLAIN/LOGIN and the sasldb password store.
libs=$(for deb in ./*.deb; do dpkg-deb -f "$deb" Depends; done \
       | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' -e 's/[[:space:]]//g' \
       | grep '^lib' | sort -u)
apt-get install -y -qq --no-install-recommends $libs libsasl2-modules libsasl2-modules-db \
    >/dev/null

rm -rf "$ROOT"
mkdir -p "$ROOT"
for deb in ./*.deb; do dpkg -x "$deb" "$ROOT"; done
chmod 755 "$ROOT"
touch "$MARKER"
echo "cyrus: unpacked into $ROOT"
