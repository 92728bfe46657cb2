#!/usr/bin/env bash
# Slurm dev clusters on this machine, runnable side by side:
#   native  Debian 12's Slurm 22.05 on the host, plus an sshd login node
#   trixie  Slurm 24.11 in a Debian 13 chroot
#   forky   Slurm 26.05 in a Debian forky chroot
#   pair    Debian 12's Slurm 22.05 with TWO nodes: this host (vm) and fbnode2, a slurmd in a network
#           namespace of its own (veth 10.251.2.1 <-> 10.251.2.2), so a 2-node job really runs on two
#           network hosts; plus an sshd login node on 127.0.0.1:2223. For multi-node services.
# Usage: devcluster/cluster.sh up|down|status|env [native|trixie|forky|pair]
#        [FB_RESTART_DOWN_S=N] devcluster/cluster.sh restart DAEMON [native|trixie|forky|pair]   (fault tests)
# Must run as root. Daemons are plain processes tracked by PID files.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CMD=${1:-}
FLAVOUR=${2:-native}
if [[ $CMD == restart ]]; then DAEMON=${2:-}; FLAVOUR=${3:-native}; fi
STATE=$REPO/.devcluster/$FLAVOUR
RUN=$STATE/run
LOG=$STATE/log
WORK=$STATE/work
CONF_DIR=$STATE/etc
JWT_KEY=$STATE/jwt_hs256.key
NODE=$(hostname)
REST_USER=slurmrest          # slurmrestd refuses to run as root or SlurmUser
TOKEN_LIFESPAN=3600
DEBIAN_MIRROR=http://deb.debian.org/debian
# Shared libraries the repo's .venv Python (bind-mounted in) needs for ctypes and sqlite3.
CHROOT_PY_LIBS=(libffi8 libsqlite3-0)

die() { echo "cluster.sh: $*" >&2; exit 1; }

case $FLAVOUR in
  native) CTLD_PORT=6817; SLURMD_PORT=6818; REST_PORT=6820; SUITE=bookworm
          DAEMONS=(munged slurmctld slurmd slurmrestd sshd) ;;
  trixie) CTLD_PORT=6827; SLURMD_PORT=6828; REST_PORT=6830; SUITE=trixie
          DAEMONS=(munged slurmctld slurmd slurmrestd) ;;
  forky)  CTLD_PORT=6837; SLURMD_PORT=6838; REST_PORT=6840; SUITE=forky
          DAEMONS=(munged slurmctld slurmd slurmrestd) ;;
  # fbnode2 is the second node's slurmd (the daemon is named after the node: alive() finds it by name).
  pair)   CTLD_PORT=6847; SLURMD_PORT=6848; REST_PORT=""; SUITE=bookworm
          DAEMONS=(munged slurmctld slurmd fbnode2 sshd) ;;
  *) die "unknown flavour '$FLAVOUR' (native, trixie, forky or pair)" ;;
esac
SSH_PORT=$([[ $FLAVOUR == pair ]] && echo 2223 || echo 2222)
# The pair's second node: its name, network namespace and addresses (host side, node side).
NODE2=fbnode2
NETNS=fb-pair-node2
PAIR_HOST_IP=10.251.2.1
PAIR_NODE_IP=10.251.2.2
SSH_DIR=$STATE/ssh
SSH_KEY=$SSH_DIR/id_ed25519

if [[ $FLAVOUR == native || $FLAVOUR == pair ]]; then
  CHROOT=""
  # Native clients read /etc/slurm/slurm.conf (a symlink to ours); SLURM_CONF makes
  # this script independent of that link.
  export SLURM_CONF=$CONF_DIR/slurm.conf
  MUNGE_DIR=$STATE/munge
  MUNGE_SOCKET=$MUNGE_DIR/munge.socket
else
  CHROOT=$REPO/.cache/chroots/$FLAVOUR
  unset SLURM_CONF      # chroot clients use the chroot's /etc/slurm/slurm.conf link
