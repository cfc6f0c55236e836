#!/usr/bin/env bash
# Builds the meshroom-gw Debian packages: amd64 natively, arm64 (64-bit Raspberry Pi OS) with
# Debian's cross compiler. Man pages and shell completions are generated from the freshly built
# host binary into target/assets/ first (they are the same for every architecture), then
# `cargo deb` packages each architecture.
#
# Usage: packaging/build-deb.sh [--profile NAME] [--install-tools] [amd64|arm64|all]
#   --profile NAME    cargo profile to build with (default: release)
#   --install-tools   install what is missing (cargo-deb; for arm64 the cross gcc, the Rust
#                     target and qemu-user, which runs the packaged arm64 binary as a check)
#   amd64|arm64|all   which packages to build (default: all)
# The packages land in $CARGO_TARGET_DIR/debian/ (default target/debian/); their paths are
# printed one per line at the end.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

profile=release
install_tools=false
arches=all
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --profile=*) profile="${1#*=}"; shift ;;
        --install-tools) install_tools=true; shift ;;
        amd64|arm64|all) arches="$1"; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
case "$arches" in
    all) arches="amd64 arm64" ;;
esac

# Pinned so that the package layout (and what lintian says about it) does not change under us.
cargo_deb_version="3.8.0"
arm64_triple="aarch64-unknown-linux-gnu"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
# cargo-deb resolves asset paths other than target/release/… relative to the crate, so the
# generated assets live in the crate's own target/ whatever CARGO_TARGET_DIR says.
assets="$root/target/assets"

log() { printf '==> %s\n' "$*" >&2; }

# The only C in the binary is the SQLite that rusqlite compiles in: give it Debian's hardening
# flags (fortified libc calls, stack protector) as a Debian build would.
if command -v dpkg-buildflags >/dev/null; then
    CFLAGS="${CFLAGS:-$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)}"
else
    CFLAGS="${CFLAGS:--O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2}"
fi
export CFLAGS

ensure_cargo_deb() {
    if cargo deb --version 2>/dev/null | grep -q "$cargo_deb_version"; then
        return
    fi
    if ! $install_tools; then
        echo "cargo-deb $cargo_deb_version is missing: run with --install-tools or" \
            "cargo install cargo-deb --version $cargo_deb_version --locked" >&2
        exit 1
    fi
    log "installing cargo-deb $cargo_deb_version"
    local start=$SECONDS
    cargo install cargo-deb --version "$cargo_deb_version" --locked --quiet
    log "cargo-deb installed in $((SECONDS - start)) s"
}

