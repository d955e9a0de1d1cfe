#!/usr/bin/env bash
# Run the stand-alone latency runner (nas/latency/runner.py) as an aarch64 program on an x86
# machine, under qemu's user-mode emulation: Debian's arm64 Python, and the aarch64 wheels of
# onnxruntime and numpy. It checks that the runner works on ARM; the times it measures are the
# emulator's, not any device's (see docs/device-runner.md).
#
#   tools/arm64-runner-under-qemu.sh [--dir DIR] setup          build the environment (idempotent)
#   tools/arm64-runner-under-qemu.sh [--dir DIR] check          exit 0 iff it is ready
#   tools/arm64-runner-under-qemu.sh [--dir DIR] runner ARGS..  runner.py ARGS.. under qemu
#   tools/arm64-runner-under-qemu.sh [--dir DIR] python ARGS..  the aarch64 Python under qemu
#
# DIR defaults to $NAS_ARM64_ENV, else .cache/arm64-runner in the repository (git-ignored).
# Everything is written under DIR: a private apt state (the system's apt sources are read, its
# package lists and installed packages are left alone), the arm64 packages unpacked into
# DIR/sysroot (never installed), qemu-aarch64 (the system's if on PATH, else unpacked from
# Debian's qemu-user-static into DIR/bin), the wheels in DIR/site and pip's cache. Needs a
# Debian-like host with apt-get and a host Python with pip.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${NAS_ARM64_ENV:-$REPO/.cache/arm64-runner}"
if [ "${1:-}" = "--dir" ]; then
    DIR="${2:?--dir needs a folder}"
    shift 2