fi

# Run a command in the cluster's userland (host or chroot).
in_cluster() {
  if [[ -n $CHROOT ]]; then chroot "$CHROOT" "$@"; else "$@"; fi
}

# --- installation ----------------------------------------------------------

# ensure_packages host|chroot PACKAGE...: apt-get install what is missing.
ensure_packages() {
  local run=() missing=() p
  [[ $1 == chroot ]] && run=(chroot "$CHROOT")
  shift
  for p in "$@"; do
    "${run[@]}" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "Installing ${missing[*]}${run:+ in $CHROOT}" >&2
  # A testing suite's Release file expires within days; a stale clock or mirror
  # must not block a one-off install.
  "${run[@]}" apt-get update -qq -o Acquire::Check-Valid-Until=false
  "${run[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

# Build the chroot once; an interrupted build stays in a temp dir and is never used.
ensure_chroot() {
  [[ -x $CHROOT/usr/sbin/slurmctld ]] && return 0
  local parent tmp stale start
  parent=$(dirname "$CHROOT")
  mkdir -p "$parent"
  for stale in "$parent/.$FLAVOUR.build."*; do
    [[ -e $stale ]] || continue
    # Never rm -rf through a leftover mount of /proc or /sys.
    umount_under "$stale"
    if findmnt -rn -o TARGET | grep -q "^$stale/"; then die "cannot unmount everything under $stale"; fi
    rm -rf "$stale" "$stale.log"
  done
  tmp=$(mktemp -d "$parent/.$FLAVOUR.build.XXXX")
  chmod 755 "$tmp"   # mktemp's 0700 would lock non-root users (munge) out of the chroot's /
  start=$(date +%s)
  echo "Building $FLAVOUR chroot in $tmp (a few minutes)..." >&2
  # Bookworm's debootstrap has no 'forky' script; every Debian suite uses 'sid'.
  if ! debootstrap --variant=minbase \
      --include="slurmctld,slurmd,slurmrestd,slurm-client,munge,slurm-wlm-jwt-plugin$(printf ',%s' "${CHROOT_PY_LIBS[@]}")" \
      "$SUITE" "$tmp" "$DEBIAN_MIRROR" /usr/share/debootstrap/scripts/sid >"$tmp.log" 2>&1; then
    tail -n 20 "$tmp.log" >&2
    die "debootstrap of $FLAVOUR failed; full log in $tmp.log"
  fi
  mv -T "$tmp" "$CHROOT"
  mv "$tmp.log" "$CHROOT.build.log"
  echo "Built $FLAVOUR chroot in $(( $(date +%s) - start ))s" >&2
}

ensure_rest_user() {
  in_cluster id -u "$REST_USER" >/dev/null 2>&1 && return 0
  in_cluster useradd --system --no-create-home --shell /usr/sbin/nologin "$REST_USER"
}

# --- mounts (chroots only) ---------------------------------------------------

# Python prefix behind the repo's .venv, if it lives outside the repo and outside
# /usr (a pyenv build, say), so jobs in the chroot can run the venv's Python.
venv_python_prefix() {
  local py prefix
  py=$(readlink -f "$REPO/.venv/bin/python3" 2>/dev/null) && [[ -x $py ]] || return 1
  prefix=${py%/bin/*}
  case $prefix in ""|/|/usr|/usr/*|"$REPO"|"$REPO"/*) return 1 ;; esac
  echo "$prefix"
}

# Bind SRC at the same path inside the chroot.
bind_in() {
  local src=$1 mode=$2 dst=$CHROOT$1
  mountpoint -q "$dst" && return 0
  mkdir -p "$dst"
  mount --bind "$src" "$dst"
  [[ $mode == rw ]] || mount -o remount,bind,ro "$dst"
}

# The chroot gets device nodes of its own, never a bind of the host's /dev: otherwise a
# recursive delete of .cache while a chroot is up (or after a killed run left mounts
# behind) would delete the host's /dev/null, /dev/urandom...
make_chroot_dev() {
  local d=$CHROOT/dev name type major minor
  if mountpoint -q "$d"; then umount "$d" 2>/dev/null || umount -l "$d"; fi  # from older versions
  mkdir -p "$d/pts" "$d/shm"
  while read -r name type major minor; do
    [[ -c $d/$name ]] || { rm -f "$d/$name"; mknod -m 666 "$d/$name" "$type" "$major" "$minor"; }
  done <<'NODES'
null c 1 3
zero c 1 5
full c 1 7
random c 1 8
urandom c 1 9
tty c 5 0
NODES
  ln -sfn /proc/self/fd "$d/fd"
}

# The repo (read-only, with its .venv) and $STATE (read-write, on top) appear at
# their host paths, so configs, logs and job output paths match inside and out.
mount_chroot() {
  local py
  mountpoint -q "$CHROOT/proc" || mount -t proc proc "$CHROOT/proc"
  make_chroot_dev
  bind_in /sys ro
  bind_in "$REPO" ro
  if py=$(venv_python_prefix); then bind_in "$py" ro; fi
  bind_in "$STATE" rw
  cp /etc/hosts "$CHROOT/etc/hosts"
}

# Unmount everything under DIR, newest first (stacked binds come off in order).
umount_under() {
  local m
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m"
  done < <(findmnt -rn -o TARGET | grep -E "^$1(/|$)" | tac)
}

# --- configuration -----------------------------------------------------------

plugin_dir() {
  local d
  for d in "$CHROOT"/usr/lib/x86_64-linux-gnu/slurm-wlm "$CHROOT"/usr/lib/*/slurm-wlm; do
    [[ -d $d ]] && { echo "$d"; return; }
  done
}

has_jobcomp_filetxt() { [[ -e $(plugin_dir)/jobcomp_filetxt.so ]]; }

# The pair's second node: a network namespace joined to this host by a veth pair, and a name that
# resolves (here and inside the namespace, which share /etc/hosts) to its address.
ensure_netns() {
  if ! ip netns list | grep -qw "$NETNS"; then
    ip netns add "$NETNS"
  fi
  if ! ip link show fbpair-h >/dev/null 2>&1; then
    ip link add fbpair-h type veth peer name fbpair-n
    ip link set fbpair-n netns "$NETNS"
    ip addr add "$PAIR_HOST_IP/24" dev fbpair-h
    ip netns exec "$NETNS" ip addr add "$PAIR_NODE_IP/24" dev fbpair-n
  fi
  ip link set fbpair-h up
  ip netns exec "$NETNS" ip link set fbpair-n up
  ip netns exec "$NETNS" ip link set lo up
  grep -q "^$PAIR_NODE_IP $NODE2\b" /etc/hosts || echo "$PAIR_NODE_IP $NODE2  # factorybench devcluster pair" >>/etc/hosts
}

remove_netns() {
  ip link del fbpair-h 2>/dev/null || true
  ip netns del "$NETNS" 2>/dev/null || true
}

# Node and partition lines: one node here; the pair's two (this host by its veth address, which
# srun's steps on fbnode2 can reach, and fbnode2 in its namespace).
node_lines() {
  local cpus=$1 mem=$2
  if [[ $FLAVOUR == pair ]]; then
    cat <<EOF
NodeName=$NODE NodeAddr=$PAIR_HOST_IP CPUs=$cpus RealMemory=$mem State=UNKNOWN
NodeName=$NODE2 NodeAddr=$PAIR_NODE_IP CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=cpu Nodes=$NODE,$NODE2 Default=YES MaxTime=2:00:00 DefaultTime=00:30:00 State=UP
EOF
    return
  fi
  cat <<EOF
NodeName=$NODE CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=2:00:00 DefaultTime=00:30:00 State=UP
PartitionName=gpu Nodes=$NODE MaxTime=2:00:00 DefaultTime=00:30:00 State=UP
EOF
}

write_slurm_conf() {
  local mem cpus
  # Declare more CPUs than the machine has (config_overrides lets slurmd accept it), so the
  # many short test jobs of a session run side by side instead of queueing behind each other.
  cpus=${FB_NODE_CPUS:-16}
  # Three slurmds may share this host, so claim only half of the available memory.
  mem=$(awk '/MemAvailable/ {print int($2 / 1024 / 2)}' /proc/meminfo)
  {
    cat <<EOF
# Generated by devcluster/cluster.sh ($FLAVOUR); edits are overwritten on 'up'.
ClusterName=fb$FLAVOUR
SlurmctldHost=$NODE$([[ $FLAVOUR == pair ]] && echo "($PAIR_HOST_IP)")
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d$([[ $FLAVOUR == pair ]] && echo "-%n")
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd$([[ $FLAVOUR == pair ]] && echo "-%n").pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd$([[ $FLAVOUR == pair ]] && echo "-%n").log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
MinJobAge=${FB_MIN_JOB_AGE:-300}
KillWait=5
MailProg=/bin/true
OverTimeLimit=0
SlurmdParameters=config_overrides
EOF
    node_lines "$cpus" "$mem"
    # Finished jobs leave slurmctld after MinJobAge; this file keeps their final state.
    if has_jobcomp_filetxt; then
      echo "JobCompType=jobcomp/filetxt"
      echo "JobCompLoc=$LOG/jobcomp.txt"
    fi
    if [[ -z $CHROOT ]]; then echo "AuthInfo=socket=$MUNGE_SOCKET"; fi
  } >"$CONF_DIR/slurm.conf.new"
  # Slurm >= 23.02 always initialises cgroups and the sandbox has none to offer;
  # 22.05 does not know "disabled" and needs no cgroup.conf at all.
  [[ -z $CHROOT ]] || echo "CgroupPlugin=disabled" >"$CONF_DIR/cgroup.conf"
  if cmp -s "$CONF_DIR/slurm.conf.new" "$CONF_DIR/slurm.conf"; then
    rm "$CONF_DIR/slurm.conf.new"
  else
    mv "$CONF_DIR/slurm.conf.new" "$CONF_DIR/slurm.conf"
    # A running cluster picks up e.g. a new FB_MIN_JOB_AGE by reconfiguring; node
    # changes (CPUs) need a restart, which the start loop in cmd_up then does.
    if alive slurmctld && ! in_cluster scontrol reconfigure 2>/dev/null; then
      echo "slurm.conf changed in a way that needs a restart; restarting slurmctld and slurmd" >&2
      stop_daemon slurmd
      [[ $FLAVOUR != pair ]] || stop_daemon "$NODE2"
      stop_daemon slurmctld
    fi
  fi
}

# Point the userland's default config path at ours so plain `sbatch` works.
link_conf() {
  local etc=$CHROOT/etc/slurm f target
  [[ $FLAVOUR != pair ]] || return 0   # the host's default config stays native's: pair clients use SLURM_CONF
  mkdir -p "$etc"
  for f in slurm.conf cgroup.conf; do
    [[ $FLAVOUR == native && $f == cgroup.conf ]] && continue   # 22.05 needs none
    target=$CONF_DIR/$f
    if [[ -e $etc/$f && ! -L $etc/$f ]]; then
      die "$etc/$f exists and is not ours; move it away to use the devcluster"
    fi
    ln -sfn "$target" "$etc/$f"
  done
}

prepare_state() {
  mkdir -p "$RUN" "$LOG" "$CONF_DIR" "$STATE/spool/ctld" "$STATE/spool/d" "$WORK"
  [[ $FLAVOUR != pair ]] || mkdir -p "$STATE/spool/d-$NODE" "$STATE/spool/d-$NODE2"
  chmod 1777 "$WORK"   # job output from any user
  if [[ ! -s $JWT_KEY ]]; then
    (umask 077; head -c 32 /dev/urandom >"$JWT_KEY")
  fi
  chmod 600 "$JWT_KEY"
  if [[ -z $CHROOT ]]; then
    mkdir -p "$MUNGE_DIR"
    [[ -s $MUNGE_DIR/munge.key ]] || mungekey --create --keyfile="$MUNGE_DIR/munge.key"
    touch "$LOG/munged.log"
    chown munge:munge "$MUNGE_DIR" "$MUNGE_DIR/munge.key" "$LOG/munged.log"
    chmod 755 "$MUNGE_DIR"; chmod 600 "$MUNGE_DIR/munge.key"
    prepare_ssh
  else
    # The chroot's own munged uses the chroot's default paths.
    chroot "$CHROOT" sh -c '
      mkdir -p /run/munge /var/log/munge /var/lib/munge
      [ -s /etc/munge/munge.key ] || mungekey --create
      chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge/munge.key
      chmod 600 /etc/munge/munge.key'
  fi
}

prepare_ssh() {
  mkdir -p "$SSH_DIR" /run/sshd
  chmod 700 "$SSH_DIR"
  [[ -s $SSH_DIR/ssh_host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/ssh_host_ed25519_key"
  [[ -s $SSH_KEY ]] || ssh-keygen -q -t ed25519 -N '' -C "factorybench-devcluster" -f "$SSH_KEY"
  cp "$SSH_KEY.pub" "$SSH_DIR/authorized_keys"
  chmod 600 "$SSH_DIR/authorized_keys"
  cat >"$SSH_DIR/sshd_config" <<EOF
# Login node of the native devcluster. Key auth only; no PAM in a sandbox.
ListenAddress 127.0.0.1:$SSH_PORT
HostKey $SSH_DIR/ssh_host_ed25519_key
PidFile $RUN/sshd.pid
AuthorizedKeysFile $SSH_DIR/authorized_keys
# The repo may live under a world-writable directory such as /tmp: the key file is ours, so
# ownership checks on its parent directories would only refuse the login node.
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
PrintMotd no
AcceptEnv LANG LC_*
SetEnv SLURM_CONF=$CONF_DIR/slurm.conf
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
}

# --- daemons -------------------------------------------------------------------

pid_of() { [[ -s $RUN/$1.pid ]] && cat "$RUN/$1.pid" || true; }

# Running and not a zombie: an orphaned daemon lingers as one until init reaps it.
running() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [[ $st != [ZX] ]]; }

# Alive = the recorded PID exists and still runs that daemon (PIDs get reused).
alive() {
  local pid
  pid=$(pid_of "$1")
  [[ -n $pid ]] && running "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$1"
}

log_of() {
  case $1 in
    munged) if [[ -n $CHROOT ]]; then echo "$CHROOT/var/log/munge/munged.log"; else echo "$LOG/munged.log"; fi ;;
    *) echo "$LOG/$1.log" ;;
  esac
}

# Start a daemon in the foreground of a detached session and record its PID.
# chroot and setpriv exec, so $! is the daemon itself.
spawn() {
  local name=$1 out=$LOG/$1.out; shift
  setsid "$@" >>"$out" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

start_daemon() {
  local d=$1
  alive "$d" && return 0
  case $d in
    munged)
      if [[ -n $CHROOT ]]; then
        spawn munged chroot --userspec=munge:munge "$CHROOT" /usr/sbin/munged -F
      else
        spawn munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F \
          --socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key" \
          --pid-file="$MUNGE_DIR/munged.pid" --seed-file="$MUNGE_DIR/munged.seed" \
          --log-file="$LOG/munged.log"
      fi
      wait_for "munged" munge_ok 15 ;;
    slurmctld) spawn slurmctld ${CHROOT:+chroot "$CHROOT"} /usr/sbin/slurmctld -D ;;
    slurmd) spawn slurmd ${CHROOT:+chroot "$CHROOT"} /usr/sbin/slurmd -D ;;
    # nsenter joins the network namespace only (`ip netns exec` would also remount /sys, hiding the
    # cgroup filesystem slurmd initialises).
    "$NODE2") ensure_netns; spawn "$NODE2" nsenter --net="/run/netns/$NETNS" /usr/sbin/slurmd -D -N "$NODE2" ;;
    slurmrestd)
      # Native 22.05 serves v0.0.37 and v0.0.38 together (v0.0.36 is long dead);
      # newer releases bundle all versions in openapi/slurmctld. The dbv* plugins
      # need slurmdbd, which we do not run.
      local plugins=openapi/slurmctld
      [[ $FLAVOUR == native ]] && plugins=openapi/v0.0.37,openapi/v0.0.38
      if [[ -n $CHROOT ]]; then
        spawn slurmrestd env SLURM_JWT=daemon chroot --userspec="$REST_USER:$REST_USER" "$CHROOT" \
          /usr/sbin/slurmrestd -a rest_auth/jwt -s "$plugins" "127.0.0.1:$REST_PORT"
      else
        spawn slurmrestd env SLURM_JWT=daemon setpriv --reuid="$REST_USER" --regid="$REST_USER" --init-groups \
          /usr/sbin/slurmrestd -a rest_auth/jwt -s "$plugins" "127.0.0.1:$REST_PORT"
      fi ;;
    sshd) spawn sshd /usr/sbin/sshd -D -e -f "$SSH_DIR/sshd_config" ;;
  esac
}

