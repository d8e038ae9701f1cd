#!/usr/bin/env bash
# An sshd on 127.0.0.1 for the SSH deployment tests (crates/gridflow-deploy/tests/ssh.rs):
# installs Debian's openssh-server when missing (as root), makes a host key and a client key
# under target/sshd, starts sshd on a free port with its own configuration (-f), and writes
# an ssh client configuration (target/sshd/ssh_config: the port, the key, a known_hosts
# holding the host key, BatchMode) that the tests pass with -F. Writes target/sshd/env.
#
#   scripts/sshd-setup.sh start   # (default)
#   scripts/sshd-setup.sh stop    # stop the sshd started here
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$PWD/target/sshd"
action="${1:-start}"

stop() {
  if [[ -f "$dir/sshd.pid" ]]; then
    kill "$(cat "$dir/sshd.pid")" 2>/dev/null || true
    rm -f "$dir/sshd.pid"
  fi
}

if [[ "$action" == stop ]]; then
  stop
  exit 0
fi

if [[ ! -x /usr/sbin/sshd ]] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
  if [[ "$(id -u)" != 0 ]]; then
    echo "sshd-setup: sshd/ssh missing and not root: cannot install openssh-server" >&2
    exit 1
  fi
  echo "sshd-setup: installing openssh-server and openssh-client (Debian packages)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server openssh-client
fi

stop
rm -rf "$dir"
mkdir -p "$dir"
chmod 700 "$dir"
# sshd insists on its privilege separation directory.
if [[ "$(id -u)" == 0 ]]; then mkdir -p /run/sshd; chmod 755 /run/sshd; fi

ssh-keygen -q -t ed25519 -N '' -C gridflow-test-host -f "$dir/host_key"
ssh-keygen -q -t ed25519 -N '' -C gridflow-test-client -f "$dir/id_ed25519"
cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
chmod 600 "$dir/authorized_keys"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
user="$(id -un)"
cat >"$dir/sshd_config" <<EOF
# sshd for gridflow's SSH deployment tests (written by scripts/sshd-setup.sh).
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers $user
UsePAM no
StrictModes no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
LogLevel ERROR
EOF
/usr/sbin/sshd -t -f "$dir/sshd_config"
/usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"

echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_key.pub")" >"$dir/known_hosts"
cat >"$dir/ssh_config" <<EOF
# Client side of gridflow's SSH deployment tests (written by scripts/sshd-setup.sh).
Host 127.0.0.1 gridflow-test-host
  HostName 127.0.0.1
  Port $port
  User $user
  IdentityFile $dir/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 10
EOF

for i in $(seq 50); do
  if ssh -F "$dir/ssh_config" 127.0.0.1 true 2>/dev/null; then
    break
  fi
  if [[ "$i" == 50 ]]; then
    echo "sshd-setup: cannot log in to 127.0.0.1:$port" >&2
    ssh -v -F "$dir/ssh_config" 127.0.0.1 true || true
    cat "$dir/sshd.log" >&2 || true
    stop
    exit 1
  fi
  sleep 0.1
done

cat >"$dir/env" <<EOF
export GRIDFLOW_TEST_SSH_CONFIG=$dir/ssh_config
export GRIDFLOW_TEST_SSH_HOST=127.0.0.1
EOF
echo "sshd-setup: sshd on 127.0.0.1:$port; source $dir/env"
