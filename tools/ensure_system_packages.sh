#!/usr/bin/env bash
# Installs the Debian packages the tests need when they are missing: the MariaDB client headers
# and pkg-config (mysqlclient compiles against them) and pgbouncer (tests start their own
# instances of it in front of the local PostgreSQL). Does nothing on a machine that has them.
set -eu

needed=()
for package in libmariadb-dev pkg-config pgbouncer; do
    dpkg -s "$package" >/dev/null 2>&1 || needed+=("$package")
done
[ ${#needed[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
    echo "missing system packages ${needed[*]} and no apt-get to install them" >&2
    exit 1
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing system packages: ${needed[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q "${needed[@]}" >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${needed[@]}" >/dev/null; }

# The package's own service (port 6432, /etc/pgbouncer) is not what the tests use: each test
# starts a private pgbouncer on a free port. Where systemd started it, stop it and keep it off
# so a machine running the tests has no stray pooler; without systemd (containers) it never ran.
case " ${needed[*]} " in
*" pgbouncer "*)
    if command -v systemctl >/dev/null && systemctl is-active --quiet pgbouncer 2>/dev/null; then
        $SUDO systemctl disable --now pgbouncer >/dev/null 2>&1 || true
    fi
    ;;
esac
exit 0