stop_daemon() {
  local d=$1 pid i
  if alive "$d"; then
    pid=$(pid_of "$d")
    kill -TERM "$pid"
    for ((i = 0; i < 60; i++)); do
      running "$pid" || break
      sleep 0.25
    done
    if running "$pid"; then kill -KILL "$pid"; fi
    echo "stopped $d ($pid)"
  fi
  rm -f "$RUN/$d.pid"
}

# --- health --------------------------------------------------------------------

munge_ok() {
  if [[ -n $CHROOT ]]; then
    chroot "$CHROOT" sh -c 'munge -n | unmunge' >/dev/null 2>&1
  else
    { munge -n --socket="$MUNGE_SOCKET" | unmunge --socket="$MUNGE_SOCKET"; } >/dev/null 2>&1
  fi
}

node_state() { in_cluster sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n1; }

node_ok() {
  local n
  for n in "$NODE" $([[ $FLAVOUR == pair ]] && echo "$NODE2"); do
    [[ $(in_cluster sinfo -h -N -n "$n" -o %T 2>/dev/null | head -n1) =~ ^(idle|mixed|allocated|completing)$ ]] || return 1
  done
}

token() { in_cluster scontrol token lifespan="$TOKEN_LIFESPAN" | sed -n 's/^SLURM_JWT=//p'; }

