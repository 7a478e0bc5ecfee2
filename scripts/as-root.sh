# Sourced by the scripts in this folder: re-runs the calling script as root.
# As root it does nothing (sudo need not be installed: minimal images and
# containers have none); as another user it re-executes the script through
# sudo, keeping CI so that a BPF test still fails rather than skips there.
# shellcheck shell=bash
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "$(basename "$0"): error: needs root, and sudo is not installed: run it as root" >&2
        exit 1
    fi
    exec sudo --preserve-env=CI "$0" "$@"
fi
