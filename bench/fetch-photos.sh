#!/usr/bin/env bash
# Real photographs for `npm run bench -- --photos .cache/photos`: Debian's wallpaper packages
# (mate-backgrounds' nature photos, the largest JPEG of each Plasma wallpaper, ukui's and lomiri's
# JPEGs, and the 11 photographs among lxqt-themes' wallpapers, 7 of them stored as PNG), unpacked into
# .cache/: 65 images, nearly all photographs, which is what bookworm's wallpaper packages hold
# (gnome-backgrounds, sway-backgrounds and desktop-base are drawings, as are mate's abstract and desktop
# folders and lxqt's other wallpapers).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/photos
work=.cache/photo-debs
mkdir -p "$dest" "$work"
cd "$work"
# Each package fetched once: a cache from an older list of packages gets the ones it lacks.
for pkg in mate-backgrounds plasma-workspace-wallpapers ukui-wallpapers lomiri-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 lxqt-themes; do
  ls ./"${pkg}"_*.deb >/dev/null 2>&1 || apt-get download "$pkg"
done
for deb in ./*.deb; do dpkg -x "$deb" x; done
cd - >/dev/null
cp "$work"/x/usr/share/backgrounds/mate/nature/*.jpg "$dest"/
# ukui's and lomiri's JPEGs (most of them photographs), at the top of /usr/share/backgrounds.
cp "$work"/x/usr/share/backgrounds/*.jpg "$dest"/
# lxqt-themes: its photographs only (the rest are logos and geometric art).
for f in Butterfly-Kenneth-Wimer.jpg after-the-rain.jpg fog.jpg this-is-not-windows.jpg \
  Valendas.png appleflower.png beam.png butterfly.png cloud.png drop.png flowers.png; do
  cp "$work/x/usr/share/lxqt/wallpapers/$f" "$dest/lxqt-$f"
done
for d in "$work"/x/usr/share/wallpapers/*/contents/images; do
  f="$(ls -S "$d"/*.jpg 2>/dev/null | head -1 || true)"
  [ -n "$f" ] && cp "$f" "$dest/plasma-$(basename "$(dirname "$(dirname "$d")")").jpg"
done
echo "$(ls "$dest" | wc -l) photos in $dest (mate nature and lxqt: real photographs; plasma: photographs and digital art)"