rest_get() {
  local tok
  tok=$(token 2>/dev/null) || return 1
  curl -fsS --max-time 5 -H "X-SLURM-USER-NAME: root" -H "X-SLURM-USER-TOKEN: $tok" \
    "http://127.0.0.1:$REST_PORT$1"
}

rest_ok() { rest_get /openapi/v3 >/dev/null 2>&1; }

rest_versions() {
  # Paths look like "\/slurm\/v0.0.38\/ping" (22.05 escapes slashes) or "/slurm/v0.0.42/ping".
  rest_get /openapi/v3 2>/dev/null | grep -oE 'slurm\\?/v0\.0\.[0-9]+' | grep -oE 'v0\.0\.[0-9]+' \
    | sort -uV | paste -sd ' '
}

sshd_ok() {
  ssh -q -i "$SSH_KEY" -p "$SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 root@127.0.0.1 true
}

# Wait until CHECK passes; on timeout, or if a daemon died, show the relevant log.
wait_for() {
  local what=$1 check=$2 timeout=$3 d i
  for ((i = 0; i < timeout * 2; i++)); do
    "$check" && return 0
    for d in "${DAEMONS[@]}"; do
      if [[ -e $RUN/$d.pid ]] && ! alive "$d"; then fail_with_log "$d died while waiting for $what" "$d"; fi
    done
    sleep 0.5
  done
  fail_with_log "timed out after ${timeout}s waiting for $what" "${what%% *}"
}