ensure_arm64_tools() {
    local missing=()
    command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
    command -v aarch64-linux-gnu-strip >/dev/null || missing+=(binutils-aarch64-linux-gnu)
    command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
    if [ ${#missing[@]} -gt 0 ]; then
        if ! $install_tools; then
            echo "missing for arm64: ${missing[*]} (run with --install-tools)" >&2
            exit 1
        fi
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! rustup target list --installed | grep -qx "$arm64_triple"; then
        if ! $install_tools; then
            echo "Rust target $arm64_triple is missing (run with --install-tools)" >&2
            exit 1
        fi
        log "adding Rust target $arm64_triple"
        rustup target add "$arm64_triple"
    fi
}

generate_assets() {
    log "building the host binary ($profile) to generate man pages and completions"
    cargo build --locked --profile "$profile" --bin meshroom-gw
    local profile_dir="$profile"
    [ "$profile" = dev ] && profile_dir=debug
    local bin="$target_dir/$profile_dir/meshroom-gw"
    rm -rf "$assets"
    mkdir -p "$assets/man" "$assets/completions"
    "$bin" generate man "$assets/man" >/dev/null
    "$bin" generate completions bash >"$assets/completions/meshroom-gw.bash"
    "$bin" generate completions zsh >"$assets/completions/_meshroom-gw"
    "$bin" generate completions fish >"$assets/completions/meshroom-gw.fish"
}

# Prints the path of the package `cargo deb` made (its last line of output).
build_native() {
    log "packaging $host_arch"
    cargo deb --locked --profile "$profile" --no-build | tail -n 1
}

build_arm64() {
    ensure_arm64_tools
    log "cross-building and packaging arm64"
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
        cargo deb --locked --profile "$profile" --target "$arm64_triple" | tail -n 1
}

# Two finishing touches cargo-deb does not do: an md5sums control file (conffiles excluded, as
# dh_md5sums does) so `dpkg --verify` and debsums can check an installed gateway's files; and,
# for a cross-built package, Depends without the build's architecture qualifier
# (`libc6:arm64` -> `libc6`: on the target that is simply the native libc).
finish_package() {
    local deb="$1" arch="$2" tmp
    tmp="$(mktemp -d)"
    dpkg-deb -R "$deb" "$tmp/pkg"
    sed -i "/^Depends:/s/:$arch\b//g" "$tmp/pkg/DEBIAN/control"
    (
        cd "$tmp/pkg"
        find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort |
            grep -vxF -f <(sed 's|^/||' DEBIAN/conffiles 2>/dev/null) |
            tr '\n' '\0' | xargs -0 md5sum >DEBIAN/md5sums
    )
    chmod 0644 "$tmp/pkg/DEBIAN/md5sums"
    dpkg-deb --root-owner-group -Zxz -b "$tmp/pkg" "$deb" >/dev/null
    rm -rf "$tmp"
}

# The package must say the right architecture and carry every file users rely on.
check_package() {
    local deb="$1" arch="$2"
    local info contents
    info="$(dpkg-deb -I "$deb")"
    contents="$(dpkg-deb -c "$deb")"
    grep -q "^ Architecture: $arch\$" <<<"$info" || { echo "$deb: not $arch" >&2; echo "$info" >&2; exit 1; }
    grep -q '^ Depends:.*adduser' <<<"$info" || { echo "$deb: no Depends on adduser" >&2; exit 1; }
    if grep -q '^ Depends:.*:[a-z0-9]' <<<"$info"; then
        echo "$deb: architecture-qualified Depends" >&2; exit 1
    fi
    grep -q '^ *[0-9]* bytes, *[0-9]* lines *md5sums' <<<"$info" || { echo "$deb: no md5sums" >&2; exit 1; }
    for path in \
        ./usr/bin/meshroom-gw \
        ./etc/meshroom-gw/config.yaml \
        ./usr/lib/systemd/system/meshroom-gw.service \
        ./usr/share/lintian/overrides/meshroom-gw \
        ./usr/share/man/man1/meshroom-gw.1.gz \
        ./usr/share/man/man1/meshroom-gw-run.1.gz \
        ./usr/share/man/man5/meshroom-gw.yaml.5.gz \
        ./usr/share/bash-completion/completions/meshroom-gw \
        ./usr/share/zsh/vendor-completions/_meshroom-gw \
        ./usr/share/fish/vendor_completions.d/meshroom-gw.fish \
        ./usr/share/doc/meshroom-gw/copyright \
        ./usr/share/doc/meshroom-gw/changelog.Debian.gz; do
        grep -q " $path\$" <<<"$contents" || { echo "$deb: $path missing" >&2; echo "$contents" >&2; exit 1; }
    done
    # The binary inside must be built for the package's architecture.
    local tmp
    tmp="$(mktemp -d)"
    dpkg-deb -x "$deb" "$tmp"
    local machine
    machine="$(file -b "$tmp/usr/bin/meshroom-gw" 2>/dev/null || od -An -tx1 -j18 -N2 "$tmp/usr/bin/meshroom-gw")"
    case "$arch:$machine" in
        amd64:*x86-64*|amd64:*" 3e 00"*|arm64:*aarch64*|arm64:*" b7 00"*) ;;
        *) echo "$deb: binary is not $arch: $machine" >&2; exit 1 ;;
    esac
    # And it must run: natively, or an arm64 one under qemu-user with the cross libc.
    local run=()
    if [ "$arch" = arm64 ] && [ "$host_arch" != arm64 ]; then
        if command -v qemu-aarch64 >/dev/null; then
            run=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
        else
            log "qemu-aarch64 not installed: not running the arm64 binary (--install-tools adds it)"
            run=(skip)
        fi
    fi
    if [ "${run[0]:-}" != skip ]; then
        "${run[@]}" "$tmp/usr/bin/meshroom-gw" --version >/dev/null ||
            { echo "$deb: the packaged binary does not run" >&2; exit 1; }
        "${run[@]}" "$tmp/usr/bin/meshroom-gw" check-config --config "$tmp/etc/meshroom-gw/config.yaml" >/dev/null ||
            { echo "$deb: the packaged config does not pass check-config" >&2; exit 1; }
    fi
    rm -rf "$tmp"
    log "$deb: Architecture $arch, all files present, binary runs"
}

host_arch="$(dpkg --print-architecture)"
ensure_cargo_deb
generate_assets
built=()
for arch in $arches; do
    if [ "$arch" = "$host_arch" ]; then
        deb="$(build_native)"
    elif [ "$arch" = arm64 ]; then
        deb="$(build_arm64)"
    else
        echo "building $arch on $host_arch is not supported by this script" >&2
        exit 1
    fi
    finish_package "$deb" "$arch"
    check_package "$deb" "$arch"
    built+=("$deb")
done
printf '%s\n' "${built[@]}"
