#!/usr/bin/env bash
# Install the Linux desktop bundle (the dist/tacit folder `make package` builds; a copy
# of this script sits in it) for one user or for everyone:
#   ./install.sh            # ~/.local/lib/tacit, ~/.local/bin/tacit, menu entry, icons
#   sudo ./install.sh --system   # /opt/tacit, /usr/local/bin/tacit, /usr/local/share/…
#   ./install.sh --uninstall [--system]
# It copies files only: the vault (in the user's data folder) is never touched, and
# uninstalling leaves it where it is.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
mode=user
action=install
for arg in "$@"; do
    case "$arg" in
        --system) mode=system ;;
        --user) mode=user ;;
        --uninstall) action=uninstall ;;
        *) echo "usage: install.sh [--user|--system] [--uninstall]" >&2; exit 2 ;;
    esac
done

if [[ $mode == system ]]; then
    lib=/opt/tacit bin=/usr/local/bin share=/usr/local/share
else
    lib="$HOME/.local/lib/tacit" bin="$HOME/.local/bin" share="${XDG_DATA_HOME:-$HOME/.local/share}"
fi

if [[ $action == uninstall ]]; then
    rm -rf "$lib"
    rm -f "$bin/tacit" "$share/applications/tacit.desktop" "$share/metainfo/tacit.metainfo.xml"
    rm -f "$share"/icons/hicolor/{48x48,128x128,256x256}/apps/tacit.png
    rm -f "$share/icons/hicolor/scalable/apps/tacit.svg"
    echo "Tacit removed ($mode). Your vault and backups were not touched."
    exit 0
fi

[[ -x "$here/tacit" && -d "$here/_internal" ]] || {
    echo "install.sh: run the copy inside the built bundle (dist/tacit/install.sh)" >&2
    exit 1
}
data="$here/_internal"
mkdir -p "$lib" "$bin" "$share/applications" "$share/metainfo"
rm -rf "$lib.new" && cp -a "$here" "$lib.new" && rm -rf "$lib" && mv "$lib.new" "$lib"
ln -sf "$lib/tacit" "$bin/tacit"
sed "s#^Exec=tacit#Exec=$lib/tacit#; s#^TryExec=tacit#TryExec=$lib/tacit#" \
    "$data/share/tacit.desktop" > "$share/applications/tacit.desktop"
install -m 644 "$data/share/tacit.metainfo.xml" "$share/metainfo/tacit.metainfo.xml"
for size in 48 128 256; do
    install -D -m 644 "$data/resources/icons/tacit-$size.png" \
        "$share/icons/hicolor/${size}x${size}/apps/tacit.png"
done
install -D -m 644 "$data/resources/icons/tacit.svg" "$share/icons/hicolor/scalable/apps/tacit.svg"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$share/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$share/icons/hicolor" || true
echo "Tacit installed ($mode): $bin/tacit, and in the applications menu."
