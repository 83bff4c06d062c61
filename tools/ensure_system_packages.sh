#!/usr/bin/env bash
# Installs the Debian packages the Python extras compile against (mysqlclient needs the MariaDB
# client headers and pkg-config), when they are missing. Does nothing on a machine that has them.
set -eu

needed=()
for package in libmariadb-dev pkg-config; do
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