fail_with_log() {
  local msg=$1 d=$2 f
  echo "cluster.sh ($FLAVOUR): $msg" >&2
  for f in "$(log_of "$d")" "$LOG/$d.out"; do
    [[ -s $f ]] && { echo "--- tail of $f" >&2; tail -n 25 "$f" >&2; }
  done
  exit 1
}

# --- subcommands -----------------------------------------------------------------

cmd_up() {
  [[ $(id -u) == 0 ]] || die "must run as root"
  if [[ -z $CHROOT ]]; then
    ensure_packages host slurmctld slurmd slurmrestd slurm-client munge openssh-server curl iproute2
  else
    ensure_packages host debootstrap curl
    ensure_chroot
    ensure_packages chroot "${CHROOT_PY_LIBS[@]}"
  fi
  mkdir -p "$STATE"
  [[ -z $CHROOT ]] || mount_chroot
  ensure_rest_user
  prepare_state
  write_slurm_conf
  link_conf
  local d
  for d in "${DAEMONS[@]}"; do alive "$d" || rm -f "$RUN/$d.pid"; done   # stale after a crash
  for d in "${DAEMONS[@]}"; do start_daemon "$d"; done
  wait_for "slurmd node $NODE idle" node_ok 60
  [[ -z $REST_PORT ]] || wait_for "slurmrestd on port $REST_PORT" rest_ok 30
  [[ -n $CHROOT ]] || wait_for "sshd on port $SSH_PORT" sshd_ok 15
  if [[ $FLAVOUR == pair ]]; then
    echo "cluster $FLAVOUR is up: $(in_cluster sinfo -V), nodes $NODE $(node_state) and $NODE2 ($PAIR_NODE_IP, namespace $NETNS)"
  else
    echo "cluster $FLAVOUR is up: $(in_cluster sinfo -V), node $NODE $(node_state), REST $(rest_versions)"
  fi
}

