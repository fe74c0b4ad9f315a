#!/usr/bin/env bash
# Make sure the local PostgreSQL and RabbitMQ (with its management plugin) answer.
# A server that is installed but stopped is started; a missing one is named with
# the package to install. Exits non-zero when a server cannot be had.
set -u

say() { echo "ensure-servers: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 1; done
  return 1
}

ok=0
if port_open 5432; then
  :
elif command -v pg_ctlcluster >/dev/null; then
  say "PostgreSQL is installed but stopped: starting it"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_port 5432 || { say "PostgreSQL did not start"; ok=1; }
else
  say "PostgreSQL is missing: install it with 'apt-get install postgresql' (15 or newer)"
  ok=1
fi

if port_open 5672; then
  :
elif command -v rabbitmq-server >/dev/null; then
  say "RabbitMQ is installed but stopped: starting it"
  rabbitmq-server -detached
  wait_port 5672 || { say "RabbitMQ did not start"; ok=1; }
else
  say "RabbitMQ is missing: install it with 'apt-get install rabbitmq-server' (3.10 or newer)"
  ok=1
fi

# The city and two kelurahan nodes of `make run` (and the demo's test beside a
# developer's) hold about 150 connections: a local server started with the
# default 100 is raised to 300 and restarted, once.
MIN_CONNECTIONS=300
if [ $ok -eq 0 ] && command -v pg_ctlcluster >/dev/null && command -v psql >/dev/null; then
  current=$(psql -h 127.0.0.1 -U postgres -Atc "SHOW max_connections" 2>/dev/null || echo "")
  if [ -n "$current" ] && [ "$current" -lt "$MIN_CONNECTIONS" ]; then
    say "PostgreSQL allows $current connections; raising it to $MIN_CONNECTIONS (a restart)"
    psql -h 127.0.0.1 -U postgres -qc "ALTER SYSTEM SET max_connections = $MIN_CONNECTIONS" &&
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main restart &&
      wait_port 5432 || say "could not raise max_connections; the demo test will skip itself"
  fi
fi

# nameko's test fixtures create a vhost per test through the management API.
if [ $ok -eq 0 ] && ! port_open 15672; then
  if command -v rabbitmq-plugins >/dev/null; then
    say "enabling the RabbitMQ management plugin"
    rabbitmq-plugins enable rabbitmq_management >/dev/null
    wait_port 15672 || { say "the management API did not come up on port 15672"; ok=1; }
  else
    say "the RabbitMQ management API is not on port 15672 and rabbitmq-plugins is missing"
    ok=1
  fi
fi
exit $ok
