#!/usr/bin/env bash
# Makes sure the local PostgreSQL and MariaDB servers the tests use are running; starts them if not.
# Touches only the machine's own shared servers (never a throwaway fault-test server).
set -u

wait_for() {  # wait_for NAME COMMAND...: poll until COMMAND succeeds, at most 30 s
    local name=$1; shift
    for _ in $(seq 1 60); do
        if "$@" >/dev/null 2>&1; then echo "$name: up"; return 0; fi
        sleep 0.5
    done
    echo "$name: still not reachable after 30 s" >&2
    return 1
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
mariadb_up() { mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -uroot ping >/dev/null; }

status=0
if ! pg_up 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    else
        echo "PostgreSQL is not installed on this machine" >&2
    fi
fi
wait_for PostgreSQL pg_up || status=1

if ! mariadb_up 2>/dev/null; then
    if [ -x /usr/sbin/mariadbd ]; then
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
    else
        echo "MariaDB is not installed on this machine" >&2
    fi
fi
wait_for MariaDB mariadb_up || status=1
exit $status