cmd_down() {
  local i
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do stop_daemon "${DAEMONS[i]}"; done
  [[ -z $CHROOT ]] || umount_under "$CHROOT"
  [[ $FLAVOUR != pair ]] || remove_netns
  echo "cluster $FLAVOUR is down"
}

cmd_status() {
  local d up=0 down=0
  for d in "${DAEMONS[@]}"; do
    if alive "$d"; then
      printf '%-11s pid %-8s alive\n' "$d" "$(pid_of "$d")"; up=$((up + 1))
    else
      printf '%-11s pid %-8s dead\n' "$d" "$(pid_of "$d")"; down=$((down + 1))
    fi
  done
  if ((down == 0)); then
    in_cluster sinfo || true
    echo "cluster $FLAVOUR: UP"
  elif ((up == 0)); then
    echo "cluster $FLAVOUR: DOWN"; return 1
  else
    echo "cluster $FLAVOUR: DEGRADED (run: devcluster/cluster.sh up $FLAVOUR)"; return 1
  fi
}

# Stop one daemon, keep it down FB_RESTART_DOWN_S seconds (default 0), start it again, and wait
# until the cluster serves again.
cmd_restart() {
  [[ $(id -u) == 0 ]] || die "must run as root"
  [[ " ${DAEMONS[*]} " == *" $DAEMON "* ]] || die "restart: unknown daemon '$DAEMON' (${DAEMONS[*]})"
  stop_daemon "$DAEMON"
  sleep "${FB_RESTART_DOWN_S:-0}"
  start_daemon "$DAEMON"
  case $DAEMON in
    slurmctld|slurmd|"$NODE2") wait_for "slurmd node $NODE up" node_ok 60 ;;
    slurmrestd) wait_for "slurmrestd on port $REST_PORT" rest_ok 30 ;;
    sshd) wait_for "sshd on port $SSH_PORT" sshd_ok 15 ;;
  esac
  echo "restarted $DAEMON ($(pid_of "$DAEMON"))"
}

