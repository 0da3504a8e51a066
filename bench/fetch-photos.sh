#!/usr/bin/env bash
# Real photographs for `npm run bench -- --photos .cache/photos`: Debian's wallpaper packages
# (mate-backgrounds' nature photos, the largest JPEG of each Plasma wallpaper, and ukui's and lomiri's
# JPEGs), unpacked into .cache/: 54 images, nearly all photographs, which is what bookworm's wallpaper
# packages hold (gnome-backgrounds and sway-backgrounds are drawings, as are mate's abstract and desktop
# folders).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/photos
work=.cache/photo-debs
mkdir -p "$dest" "$work"
cd "$work"
# Each package fetched once: a cache from an older list of packages gets the ones it lacks.
for pkg in mate-backgrounds plasma-workspace-wallpapers ukui-wallpapers lomiri-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04; do
  ls ./"${pkg}"_*.deb >/dev/null 2>&1 || apt-get download "$pkg"
done
for deb in ./*.deb; do dpkg -x "$deb" x; done
cd - >/dev/null
cp "$work"/x/usr/share/backgrounds/mate/nature/*.jpg "$dest"/
# ukui's and lomiri's JPEGs (most of them photographs), at the top of /usr/share/backgrounds.
cp "$work"/x/usr/share/backgrounds/*.jpg "$dest"/
for d in "$work"/x/usr/share/wallpapers/*/contents/images; do
  f="$(ls -S "$d"/*.jpg 2>/dev/null | head -1 || true)"
  [ -n "$f" ] && cp "$f" "$dest/plasma-$(basename "$(dirname "$(dirname "$d")")").jpg"
done
echo "$(ls "$dest" | wc -l) photos in $dest (mate nature: real photographs; plasma: photographs and digital art)"