fi
COMMAND="${1:-}"
[ $# -gt 0 ] && shift

# Versions seen to work under qemu 7.2 here; override with NAS_ARM64_PACKAGES.
PACKAGES="${NAS_ARM64_PACKAGES:-onnxruntime==1.32.0 numpy==2.4.6}"
# The emulated core, and the core the fake /proc/cpuinfo below names: a Raspberry Pi 4's.
QEMU_CPU_MODEL=cortex-a72

die() { echo "arm64-runner-under-qemu: $*" >&2; exit 1; }
note() { echo "arm64-runner-under-qemu: $*" >&2; }

host_python() {
    if [ -x "$REPO/.venv/bin/python" ]; then echo "$REPO/.venv/bin/python"; else command -v python3; fi
}

# A private apt: its own lists, cache and (empty) dpkg status under DIR, the system's sources.
apt_() {
    apt-get -q -o Dir::State="$DIR/apt/state" -o Dir::State::status="$DIR/apt/state/status" \
        -o Dir::Cache="$DIR/apt/cache" -o Dir::Log="$DIR/apt/log" -o Debug::NoLocking=1 \
        -o APT::Sandbox::User=root -o APT::Architecture=arm64 \
        -o APT::Architectures::=arm64 -o APT::Architectures::="$(dpkg --print-architecture)" "$@"
}

apt_lists() {
    mkdir -p "$DIR/apt/state/lists/partial" "$DIR/apt/cache/archives/partial" "$DIR/apt/log"
    touch "$DIR/apt/state/status"
    if [ ! -f "$DIR/apt/updated" ]; then
        apt_ update >&2
        touch "$DIR/apt/updated"
    fi
}

# apt_ ARGS, once more on fresh lists if it fails (a mirror drops superseded versions).
apt_fetch() {
    apt_lists
    apt_ "$@" >&2 && return
    rm -f "$DIR/apt/updated"
    apt_lists
    apt_ "$@" >&2
}

# Debian's arm64 Python (python3-minimal, its standard library) and libstdc++ for onnxruntime,
# with every dependency (the status is empty, so apt takes the whole closure), unpacked.
setup_sysroot() {
    [ -f "$DIR/sysroot/.complete" ] && return
    if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
        die "needs apt-get and dpkg-deb (a Debian-like host) to fetch Debian's arm64 Python"
    fi
    rm -rf "$DIR/sysroot"
    rm -f "$DIR/apt/cache/archives/"*.deb
    apt_fetch install --download-only --no-install-recommends -y python3-minimal libpython3-stdlib libstdc++6 \
        || die "could not download Debian's arm64 Python: do the system's apt sources serve arm64?"
    mkdir -p "$DIR/sysroot"
    for deb in "$DIR/apt/cache/archives/"*_arm64.deb "$DIR/apt/cache/archives/"*_all.deb; do
        [ -e "$deb" ] && dpkg-deb -x "$deb" "$DIR/sysroot"
    done
    rm -f "$DIR/apt/cache/archives/"*.deb
    [ -x "$DIR/sysroot/usr/bin/python3" ] || die "no usr/bin/python3 in the unpacked arm64 packages"
    mkdir -p "$DIR/sysroot/proc"
    fake_cpuinfo > "$DIR/sysroot/proc/cpuinfo"
    touch "$DIR/sysroot/.complete"
}

# qemu 7.2 shows an aarch64 program the host's x86 /proc/cpuinfo; onnxruntime's CPU detection
# (cpuinfo) finds no ARM core in it and crashes at import. qemu's -L prefix also applies to
# /proc/cpuinfo, so an ARM one under the sysroot is what the program reads. Its "Model" line
# (a Raspberry Pi's key) lands in the runner's cpu_model, so an emulated table says so.
fake_cpuinfo() {
    local n i
    n="$(nproc --all)"
    for ((i = 0; i < n; i++)); do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$i"
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n'
        printf 'CPU revision\t: 3\n\n'
    done
    printf 'Model\t\t: qemu-aarch64 user-mode emulation, not a device (its timings are meaningless)\n'
}

qemu_binary() {
    local found
    for found in "$(command -v qemu-aarch64 || true)" "$(command -v qemu-aarch64-static || true)" \
                 "$DIR/bin/qemu-aarch64-static"; do
        if [ -n "$found" ] && [ -x "$found" ]; then echo "$found"; return; fi
    done
    return 1
}

setup_qemu() {
    qemu_binary >/dev/null && return
    command -v apt-get >/dev/null || die "needs qemu-aarch64 on PATH, or apt-get to fetch it"
    mkdir -p "$DIR/bin" "$DIR/tmp/qemu"
    (cd "$DIR/tmp/qemu" && apt_fetch download "qemu-user-static:$(dpkg --print-architecture)") \
        || die "could not download Debian's qemu-user-static"
    dpkg-deb --fsys-tarfile "$DIR"/tmp/qemu/qemu-user-static_*.deb \
        | tar -x -C "$DIR/tmp/qemu" ./usr/bin/qemu-aarch64-static
    mv "$DIR/tmp/qemu/usr/bin/qemu-aarch64-static" "$DIR/bin/"
    rm -rf "$DIR/tmp/qemu"
}

# Run an aarch64 program of the sysroot under qemu; core dumps off (qemu writes them to the
# working directory), bytecode cached under DIR, nothing of the host's Python environment, and
# HOME under DIR (onnxruntime's Python package keeps a database in ~/.cache on import).
emulate() {
    local qemu
    qemu="$(qemu_binary)" || die "no qemu-aarch64: run '$0 setup'"
    ulimit -c 0
    mkdir -p "$DIR/home"
    env -u PYTHONHOME -u PYTHONSTARTUP -u XDG_CACHE_HOME HOME="$DIR/home" PYTHONNOUSERSITE=1 \
        PYTHONPATH="$DIR/site" PYTHONPYCACHEPREFIX="$DIR/pycache" QEMU_CPU="$QEMU_CPU_MODEL" \
        "$qemu" -L "$DIR/sysroot" "$DIR/sysroot/usr/bin/python3" "$@"
}

# The aarch64 wheels for the sysroot's Python and glibc, installed by the host's pip.
setup_site() {
    local version libc tag platforms=() minor stamp
    read -r version libc < <(emulate -c 'import platform, sys
print("%d.%d" % sys.version_info[:2], platform.libc_ver()[1])')
    stamp="$version $libc $PACKAGES"
    [ -f "$DIR/site/.complete" ] && [ "$(cat "$DIR/site/.complete")" = "$stamp" ] && return
    # pip takes manylinux tags literally: list every glibc up to the sysroot's
    for ((minor = ${libc#2.}; minor >= 17; minor--)); do platforms+=(--platform "manylinux_2_${minor}_aarch64"); done
    platforms+=(--platform manylinux2014_aarch64)
    tag="cp${version/./}"
    rm -rf "$DIR/site"
    # shellcheck disable=SC2086  # PACKAGES is a list of requirement specifiers
    PIP_CACHE_DIR="$DIR/pip-cache" "$(host_python)" -m pip install --quiet --disable-pip-version-check \
        --target "$DIR/site" "${platforms[@]}" --only-binary=:all: --python-version "$version" \
        --implementation cp --abi "$tag" $PACKAGES >&2 \
        || die "pip found no aarch64 wheels of '$PACKAGES' for Python $version"
    echo "$stamp" > "$DIR/site/.complete"
}

# Import both under emulation and record what was found: the test reads DIR/ready.
smoke_test() {
    emulate -c 'import platform, numpy, onnxruntime
print("python", platform.python_version())
print("machine", platform.machine())
print("numpy", numpy.__version__)
print("onnxruntime", onnxruntime.__version__)' > "$DIR/ready.tmp" \
        || { rm -f "$DIR/ready.tmp"; die "onnxruntime does not import under qemu-aarch64"; }
    echo "qemu $(qemu_binary)" >> "$DIR/ready.tmp"
    mv "$DIR/ready.tmp" "$DIR/ready"
}

case "$COMMAND" in
    setup)
        [ "$(uname -m)" = aarch64 ] && die "this host is aarch64 already: run nas/latency/runner.py directly"
        mkdir -p "$DIR/tmp"
        export TMPDIR="$DIR/tmp"
        rm -f "$DIR/ready"
        setup_sysroot
        setup_qemu
        setup_site
        smoke_test
        cat "$DIR/ready"
        ;;
    check)
        if [ ! -f "$DIR/ready" ] || ! qemu_binary >/dev/null; then die "not set up: run '$0 setup'"; fi
        cat "$DIR/ready"
        ;;
    runner)
        [ -f "$DIR/ready" ] || die "not set up: run '$0 setup'"
        emulate "$REPO/nas/latency/runner.py" "$@"
        ;;
    python)
        [ -f "$DIR/ready" ] || die "not set up: run '$0 setup'"
        emulate "$@"
        ;;
    *)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