# Single-quote a value for eval.
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

emit() { printf 'export %s=%s\n' "$1" "$(q "$2")"; }

cmd_env() {
  local token_cmd="scontrol token lifespan=$TOKEN_LIFESPAN" conn=SLURM_REST
  if [[ $FLAVOUR == pair ]]; then
    echo "# Slurm devcluster 'pair': nodes $NODE and $NODE2, through its login node (ssh, no REST)"
    emit FB_CLUSTER "$FLAVOUR"
    emit FB_SLURM_WORKDIR "$WORK"
    emit FB_SLURM_CONF "$CONF_DIR/slurm.conf"
    emit AIRFLOW_CONN_SLURM_SSH_PAIR "{\"conn_type\":\"ssh\",\"host\":\"127.0.0.1\",\"port\":$SSH_PORT,\"login\":\"root\",\"extra\":{\"key_file\":\"$SSH_KEY\",\"no_host_key_check\":true,\"conn_timeout\":10}}"
    return
  fi
  [[ -z $CHROOT ]] || { token_cmd="chroot $CHROOT $token_cmd"; conn=SLURM_REST_${FLAVOUR^^}; }
  echo "# Slurm devcluster '$FLAVOUR'. JWT for REST (headers X-SLURM-USER-NAME: root, X-SLURM-USER-TOKEN):"
  echo "#   token=\$(\$FB_SLURM_TOKEN_CMD | sed 's/^SLURM_JWT=//')"
  emit FB_CLUSTER "$FLAVOUR"
  emit FB_SLURM_REST_URL "http://127.0.0.1:$REST_PORT"
  emit FB_SLURM_REST_USER root
  emit FB_SLURM_TOKEN_CMD "$token_cmd"
  emit FB_SLURM_WORKDIR "$WORK"
  emit FB_SLURM_CONF "$CONF_DIR/slurm.conf"
  if [[ -z $CHROOT || -d $CHROOT ]] && has_jobcomp_filetxt; then emit FB_SLURM_JOBCOMP "$LOG/jobcomp.txt"; fi
  if [[ -n $CHROOT ]]; then emit FB_SLURM_CHROOT "$CHROOT"; fi
  if [[ $FLAVOUR == native ]]; then
    emit FB_SSH_HOST 127.0.0.1
    emit FB_SSH_PORT "$SSH_PORT"
    emit FB_SSH_USER root
    emit FB_SSH_KEY "$SSH_KEY"
    emit AIRFLOW_CONN_SLURM_SSH "{\"conn_type\":\"ssh\",\"host\":\"127.0.0.1\",\"port\":$SSH_PORT,\"login\":\"root\",\"extra\":{\"key_file\":\"$SSH_KEY\",\"no_host_key_check\":true,\"conn_timeout\":10}}"
  fi
  emit "AIRFLOW_CONN_$conn" "{\"conn_type\":\"http\",\"host\":\"127.0.0.1\",\"port\":$REST_PORT,\"schema\":\"http\",\"login\":\"root\"}"
}

case $CMD in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  restart) cmd_restart ;;
  *) die "usage: $0 up|down|status|env [native|trixie|forky], or restart DAEMON [flavour]" ;;
esac
